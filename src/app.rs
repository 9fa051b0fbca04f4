//! Commands, from parsed arguments to an exit code: the binary's `main` only parses,
//! sets up logging and signals, and calls into here.

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::cli::{DetectArgs, RuleSetArgs, RulesCommand, StatsFormat, exit};
use crate::pipeline::{self, PipelineConfig};
use crate::rules::{CompileContext, LoadOptions, LoadReport, RulePack, RulePathError, selftest};
use crate::sink::{Output, SinkError};

/// A command that could not run.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A rule path does not exist or cannot be read.
    #[error(transparent)]
    RulePath(#[from] RulePathError),
    /// Rules failed to load under `--strict`.
    #[error("{0} rule error(s); not running (--strict)")]
    Strict(usize),
    /// The output cannot be written.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The placeholder file cannot be read or is not a mapping of lists of strings.
    #[error("placeholders file {path}: {message}")]
    Placeholders {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The archive cannot be opened or written.
    #[error(transparent)]
    Archive(#[from] crate::archive::ArchiveError),
    /// The stats file cannot be written.
    #[error("stats file {path}: {source}")]
    StatsFile {
        /// The path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

impl AppError {
    /// The exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            AppError::RulePath(_) | AppError::Strict(_) | AppError::Placeholders { .. } => {
                exit::USAGE
            }
            AppError::Sink(_) | AppError::StatsFile { .. } | AppError::Archive(_) => {
                exit::INPUT_ERROR
            }
        }
    }
}

fn log_report(report: &LoadReport, strict: bool) {
    for e in &report.errors {
        tracing::error!("rule skipped: {e}");
    }
    for w in &report.warnings {
        if strict {
            tracing::error!("{w}");
        } else {
            tracing::warn!("{w}");
        }
    }
    for (file, reason) in &report.skipped {
        tracing::info!("rule not loaded: {file}: {reason}");
    }
}

/// Reads a `--placeholders` file: `name: [value, …]` (a single string is one value).
pub fn load_placeholders(path: Option<&std::path::Path>) -> Result<CompileContext, AppError> {
    let mut ctx = CompileContext::default();
    let Some(path) = path else { return Ok(ctx) };
    let fail = |message: String| AppError::Placeholders {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let map: std::collections::BTreeMap<String, OneOrMany> =
        serde_yaml_ng::from_str(&text).map_err(|e| fail(e.to_string()))?;
    for (k, v) in map {
        let values = match v {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        };
        ctx.placeholders.insert(k, values);
    }
    Ok(ctx)
}

/// Loads a rule pack and logs what was wrong with it.
pub fn load_rules(
    opts: &LoadOptions,
    ctx: &CompileContext,
    strict: bool,
) -> Result<(RulePack, LoadReport), AppError> {
    let (pack, report) = RulePack::load_with(opts, ctx)?;
    log_report(&report, strict);
    let problems = report.errors.len() + if strict { report.warnings.len() } else { 0 };
    if strict && problems > 0 {
        return Err(AppError::Strict(problems));
    }
    Ok((pack, report))
}

/// `trailhound detect`.
pub fn detect(args: &DetectArgs, shutdown: Arc<AtomicBool>) -> Result<i32, AppError> {
    let opts = LoadOptions {
        builtin: !args.no_builtin,
        paths: args.rules.clone(),
    };
    let ctx = load_placeholders(args.placeholders.as_deref())?;
    let (mut pack, report) = load_rules(&opts, &ctx, args.strict)?;
    if let Some(min) = args.min_level {
        pack = pack.retain_min_level(min);
    }
    tracing::debug!(
        rules = pack.rules().len(),
        files = report.files,
        indexed_names = pack.index().keys(),
        always = pack.index().always().len(),
        "rules loaded"
    );
    let pack = Arc::new(pack);
    let (inputs, missing) = crate::source::discover(&args.inputs);
    for m in &missing {
        tracing::error!("input {m}");
    }
    let mut cfg = PipelineConfig::default();
    if let Some(t) = args.threads {
        cfg.threads = t.max(1);
        cfg.max_in_flight = 4 * cfg.threads + 4;
    }
    cfg.include_record = !args.no_record;
    cfg.max_record_bytes = args.max_record_bytes.max(1);
    let out = Output::new(
        Box::new(io::BufWriter::with_capacity(256 * 1024, io::stdout())),
        args.dead_letter.as_deref(),
    )?;
    let archive = match &args.archive {
        Some(root) => {
            let partition = args.partition.clone().unwrap_or_else(|| {
                if args.inputs.is_empty() {
                    "stdin".into()
                } else {
                    "files".into()
                }
            });
            cfg.archive_partition = Some(partition.clone());
            let w = crate::archive::ArchiveWriter::open(crate::archive::ArchiveConfig {
                root: root.clone(),
                partition,
                max_file_bytes: args.archive_max_bytes,
                max_age: std::time::Duration::from_secs(args.archive_max_age_s),
            })?;
            Some(w)
        }
        None => None,
    };
    let outcome = match pipeline::run(inputs, pack.clone(), out, archive, &cfg, shutdown) {
        Ok(o) => o,
        Err(pipeline::PipelineError::Sink(e)) => return Err(e.into()),
        Err(pipeline::PipelineError::Archive(e)) => return Err(e.into()),
    };
    let mut summary = outcome.summary;
    summary.inputs += missing.len() as u64;
    summary.inputs_failed += missing.len() as u64;

    match (&args.stats_file, args.stats) {
        (Some(path), _) => {
            let text = format!("{}\n", summary.to_json(&pack));
            std::fs::write(path, text).map_err(|source| AppError::StatsFile {
                path: path.clone(),
                source,
            })?;
        }
        (None, StatsFormat::Json) => {
            let mut err = io::stderr().lock();
            let _ = writeln!(err, "{}", summary.to_json(&pack));
        }
        (None, StatsFormat::Human) => tracing::info!("{}", summary.human()),
        (None, StatsFormat::None) => {}
    }
    if summary.inputs_failed > 0 {
        return Ok(exit::INPUT_ERROR);
    }
    if let (Some(threshold), Some(max)) = (args.fail_on, outcome.max_level)
        && max >= threshold
    {
        return Ok(exit::FINDINGS_OR_FAILURES);
    }
    Ok(exit::OK)
}

fn rule_set(args: &RuleSetArgs) -> LoadOptions {
    LoadOptions {
        builtin: args.builtin || (args.paths.is_empty() && !args.no_builtin),
        paths: args.paths.clone(),
    }
}

/// `trailhound archive …`.
pub fn archive(cmd: &crate::cli::ArchiveCommand) -> Result<i32, AppError> {
    match cmd {
        crate::cli::ArchiveCommand::Compact { root, all } => {
            let s = crate::archive::compact(root, *all)?;
            let mut out = io::stdout().lock();
            let _ = writeln!(
                out,
                "{} partitions compacted: {} files into {}, {} rows kept, {} duplicate tp_ids dropped",
                s.partitions, s.files_in, s.files_out, s.rows, s.duplicates
            );
            Ok(exit::OK)
        }
    }
}

/// `trailhound rules …`; output goes to stdout (these commands print no findings).
pub fn rules(cmd: &RulesCommand) -> Result<i32, AppError> {
    let mut out = io::stdout().lock();
    match cmd {
        RulesCommand::Validate(a) => {
            let ctx = load_placeholders(a.placeholders.as_deref())?;
            let (pack, report) = RulePack::load_with(&rule_set(a), &ctx)?;
            for e in &report.errors {
                let _ = writeln!(out, "error: {e}");
            }
            for w in &report.warnings {
                let _ = writeln!(out, "{}: {w}", if a.strict { "error" } else { "warning" });
            }
            for (f, why) in &report.skipped {
                let _ = writeln!(out, "skipped: {f}: {why}");
            }
            let failures = report.errors.len() + if a.strict { report.warnings.len() } else { 0 };
            let _ = writeln!(
                out,
                "{} rules loaded from {} files; {} errors, {} warnings, {} skipped",
                pack.rules().len(),
                report.files,
                report.errors.len(),
                report.warnings.len(),
                report.skipped.len()
            );
            Ok(if failures > 0 {
                exit::FINDINGS_OR_FAILURES
            } else {
                exit::OK
            })
        }
        RulesCommand::Test(a) => {
            let opts = rule_set(a);
            let ctx = load_placeholders(a.placeholders.as_deref())?;
            let (pack, report) = RulePack::load_with(&opts, &ctx)?;
            for e in &report.errors {
                let _ = writeln!(out, "error: {e}");
            }
            let mut files = if opts.builtin {
                selftest::builtin_tests()
            } else {
                Vec::new()
            };
            files.extend(
                selftest::tests_under(&opts.paths).map_err(|source| RulePathError {
                    path: opts.paths.first().cloned().unwrap_or_default(),
                    source,
                })?,
            );
            let results = selftest::run(&pack, &files);
            let mut failed = 0;
            for r in &results {
                if r.passed() {
                    continue;
                }
                failed += 1;
                let why = match (&r.error, r.expect) {
                    (Some(e), _) => e.clone(),
                    (None, Some(selftest::Expect::Match)) => "expected a match, got none".into(),
                    (None, _) => format!("expected no match, matched {}", r.matched.join(", ")),
                };
                let _ = writeln!(out, "FAIL {}: {}: {why}", r.location, r.name);
            }
            let untested = selftest::untested(&pack, &files);
            for o in &untested {
                let _ = writeln!(out, "untested: {o} has no tests file");
            }
            let _ = writeln!(
                out,
                "{} cases in {} files: {} passed, {} failed; {} rule files without tests; {} rule errors",
                results.len(),
                files.len(),
                results.len() - failed,
                failed,
                untested.len(),
                report.errors.len()
            );
            let bad = failed > 0 || !report.errors.is_empty();
            Ok(if bad {
                exit::FINDINGS_OR_FAILURES
            } else {
                exit::OK
            })
        }
        RulesCommand::List(a) => {
            let ctx = load_placeholders(a.placeholders.as_deref())?;
            let (pack, report) = RulePack::load_with(&rule_set(a), &ctx)?;
            log_report(&report, a.strict);
            for r in pack.rules() {
                let _ = writeln!(
                    out,
                    "{}\t{}\t{}\t{}",
                    r.meta.id, r.meta.level, r.meta.title, r.meta.origin
                );
            }
            Ok(exit::OK)
        }
    }
}
