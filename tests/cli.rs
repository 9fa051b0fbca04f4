//! The binary end to end on the real samples: every input form and framing gives the
//! same findings, positions and `record` are right, stdout carries findings only, the
//! stats line and file, exit codes, a closed stdout, and thread-count independence.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{
    detect, gzip, join, keys, pretty, records_object, run, stat, strip_timing, write_file as write,
};
use serde_json::Value;

/// Every real record, in sample order: the decompressed samples concatenated.
struct Corpus {
    ndjson: Vec<u8>,
    /// One line per record (the samples have no blank lines).
    records: Vec<Vec<u8>>,
}

fn corpus() -> &'static Corpus {
    static C: OnceLock<Corpus> = OnceLock::new();
    C.get_or_init(|| {
        let mut ndjson = Vec::new();
        for s in common::samples() {
            let d = common::gunzip_file(&s);
            assert!(d.ends_with(b"\n"), "{} ends with a newline", s.display());
            ndjson.extend_from_slice(&d);
        }
        let records: Vec<Vec<u8>> = common::lines(&ndjson).iter().map(|l| l.to_vec()).collect();
        // Every line is one record: the counts in tests/data/cloudtrail/README.md add up
        // to the lines of the five files.
        assert_eq!(
            records.len(),
            ndjson.iter().filter(|&&b| b == b'\n').count(),
            "the samples contain blank lines"
        );
        Corpus { ndjson, records }
    })
}

/// Findings of the corpus fed as NDJSON on stdin: the reference every other form of
/// the same records must reproduce.
fn reference() -> &'static (Vec<(String, String)>, u64) {
    static R: OnceLock<(Vec<(String, String)>, u64)> = OnceLock::new();
    R.get_or_init(|| {
        let out = detect(&["--no-record"], &corpus().ndjson);
        let st = out.stats();
        assert_eq!(stat(&st, "records_in"), corpus().records.len() as u64);
        assert_eq!(stat(&st, "records_kept"), corpus().records.len() as u64);
        assert_eq!(stat(&st, "documents_skipped"), 0);
        assert_eq!(
            out.findings().len() as u64,
            st["findings"]["total"].as_u64().unwrap_or(0)
        );
        let k = single_record_keys(&out);
        assert!(
            !k.is_empty(),
            "the built-in pack finds nothing in the samples"
        );
        (k, stat(&st, "records_in"))
    })
}

/// Keys of the single-record findings. Alarm findings depend on the order records
/// arrive in (event time, lateness), which differs between framings of the mixed-year
/// corpus; tests/stateful.rs covers them.
fn single_record_keys(out: &common::Output) -> Vec<(String, String)> {
    let single: Vec<Value> = out
        .findings()
        .into_iter()
        .filter(|f| f.get("correlation").is_none())
        .collect();
    common::keys(&single)
}

/// Runs over `inputs` and compares with the reference; returns the stats.
fn same_as_reference(what: &str, inputs: &[&Path], stdin: &[u8], documents_skipped: u64) {
    let (ref_keys, ref_in) = reference();
    let mut args: Vec<&std::ffi::OsStr> = vec!["--no-record".as_ref()];
    args.extend(inputs.iter().map(|p| p.as_os_str()));
    let out = detect(&args, stdin);
    let st = out.stats();
    assert_eq!(stat(&st, "records_in"), *ref_in, "{what}: records_in");
    assert_eq!(stat(&st, "records_dead_lettered"), 0, "{what}: {st}");
    assert_eq!(
        stat(&st, "documents_skipped"),
        documents_skipped,
        "{what}: documents_skipped"
    );
    let got = single_record_keys(&out);
    assert_eq!(got.len(), ref_keys.len(), "{what}: number of findings");
    assert!(
        got == *ref_keys,
        "{what}: findings differ from NDJSON on stdin"
    );
}

/// Record lines cut into delivery-sized groups.
fn groups() -> Vec<&'static [Vec<u8>]> {
    corpus().records.chunks(1000).collect()
}

#[test]
fn a_ndjson_on_stdin_counts_every_line() {
    let (k, n) = reference();
    assert_eq!(*n, corpus().records.len() as u64);
    assert!(
        k.iter().all(|(_, ev)| !ev.starts_with('#')),
        "a finding has no eventID"
    );
}

#[test]
fn b_gzip_files_as_shipped() {
    let s = common::samples();
    let paths: Vec<&Path> = s.iter().map(PathBuf::as_path).collect();
    same_as_reference("gz files", &paths, b"", 0);
    same_as_reference("gz on stdin", &[], &common::gzip(&corpus().ndjson), 0);
}

#[test]
fn c_gzip_is_told_by_magic_bytes_not_by_name() {
    let t = tempfile::tempdir().expect("tempdir");
    let plain = write(t.path(), "plain-but-named.json.gz", &corpus().ndjson);
    same_as_reference("plain file named .gz", &[&plain], b"", 0);
    let gz = write(t.path(), "gzip-but-named.json", &gzip(&corpus().ndjson));
    same_as_reference("gzip file named .json", &[&gz], b"", 0);
}

#[test]
fn d_concatenated_gzip_members() {
    // `cat a.gz b.gz`: one member per sample, then one member per group of records.
    let mut members = Vec::new();
    for s in common::samples() {
        members.extend(std::fs::read(&s).expect("read sample"));
    }
    let t = tempfile::tempdir().expect("tempdir");
    let f = write(t.path(), "cat-of-samples.gz", &members);
    same_as_reference("samples' members in one file", &[&f], b"", 0);
    let mut small = Vec::new();
    for g in groups() {
        let mut text = join(g, b"\n");
        text.push(b'\n');
        small.extend(gzip(&text));
    }
    same_as_reference("many members on stdin", &[], &small, 0);
}

#[test]
fn e_directory_tree_is_walked_recursively() {
    let t = tempfile::tempdir().expect("tempdir");
    for (i, g) in groups().iter().enumerate() {
        let mut text = join(g, b"\n");
        text.push(b'\n');
        let rel = format!("AWSLogs/{}/part-{i:03}", i % 3);
        if i % 2 == 0 {
            write(t.path(), &format!("{rel}.ndjson.gz"), &gzip(&text));
        } else {
            write(t.path(), &format!("deeper/{rel}.ndjson"), &text);
        }
    }
    same_as_reference("directory tree", &[t.path()], b"", 0);
}

#[test]
fn e2_many_small_files_keep_their_names_positions_and_order() {
    // Hundreds of tiny objects, as in an AWSLogs tree: they travel to the workers in
    // groups, and each file must still be its own input (names, record indices, order,
    // warnings), with a damaged, an empty and a non-JSON file among them.
    let records = &corpus().records;
    let t = tempfile::tempdir().expect("tempdir");
    let per_file = records.len().div_ceil(300);
    let mut home: std::collections::HashMap<String, (String, u64)> = Default::default();
    let mut files = 0u64;
    for (i, g) in records.chunks(per_file).enumerate() {
        let name = format!("AWSLogs/111122223333/CloudTrail/part-{i:04}.json.gz");
        let body = if i % 2 == 0 {
            let mut text = join(g, b"\n");
            text.push(b'\n');
            gzip(&text)
        } else {
            gzip(&records_object(g))
        };
        let path = write(t.path(), &name, &body);
        for (j, r) in g.iter().enumerate() {
            let v: Value = serde_json::from_slice(r).expect("sample record");
            if let Some(id) = v["eventID"].as_str() {
                // A repeated eventID's finding comes from its first record.
                home.entry(id.to_string())
                    .or_insert_with(|| (path.display().to_string(), j as u64));
            }
        }
        files += 1;
    }
    same_as_reference("many small files", &[t.path()], b"", 0);
    let out = detect(&["--no-record".as_ref(), t.path().as_os_str()], b"");
    let mut seen = 0;
    for f in out.findings() {
        let Some(id) = f["event"]["eventID"].as_str() else {
            continue;
        };
        if f.get("correlation").is_some() {
            continue;
        }
        let (file, index) = &home[id];
        assert_eq!(f["input"]["name"], file.as_str(), "{f}");
        assert_eq!(f["input"]["record_index"], *index, "{f}");
        seen += 1;
    }
    assert!(seen > 0);
    assert_eq!(stat(&out.stats(), "inputs"), files);
    threads_agree("many small files", &[t.path()], b"");

    // Bad files in the middle of the groups: each is named, the rest goes on.
    write(
        t.path(),
        "AWSLogs/111122223333/CloudTrail/part-0100a.json.gz",
        b"",
    );
    let mut damaged = gzip(&join(&records[..3], b"\n"));
    damaged.truncate(damaged.len() / 2);
    write(
        t.path(),
        "AWSLogs/111122223333/CloudTrail/part-0150a.json.gz",
        &damaged,
    );
    write(
        t.path(),
        "AWSLogs/111122223333/CloudTrail/part-0200a.json",
        b"not json\n",
    );
    let out = run(
        &[
            "--stats".as_ref(),
            "json".as_ref(),
            "--no-record".as_ref(),
            t.path().as_os_str(),
        ],
        b"",
    );
    let st = out.stats();
    common::check_accounting(&st);
    assert_eq!(stat(&st, "inputs"), files + 3, "{st}");
    // The non-JSON line, and the record the truncated stream cut in half.
    assert_eq!(stat(&st, "records_dead_lettered"), 2, "{st}");
    assert!(out.stderr.contains("part-0150a.json.gz"), "{}", out.stderr);
    assert!(out.stderr.contains("part-0200a.json"), "{}", out.stderr);
    let (ref_keys, _) = reference();
    assert_eq!(
        single_record_keys(&out),
        *ref_keys,
        "findings with bad files among the good"
    );
}

#[test]
fn f_cloudtrail_delivery_objects() {
    let objects: Vec<Vec<u8>> = groups().iter().map(|g| records_object(g)).collect();
    let t = tempfile::tempdir().expect("tempdir");
    // One object per line.
    let one_per_line = join(&objects, b"\n");
    let f = write(t.path(), "one-per-line.json", &one_per_line);
    same_as_reference("Records objects, one per line", &[&f], b"", 0);
    same_as_reference("Records objects on stdin", &[], &one_per_line, 0);
    // Pretty-printed, several documents one after the other.
    let mut pretty_docs = Vec::new();
    for o in &objects {
        pretty_docs.extend(pretty(o));
        pretty_docs.push(b'\n');
    }
    let f = write(t.path(), "pretty.json", &pretty_docs);
    same_as_reference("pretty-printed Records objects", &[&f], b"", 0);
    same_as_reference("pretty-printed on stdin", &[], &pretty_docs, 0);
    // Glued on one line, no newline at all (`zcat *.json.gz`).
    let glued: Vec<u8> = objects.concat();
    let f = write(t.path(), "glued.json.gz", &gzip(&glued));
    same_as_reference("glued Records objects", &[&f], b"", 0);
    same_as_reference("glued on stdin", &[], &glued, 0);
}

#[test]
fn g_json_arrays_of_records() {
    let t = tempfile::tempdir().expect("tempdir");
    let arrays: Vec<Vec<u8>> = groups()
        .iter()
        .map(|g| {
            let mut a = b"[".to_vec();
            a.extend(join(g, b","));
            a.push(b']');
            a
        })
        .collect();
    let f = write(t.path(), "arrays.json", &join(&arrays, b"\n"));
    same_as_reference("arrays, one per line", &[&f], b"", 0);
    let mut one = b"[".to_vec();
    one.extend(join(&corpus().records, b","));
    one.push(b']');
    same_as_reference("one pretty array", &[], &pretty(&one), 0);
}

#[test]
fn h_cloudwatch_logs_payloads() {
    let control = serde_json::json!({
        "messageType": "CONTROL_MESSAGE", "owner": "CloudwatchLogs", "logGroup": "",
        "logStream": "", "subscriptionFilters": [],
        "logEvents": [{"id": "", "timestamp": 1_700_000_000_000u64,
            "message": "CWL CONTROL MESSAGE: Checking health of destination Firehose."}]
    });
    let mut payloads = vec![control.to_string().into_bytes()];
    for (i, g) in groups().iter().enumerate() {
        let events: Vec<Value> = g
            .iter()
            .enumerate()
            .map(|(j, r)| {
                serde_json::json!({"id": format!("{i}-{j}"), "timestamp": 1_700_000_000_000u64,
                    "message": std::str::from_utf8(r).expect("records are UTF-8")})
            })
            .collect();
        let p = serde_json::json!({
            "messageType": "DATA_MESSAGE", "owner": "111122223333",
            "logGroup": "aws-cloudtrail-logs", "logStream": "111122223333_CloudTrail_us-east-1",
            "subscriptionFilters": ["to-firehose"], "logEvents": events
        });
        payloads.push(p.to_string().into_bytes());
    }
    let text = join(&payloads, b"\n");
    let t = tempfile::tempdir().expect("tempdir");
    let f = write(t.path(), "firehose-object.gz", &gzip(&text));
    // The control message is the one document skipped.
    same_as_reference("CloudWatch payloads", &[&f], b"", 1);
    same_as_reference("CloudWatch payloads on stdin", &[], &text, 1);
}

#[test]
fn i_digest_files_are_skipped_documents() {
    let digest = serde_json::json!({
        "awsAccountId": "111122223333", "digestStartTime": "2023-07-10T11:00:00Z",
        "digestEndTime": "2023-07-10T12:00:00Z", "digestS3Bucket": "trail-bucket",
        "digestS3Object": "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2023/07/10/111122223333_CloudTrail-Digest_us-east-1_trail_us-east-1_20230710T120000Z.json.gz",
        "digestPublicKeyFingerprint": "9e2f8a6f2c1b4d7e8f9a0b1c2d3e4f50",
        "digestSignatureAlgorithm": "SHA256withRSA", "newestEventTime": "2023-07-10T11:59:58Z",
        "oldestEventTime": "2023-07-10T11:00:02Z", "previousDigestS3Bucket": "trail-bucket",
        "previousDigestS3Object": "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2023/07/10/prev.json.gz",
        "previousDigestHashValue": "a3f1", "previousDigestHashAlgorithm": "SHA-256",
        "previousDigestSignature": "5c2d",
        "logFiles": [{"s3Bucket": "trail-bucket", "s3Object": "AWSLogs/111122223333/CloudTrail/us-east-1/2023/07/10/x.json.gz",
            "hashValue": "0c6e", "hashAlgorithm": "SHA-256",
            "newestEventTime": "2023-07-10T11:59:58Z", "oldestEventTime": "2023-07-10T11:00:02Z"}]
    });
    let t = tempfile::tempdir().expect("tempdir");
    write(
        t.path(),
        "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/digest.json.gz",
        &gzip(digest.to_string().as_bytes()),
    );
    write(
        t.path(),
        "AWSLogs/111122223333/CloudTrail/us-east-1/records.json.gz",
        &gzip(&records_object(&corpus().records)),
    );
    same_as_reference("records plus a digest file", &[t.path()], b"", 1);
    // A digest alone: no record, one document, exit 0.
    let only = write(
        t.path(),
        "alone/digest.json",
        &pretty(digest.to_string().as_bytes()),
    );
    let out = detect(&[only.as_os_str()], b"");
    let st = out.stats();
    assert_eq!(stat(&st, "records_in"), 0);
    assert_eq!(stat(&st, "documents_skipped"), 1);
    assert!(out.stdout.is_empty());
}

/// For every finding of a run over NDJSON: `record` is the line's bytes and the
/// position is the line's.
fn check_ndjson_positions(out: &common::Output, name: &str) {
    let c = corpus();
    let offsets = common::line_offsets(&c.ndjson);
    let lines = out.stdout_lines();
    assert!(!lines.is_empty());
    for (line, f) in lines.iter().zip(out.findings()) {
        if f.get("correlation").is_some() {
            // An alarm finding: no record of its own (docs/stateful.md).
            continue;
        }
        let inp = &f["input"];
        assert_eq!(inp["name"], name);
        let idx = inp["record_index"].as_u64().expect("record_index") as usize;
        assert_eq!(
            inp["line"].as_u64(),
            Some(idx as u64 + 1),
            "line of record {idx}"
        );
        assert_eq!(
            inp["byte_offset"].as_u64(),
            Some(offsets[idx] as u64),
            "byte_offset of record {idx}"
        );
        let raw = common::raw_record(line).expect("record present");
        assert_eq!(
            raw.as_bytes(),
            &c.records[idx][..],
            "record {idx} is not the input line byte for byte"
        );
        assert_eq!(f["event"]["eventID"], {
            let v: Value = serde_json::from_slice(&c.records[idx]).expect("json");
            v["eventID"].clone()
        });
    }
}

#[test]
fn record_and_positions_are_exact_for_ndjson() {
    // Stdin is streamed in ~1 MiB chunks, so positions cross chunk boundaries.
    let out = detect::<&str>(&[], &corpus().ndjson);
    check_ndjson_positions(&out, "<stdin>");
    let t = tempfile::tempdir().expect("tempdir");
    let f = write(t.path(), "all.ndjson", &corpus().ndjson);
    let out = detect(&[f.as_os_str()], b"");
    check_ndjson_positions(&out, &f.display().to_string());
}

#[test]
fn record_of_other_framings_is_the_source_record() {
    let c = corpus();
    let by_id: std::collections::HashMap<String, &Vec<u8>> = c
        .records
        .iter()
        .map(|r| {
            let v: Value = serde_json::from_slice(r).expect("json");
            (v["eventID"].as_str().expect("eventID").to_string(), r)
        })
        .collect();
    let objects = join(
        &groups()
            .iter()
            .map(|g| records_object(g))
            .collect::<Vec<_>>(),
        b"\n",
    );
    let out = detect::<&str>(&[], &objects);
    let newlines: Vec<usize> = (0..objects.len())
        .filter(|&i| objects[i] == b'\n')
        .collect();
    for (line, f) in out.stdout_lines().iter().zip(out.findings()) {
        if f.get("correlation").is_some() {
            continue;
        }
        let raw = common::raw_record(line).expect("record");
        let src = by_id[f["event"]["eventID"].as_str().expect("eventID")];
        assert_eq!(raw.as_bytes(), &src[..], "element of a Records array");
        let at = f["input"]["byte_offset"].as_u64().expect("offset") as usize;
        assert!(
            objects[at..].starts_with(src),
            "byte_offset does not point at the record"
        );
        let line_no = newlines.partition_point(|&nl| nl < at) as u64 + 1;
        assert_eq!(f["input"]["line"].as_u64(), Some(line_no));
    }
    // A pretty-printed record is re-serialised on one line: equal as a JSON value.
    let out = detect::<&str>(&[], &pretty(&records_object(&c.records)));
    assert_eq!(single_record_keys(&out).len(), reference().0.len());
    for f in out
        .findings()
        .into_iter()
        .filter(|f| f.get("correlation").is_none())
    {
        let src: Value = serde_json::from_slice(by_id[f["event"]["eventID"].as_str().expect("id")])
            .expect("json");
        assert_eq!(
            f["record"], src,
            "pretty-printed record differs from its source"
        );
    }
}

#[test]
fn no_record_leaves_out_only_the_record() {
    let s = common::sample("stratus-red-team");
    let with = detect(&[&s], b"").findings();
    let without = detect(&[s.as_os_str(), "--no-record".as_ref()], b"").findings();
    assert_eq!(with.len(), without.len());
    assert!(!with.is_empty());
    for (mut a, b) in with.into_iter().zip(without) {
        if a.get("correlation").is_some() {
            assert!(b.get("record").is_none() && a.get("record").is_none());
            continue;
        }
        assert!(a.get("record").is_some_and(Value::is_object));
        assert!(
            b.get("record").is_none(),
            "--no-record finding has a record: {b}"
        );
        let obj = a.as_object_mut().expect("object");
        obj.remove("record");
        obj.insert("detected_at".into(), b["detected_at"].clone());
        assert_eq!(a, b);
    }
}

#[test]
fn stdout_carries_findings_only() {
    // Good records mixed with broken lines, a document and blank lines: warnings and
    // the summary go to stderr, stdout has one finding per line and nothing else.
    let mut mixed = Vec::new();
    for (i, r) in corpus().records.iter().take(3000).enumerate() {
        mixed.extend_from_slice(r);
        mixed.push(b'\n');
        if i % 500 == 0 {
            mixed.extend_from_slice(
                b"{\"eventName\": tru\n\n   \n42\n{\"digestStartTime\":\"x\"}\n",
            );
        }
    }
    for stats in ["human", "json", "none"] {
        let out = run(&["--stats", stats], &mixed);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let f = out.findings();
        assert!(!f.is_empty());
        assert_eq!(f.len(), out.stdout_lines().len());
        assert!(out.stderr.contains("malformed record"), "{}", out.stderr);
    }
}

#[test]
fn stats_json_and_stats_file() {
    let validator = common::validator("stats.schema.json");
    let s = common::sample("invictus-aws-dataset");
    let out = detect(&[&s], b"");
    let st = out.stats();
    common::assert_valid(&validator, &st, "--stats json line");
    assert_eq!(st["schema"], "trailhound.stats/1");
    assert_eq!(stat(&st, "inputs"), 1);
    assert_eq!(
        stat(&st, "records_in"),
        common::lines(&common::gunzip_file(&s)).len() as u64
    );
    assert_eq!(
        stat(&st, "bytes_in"),
        std::fs::metadata(&s).expect("meta").len()
    );
    assert_eq!(
        stat(&st, "bytes_decoded"),
        common::gunzip_file(&s).len() as u64
    );
    assert_eq!(
        st["findings"]["total"].as_u64(),
        Some(out.findings().len() as u64)
    );
    let by_rule_sum: u64 = st["findings"]["by_rule"]
        .as_object()
        .expect("by_rule")
        .values()
        .filter_map(Value::as_u64)
        .sum();
    assert_eq!(by_rule_sum, out.findings().len() as u64);

    let t = tempfile::tempdir().expect("tempdir");
    let sf = t.path().join("stats.json");
    let out2 = run(
        &[s.as_os_str(), "--stats-file".as_ref(), sf.as_os_str()],
        b"",
    );
    assert_eq!(out2.code, 0);
    let text = std::fs::read_to_string(&sf).expect("stats file written");
    assert_eq!(text.lines().count(), 1, "stats file is one JSON line");
    let from_file: Value = serde_json::from_str(&text).expect("stats file is JSON");
    common::assert_valid(&validator, &from_file, "--stats-file");
    assert_eq!(strip_timing(from_file), strip_timing(st));
    assert!(
        !out2.stderr.contains("trailhound.stats/1"),
        "--stats-file also printed the JSON on stderr"
    );
}

#[test]
fn exit_codes() {
    let s = common::sample("stratus-red-team");
    let levels = ["informational", "low", "medium", "high", "critical"];
    let found = detect(&[&s], b"").findings();
    let max = found
        .iter()
        .map(|f| {
            let l = f["rule"]["level"].as_str().expect("level");
            levels.iter().position(|x| *x == l).expect("known level")
        })
        .max()
        .expect("stratus has findings");
    // --fail-on at the highest level found → 1; one above → 0.
    let out = run(
        &[s.as_os_str(), "--fail-on".as_ref(), levels[max].as_ref()],
        b"",
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(
        out.findings().len(),
        found.len(),
        "findings are still all written"
    );
    if max + 1 < levels.len() {
        let out = run(
            &[
                s.as_os_str(),
                "--fail-on".as_ref(),
                levels[max + 1].as_ref(),
            ],
            b"",
        );
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    // 2: a --rules path that does not exist, a bad rule under --strict, a bad option.
    let t = tempfile::tempdir().expect("tempdir");
    let missing = t.path().join("no-such-rules");
    let out = run(
        &[s.as_os_str(), "--rules".as_ref(), missing.as_os_str()],
        b"",
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stdout.is_empty());
    let bad = write(
        t.path(),
        "rules/bad.yml",
        b"title: bad\nlogsource: {product: aws}\ndetection:\n  sel:\n    a|base65: x\n  condition: sel\n",
    );
    let rules = bad.parent().expect("dir");
    let out = run(
        &[
            s.as_os_str(),
            "--strict".as_ref(),
            "--rules".as_ref(),
            rules.as_os_str(),
        ],
        b"",
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stdout.is_empty());
    assert!(out.stderr.contains("bad.yml:5:5"), "{}", out.stderr);
    // Without --strict the bad rule is skipped and the run goes on.
    let out = run(&[s.as_os_str(), "--rules".as_ref(), rules.as_os_str()], b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.findings().len(), found.len());
    for bad_args in [
        &["--min-level", "severe"][..],
        &["--no-such-flag"],
        &["--threads", "x"],
    ] {
        let out = run(bad_args, b"");
        assert_eq!(out.code, 2, "{bad_args:?}: {}", out.stderr);
    }
    // 3: a missing input; the other inputs are still processed.
    let gone = t.path().join("gone.json.gz");
    let out = run(
        &[
            gone.as_os_str(),
            s.as_os_str(),
            "--stats".as_ref(),
            "json".as_ref(),
        ],
        b"",
    );
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("gone.json.gz"), "{}", out.stderr);
    assert_eq!(out.keys(), keys(&found));
    let st = out.stats();
    assert_eq!((stat(&st, "inputs"), stat(&st, "inputs_failed")), (2, 1));
}

#[test]
fn closed_stdout_ends_the_run_quietly() {
    let mut child = Command::new(common::BIN)
        .args(common::samples())
        .args(["--stats", "json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut err = child.stderr.take().expect("stderr");
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = Vec::new();
    out.read_until(b'\n', &mut first).expect("read one line");
    let f: Value = serde_json::from_slice(&first).expect("first line is a finding");
    assert_eq!(f["schema"], "trailhound.finding/1");
    drop(out);
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("trailhound did not stop after stdout was closed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = err_reader.join().expect("stderr reader");
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // The findings of the samples are far more than a pipe holds, so the run was cut.
    let st: Value = serde_json::from_str(stderr.lines().last().expect("stats")).expect("json");
    assert_eq!(st["interrupted"], true, "{st}");
}

fn threads_agree(what: &str, inputs: &[&Path], stdin: &[u8]) {
    let mut first: Option<(Vec<u8>, Value)> = None;
    for n in ["1", "2", "4"] {
        let mut args: Vec<&std::ffi::OsStr> = vec!["--threads".as_ref(), n.as_ref()];
        args.extend(inputs.iter().map(|p| p.as_os_str()));
        let out = detect(&args, stdin);
        let body = common::without_detected_at(&out.stdout);
        let st = strip_timing(out.stats());
        assert!(!body.is_empty(), "{what}: no findings");
        match &first {
            None => first = Some((body, st)),
            Some((b, s)) => {
                assert!(
                    *b == body,
                    "{what}: output with --threads {n} differs from --threads 1"
                );
                assert_eq!(*s, st, "{what}: stats with --threads {n}");
            }
        }
    }
}

#[test]
fn output_is_independent_of_thread_count() {
    threads_agree("s3-layout directory", &[&common::s3_layout()], b"");
    threads_agree("all samples on stdin", &[], &corpus().ndjson);
    let s = common::samples();
    let paths: Vec<&Path> = s.iter().map(PathBuf::as_path).collect();
    threads_agree("all samples as files", &paths, b"");
}

#[test]
fn json_logs_are_one_object_per_line_and_name_the_record() {
    // A malformed record in the middle of stdin: with --log-format json every stderr line
    // but the stats line is a JSON object with a level and a message, and the warning
    // about the record names its input and position.
    let input = b"{\"eventName\":\"ListUsers\",\"eventID\":\"a\"}\n{not json\n{\"eventName\":\"ListUsers\",\"eventID\":\"b\"}\n";
    let out = common::run(
        &[
            "--log-format",
            "json",
            "--log-level",
            "debug",
            "--stats",
            "json",
        ],
        input,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert!(lines.len() >= 2, "{}", out.stderr);
    let (stats, logs) = lines.split_last().expect("lines");
    let stats: Value = serde_json::from_str(stats).expect("stats line");
    assert_eq!(stats["records_dead_lettered"], 1);
    for l in logs {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v["level"].is_string() && v["message"].is_string(), "{l}");
        assert!(v["timestamp"].is_string(), "{l}");
    }
    assert!(
        logs.iter().any(|l| l.contains("\"level\":\"DEBUG\"")),
        "{}",
        out.stderr
    );
    let warn: Value = logs
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["level"] == "WARN")
        .unwrap_or_else(|| panic!("no warning: {}", out.stderr));
    assert_eq!(warn["input"], "<stdin>");
    assert_eq!(warn["line"], 2);
    assert_eq!(warn["record_index"], 1);
}

#[test]
fn progress_without_a_terminal_is_a_periodic_status_line() {
    // stdin stays open for a while with records in it: the status lines come while the
    // run waits, and the --stats json line is still the last line of stderr.
    let mut child = Command::new(common::BIN)
        .args([
            "--progress",
            "--progress-interval",
            "200ms",
            "--stats",
            "json",
            "--log-format",
            "json",
        ])
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    std::io::Write::write_all(
        &mut stdin,
        b"{\"eventName\":\"ListUsers\",\"eventID\":\"1\",\"eventTime\":\"2024-01-01T00:00:00Z\"}\n{\"eventName\":\"ListUsers\",\"eventID\":\"2\",\"eventTime\":\"2024-01-01T00:00:01Z\"}\n",
    )
    .expect("write");
    std::thread::sleep(Duration::from_millis(900));
    drop(stdin);
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("read");
    assert!(child.wait().expect("wait").success(), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    let (stats, logs) = lines.split_last().expect("lines");
    let stats: Value = serde_json::from_str(stats).expect("stats last");
    assert_eq!(stats["records_in"], 2);
    let status: Vec<Value> = logs
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("status: "))
        })
        .collect();
    assert!(status.len() >= 2, "{err}");
    assert!(status.iter().any(|v| v["records_in"] == 2), "{err}");
    // The lag is how far the newest event time read is behind the clock.
    assert!(
        status
            .iter()
            .any(|v| v["event_lag_s"].as_i64().is_some_and(|s| s > 86_400 * 300)),
        "{err}"
    );
}
