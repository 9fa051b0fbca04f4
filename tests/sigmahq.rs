//! The SigmaHQ AWS CloudTrail rules, vendored unchanged under tests/sigmahq/rules/:
//! every rule loads, passes its hand-built cases (tests/sigmahq/cases/, each checked
//! against the pySigma + DuckDB oracle by scripts/oracle.sh), and matches exactly the
//! records the oracle matches on the real public samples.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use trailhound::event::RecordParser;
use trailhound::rules::selftest::{self, Expect, TestFile};
use trailhound::rules::{CompileContext, LoadOptions, Origin, RulePack};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn sigmahq_pack() -> RulePack {
    let opts = LoadOptions {
        builtin: false,
        paths: vec![root().join("tests/sigmahq/rules")],
    };
    let (pack, report) = RulePack::load(&opts).expect("rules dir");
    assert!(
        report.errors.is_empty(),
        "load errors: {:#?}",
        report.errors
    );
    assert!(report.skipped.is_empty(), "skipped: {:#?}", report.skipped);
    assert!(
        report.warnings.is_empty(),
        "warnings: {:#?}",
        report.warnings
    );
    pack
}

fn rule_files() -> Vec<PathBuf> {
    trailhound::fswalk::files_under(
        &root().join("tests/sigmahq/rules"),
        &trailhound::rules::is_rule_file,
    )
    .expect("list rules")
}

#[test]
fn all_57_sigmahq_aws_rules_load_unchanged() {
    let pack = sigmahq_pack();
    let files = rule_files();
    println!(
        "{} SigmaHQ AWS rule files, {} rules loaded",
        files.len(),
        pack.rules().len()
    );
    assert_eq!(files.len(), 57);
    assert_eq!(pack.rules().len(), 57);
    // Metadata is kept as written.
    for r in pack.rules() {
        assert!(!r.meta.title.is_empty());
        assert!(r.meta.id.len() == 36, "{}: id {}", r.meta.title, r.meta.id);
        assert!(r.meta.author.is_some(), "{}: author", r.meta.title);
        assert!(!r.meta.references.is_empty() || r.meta.description.is_some());
    }
}

#[test]
fn every_sigmahq_rule_fires_on_its_case_and_not_on_its_near_miss() {
    let pack = sigmahq_pack();
    let cases_dir = root().join("tests/sigmahq/cases");
    let mut files = Vec::new();
    for rule in rule_files() {
        let stem = rule
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("stem")
            .to_string();
        let cases = cases_dir.join(format!("{stem}.tests.yml"));
        let text =
            std::fs::read_to_string(&cases).unwrap_or_else(|e| panic!("{}: {e}", cases.display()));
        files.push(TestFile {
            rule_origin: Origin::File(rule.clone()),
            location: cases.display().to_string(),
            base_dir: Some(cases_dir.clone()),
            text,
        });
    }
    let results = selftest::run(&pack, &files);
    let mut per_file: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    for r in &results {
        let e = per_file.entry(r.location.as_str()).or_default();
        match r.expect {
            Some(Expect::Match) => e.0 += 1,
            Some(Expect::NoMatch) => e.1 += 1,
            None => {}
        }
        if !r.passed() {
            failures.push(format!(
                "{}: {}: expect {:?}, matched {:?}, error {:?}",
                r.location, r.name, r.expect, r.matched, r.error
            ));
        }
    }
    println!("{} cases over {} rules", results.len(), per_file.len());
    assert!(
        failures.is_empty(),
        "{} failing cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(per_file.len(), 57);
    for (f, (m, n)) in per_file {
        assert!(m >= 1 && n >= 1, "{f}: {m} match and {n} no_match cases");
    }
}

/// The oracle's matches for one sample: rule id → 0-based line numbers.
fn oracle_matches(path: &Path) -> BTreeMap<String, BTreeSet<usize>> {
    let text = std::fs::read_to_string(path).expect("oracle output");
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("oracle line");
            let id = v["rule_id"].as_str().expect("rule_id").to_string();
            let lines = v["matches"]
                .as_array()
                .expect("matches")
                .iter()
                .map(|n| n.as_u64().expect("line") as usize)
                .collect();
            (id, lines)
        })
        .collect()
}

fn sample_lines(name: &str) -> Vec<Vec<u8>> {
    let path = root()
        .join("tests/data/cloudtrail")
        .join(format!("{name}.ndjson.gz"));
    let mut text = Vec::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).expect("sample"))
        .read_to_end(&mut text)
        .expect("gunzip");
    let mut lines: Vec<Vec<u8>> = text.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    if lines.last().is_some_and(Vec::is_empty) {
        lines.pop();
    }
    lines
}

/// Differential test against the independent reference (pySigma parsing + DuckDB
/// evaluation). `scripts/oracle.sh` (run by `scripts/test.sh`) writes its answers to
/// target/oracle/; `TRAILHOUND_ORACLE=required` makes their absence a failure.
#[test]
fn sigmahq_rules_agree_with_the_oracle_on_every_real_record() {
    let dir = root().join("target/oracle");
    let samples = [
        "grycap-cloudtrail-tracker",
        "invictus-aws-dataset",
        "otrf-security-datasets",
        "permiso-cartographer",
        "stratus-red-team",
    ];
    let required = std::env::var("TRAILHOUND_ORACLE").is_ok_and(|v| v == "required");
    if !dir.join(format!("{}.matches.ndjson", samples[0])).exists() {
        assert!(
            !required,
            "target/oracle/ is missing: run scripts/oracle.sh"
        );
        eprintln!(
            "skipped: no oracle output in target/oracle (run scripts/oracle.sh, or ./scripts/test.sh)"
        );
        return;
    }
    let pack = sigmahq_pack();
    let mut parser = RecordParser::new();
    let (mut scratch, mut hits) = (Vec::new(), Vec::new());
    let mut disagreements = Vec::new();
    let (mut records, mut matches) = (0usize, 0usize);
    for s in samples {
        let oracle = oracle_matches(&dir.join(format!("{s}.matches.ndjson")));
        assert_eq!(
            oracle.len(),
            57,
            "{s}: oracle evaluated {} rules",
            oracle.len()
        );
        let mut ours: BTreeMap<String, BTreeSet<usize>> = pack
            .rules()
            .iter()
            .map(|r| (r.meta.id.clone(), BTreeSet::new()))
            .collect();
        for (i, line) in sample_lines(s).iter().enumerate() {
            records += 1;
            parser.parse(line, |root| {
                let root = root.expect("real records are valid JSON");
                pack.evaluate(root, &mut scratch, &mut hits);
            });
            for &h in &hits {
                let id = &pack.rules()[h as usize].meta.id;
                ours.entry(id.clone()).or_default().insert(i);
            }
        }
        for (id, want) in &oracle {
            let got = ours.get(id).cloned().unwrap_or_default();
            matches += want.len();
            if &got != want {
                let only_ours: Vec<_> = got.difference(want).collect();
                let only_oracle: Vec<_> = want.difference(&got).collect();
                disagreements.push(format!(
                    "{s}: rule {id}: only trailhound {only_ours:?}, only oracle {only_oracle:?}"
                ));
            }
        }
    }
    println!(
        "{records} real records, {matches} (rule, record) matches from the oracle, {} disagreements",
        disagreements.len()
    );
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

#[test]
fn rules_beyond_the_spec_are_reported_not_fatal() {
    // Legacy aggregations (`| count() > N`) are errors with a position; the rest loads.
    let opts = LoadOptions {
        builtin: false,
        paths: vec![root().join("tests/sigmahq/extra/unsupported-aws")],
    };
    let (pack, report) = RulePack::load(&opts).expect("dir");
    let agg = report
        .errors
        .iter()
        .filter(|e| e.to_string().contains("correlation rule"))
        .count();
    println!(
        "{} rules loaded, {} errors ({agg} aggregations)",
        pack.rules().len(),
        report.errors.len()
    );
    assert!(agg >= 6, "{:#?}", report.errors);
    assert!(report.errors.iter().all(|e| e.line > 0 && e.col > 0));
    // `expand` placeholders come from the placeholder configuration.
    let dir = root().join("tests/sigmahq/extra/rules-placeholder-aws");
    let (_, report) = RulePack::load(&LoadOptions {
        builtin: false,
        paths: vec![dir.clone()],
    })
    .expect("dir");
    assert_eq!(report.errors.len(), 1, "{:#?}", report.errors);
    assert!(
        report.errors[0].to_string().contains("placeholder"),
        "{}",
        report.errors[0]
    );
    let text = std::fs::read_to_string(
        trailhound::fswalk::files_under(&dir, &trailhound::rules::is_rule_file).expect("ls")[0]
            .clone(),
    )
    .expect("rule");
    let names: BTreeSet<String> = text
        .split('%')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, n)| n.to_string())
        .collect();
    let mut ctx = CompileContext::default();
    for n in names {
        ctx.placeholders.insert(n, vec!["US".into(), "CA".into()]);
    }
    let (pack, report) = RulePack::load_with(
        &LoadOptions {
            builtin: false,
            paths: vec![dir],
        },
        &ctx,
    )
    .expect("dir");
    assert!(report.errors.is_empty(), "{:#?}", report.errors);
    assert_eq!(pack.rules().len(), 1);
}

#[test]
#[ignore = "diagnostic: prints the SigmaHQ rules the index cannot file"]
fn print_always_rules() {
    let pack = sigmahq_pack();
    for &i in pack.index().always() {
        let r = &pack.rules()[i as usize];
        println!("{} {}", r.meta.title, r.meta.origin);
    }
}
