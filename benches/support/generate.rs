//! Shared by `benches/rule_scaling.rs` and `examples/rule_scaling_probe.rs`: the real
//! sample records, and rule packs of any size generated from the SigmaHQ AWS rules.
//!
//! A variant `k` of a rule gets a fresh id and every string value of its detection
//! changed (`V<k>` appended before any trailing wildcard), so the variants are distinct
//! rules over the same fields, as a grown rule pack would be.

use std::fmt::Write as _;
use std::io::Read;

use trailhound::rules::yaml::{Kind, Yaml, load_documents};
use trailhound::rules::{LoadReport, Origin, RulePack};

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn sample_lines() -> Vec<Vec<u8>> {
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

pub fn pack_of(n: usize) -> RulePack {
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
