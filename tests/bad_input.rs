//! Damaged and hostile input: a cut gzip stream, broken and non-object records, a
//! 50 MB line, binary garbage, empty and blank input. Every run must exit 0, keep the
//! good records' findings, dead-letter the bad bytes with their exact position, and
//! keep `records_in = kept + filtered + deduplicated + dead_lettered`.

mod common;

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine;
use common::{detect, keys, stat};
use serde_json::Value;

/// Runs `detect` with a dead-letter file; returns the run and its dead letters, each
/// validated against `schemas/dead-letter.schema.json` and counted in the stats.
fn detect_dl(args: &[&OsStr], stdin: &[u8]) -> (common::Output, Vec<Value>) {
    let t = tempfile::tempdir().expect("tempdir");
    let dl = t.path().join("dead.ndjson");
    // The cases repeat one real record on purpose: keep the repeats.
    let mut all: Vec<&OsStr> = vec![
        "--no-dedup".as_ref(),
        "--dead-letter".as_ref(),
        dl.as_os_str(),
    ];
    all.extend_from_slice(args);
    let out = detect(&all, stdin);
    let text = std::fs::read_to_string(&dl).expect("dead-letter file is UTF-8");
    let v = common::validator("dead-letter.schema.json");
    let dead: Vec<Value> = text
        .lines()
        .map(|l| {
            let d: Value = serde_json::from_str(l).expect("dead letter is JSON");
            common::assert_valid(&v, &d, "dead letter");
            d
        })
        .collect();
    assert_eq!(
        dead.len() as u64,
        stat(&out.stats(), "records_dead_lettered"),
        "dead-letter file and stats disagree"
    );
    (out, dead)
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

/// Checks that a dead letter's position and bytes are those of `input`.
fn points_into(d: &Value, input: &[u8]) {
    let at = d["byte_offset"].as_u64().expect("byte_offset") as usize;
    let len = d["raw_len"].as_u64().expect("raw_len") as usize;
    let kept = kept_bytes(d);
    assert!(at + len <= input.len(), "dead letter beyond the input: {d}");
    if d["truncated"] == true {
        assert!(kept.len() < len && input[at..].starts_with(&kept), "{d}");
    } else {
        assert_eq!(&kept[..], &input[at..at + len], "dead letter bytes: {d}");
    }
    let line = input[..at].iter().filter(|&&b| b == b'\n').count() as u64 + 1;
    assert_eq!(d["line"].as_u64(), Some(line), "dead letter line: {d}");
}

/// A stratus-red-team line the built-in pack fires on, and that pack's rule ids for it.
fn firing_record() -> (Vec<u8>, Vec<(String, String)>) {
    let s = common::sample("stratus-red-team");
    let data = common::gunzip_file(&s);
    let lines = common::lines(&data);
    let out = detect(&[s.as_os_str(), "--no-record".as_ref()], b"");
    let first = &out.findings()[0];
    let idx = first["input"]["record_index"].as_u64().expect("index") as usize;
    let want: Vec<_> = out
        .findings()
        .into_iter()
        .filter(|f| f["input"]["record_index"].as_u64() == Some(idx as u64))
        .collect();
    (lines[idx].to_vec(), keys(&want))
}

#[test]
fn truncated_gzip_keeps_the_complete_records() {
    let s = common::sample("invictus-aws-dataset");
    let raw = std::fs::read(&s).expect("read sample");
    let full = detect(&[s.as_os_str(), "--no-record".as_ref()], b"").findings();
    let cut = &raw[..raw.len() / 2];
    // What flate2 can decode of the first half: complete lines and one partial tail.
    let mut prefix = Vec::new();
    let err = flate2::read::MultiGzDecoder::new(cut).read_to_end(&mut prefix);
    assert!(err.is_err(), "half a gzip stream decodes without error");
    let complete = prefix.iter().filter(|&&b| b == b'\n').count();
    let tail_at = prefix
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let tail = &prefix[tail_at..];
    assert!(complete > 0 && !tail.is_empty());
    let want: Vec<Value> = full
        .into_iter()
        .filter(|f| f["input"]["record_index"].as_u64().expect("index") < complete as u64)
        .collect();
    assert!(!want.is_empty());

    let t = tempfile::tempdir().expect("tempdir");
    let f = t.path().join("cut-in-half.json.gz");
    std::fs::write(&f, cut).expect("write");
    for (name, args, stdin) in [
        (f.display().to_string(), vec![f.as_os_str()], &b""[..]),
        ("<stdin>".to_string(), vec![], cut),
    ] {
        let mut a = args.clone();
        a.push("--no-record".as_ref());
        let (out, dead) = detect_dl(&a, stdin);
        let st = out.stats();
        assert_eq!(stat(&st, "records_kept"), complete as u64, "{name}");
        assert_eq!(stat(&st, "records_in"), complete as u64 + 1, "{name}");
        assert_eq!(stat(&st, "bytes_decoded"), prefix.len() as u64, "{name}");
        assert_eq!(
            stat(&st, "inputs_failed"),
            0,
            "damaged content is not an I/O failure"
        );
        assert_eq!(out.keys(), keys(&want), "{name}: findings before the cut");
        let warn = out
            .stderr
            .lines()
            .find(|l| l.contains("truncated or corrupt"))
            .unwrap_or_else(|| panic!("no truncation warning: {}", out.stderr));
        assert!(warn.contains(&name), "warning does not name {name}: {warn}");
        assert_eq!(dead.len(), 1, "{dead:?}");
        assert_eq!(dead[0]["record_index"].as_u64(), Some(complete as u64));
        assert_eq!(dead[0]["input"], name.as_str());
        points_into(&dead[0], &prefix);
        assert_eq!(dead[0]["raw_len"].as_u64(), Some(tail.len() as u64));
    }
}

#[test]
fn invalid_json_line_among_good_lines() {
    let s = common::sample("stratus-red-team");
    let data = common::gunzip_file(&s);
    let lines = common::lines(&data);
    let reference = detect(&[s.as_os_str(), "--no-record".as_ref()], b"").keys();
    // A real record cut in the middle, inserted as line 101.
    let bad = &lines[100][..lines[100].len() / 2];
    let mut input = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if i == 100 {
            input.extend_from_slice(bad);
            input.push(b'\n');
        }
        input.extend_from_slice(l);
        input.push(b'\n');
    }
    let t = tempfile::tempdir().expect("tempdir");
    let f = t.path().join("one-bad-line.ndjson");
    std::fs::write(&f, &input).expect("write");
    let all = common::lines(&input);
    for (name, args, stdin) in [
        ("<stdin>".to_string(), vec![], &input[..]),
        (f.display().to_string(), vec![f.as_os_str()], &b""[..]),
    ] {
        let (out, dead) = detect_dl(&args, stdin);
        assert_eq!(out.keys(), reference, "{name}: good lines lost findings");
        assert_eq!(stat(&out.stats(), "records_in"), lines.len() as u64 + 1);
        assert_eq!(dead.len(), 1, "{name}: {dead:?}");
        let d = &dead[0];
        assert_eq!(d["input"], name.as_str());
        assert_eq!(d["record_index"], 100);
        assert_eq!(d["line"], 101);
        assert_eq!(d["truncated"], false);
        assert_eq!(d["raw"].as_str().map(str::as_bytes), Some(bad));
        assert!(!d["reason"].as_str().unwrap_or_default().is_empty());
        points_into(d, &input);
        // Records after the bad line keep their own index and line.
        for fd in out.findings() {
            let i = fd["input"]["record_index"].as_u64().expect("index") as usize;
            let rec: Value = serde_json::from_slice(all[i]).expect("good line");
            assert_eq!(fd["event"]["eventID"], rec["eventID"], "record_index {i}");
            assert_eq!(fd["input"]["line"].as_u64(), Some(i as u64 + 1));
        }
    }
}

#[test]
fn records_that_are_not_objects() {
    let (good, want) = firing_record();
    let good = String::from_utf8(good).expect("utf-8");
    // Inside a Records array: elements by position.
    let doc = format!("{{\"Records\":[42,\"x\",[1],{good},null,true]}}\n");
    let (out, dead) = detect_dl(&[], doc.as_bytes());
    let st = out.stats();
    assert_eq!(stat(&st, "records_in"), 6);
    assert_eq!(stat(&st, "records_kept"), 1);
    assert_eq!(out.keys(), want);
    assert!(
        out.findings()
            .iter()
            .all(|f| f["input"]["record_index"] == 3)
    );
    let idx: Vec<_> = dead.iter().map(|d| d["record_index"].as_u64()).collect();
    assert_eq!(idx, [Some(0), Some(1), Some(2), Some(4), Some(5)]);
    for d in &dead {
        points_into(d, doc.as_bytes());
        assert!(
            d["reason"]
                .as_str()
                .unwrap_or_default()
                .contains("not a JSON object"),
            "{d}"
        );
    }
    // As NDJSON lines.
    let text = format!("{good}\n42\n\"x\"\n[1]\nnull\n{good}\n");
    let (out, dead) = detect_dl(&[], text.as_bytes());
    let st = out.stats();
    assert_eq!(stat(&st, "records_in"), 6);
    assert_eq!(stat(&st, "records_kept"), 2);
    let lines: Vec<_> = dead
        .iter()
        .map(|d| d["line"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(lines, [2, 3, 4, 5]);
    for d in &dead {
        points_into(d, text.as_bytes());
    }
    let got: Vec<_> = out
        .findings()
        .iter()
        .map(|f| f["input"]["line"].clone())
        .collect();
    assert!(got.iter().all(|l| *l == 1 || *l == 6), "{got:?}");
    assert_eq!(out.findings().len(), 2 * want.len());
}

#[test]
fn a_50_mb_line_is_dead_lettered_and_the_next_line_processed() {
    let (good, want) = firing_record();
    let mut huge =
        br#"{"eventVersion":"1.08","eventName":"PutBucketPolicy","requestParameters":{"policy":""#
            .to_vec();
    huge.resize(50 * 1000 * 1000 - 3, b'A');
    huge.extend_from_slice(br#""}}"#);
    let mut input = huge.clone();
    input.push(b'\n');
    input.extend_from_slice(&good);
    input.push(b'\n');
    let t = tempfile::tempdir().expect("tempdir");
    let f = t.path().join("huge.ndjson");
    std::fs::write(&f, &input).expect("write");
    for args in [vec![f.as_os_str()], vec![]] {
        let stdin = if args.is_empty() { &input[..] } else { b"" };
        let (out, dead) = detect_dl(&args, stdin);
        let st = out.stats();
        assert_eq!(stat(&st, "records_in"), 2);
        assert_eq!(dead.len(), 1);
        let d = &dead[0];
        assert_eq!(d["truncated"], true);
        assert_eq!(d["raw_len"].as_u64(), Some(huge.len() as u64));
        assert_eq!(
            (d["record_index"].as_u64(), d["line"].as_u64()),
            (Some(0), Some(1))
        );
        assert_eq!(d["byte_offset"], 0);
        let kept = kept_bytes(d);
        assert!(!kept.is_empty() && kept.len() <= 64 * 1024 && huge.starts_with(&kept));
        assert!(
            d["reason"]
                .as_str()
                .unwrap_or_default()
                .contains("max_record_bytes")
        );
        assert_eq!(out.keys(), want);
        let next = &out.findings()[0]["input"];
        assert_eq!(next["record_index"], 1);
        assert_eq!(next["line"], 2);
        assert_eq!(next["byte_offset"].as_u64(), Some(huge.len() as u64 + 1));
    }
}

#[test]
fn max_record_bytes_splits_the_real_records_by_length() {
    // The limit counts the bytes of a record line; longer lines are dead-lettered,
    // exactly the real lines over the limit, and the rest are still matched.
    let s = common::sample("stratus-red-team");
    let data = common::gunzip_file(&s);
    let lines = common::lines(&data);
    let limit = 1012; // the median record size of the sample (tests/data/cloudtrail/SOURCES.md)
    let over: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].len() > limit)
        .collect();
    assert!(!over.is_empty() && over.len() < lines.len());
    let all = detect(&[s.as_os_str(), "--no-record".as_ref()], b"").findings();
    let want: Vec<Value> = all
        .into_iter()
        .filter(|f| !over.contains(&(f["input"]["record_index"].as_u64().unwrap_or(0) as usize)))
        .collect();
    let lim = limit.to_string();
    for stdin in [false, true] {
        let mut args: Vec<&OsStr> = vec!["--max-record-bytes".as_ref(), lim.as_ref()];
        args.push("--no-record".as_ref());
        if !stdin {
            args.push(s.as_os_str());
        }
        let (out, dead) = detect_dl(&args, if stdin { &data } else { b"" });
        let idx: Vec<usize> = dead
            .iter()
            .map(|d| d["record_index"].as_u64().unwrap_or(0) as usize)
            .collect();
        assert_eq!(idx, over, "dead-lettered records are the long ones");
        for d in &dead {
            points_into(d, &data);
        }
        assert_eq!(out.keys(), keys(&want));
    }
}

/// Random bytes with NULs, 0xff and newlines.
fn garbage(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = common::Rng(seed);
    let mut g: Vec<u8> = (0..len)
        .map(|_| match rng.below(40) {
            0 => b'\n',
            1 => 0,
            2 => 0xff,
            3 => b'{',
            4 => b'[',
            5 => b'"',
            _ => rng.byte(),
        })
        .collect();
    g[0] = 0xff;
    g
}

#[test]
fn binary_garbage_is_dead_lettered_as_base64() {
    let g = garbage(0x5eed_cafe, 48 * 1024);
    assert!(g.contains(&0) && g.contains(&0xff) && std::str::from_utf8(&g).is_err());
    let t = tempfile::tempdir().expect("tempdir");
    let plain = t.path().join("garbage.bin");
    std::fs::write(&plain, &g).expect("write");
    let gz = t.path().join("garbage.json.gz");
    std::fs::write(&gz, common::gzip(&g)).expect("write");
    for args in [vec![], vec![plain.as_os_str()], vec![gz.as_os_str()]] {
        let stdin = if args.is_empty() { &g[..] } else { b"" };
        let (out, dead) = detect_dl(&args, stdin);
        let st = out.stats();
        assert!(out.stdout.is_empty(), "garbage produced findings");
        assert_eq!(stat(&st, "records_kept"), 0);
        assert!(!dead.is_empty());
        assert!(dead.iter().any(|d| d.get("raw_base64").is_some()));
        for d in &dead {
            points_into(d, &g);
            if d.get("raw_base64").is_some() {
                assert!(
                    std::str::from_utf8(&kept_bytes(d)).is_err(),
                    "base64 for UTF-8: {d}"
                );
            }
        }
    }
    // Between two good lines, the garbage does not cost them their findings.
    let (good, want) = firing_record();
    let mut input = good.clone();
    input.push(b'\n');
    input.extend_from_slice(&g);
    input.push(b'\n');
    input.extend_from_slice(&good);
    input.push(b'\n');
    let (out, dead) = detect_dl(&[], &input);
    assert_eq!(stat(&out.stats(), "records_kept"), 2);
    let mut twice = want.clone();
    twice.extend(want);
    twice.sort();
    assert_eq!(out.keys(), twice);
    for d in &dead {
        points_into(d, &input);
    }
}

#[test]
fn empty_and_whitespace_only_input() {
    let t = tempfile::tempdir().expect("tempdir");
    let empty = t.path().join("empty.json");
    std::fs::write(&empty, b"").expect("write");
    let empty_gz = t.path().join("empty.json.gz");
    std::fs::write(&empty_gz, common::gzip(b"")).expect("write");
    let blank = b" \n\t\n\r\n\n   \r\n\t".to_vec();
    let blank_f = t.path().join("blank.ndjson");
    std::fs::write(&blank_f, &blank).expect("write");
    let blank_gz = common::gzip(&blank);
    let cases: Vec<(Vec<&OsStr>, &[u8])> = vec![
        (vec![], b""),
        (vec![], &blank),
        (vec![empty.as_os_str()], b""),
        (vec![empty_gz.as_os_str()], b""),
        (vec![blank_f.as_os_str()], b""),
        (vec![], &blank_gz),
    ];
    for (args, stdin) in &cases {
        let (out, dead) = detect_dl(args, stdin);
        let st = out.stats();
        assert_eq!(stat(&st, "records_in"), 0, "{args:?}: {st}");
        assert_eq!(stat(&st, "documents_skipped"), 0);
        assert!(dead.is_empty() && out.stdout.is_empty());
    }
}

fn wait_with_timeout(child: &mut std::process::Child, secs: u64) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("trailhound did not stop");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn interrupt_does_not_dead_letter_the_line_being_read() {
    let (good, _) = firing_record();
    let t = tempfile::tempdir().expect("tempdir");
    let dl = t.path().join("dead.ndjson");
    let mut child = Command::new(common::BIN)
        .args([
            OsStr::new("--stats"),
            OsStr::new("json"),
            OsStr::new("--no-dedup"),
            OsStr::new("--dead-letter"),
            dl.as_os_str(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    for _ in 0..3 {
        stdin.write_all(&good).expect("write");
        stdin.write_all(b"\n").expect("write");
    }
    // Half of the next record: the writer has not finished it yet.
    stdin.write_all(&good[..good.len() / 2]).expect("write");
    stdin.flush().expect("flush");
    std::thread::sleep(Duration::from_millis(500));
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = wait_with_timeout(&mut child, 60);
    drop(stdin);
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("stderr");
    assert_eq!(status.code(), Some(0), "{err}");
    let st: Value = serde_json::from_str(err.lines().last().unwrap_or("{}")).expect("stats");
    assert_eq!(st["interrupted"], true);
    common::check_accounting(&st);
    assert_eq!(stat(&st, "records_kept"), 3, "{st}");
    assert_eq!(
        stat(&st, "records_dead_lettered"),
        0,
        "the unfinished line was counted as malformed: {st}"
    );
    let text = std::fs::read_to_string(&dl).expect("dead-letter file");
    assert!(
        text.is_empty(),
        "dead letter for an unfinished line: {text}"
    );
}
