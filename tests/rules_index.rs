//! Differential test of the rule index: for every record, `RulePack::evaluate` (which
//! tests only the index's candidates) and `RulePack::evaluate_unindexed` (which tests
//! every rule) must give identical hit lists. Run on the built-in pack and on a pack of
//! generated rules, over every real sample record, the hand-built oddities, and
//! variants of real records whose `eventName` is odd (case, type, repeated keys).

mod common;

use std::fmt::Write as _;

use trailhound::event::RecordParser;
use trailhound::rules::{LoadOptions, LoadReport, Origin, RulePack};

/// Every record to test, as raw JSON bytes.
fn records() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for s in common::samples() {
        let d = common::gunzip_file(&s);
        out.extend(common::lines(&d).into_iter().map(<[u8]>::to_vec));
    }
    let real = out.len();
    assert_eq!(
        real, 11_625,
        "the five samples hold 11,625 records (tests/data/cloudtrail/README.md)"
    );
    let odd =
        std::fs::read(common::root().join("tests/fixtures/oddities.ndjson")).expect("fixture");
    out.extend(common::lines(&odd).into_iter().map(<[u8]>::to_vec));
    // Variants of every 7th real record with an odd eventName.
    for i in (0..real).step_by(7) {
        let r = String::from_utf8(out[i].clone()).expect("utf-8");
        let key = "\"eventName\":\"";
        let Some(at) = r.find(key) else { continue };
        let vs = at + key.len();
        let ve = vs + r[vs..].find('"').expect("closing quote");
        let name = &r[vs..ve];
        let (head, tail) = (&r[..at], &r[ve + 1..]);
        for v in [
            format!("{head}\"eventName\":\"{}\"{tail}", name.to_uppercase()),
            format!("{head}\"EVENTNAME\":\"{name}\"{tail}"),
            format!("{head}\"eventName\":[\"{name}\",\"CreateUser\"]{tail}"),
            format!("{head}\"eventName\":\"DeleteTrail\",\"eventName\":\"{name}\"{tail}"),
            format!("{head}\"eventname\":\"DeleteTrail\",\"eventName\":\"{name}\"{tail}"),
            format!("{head}\"eventName\":null{tail}"),
            format!("{head}\"eventName\":{{\"name\":\"{name}\"}}{tail}"),
        ] {
            out.push(v.into_bytes());
        }
    }
    for extra in [
        r#"{}"#,
        r#"{"eventName":""}"#,
        r#"{"eventName":42}"#,
        r#"{"eventName":42.0}"#,
        r#"{"eventName":4.2e1}"#,
        r#"{"eventName":-0}"#,
        r#"{"eventName":18446744073709551615}"#,
        r#"{"eventName":true}"#,
        r#"{"eventName":"Create\u0055ser","eventSource":"iam.amazonaws.com"}"#,
        r#"{"eventName":"ＣreateUser"}"#,
        r#"{"eventName":"\u212Aey"}"#,
        r#"{"EventName":"ConsoleLogin","additionalEventData":{"MFAUsed":"No"},"eventSource":"signin.amazonaws.com"}"#,
        r#"{"eventName":"Get*","eventSource":"x"}"#,
        r#"{"eventName":"ConsoleLogin","eventName":"CreateUser"}"#,
    ] {
        out.push(extra.as_bytes().to_vec());
    }
    out
}

struct Tally {
    records: u64,
    candidates: u64,
    full: u64,
    hits: u64,
}

/// Runs both evaluations over every record and requires the same hits.
fn differential(what: &str, pack: &RulePack, recs: &[Vec<u8>]) -> Tally {
    let mut parser = RecordParser::new();
    let (mut scratch, mut indexed, mut full) = (Vec::new(), Vec::new(), Vec::new());
    let mut t = Tally {
        records: 0,
        candidates: 0,
        full: 0,
        hits: 0,
    };
    let mut mismatches = Vec::new();
    for raw in recs {
        parser.parse(raw, |root| {
            let root = root.unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(raw)));
            assert!(root.as_object().is_some());
            pack.evaluate(root, &mut scratch, &mut indexed);
            pack.evaluate_unindexed(root, &mut full);
            let mut cands = Vec::new();
            pack.index().candidates(
                &trailhound::event::path::RootCache::new(root),
                &mut scratch,
                &mut cands,
            );
            assert!(
                cands.windows(2).all(|w| w[0] < w[1]),
                "candidates not ascending"
            );
            assert!(
                full.iter().all(|h| cands.contains(h)),
                "{what}: index withholds a matching rule"
            );
            t.candidates += cands.len() as u64;
        });
        t.records += 1;
        t.full += pack.rules().len() as u64;
        t.hits += full.len() as u64;
        if indexed != full && mismatches.len() < 10 {
            let ids = |v: &[u32]| -> Vec<String> {
                v.iter()
                    .map(|&i| pack.rules()[i as usize].meta.id.clone())
                    .collect()
            };
            mismatches.push(format!(
                "indexed {:?} vs full {:?} on {}",
                ids(&indexed),
                ids(&full),
                String::from_utf8_lossy(&raw[..raw.len().min(300)])
            ));
        }
    }
    assert!(mismatches.is_empty(), "{what}: {mismatches:#?}");
    let skipped = t.full - t.candidates;
    println!(
        "{what}: {} rules ({} always tested, {} indexed names), {} records, {} hits; \
         candidates {} of {} rule tests, the index skipped {} ({:.1}%)",
        pack.rules().len(),
        pack.index().always().len(),
        pack.index().keys(),
        t.records,
        t.hits,
        t.candidates,
        t.full,
        skipped,
        100.0 * skipped as f64 / t.full as f64
    );
    t
}

#[test]
fn builtin_pack_indexed_equals_full_scan() {
    let (pack, report) = RulePack::load(&LoadOptions {
        builtin: true,
        paths: Vec::new(),
    })
    .expect("load");
    assert!(report.errors.is_empty());
    let t = differential("built-in pack", &pack, &records());
    assert!(t.hits > 0);
    assert!(t.candidates < t.full, "the index skipped nothing");
}

#[test]
fn fixture_rules_indexed_equals_full_scan() {
    let (pack, report) = RulePack::load(&LoadOptions {
        builtin: true,
        paths: vec![common::root().join("tests/fixtures/rules")],
    })
    .expect("load");
    assert!(report.errors.is_empty() && report.warnings.is_empty());
    differential("built-in + fixture rules", &pack, &records());
}

fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The detection block of generated rule `i` (indented under `detection:`) and its
/// condition, using real eventName and eventSource values.
fn detection(i: usize, names: &[String], sources: &[String]) -> (String, String) {
    let n = |k: usize| names[(i * 7 + k * 13) % names.len()].as_str();
    let s = |k: usize| sources[(i * 3 + k) % sources.len()].as_str();
    let n0 = n(0);
    let cut = |a: usize, b: usize| -> String {
        let c: Vec<char> = n0.chars().collect();
        c[a.min(c.len())..b.min(c.len())].iter().collect()
    };
    let sel = |body: String| format!("sel:\n    {body}\n");
    let d = match i % 28 {
        0 => sel(format!("eventName: {}", q(n0))),
        1 => sel(format!("eventName: [{}, {}, {}]", q(n0), q(n(1)), q(n(2)))),
        2 => sel(format!("eventName|startswith: {}", q(&cut(0, 4)))),
        3 => sel(format!(
            "eventName|endswith: {}",
            q(&cut(n0.len().saturating_sub(5), n0.len()))
        )),
        4 => sel(format!("eventName|contains: {}", q(&cut(2, 6)))),
        5 => sel(format!(
            "eventName: {}",
            q(&format!(
                "{}*{}",
                cut(0, 3),
                cut(n0.len().saturating_sub(2), n0.len())
            ))
        )),
        6 => sel(format!(
            "eventName: {}",
            q(&format!("{}?{}", cut(0, 1), cut(2, n0.len())))
        )),
        7 => format!(
            "sel:\n    eventName: {}\n    eventSource: {}\nfilter:\n    errorCode: null\n",
            q(n0),
            q(s(0))
        ),
        8 => format!(
            "sel:\n    eventName: {}\nother:\n    eventSource: {}\n",
            q(n0),
            q(s(0))
        ),
        9 => format!(
            "a:\n    eventName: {}\nb:\n    eventName: {}\n",
            q(n0),
            q(n(1))
        ),
        10 => sel(format!("eventName: {}", q(n0))),
        11 => sel(format!("eventSource: {}", q(s(0)))),
        12 => format!(
            "sel_a:\n    eventName: {}\nsel_b:\n    eventName: {}\n",
            q(n0),
            q(n(1))
        ),
        13 => format!(
            "sel_a:\n    eventName: {}\nsel_b:\n    userIdentity.type: [IAMUser, AssumedRole, Root]\n",
            q(n0)
        ),
        14 => format!(
            "sel:\n    - eventName: {}\n    - eventName: {}\n      errorCode|startswith: 'Access'\n",
            q(n0),
            q(n(1))
        ),
        15 => format!(
            "sel:\n    - eventName: {}\n    - eventSource: {}\n",
            q(n0),
            q(s(0))
        ),
        16 => sel(format!("eventName: {}", q(&n0.to_uppercase()))),
        17 => sel(format!("eventName: [{}, null]", q(n0))),
        18 => format!("keywords:\n    - {}\n", q(n0)),
        19 => sel(format!(
            "eventName|contains|all: [{}, {}]",
            q(&cut(0, 3)),
            q(&cut(3, 6))
        )),
        20 => sel(format!("eventName: {}", q(&format!("{}\\*", cut(0, 3))))),
        21 => format!(
            "sel:\n    eventName: {}\nf:\n    eventName: {}\n",
            q(n0),
            q(n(1))
        ),
        22 => format!(
            "a:\n    eventName: {}\nb:\n    eventName: {}\nc:\n    eventSource: {}\n",
            q(n0),
            q(n(1)),
            q(s(0))
        ),
        23 => format!(
            "s1:\n    eventName: {}\ns2:\n    eventSource: {}\ns3:\n    readOnly: 'true'\n",
            q(n0),
            q(s(0))
        ),
        24 => sel(format!("EVENTNAME: {}", q(n0))),
        25 => sel([
            "eventName: 42",
            "eventName: true",
            "eventName: ''",
            "eventName: 42.0",
        ][i / 28 % 4]
            .to_string()),
        26 => format!(
            "sel:\n    eventName: {}\nother:\n    eventSource: {}\n",
            q(n0),
            q(s(0))
        ),
        _ => format!(
            "sel:\n    eventName: {}\n    eventSource|endswith: '.amazonaws.com'\n_filter:\n    eventName: {}\n",
            q(n0),
            q(n(1))
        ),
    };
    let c = match i % 28 {
        7 => "sel and not filter",
        8 => "sel or other",
        9 => "a or b",
        10 => "not sel",
        12 => "1 of sel_*",
        13 => "all of sel_*",
        18 => "keywords",
        21 => "sel and not f",
        22 => "(a or b) and not c",
        23 => "2 of s*",
        26 => "[sel, other]",
        27 => "1 of them and not _filter",
        _ => "sel",
    };
    (d, c.to_string())
}

#[test]
fn generated_pack_indexed_equals_full_scan() {
    let recs = records();
    let mut names: Vec<String> = Vec::new();
    let mut sources: Vec<String> = Vec::new();
    for r in &recs[..11_625] {
        let v: serde_json::Value = serde_json::from_slice(r).expect("json");
        if let Some(n) = v["eventName"].as_str() {
            names.push(n.to_string());
        }
        if let Some(s) = v["eventSource"].as_str() {
            sources.push(s.to_string());
        }
    }
    for v in [&mut names, &mut sources] {
        v.sort();
        v.dedup();
    }
    assert!(names.len() > 300 && sources.len() > 20);
    let count = 28 * 16;
    let sources_text: Vec<(Origin, String)> = (0..count)
        .map(|i| {
            let (det, cond) = detection(i, &names, &sources);
            let mut text = format!(
                "title: generated rule {i}\nid: gen-{i:04}\nlogsource:\n    product: aws\n    service: cloudtrail\ndetection:\n"
            );
            for line in det.lines() {
                let _ = writeln!(text, "    {line}");
            }
            let cond = if cond.starts_with('[') {
                cond
            } else {
                format!("'{cond}'")
            };
            let _ = writeln!(text, "    condition: {cond}");
            let _ = writeln!(text, "level: {}", ["low", "medium", "high"][i % 3]);
            (Origin::Builtin(format!("gen-{i:04}.yml")), text)
        })
        .collect();
    let mut report = LoadReport::default();
    let pack = RulePack::from_sources(&sources_text, &mut report);
    let errors: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert!(report.warnings.is_empty() && report.skipped.is_empty());
    assert_eq!(pack.rules().len(), count);
    let t = differential("generated pack", &pack, &recs);
    assert!(t.hits > 0);
    assert!(t.candidates < t.full, "the index skipped nothing");
    // Rules the index must not file under a name or a source: negations, alternatives
    // without a common literal, keywords, null members, other paths. They are tested on
    // every record. (Pattern 11, `eventSource` alone, is filed under its source, and
    // pattern 24, `EVENTNAME`, under a table of its own spelling.)
    let always = pack.index().always();
    for i in 0..count {
        if [8, 10, 15, 17, 18, 26].contains(&(i % 28)) {
            assert!(
                always.contains(&(i as u32)),
                "gen-{i:04} should be tested always"
            );
        }
    }
}
