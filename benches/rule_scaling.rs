//! Matching cost against the number of rules: 50 SigmaHQ AWS rules versus 1,000 rules
//! generated from them by varying their values (issue 4's scaling target: ≤ 2×).
//! `cargo bench --bench rule_scaling`.
//!
//! A variant `k` of a rule gets a fresh id and every string value of its detection
//! changed (`V<k>` appended before any trailing wildcard), so the variants are distinct
//! rules over the same fields, as a grown rule pack would be.

use std::fmt::Write as _;
use std::hint::black_box;
use std::io::Read;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use trailhound::event::RecordParser;
use trailhound::rules::yaml::{Kind, Yaml, load_documents};
use trailhound::rules::{LoadReport, Origin, RulePack};

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn sample_lines() -> Vec<Vec<u8>> {
    let dir = root().join("tests/data/cloudtrail");
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .expect("samples")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".ndjson.gz"))
        .collect();
    names.sort();
    let mut lines = Vec::new();
    for p in names {
        let mut text = Vec::new();
        flate2::read::MultiGzDecoder::new(std::fs::File::open(&p).expect("open"))
            .read_to_end(&mut text)
            .expect("gunzip");
        lines.extend(
            text.split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .map(<[u8]>::to_vec),
        );
    }
    lines
}

/// Writes a YAML node as JSON (valid YAML), changing detection strings for variant `k`.
fn emit(y: &Yaml, out: &mut String, k: usize, in_detection: bool, key: Option<&str>) {
    match &y.kind {
        Kind::Null => out.push_str("null"),
        Kind::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Kind::Number(n) => out.push_str(n),
        Kind::Str(s) => {
            let v = if in_detection && k > 0 && key != Some("condition") {
                match s.strip_suffix('*') {
                    Some(stem) => format!("{stem}V{k}*"),
                    None => format!("{s}V{k}"),
                }
            } else if key == Some("id") && k > 0 {
                format!("{}-{k:04}", &s[..s.len().min(30)])
            } else {
                s.clone()
            };
            let _ = write!(out, "{}", serde_json::to_string(&v).expect("string"));
        }
        Kind::Seq(items) => {
            out.push('[');
            for (i, it) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                emit(it, out, k, in_detection, key);
            }
            out.push(']');
        }
        Kind::Map(entries) => {
            out.push('{');
            for (i, (kk, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let name = kk.as_scalar_text().unwrap_or_default();
                let _ = write!(out, "{}:", serde_json::to_string(name).expect("key"));
                let det = in_detection || name == "detection";
                let key = if det {
                    if name == "condition" {
                        Some("condition")
                    } else {
                        key
                    }
                } else {
                    Some(name)
                };
                emit(v, out, k, det, key);
            }
            out.push('}');
        }
    }
}

fn pack_of(n: usize) -> RulePack {
    let files = trailhound::fswalk::files_under(
        &root().join("tests/sigmahq/rules"),
        &trailhound::rules::is_rule_file,
    )
    .expect("rules");
    let docs: Vec<Yaml> = files
        .iter()
        .flat_map(|f| load_documents(&std::fs::read_to_string(f).expect("read")).expect("yaml"))
        .collect();
    let mut sources = Vec::with_capacity(n);
    for i in 0..n {
        let k = i / docs.len();
        let mut text = String::new();
        emit(&docs[i % docs.len()], &mut text, k, false, None);
        sources.push((Origin::Builtin(format!("gen-{i}.yml")), text));
    }
    let mut report = LoadReport::default();
    let pack = RulePack::from_sources(&sources, &mut report);
    assert!(report.errors.is_empty(), "{:?}", report.errors.first());
    assert_eq!(pack.rules().len(), n);
    pack
}

fn bench_scaling(c: &mut Criterion) {
    let lines = sample_lines();
    let mut g = c.benchmark_group("rule scaling");
    g.throughput(Throughput::Elements(lines.len() as u64));
    let mut parser = RecordParser::new();
    g.bench_function("parse only", |b| {
        b.iter(|| {
            for l in &lines {
                parser.parse(l, |r| black_box(r.is_ok()));
            }
        })
    });
    for n in [50usize, 1000] {
        let pack = pack_of(n);
        eprintln!(
            "{n} rules: {} always tested, {} eventName literals, fields {:?}",
            pack.index().always().len(),
            pack.index().keys(),
            pack.index().fields()
        );
        let (mut scratch, mut hits) = (Vec::new(), Vec::new());
        g.bench_function(format!("parse+match {n} rules"), |b| {
            b.iter(|| {
                let mut total = 0;
                for l in &lines {
                    parser.parse(l, |r| {
                        if let Ok(root) = r {
                            pack.evaluate(root, &mut scratch, &mut hits);
                            total += hits.len();
                        }
                    });
                }
                black_box(total)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_scaling);
criterion_main!(benches);
