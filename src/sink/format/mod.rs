//! Finding formats: how a finding looks when it leaves a sink.
//!
//! Workers always render trailhound's native JSON ([`crate::finding`]): it is the
//! format every other stage (suppression, routing, Kafka keys) reads, and rendering it
//! straight from the parsed record is the cheapest thing the hot path can do. A sink
//! whose `format:` is something else re-encodes each native line here, on the sink
//! thread, from a borrowed view of it ([`view::NativeFinding`]): findings are rare next
//! to records, so the second pass costs nothing measurable, and the record's bytes are
//! carried over without re-serialising them.
//!
//! | format | shape | schema |
//! |---|---|---|
//! | `native` | `trailhound.finding/1` | `schemas/finding.schema.json` |
//! | `ocsf` | OCSF 1.3.0 Detection Finding (class_uid 2004) | `schemas/ocsf-1.3.0-detection-finding.schema.json` |
//! | `ecs` | Elastic Common Schema 8.11 alert document | `schemas/ecs-8.11-event.schema.json` |
//! | `text` | one compact line for a terminal, colour when it is one | `schemas/finding-text.md` |
//!
//! **Enrichment.** The config's `enrich:` section (static tags, account aliases) is
//! applied on the same pass: native findings gain an `enrichment` object, OCSF and ECS
//! put the values where those schemas keep them, the text line shows the alias.

pub mod ecs;
pub mod ocsf;
pub mod text;
pub mod view;
mod write;

pub use write::{Arr, Obj};

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use crate::rules::RulePack;
use view::NativeFinding;

/// A finding format (`--format`, a sink's `format:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum FindingFormat {
    /// trailhound's JSON (`trailhound.finding/1`).
    #[default]
    Native,
    /// OCSF 1.3.0 Detection Finding (class_uid 2004), as Amazon Security Lake reads.
    Ocsf,
    /// Elastic Common Schema 8.x.
    Ecs,
    /// One compact, human-readable line (colour on a terminal).
    Text,
}

impl FindingFormat {
    /// Parses a `format:` value.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "native" | "json" => Self::Native,
            "ocsf" => Self::Ocsf,
            "ecs" => Self::Ecs,
            "text" => Self::Text,
            _ => return None,
        })
    }

    /// The name used in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Ocsf => "ocsf",
            Self::Ecs => "ecs",
            Self::Text => "text",
        }
    }

    fn slot(self) -> usize {
        self as usize
    }
}

/// When the text format uses colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    /// When the sink is a terminal and `NO_COLOR` is not set.
    #[default]
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// `enrich:` — static context added to every finding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Enrichment {
    /// `tags:` name → value (environment, team, …).
    pub tags: BTreeMap<String, String>,
    /// `account_aliases:` 12-digit account id → alias.
    pub account_aliases: BTreeMap<String, String>,
}

impl Enrichment {
    /// Whether there is nothing to add.
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty() && self.account_aliases.is_empty()
    }

    /// The alias of an account id.
    pub fn alias(&self, account: Option<&str>) -> Option<&str> {
        account.and_then(|a| self.account_aliases.get(a).map(String::as_str))
    }

    /// Reads the `enrich:` section. Account ids may be written as YAML numbers; they
    /// are read back as 12 digits.
    pub fn from_yaml(v: &serde_yaml_ng::Value) -> Result<Self, String> {
        use serde_yaml_ng::Value;
        let map = match v {
            Value::Null => return Ok(Self::default()),
            Value::Mapping(m) => m,
            _ => return Err("enrich: must be a mapping (tags, account_aliases)".into()),
        };
        let mut out = Self::default();
        for (k, v) in map {
            let key = scalar(k).ok_or("enrich: keys must be strings")?;
            let Value::Mapping(inner) = v else {
                if v.is_null() {
                    continue;
                }
                return Err(format!("enrich.{key}: must be a mapping"));
            };
            let target = match key.as_str() {
                "tags" => &mut out.tags,
                "account_aliases" => &mut out.account_aliases,
                other => {
                    return Err(format!(
                        "enrich: unknown key {other:?} (tags, account_aliases)"
                    ));
                }
            };
            for (k, v) in inner {
                let name = match (key.as_str(), k) {
                    ("account_aliases", Value::Number(n)) => match n.as_u64() {
                        Some(n) => format!("{n:012}"),
                        None => {
                            return Err(format!(
                                "enrich.account_aliases: {n} is not an account id"
                            ));
                        }
                    },
                    _ => scalar(k).ok_or_else(|| format!("enrich.{key}: keys must be strings"))?,
                };
                if key == "account_aliases"
                    && !(name.len() == 12 && name.bytes().all(|b| b.is_ascii_digit()))
                {
                    return Err(format!(
                        "enrich.account_aliases: {name:?} is not a 12-digit account id"
                    ));
                }
                let value = scalar(v)
                    .ok_or_else(|| format!("enrich.{key}.{name}: the value must be a string"))?;
                target.insert(name, value);
            }
        }
        Ok(out)
    }
}

fn scalar(v: &serde_yaml_ng::Value) -> Option<String> {
    use serde_yaml_ng::Value;
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// What a rule's finding carries in the richer formats beyond the native `rule` object.
#[derive(Debug, Clone, Default)]
pub struct RuleDoc {
    /// The rule id (to check the index still names the same rule).
    pub id: String,
    /// `description`.
    pub description: Option<String>,
    /// `references`.
    pub references: Vec<String>,
    /// `author`.
    pub author: Option<String>,
    /// `falsepositives`.
    pub falsepositives: Vec<String>,
}

/// The rule documentation of a pack, by rule index.
pub fn rule_docs(pack: &RulePack) -> Vec<RuleDoc> {
    pack.rules()
        .iter()
        .map(|r| RuleDoc {
            id: r.meta.id.clone(),
            description: r.meta.description.clone(),
            references: r.meta.references.clone(),
            author: r.meta.author.clone(),
            falsepositives: r.meta.falsepositives.clone(),
        })
        .collect()
}

/// Options shared by every sink's encoder.
#[derive(Debug, Clone, Default)]
pub struct FormatOptions {
    /// The format of sinks that name none (`--format`).
    pub default: FindingFormat,
    /// Colour for the text format.
    pub color: ColorChoice,
    /// `enrich:`.
    pub enrich: Arc<Enrichment>,
}

/// Re-encodes native finding lines into the formats the sinks want, each format at
/// most once per line.
#[derive(Debug, Default)]
pub struct Encoder {
    enrich: Arc<Enrichment>,
    docs: Vec<RuleDoc>,
    bufs: [Vec<u8>; 4],
    done: [bool; 4],
    /// Lines that could not be read back (they are passed on as they were).
    pub unreadable: u64,
}

impl Encoder {
    /// An encoder applying `enrich`.
    pub fn new(enrich: Arc<Enrichment>) -> Self {
        Encoder {
            enrich,
            ..Encoder::default()
        }
    }

    /// Whether `format` is the native line unchanged.
    pub fn passthrough(&self, format: FindingFormat) -> bool {
        format == FindingFormat::Native && self.enrich.is_empty()
    }

    /// Takes the rule documentation of the run's pack (again after a reload).
    pub fn bind(&mut self, docs: Vec<RuleDoc>) {
        self.docs = docs;
    }

    /// Forgets the encodings of the previous line.
    pub fn next_line(&mut self) {
        self.done = [false; 4];
    }

    /// `line` (native, with its `\n`) in `format`, with its `\n`; `color` only matters
    /// for text.
    pub fn encode<'b>(
        &'b mut self,
        rule: u32,
        line: &'b [u8],
        format: FindingFormat,
        color: bool,
    ) -> &'b [u8] {
        if self.passthrough(format) {
            return line;
        }
        let slot = format.slot();
        if !self.done[slot] {
            let mut buf = std::mem::take(&mut self.bufs[slot]);
            buf.clear();
            let doc = self.docs.get(rule as usize);
            match serde_json::from_slice::<NativeFinding<'_>>(line) {
                Ok(f) => {
                    let doc = doc.filter(|d| d.id == f.rule.id);
                    let cx = Context {
                        finding: &f,
                        doc,
                        enrich: &self.enrich,
                    };
                    match format {
                        FindingFormat::Native => view::enrich_native(&cx, line, &mut buf),
                        FindingFormat::Ocsf => ocsf::write(&cx, &mut buf),
                        FindingFormat::Ecs => ecs::write(&cx, &mut buf),
                        FindingFormat::Text => text::write(&cx, color, &mut buf),
                    }
                }
                Err(e) => {
                    self.unreadable += 1;
                    if self.unreadable == 1 {
                        tracing::warn!(
                            "a finding could not be read back for the {} format ({e}); it is passed on as native JSON",
                            format.name()
                        );
                    }
                    buf.extend_from_slice(line);
                }
            }
            self.bufs[slot] = buf;
            self.done[slot] = true;
        }
        &self.bufs[slot]
    }
}

/// What an encoder has for one finding.
pub struct Context<'a> {
    /// The native finding.
    pub finding: &'a NativeFinding<'a>,
    /// Its rule's documentation, when known.
    pub doc: Option<&'a RuleDoc>,
    /// `enrich:`.
    pub enrich: &'a Enrichment,
}

impl Context<'_> {
    /// The alias of the account the event happened in.
    pub fn account_alias(&self) -> Option<&str> {
        self.enrich.alias(self.finding.event.account())
    }

    /// The alias of the principal's account.
    pub fn principal_alias(&self) -> Option<&str> {
        self.enrich
            .alias(self.finding.event.principal.account_id.as_deref())
    }
}

/// ATT&CK tactics by Sigma tag name: id and display name.
pub const TACTICS: &[(&str, &str, &str)] = &[
    ("reconnaissance", "TA0043", "Reconnaissance"),
    ("resource_development", "TA0042", "Resource Development"),
    ("initial_access", "TA0001", "Initial Access"),
    ("execution", "TA0002", "Execution"),
    ("persistence", "TA0003", "Persistence"),
    ("privilege_escalation", "TA0004", "Privilege Escalation"),
    ("defense_evasion", "TA0005", "Defense Evasion"),
    ("credential_access", "TA0006", "Credential Access"),
    ("discovery", "TA0007", "Discovery"),
    ("lateral_movement", "TA0008", "Lateral Movement"),
    ("collection", "TA0009", "Collection"),
    ("command_and_control", "TA0011", "Command and Control"),
    ("exfiltration", "TA0010", "Exfiltration"),
    ("impact", "TA0040", "Impact"),
];

/// The ATT&CK content of a rule's tags.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Attack<'a> {
    /// Tactics: (id, name).
    pub tactics: Vec<(&'static str, &'static str)>,
    /// Techniques (`T1078`), upper case.
    pub techniques: Vec<String>,
    /// Sub-techniques (`T1078.004`), upper case.
    pub sub_techniques: Vec<String>,
    /// Other tags.
    pub other: Vec<&'a str>,
}

/// Splits Sigma tags into ATT&CK tactics, techniques and the rest.
pub fn attack<'a>(tags: &'a [std::borrow::Cow<'a, str>]) -> Attack<'a> {
    let mut a = Attack::default();
    for t in tags {
        let t: &str = t;
        let Some(rest) = t.strip_prefix("attack.") else {
            a.other.push(t);
            continue;
        };
        let tactic = TACTICS.iter().find(|(tag, _, _)| {
            tag.len() == rest.len()
                && tag
                    .bytes()
                    .zip(rest.bytes())
                    .all(|(a, b)| a == b || (a == b'_' && b == b'-'))
        });
        if let Some(&(_, id, name)) = tactic {
            a.tactics.push((id, name));
        } else if rest.len() >= 5
            && rest.as_bytes()[0].eq_ignore_ascii_case(&b't')
            && rest[1..5].bytes().all(|b| b.is_ascii_digit())
        {
            let up = rest.to_ascii_uppercase();
            if up.len() > 5 {
                if !a.techniques.contains(&up[..5].to_string()) {
                    a.techniques.push(up[..5].to_string());
                }
                a.sub_techniques.push(up);
            } else if !a.techniques.contains(&up) {
                a.techniques.push(up);
            }
        } else {
            a.other.push(t);
        }
    }
    a
}

/// Epoch milliseconds of an RFC 3339 time.
pub fn epoch_ms(s: &str) -> Option<i64> {
    crate::state::parse_event_time(s).map(|us| us.div_euclid(1000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    #[test]
    fn tags_split_into_attack_parts() {
        let tags: Vec<Cow<'_, str>> = [
            "attack.privilege-escalation",
            "attack.defense_evasion",
            "attack.t1078.004",
            "attack.T1098",
            "cis.3.1",
            "attack.g0016",
        ]
        .into_iter()
        .map(Cow::Borrowed)
        .collect();
        let a = attack(&tags);
        assert_eq!(
            a.tactics,
            [
                ("TA0004", "Privilege Escalation"),
                ("TA0005", "Defense Evasion")
            ]
        );
        assert_eq!(a.techniques, ["T1078", "T1098"]);
        assert_eq!(a.sub_techniques, ["T1078.004"]);
        assert_eq!(a.other, ["cis.3.1", "attack.g0016"]);
    }

    #[test]
    fn enrichment_reads_numeric_account_ids() {
        let y: serde_yaml_ng::Value = serde_yaml_ng::from_str(
            "tags: {environment: prod, tier: 1}\naccount_aliases: {123456789012: prod-payments, '000011112222': sandbox, 11112222333: legacy}",
        )
        .expect("yaml");
        let e = Enrichment::from_yaml(&y).expect("enrich");
        assert_eq!(e.tags["environment"], "prod");
        assert_eq!(e.tags["tier"], "1");
        assert_eq!(e.alias(Some("123456789012")), Some("prod-payments"));
        assert_eq!(e.alias(Some("000011112222")), Some("sandbox"));
        assert_eq!(e.alias(Some("011112222333")), Some("legacy"));
        let bad: serde_yaml_ng::Value =
            serde_yaml_ng::from_str("account_aliases: {prod: x}").expect("yaml");
        assert!(
            Enrichment::from_yaml(&bad)
                .unwrap_err()
                .contains("12-digit")
        );
        let bad: serde_yaml_ng::Value = serde_yaml_ng::from_str("colour: x").expect("yaml");
        assert!(Enrichment::from_yaml(&bad).is_err());
    }
}
