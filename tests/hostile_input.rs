//! Hostile input, one case per test, on the real CloudTrail samples: a gzip bomb, a
//! 10 MB record, nesting at and beyond the parser's depth limit, invalid UTF-8, numbers
//! no 64-bit type holds, a delivery object of a million records, a YAML alias bomb,
//! pathological and oversized regular expressions, partition values that try to leave
//! the archive root, control characters aimed at stderr, and secrets in configuration
//! errors. Every run that reads records checks
//! `records_in = kept + filtered + deduplicated + dead_lettered`.
//!
//! Cases other files already hold: a cut gzip stream, a 50 MB line over
//! `--max-record-bytes`, non-object records and binary garbage (`tests/bad_input.rs`);
//! files over 8 MiB read like stdin (`tests/large_files.rs`); `recipientAccountId` and
//! `eventTime` values `../../escape`, `..`, `a/b` and `""`
//! (`tests/archive.rs::stale_temporary_files_are_removed_and_hostile_partition_values_stay_inside`);
//! secrets against a live S3 endpoint (`tests/aws_credentials.rs::secrets_are_not_logged`).

mod common;

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::io::Write;
use std::path::Path;

use base64::Engine;
use common::{Output, check_accounting, detect, gzip, stat, write_file};
use serde_json::Value;

const MIB: usize = 1 << 20;

/// The non-blank lines of a sample.
fn sample_lines(name: &str) -> Vec<Vec<u8>> {
    let raw = common::gunzip_file(&common::sample(name));
    common::lines(&raw)
        .into_iter()
        .map(<[u8]>::to_vec)
        .collect()
}

/// Lines joined with a newline after each.
fn ndjson<T: AsRef<[u8]>>(lines: &[T]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l.as_ref());
        out.push(b'\n');
    }
    out
}

/// Runs the binary with `--stats json ARGS`, whatever its exit code, and checks the
/// accounting of the summary it printed.
fn run_stats(args: &[&OsStr], stdin: &[u8]) -> Output {
    let mut all: Vec<&OsStr> = vec!["--stats".as_ref(), "json".as_ref()];
    all.extend_from_slice(args);
    let out = common::run(&all, stdin);
    check_accounting(&out.stats());
    out
}

/// The dead letters of a file, each valid against `schemas/dead-letter.schema.json`.
fn dead_letters(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let v = common::validator("dead-letter.schema.json");
    text.lines()
        .map(|l| {
            let d: Value = serde_json::from_str(l).expect("dead letter is JSON");
            common::assert_valid(&v, &d, "dead letter");
            d
        })
        .collect()
}

/// The bytes a dead letter kept (`raw` or `raw_base64`).
fn kept_bytes(d: &Value) -> Vec<u8> {
    match (d.get("raw"), d.get("raw_base64")) {
        (Some(Value::String(s)), None) => s.as_bytes().to_vec(),
        (None, Some(Value::String(b))) => base64::engine::general_purpose::STANDARD
            .decode(b)
            .expect("raw_base64 is base64"),
        _ => panic!("dead letter needs exactly one of raw, raw_base64: {d}"),
    }
}

/// Sorted (rule id, record_index) of every finding of a run.
fn positions(out: &Output) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = out
        .findings()
        .iter()
        .map(|f| {
            (
                f["rule"]["id"].as_str().expect("rule.id").to_string(),
                f["input"]["record_index"].as_u64().expect("record_index"),
            )
        })
        .collect();
    v.sort();
    v
}

/// Asserts that stderr holds no control character but the newlines ending its lines,
/// and that every line is a log line (a timestamp first) or the JSON summary: nothing
/// in the input started a line of its own.
fn assert_clean_stderr(stderr: &str) {
    let bad: Vec<(usize, char)> = stderr
        .char_indices()
        .filter(|&(_, c)| (c.is_control() && c != '\n') || matches!(c, '\u{2028}' | '\u{2029}'))
        .collect();
    assert!(
        bad.is_empty(),
        "raw control characters {bad:?} in:\n{stderr}"
    );
    for l in stderr.lines() {
        let b = l.as_bytes();
        let stamped =
            b.len() > 20 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[10] == b'T';
        assert!(stamped || l.starts_with('{'), "a forged line: {l:?}");
    }
}

/// A stratus-red-team record the built-in pack fires on that has a non-empty
/// `requestParameters` object, and the (rule, eventID) pairs of its findings when it is
/// read alone.
fn firing_record() -> (Vec<u8>, Vec<(String, String)>) {
    let s = common::sample("stratus-red-team");
    let lines = sample_lines("stratus-red-team");
    let all = detect(&[s.as_os_str(), "--no-record".as_ref()], b"").findings();
    let hit: BTreeSet<u64> = all
        .iter()
        .filter_map(|f| f["input"]["record_index"].as_u64())
        .collect();
    let line = hit
        .iter()
        .map(|&i| &lines[i as usize])
        .find(|l| contains(l, br#""requestParameters":{""#))
        .expect("a firing record with requestParameters")
        .clone();
    let want = detect(
        &[OsStr::new("--no-record"), "--no-dedup".as_ref()],
        &ndjson(&[&line]),
    )
    .keys();
    assert!(!want.is_empty());
    (line, want)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// `line` with `member` (`"key":value`) added first to its `requestParameters` object.
fn with_request_parameter(line: &[u8], member: &[u8]) -> Vec<u8> {
    let key = br#""requestParameters":{"#;
    let at = line
        .windows(key.len())
        .position(|w| w == key)
        .expect("requestParameters object")
        + key.len();
    let mut out = line[..at].to_vec();
    out.extend_from_slice(member);
    out.push(b',');
    out.extend_from_slice(&line[at..]);
    out
}

/// One gzip member (best compression) of `block` repeated `times` times.
fn gzip_repeated(block: &[u8], times: usize) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    for _ in 0..times {
        e.write_all(block).expect("gzip write");
    }
    e.finish().expect("gzip finish")
}

/// The values of the string `columns` (in that order) of every row of every Parquet
/// file under `root`.
fn archived(root: &Path, columns: &[&str]) -> Vec<Vec<Option<String>>> {
    use arrow_array::{Array, StringArray};
    let mut rows = Vec::new();
    for f in common::files_ending(root, ".parquet") {
        let file = std::fs::File::open(&f).expect("open parquet");
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .expect("a complete parquet file")
            .build()
            .expect("reader");
        for batch in reader {
            let batch = batch.expect("batch");
            let cols: Vec<StringArray> = columns
                .iter()
                .map(|c| {
                    batch
                        .column_by_name(c)
                        .unwrap_or_else(|| panic!("no column {c}"))
                        .as_any()
                        .downcast_ref::<StringArray>()
                        .unwrap_or_else(|| panic!("{c} is not a string column"))
                        .clone()
                })
                .collect();
            for i in 0..batch.num_rows() {
                rows.push(
                    cols.iter()
                        .map(|c| (!c.is_null(i)).then(|| c.value(i).to_string()))
                        .collect(),
                );
            }
        }
    }
    rows
}

#[test]
fn a_gzip_bomb_stops_at_max_inflated_bytes_and_keeps_the_records_before_it() {
    let limit = 8 * MIB;
    let t = tempfile::tempdir().expect("tempdir");
    // 2 GiB of zeros as 32 gzip members of 64 MiB each (about 65 KB apiece).
    let zero = gzip_repeated(&vec![0u8; MIB], 64);
    let zeros_len = 32 * 64 * MIB as u64;
    let lines = sample_lines("stratus-red-team");
    let data = ndjson(&lines);
    let reference =
        |input: &[u8]| detect(&[OsStr::new("--no-record"), "--no-dedup".as_ref()], input);

    // 1. The real records, then 2 GiB of zeros: the complete records are matched, the
    //    zeros up to the limit are one dead letter, and the input counts as failed.
    let mut bomb = gzip(&data);
    for _ in 0..32 {
        bomb.extend_from_slice(&zero);
    }
    assert!(
        bomb.len() < 8 * MIB,
        "{} bytes: a file read whole",
        bomb.len()
    );
    println!(
        "bomb: {} bytes inflating to {} bytes ({}:1)",
        bomb.len(),
        data.len() as u64 + zeros_len,
        (data.len() as u64 + zeros_len) / bomb.len() as u64
    );
    let path = write_file(t.path(), "bomb.json.gz", &bomb);
    let dl = t.path().join("dead-1.ndjson");
    let args: Vec<&OsStr> = vec![
        "--max-inflated-bytes".as_ref(),
        "8MiB".as_ref(),
        "--no-record".as_ref(),
        "--no-dedup".as_ref(),
        "--dead-letter".as_ref(),
        dl.as_os_str(),
        path.as_os_str(),
    ];
    let out = run_stats(&args, b"");
    assert_eq!(
        out.code, 3,
        "an input that could not be read to its end: {}",
        out.stderr
    );
    let st = out.stats();
    assert_eq!(stat(&st, "inputs"), 1);
    assert_eq!(stat(&st, "inputs_failed"), 1);
    assert_eq!(stat(&st, "bytes_in"), bomb.len() as u64);
    assert_eq!(
        stat(&st, "bytes_decoded"),
        limit as u64,
        "inflation stops at the limit"
    );
    assert_eq!(stat(&st, "records_in"), lines.len() as u64 + 1);
    assert_eq!(stat(&st, "records_kept"), lines.len() as u64);
    assert_eq!(stat(&st, "records_dead_lettered"), 1);
    assert_eq!(out.keys(), reference(&data).keys());
    assert!(!out.findings().is_empty());
    let dead = dead_letters(&dl);
    assert_eq!(dead.len(), 1);
    let d = &dead[0];
    assert_eq!(d["input"], path.to_str().expect("utf-8 path"));
    assert_eq!(d["record_index"], lines.len() as u64);
    assert_eq!(d["line"], lines.len() as u64 + 1);
    assert_eq!(d["byte_offset"], data.len() as u64);
    assert_eq!(d["raw_len"], (limit - data.len()) as u64);
    assert_eq!(d["truncated"], true);
    assert_eq!(d["reason"], "not a JSON object or array");
    let kept = kept_bytes(d);
    assert!(kept.len() == 64 * 1024 && kept.iter().all(|&b| b == 0));
    let failed = out
        .stderr
        .lines()
        .find(|l| l.contains("input could not be read to its end"))
        .unwrap_or_else(|| panic!("no failure line: {}", out.stderr));
    assert!(
        failed.contains("gzip stream inflates beyond 8388608 bytes")
            && failed.contains(&format!("input={}", path.display())),
        "{failed}"
    );

    // 2. Real records repeated to 12 MiB, cut by the limit in the middle of a record:
    //    every complete record before the cut is matched, the cut one is dead-lettered.
    let mut data2 = Vec::new();
    while data2.len() < 12 * MIB {
        data2.extend_from_slice(&data);
    }
    let mut bomb2 = gzip(&data2);
    for _ in 0..32 {
        bomb2.extend_from_slice(&zero);
    }
    assert!(bomb2.len() < 8 * MIB, "{}", bomb2.len());
    let path2 = write_file(t.path(), "bomb2.json.gz", &bomb2);
    let prefix = &data2[..limit];
    let cut = prefix.iter().rposition(|&b| b == b'\n').expect("a newline") + 1;
    assert!(cut < limit, "the limit falls inside a record");
    let complete = prefix.iter().filter(|&&b| b == b'\n').count() as u64;
    let dl2 = t.path().join("dead-2.ndjson");
    let args: Vec<&OsStr> = vec![
        "--max-inflated-bytes".as_ref(),
        "8MiB".as_ref(),
        "--no-record".as_ref(),
        "--no-dedup".as_ref(),
        "--dead-letter".as_ref(),
        dl2.as_os_str(),
        path2.as_os_str(),
    ];
    let out = run_stats(&args, b"");
    assert_eq!(out.code, 3, "{}", out.stderr);
    let st = out.stats();
    assert_eq!(stat(&st, "bytes_decoded"), limit as u64);
    assert_eq!(stat(&st, "records_in"), complete + 1);
    assert_eq!(stat(&st, "records_kept"), complete);
    assert_eq!(positions(&out), positions(&reference(&data2[..cut])));
    let dead = dead_letters(&dl2);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["record_index"], complete);
    assert_eq!(dead[0]["byte_offset"], cut as u64);
    assert_eq!(dead[0]["raw_len"], (limit - cut) as u64);
    assert_eq!(dead[0]["truncated"], false);
    assert_eq!(kept_bytes(&dead[0]), &prefix[cut..]);

    // 3. The same bomb on stdin is streamed, never held: the limit is for inputs read
    //    whole, so all of it is inflated and the zeros are one over-long record.
    let dl3 = t.path().join("dead-3.ndjson");
    let out = run_stats(
        &[
            "--max-inflated-bytes".as_ref(),
            "8MiB".as_ref(),
            "--no-record".as_ref(),
            "--no-dedup".as_ref(),
            "--dead-letter".as_ref(),
            dl3.as_os_str(),
        ],
        &bomb,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let st = out.stats();
    assert_eq!(stat(&st, "inputs_failed"), 0);
    assert_eq!(stat(&st, "bytes_decoded"), data.len() as u64 + zeros_len);
    assert_eq!(stat(&st, "records_kept"), lines.len() as u64);
    assert_eq!(out.keys(), reference(&data).keys());
    let dead = dead_letters(&dl3);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["raw_len"], zeros_len);
    assert_eq!(
        dead[0]["reason"],
        format!("record of {zeros_len} bytes exceeds max_record_bytes (16777216)")
    );

    // 4. A stream whose first record does not end for 2 GiB (a string of `A`s), then a
    //    real record: the first is skipped as it arrives, never held or rescanned whole,
    //    and the next one is matched.
    let (good, want) = firing_record();
    let mut stream = gzip(br#"{"eventName":""#);
    let a_member = gzip_repeated(&vec![b'A'; MIB], 64);
    for _ in 0..32 {
        stream.extend_from_slice(&a_member);
    }
    let mut tail = b"\"}\n".to_vec();
    tail.extend_from_slice(&good);
    tail.push(b'\n');
    stream.extend(gzip(&tail));
    let first_len = 14 + zeros_len + 2;
    let dl4 = t.path().join("dead-4.ndjson");
    let out = detect(
        &[
            OsStr::new("--no-record"),
            "--dead-letter".as_ref(),
            dl4.as_os_str(),
        ],
        &stream,
    );
    let st = out.stats();
    assert_eq!(stat(&st, "records_in"), 2, "{st}");
    assert_eq!(stat(&st, "records_kept"), 1);
    assert_eq!(out.keys(), want);
    let dead = dead_letters(&dl4);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["raw_len"], first_len);
    assert_eq!(dead[0]["truncated"], true);
    assert_eq!(out.findings()[0]["input"]["byte_offset"], first_len + 1);
}

#[test]
fn a_10_mb_record_under_max_record_bytes_is_matched_archived_and_written_whole() {
    let (good, want) = firing_record();
    let mut member = br#""padding":""#.to_vec();
    member.resize(member.len() + 10_000_000, b'A');
    member.push(b'"');
    let big = with_request_parameter(&good, &member);
    assert!(big.len() > 10_000_000 && big.len() < 16 * MIB);
    let mut input = big.clone();
    input.push(b'\n');
    let t = tempfile::tempdir().expect("tempdir");
    // Over 8 MiB: read block by block; gzip'd it is a few KB, read whole and inflated.
    let plain = write_file(t.path(), "big.ndjson", &input);
    let gz = write_file(t.path(), "big.ndjson.gz", &gzip(&input));
    let archive = t.path().join("archive");
    for (name, args, stdin) in [
        (
            "file",
            vec![plain.as_os_str(), "--archive".as_ref(), archive.as_os_str()],
            &b""[..],
        ),
        ("gzip file", vec![gz.as_os_str()], &b""[..]),
        ("stdin", vec![], &input[..]),
    ] {
        let mut a: Vec<&OsStr> = vec!["--no-dedup".as_ref()];
        a.extend(args);
        let out = detect(&a, stdin);
        let st = out.stats();
        assert_eq!(stat(&st, "records_kept"), 1, "{name}: {st}");
        assert_eq!(stat(&st, "records_dead_lettered"), 0, "{name}");
        assert_eq!(out.keys(), want, "{name}");
        for line in out.stdout_lines() {
            let rec = common::raw_record(line).expect("record");
            assert!(
                rec.as_bytes() == &big[..],
                "{name}: the record is written whole"
            );
        }
    }
    let rows = archived(&archive, &["request_parameters", "event_name"]);
    assert_eq!(rows.len(), 1);
    let params: Value =
        serde_json::from_str(rows[0][0].as_deref().expect("request_parameters")).expect("JSON");
    assert_eq!(params["padding"].as_str().map(str::len), Some(10_000_000));

    // The limit counts the record's bytes: exactly its length keeps it.
    let len = big.len().to_string();
    let out = detect(&["--no-dedup", "--max-record-bytes", len.as_str()], &input);
    assert_eq!(stat(&out.stats(), "records_kept"), 1);
    let less = (big.len() - 1).to_string();
    let out = detect(&["--no-dedup", "--max-record-bytes", less.as_str()], &input);
    assert_eq!(stat(&out.stats(), "records_dead_lettered"), 1);
    assert!(out.stdout.is_empty());
}

#[test]
fn nesting_beyond_the_depth_limit_is_dead_lettered_and_the_next_record_matched() {
    let (good, _) = firing_record();
    let event: Value = serde_json::from_slice(&good).expect("record");
    let name = event["eventName"].as_str().expect("eventName");
    // simd-json accepts 1024 levels; `requestParameters` is level 2 of a record.
    let nested = |levels: usize, closed: bool| {
        let mut m = br#""deep":"#.to_vec();
        m.extend(std::iter::repeat_n(b'[', levels));
        if closed {
            m.extend(std::iter::repeat_n(b']', levels));
        }
        with_request_parameter(&good, &m)
    };
    let lines = [
        nested(100_000, true),
        good.clone(),
        nested(1022, true),
        nested(1023, true),
        nested(100_000, false),
        good.clone(),
    ];
    let dead_at = [0u64, 3, 4];
    let input = ndjson(&lines);
    // The same records with the deep ones replaced by short bad lines.
    let placeholder = b"not json".to_vec();
    let reference_lines: Vec<Vec<u8>> = (0..lines.len())
        .map(|i| {
            if dead_at.contains(&(i as u64)) {
                placeholder.clone()
            } else {
                good.clone()
            }
        })
        .collect();
    let t = tempfile::tempdir().expect("tempdir");
    // A rule whose selector jsonpath-rust evaluates over the whole record.
    let rules = t.path().join("rules");
    write_file(
        &rules,
        "descent.yml",
        format!(
            "title: JSONPath descent\nid: 88888888-8888-4888-8888-888888888888\nlogsource: {{product: aws, service: cloudtrail}}\ndetection:\n    sel:\n        '$..eventName': {name}\n    condition: sel\nlevel: low\n"
        )
        .as_bytes(),
    );
    let base: Vec<&OsStr> = vec![
        "--no-dedup".as_ref(),
        "--no-record".as_ref(),
        "--rules".as_ref(),
        rules.as_os_str(),
    ];
    let reference = positions(&detect(&base, &ndjson(&reference_lines)));
    assert!(
        reference
            .iter()
            .any(|(r, i)| r == "88888888-8888-4888-8888-888888888888" && *i == 2)
    );
    let file = write_file(t.path(), "deep.ndjson", &input);
    let archive = t.path().join("archive");
    let offsets = common::line_offsets(&input);
    for (what, extra, stdin) in [
        (
            "file",
            vec![file.as_os_str(), "--archive".as_ref(), archive.as_os_str()],
            &b""[..],
        ),
        ("stdin", vec![], &input[..]),
    ] {
        let dl = t.path().join(format!("dead-{what}.ndjson"));
        let mut a = base.clone();
        a.push("--dead-letter".as_ref());
        a.push(dl.as_os_str());
        a.extend(extra);
        let out = detect(&a, stdin);
        let st = out.stats();
        assert_eq!(stat(&st, "records_in"), 6, "{what}");
        assert_eq!(stat(&st, "records_kept"), 3, "{what}");
        assert_eq!(positions(&out), reference, "{what}");
        let dead = dead_letters(&dl);
        let idx: Vec<u64> = dead
            .iter()
            .filter_map(|d| d["record_index"].as_u64())
            .collect();
        assert_eq!(idx, dead_at, "{what}");
        for d in &dead {
            let i = d["record_index"].as_u64().unwrap_or(0) as usize;
            assert_eq!(d["line"], i as u64 + 1);
            assert_eq!(d["byte_offset"], offsets[i] as u64);
            assert_eq!(d["raw_len"], lines[i].len() as u64);
            let reason = d["reason"].as_str().unwrap_or_default();
            assert!(reason.contains("DepthLimitExceeded"), "{reason}");
        }
    }
    assert_eq!(archived(&archive, &["event_name"]).len(), 3);

    // Inside a delivery object, the deep elements are dead letters by position.
    let elements: Vec<Vec<u8>> = [0, 1, 2, 3, 5].iter().map(|&i| lines[i].clone()).collect();
    let doc = common::records_object(&elements);
    let placeholders: Vec<Vec<u8>> = [0, 1, 2, 3, 5]
        .iter()
        .map(|&i| {
            if i == 0 || i == 3 {
                b"42".to_vec()
            } else {
                good.clone()
            }
        })
        .collect();
    let dl = t.path().join("dead-doc.ndjson");
    let mut a = base.clone();
    a.push("--dead-letter".as_ref());
    a.push(dl.as_os_str());
    let out = detect(&a, &doc);
    assert_eq!(stat(&out.stats(), "records_kept"), 3);
    assert_eq!(
        positions(&out),
        positions(&detect(&base, &common::records_object(&placeholders)))
    );
    let idx: Vec<u64> = dead_letters(&dl)
        .iter()
        .filter_map(|d| d["record_index"].as_u64())
        .collect();
    assert_eq!(idx, [0, 3]);

    // The record at the limit goes through every finding format.
    let out = detect(&["--format", "ocsf", "--no-dedup"], &ndjson(&[&lines[2]]));
    assert!(
        !out.stderr.contains("could not be read back"),
        "{}",
        out.stderr
    );
    let ocsf: Vec<Value> = out
        .stdout_lines()
        .iter()
        .map(|l| serde_json::from_slice(l).expect("OCSF line"))
        .collect();
    assert!(!ocsf.is_empty() && ocsf.iter().all(|f| f["class_uid"] == 2004));
}

#[test]
fn invalid_utf8_in_a_string_is_dead_lettered_with_its_byte_and_the_neighbours_matched() {
    let (good, _) = firing_record();
    let bad = |bytes: &[u8]| {
        let mut m = br#""note":"ab"#.to_vec();
        m.extend_from_slice(bytes);
        m.extend_from_slice(br#"cd""#);
        with_request_parameter(&good, &m)
    };
    let bad_key = with_request_parameter(&good, b"\"k\xc3\":\"v\"");
    let variants = [
        bad(b"\xff\xfe"),     // never valid in UTF-8
        bad(b"\xed\xa0\x80"), // an encoded surrogate (CESU-8)
        bad(b"\xc0\xaf"),     // an overlong '/'
        bad(b"\xe2\x82"),     // a three-byte sequence cut short
        bad_key,
    ];
    let mut lines = vec![good.clone()];
    for v in &variants {
        lines.push(v.clone());
        lines.push(good.clone());
    }
    let input = ndjson(&lines);
    let reference_lines: Vec<Vec<u8>> = lines
        .iter()
        .map(|l| {
            if *l == good {
                good.clone()
            } else {
                b"not json".to_vec()
            }
        })
        .collect();
    let reference = positions(&detect(
        &["--no-dedup", "--no-record"],
        &ndjson(&reference_lines),
    ));
    assert!(!reference.is_empty());
    let t = tempfile::tempdir().expect("tempdir");
    let offsets = common::line_offsets(&input);
    for (what, stdin) in [("plain", input.clone()), ("gzip", gzip(&input))] {
        let dl = t.path().join(format!("dead-{what}.ndjson"));
        let out = detect(
            &[
                OsStr::new("--no-dedup"),
                "--no-record".as_ref(),
                "--dead-letter".as_ref(),
                dl.as_os_str(),
            ],
            &stdin,
        );
        let st = out.stats();
        assert_eq!(stat(&st, "records_kept"), 6, "{what}");
        assert_eq!(positions(&out), reference, "{what}");
        let dead = dead_letters(&dl);
        assert_eq!(dead.len(), variants.len());
        for (d, v) in dead.iter().zip(&variants) {
            let i = d["record_index"].as_u64().expect("index") as usize;
            assert_eq!(&lines[i], v);
            assert_eq!(d["byte_offset"], offsets[i] as u64);
            assert!(d.get("raw_base64").is_some(), "{d}");
            assert_eq!(&kept_bytes(d), v, "the bytes are kept exactly");
            let at = std::str::from_utf8(v).expect_err("invalid").valid_up_to();
            assert_eq!(
                d["reason"],
                format!("invalid JSON: invalid UTF-8 at byte {at} of the record")
            );
        }
        assert_clean_stderr(&out.stderr);
    }
    // A lone surrogate written as an escape is not a character either.
    let lone = with_request_parameter(&good, br#""note":"a\ud800b""#);
    let dl = t.path().join("dead-escape.ndjson");
    let out = detect(
        &[
            OsStr::new("--no-dedup"),
            "--dead-letter".as_ref(),
            dl.as_os_str(),
        ],
        &ndjson(&[lone, good.clone()]),
    );
    assert_eq!(stat(&out.stats(), "records_kept"), 1);
    let dead = dead_letters(&dl);
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("InvalidUnicodeCodepoint")
    );
}

#[test]
fn numbers_beyond_64_bits_are_matched_and_archived_as_their_text() {
    let (good, want) = firing_record();
    let huge = format!(
        r#""hugeInt":123456789012345678901234567890,"huge":1e400,"negHuge":-1e400,"long":1{},"negZero":-0,"tiny":1e-400,"u64max":18446744073709551615,"list":[1e999,2]"#,
        "0".repeat(400)
    );
    let rec = with_request_parameter(&good, huge.as_bytes());
    let t = tempfile::tempdir().expect("tempdir");
    let rules = t.path().join("rules");
    let rule = |id: &str, sel: &str| {
        format!(
            "title: {id}\nid: {id}\nlogsource: {{product: aws, service: cloudtrail}}\ndetection:\n    sel:\n        {sel}\n    condition: sel\nlevel: low\n"
        )
    };
    let docs = [
        rule("n-text", "requestParameters.huge: '1e400'"),
        rule(
            "n-text-prefix",
            "requestParameters.hugeInt|startswith: '1234567890123456789012'",
        ),
        rule("n-numeric-gt", "requestParameters.hugeInt|gt: 1000"),
        rule("n-zero", "requestParameters.tiny: 0"),
        rule("n-neg-zero", "requestParameters.negZero: 0"),
        rule("n-u64", "requestParameters.u64max: '18446744073709551615'"),
        rule("n-list", "requestParameters.list: '1e999'"),
        rule("n-miss", "requestParameters.huge: '1e401'"),
    ];
    write_file(&rules, "numbers.yml", docs.join("---\n").as_bytes());
    let archive = t.path().join("archive");
    let dl = t.path().join("dead.ndjson");
    let out = detect(
        &[
            OsStr::new("--rules"),
            rules.as_os_str(),
            "--archive".as_ref(),
            archive.as_os_str(),
            "--dead-letter".as_ref(),
            dl.as_os_str(),
            "--no-record".as_ref(),
        ],
        &ndjson(&[&rec]),
    );
    let st = out.stats();
    assert_eq!(stat(&st, "records_kept"), 1, "{st}");
    assert_eq!(stat(&st, "records_dead_lettered"), 0);
    assert_eq!(stat(&st, "records_archived"), 1);
    assert!(dead_letters(&dl).is_empty());
    let keys = out.keys();
    let builtin: Vec<_> = keys
        .iter()
        .filter(|(r, _)| !r.starts_with("n-"))
        .cloned()
        .collect();
    assert_eq!(
        builtin, want,
        "the built-in pack sees the record as without the numbers"
    );
    let ours: BTreeSet<&str> = keys
        .iter()
        .map(|(r, _)| r.as_str())
        .filter(|r| r.starts_with("n-"))
        .collect();
    assert_eq!(
        ours,
        BTreeSet::from([
            "n-list",
            "n-neg-zero",
            "n-numeric-gt",
            "n-text",
            "n-text-prefix",
            "n-u64",
            "n-zero"
        ])
    );
    // The finding's record is the line as read (serde_json's `Value` refuses 1e400, so
    // the lines are read as raw JSON here).
    let with_record = detect(
        &[OsStr::new("--rules"), rules.as_os_str()],
        &ndjson(&[&rec]),
    );
    assert_eq!(with_record.stdout_lines().len(), keys.len());
    for l in with_record.stdout_lines() {
        assert_eq!(
            common::raw_record(l).as_deref().map(str::as_bytes),
            Some(&rec[..])
        );
    }
    // The archive keeps every value: beyond 64 bits as its text.
    let rows = archived(&archive, &["request_parameters"]);
    assert_eq!(rows.len(), 1);
    let p: Value =
        serde_json::from_str(rows[0][0].as_deref().expect("request_parameters")).expect("JSON");
    assert_eq!(p["hugeInt"], "123456789012345678901234567890");
    assert_eq!(p["huge"], "1e400");
    assert_eq!(p["negHuge"], "-1e400");
    assert_eq!(p["long"].as_str().map(str::len), Some(401));
    assert_eq!(p["negZero"].as_f64(), Some(0.0));
    assert_eq!(p["tiny"].as_f64(), Some(0.0));
    assert_eq!(p["u64max"].as_u64(), Some(u64::MAX));
    assert_eq!(p["list"], serde_json::json!(["1e999", 2]));
}

/// `n` tiny records in the real samples' shape (their eventTime, eventSource,
/// eventName, errorCode and principal type, in their order), each with its own
/// eventID: as NDJSON, and as one `{"Records":[…]}` delivery object.
fn million_records(n: usize) -> (Vec<u8>, Vec<u8>) {
    let mut shapes = Vec::new();
    for s in common::samples() {
        let raw = common::gunzip_file(&s);
        for l in common::lines(&raw) {
            let r: Value = serde_json::from_slice(l).expect("record");
            let mut o = serde_json::Map::new();
            for k in ["eventTime", "eventSource", "eventName", "errorCode"] {
                if let Some(v) = r.get(k) {
                    o.insert(k.into(), v.clone());
                }
            }
            if let Some(ty) = r.pointer("/userIdentity/type") {
                o.insert("userIdentity".into(), serde_json::json!({ "type": ty }));
            }
            let mut text = serde_json::to_vec(&Value::Object(o)).expect("json");
            text.pop(); // the closing brace: the eventID goes last
            shapes.push(text);
        }
    }
    assert_eq!(shapes.len(), 11_625);
    let mut lines = Vec::with_capacity(n * 160);
    let mut doc = Vec::with_capacity(n * 160);
    doc.extend_from_slice(br#"{"Records":["#);
    for i in 0..n {
        let start = lines.len();
        lines.extend_from_slice(&shapes[i % shapes.len()]);
        write!(
            lines,
            r#","eventID":"{i:08x}-0000-4000-8000-000000000000"}}"#
        )
        .expect("write");
        if i > 0 {
            doc.push(b',');
        }
        doc.extend_from_slice(&lines[start..]);
        lines.push(b'\n');
    }
    doc.extend_from_slice(b"]}\n");
    (lines, doc)
}

#[test]
fn a_records_document_of_a_million_records_counts_and_matches_every_one() {
    let n = 1_000_000;
    let (lines, doc) = million_records(n);
    let t = tempfile::tempdir().expect("tempdir");
    let doc_path = write_file(t.path(), "million.json", &doc);
    let nd_path = write_file(t.path(), "million.ndjson", &lines);
    println!("{n} records, {} bytes as one delivery object", doc.len());
    drop((lines, doc));
    let as_doc = detect(&[OsStr::new("--no-record"), doc_path.as_os_str()], b"");
    let as_ndjson = detect(&[OsStr::new("--no-record"), nd_path.as_os_str()], b"");
    for out in [&as_doc, &as_ndjson] {
        let st = out.stats();
        assert_eq!(stat(&st, "records_in"), n as u64);
        assert_eq!(stat(&st, "records_kept"), n as u64);
        assert_eq!(stat(&st, "records_dead_lettered"), 0);
        assert_eq!(stat(&st, "documents_skipped"), 0);
        assert_eq!(
            stat(&st, "records_deduplicated"),
            0,
            "every eventID is distinct"
        );
        assert_eq!(st["findings"]["total"], out.findings().len() as u64);
    }
    let found = positions(&as_doc);
    println!("{} findings", found.len());
    assert!(found.len() > 10_000, "{}", found.len());
    let last = found.iter().map(|(_, i)| *i).max().unwrap_or(0);
    assert!(
        last > n as u64 - 1_000,
        "the end of the array is matched too: {last}"
    );
    assert_eq!(found, positions(&as_ndjson));
    assert_eq!(as_doc.keys(), as_ndjson.keys());
    assert_eq!(as_doc.stats()["findings"], as_ndjson.stats()["findings"]);
}

/// A "billion laughs": nine levels of ten aliases each, 10^9 nodes expanded.
fn alias_bomb() -> String {
    let mut s = String::from(
        "title: laughs\nid: 22222222-2222-4222-8222-222222222222\nlogsource: {product: aws, service: cloudtrail}\na0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n",
    );
    for i in 1..10 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        s.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    s.push_str("detection:\n    sel:\n        eventName: *a9\n    condition: sel\nlevel: low\n");
    s
}

#[test]
fn a_yaml_alias_bomb_is_a_rule_error_and_the_other_rules_still_match() {
    let t = tempfile::tempdir().expect("tempdir");
    let dir = t.path().join("rules");
    let bomb = write_file(&dir, "bomb.yml", alias_bomb().as_bytes());
    let deep = format!(
        "title: deep\nid: 77777777-7777-4777-8777-777777777777\nlogsource: {{product: aws, service: cloudtrail}}\ndetection:\n    sel:\n        eventName: {}x{}\n    condition: sel\nlevel: low\n",
        "[".repeat(200),
        "]".repeat(200)
    );
    let deep_path = write_file(&dir, "deep.yml", deep.as_bytes());
    let good_rule = common::root().join("rules/aws_unauthorized_api_call.yml");
    std::fs::copy(&good_rule, dir.join("aws_unauthorized_api_call.yml")).expect("copy rule");
    let sample = common::sample("stratus-red-team");
    // The error names file:line:column: the first alias of `a5` passes 200,000 nodes.
    let bomb_err = format!(
        "{}:9:10: error: invalid YAML: the document expands to more than 200000 nodes (aliases included) [yaml]",
        bomb.display()
    );
    let deep_err = format!(
        "{}:6:145: error: invalid YAML: nested deeper than 128 levels [yaml]",
        deep_path.display()
    );

    let out = common::run(
        &[OsStr::new("rules"), "validate".as_ref(), dir.as_os_str()],
        b"",
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.lines().any(|l| l == bomb_err), "{text}");
    assert!(text.lines().any(|l| l == deep_err), "{text}");
    assert!(
        text.contains("1 rules and 0 filters from 3 files: 2 errors"),
        "{text}"
    );

    let out = common::run(
        &[OsStr::new("rules"), "validate".as_ref(), bomb.as_os_str()],
        b"",
    );
    assert_eq!(out.code, 1);
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l == bomb_err)
    );

    let reference = detect(
        &[
            OsStr::new("--no-builtin"),
            "--no-record".as_ref(),
            "--rules".as_ref(),
            good_rule.as_os_str(),
            sample.as_os_str(),
        ],
        b"",
    );
    assert!(!reference.findings().is_empty());
    let out = detect(
        &[
            OsStr::new("--no-builtin"),
            "--no-record".as_ref(),
            "--rules".as_ref(),
            dir.as_os_str(),
            sample.as_os_str(),
        ],
        b"",
    );
    assert_eq!(stat(&out.stats(), "rules_loaded"), 1);
    assert_eq!(
        out.keys(),
        reference.keys(),
        "the other rule of the directory matches"
    );
    for want in [&bomb_err, &deep_err] {
        let (loc, rest) = want.split_once(": error: ").expect("diagnostic");
        let msg = rest.trim_end_matches(" [yaml]");
        assert!(
            out.stderr
                .lines()
                .any(|l| l.contains(&format!("rule skipped: {loc}: {msg}"))),
            "{}",
            out.stderr
        );
    }
    assert_clean_stderr(&out.stderr);

    // With --strict the run does not start.
    let out = common::run(
        &[
            OsStr::new("--strict"),
            "--rules".as_ref(),
            bomb.as_os_str(),
            sample.as_os_str(),
        ],
        b"",
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stdout.is_empty());
}

#[test]
fn pathological_regexes_finish_and_oversized_ones_are_rule_errors() {
    let (good, _) = firing_record();
    let t = tempfile::tempdir().expect("tempdir");
    let dir = t.path().join("rules");
    let sigma = |id: &str, re: &str| {
        format!(
            "title: {id}\nid: {id}\nlogsource: {{product: aws, service: cloudtrail}}\ndetection:\n    sel:\n        requestParameters.pad|re: '{re}'\n    condition: sel\nlevel: low\n"
        )
    };
    let metric = |id: &str, re: &str| {
        format!(
            "title: {id}\nid: {id}\nlogsource: {{product: aws, service: cloudtrail}}\npattern: '{{ $.requestParameters.pad = %{re}% }}'\nlevel: low\n"
        )
    };
    let slow = [
        sigma("re-nested-star", "^(a*)*b$"),
        sigma("re-nested-plus", "^(x+x+)+y$"),
        sigma("re-nested-star-all", "^(a*)*$"),
        metric("mf-nested-star", "^(a*)*b$"),
        metric("mf-nested-plus", "^(x+x+)+y$"),
        metric("mf-nested-plus-all", "^(x+x+)+$"),
    ];
    write_file(&dir, "slow.yml", slow.join("---\n").as_bytes());
    let huge = write_file(
        &dir,
        "huge.yml",
        sigma("re-huge", r"\w{1000}{1000}").as_bytes(),
    );
    // Twenty thousand alternatives, each with a Unicode class (a literal alternation,
    // even of 200,000 words, compiles within the limit).
    let huge_alt: Vec<String> = (0..20_000).map(|i| format!(r"(?:w{i:05}\w+x)")).collect();
    let huge_alt_path = write_file(
        &dir,
        "huge_alternation.yml",
        sigma("re-alternation", &huge_alt.join("|")).as_bytes(),
    );
    let huge_metric = write_file(
        &dir,
        "huge_metric.yml",
        metric("mf-huge", r"\w{1000}{1000}").as_bytes(),
    );
    let good_rule = common::root().join("rules/aws_unauthorized_api_call.yml");
    std::fs::copy(&good_rule, dir.join("aws_unauthorized_api_call.yml")).expect("copy rule");

    let out = common::run(
        &[OsStr::new("rules"), "validate".as_ref(), dir.as_os_str()],
        b"",
    );
    assert_eq!(out.code, 1);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let limit = "Compiled regex exceeds size limit of 1048576 bytes.";
    // The error points at the pattern: the opening quote of a `|re` value, the `%`
    // of a metric-filter regex.
    let at = |file: &Path, line: usize, c: char| {
        let text = std::fs::read_to_string(file).expect("rule file");
        let l = text.lines().nth(line - 1).expect("line");
        format!("{line}:{}", l.find(c).expect("pattern") + 1)
    };
    for (file, loc, check) in [
        (&huge, at(&huge, 6, '\''), "[regex]"),
        (&huge_alt_path, at(&huge_alt_path, 6, '\''), "[regex]"),
        (
            &huge_metric,
            at(&huge_metric, 4, '%'),
            "[metric-filter-pattern]",
        ),
    ] {
        let prefix = format!("{}:{loc}: error: ", file.display());
        assert!(
            text.lines()
                .any(|l| l.starts_with(&prefix) && l.contains(limit) && l.ends_with(check)),
            "{prefix} … {limit} {check} in:\n{text}"
        );
    }
    assert!(
        text.contains("7 rules and 0 filters from 5 files: 3 errors"),
        "{text}"
    );

    // 100 kB of `a` and of `x` in real records; the matcher is linear whatever the
    // pattern, so the runs finish, and only the patterns that match do.
    let value = |c: char| {
        let mut r: Value = serde_json::from_slice(&good).expect("record");
        r["requestParameters"] = serde_json::json!({ "pad": c.to_string().repeat(100_000) });
        r["eventID"] = Value::String(format!("pad-{c}"));
        serde_json::to_vec(&r).expect("json")
    };
    let input = ndjson(&[value('a'), value('x')]);
    let reference = detect(
        &[
            OsStr::new("--no-builtin"),
            "--no-record".as_ref(),
            "--rules".as_ref(),
            good_rule.as_os_str(),
        ],
        &input,
    );
    assert!(!reference.keys().is_empty());
    let out = detect(
        &[
            OsStr::new("--no-builtin"),
            "--no-record".as_ref(),
            "--rules".as_ref(),
            dir.as_os_str(),
        ],
        &input,
    );
    assert_eq!(stat(&out.stats(), "rules_loaded"), 7);
    let mut want = reference.keys();
    want.push(("mf-nested-plus-all".into(), "pad-x".into()));
    want.push(("re-nested-star-all".into(), "pad-a".into()));
    want.sort();
    assert_eq!(out.keys(), want);
    let skipped = out
        .stderr
        .lines()
        .filter(|l| l.contains("rule skipped:") && l.contains(limit))
        .count();
    assert_eq!(skipped, 3, "{}", out.stderr);
}

#[test]
fn partition_values_from_records_sources_and_flags_stay_inside_the_archive_root() {
    let t = tempfile::tempdir().expect("tempdir");
    let work = t.path().join("a/b/c");
    let long = "x".repeat(10_000);
    let accounts = [
        "/etc",
        "/",
        ".",
        "...",
        "a\u{0}b",
        &long,
        "é/../..",
        r"C:\Windows",
        "\u{202e}..",
        r"..\..\x",
        " ",
        "~",
        "\n",
    ];
    let times = [
        "/etc/passwd",
        "2024-01-01T00:00:00Z/../../x",
        "\u{0}",
        &"9".repeat(5000),
        "-1",
    ];
    let mut input = Vec::new();
    for (i, v) in accounts.iter().enumerate() {
        let rec = serde_json::json!({"eventVersion": "1.08", "eventTime": "2024-01-01T00:00:00Z",
            "eventName": "GetCallerIdentity", "eventID": format!("acct-{i}"), "recipientAccountId": v, "awsRegion": v});
        input.extend(serde_json::to_vec(&rec).expect("json"));
        input.push(b'\n');
    }
    for (i, v) in times.iter().enumerate() {
        let rec = serde_json::json!({"eventVersion": "1.08", "eventTime": v, "eventName": "A",
            "eventID": format!("time-{i}"), "recipientAccountId": "111122223333", "awsRegion": "us-east-1"});
        input.extend(serde_json::to_vec(&rec).expect("json"));
        input.push(b'\n');
    }
    let n = (accounts.len() + times.len()) as u64;
    let records = write_file(&work, "in/hostile.ndjson", &input);
    let check = |root: &Path, partition: &str| {
        let files = common::files_ending(root, ".parquet");
        assert!(!files.is_empty());
        let mut rows = 0;
        for f in &files {
            let rel = f.strip_prefix(root).expect("under the root");
            let parts: Vec<String> = rel
                .iter()
                .map(|c| c.to_string_lossy().into_owned())
                .collect();
            assert!(
                rel.components()
                    .all(|c| matches!(c, std::path::Component::Normal(_))),
                "{}",
                rel.display()
            );
            assert_eq!(parts.len(), 5, "{parts:?}");
            assert_eq!(parts[1], format!("tp_partition={partition}"));
            let index = parts[2].strip_prefix("tp_index=").expect("tp_index");
            assert!(
                !index.is_empty()
                    && index.len() <= 128
                    && index
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c)),
                "{index}"
            );
            assert!(index.chars().any(|c| c != '.'), "{index}");
            let date = parts[3].strip_prefix("tp_date=").expect("tp_date");
            assert!(date.len() == 10 && date.as_bytes()[4] == b'-', "{date}");
            rows += parquet::file::reader::FileReader::metadata(
                &parquet::file::reader::SerializedFileReader::new(
                    std::fs::File::open(f).expect("open"),
                )
                .expect("parquet"),
            )
            .file_metadata()
            .num_rows();
        }
        assert_eq!(rows as u64, n);
    };

    // --partition from the command line.
    let root = work.join("archive-flag");
    let out = detect(
        &[
            records.as_os_str(),
            "--no-record".as_ref(),
            "--archive".as_ref(),
            root.as_os_str(),
            "--partition".as_ref(),
            "../../../escape".as_ref(),
        ],
        b"",
    );
    assert_eq!(stat(&out.stats(), "records_archived"), n);
    check(&root, ".._.._.._escape");
    let indexes: BTreeSet<String> = common::files_ending(&root, ".parquet")
        .iter()
        .filter_map(|f| f.strip_prefix(&root).ok())
        .filter_map(|r| r.iter().nth(2).map(|c| c.to_string_lossy().into_owned()))
        .collect();
    for want in [
        "tp_index=_etc",
        "tp_index=unknown",
        "tp_index=a_b",
        "tp_index=C__Windows",
        "tp_index=.._.._x",
        "tp_index=_",
    ] {
        assert!(indexes.contains(want), "{want} in {indexes:?}");
    }
    assert!(indexes.contains(&format!("tp_index={}", "x".repeat(128))));

    // A source name from the configuration, and tp_index from a hostile awsRegion.
    let root = work.join("archive-config");
    let state = work.join("state");
    let cfg = write_file(
        &work,
        "trailhound.yaml",
        format!(
            "version: 1\nstate_dir: {state:?}\narchive: {{root: {root:?}, tp_index: aws_region}}\nsources:\n  - files: {{name: \"../../../escape\", paths: [{records:?}]}}\n"
        )
        .as_bytes(),
    );
    let out = common::run(
        &[
            OsStr::new("run"),
            "--stats".as_ref(),
            "json".as_ref(),
            "--config".as_ref(),
            cfg.as_os_str(),
            "--no-record".as_ref(),
        ],
        b"",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    check_accounting(&out.stats());
    assert_eq!(stat(&out.stats(), "records_archived"), n);
    check(&root, ".._.._.._escape");

    // Nothing was written outside the working directory.
    let mut outside = Vec::new();
    let mut dir = work.clone();
    while dir != t.path() {
        let parent = dir.parent().expect("parent").to_path_buf();
        for e in std::fs::read_dir(&parent).expect("ls").flatten() {
            if e.path() != dir {
                outside.push(e.path());
            }
        }
        dir = parent;
    }
    assert!(outside.is_empty(), "{outside:?}");
    let mut top: Vec<String> = std::fs::read_dir(&work)
        .expect("ls")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    let allowed = [
        "archive-config",
        "archive-flag",
        "in",
        "state",
        "trailhound.yaml",
    ];
    assert!(top.iter().all(|n| allowed.contains(&n.as_str())), "{top:?}");
}

#[test]
fn control_characters_from_the_input_reach_stderr_escaped_and_stdout_untouched() {
    let (good, want) = firing_record();
    let t = tempfile::tempdir().expect("tempdir");
    let evil = "evil\n2026-01-01T00:00:00Z ERROR forged\u{1b}[31m\r\u{7}\u{1}\t\u{9b}\u{2028}";
    let inputs = t.path().join("in");
    // A file name that forges a log line, with records whose bad bytes are control
    // characters (reported in the parser's message), and a gzip stream cut short.
    let name = format!("{evil}.ndjson");
    let mut text = good.clone();
    text.extend_from_slice(b"\n{\"eventName\":\x01\x1b[31mred\r}\n{\"eventName\": \"x\x0b\", oops\x7f}\n\x1b]0;title\x07\n");
    let path = write_file(&inputs, &name, &text);
    let gz = gzip(&ndjson(&[good.clone(), good.clone()]));
    let cut_path = write_file(&inputs, &format!("{evil}.json.gz"), &gz[..gz.len() - 12]);
    // A rule file whose name, title and values hold control characters.
    let rules = t.path().join("rules");
    write_file(
        &rules,
        &format!("{evil}.yml"),
        b"title: \"Evil\\e[31m\\r\\nFORGED ERROR\"\nid: 99999999-9999-4999-8999-999999999999\nlogsource: {product: aws, service: cloudtrail}\n\"bad\\ekey\\n\": 1\ndetection:\n    sel:\n        eventName: X\n    condition: sel\nlevel: \"hi\\e[0m\\nERROR forged\"\n",
    );
    let missing = t.path().join(format!("missing-{evil}"));
    let dl = t.path().join("dead.ndjson");
    let out = run_stats(
        &[
            OsStr::new("--no-dedup"),
            "--rules".as_ref(),
            rules.as_os_str(),
            "--dead-letter".as_ref(),
            dl.as_os_str(),
            inputs.as_os_str(),
            missing.as_os_str(),
        ],
        b"",
    );
    assert_eq!(out.code, 3, "the missing input: {}", out.stderr);
    assert_clean_stderr(&out.stderr);
    let escaped =
        "evil\\n2026-01-01T00:00:00Z ERROR forged\\x1b[31m\\r\\x07\\x01\\t\\u{9b}\\u{2028}";
    for (what, needle) in [
        (
            "a malformed record's input",
            format!(
                "input={}",
                inputs.join(format!("{escaped}.ndjson")).display()
            ),
        ),
        ("the parser's character", "('\\x01')".to_string()),
        (
            "the cut gzip stream",
            format!(
                "input={}",
                inputs.join(format!("{escaped}.json.gz")).display()
            ),
        ),
        ("the missing input", format!("missing-{escaped}")),
        ("the rule file", format!("{escaped}.yml")),
        (
            "the rule's value",
            "unknown level 'hi\\x1b[0m\\nERROR forged'".to_string(),
        ),
    ] {
        assert!(
            out.stderr.contains(&needle),
            "{what}: {needle} not in\n{}",
            out.stderr
        );
    }
    // stdout and the dead-letter file are JSON: the names are there as they are, and
    // the findings are those of the same files under plain names.
    let plain = t.path().join("plain");
    write_file(&plain, "a.ndjson", &text);
    write_file(&plain, "b.json.gz", &gz[..gz.len() - 12]);
    let reference = detect(&[OsStr::new("--no-dedup"), plain.as_os_str()], b"");
    assert!(reference.keys().len() >= want.len());
    assert_eq!(out.keys(), reference.keys());
    let findings = out.findings();
    let names: BTreeSet<&str> = findings
        .iter()
        .filter_map(|f| f["input"]["name"].as_str())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from([
            path.to_str().expect("utf-8"),
            cut_path.to_str().expect("utf-8")
        ])
    );
    let dead = dead_letters(&dl);
    assert!(dead.len() >= 3);
    assert!(
        dead.iter()
            .all(|d| d["input"] == path.to_str().expect("utf-8")
                || d["input"] == cut_path.to_str().expect("utf-8"))
    );

    // `rules validate` writes one line per problem, escaped the same way.
    let out = common::run(
        &[OsStr::new("rules"), "validate".as_ref(), rules.as_os_str()],
        b"",
    );
    assert_eq!(out.code, 1);
    let text = String::from_utf8(out.stdout.clone()).expect("utf-8");
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "{text:?}"
    );
    let file = rules.join(format!("{escaped}.yml")).display().to_string();
    for l in text.lines() {
        assert!(
            l.starts_with(&file) || l.contains(" rules and "),
            "a forged line: {l:?}"
        );
    }
    assert!(
        text.contains("unknown level 'hi\\x1b[0m\\nERROR forged'"),
        "{text}"
    );
    assert_clean_stderr(&out.stderr);
}

#[test]
fn secrets_in_the_configuration_never_reach_stdout_or_stderr() {
    const SECRET_KEY: &str = "SecretKey/doNotPrint+A1b2C3d4E5f6G7h8I9j0";
    const SESSION_TOKEN: &str = "SessionToken-doNotPrint-FwoGZXIvYXdzEJr";
    const EXTERNAL_ID: &str = "ExternalId-doNotPrint-7741";
    const SASL_PASSWORD: &str = "SaslPassword-doNotPrint-9f8e7d";
    const TYPO_PASSWORD: &str = "TypoPassword-doNotPrint-1a2b3c";
    const ENV_SECRET: &str = "EnvSecret\"doNotPrint: [x";
    let all = [
        SECRET_KEY,
        SESSION_TOKEN,
        EXTERNAL_ID,
        SASL_PASSWORD,
        TYPO_PASSWORD,
        "EnvSecret",
        "doNotPrint",
    ];
    let t = tempfile::tempdir().expect("tempdir");
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let connection = |extra: &str| {
        format!(
            "connections:\n  c1:\n    endpoint_url: http://127.0.0.1:{port}\n    region: us-east-1\n    s3_force_path_style: true\n    max_error_retry_attempts: 1\n    access_key: AKIAEXAMPLEKEY000001\n    secret_key: \"{SECRET_KEY}\"\n    session_token: {SESSION_TOKEN}\n{extra}"
        )
    };
    let kafka = |options: &str, extra: &str| {
        format!(
            "  - kafka:\n      name: siem\n      brokers: 127.0.0.1:{port}\n      topic: findings\n{extra}      rdkafka_options:\n        security.protocol: SASL_PLAINTEXT\n        sasl.mechanism: PLAIN\n        sasl.username: trailhound\n        sasl.password: {SASL_PASSWORD}\n{options}"
        )
    };
    let configs = [
        // An unknown key beside the secrets.
        ("unknown-key", format!("version: 1\n{}", connection("    regoin: us-east-1\n")), "unknown field `regoin`"),
        // A wrong value beside them.
        ("bad-value", format!("version: 1\n{}", connection("    api_timeout: soon\n")), "api_timeout"),
        // A rule the file cannot hold: external_id without role_arn.
        ("external-id", format!("version: 1\n{}", connection(&format!("    external_id: {EXTERNAL_ID}\n"))), "external_id needs role_arn"),
        // A Kafka sink with a misspelt secret property (librdkafka refuses it, and
        // rdkafka's error would show its value).
        ("kafka-typo", format!("version: 1\nsinks:\n{}", kafka(&format!("        sasl.pasword: {TYPO_PASSWORD}\n"), "")), "sasl.pasword"),
        // A Kafka sink with a bad key beside the password.
        ("kafka-compression", format!("version: 1\nsinks:\n{}", kafka("", "      compression: bogus\n")), "compression"),
        // An environment variable whose value breaks the YAML.
        ("env", "version: 1\nconnections:\n  c1:\n    access_key: AKIAX\n    secret_key: ${TH_TEST_SECRET}\n".to_string(), "trailhound.yaml"),
    ];
    let assert_absent = |what: &str, out: &Output| {
        let stdout = String::from_utf8_lossy(&out.stdout);
        for s in all {
            assert!(
                !out.stderr.contains(s),
                "{what}: stderr holds {s}:\n{}",
                out.stderr
            );
            assert!(!stdout.contains(s), "{what}: stdout holds {s}");
        }
    };
    let sample = common::sample("grycap-cloudtrail-tracker");
    for (what, text, expected) in &configs {
        let cfg = write_file(&t.path().join(what), "trailhound.yaml", text.as_bytes());
        let run = |args: &[&OsStr]| {
            let mut c = std::process::Command::new(common::BIN);
            c.args(args)
                .env("TH_TEST_SECRET", ENV_SECRET)
                .env_remove("RUST_LOG");
            let o = c.output().expect("run trailhound");
            Output {
                code: o.status.code().unwrap_or(-1),
                stdout: o.stdout,
                stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            }
        };
        let out = run(&[OsStr::new("config"), "check".as_ref(), cfg.as_os_str()]);
        // `config check` does not start librdkafka, which alone knows its properties.
        if *what == "kafka-typo" {
            assert_eq!(out.code, 0, "{what}: {}", out.stderr);
        } else {
            assert_eq!(out.code, 2, "{what}: {}", out.stderr);
            assert!(
                out.stderr.contains(expected),
                "{what}: {expected} not in {}",
                out.stderr
            );
        }
        assert_absent(&format!("{what} (config check)"), &out);
        let out = run(&[
            OsStr::new("--config"),
            cfg.as_os_str(),
            "--log-level".as_ref(),
            "trace".as_ref(),
            sample.as_os_str(),
        ]);
        assert_eq!(out.code, 2, "{what}: {}", out.stderr);
        assert!(
            out.stderr.contains(expected),
            "{what}: {expected} not in {}",
            out.stderr
        );
        assert!(out.stdout.is_empty());
        assert_absent(&format!("{what} (detect)"), &out);
    }

    // The Kafka source of the daemon: the consumer is refused the misspelt property;
    // the source stops (exit 3) naming the property, not its value.
    let cfg = write_file(
        t.path(),
        "kafka-source.yaml",
        format!(
            "version: 1\nsources:\n  - kafka:\n      name: bus\n      brokers: 127.0.0.1:{port}\n      topics: [cloudtrail]\n      group_id: trailhound\n      rdkafka_options:\n        sasl.password: {SASL_PASSWORD}\n        sasl.pasword: {TYPO_PASSWORD}\n"
        )
        .as_bytes(),
    );
    let out = common::run(
        &[
            OsStr::new("run"),
            "--stats".as_ref(),
            "json".as_ref(),
            "--config".as_ref(),
            cfg.as_os_str(),
            "--log-level".as_ref(),
            "trace".as_ref(),
        ],
        b"",
    );
    assert_eq!(out.code, 3, "{}", out.stderr);
    check_accounting(&out.stats());
    assert!(
        out.stderr
            .contains(r#"No such configuration property: "sasl.pasword""#),
        "{}",
        out.stderr
    );
    assert_absent("kafka source", &out);

    // A valid connection whose endpoint refuses: the run fails (exit 3) naming the
    // problem, at trace level with the SDK's own lines, and no secret shows.
    let cfg = write_file(
        t.path(),
        "ok.yaml",
        format!("version: 1\n{}", connection("")).as_bytes(),
    );
    let out = run_stats(
        &[
            OsStr::new("--config"),
            cfg.as_os_str(),
            "--connection".as_ref(),
            "c1".as_ref(),
            "--log-level".as_ref(),
            "trace".as_ref(),
            "s3://trail-bucket/".as_ref(),
        ],
        b"",
    );
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr.lines().count() > 20,
        "the SDK's trace lines: {}",
        out.stderr
    );
    assert!(out.stderr.contains("connection failed"), "{}", out.stderr);
    assert_absent("refused connection", &out);
    let out = common::run(
        &[OsStr::new("config"), "check".as_ref(), cfg.as_os_str()],
        b"",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_absent("config check of a valid file", &out);
}
