//! The configuration file (`--config F`), YAML, as in `docs/config.md` and
//! `schemas/config.schema.json`. Precedence: command-line flag > file > default.
//!
//! `${NAME}` anywhere in the file is replaced by the environment variable `NAME` before
//! the YAML is read, so secrets stay out of files (an unset variable is an error naming
//! it). Sections this version does not act on yet are reported as warnings, never
//! silently ignored; `sources:` is ignored by `detect` with a warning (it is for `run`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{file}{}: {message}", location.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default())]
pub struct ConfigError {
    /// The file.
    pub file: String,
    /// Line and column, when known.
    pub location: Option<(usize, usize)>,
    /// What is wrong.
    pub message: String,
}

/// `rules:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesSection {
    /// Rule files and directories.
    #[serde(default)]
    pub paths: Vec<PathBuf>,
    /// Load the built-in pack (default true).
    pub builtin: Option<bool>,
    /// Rule ids (or names) not to run.
    #[serde(default)]
    pub disable: Vec<String>,
    /// Run only these rule ids or names (and what selected correlations read).
    #[serde(default)]
    pub enable: Vec<String>,
    /// Run only rules with one of these tags (a trailing `*` matches a prefix).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Sigma filter documents (files or directories).
    #[serde(default)]
    pub filters: Vec<PathBuf>,
    /// Lowest level run.
    pub min_level: Option<String>,
    /// `expand` placeholder values.
    #[serde(default)]
    pub placeholders: BTreeMap<String, Vec<String>>,
    /// Reload the rules when their files change or on SIGHUP (default: on for `run`
    /// and for `detect` reading stdin).
    pub reload: Option<bool>,
}

/// `metrics:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// `host:port` to serve `/metrics` and `/health` on (e.g. `127.0.0.1:9598`).
    pub address: String,
}

/// `archive:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveSection {
    /// The archive root.
    pub root: PathBuf,
    /// Column whose value names `tp_index` (default `recipient_account_id`).
    pub tp_index: Option<String>,
    /// Close a file at this size (`128MiB`, `64KiB`, or bytes).
    pub max_bytes: Option<String>,
    /// Close a file this long after opening it (`60s`, `5m`).
    pub max_age: Option<String>,
    /// `tp_partition` of the rows.
    pub partition: Option<String>,
}

/// `dead_letter:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterSection {
    /// The dead-letter file.
    pub path: PathBuf,
}

/// `dedup:` — drop repeated `eventID`s.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupSection {
    /// Window in event time (default 15m).
    pub window: Option<String>,
    /// Keys held at most (default 1,000,000).
    pub max_entries: Option<usize>,
    /// `false` turns dedup off.
    pub enabled: Option<bool>,
}

/// `correlation:` — limits of the stateful stage.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorrelationSection {
    /// How late (event time) a contribution may be (default 5m).
    pub allowed_lateness: Option<String>,
    /// Groups per correlation (default 1,000,000).
    pub max_groups: Option<usize>,
    /// Contributions kept per group (default 10,000).
    pub max_events_per_group: Option<usize>,
    /// Contributions held by all correlations together (default 2,000,000).
    pub max_events: Option<usize>,
}

/// What the pre-storage filter applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum FilterAppliesTo {
    /// Filtered records are not archived; rules still see them.
    Archive,
    /// Filtered records are neither archived nor matched.
    Both,
}

/// The file, as read.
#[derive(Debug, Default, Deserialize)]
pub struct ConfigFile {
    /// Format version (1).
    pub version: Option<u32>,
    /// `rules:`
    pub rules: Option<RulesSection>,
    /// `filter:` — SQL boolean expressions over the archive's columns, AND-ed.
    #[serde(default)]
    pub filter: Vec<String>,
    /// `filter_applies_to:` (default `archive`).
    pub filter_applies_to: Option<FilterAppliesTo>,
    /// `dedup:`
    pub dedup: Option<DedupSection>,
    /// `correlation:`
    pub correlation: Option<CorrelationSection>,
    /// `archive:`
    pub archive: Option<ArchiveSection>,
    /// `dead_letter:`
    pub dead_letter: Option<DeadLetterSection>,
    /// `connections:` — named ways to reach AWS.
    #[serde(default)]
    pub connections: BTreeMap<String, crate::source::aws::Connection>,
    /// `sources:` — what `trailhound run` reads.
    #[serde(default)]
    pub sources: Vec<crate::source::live::SourceConfig>,
    /// `sinks:` — where findings go (default: stdout).
    #[serde(default)]
    pub sinks: Vec<crate::sink::SinkConfig>,
    /// `state_dir:` — checkpoints, the instance id (and SQS dead letters by default).
    pub state_dir: Option<PathBuf>,
    /// `metrics:` — the Prometheus `/metrics` and `/health` endpoint.
    pub metrics: Option<MetricsSection>,
    /// `enrich:` — static tags and account aliases added to findings.
    #[serde(default)]
    pub enrich: serde_yaml_ng::Value,
    /// `format:` — the finding format of sinks that name none (native, ocsf, ecs, text).
    pub format: Option<String>,
    /// Every other section, reported as not acted on.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_yaml_ng::Value>,
}

/// Sections of the documented skeleton that later versions act on.
const KNOWN_LATER: &[&str] = &[];

/// Replaces `${NAME}` with the environment variable `NAME`.
pub fn interpolate(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "unterminated ${…}".to_string())?;
        let name = &after[..end];
        let value = env(name).ok_or_else(|| format!("environment variable {name} is not set"))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A size: `128MiB`, `64KiB`, `1GiB`, `10MB`, or a number of bytes.
pub fn parse_size(s: &str) -> Option<usize> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num.parse().ok()?;
    let mult = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// An optional duration field: `None` when absent, an error naming `key` when the
/// value is not a duration.
pub fn duration_field(key: &str, v: Option<&str>) -> Result<Option<Duration>, String> {
    v.map(|s| parse_duration(s).ok_or_else(|| format!("{key}: {s:?} is not a duration")))
        .transpose()
}

/// A duration field with its default.
pub fn duration_or(key: &str, v: Option<&str>, default: Duration) -> Result<Duration, String> {
    Ok(duration_field(key, v)?.unwrap_or(default))
}

/// Splits a list entry written as a mapping with one key, its kind (`- s3: {…}`,
/// `- kafka: {…}`), into the kind and its body (an empty mapping when the body is
/// empty). `what` names the entry (`source`), `kinds` lists the valid kinds.
pub fn one_kind<E: serde::de::Error>(
    map: BTreeMap<String, serde_yaml_ng::Value>,
    what: &str,
    kinds: &str,
) -> Result<(String, serde_yaml_ng::Value), E> {
    if map.len() != 1 {
        return Err(E::custom(format!(
            "a {what} is a mapping with one key, its kind ({kinds}); found {}",
            if map.is_empty() {
                "none".to_string()
            } else {
                map.keys().cloned().collect::<Vec<_>>().join(", ")
            }
        )));
    }
    let Some((kind, body)) = map.into_iter().next() else {
        return Err(E::custom(format!("empty {what}")));
    };
    let body = if body.is_null() {
        serde_yaml_ng::Value::Mapping(Default::default())
    } else {
        body
    };
    Ok((kind, body))
}

/// A duration: `60s`, `5m`, `1h`, `500ms`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    humantime::parse_duration(s.trim()).ok()
}

impl ConfigFile {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<(ConfigFile, Vec<String>), ConfigError> {
        let file = path.display().to_string();
        let raw = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            location: None,
            message: e.to_string(),
        })?;
        Self::parse(&raw, &file, &|n| std::env::var(n).ok())
    }

    /// Checks the text of a configuration file named `file` (for messages), with
    /// `${VAR}` taken from `env`.
    pub fn parse(
        raw: &str,
        file: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(ConfigFile, Vec<String>), ConfigError> {
        let file = file.to_string();
        let fail = |location, message: String| ConfigError {
            file: file.clone(),
            location,
            message,
        };
        let text = interpolate(raw, env).map_err(|m| fail(None, m))?;
        let cfg: ConfigFile = serde_yaml_ng::from_str(&text).map_err(|e| {
            let loc = e.location().map(|l| (l.line(), l.column()));
            fail(loc, e.to_string())
        })?;
        if let Some(v) = cfg.version
            && v != 1
        {
            return Err(fail(
                None,
                format!("unknown version {v} (this trailhound reads version 1)"),
            ));
        }
        let mut warnings = Vec::new();
        for k in cfg.other.keys() {
            if KNOWN_LATER.contains(&k.as_str()) {
                warnings.push(format!(
                    "{file}: section '{k}' is not acted on by this command or version"
                ));
            } else {
                warnings.push(format!("{file}: unknown section '{k}'"));
            }
        }
        crate::sink::format::Enrichment::from_yaml(&cfg.enrich).map_err(|m| fail(None, m))?;
        if let Some(f) = &cfg.format
            && crate::sink::format::FindingFormat::parse(f).is_none()
        {
            return Err(fail(
                None,
                format!("format: {f:?} is not a finding format (native, ocsf, ecs, text)"),
            ));
        }
        if let Some(a) = &cfg.archive {
            if let Some(s) = &a.max_bytes
                && parse_size(s).is_none()
            {
                return Err(fail(
                    None,
                    format!("archive.max_bytes: {s:?} is not a size (e.g. 128MiB)"),
                ));
            }
            if let Some(s) = &a.max_age
                && parse_duration(s).is_none()
            {
                return Err(fail(
                    None,
                    format!("archive.max_age: {s:?} is not a duration (e.g. 60s)"),
                ));
            }
        }
        for (key, v) in [
            (
                "dedup.window",
                cfg.dedup.as_ref().and_then(|d| d.window.as_ref()),
            ),
            (
                "correlation.allowed_lateness",
                cfg.correlation
                    .as_ref()
                    .and_then(|c| c.allowed_lateness.as_ref()),
            ),
        ] {
            if let Some(s) = v
                && parse_duration(s).is_none()
            {
                return Err(fail(
                    None,
                    format!("{key}: {s:?} is not a duration (e.g. 15m)"),
                ));
            }
        }
        for (name, c) in &cfg.connections {
            c.validate()
                .map_err(|e| fail(None, format!("connections.{name}: {e}")))?;
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, src) in cfg.sources.iter().enumerate() {
            let name = src.name();
            src.validate(&cfg.connections)
                .map_err(|e| fail(None, format!("sources[{i}] ({} {name:?}): {e}", src.kind())))?;
            if !names.insert(name.clone()) {
                return Err(fail(
                    None,
                    format!(
                        "sources[{i}]: a second source named {name:?} (names must be unique: they key checkpoints and tp_partition)"
                    ),
                ));
            }
        }
        let mut sink_names = std::collections::BTreeSet::new();
        for (i, sink) in cfg.sinks.iter().enumerate() {
            sink.validate(i).map_err(|e| fail(None, e.to_string()))?;
            let name = sink.name();
            if !sink_names.insert(name.clone()) {
                return Err(fail(
                    None,
                    format!("sinks[{i}]: a second sink named {name:?} (give each a `name:`)"),
                ));
            }
        }
        if let Err(e) = crate::filter::RecordFilter::compile(&cfg.filter) {
            return Err(fail(None, e.to_string()));
        }
        if let Some(r) = &cfg.rules
            && let Some(l) = &r.min_level
            && crate::rules::Level::parse(l).is_none()
        {
            return Err(fail(None, format!("rules.min_level: unknown level {l:?}")));
        }
        Ok((cfg, warnings))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_interpolation() {
        let env = |n: &str| (n == "ROOT").then(|| "/data".to_string());
        assert_eq!(
            interpolate("root: ${ROOT}/a", &env).as_deref(),
            Ok("root: /data/a")
        );
        assert!(
            interpolate("x: ${NOPE}", &env)
                .unwrap_err()
                .contains("NOPE")
        );
        assert!(interpolate("x: ${OPEN", &env).is_err());
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("128MiB"), Some(128 << 20));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("10 MB"), Some(10_000_000));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_duration("60s"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("soon"), None);
    }

    #[test]
    fn sections_and_errors() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("c.yaml");
        std::fs::write(&p, "version: 1\nrules: {paths: [r/], builtin: false}\narchive: {root: ./a, max_bytes: 64KiB, max_age: 10s}\nsources: []\nmetrics: {address: 127.0.0.1:9598}\nenrich: {}\nbogus: 1\n").expect("write");
        let (cfg, warnings) = ConfigFile::load(&p).expect("loads");
        assert_eq!(
            cfg.metrics.as_ref().map(|m| m.address.as_str()),
            Some("127.0.0.1:9598")
        );
        assert_eq!(cfg.rules.as_ref().map(|r| r.builtin), Some(Some(false)));
        assert_eq!(
            cfg.archive
                .as_ref()
                .and_then(|a| a.max_bytes.as_deref())
                .and_then(parse_size),
            Some(65536)
        );
        // Only `bogus` is unknown; `enrich` is a section now.
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("bogus"), "{warnings:?}");
        std::fs::write(&p, "archive: {root: ./a, max_bytes: huge}\n").expect("write");
        assert!(
            ConfigFile::load(&p)
                .unwrap_err()
                .to_string()
                .contains("max_bytes")
        );
        std::fs::write(&p, "rules: {pathz: []}\n").expect("write");
        let e = ConfigFile::load(&p).unwrap_err();
        assert!(e.location.is_some(), "{e}");
    }
}
