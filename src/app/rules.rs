//! `trailhound rules validate | test | list | explain`: the rule author's and the rule
//! repository CI's commands. They print to stdout (no findings are involved) in the
//! format asked for, and exit 1 when validation or tests fail (`cli::exit`).

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::{AppError, load_placeholders};
use crate::cli::{
    ExplainArgs, ListArgs, ListFormat, RuleSetArgs, RulesCommand, TestArgs, TestFormat,
    ValidateArgs, ValidateFormat, exit,
};
use crate::rules::{
    LoadOptions, LoadReport, Origin, RuleError, RulePack, RulePathError, Selection, explain,
    selftest,
};

/// `trailhound rules …`.
pub fn run(cmd: &RulesCommand) -> Result<i32, AppError> {
    let mut out = io::stdout().lock();
    let code = match cmd {
        RulesCommand::Validate(a) => validate(a, &mut out),
        RulesCommand::Test(a) => test(a, &mut out),
        RulesCommand::List(a) => list(a, &mut out),
        RulesCommand::Explain(a) => explain_cmd(a, &mut out),
    };
    let code = match code {
        Err(AppError::StdoutClosed) => return Ok(exit::OK),
        other => other?,
    };
    w(out.flush())?;
    Ok(code)
}

/// A write to stdout; a closed pipe (`| head`) is [`AppError::StdoutClosed`], which
/// ends the command quietly.
fn w(r: io::Result<()>) -> Result<(), AppError> {
    r.map_err(|e| {
        if e.kind() == io::ErrorKind::BrokenPipe {
            AppError::StdoutClosed
        } else {
            AppError::Usage(format!("stdout: {e}"))
        }
    })
}

fn rule_set(args: &RuleSetArgs) -> LoadOptions {
    LoadOptions {
        builtin: args.builtin || (args.paths.is_empty() && !args.no_builtin),
        paths: args.paths.clone(),
    }
}

fn load(args: &RuleSetArgs) -> Result<(RulePack, LoadReport), AppError> {
    let ctx = load_placeholders(args.placeholders.as_deref())?;
    Ok(RulePack::load_with(&rule_set(args), &ctx)?)
}

/// Error or warning, as `rules validate` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Severity {
    Error,
    Warning,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One problem of one rule file.
#[derive(Debug, Clone)]
struct Diagnostic<'a> {
    severity: Severity,
    e: &'a RuleError,
}

/// The report's problems in file and line order: load errors are errors; the rest by
/// [`crate::rules::RuleErrorKind::is_warning`], all errors under `--strict`.
fn diagnostics(report: &LoadReport, strict: bool) -> Vec<Diagnostic<'_>> {
    let mut out: Vec<Diagnostic> = report
        .errors
        .iter()
        .map(|e| Diagnostic {
            severity: Severity::Error,
            e,
        })
        .chain(report.warnings.iter().map(|e| Diagnostic {
            severity: if e.kind.is_warning() && !strict {
                Severity::Warning
            } else {
                Severity::Error
            },
            e,
        }))
        .collect();
    let order = |f: &str| report.sources.iter().position(|s| s == f);
    out.sort_by(|a, b| {
        (order(&a.e.file), a.e.line, a.e.col).cmp(&(order(&b.e.file), b.e.line, b.e.col))
    });
    out
}

fn location(e: &RuleError) -> String {
    if e.line == 0 {
        e.file.clone()
    } else {
        format!("{}:{}:{}", e.file, e.line, e.col)
    }
}

fn validate(a: &ValidateArgs, out: &mut impl Write) -> Result<i32, AppError> {
    let (pack, report) = load(&a.set)?;
    let diags = diagnostics(&report, a.set.strict);
    let errors = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let warnings = diags.len() - errors;
    match a.format {
        ValidateFormat::Text => {
            // One line per problem: file names, keys and values from the rule files are
            // written with their control characters escaped.
            let one_line = crate::logging::escape_controls;
            for d in &diags {
                let line = format!(
                    "{}: {}: {} [{}]",
                    location(d.e),
                    d.severity.as_str(),
                    d.e.kind,
                    d.e.kind.code()
                );
                w(writeln!(out, "{}", one_line(&line)))?;
            }
            for (f, why) in &report.skipped {
                let line = format!("{f}: note: not loaded: {why}");
                w(writeln!(out, "{}", one_line(&line)))?;
            }
            for (id, file, by) in &report.superseded {
                let line = format!("{file}: note: rule {id} is obsoleted by {by}; only {by} runs");
                w(writeln!(out, "{}", one_line(&line)))?;
            }
            w(writeln!(
                out,
                "{} rules and {} filters from {} files: {} errors, {} warnings, {} not loaded, {} obsoleted",
                pack.rules().len(),
                report.filters,
                report.files,
                errors,
                warnings,
                report.skipped.len(),
                report.superseded.len()
            ))?;
        }
        ValidateFormat::Json => {
            let v = json!({
                "files": report.files,
                "rules": pack.rules().len(),
                "filters": report.filters,
                "errors": errors,
                "warnings": warnings,
                "diagnostics": diags.iter().map(|d| json!({
                    "file": d.e.file,
                    "line": d.e.line,
                    "col": d.e.col,
                    "severity": d.severity.as_str(),
                    "check": d.e.kind.code(),
                    "message": d.e.kind.to_string(),
                })).collect::<Vec<_>>(),
                "not_loaded": report.skipped.iter().map(|(f, why)| json!({"file": f, "reason": why})).collect::<Vec<_>>(),
                "obsoleted": report.superseded.iter().map(|(id, f, by)| json!({"id": id, "file": f, "by": by})).collect::<Vec<_>>(),
            });
            w(writeln!(out, "{v:#}"))?;
        }
        ValidateFormat::Sarif => w(writeln!(out, "{:#}", sarif(&diags, &report)))?,
        ValidateFormat::Junit => w(out.write_all(junit_validate(&diags, &report).as_bytes()))?,
    }
    Ok(if errors > 0 {
        exit::FINDINGS_OR_FAILURES
    } else {
        exit::OK
    })
}

/// What each check means, for SARIF's rule descriptions (and docs/rules-ci.md).
const CHECKS: &[(&str, &str)] = &[
    ("yaml", "The file is not well-formed YAML."),
    (
        "schema",
        "The document does not match schemas/rule.schema.json.",
    ),
    ("missing-key", "A required key is missing."),
    ("type", "A value has the wrong type."),
    (
        "unknown-modifier",
        "A field modifier Sigma does not define.",
    ),
    ("modifier-conflict", "Modifiers that cannot be combined."),
    (
        "undefined-selection",
        "The condition names a selection that does not exist.",
    ),
    ("condition", "The condition does not parse."),
    ("field-path", "A field name is not a valid path."),
    ("regex", "A regular expression does not compile."),
    ("value", "A value does not compile for its modifiers."),
    ("level", "The level is not a Sigma level."),
    ("unsupported", "A Sigma feature this version does not run."),
    (
        "ignored-timeframe",
        "A timeframe in a single-record rule has no effect.",
    ),
    (
        "metric-filter-pattern",
        "A CloudWatch Logs metric-filter pattern does not parse.",
    ),
    (
        "correlation",
        "A correlation rule is malformed or names rules that are not loaded.",
    ),
    (
        "unknown-key",
        "A top-level key Sigma does not define (custom keys are allowed; an error under --strict).",
    ),
    ("duplicate-id", "Two rules share an id."),
    ("io", "The file cannot be read."),
    (
        "tag",
        "A tag does not follow its namespace's format (Sigma tags appendix).",
    ),
    (
        "tag-namespace",
        "A tag namespace the Sigma tags appendix does not define.",
    ),
    ("duplicate-tag", "The same tag twice in one rule."),
    (
        "unused-selection",
        "A selection the condition never uses, so it never affects a match.",
    ),
    (
        "unresolved-reference",
        "A filter names a rule that is not loaded.",
    ),
    (
        "not-loaded",
        "A document that does not apply to CloudTrail (another logsource).",
    ),
    (
        "obsoleted",
        "A rule left out because a loaded rule obsoletes it (related: obsolete).",
    ),
];

fn sarif(diags: &[Diagnostic], report: &LoadReport) -> Value {
    let rules: Vec<Value> = CHECKS
        .iter()
        .map(|(id, text)| json!({"id": id, "shortDescription": {"text": text}}))
        .collect();
    let mut results: Vec<Value> = diags
        .iter()
        .map(|d| {
            let mut physical = json!({"artifactLocation": {"uri": sarif_uri(&d.e.file)}});
            if d.e.line > 0 {
                physical["region"] = json!({"startLine": d.e.line, "startColumn": d.e.col.max(1)});
            }
            json!({
                "ruleId": d.e.kind.code(),
                "level": d.severity.as_str(),
                "message": {"text": d.e.kind.to_string()},
                "locations": [{"physicalLocation": physical}],
            })
        })
        .collect();
    for (f, why) in &report.skipped {
        results.push(json!({
            "ruleId": "not-loaded",
            "level": "note",
            "message": {"text": format!("not loaded: {why}")},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": sarif_uri(f)}}}],
        }));
    }
    for (id, f, by) in &report.superseded {
        results.push(json!({
            "ruleId": "obsoleted",
            "level": "note",
            "message": {"text": format!("rule {id} is obsoleted by {by}; only {by} runs")},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": sarif_uri(f)}}}],
        }));
    }
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "trailhound",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://github.com/trailhound/trailhound",
                "rules": rules,
            }},
            "results": results,
        }],
    })
}

/// A SARIF artifact URI: relative paths as they are (with `/`), built-in files under
/// `rules/` (where they live in the source tree).
fn sarif_uri(file: &str) -> String {
    match file.strip_prefix("builtin:") {
        Some(name) => format!("rules/{name}"),
        None => {
            let path = file.replace('\\', "/");
            let enc: String = percent_encoding::utf8_percent_encode(&path, URI_PATH).collect();
            if path.starts_with('/') {
                format!("file://{enc}")
            } else {
                enc
            }
        }
    }
}

/// Bytes escaped in a SARIF artifact URI path (RFC 3986 path characters stay).
const URI_PATH: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

fn xml(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => {}
            c => o.push(c),
        }
    }
    o
}

/// One `<testcase>` per rule file: failed when it has an error, with every problem in
/// the failure text; warnings go to `<system-out>`.
fn junit_validate(diags: &[Diagnostic], report: &LoadReport) -> String {
    let mut cases = String::new();
    let mut failures = 0;
    let mut skipped = 0;
    for f in &report.sources {
        let mine: Vec<&Diagnostic> = diags.iter().filter(|d| &d.e.file == f).collect();
        let errs: Vec<String> = mine
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| format!("{}: {} [{}]", location(d.e), d.e.kind, d.e.kind.code()))
            .collect();
        let warns: Vec<String> = mine
            .iter()
            .filter(|d| d.severity == Severity::Warning)
            .map(|d| format!("{}: warning: {}", location(d.e), d.e.kind))
            .collect();
        let _ = writeln!(
            cases,
            "    <testcase classname=\"rules validate\" name=\"{}\">",
            xml(f)
        );
        if let Some(first) = errs.first() {
            failures += 1;
            let _ = writeln!(
                cases,
                "      <failure message=\"{}\" type=\"validation\">{}</failure>",
                xml(first),
                xml(&errs.join("\n"))
            );
        } else if let Some((_, why)) = report.skipped.iter().find(|(s, _)| s == f) {
            skipped += 1;
            let _ = writeln!(cases, "      <skipped message=\"{}\"/>", xml(why));
        }
        if !warns.is_empty() {
            let _ = writeln!(
                cases,
                "      <system-out>{}</system-out>",
                xml(&warns.join("\n"))
            );
        }
        cases.push_str("    </testcase>\n");
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"trailhound rules validate\" tests=\"{n}\" failures=\"{failures}\" skipped=\"{skipped}\">\n  <testsuite name=\"rules validate\" tests=\"{n}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\">\n{cases}  </testsuite>\n</testsuites>\n",
        n = report.sources.len()
    )
}

fn test(a: &TestArgs, out: &mut impl Write) -> Result<i32, AppError> {
    let opts = rule_set(&a.set);
    let (pack, report) = load(&a.set)?;
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
    let untested = selftest::untested(&pack, &files);
    let why = |r: &selftest::CaseResult| match (&r.error, r.expect) {
        (Some(e), _) => e.clone(),
        (None, Some(selftest::Expect::Match)) => "expected a match, got none".into(),
        (None, _) => format!("expected no match, matched {}", r.matched.join(", ")),
    };
    let failed = results.iter().filter(|r| !r.passed()).count();
    match a.format {
        TestFormat::Text => {
            for e in &report.errors {
                w(writeln!(
                    out,
                    "{}: error: {} [{}]",
                    location(e),
                    e.kind,
                    e.kind.code()
                ))?;
            }
            for r in results.iter().filter(|r| !r.passed()) {
                w(writeln!(out, "FAIL {}: {}: {}", r.location, r.name, why(r)))?;
            }
            for o in &untested {
                w(writeln!(out, "untested: {o} has no tests file"))?;
            }
            w(writeln!(
                out,
                "{} cases in {} files: {} passed, {} failed; {} rule files without tests; {} rule errors",
                results.len(),
                files.len(),
                results.len() - failed,
                failed,
                untested.len(),
                report.errors.len()
            ))?;
        }
        TestFormat::Json => {
            let v = json!({
                "cases": results.len(),
                "files": files.len(),
                "passed": results.len() - failed,
                "failed": failed,
                "untested": untested.iter().map(|o| o.to_string()).collect::<Vec<_>>(),
                "rule_errors": report.errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "results": results.iter().map(|r| json!({
                    "file": r.location,
                    "name": r.name,
                    "expect": match r.expect {
                        Some(selftest::Expect::Match) => "match",
                        Some(selftest::Expect::NoMatch) => "no_match",
                        None => "",
                    },
                    "matched": r.matched,
                    "passed": r.passed(),
                    "error": (!r.passed()).then(|| why(r)),
                })).collect::<Vec<_>>(),
            });
            w(writeln!(out, "{v:#}"))?;
        }
        TestFormat::Junit => {
            let mut suites = String::new();
            let mut total = 0;
            for f in &files {
                let mine: Vec<&selftest::CaseResult> = results
                    .iter()
                    .filter(|r| r.location == f.location)
                    .collect();
                let fails = mine.iter().filter(|r| !r.passed()).count();
                total += mine.len();
                let _ = writeln!(
                    suites,
                    "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{fails}\" errors=\"0\">",
                    xml(&f.location),
                    mine.len()
                );
                for r in mine {
                    let _ = write!(
                        suites,
                        "    <testcase classname=\"{}\" name=\"{}\"",
                        xml(&f.rule_origin.to_string()),
                        xml(&r.name)
                    );
                    if r.passed() {
                        suites.push_str("/>\n");
                    } else {
                        let _ = writeln!(
                            suites,
                            ">\n      <failure message=\"{m}\" type=\"expectation\">{m}</failure>\n    </testcase>",
                            m = xml(&why(r))
                        );
                    }
                }
                suites.push_str("  </testsuite>\n");
            }
            // Rule errors fail; rule files without tests are reported as skipped (they
            // do not fail the run, as in the text output).
            let errors = report.errors.len();
            let extra = errors + untested.len();
            if extra > 0 {
                let _ = writeln!(
                    suites,
                    "  <testsuite name=\"rule files\" tests=\"{extra}\" failures=\"{errors}\" errors=\"0\" skipped=\"{}\">",
                    untested.len()
                );
                for e in &report.errors {
                    let _ = writeln!(
                        suites,
                        "    <testcase classname=\"rule files\" name=\"{}\">\n      <failure message=\"{m}\" type=\"rule-error\">{m}</failure>\n    </testcase>",
                        xml(&e.file),
                        m = xml(&e.to_string())
                    );
                }
                for o in &untested {
                    let _ = writeln!(
                        suites,
                        "    <testcase classname=\"rule files\" name=\"{}\">\n      <skipped message=\"no tests file\"/>\n    </testcase>",
                        xml(&o.to_string())
                    );
                }
                suites.push_str("  </testsuite>\n");
            }
            w(write!(
                out,
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"trailhound rules test\" tests=\"{}\" failures=\"{}\">\n{suites}</testsuites>\n",
                total + extra,
                failed + errors
            ))?;
        }
    }
    // Untested rule files are reported but, as before, do not fail the run.
    let bad = failed > 0 || !report.errors.is_empty();
    Ok(if bad {
        exit::FINDINGS_OR_FAILURES
    } else {
        exit::OK
    })
}

fn list(a: &ListArgs, out: &mut impl Write) -> Result<i32, AppError> {
    let mut set = a.set.clone();
    if !a.tuning.filters.is_empty() && set.paths.is_empty() && !set.no_builtin {
        // Filters alone do not replace the built-in pack they are meant for.
        set.builtin = true;
    }
    set.paths.extend(a.tuning.filters.iter().cloned());
    let (pack, report) = load(&set)?;
    super::log_report(&report, a.set.strict);
    let sel = Selection {
        only: a.tuning.rule.clone(),
        exclude: a.tuning.exclude_rule.clone(),
        tags: a.tuning.tags.clone(),
        min_level: a.min_level,
    };
    let (pack, unknown) = pack.select(&sel);
    for u in &unknown {
        tracing::warn!("no loaded rule has id or name '{u}'");
    }
    let kind = |i: usize| {
        let r = &pack.rules()[i];
        if r.alarm.is_some() {
            format!("{}+alarm", r.kind.as_str())
        } else if pack.is_silent(i as u32) {
            format!("{}/silent", r.kind.as_str())
        } else {
            r.kind.as_str().to_string()
        }
    };
    match a.format {
        ListFormat::Json => {
            let v: Vec<Value> = pack
                .rules()
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    json!({
                        "id": r.meta.id,
                        "name": r.meta.name,
                        "title": r.meta.title,
                        "level": r.meta.level.as_str(),
                        "status": r.meta.status,
                        "tags": r.meta.tags,
                        "kind": r.kind.as_str(),
                        "alarm": r.alarm.is_some(),
                        "silent": pack.is_silent(i as u32),
                        "filters": r.filters().iter().map(|f| &f.id).collect::<Vec<_>>(),
                        "file": r.meta.origin.to_string(),
                        "line": r.meta.line,
                    })
                })
                .collect();
            w(writeln!(out, "{:#}", Value::Array(v)))?;
        }
        ListFormat::Table => {
            // One line per rule: ids, titles, tags and file names from the rule files are
            // written with their control characters escaped.
            let one_line = |s: &str| crate::logging::escape_controls(s).into_owned();
            let rows: Vec<[String; 6]> = pack
                .rules()
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    [
                        one_line(&r.meta.id),
                        r.meta.level.as_str().to_string(),
                        kind(i),
                        one_line(&r.meta.title),
                        one_line(&r.meta.tags.join(",")),
                        one_line(&r.meta.origin.to_string()),
                    ]
                })
                .collect();
            let head = ["ID", "LEVEL", "KIND", "TITLE", "TAGS", "FILE"];
            let mut width = head.map(str::len);
            for row in &rows {
                for (k, c) in row.iter().enumerate() {
                    width[k] = width[k].max(c.chars().count());
                }
            }
            let line = |cells: [&str; 6]| {
                let mut s = String::new();
                for (k, c) in cells.iter().enumerate() {
                    if k == 5 {
                        s.push_str(c);
                    } else {
                        let _ = write!(s, "{c:<w$}  ", w = width[k]);
                    }
                }
                s
            };
            w(writeln!(out, "{}", line(head)))?;
            for row in &rows {
                w(writeln!(
                    out,
                    "{}",
                    line([&row[0], &row[1], &row[2], &row[3], &row[4], &row[5]])
                ))?;
            }
        }
    }
    Ok(exit::OK)
}

/// Reads EVENT: one JSON record, `{"Records":[…]}`, a JSON array, or NDJSON; gzip
/// detected. Returns (label, record) pairs.
fn read_events(path: &Path) -> Result<Vec<(String, Value)>, AppError> {
    let fail = |m: String| AppError::Usage(format!("{}: {m}", path.display()));
    let mut bytes = Vec::new();
    if path == Path::new("-") {
        io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| fail(e.to_string()))?;
    } else {
        bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    }
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut plain = Vec::new();
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_end(&mut plain)
            .map_err(|e| fail(format!("gzip: {e}")))?;
        bytes = plain;
    }
    if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
        return Ok(match v {
            Value::Object(mut m) if m.get("Records").is_some_and(Value::is_array) => {
                let Some(Value::Array(recs)) = m.remove("Records") else {
                    return Ok(Vec::new());
                };
                recs.into_iter()
                    .enumerate()
                    .map(|(i, r)| (format!("Records[{i}]"), r))
                    .collect()
            }
            Value::Array(recs) => recs
                .into_iter()
                .enumerate()
                .map(|(i, r)| (format!("[{i}]"), r))
                .collect(),
            v => vec![("record".to_string(), v)],
        });
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v = serde_json::from_str(line)
            .map_err(|e| fail(format!("line {}: not JSON: {e}", n + 1)))?;
        out.push((format!("line {}", n + 1), v));
    }
    Ok(out)
}

fn explain_cmd(a: &ExplainArgs, out: &mut impl Write) -> Result<i32, AppError> {
    let as_file = Path::new(&a.rule);
    let rule_is_file = as_file.is_file();
    let mut paths: Vec<PathBuf> = a.rules.clone();
    if rule_is_file {
        paths.push(as_file.to_path_buf());
    }
    let ctx = load_placeholders(a.placeholders.as_deref())?;
    let opts = LoadOptions {
        builtin: !a.no_builtin,
        paths,
    };
    let (pack, report) = RulePack::load_with(&opts, &ctx)?;
    super::log_report(&report, false);
    let wanted: Vec<usize> = pack
        .rules()
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            if rule_is_file {
                matches!(&r.meta.origin, Origin::File(p) if p == as_file)
            } else {
                r.meta.is_named(&a.rule)
                    || matches!(&r.meta.origin, Origin::Builtin(n)
                        if n.strip_suffix(".yml") == Some(a.rule.as_str()) || *n == a.rule)
            }
        })
        .map(|(i, _)| i)
        .collect();
    if wanted.is_empty() {
        return Err(AppError::Usage(format!(
            "no loaded rule has id or name '{}' (give a rule file, or add --rules PATH; `trailhound rules list` shows what loads)",
            a.rule
        )));
    }
    let events = read_events(&a.event)?;
    let mut parser = crate::event::RecordParser::new();
    let mut all: Vec<Value> = Vec::new();
    for (label, rec) in &events {
        let bytes = serde_json::to_vec(rec).map_err(|e| AppError::Usage(e.to_string()))?;
        let explained: Result<Vec<explain::Explanation>, String> =
            parser.parse(&bytes, |root| match root {
                Ok(root) if root.as_object().is_some() => Ok(wanted
                    .iter()
                    .map(|&i| explain::explain(&pack, i, root))
                    .collect()),
                Ok(_) => Err("not a JSON object".to_string()),
                Err(e) => Err(e.to_string()),
            });
        let explained = match explained {
            Ok(x) => x,
            Err(e) => {
                w(writeln!(out, "{label}: skipped: {e}"))?;
                continue;
            }
        };
        match a.format {
            ListFormat::Json => {
                for x in explained {
                    let mut v = serde_json::to_value(&x).unwrap_or(Value::Null);
                    v["event"] = json!({
                        "at": label,
                        "eventID": rec.get("eventID"),
                        "eventName": rec.get("eventName"),
                    });
                    all.push(v);
                }
            }
            ListFormat::Table => {
                // The record's and the rules' text, one line each: control characters
                // escaped.
                let name = rec.get("eventName").and_then(Value::as_str).unwrap_or("-");
                let (label, name) = (esc(label), esc(name));
                for x in &explained {
                    let mut s = String::new();
                    render(&mut s, x, &label, &name, 0);
                    w(out.write_all(s.as_bytes()))?;
                }
            }
        }
    }
    if a.format == ListFormat::Json {
        w(writeln!(out, "{:#}", Value::Array(all)))?;
    }
    Ok(exit::OK)
}

/// Text from a record or a rule file with its control characters escaped.
fn esc(s: &str) -> std::borrow::Cow<'_, str> {
    crate::logging::escape_controls(s)
}

fn mark(b: bool) -> &'static str {
    if b { "✓" } else { "✗" }
}

fn render(s: &mut String, x: &explain::Explanation, label: &str, name: &str, depth: usize) {
    let pad = "  ".repeat(depth);
    let verdict = match (x.matched, x.kind) {
        (true, "correlation") => "COUNTS (this record feeds the correlation)",
        (false, "correlation") => "does not count",
        (true, _) if x.silent => "MATCH (silent: feeds a correlation or alarm only)",
        (true, _) => "MATCH",
        (false, _) => "no match",
    };
    if depth == 0 {
        let _ = writeln!(
            s,
            "{label} {name}: {verdict}: {} [{}]",
            esc(&x.title),
            esc(&x.id)
        );
        let _ = writeln!(s, "  rule file: {}", esc(&x.origin.to_string()));
    } else {
        let _ = writeln!(
            s,
            "{pad}{} {} [{}]: {verdict}",
            mark(x.matched),
            esc(&x.title),
            esc(&x.id)
        );
    }
    if let Some(d) = &x.detection {
        for c in &d.condition {
            let _ = writeln!(s, "{pad}  condition: {}", esc(&c.to_string()));
        }
        let _ = writeln!(s, "{pad}  evaluated: {}", esc(&d.evaluated.to_string()));
        for sel in &d.selections {
            render_selection(s, sel, &pad);
        }
    }
    if let Some(p) = &x.pattern {
        let _ = writeln!(s, "{pad}  pattern: {}", p.pattern);
        for t in &p.tests {
            let _ = writeln!(s, "{pad}    {} {}", mark(t.held), t.test);
        }
        if let Some(a) = &p.alarm {
            let _ = writeln!(
                s,
                "{pad}  alarm: a match is one data point; ALARM when the count per {} is {} ({} of {} periods)",
                a["period"].as_str().unwrap_or("?"),
                a["threshold"].as_str().unwrap_or("?"),
                a["datapoints_to_alarm"],
                a["evaluation_periods"]
            );
        }
    }
    if let Some(c) = &x.correlation {
        let _ = writeln!(
            s,
            "{pad}  {} over {}{}, condition {}; one record alone decides nothing, so each rule it reads is explained:",
            c.kind,
            c.timespan,
            if c.group_by.is_empty() {
                String::new()
            } else {
                format!(" grouped by {}", c.group_by.join(", "))
            },
            c.condition
        );
        for i in &c.inputs {
            render(s, i, label, name, depth + 2);
        }
    }
    for f in &x.filters {
        let _ = writeln!(
            s,
            "{pad}  filter {} [{}]: {}",
            esc(&f.title),
            esc(&f.id),
            if f.matched {
                "condition holds, the rule may fire"
            } else {
                "condition does not hold, so the rule is silenced for this record"
            }
        );
        let _ = writeln!(
            s,
            "{pad}    evaluated: {}",
            esc(&f.detection.evaluated.to_string())
        );
        for sel in &f.detection.selections {
            render_selection(s, sel, &format!("{pad}  "));
        }
    }
}

fn render_selection(s: &mut String, sel: &crate::rules::sigma::compile::SelectionTrace, pad: &str) {
    let _ = writeln!(s, "{pad}  {} {}", mark(sel.matched), esc(&sel.name));
    if sel.keywords {
        let _ = writeln!(
            s,
            "{pad}      (keywords, searched in every value of the record)"
        );
    }
    let many = sel.groups.len() > 1;
    for (g, tests) in sel.groups.iter().enumerate() {
        let inner = if many {
            let held = tests.iter().all(|t| t.held);
            let _ = writeln!(s, "{pad}      {} alternative {}", mark(held), g + 1);
            format!("{pad}        ")
        } else {
            format!("{pad}      ")
        };
        for t in tests {
            let value = match &t.value {
                Some(v) => format!("   (record: {v})"),
                None => "   (record: absent)".to_string(),
            };
            let _ = writeln!(s, "{inner}{} {}{}", mark(t.held), esc(&t.test), esc(&value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[test]
    fn the_list_table_escapes_control_characters_of_titles_tags_and_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("evil\u{1b}[2J\n.yml");
        let rule = "title: \"Evil \\e[31mtitle\\r\\nFORGED\\x07\"\n\
                    id: 0a0a0a0a-0000-4000-8000-0000000000c1\nstatus: test\n\
                    tags: [\"attack.t1\\e[0m\"]\n\
                    logsource: {product: aws, service: cloudtrail}\n\
                    detection:\n  sel:\n    eventName: GetPasswordData\n  condition: sel\n\
                    level: high\n";
        std::fs::write(&file, rule).expect("write rule");
        let cli = crate::cli::Cli::try_parse_from([
            std::ffi::OsStr::new("trailhound"),
            "rules".as_ref(),
            "list".as_ref(),
            "--no-builtin".as_ref(),
            file.as_os_str(),
        ])
        .expect("arguments");
        let Some(crate::cli::Command::Rules(RulesCommand::List(a))) = cli.command else {
            panic!("not rules list");
        };
        let mut out = Vec::new();
        assert_eq!(list(&a, &mut out).ok(), Some(exit::OK));
        let text = String::from_utf8(out).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text:?}");
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
        assert!(
            lines[1].contains("Evil \\x1b[31mtitle\\r\\nFORGED\\x07")
                && lines[1].contains("attack.t1\\x1b[0m")
                && lines[1].ends_with("evil\\x1b[2J\\n.yml"),
            "{text:?}"
        );
    }

    #[test]
    fn explain_escapes_control_characters_of_the_record_and_the_rule() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rule = dir.path().join("evil\u{1b}[2J.yml");
        std::fs::write(
            &rule,
            "title: \"Evil \\e[31mtitle\\r\\nFORGED\"\n\
             id: 0a0a0a0a-0000-4000-8000-0000000000c2\nstatus: test\n\
             logsource: {product: aws, service: cloudtrail}\n\
             detection:\n  sel:\n    eventName|startswith: \"Get\\x07\"\n  condition: sel\n\
             level: high\n",
        )
        .expect("write rule");
        let event = dir.path().join("event.json");
        std::fs::write(&event, r#"{"eventName":"Get\u0007\u001b[2J\r\nFORGED"}"#)
            .expect("write event");
        let cli = crate::cli::Cli::try_parse_from([
            std::ffi::OsStr::new("trailhound"),
            "rules".as_ref(),
            "explain".as_ref(),
            rule.as_os_str(),
            event.as_os_str(),
        ])
        .expect("arguments");
        let Some(crate::cli::Command::Rules(RulesCommand::Explain(a))) = cli.command else {
            panic!("not rules explain");
        };
        let mut out = Vec::new();
        assert_eq!(explain_cmd(&a, &mut out).ok(), Some(exit::OK));
        let text = String::from_utf8(out).expect("utf-8");
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
        let first = text.lines().next().unwrap_or_default();
        assert!(
            first.contains("Get\\x07\\x1b[2J\\r\\nFORGED: MATCH: Evil \\x1b[31mtitle\\r\\nFORGED"),
            "{text}"
        );
        assert!(text.contains("evil\\x1b[2J.yml"), "{text}");
    }
}
