//! trailhound's own Kafka logic against librdkafka's in-process mock cluster
//! (`rdkafka::mocking::MockCluster`): fault injection that a broker process makes slow
//! or impossible. The end-to-end path against a real broker process is tests/kafka.rs.
//!
//! - The findings sink holds an input's acknowledgement while the broker is down and
//!   releases it once the findings are delivered; nothing is dropped.
//! - The source stores (and so commits) offsets only up to the front of acknowledged
//!   batches; a restarted consumer in the same group resumes exactly there.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rdkafka::mocking::MockCluster;
use trailhound::kafka::{Brokers, OptionValue};
use trailhound::pipeline::{self, PipelineConfig};
use trailhound::rules::{LoadReport, Origin, RulePack};
use trailhound::sink::kafka::KafkaSinkConfig;
use trailhound::sink::{Output, SinkConfig};
use trailhound::source::kafka::KafkaSourceConfig;
use trailhound::source::{Ack, Arrival, Feed};

fn every_record_pack() -> Arc<RulePack> {
    let path = common::root().join("tests/fixtures/kafka/every-record.yml");
    let text = std::fs::read_to_string(&path).expect("rule");
    let mut report = LoadReport::default();
    let pack = RulePack::from_sources(&[(Origin::File(path), text)], &mut report);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    Arc::new(pack)
}

/// The first `n` records of a real sample, as NDJSON.
fn ndjson(n: usize) -> Vec<u8> {
    let text = common::gunzip_file(&common::sample("stratus-red-team"));
    let mut out = Vec::new();
    for l in common::lines(&text).into_iter().take(n) {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out
}

fn wait_for(what: &str, timeout: Duration, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_sink_holds_acknowledgements_while_the_broker_is_down() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("findings", 1, 1).expect("topic");
    let bootstrap = cluster.bootstrap_servers();
    let stop = Arc::new(AtomicBool::new(false));
    let sink = SinkConfig::Kafka(Box::new(KafkaSinkConfig {
        name: Some("siem".into()),
        route: None,
        format: None,
        brokers: Brokers::One(bootstrap.clone()),
        topic: "findings".into(),
        key: None,
        compression: Some("lz4".into()),
        delivery_timeout: Some("60s".into()),
        rdkafka_options: [(
            "broker.address.family".to_string(),
            OptionValue::Text("v4".into()),
        )]
        .into_iter()
        .collect(),
    }));
    let output = Output::open(&[sink], None, stop.clone(), &Default::default()).expect("sink");
    let pack = every_record_pack();
    let (tx, rx) = tokio::sync::mpsc::channel::<Arrival>(4);
    let cfg = PipelineConfig::default();
    let run = std::thread::spawn(move || {
        pipeline::run(Feed::Live(rx), pack, output, None, &cfg, stop).expect("pipeline")
    });

    cluster.broker_down(1).expect("down");
    let records = 40;
    let acked = Arc::new(AtomicUsize::new(0));
    let a = acked.clone();
    tx.blocking_send(Arrival::fetched(
        "s3://bucket/one.json".into(),
        ndjson(records),
        Ack::new(move || {
            a.fetch_add(1, Ordering::SeqCst);
        }),
    ))
    .expect("send");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        acked.load(Ordering::SeqCst),
        0,
        "no acknowledgement while the findings are undelivered"
    );
    cluster.broker_up(1).expect("up");
    wait_for("the acknowledgement", Duration::from_secs(60), || {
        acked.load(Ordering::SeqCst) == 1
    });
    drop(tx);
    let outcome = run.join().expect("pipeline thread");
    assert_eq!(outcome.summary.counters.records_in, records as u64);
    let sink = &outcome.summary.sinks[0];
    assert_eq!(sink.findings, records as u64);
    assert_eq!(
        sink.delivered,
        Some(records as u64),
        "every finding delivered once"
    );
    let got = common::kafka::consume_until(
        &bootstrap,
        "findings",
        |m| m.len() >= records,
        Duration::from_secs(30),
    );
    assert_eq!(got.len(), records);
}

#[test]
fn offsets_are_committed_only_up_to_the_acknowledged_front() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("records", 1, 1).expect("topic");
    let bootstrap = cluster.bootstrap_servers();
    let text = ndjson(100);
    let msgs: Vec<_> = common::lines(&text)
        .into_iter()
        .map(|l| (None, l.to_vec()))
        .collect();
    assert_eq!(msgs.len(), 100);
    common::kafka::produce(&bootstrap, "records", &msgs);

    let source = || KafkaSourceConfig {
        name: Some("bus".into()),
        brokers: Brokers::One(bootstrap.clone()),
        topics: vec!["records".into()],
        group_id: "front".into(),
        start_offset: None,
        batch_max_messages: Some(10),
        batch_max_bytes: None,
        batch_timeout: Some("2s".into()),
        drain_timeout: Some("1s".into()),
        key_field: None,
        stop_at_end: false,
        rdkafka_options: [
            ("broker.address.family", "v4"),
            ("session.timeout.ms", "6000"),
            ("heartbeat.interval.ms", "500"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), OptionValue::Text(v.into())))
        .collect(),
    };
    let consume = |acks: &[usize], want: usize| {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Arrival>(32);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let cfg = source();
        let t = std::thread::spawn(move || {
            trailhound::source::kafka::run(cfg, "bus".into(), tx, stop_rx).expect("source")
        });
        let mut batches = Vec::new();
        while batches.len() < want {
            let a = rx.blocking_recv().expect("a batch");
            batches.push(a);
        }
        let first = batches[0].messages[0].offset;
        for &i in acks {
            if let Some(ack) = batches[i].ack.take() {
                ack.fire();
            }
        }
        stop_tx.send(true).expect("stop");
        let running = t.join().expect("source thread");
        running.close();
        first
    };
    // Ten batches of ten; 0, 1, 2 and 4 acknowledged: 3 holds the front at 30.
    assert_eq!(consume(&[0, 1, 2, 4], 10), 0);
    let committed = common::kafka::committed(&bootstrap, "front", "records", 1);
    assert_eq!(committed.get(&0), Some(&30));
    // A new member of the group starts at the first unacknowledged batch.
    assert_eq!(consume(&[0], 1), 30);
    let committed = common::kafka::committed(&bootstrap, "front", "records", 1);
    assert_eq!(committed.get(&0), Some(&40));
}
