//! The Kafka sink: one message per finding, delivery confirmed before a source moves on.
//!
//! `kafka: {brokers, topic, key, compression, rdkafka_options, delivery_timeout}`. The
//! producer is idempotent with `acks=all` (both forced). Every finding gets a sequence
//! number when it is handed to librdkafka; the delivery report removes it from the
//! outstanding set. An input's acknowledgement ([`KafkaSink::hold`]) waits until every
//! finding produced before it has been delivered, so an SQS message is deleted, a Kafka
//! offset committed or a checkpoint advanced only after the findings of its records are
//! on the broker.
//!
//! **Backpressure.** librdkafka's queue is bounded (`queue.buffering.max.messages`,
//! `queue.buffering.max.kbytes`, defaults 100,000 and 64 MiB here). When it is full —
//! the broker is down or slow — the sink thread waits and retries, which stops the
//! pipeline from returning permits, which stops the sources. Messages never time out
//! (`message.timeout.ms=0`): librdkafka retries them until the broker is back. Only a
//! permanent delivery error (a message too large, no authorization) fails the sink;
//! nothing after it is acknowledged. At the end of a run, deliveries are awaited for
//! `delivery_timeout` (default 5 minutes); what is still undelivered then is reported
//! and its inputs stay unacknowledged.
//!
//! **Key.** `key` is a template over the finding: `{event.recipientAccountId}`,
//! `{rule.id}/{event.awsRegion}`; a missing value is empty. Default: the finding `id`,
//! so the partition of a finding is stable across replays.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message as _;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use serde::Deserialize;

use super::route::Route;
use crate::kafka::{Brokers, LogContext, OptionValue};
use crate::source::Ack;

/// `sinks: - kafka: {...}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkConfig {
    /// The sink's name (default `kafka`).
    pub name: Option<String>,
    /// Which findings it takes.
    pub route: Option<Route>,
    /// Finding format (`native`).
    pub format: Option<String>,
    /// Bootstrap brokers.
    pub brokers: Brokers,
    /// The findings topic.
    pub topic: String,
    /// Message key template (default `{id}`).
    pub key: Option<String>,
    /// `none`, `gzip`, `snappy`, `lz4`, `zstd` (default `none`).
    pub compression: Option<String>,
    /// How long the end of a run waits for deliveries (default `5m`).
    pub delivery_timeout: Option<String>,
    /// librdkafka properties, passed through.
    #[serde(default)]
    pub rdkafka_options: BTreeMap<String, OptionValue>,
}

/// The producer's librdkafka properties: trailhound's defaults, the user's
/// `rdkafka_options`, and `acks=all` with idempotence forced.
pub fn producer_config(cfg: &KafkaSinkConfig, name: &str) -> Result<rdkafka::ClientConfig, String> {
    let compression = cfg.compression.as_deref().unwrap_or("none");
    if !["none", "gzip", "snappy", "lz4", "zstd"].contains(&compression) {
        return Err(format!(
            "compression: {compression:?} is not one of none, gzip, snappy, lz4, zstd"
        ));
    }
    if let Some(s) = &cfg.delivery_timeout
        && crate::config::parse_duration(s).is_none()
    {
        return Err(format!("delivery_timeout: {s:?} is not a duration"));
    }
    let defaults = [
        ("compression.type", compression.to_string()),
        ("linger.ms", "5".to_string()),
        ("message.timeout.ms", "0".to_string()),
        ("queue.buffering.max.messages", "100000".to_string()),
        ("queue.buffering.max.kbytes", "65536".to_string()),
        ("client.id", format!("trailhound-{name}")),
    ];
    let forced = [("acks", "all"), ("enable.idempotence", "true")];
    crate::kafka::client_config(
        &cfg.brokers.bootstrap(),
        &defaults,
        &cfg.rdkafka_options,
        &forced,
    )
}

/// One piece of a key template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Field(Vec<String>),
}

/// A message key template over the finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTemplate {
    parts: Vec<Part>,
    /// The template is `{id}`: read the id without parsing the finding.
    id_only: bool,
}

impl KeyTemplate {
    /// Parses `text`: `{dotted.path}` are fields, the rest is literal.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let Some(close) = rest[open..].find('}') else {
                return Err(format!("key {text:?}: '{{' without '}}'"));
            };
            let field = rest[open + 1..open + close].trim();
            if field.is_empty() {
                return Err(format!("key {text:?}: empty field"));
            }
            parts.push(Part::Field(field.split('.').map(str::to_string).collect()));
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        let id_only = parts == [Part::Field(vec!["id".into()])];
        Ok(KeyTemplate { parts, id_only })
    }

    /// The key of a finding line.
    pub fn render(&self, line: &[u8], out: &mut Vec<u8>) {
        out.clear();
        if self.id_only
            && let Some(id) = quick_id(line)
        {
            out.extend_from_slice(id);
            return;
        }
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) else {
            return;
        };
        for p in &self.parts {
            match p {
                Part::Text(t) => out.extend_from_slice(t.as_bytes()),
                Part::Field(path) => {
                    let mut cur = Some(&v);
                    for seg in path {
                        cur = cur.and_then(|c| c.get(seg));
                    }
                    match cur {
                        Some(serde_json::Value::String(s)) => out.extend_from_slice(s.as_bytes()),
                        Some(serde_json::Value::Null) | None => {}
                        Some(other) => out.extend_from_slice(other.to_string().as_bytes()),
                    }
                }
            }
        }
    }
}

/// The `id` of a native finding, which is its second key.
fn quick_id(line: &[u8]) -> Option<&[u8]> {
    const KEY: &[u8] = b"\"id\":\"";
    let at = memchr::memmem::find(&line[..line.len().min(96)], KEY)? + KEY.len();
    let end = at + memchr::memchr(b'"', &line[at..])?;
    Some(&line[at..end])
}

#[derive(Default)]
struct TrackState {
    next: u64,
    /// Sequence number → when it was handed to the producer.
    outstanding: BTreeMap<u64, Instant>,
    waiting: VecDeque<(u64, Ack)>,
    failed: Option<String>,
    delivered: u64,
    errors: u64,
}

impl TrackState {
    /// Acks whose findings are all delivered.
    fn ready(&mut self) -> Vec<Ack> {
        if self.failed.is_some() {
            return Vec::new();
        }
        let low = self
            .outstanding
            .first_key_value()
            .map(|(k, _)| *k)
            .unwrap_or(self.next);
        let mut out = Vec::new();
        while self
            .waiting
            .front()
            .is_some_and(|(barrier, _)| *barrier <= low)
        {
            if let Some((_, a)) = self.waiting.pop_front() {
                out.push(a);
            }
        }
        out
    }
}

/// Delivery bookkeeping shared with librdkafka's callback thread.
#[derive(Default)]
struct Tracker {
    state: Mutex<TrackState>,
    changed: Condvar,
}

impl Tracker {
    fn lock(&self) -> std::sync::MutexGuard<'_, TrackState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The producer's context: logs, and delivery reports into the tracker.
struct Ctx {
    log: LogContext,
    /// The sink's name (metrics label).
    sink: String,
    tracker: Arc<Tracker>,
}

impl ClientContext for Ctx {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.log.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.log.error(error, reason);
    }
}

impl ProducerContext for Ctx {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, seq: usize) {
        let ready = {
            let mut st = self.tracker.lock();
            if let Some(sent) = st.outstanding.remove(&(seq as u64)) {
                crate::telemetry::record_delivery(&self.sink, sent.elapsed());
            }
            match result {
                Ok(_) => st.delivered += 1,
                Err((e, m)) => {
                    st.errors += 1;
                    if st.failed.is_none() {
                        st.failed = Some(format!(
                            "a finding could not be delivered to topic {} partition {}: {e}",
                            m.topic(),
                            m.partition()
                        ));
                    }
                }
            }
            st.ready()
        };
        self.tracker.changed.notify_all();
        for a in ready {
            a.fire();
        }
    }
}

/// Delivery counters of a Kafka sink.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KafkaSinkStats {
    /// Findings handed to the producer.
    pub produced: u64,
    /// Findings the broker confirmed.
    pub delivered: u64,
    /// Findings that failed permanently.
    pub errors: u64,
    /// Times the producer queue was full and the sink waited.
    pub queue_full: u64,
}

/// A Kafka findings sink.
pub struct KafkaSink {
    name: String,
    topic: String,
    key: KeyTemplate,
    producer: ThreadedProducer<Ctx>,
    tracker: Arc<Tracker>,
    key_buf: Vec<u8>,
    stop: Arc<AtomicBool>,
    delivery_timeout: Duration,
    queue_full: u64,
    /// Stops the health probe.
    probe_stop: Arc<AtomicBool>,
}

impl Drop for KafkaSink {
    fn drop(&mut self) {
        self.probe_stop.store(true, Ordering::Relaxed);
    }
}

/// How often the health probe asks the brokers for the topic's metadata.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// While `/health` is served: asks the brokers for the topic's metadata every second
/// on a client of its own (so a slow answer never holds up deliveries) and reports
/// `sink/<name>` ready or not, with the reason.
fn probe(cfg: &KafkaSinkConfig, name: &str, stop: Arc<AtomicBool>) {
    if !crate::telemetry::enabled() {
        return;
    }
    let component = format!("sink/{name}");
    let client: Result<rdkafka::producer::BaseProducer, String> =
        producer_config(cfg, name).and_then(|c| c.create().map_err(|e| crate::kafka::describe(&e)));
    let client = match client {
        Ok(c) => c,
        Err(e) => {
            crate::telemetry::component(&component, false, format!("health probe: {e}"));
            return;
        }
    };
    let topic = cfg.topic.clone();
    let brokers = cfg.brokers.bootstrap();
    let _ = std::thread::Builder::new()
        .name(format!("probe-{name}"))
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let started = std::time::Instant::now();
                let state = match client
                    .client()
                    .fetch_metadata(Some(&topic), PROBE_EVERY * 2)
                {
                    Ok(md) => match md.topics().iter().find(|t| t.name() == topic) {
                        Some(t) if t.error().is_some() => (
                            false,
                            format!(
                                "topic {topic} on {brokers}: {:?}",
                                t.error().map(RDKafkaErrorCode::from)
                            ),
                        ),
                        _ => (true, format!("connected to {brokers}, topic {topic}")),
                    },
                    Err(e) => (false, format!("brokers {brokers} do not answer: {e}")),
                };
                crate::telemetry::component(&component, state.0, state.1);
                std::thread::sleep(PROBE_EVERY.saturating_sub(started.elapsed()));
            }
        });
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink")
            .field("name", &self.name)
            .field("topic", &self.topic)
            .finish()
    }
}

/// How long to wait for the topic's metadata at start-up.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

impl KafkaSink {
    /// Creates the producer and checks the topic exists (when the brokers answer; a
    /// broker that is down at start-up is waited for, not an error).
    pub fn open(cfg: &KafkaSinkConfig, stop: Arc<AtomicBool>) -> Result<Self, String> {
        let name = cfg.name.clone().unwrap_or_else(|| "kafka".into());
        let key = KeyTemplate::parse(cfg.key.as_deref().unwrap_or("{id}"))?;
        let delivery_timeout = match &cfg.delivery_timeout {
            Some(s) => crate::config::parse_duration(s)
                .ok_or_else(|| format!("delivery_timeout: {s:?} is not a duration"))?,
            None => Duration::from_secs(300),
        };
        let config = producer_config(cfg, &name)?;
        let tracker = Arc::new(Tracker::default());
        let ctx = Ctx {
            log: LogContext {
                who: format!("kafka sink {name}"),
            },
            tracker: tracker.clone(),
            sink: name.clone(),
        };
        let producer: ThreadedProducer<Ctx> = config
            .create_with_context(ctx)
            .map_err(|e| format!("kafka producer: {}", crate::kafka::describe(&e)))?;
        match producer
            .client()
            .fetch_metadata(Some(&cfg.topic), METADATA_TIMEOUT)
        {
            Ok(md) => {
                if let Some(t) = md.topics().iter().find(|t| t.name() == cfg.topic)
                    && let Some(e) = t.error()
                {
                    let code = RDKafkaErrorCode::from(e);
                    return Err(format!(
                        "topic {:?} on {}: {code}; create it first",
                        cfg.topic,
                        cfg.brokers.bootstrap()
                    ));
                }
            }
            Err(e) => tracing::warn!(
                sink = %name,
                "kafka brokers {} did not answer yet ({e}); findings wait in the queue until they do",
                cfg.brokers.bootstrap()
            ),
        }
        let probe_stop = Arc::new(AtomicBool::new(false));
        crate::telemetry::component(
            &format!("sink/{name}"),
            false,
            format!("connecting to {}", cfg.brokers.bootstrap()),
        );
        probe(cfg, &name, probe_stop.clone());
        Ok(KafkaSink {
            name,
            topic: cfg.topic.clone(),
            key,
            producer,
            tracker,
            key_buf: Vec::with_capacity(64),
            stop,
            delivery_timeout,
            queue_full: 0,
            probe_stop,
        })
    }

    /// The sink's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Hands one finding (`payload`, in the sink's format, without its `\n`) to the
    /// producer, waiting while its queue is full; the key is rendered from `native`,
    /// the same finding as native JSON.
    pub fn send(&mut self, native: &[u8], payload: &[u8]) -> Result<(), String> {
        self.key.render(native, &mut self.key_buf);
        let seq = {
            let mut st = self.tracker.lock();
            if let Some(f) = &st.failed {
                return Err(f.clone());
            }
            let seq = st.next;
            st.next += 1;
            st.outstanding.insert(seq, Instant::now());
            seq
        };
        let mut record = BaseRecord::with_opaque_to(&self.topic, seq as usize)
            .payload(payload)
            .key(&self.key_buf[..]);
        let mut waited_since: Option<Instant> = None;
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    if waited_since.is_none() {
                        self.queue_full += 1;
                    }
                    let since = *waited_since.get_or_insert_with(Instant::now);
                    if self.stop.load(Ordering::Relaxed) && since.elapsed() > self.delivery_timeout
                    {
                        self.forget(seq);
                        return Err(format!(
                            "the producer queue stayed full for {} while stopping",
                            humantime::format_duration(self.delivery_timeout)
                        ));
                    }
                    // The producer's thread drains the queue; wait for a delivery.
                    let st = self.tracker.lock();
                    let _ = self
                        .tracker
                        .changed
                        .wait_timeout(st, Duration::from_millis(50));
                }
                Err((e, _)) => {
                    self.forget(seq);
                    let msg = format!("producing to topic {}: {e}", self.topic);
                    self.tracker.lock().failed.get_or_insert(msg.clone());
                    return Err(msg);
                }
            }
        }
    }

    fn forget(&self, seq: u64) {
        self.tracker.lock().outstanding.remove(&seq);
    }

    /// Holds `ack` until every finding sent so far is delivered.
    pub fn hold(&self, ack: Ack) {
        let ready = {
            let mut st = self.tracker.lock();
            let barrier = st.next;
            st.waiting.push_back((barrier, ack));
            st.ready()
        };
        for a in ready {
            a.fire();
        }
    }

    /// A permanent delivery failure, if one happened.
    pub fn failure(&self) -> Option<String> {
        self.tracker.lock().failed.clone()
    }

    /// Waits for every delivery (up to `delivery_timeout`); held acks fire as their
    /// findings are confirmed. Undelivered findings are an error.
    pub fn finish(&mut self) -> Result<KafkaSinkStats, String> {
        let deadline = Instant::now() + self.delivery_timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            {
                let st = self.tracker.lock();
                if let Some(f) = &st.failed {
                    return Err(f.clone());
                }
                if st.outstanding.is_empty() {
                    break;
                }
                if left.is_zero() {
                    return Err(format!(
                        "{} findings were not delivered within {}; their inputs stay unacknowledged",
                        st.outstanding.len(),
                        humantime::format_duration(self.delivery_timeout)
                    ));
                }
            }
            let _ = self.producer.flush(left.min(Duration::from_millis(200)));
        }
        Ok(self.stats())
    }

    /// Delivery counters so far.
    pub fn stats(&self) -> KafkaSinkStats {
        let st = self.tracker.lock();
        KafkaSinkStats {
            produced: st.next,
            delivered: st.delivered,
            errors: st.errors,
            queue_full: self.queue_full,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_templates() {
        let line = br#"{"schema":"trailhound.finding/1","id":"abc123","rule":{"id":"r1"},"event":{"recipientAccountId":"111122223333","n":5,"x":null}}"#;
        let mut out = Vec::new();
        KeyTemplate::parse("{id}")
            .expect("t")
            .render(line, &mut out);
        assert_eq!(out, b"abc123");
        KeyTemplate::parse("{event.recipientAccountId}")
            .expect("t")
            .render(line, &mut out);
        assert_eq!(out, b"111122223333");
        KeyTemplate::parse("acct-{event.recipientAccountId}/{rule.id}/{event.n}{event.x}{nope}")
            .expect("t")
            .render(line, &mut out);
        assert_eq!(out, b"acct-111122223333/r1/5");
        assert!(KeyTemplate::parse("{open").is_err());
        assert!(KeyTemplate::parse("{}").is_err());
    }
}
