//! The bodies of the fuzz targets (`fuzz/fuzz_targets/*.rs`) and of their regression
//! tests (`tests/fuzz_regressions.rs`), in one place so a crash found by the fuzzer is
//! replayed by `cargo test` through exactly the code that found it.
//!
//! Each function takes arbitrary bytes, must never panic, hang or grow without bound,
//! and checks a property beyond "no crash" where the code has one:
//!
//! | target | what it feeds | property checked |
//! |---|---|---|
//! | [`decode`] | bytes as read (gzip or not, any framing) through a pipeline worker | accounting (`records_in = kept + filtered + deduplicated + dead_lettered`); every finding and dead-letter line is one JSON object |
//! | [`record`] | a field path (first line) and a record | path lookups never panic; the rule index agrees with testing every rule |
//! | [`sigma_rule`] | a rule file | loading reports errors instead of failing; compiled rules agree indexed and unindexed on real records |
//! | [`correlation`] | a rule file with correlation rules | a whole run over real records keeps its accounting |
//! | [`metric_filter`] | a CloudWatch metric-filter pattern | parse, match and explain never panic |
//! | [`sql_filter`] | a `filter:` SQL expression | compile and evaluation never panic |
//! | [`config`] | a configuration file | parsing reports errors with their location instead of failing |
//!
//! The real records the targets evaluate rules against are passed in ([`Samples`]), so
//! this module holds no data.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use simd_json::tape::Value;

use crate::event::path::RootCache;
use crate::event::{FieldPath, RecordParser, looks_like_record};
use crate::filter::RecordFilter;
use crate::pipeline::{self, PipelineConfig};
use crate::rules::metric::MetricPattern;
use crate::rules::{LoadOptions, LoadReport, Origin, RulePack};
use crate::sink::Output;
use crate::source::{Arrival, Input};

/// Limits small enough that one input cannot take the fuzzer's memory or time.
fn fuzz_config() -> PipelineConfig {
    PipelineConfig {
        threads: 1,
        max_record_bytes: 1 << 20,
        max_document_bytes: 4 << 20,
        max_inflated_bytes: 16 << 20,
        ..PipelineConfig::default()
    }
}

/// Real CloudTrail records and the built-in pack, made once per fuzzing process.
pub struct Samples {
    /// One record per element.
    pub records: Vec<Vec<u8>>,
    /// The same records as NDJSON (the input of a whole run).
    pub ndjson: Vec<u8>,
    /// The built-in rule pack.
    pub builtin: Arc<RulePack>,
}

impl Samples {
    /// `ndjson` holds one record per line (decompressed).
    pub fn new(ndjson: &[u8], max_records: usize) -> Samples {
        let records: Vec<Vec<u8>> = ndjson
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .take(max_records)
            .map(<[u8]>::to_vec)
            .collect();
        let mut joined = Vec::new();
        for r in &records {
            joined.extend_from_slice(r);
            joined.push(b'\n');
        }
        let opts = LoadOptions {
            builtin: true,
            paths: Vec::new(),
        };
        let builtin = match RulePack::load(&opts) {
            Ok((p, _)) => Arc::new(p),
            Err(e) => panic!("the built-in pack does not load: {e}"),
        };
        Samples {
            records,
            ndjson: joined,
            builtin,
        }
    }

    /// Calls `f` with every sample record parsed.
    fn each(&self, mut f: impl FnMut(Value<'_, '_>)) {
        let mut parser = RecordParser::new();
        for r in &self.records {
            parser.parse(r, |root| {
                if let Ok(root) = root {
                    f(root);
                }
            });
        }
    }
}

/// Asserts that the rule index names the same rules as testing every rule of `pack`.
#[derive(Default)]
struct IndexAgrees {
    scratch: Vec<u8>,
    indexed: Vec<u32>,
    all: Vec<u32>,
}

impl IndexAgrees {
    fn check(&mut self, pack: &RulePack, root: Value<'_, '_>) {
        pack.evaluate(root, &mut self.scratch, &mut self.indexed);
        pack.evaluate_unindexed(root, &mut self.all);
        assert_eq!(
            self.indexed, self.all,
            "the rule index and the rules disagree"
        );
    }
}

/// The rules of a rule file, when it is UTF-8 and at least one rule compiles (the
/// messages of those that do not are rendered, as `rules validate` would).
fn pack_of(data: &[u8]) -> Option<RulePack> {
    let text = std::str::from_utf8(data).ok()?;
    let mut report = LoadReport::default();
    let pack = RulePack::from_sources(
        &[(Origin::File("fuzz.yml".into()), text.to_string())],
        &mut report,
    );
    for e in report.errors.iter().chain(&report.warnings) {
        let _ = e.to_string();
    }
    (!pack.rules().is_empty()).then_some(pack)
}

/// Asserts the accounting invariant of the contracts.
fn balanced(c: &crate::stats::Counters, what: &str) {
    assert_eq!(
        c.records_in,
        c.records_kept + c.records_filtered + c.records_deduplicated + c.records_dead_lettered,
        "{what}: accounting does not balance: {c:?}"
    );
}

/// Each line of `lines` is one JSON object.
fn json_lines(lines: &[u8], what: &str) {
    for l in lines.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        match serde_json::from_slice::<serde_json::Value>(l) {
            Ok(v) if v.is_object() => {}
            Ok(v) => panic!("{what} line is not an object: {v}"),
            Err(e) => panic!(
                "{what} line is not JSON ({e}): {}",
                String::from_utf8_lossy(l)
            ),
        }
    }
}

/// Input bytes → worker: gzip detection and inflation, framing, parsing, matching and
/// rendering of findings and dead letters.
pub fn decode(data: &[u8], s: &Samples) {
    let out = pipeline::evaluate_bytes(data.to_vec(), s.builtin.clone(), &fuzz_config());
    balanced(&out.counters, "decode");
    json_lines(&out.findings, "finding");
    json_lines(&out.dead_letters, "dead-letter");
    let findings = out.findings.iter().filter(|&&b| b == b'\n').count() as u64;
    assert_eq!(
        findings,
        out.counters.findings_by_rule.iter().sum::<u64>(),
        "finding lines and counters differ"
    );
}

/// The first line is a field path (dotted or `$.`JSONPath), the rest a record.
pub fn record(data: &[u8], s: &Samples) {
    let (path, rec) = match memchr::memchr(b'\n', data) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b""[..], data),
    };
    let path = std::str::from_utf8(path).ok().and_then(|p| {
        if p.starts_with('$') {
            crate::event::jsonpath::compile(p).ok()
        } else {
            FieldPath::parse(p).ok()
        }
    });
    RecordParser::new().parse(rec, |root| {
        let Ok(root) = root else { return };
        let _ = looks_like_record(root);
        if let Some(p) = &path {
            let _ = p.first(root);
            let _ = p.for_each(root, &mut |_| std::ops::ControlFlow::Continue(()));
        }
        IndexAgrees::default().check(&s.builtin, root);
    });
}

/// A rule file: loaded (errors are reported, not raised), then every compiled rule is
/// tested on the sample records, indexed and unindexed.
pub fn sigma_rule(data: &[u8], s: &Samples) {
    let Some(pack) = pack_of(data) else {
        return;
    };
    let mut agrees = IndexAgrees::default();
    s.each(|root| agrees.check(&pack, root));
}

/// A rule file with correlation rules, run end to end (stateful stage included) over
/// the sample records.
pub fn correlation(data: &[u8], s: &Samples) {
    let Some(pack) = pack_of(data) else {
        return;
    };
    let Ok(output) = Output::new(Box::new(std::io::sink()), None) else {
        return;
    };
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let mut a = Arrival::local(Input::remote("memory:".into()));
    a.body = Some(s.ndjson.clone());
    if tx.blocking_send(a).is_err() {
        return;
    }
    drop(tx);
    let cfg = fuzz_config();
    let res = pipeline::run(
        crate::source::Feed::Live(rx),
        Arc::new(pack),
        output,
        None,
        &cfg,
        Arc::new(AtomicBool::new(false)),
    );
    match res {
        Ok(o) => {
            balanced(&o.summary.counters, "correlation run");
            assert_eq!(o.summary.counters.records_in, s.records.len() as u64);
        }
        Err(e) => panic!("a run to a sink that never fails failed: {e}"),
    }
}

/// A CloudWatch Logs metric-filter pattern, parsed and matched against the samples.
pub fn metric_filter(data: &[u8], s: &Samples) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(p) = MetricPattern::parse(text) else {
        return;
    };
    let _ = p.required_event_names();
    s.each(|root| {
        let cache = RootCache::new(root);
        let _ = (p.matches(&cache), p.explain(&cache));
    });
}

/// A `filter:` SQL expression, compiled and evaluated on the samples.
pub fn sql_filter(data: &[u8], s: &Samples) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(f) = RecordFilter::compile(&[text.to_string()]) else {
        return;
    };
    s.each(|root| {
        let _ = f.keep(&RootCache::new(root));
    });
}

/// A configuration file (with `${VAR}` references, which resolve to nothing).
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = crate::config::ConfigFile::parse(text, "fuzz.yml", &|_| None) {
        let _ = e.to_string();
    }
}
