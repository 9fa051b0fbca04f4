//! A Kafka-protocol broker for the integration tests: Tansu on 127.0.0.1, started and
//! stopped by `scripts/kafka-local` (see `scripts/kafka-local --help` and
//! tests/kafka/README.md), plus producing and consuming helpers on rdkafka.
//!
//! ```ignore
//! let Some(broker) = common::kafka::Broker::start() else { return }; // skipped without tansu
//! broker.create_topic("records", 12);
//! broker.produce("records", &messages);
//! let got = broker.consume_until("findings", |m| m.len() >= n, Duration::from_secs(60));
//! ```
//!
//! Each broker runs on a free port with its own directory (SQLite storage, so a
//! [`Broker::restart`] keeps the data); dropping the [`Broker`] kills it by the PID that
//! kafka-local recorded and removes the directory.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message as _;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

/// `scripts/kafka-local`.
pub fn script() -> PathBuf {
    super::root().join("scripts/kafka-local")
}

/// The tansu binary kafka-local uses.
pub fn tansu_bin() -> PathBuf {
    if let Ok(p) = std::env::var("KAFKA_LOCAL_TANSU") {
        return PathBuf::from(p);
    }
    let cache = std::env::var("KAFKA_LOCAL_CACHE").map_or_else(
        |_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
                .join(".cache/kafka-local")
        },
        PathBuf::from,
    );
    cache.join("tansu-0.6.0/bin/tansu")
}

/// Whether the broker is installed. When it is not: panics if
/// `TRAILHOUND_KAFKA=required` (as `scripts/test.sh` sets it), otherwise prints a skip
/// notice and returns false.
pub fn available() -> bool {
    let bin = tansu_bin();
    if bin.is_file() {
        return true;
    }
    if std::env::var("TRAILHOUND_KAFKA").as_deref() == Ok("required") {
        panic!(
            "TRAILHOUND_KAFKA=required but {} is missing: run scripts/kafka-local fetch",
            bin.display()
        );
    }
    eprintln!("skipping: no Kafka broker (run scripts/kafka-local fetch)");
    false
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A running broker.
pub struct Broker {
    pub port: u16,
    pub bootstrap: String,
    dir: tempfile::TempDir,
}

fn kafka_local(args: &[&str]) -> String {
    let out = Command::new(script())
        .args(args)
        .output()
        .expect("run scripts/kafka-local");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "kafka-local {args:?} failed: {}{}",
        text,
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

impl Broker {
    /// Starts a broker (`None` when none is installed and it is not required).
    pub fn start() -> Option<Broker> {
        if !available() {
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let bdir = dir.path().join("broker");
        kafka_local(&[
            "start",
            "--port",
            &port.to_string(),
            "--dir",
            bdir.to_str().expect("utf-8 path"),
        ]);
        Some(Broker {
            port,
            bootstrap: format!("127.0.0.1:{port}"),
            dir,
        })
    }

    fn dir_arg(&self) -> String {
        self.dir.path().join("broker").display().to_string()
    }

    /// A scratch directory that lives as long as the broker.
    pub fn scratch(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Creates a topic (SQLite storage does not create topics on first use).
    pub fn create_topic(&self, name: &str, partitions: u32) {
        kafka_local(&[
            "topics",
            "--dir",
            &self.dir_arg(),
            "create",
            name,
            "--partitions",
            &partitions.to_string(),
        ]);
    }

    /// SIGKILL and start again on the same data and port.
    pub fn restart(&self) {
        kafka_local(&["restart", "--dir", &self.dir_arg()]);
    }

    /// Kills the broker (the data stays until drop).
    pub fn kill(&self) {
        kafka_local(&["stop", "--dir", &self.dir_arg(), "--keep", "--kill"]);
    }

    /// Starts a killed broker again.
    pub fn start_again(&self) {
        kafka_local(&[
            "start",
            "--port",
            &self.port.to_string(),
            "--dir",
            &self.dir_arg(),
        ]);
    }

    /// The broker's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("broker/broker.log")).unwrap_or_default()
    }

    /// Produces `messages` (key, payload) and waits for every delivery.
    pub fn produce(&self, topic: &str, messages: &[(Option<Vec<u8>>, Vec<u8>)]) {
        produce(&self.bootstrap, topic, messages);
    }

    /// Reads `topic` from the beginning with a fresh group until `done` says so or
    /// `timeout` passes; returns the payloads and keys read.
    pub fn consume_until(
        &self,
        topic: &str,
        done: impl Fn(&[Consumed]) -> bool,
        timeout: Duration,
    ) -> Vec<Consumed> {
        consume_until(&self.bootstrap, topic, done, timeout)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .args(["stop", "--dir", &self.dir_arg(), "--kill"])
            .output();
        if std::thread::panicking() {
            let log = self.log();
            let tail: String = log
                .lines()
                .rev()
                .take(30)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            eprintln!("broker log (last lines):\n{tail}");
        }
    }
}

/// A message read back.
#[derive(Debug, Clone)]
pub struct Consumed {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
}

/// Produces and waits for every delivery (acks=all, idempotent).
pub fn produce(bootstrap: &str, topic: &str, messages: &[(Option<Vec<u8>>, Vec<u8>)]) {
    let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "120000")
        .create()
        .expect("producer");
    for (k, v) in messages {
        let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).payload(v.as_slice());
        if let Some(k) = k {
            rec = rec.key(k.as_slice());
        }
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((_, r)) => {
                    rec = r;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }
    p.flush(Duration::from_secs(120)).expect("all produced");
}

/// See [`Broker::consume_until`].
pub fn consume_until(
    bootstrap: &str,
    topic: &str,
    done: impl Fn(&[Consumed]) -> bool,
    timeout: Duration,
) -> Vec<Consumed> {
    let group = format!(
        "test-reader-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos() ^ (topic.len() as u128)
    );
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("group.id", format!("{group}-{}", free_port()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    c.subscribe(&[topic]).expect("subscribe");
    poll_until(&c, done, timeout)
}

/// Committed offsets of a group (partition → next offset), read by a consumer of the
/// group that does not consume.
pub fn committed(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = c
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    got.elements()
        .iter()
        .filter_map(|e| match e.offset() {
            rdkafka::Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

/// Reads `topic` (`partitions` of it) from the beginning with its partitions assigned
/// directly (no group join, so no group coordinator is involved) until `done`
/// holds or `timeout` passes.
pub fn read_assigned(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    done: impl Fn(&[Consumed]) -> bool,
    timeout: Duration,
) -> Vec<Consumed> {
    // librdkafka wants a group id, but `assign` never joins the group.
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("group.id", format!("test-assigned-{}", free_port()))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning)
            .expect("partition offset");
    }
    c.assign(&tpl).expect("assign");
    poll_until(&c, done, timeout)
}

/// Polls `c` until `done` holds or `timeout` passes.
fn poll_until(
    c: &BaseConsumer,
    done: impl Fn(&[Consumed]) -> bool,
    timeout: Duration,
) -> Vec<Consumed> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while Instant::now() < deadline && !done(&out) {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            out.push(Consumed {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                payload: m.payload().unwrap_or_default().to_vec(),
            });
        }
    }
    out
}
