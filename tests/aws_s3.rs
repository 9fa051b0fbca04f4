//! The S3 source through the real AWS SDK against a local moto server: a bucket of
//! hundreds of CloudTrail objects in the AWSLogs layout (three accounts, one of them in
//! an organization trail, two regions, three days; records from the real samples),
//! read by `detect s3://…` and by the `run` daemon.
//!
//! What is proved: every object is read once and only log objects are read; time-range
//! and account pruning happen in the listing (asserted on the requests moto saw: no
//! listing outside the range's day prefixes, no GET outside the range); organization
//! trails are found; a checkpoint makes a second run read only new objects; a daemon
//! stopped mid-way and restarted processes every record exactly once.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::moto::{Moto, TrailBucket};
use serde_json::Value;

/// `trailhound` with the emulator's credentials and nothing from the user's AWS setup.
fn trailhound(moto: &Moto) -> Command {
    let mut c = Command::new(common::BIN);
    common::moto::clean_aws_env(&mut c, moto.dir());
    c.envs(moto.client_env()).env_remove("AWS_ENDPOINT_URL");
    c
}

fn detect_s3(moto: &Moto, url: &str, extra: &[&str]) -> (Value, Vec<Value>) {
    let out = trailhound(moto)
        .arg(url)
        .args(["--endpoint-url", &moto.endpoint, "--s3-force-path-style"])
        .args(["--no-record", "--stats", "json"])
        .args(extra)
        .output()
        .expect("run trailhound");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {err}", out.status.code());
    let stats: Value =
        serde_json::from_str(err.lines().last().expect("stats line")).expect("stats json");
    common::check_accounting(&stats);
    let findings = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("finding json"))
        .collect();
    (stats, findings)
}

/// Keys of GetObject requests, and prefixes of ListObjectsV2 requests (with whether
/// they were delimiter listings).
fn requests(moto: &Moto, bucket: &str) -> (Vec<String>, Vec<(String, bool)>) {
    let mut gets = Vec::new();
    let mut lists = Vec::new();
    for r in moto.requests() {
        if r.is_s3_list_v2() {
            let p = r.query_param("prefix").unwrap_or("").to_string();
            lists.push((p, r.query_param("delimiter").is_some()));
        } else if let Some(k) = r.s3_get_object_key() {
            assert_eq!(r.s3_bucket_key().map(|(b, _)| b), Some(bucket));
            gets.push(k.to_string());
        }
    }
    (gets, lists)
}

fn counter(stats: &Value, key: &str) -> u64 {
    stats["sources"][0]["counters"][key]
        .as_u64()
        .unwrap_or_else(|| panic!("sources[0].counters.{key} in {stats}"))
}

#[test]
fn whole_bucket_reads_every_log_object_once() {
    let Some(moto) = Moto::start() else { return };
    let m = moto.fill_trail_bucket("trail", &[]);
    assert_eq!(m.objects.len(), 3 * 2 * 3 * 12, "216 objects");
    moto.clear_recording();
    let started = Instant::now();
    let (stats, findings) = detect_s3(&moto, "s3://trail/", &[]);
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{} objects, {} records in {secs:.2}s: {:.0} objects/s, {:.0} records/s",
        m.objects.len(),
        m.records,
        m.objects.len() as f64 / secs,
        m.records as f64 / secs
    );
    assert_eq!(stats["records_in"], m.records, "{stats}");
    assert_eq!(stats["accounting_ok"], true);
    assert_eq!(stats["inputs"], m.objects.len() as u64);
    assert_eq!(stats["inputs_failed"], 0);
    assert_eq!(counter(&stats, "objects_fetched"), m.objects.len() as u64);
    // Per-source accounting, and the summary matches its schema.
    let src = &stats["sources"][0];
    assert_eq!(src["name"], "s3");
    assert_eq!(src["records_in"], m.records);
    assert_eq!(src["inputs"], m.objects.len() as u64);
    assert_eq!(src["accounting_ok"], true);
    let v = common::validator("stats.schema.json");
    let errors: Vec<String> = v.iter_errors(&stats).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    let (gets, lists) = requests(&moto, "trail");
    let got: BTreeSet<String> = gets.iter().cloned().collect();
    assert_eq!(got.len(), gets.len(), "no object is fetched twice");
    let want: BTreeSet<String> = m.objects.keys().cloned().collect();
    assert_eq!(
        got, want,
        "exactly the log objects: no digest, no other files"
    );
    assert!(
        lists.iter().all(|(p, _)| p.starts_with("AWSLogs/")),
        "only the layout is listed: {lists:?}"
    );
    // Findings cite the object they came from, and the real records match rules.
    assert!(!findings.is_empty());
    for f in &findings {
        let name = f["input"]["name"].as_str().expect("input.name");
        let key = name.strip_prefix("s3://trail/").expect("s3 url");
        assert!(m.objects.contains_key(key), "{name}");
    }
    // The same objects read from disk give the same findings.
    let dir = tempfile::tempdir().expect("tmp");
    download(&moto, "trail", dir.path());
    let out = Command::new(common::BIN)
        .arg(dir.path())
        .args(["--no-record"])
        .output()
        .expect("run on files");
    let mut local: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("json");
            v["id"].as_str().expect("id").to_string()
        })
        .collect();
    let mut remote: Vec<String> = findings
        .iter()
        .map(|f| f["id"].as_str().expect("id").to_string())
        .collect();
    local.sort();
    remote.sort();
    assert_eq!(local, remote, "S3 and local files give the same findings");
}

fn download(moto: &Moto, bucket: &str, to: &Path) {
    moto.run_python(
        "import boto3, os, sys\ns3 = boto3.client('s3')\nfor page in s3.get_paginator('list_objects_v2').paginate(Bucket=sys.argv[1], Prefix='AWSLogs/'):\n    for o in page.get('Contents', []):\n        if '/CloudTrail/' not in o['Key']: continue\n        p = os.path.join(sys.argv[2], o['Key'])\n        os.makedirs(os.path.dirname(p), exist_ok=True)\n        s3.download_file(sys.argv[1], o['Key'], p)\n",
        &[bucket, &to.display().to_string()],
    );
}

#[test]
fn time_range_and_accounts_prune_the_listing() {
    let Some(moto) = Moto::start() else { return };
    let m = moto.fill_trail_bucket("trail", &[]);
    moto.clear_recording();
    let (stats, _) = detect_s3(
        &moto,
        "s3://trail/",
        &[
            "--since",
            "2024-12-02",
            "--until",
            "2024-12-03",
            "--accounts",
            "111111111111",
        ],
    );
    let (gets, lists) = requests(&moto, "trail");
    // Day 2 of account 111111111111 in both regions, plus the object delivered at
    // 00:05 on day 3 (it may hold late records of day 2); nothing else.
    let want: BTreeSet<String> = m
        .objects
        .keys()
        .filter(|k| k.starts_with("AWSLogs/111111111111/"))
        .filter(|k| k.contains("/2024/12/02/") || k.contains("_20241203T0005Z_"))
        .cloned()
        .collect();
    assert_eq!(want.len(), 2 * 13);
    let got: BTreeSet<String> = gets.into_iter().collect();
    assert_eq!(got, want);
    // Full listings only of the range's day prefixes; discovery listings (delimiter)
    // only of the levels above them. The bucket root is never listed.
    for (p, delim) in &lists {
        assert!(p.starts_with("AWSLogs/"), "{p}");
        if !delim {
            assert!(
                p.starts_with("AWSLogs/111111111111/CloudTrail/")
                    && (p.ends_with("/2024/12/02/") || p.ends_with("/2024/12/03/")),
                "a full listing outside the range: {p}"
            );
        }
        assert!(
            !p.contains("333333333333") && !p.contains("o-abc123def4/222"),
            "another account listed: {p}"
        );
    }
    assert_eq!(lists.iter().filter(|(_, d)| !d).count(), 2 * 2);
    // Records are filtered by event time exactly: day 2's are kept, the day 3 object's
    // records (00:00–00:04 on day 3) are filtered.
    let day2: u64 = want
        .iter()
        .filter(|k| k.contains("/2024/12/02/"))
        .map(|k| m.objects[k])
        .sum();
    assert_eq!(stats["records_in"], day2 + 2 * 5);
    assert_eq!(stats["records_kept"], day2);
    assert_eq!(stats["records_filtered"], 10);
    assert_eq!(stats["accounting_ok"], true);
}

#[test]
fn organization_trails_and_url_prefixes() {
    let Some(moto) = Moto::start() else { return };
    let m = moto.fill_trail_bucket("trail", &["--days", "2024-12-01", "--per-day", "4"]);
    let org: u64 = m
        .objects
        .iter()
        .filter(|(k, _)| k.starts_with("AWSLogs/o-abc123def4/222222222222/"))
        .map(|(_, n)| n)
        .sum();
    assert!(org > 0);
    moto.clear_recording();
    let (stats, _) = detect_s3(&moto, "s3://trail/", &["--accounts", "222222222222"]);
    assert_eq!(stats["records_in"], org, "{stats}");
    let (gets, _) = requests(&moto, "trail");
    assert!(
        gets.iter()
            .all(|k| k.starts_with("AWSLogs/o-abc123def4/222222222222/"))
    );
    // A URL down to a region binds account and region.
    moto.clear_recording();
    let (stats, _) = detect_s3(
        &moto,
        "s3://trail/AWSLogs/333333333333/CloudTrail/eu-west-1/",
        &[],
    );
    let want: u64 = m
        .objects
        .iter()
        .filter(|(k, _)| k.starts_with("AWSLogs/333333333333/CloudTrail/eu-west-1/"))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(stats["records_in"], want);
    let (gets, _) = requests(&moto, "trail");
    assert_eq!(gets.len(), 4);
}

#[test]
fn checkpoint_reads_only_new_objects() {
    let Some(moto) = Moto::start() else { return };
    let m = moto.fill_trail_bucket("trail", &["--days", "2024-12-01", "--per-day", "6"]);
    let state = tempfile::tempdir().expect("tmp");
    let st = state.path().to_str().expect("utf-8");
    let (stats, _) = detect_s3(&moto, "s3://trail/", &["--state-dir", st]);
    assert_eq!(stats["records_in"], m.records);
    let cp: Value = serde_json::from_slice(
        &std::fs::read(state.path().join("checkpoints/s3.json")).expect("checkpoint"),
    )
    .expect("checkpoint json");
    assert_eq!(cp["done"].as_object().map(|o| o.len()), Some(3 * 2));
    // Nothing new: nothing fetched.
    moto.clear_recording();
    let (stats, _) = detect_s3(&moto, "s3://trail/", &["--state-dir", st]);
    assert_eq!(stats["records_in"], 0);
    assert!(requests(&moto, "trail").0.is_empty());
    // New objects later the same day and on the next day: only they are fetched.
    let more = moto.fill_trail_bucket(
        "trail",
        &[
            "--days",
            "2024-12-01,2024-12-02",
            "--per-day",
            "8",
            "--tag",
            "b",
            "--accounts",
            "111111111111",
        ],
    );
    let new: BTreeSet<String> = more
        .objects
        .keys()
        .filter(|k| !m.objects.contains_key(*k))
        .filter(|k| {
            // Same day: only those after the last checkpointed key (later deliveries).
            k.contains("/2024/12/02/") || k.as_str() > last_of_prefix(&m, k).as_str()
        })
        .cloned()
        .collect();
    moto.clear_recording();
    let (stats, _) = detect_s3(&moto, "s3://trail/", &["--state-dir", st]);
    let got: BTreeSet<String> = requests(&moto, "trail").0.into_iter().collect();
    assert_eq!(got, new);
    assert_eq!(stats["records_in"], new.len() as u64 * 5);
}

fn last_of_prefix(m: &TrailBucket, key: &str) -> String {
    let prefix = &key[..key.rfind('/').expect("slash") + 1];
    m.objects
        .keys()
        .filter(|k| k.starts_with(prefix))
        .max()
        .cloned()
        .unwrap_or_default()
}

/// Starts `trailhound run` over an S3 source with `concurrency: 1`.
fn daemon(moto: &Moto, dir: &Path, out: &Path) -> std::process::Child {
    let cfg = dir.join("trailhound.yaml");
    std::fs::write(
        &cfg,
        format!(
            "version: 1\nstate_dir: {state}\nconnections:\n  local: {{endpoint_url: \"{ep}\", region: us-east-1, s3_force_path_style: true}}\nsources:\n  - s3: {{name: org, connection: local, bucket: trail, concurrency: 1, poll_interval: 1s}}\n",
            state = dir.join("state").display(),
            ep = moto.endpoint
        ),
    )
    .expect("config");
    trailhound(moto)
        .args(["run", "--config"])
        .arg(&cfg)
        .args(["--no-record", "--no-dedup", "--stats-file"])
        .arg(out)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the daemon")
}

fn stop(child: std::process::Child) -> Vec<Value> {
    let pid = child.id() as i32;
    // SAFETY: signalling a child process we started and still own.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{:?}", out.status);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

#[test]
fn daemon_stopped_mid_way_resumes_without_loss_or_repeats() {
    let Some(moto) = Moto::start() else { return };
    let m = moto.fill_trail_bucket("trail", &["--days", "2024-12-01", "--per-day", "10"]);
    let dir = tempfile::tempdir().expect("tmp");
    let s1 = dir.path().join("stats1.json");
    let s2 = dir.path().join("stats2.json");
    let child = daemon(&moto, dir.path(), &s1);
    // Let it read part of the bucket.
    let deadline = Instant::now() + Duration::from_secs(30);
    while requests(&moto, "trail").0.len() < 20 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let first = stop(child);
    let a: Value = serde_json::from_slice(&std::fs::read(&s1).expect("stats")).expect("json");
    common::check_accounting(&a);
    let done1 = a["records_in"].as_u64().expect("records_in");
    assert!(done1 > 0, "{a}");
    // Restart: it resumes from the checkpoint; stop once the checkpoint covers all.
    let child = daemon(&moto, dir.path(), &s2);
    let leaves = m.leaves();
    let cp_path = dir.path().join("state/checkpoints/org.json");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done: Option<BTreeMap<String, String>> = std::fs::read(&cp_path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| serde_json::from_value(v["done"].clone()).ok());
        if done.as_ref() == Some(&leaves) || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let second = stop(child);
    let b: Value = serde_json::from_slice(&std::fs::read(&s2).expect("stats")).expect("json");
    common::check_accounting(&b);
    let done2 = b["records_in"].as_u64().expect("records_in");
    assert_eq!(done1 + done2, m.records, "every record once: {a} {b}");
    let mut ids: Vec<&str> = first
        .iter()
        .chain(&second)
        .map(|f| f["id"].as_str().expect("id"))
        .collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "no finding repeated across the restart");
    assert!(n > 0);
}

/// `run` with an S3 source, a files source and stdin at once: each source's records are
/// counted under its name, and archived under `tp_partition=<name>`.
#[test]
fn several_sources_at_once_each_under_its_name() {
    let Some(moto) = Moto::start() else { return };
    let m = moto.fill_trail_bucket("trail", &["--days", "2024-12-01", "--per-day", "3"]);
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("trailhound.yaml");
    let archive = dir.path().join("archive");
    std::fs::write(
        &cfg,
        format!(
            "version: 1\nstate_dir: {state}\nconnections:\n  local: {{endpoint_url: \"{ep}\", region: us-east-1, s3_force_path_style: true}}\nsources:\n  - s3: {{name: bucket, connection: local, bucket: trail, poll_interval: 1s}}\n  - files: {{name: disk, paths: [\"{files}\"]}}\n  - stdin: {{name: pipe}}\narchive: {{root: \"{archive}\", max_age: 1s}}\n",
            state = dir.path().join("state").display(),
            ep = moto.endpoint,
            files = common::s3_layout().display(),
            archive = archive.display(),
        ),
    )
    .expect("config");
    let stats_path = dir.path().join("stats.json");
    let sample = &common::samples()[0];
    let stdin_records = {
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::MultiGzDecoder::new(std::fs::File::open(sample).expect("open")),
            &mut text,
        )
        .expect("gunzip");
        text.lines().filter(|l| !l.trim().is_empty()).count() as u64
    };
    let mut child = trailhound(&moto)
        .args(["run", "--config"])
        .arg(&cfg)
        .args(["--no-record", "--no-dedup", "--stats-file"])
        .arg(&stats_path)
        .stdin(std::fs::File::open(sample).expect("sample"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start");
    let cp = dir.path().join("state/checkpoints/bucket.json");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let n = std::fs::read(&cp)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| v["done"].as_object().map(|o| o.len()))
            .unwrap_or(0);
        if n == 3 * 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: signalling a child process we started and still own.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    assert!(child.wait().expect("wait").success());
    let stats: Value =
        serde_json::from_slice(&std::fs::read(&stats_path).expect("stats")).expect("json");
    let by_name = |n: &str| {
        stats["sources"]
            .as_array()
            .expect("sources")
            .iter()
            .find(|s| s["name"] == n)
            .unwrap_or_else(|| panic!("source {n} in {stats}"))
            .clone()
    };
    assert_eq!(by_name("bucket")["records_in"], m.records);
    assert_eq!(by_name("disk")["records_in"], 2880);
    assert_eq!(by_name("pipe")["records_in"], stdin_records);
    assert_eq!(
        stats["records_in"],
        m.records + 2880 + stdin_records,
        "{stats}"
    );
    for n in ["bucket", "disk", "pipe"] {
        assert_eq!(by_name(n)["accounting_ok"], true);
        let part = archive.join(format!("tp_table=aws_cloudtrail_log/tp_partition={n}"));
        assert!(part.is_dir(), "{} missing", part.display());
    }
    assert_eq!(stats["records_archived"], stats["records_kept"]);
}

/// A custom `layout:` (a trail copied under another prefix with its own key scheme) is
/// walked the same way: regions named in the config are not discovered, the time range
/// enumerates the day prefixes, and nothing outside the layout is listed or read.
#[test]
fn custom_layout_is_walked_and_pruned() {
    let Some(moto) = Moto::start() else { return };
    let m = moto.fill_trail_bucket(
        "trail",
        &["--days", "2024-12-01,2024-12-02", "--per-day", "2"],
    );
    // Copy every object to custom/<account>/<region>/<yyyy>/<mm>/<dd>/<name>.
    moto.run_python(
        "import boto3, sys\ns3 = boto3.client('s3')\nfor page in s3.get_paginator('list_objects_v2').paginate(Bucket='trail', Prefix='AWSLogs/'):\n    for o in page.get('Contents', []):\n        k = o['Key']\n        if '/CloudTrail/' not in k: continue\n        parts = k.split('/')\n        i = parts.index('CloudTrail')\n        new = '/'.join(['custom', parts[i - 1], parts[i + 1]] + parts[i + 2:])\n        s3.copy_object(Bucket='trail', Key=new, CopySource={'Bucket': 'trail', 'Key': k})\n",
        &[],
    );
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("trailhound.yaml");
    std::fs::write(
        &cfg,
        format!(
            "version: 1\nstate_dir: {state}\nconnections:\n  local: {{endpoint_url: \"{ep}\", region: us-east-1, s3_force_path_style: true}}\nsources:\n  - s3: {{name: copy, connection: local, bucket: trail, prefix: custom/, layout: \"{{account_id}}/{{region}}/{{year}}/{{month}}/{{day}}\", regions: [eu-west-1], since: 2024-12-02, until: 2024-12-02T12:00:00Z, poll_interval: 1s}}\n",
            state = dir.path().join("state").display(),
            ep = moto.endpoint
        ),
    )
    .expect("config");
    moto.clear_recording();
    let stats_path = dir.path().join("stats.json");
    let child = trailhound(&moto)
        .args(["run", "--config"])
        .arg(&cfg)
        .args(["--no-record", "--stats-file"])
        .arg(&stats_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start");
    // Day 2 of every account in eu-west-1: 2 objects each (00:05 and 02:05 deliveries).
    let want: BTreeSet<String> = m
        .objects
        .keys()
        .filter(|k| k.contains("/eu-west-1/2024/12/02/"))
        .map(|k| {
            let parts: Vec<&str> = k.split('/').collect();
            let i = parts
                .iter()
                .position(|p| *p == "CloudTrail")
                .expect("layout");
            let mut v = vec!["custom", parts[i - 1], parts[i + 1]];
            v.extend(&parts[i + 2..]);
            v.join("/")
        })
        .collect();
    assert_eq!(want.len(), 3 * 2);
    let deadline = Instant::now() + Duration::from_secs(30);
    while requests(&moto, "trail").0.len() < want.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1500));
    stop(child);
    let (gets, lists) = requests(&moto, "trail");
    let got: BTreeSet<String> = gets.into_iter().collect();
    assert_eq!(got, want);
    for (p, delim) in &lists {
        assert!(p.starts_with("custom/"), "outside the layout: {p}");
        if *delim {
            assert_eq!(p, "custom/", "only the account level is discovered: {p}");
        } else {
            assert!(p.ends_with("/eu-west-1/2024/12/02/"), "{p}");
        }
    }
    let stats: Value =
        serde_json::from_slice(&std::fs::read(&stats_path).expect("stats")).expect("json");
    assert_eq!(stats["records_in"], 6 * 5);
    assert_eq!(stats["accounting_ok"], true);
}
