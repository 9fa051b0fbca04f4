//! The streaming behaviour of `trailhound` on a live stdin: findings appear while the
//! input is still open, a signal drains and summarises, and a stalled stdout stops the
//! reading of stdin (backpressure) instead of growing memory.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_trailhound");

/// A real record from the invictus sample that the built-in pack flags (CreateAccessKey
/// by an IAM user), read from the vendored samples.
fn flagged_record() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/cloudtrail/invictus-aws-dataset.ndjson.gz"
    );
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).expect("sample"))
        .read_to_string(&mut text)
        .expect("gunzip");
    let line = text
        .lines()
        .find(|l| l.contains("\"eventName\":\"CreateAccessKey\"") && !l.contains("errorCode"))
        .expect("a successful CreateAccessKey in the sample");
    let mut v = line.as_bytes().to_vec();
    v.push(b'\n');
    v
}

fn kill(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("kill");
    assert!(st.success());
}

/// `trailhound --no-record --stats json` reading a pipe, all three streams piped.
fn spawn_on_stdin() -> std::process::Child {
    Command::new(BIN)
        .args(["--no-record", "--stats", "json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

/// The first finding line on the child's stdout, parsed, and the rest of stdout (kept
/// open, so later findings still have a reader).
fn first_finding(
    child: &mut std::process::Child,
) -> (serde_json::Value, BufReader<std::process::ChildStdout>) {
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("read finding");
    (serde_json::from_str(&line).expect("finding json"), out)
}

#[test]
fn findings_appear_before_end_of_input() {
    let mut child = spawn_on_stdin();
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(&flagged_record()).expect("write");
    stdin.flush().expect("flush");
    // stdin stays open: the finding must come out anyway.
    let (f, _out) = first_finding(&mut child);
    assert_eq!(f["event"]["eventName"], "CreateAccessKey");
    assert_eq!(f["input"]["name"], "<stdin>");
    drop(stdin);
    let st = child.wait().expect("wait");
    assert!(st.success());
}

/// A steady trickle never leaves stdin quiet for 10 ms; the batch is cut when its oldest
/// line has waited that long, not when a megabyte has gathered.
#[test]
fn findings_flow_under_a_steady_trickle() {
    let mut child = spawn_on_stdin();
    let mut stdin = child.stdin.take().expect("stdin");
    let written = Arc::new(AtomicU64::new(0));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (w, d) = (written.clone(), done.clone());
    let writer = std::thread::spawn(move || {
        stdin.write_all(&flagged_record()).expect("write");
        // About 1 KiB of a document that is not a record, every 2 ms, up to 4 MiB.
        let filler = format!("{{\"filler\":\"{}\"}}\n", "x".repeat(1000));
        while !d.load(Ordering::Relaxed) && w.load(Ordering::Relaxed) < 4 << 20 {
            stdin.write_all(filler.as_bytes()).expect("write filler");
            w.fetch_add(filler.len() as u64, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    let (f, _out) = first_finding(&mut child);
    let at = written.load(Ordering::Relaxed);
    done.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    assert_eq!(f["event"]["eventName"], "CreateAccessKey");
    assert!(
        at < 512 << 10,
        "the finding came only after {at} bytes more had been written"
    );
    let st = child.wait().expect("wait");
    assert!(st.success());
}

#[test]
fn sigterm_drains_and_summarises() {
    let mut child = spawn_on_stdin();
    let mut stdin = child.stdin.take().expect("stdin");
    let rec = flagged_record();
    for _ in 0..3 {
        stdin.write_all(&rec).expect("write");
    }
    stdin.flush().expect("flush");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    out.read_line(&mut first).expect("first finding");
    kill(child.id(), "TERM");
    let mut rest = String::new();
    out.read_to_string(&mut rest).expect("rest");
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("stderr");
    let st = child.wait().expect("wait");
    assert_eq!(st.code(), Some(0), "stderr: {err}");
    let findings = 1 + rest.lines().count();
    let stats: serde_json::Value =
        serde_json::from_str(err.lines().last().expect("summary")).expect("stats json");
    assert_eq!(stats["interrupted"], true);
    common::check_accounting(&stats);
    assert_eq!(stats["records_in"], 3);
    assert_eq!(stats["accounting_ok"], true);
    assert_eq!(stats["findings"]["total"].as_u64(), Some(findings as u64));
    drop(stdin);
}

#[test]
fn stalled_stdout_stops_reading_stdin() {
    // Every record yields a finding, so findings fill the stdout pipe fast.
    let rules = tempfile::tempdir().expect("tmp");
    std::fs::write(
        rules.path().join("all.yml"),
        "title: every record\nid: 11111111-2222-3333-4444-555555555555\nlogsource: {product: aws}\ndetection:\n  sel:\n    eventName: '*'\n  condition: sel\nlevel: low\n",
    )
    .expect("rule");
    let mut child = Command::new(BIN)
        .args([
            "--no-builtin",
            "--no-record",
            "--stats",
            "json",
            "--threads",
            "2",
            // One record repeated: keep the repeats.
            "--no-dedup",
            "--rules",
        ])
        .arg(rules.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let rec = flagged_record();
    let total_records: u64 = 60_000; // about 75 MB of NDJSON
    let written = Arc::new(AtomicU64::new(0));
    let w = written.clone();
    let writer = std::thread::spawn(move || {
        let block: Vec<u8> = rec.repeat(1000);
        for _ in 0..total_records / 1000 {
            if stdin.write_all(&block).is_err() {
                return;
            }
            w.fetch_add(block.len() as u64, Ordering::Relaxed);
        }
    });
    // Nobody reads stdout for a while: the pipeline must stop taking input.
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut last = 0;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        last = written.load(Ordering::Relaxed);
    }
    std::thread::sleep(Duration::from_millis(500));
    let stalled = written.load(Ordering::Relaxed);
    assert!(
        stalled < 40 << 20,
        "{stalled} bytes accepted while stdout was stalled"
    );
    assert_eq!(stalled, last, "input kept flowing while stdout was stalled");
    // Now drain stdout: everything arrives, nothing is lost.
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut n = 0u64;
    let mut line = Vec::new();
    while out.read_until(b'\n', &mut line).expect("read") > 0 {
        n += 1;
        line.clear();
    }
    writer.join().expect("writer");
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("stderr");
    assert!(child.wait().expect("wait").success());
    assert_eq!(n, total_records);
    let stats: serde_json::Value =
        serde_json::from_str(err.lines().last().expect("summary")).expect("stats json");
    common::check_accounting(&stats);
    assert_eq!(stats["records_in"].as_u64(), Some(total_records));
    assert_eq!(stats["findings"]["total"].as_u64(), Some(total_records));
}
