//! `--metrics-addr`: a Prometheus scrape during a streaming `detect` agrees with the run
//! summary, and `/health` answers.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").expect("write");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

/// `name{labels}` → value, for every sample line.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

#[test]
fn a_scrape_during_the_run_equals_the_summary() {
    let raw = common::gunzip_file(&common::sample("invictus-aws-dataset"));
    let n = common::lines(&raw).len() as f64;
    let mut child = Command::new(common::BIN)
        .args([
            "--metrics-addr",
            "127.0.0.1:0",
            "--stats",
            "json",
            "--no-dedup",
        ])
        .env("RUST_LOG", "info")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut addr = None;
    let mut line = String::new();
    while stderr.read_line(&mut line).expect("stderr") > 0 {
        if let Some(rest) = line.split("http://").nth(1) {
            addr = rest.split('/').next().map(str::to_string);
            break;
        }
        line.clear();
    }
    let addr = addr.expect("the address is logged");
    let health = health_until(&addr, "ready", |code, v| {
        code == 200 && v["status"] == "ready"
    });
    assert_eq!(component(&health, "rules")["ready"], true, "{health}");
    assert_eq!(get(&addr, "/nope").0, 404);

    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(&raw).expect("write records");
    stdin.flush().expect("flush");
    // The records are in once every unit has been through the sink; stdin stays open, so
    // the run is still going when it is scraped.
    let deadline = Instant::now() + Duration::from_secs(60);
    let scraped = loop {
        let (code, body) = get(&addr, "/metrics");
        assert_eq!(code, 200);
        let s = samples(&body);
        if s.get("trailhound_records_in_total{source=\"stdin\"}") == Some(&n) {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "records_in never reached {n}: {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    drop(stdin);
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).expect("stderr");
    assert!(child.wait().expect("wait").success(), "{rest}");
    let stats: Value = serde_json::from_str(rest.lines().last().expect("stats")).expect("json");
    for name in [
        "records_in",
        "records_kept",
        "records_filtered",
        "records_deduplicated",
        "records_dead_lettered",
        "documents_skipped",
        "bytes_decoded",
    ] {
        let key = format!("trailhound_{name}_total{{source=\"stdin\"}}");
        assert_eq!(scraped.get(&key).copied(), stats[name].as_f64(), "{name}");
    }
    // Single-record findings are all written once the records are in; correlations and
    // alarms may still report when the stream ends.
    let by_rule = stats["findings"]["by_rule"].as_object().expect("by_rule");
    let pack_kinds = common::run(&["rules", "list", "--format", "json"], b"");
    let kinds: Value = serde_json::from_slice(&pack_kinds.stdout).expect("list");
    let mut compared = 0;
    for r in kinds.as_array().expect("rules") {
        if r["kind"] != "sigma" || r["silent"] == true {
            continue;
        }
        let id = r["id"].as_str().expect("id");
        let want = by_rule.get(id).and_then(Value::as_f64).unwrap_or(0.0);
        let key = format!(
            "trailhound_findings_total{{rule=\"{id}\",level=\"{}\"}}",
            r["level"].as_str().expect("level")
        );
        let got = scraped.get(&key).copied().unwrap_or(0.0);
        assert_eq!(got, want, "findings of {id}");
        compared += usize::from(want > 0.0);
    }
    assert!(compared >= 5, "{compared} rules with findings compared");
    assert!(
        scraped
            .keys()
            .any(|k| k.starts_with("trailhound_build_info{version=")),
        "{scraped:?}"
    );
}

/// Starts `trailhound` with `args`, returns the child and the metrics address it logs.
fn start_with_metrics(
    args: &[&str],
) -> (
    std::process::Child,
    String,
    std::sync::mpsc::Receiver<String>,
) {
    let mut child = Command::new(common::BIN)
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = loop {
        let l = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("a log line with the address");
        if let Some(rest) = l.split("http://").nth(1) {
            break rest.split('/').next().expect("addr").to_string();
        }
        assert!(Instant::now() < deadline, "no metrics address logged");
    };
    (child, addr, rx)
}

/// Polls `/health` until `cond` holds for it (a guard against hanging, not a timing
/// assertion).
fn health_until(addr: &str, what: &str, cond: impl Fn(u16, &Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, body) = get(addr, "/health");
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if cond(code, &v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "health never became {what}: {code} {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits for `/health` to answer 503 and checks that it names `name` as not ready,
/// with a reason that mentions `reason`.
fn unready_because(addr: &str, name: &str, reason: &str) {
    let h = health_until(addr, "unready", |code, v| {
        code == 503 && v["status"] == "unready"
    });
    let c = component(&h, name);
    assert_eq!(c["ready"], false, "{h}");
    assert!(
        c["detail"].as_str().is_some_and(|d| d.contains(reason)),
        "the reason names {reason}: {h}"
    );
}

fn component<'a>(health: &'a Value, name: &str) -> &'a Value {
    health["components"]
        .as_array()
        .and_then(|c| c.iter().find(|x| x["name"] == name))
        .unwrap_or(&Value::Null)
}

#[test]
fn health_follows_the_kafka_sink_going_away_and_coming_back() {
    let Some(broker) = common::kafka::Broker::start() else {
        return;
    };
    broker.create_topic("findings", 1);
    let (mut child, addr, _log) = start_with_metrics(&[
        "--metrics-addr",
        "127.0.0.1:0",
        "--kafka-brokers",
        &broker.bootstrap,
        "--kafka-topic",
        "findings",
        "--stats",
        "json",
    ]);
    let h = health_until(&addr, "ready", |code, v| {
        code == 200 && v["status"] == "ready"
    });
    assert_eq!(component(&h, "sink/kafka")["ready"], true, "{h}");
    assert_eq!(component(&h, "pipeline")["ready"], true, "{h}");
    assert_eq!(component(&h, "rules")["ready"], true, "{h}");

    broker.kill();
    unready_because(&addr, "sink/kafka", &broker.bootstrap);
    let (_, metrics) = get(&addr, "/metrics");
    assert!(
        metrics.contains("trailhound_component_ready{component=\"sink/kafka\"} 0"),
        "{metrics}"
    );

    broker.start_again();
    let h = health_until(&addr, "ready again", |code, v| {
        code == 200 && v["status"] == "ready"
    });
    assert_eq!(component(&h, "sink/kafka")["ready"], true, "{h}");
    drop(child.stdin.take());
    assert!(child.wait().expect("wait").success());
}

const CREATE_QUEUE_PY: &str = r#"
import sys
import boto3
print(boto3.client("sqs").create_queue(QueueName=sys.argv[1])["QueueUrl"])
"#;

#[test]
fn health_follows_the_emulator_going_away_and_coming_back() {
    let Some(mut moto) = common::moto::Moto::start() else {
        return;
    };
    let url = moto
        .run_python(CREATE_QUEUE_PY, &["trail-q"])
        .trim()
        .to_string();
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = common::write_file(
        dir.path(),
        "trailhound.yaml",
        format!(
            "version: 1\nstate_dir: \"{}\"\nconnections:\n  local: {{endpoint_url: \"{}\", region: us-east-1, access_key: test, secret_key: test, s3_force_path_style: true}}\nsources:\n  - sqs: {{name: live, connection: local, queue_url: \"{url}\", wait_time: 1s}}\n",
            dir.path().join("state").display(),
            moto.endpoint
        )
        .as_bytes(),
    );
    let cfg = cfg.display().to_string();
    let (mut child, addr, _log) =
        start_with_metrics(&["run", "--config", &cfg, "--metrics-addr", "127.0.0.1:0"]);
    let h = health_until(&addr, "ready", |code, v| {
        code == 200 && component(v, "source/live")["ready"] == true
    });
    assert_eq!(h["status"], "ready");

    moto.kill();
    unready_because(&addr, "source/live", "trail-q");

    moto.start_again();
    // The emulator comes back empty: once the queue exists again, the source reads.
    let again = moto
        .run_python(CREATE_QUEUE_PY, &["trail-q"])
        .trim()
        .to_string();
    assert_eq!(again, url);
    health_until(&addr, "ready again", |code, v| {
        code == 200 && component(v, "source/live")["ready"] == true
    });
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().expect("wait").success());
}
