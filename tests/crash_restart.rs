//! `kill -9` at random moments of `trailhound run`, then a restart, for each AWS source
//! (S3 bucket listing, SQS notifications, CloudWatch Logs) through the real AWS SDK
//! against moto, with the archive on.
//!
//! Each scenario kills the daemon three times at moments drawn from a seeded generator
//! (`TRAILHOUND_CRASH_SEED`, printed): during start-up or the first reads, after a
//! random number of findings of that round, and after 1–2.5 s (when archive files
//! finished by age may be visible), checking after every kill that each visible
//! Parquet file is complete, then runs it until the source has acknowledged everything
//! (checkpoint or queue) and stops it with SIGTERM. Then:
//!
//! - every record of the input was evaluated (the every-record rule gave it a finding)
//!   and archived (a row in a complete file), nothing else;
//! - a record evaluated twice (read again after a crash) has the same finding `id` each
//!   time, and a record archived twice the same `tp_id`;
//! - `archive compact --all` leaves exactly one row per record;
//! - the last run's accounting balances.
//!
//! A killed process may leave its last stdout line cut short (stdout is a plain file
//! here); such a line is not a finding and is skipped.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::moto::Moto;
use serde_json::{Value, json};

const KILLS: usize = 3;

fn seed() -> u64 {
    std::env::var("TRAILHOUND_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x7261_696c)
}

fn every_record_rule() -> PathBuf {
    common::root().join("tests/fixtures/kafka/every-record.yml")
}

fn records(n: usize) -> Vec<(String, Vec<u8>)> {
    common::distinct_records(n)
}

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One `trailhound run` process, its output in files of `dir`.
struct Daemon {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Daemon {
    fn start(dir: &Path, tag: &str, config: &Path) -> Daemon {
        let stdout = dir.join(format!("{tag}.stdout"));
        let stderr = dir.join(format!("{tag}.stderr"));
        let rules = every_record_rule();
        let mut cmd = Command::new(common::BIN);
        cmd.arg("run")
            .arg("--config")
            .arg(config)
            .args(["--stats", "json", "--no-record", "--no-builtin", "--rules"])
            .arg(&rules)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"));
        common::moto::clean_aws_env(&mut cmd, dir);
        Daemon {
            child: cmd.spawn().expect("start trailhound run"),
            stdout,
            stderr,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn kill9(mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }

    /// SIGTERM; the exit code and the stats line.
    fn stop(mut self) -> (i32, Value) {
        // SAFETY: kill(2) with the pid of a child this test spawned.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("no stop after SIGTERM:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let log = self.log();
        let stats = serde_json::from_str(log.lines().last().unwrap_or_default())
            .unwrap_or_else(|e| panic!("no stats line ({e}):\n{log}"));
        (status.code().unwrap_or(-1), stats)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// (eventID, finding id) of every complete finding line in `path`.
fn findings(path: &Path) -> Vec<(String, String)> {
    let raw = std::fs::read(path).unwrap_or_default();
    raw.split_inclusive(|&b| b == b'\n')
        .filter(|l| l.ends_with(b"\n"))
        .map(|l| {
            let v: Value = serde_json::from_slice(l)
                .unwrap_or_else(|e| panic!("{}: a finding line is not JSON: {e}", path.display()));
            (
                v["event"]["eventID"]
                    .as_str()
                    .expect("event.eventID")
                    .to_string(),
                v["id"].as_str().expect("id").to_string(),
            )
        })
        .collect()
}

fn parquet_files(root: &Path) -> Vec<PathBuf> {
    common::files_ending(root, ".parquet")
}

/// (event_id, tp_id) of every row; panics on a visible file that is not whole Parquet.
fn archived(root: &Path) -> Vec<(String, String)> {
    use arrow_array::cast::AsArray;
    let mut out = Vec::new();
    for p in parquet_files(root) {
        let f = std::fs::File::open(&p).expect("open parquet");
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
            .unwrap_or_else(|e| panic!("{} is not a whole Parquet file: {e}", p.display()))
            .build()
            .expect("reader");
        for b in reader {
            let b = b.expect("batch");
            let ev = b
                .column_by_name("event_id")
                .expect("event_id")
                .as_string::<i32>();
            let tp = b.column_by_name("tp_id").expect("tp_id").as_string::<i32>();
            for i in 0..b.num_rows() {
                out.push((ev.value(i).to_string(), tp.value(i).to_string()));
            }
        }
    }
    out
}

/// Pairs grouped by their first element; panics where one key has two second elements.
fn one_value_each(pairs: &[(String, String)], what: &str) -> BTreeSet<String> {
    let mut by: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (k, v) in pairs {
        by.entry(k).or_default().insert(v);
    }
    for (k, vs) in &by {
        assert_eq!(
            vs.len(),
            1,
            "{k} has {} different {what}s: {vs:?}",
            vs.len()
        );
    }
    by.keys().map(|k| k.to_string()).collect()
}

/// Kills the daemon `KILLS` times at seeded random moments, then runs it until
/// `settled` (the source acknowledged everything) and checks what the module doc says.
fn crash_and_recover(
    name: &str,
    dir: &Path,
    config: &Path,
    root: &Path,
    want: &BTreeSet<String>,
    settled: &dyn Fn() -> bool,
) {
    let mut rng = common::Rng(seed() ^ name.len() as u64);
    println!("{name}: seed {} ({} records)", seed(), want.len());
    let mut outputs = Vec::new();
    for round in 0..KILLS {
        let d = Daemon::start(dir, &format!("kill{round}"), config);
        // The first kill lands during start-up or the first reads, the middle ones once
        // the round has produced a random number of findings (or after 5 s if it has
        // nothing left to do), a few milliseconds later still, the last one later.
        let started = Instant::now();
        if round == 0 {
            std::thread::sleep(Duration::from_millis(50 + rng.below(400)));
        } else if round == KILLS - 1 {
            // Late enough that archive files may have been finished by age (1 s).
            std::thread::sleep(Duration::from_millis(1000 + rng.below(1500)));
        } else {
            let k = 1 + rng.below(want.len() as u64 / 3) as usize;
            while findings(&d.stdout).len() < k && started.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(5));
            }
            std::thread::sleep(Duration::from_millis(rng.below(50)));
        }
        let after = started.elapsed();
        outputs.push(d.stdout.clone());
        d.kill9();
        let rows = archived(root).len();
        let seen = findings(outputs.last().expect("round"));
        println!(
            "{name}: round {round} killed after {after:?}: {} findings, {rows} rows visible, {} temporary files",
            seen.len(),
            common::files_ending(root, ".parquet.tmp").len()
        );
    }
    let d = Daemon::start(dir, "final", config);
    outputs.push(d.stdout.clone());
    let started = Instant::now();
    wait_for(
        &format!("{name}: the source to acknowledge every input"),
        Duration::from_secs(180),
        settled,
    );
    println!(
        "{name}: settled {:?} after the last start",
        started.elapsed()
    );
    // Its signal handlers are installed well within this; a SIGTERM before them would
    // end the process without a summary.
    std::thread::sleep(Duration::from_secs(2).saturating_sub(started.elapsed()));
    let (code, stats) = d.stop();
    assert_eq!(code, 0, "{stats}");
    common::check_accounting(&stats);

    let all: Vec<(String, String)> = outputs.iter().flat_map(|p| findings(p)).collect();
    let evaluated = one_value_each(&all, "finding id");
    assert_eq!(
        &evaluated, want,
        "{name}: every record evaluated, nothing else"
    );
    let rows = archived(root);
    let kept = one_value_each(&rows, "tp_id");
    assert_eq!(&kept, want, "{name}: every record archived, nothing else");
    assert!(
        common::files_ending(root, ".parquet.tmp").is_empty(),
        "{name}: a stopped run leaves no temporary file"
    );
    println!(
        "{name}: {} findings and {} rows for {} records",
        all.len(),
        rows.len(),
        want.len()
    );
    let out = Command::new(common::BIN)
        .args(["archive", "compact", "--all"])
        .arg(root)
        .output()
        .expect("compact");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = archived(root);
    assert_eq!(
        after.len(),
        want.len(),
        "{name}: one row per record after compaction"
    );
    assert_eq!(&one_value_each(&after, "tp_id"), want);
}

/// Uploads `objects` ([key, local file]); optionally creates queue `queue` with one
/// message per object; prints the queue URL.
const SETUP_PY: &str = r#"
import json, sys
import boto3
m = json.load(open(sys.argv[1]))
s3 = boto3.client("s3")
s3.create_bucket(Bucket=m["bucket"])
for key, path in m["objects"]:
    s3.put_object(Bucket=m["bucket"], Key=key, Body=open(path, "rb").read())
if m.get("queue"):
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName=m["queue"])["QueueUrl"]
    for key, _ in m["objects"]:
        body = json.dumps({"s3Bucket": m["bucket"], "s3ObjectKey": [key]})
        sqs.send_message(QueueUrl=url, MessageBody=body)
    print(url)
"#;

/// How many messages the queue still holds, visible or in flight (argv: url).
const QUEUE_DEPTH_PY: &str = r#"
import sys
import boto3
a = boto3.client("sqs").get_queue_attributes(QueueUrl=sys.argv[1], AttributeNames=[
    "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
print(int(a["ApproximateNumberOfMessages"]) + int(a["ApproximateNumberOfMessagesNotVisible"]))
"#;

/// `objects` gzip'd `{"Records":[…]}` files of `per` records each, with CloudTrail keys.
fn object_files(dir: &Path, recs: &[(String, Vec<u8>)], per: usize) -> Vec<(String, PathBuf)> {
    recs.chunks(per)
        .enumerate()
        .map(|(i, chunk)| {
            let raw: Vec<Vec<u8>> = chunk.iter().map(|(_, r)| r.clone()).collect();
            let key = format!(
                "AWSLogs/123456789012/CloudTrail/us-east-1/2024/12/01/123456789012_CloudTrail_us-east-1_20241201T{:02}{:02}Z_crash{i:04}.json.gz",
                i / 60 % 24,
                i % 60
            );
            let file = common::write_file(
                dir,
                &format!("objects/{i}.json.gz"),
                &common::gzip(&common::records_object(&raw)),
            );
            (key, file)
        })
        .collect()
}

fn setup(moto: &Moto, dir: &Path, objects: &[(String, PathBuf)], queue: Option<&str>) -> String {
    let manifest = dir.join("setup.json");
    let m = json!({"bucket": "trail", "objects": objects, "queue": queue});
    std::fs::write(&manifest, m.to_string()).expect("manifest");
    moto.run_python(SETUP_PY, &[manifest.to_str().expect("utf-8 path")])
        .trim()
        .to_string()
}

fn config(dir: &Path, moto: &Moto, source: &str) -> (PathBuf, PathBuf) {
    let root = dir.join("archive");
    let path = dir.join("trailhound.yaml");
    std::fs::write(
        &path,
        format!(
            "version: 1\nstate_dir: \"{state}\"\narchive: {{root: \"{root}\", max_age: 1s}}\nconnections:\n  local: {{endpoint_url: \"{ep}\", region: us-east-1, access_key: test, secret_key: test, s3_force_path_style: true}}\nsources:\n  - {source}\n",
            state = dir.join("state").display(),
            root = root.display(),
            ep = moto.endpoint,
        ),
    )
    .expect("config");
    (path, root)
}

#[test]
fn s3_listing_killed_at_random_moments_loses_nothing() {
    let Some(moto) = Moto::start() else { return };
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let recs = records(1800);
    let objects = object_files(d, &recs, 10);
    setup(&moto, d, &objects, None);
    let (cfg, root) = config(
        d,
        &moto,
        "s3: {name: org, connection: local, bucket: trail, concurrency: 2, poll_interval: 1s}",
    );
    let last_key = objects.iter().map(|(k, _)| k.clone()).max().expect("keys");
    let leaf = last_key[..last_key.rfind('/').expect("slash") + 1].to_string();
    let cp = d.join("state/checkpoints/org.json");
    let settled = || {
        std::fs::read(&cp)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .is_some_and(|v| v["done"][&leaf] == json!(last_key))
    };
    let want = recs.iter().map(|(id, _)| id.clone()).collect();
    crash_and_recover("s3", d, &cfg, &root, &want, &settled);
}

#[test]
fn sqs_notifications_killed_at_random_moments_lose_nothing() {
    let Some(moto) = Moto::start() else { return };
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let recs = records(1800);
    let objects = object_files(d, &recs, 10);
    let url = setup(&moto, d, &objects, Some("trail-q"));
    let (cfg, root) = config(
        d,
        &moto,
        &format!(
            "sqs: {{name: live, connection: local, queue_url: \"{url}\", wait_time: 1s, visibility_timeout: 3s, max_receives: 50}}"
        ),
    );
    let settled = || moto.run_python(QUEUE_DEPTH_PY, &[&url]).trim() == "0";
    let want = recs.iter().map(|(id, _)| id.clone()).collect();
    crash_and_recover("sqs", d, &cfg, &root, &want, &settled);
}

/// Creates log group `trail`, stream `a`, and puts the events (argv: JSON list of
/// [timestamp, message]) in batches.
const PUT_EVENTS_PY: &str = r#"
import json, sys
import boto3
logs = boto3.client("logs")
events = json.load(open(sys.argv[1]))
logs.create_log_group(logGroupName="trail")
logs.create_log_stream(logGroupName="trail", logStreamName="a")
for i in range(0, len(events), 200):
    batch = [{"timestamp": t, "message": m} for (t, m) in events[i:i + 200]]
    r = logs.put_log_events(logGroupName="trail", logStreamName="a", logEvents=batch)
    assert not r.get("rejectedLogEventsInfo"), r
"#;

#[test]
fn cloudwatch_logs_killed_at_random_moments_lose_nothing() {
    let Some(moto) = Moto::start() else { return };
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let recs = records(1800);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let base = now_ms - 3_600_000;
    // Two events per millisecond, so a checkpoint can fall between two events of one.
    let events: Vec<(i64, String)> = recs
        .iter()
        .enumerate()
        .map(|(i, (_, raw))| {
            (
                base + (i as i64 / 2) * 10,
                String::from_utf8(raw.clone()).expect("utf-8 record"),
            )
        })
        .collect();
    let newest = events.last().expect("events").0;
    let p = d.join("events.json");
    std::fs::write(&p, serde_json::to_string(&events).expect("json")).expect("events");
    moto.run_python(PUT_EVENTS_PY, &[p.to_str().expect("utf-8")]);
    let (cfg, root) = config(
        d,
        &moto,
        "cloudwatch_logs: {name: cw, connection: local, log_group_name: trail, start_position: beginning, scan_frequency: 1s, api_sleep: 10ms, limit: 50, lookback: 0s}",
    );
    let cp = d.join("state/checkpoints/cw.json");
    let settled = || {
        std::fs::read(&cp)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .is_some_and(|v| v["start_time"] == newest)
    };
    let want = recs.iter().map(|(id, _)| id.clone()).collect();
    crash_and_recover("cloudwatch", d, &cfg, &root, &want, &settled);
}
