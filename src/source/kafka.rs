//! The Kafka source: records from topics, in a consumer group, committed only once
//! delivered.
//!
//! `kafka: {name, brokers, topics, group_id, start_offset, batch_max_messages,
//! batch_max_bytes, batch_timeout, drain_timeout, key_field, stop_at_end,
//! rdkafka_options}`.
//!
//! **Payloads.** A message may hold one record, a CloudTrail `{"Records":[…]}` object
//! (gzip or plain), NDJSON, a CloudWatch Logs subscription payload or an EventBridge
//! envelope — the same framing detection as files, applied to each message on its own
//! ([`crate::decode::frame_message`]). A finding names its message as
//! `input: {name: "kafka:<topic>/<partition>", line: <offset>, byte_offset: <in the
//! message>}`.
//!
//! **Batches.** A dedicated thread polls a librdkafka consumer and gathers messages per
//! partition into batches (`batch_max_messages` 1,000, `batch_max_bytes` 1 MiB, or
//! whatever arrived within `batch_timeout`, 10 ms); a batch is one pipeline input.
//! Sending blocks while the pipeline is busy: backpressure reaches the broker as
//! consumer lag, never as memory.
//!
//! **At least once.** Auto-commit is on but offsets are *stored* only by
//! acknowledgements (`enable.auto.offset.store=false`): a batch's ack fires once its
//! records are processed, their findings delivered to every sink and their archive
//! rows in finished Parquet files. Per partition, the stored offset is the end of the
//! longest run of acknowledged batches from the front, so a slow batch holds back those
//! after it and nothing is committed past an unfinished one. A crash redoes at most the
//! uncommitted tail; findings of redone records carry the same `id`.
//!
//! **Rebalances.** When partitions are revoked, the consumer waits up to
//! `drain_timeout` (30 s) for their batches in flight, commits what was acknowledged,
//! and forgets the rest: acknowledgements that arrive later for a partition no longer
//! owned are ignored, and the new owner starts from the last commit. Duplicates are
//! bounded by what was in flight and removed downstream by `id` / `tp_id`.
//!
//! **Scaling out.** Instances with the same `group_id` share the partitions. Stateful
//! rules (correlations) only see the records of their own instance, so a correlation
//! is exact only when all records of one group-by key land on one partition: key the
//! topic's messages by a field the correlation groups by (the account or the
//! principal) and name it in `key_field`; trailhound warns about correlations that this
//! does not cover (`docs/kafka.md`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use serde::Deserialize;
use tokio::sync::{mpsc, watch};

use super::{Ack, Arrival, Input, Message};
use crate::kafka::{Brokers, LogContext, OptionValue};

/// `sources: - kafka: {...}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceConfig {
    /// The source's name (default `kafka`).
    pub name: Option<String>,
    /// Bootstrap brokers.
    pub brokers: Brokers,
    /// Topics to subscribe to.
    pub topics: Vec<String>,
    /// The consumer group.
    pub group_id: String,
    /// Where a group without committed offsets starts: `earliest` (default) or `latest`.
    pub start_offset: Option<String>,
    /// Most messages per batch (default 1000).
    pub batch_max_messages: Option<usize>,
    /// Most payload bytes per batch (default `1MiB`).
    pub batch_max_bytes: Option<String>,
    /// Longest wait before a partial batch is handed on (default `10ms`).
    pub batch_timeout: Option<String>,
    /// How long a revocation waits for batches in flight (default `30s`).
    pub drain_timeout: Option<String>,
    /// The record field the topic's messages are keyed (partitioned) by, e.g.
    /// `recipientAccountId`: correlations grouped by it are exact across instances.
    pub key_field: Option<String>,
    /// Stop once every assigned partition is read to its end (a batch run over a topic).
    #[serde(default)]
    pub stop_at_end: bool,
    /// librdkafka properties, passed through.
    #[serde(default)]
    pub rdkafka_options: BTreeMap<String, OptionValue>,
}

/// Resolved settings.
#[derive(Debug, Clone)]
struct Settings {
    max_messages: usize,
    max_bytes: usize,
    timeout: Duration,
    drain: Duration,
}

impl KafkaSourceConfig {
    fn settings(&self) -> Result<Settings, String> {
        let dur = |key: &str, v: &Option<String>, d: Duration| -> Result<Duration, String> {
            match v {
                None => Ok(d),
                Some(s) => crate::config::parse_duration(s)
                    .ok_or_else(|| format!("{key}: {s:?} is not a duration")),
            }
        };
        let max_bytes = match &self.batch_max_bytes {
            None => 1 << 20,
            Some(s) => crate::config::parse_size(s)
                .ok_or_else(|| format!("batch_max_bytes: {s:?} is not a size"))?,
        };
        Ok(Settings {
            max_messages: self.batch_max_messages.unwrap_or(1000).max(1),
            max_bytes: max_bytes.max(1),
            timeout: dur(
                "batch_timeout",
                &self.batch_timeout,
                Duration::from_millis(10),
            )?,
            drain: dur(
                "drain_timeout",
                &self.drain_timeout,
                Duration::from_secs(30),
            )?,
        })
    }

    /// Checks what can be checked before anything runs.
    pub fn validate(&self) -> Result<(), String> {
        if self.topics.is_empty() {
            return Err("topics is required".into());
        }
        if self.group_id.is_empty() {
            return Err("group_id is required".into());
        }
        if self.brokers.bootstrap().is_empty() {
            return Err("brokers is required".into());
        }
        match self.start_offset.as_deref() {
            None | Some("earliest" | "latest") => {}
            Some(o) => return Err(format!("start_offset: {o:?} is not earliest or latest")),
        }
        self.settings()?;
        self.client_config("check").map(|_| ())
    }

    fn client_config(&self, name: &str) -> Result<rdkafka::ClientConfig, String> {
        let defaults = [
            (
                "auto.offset.reset",
                self.start_offset
                    .clone()
                    .unwrap_or_else(|| "earliest".into()),
            ),
            ("auto.commit.interval.ms", "1000".to_string()),
            ("client.id", format!("trailhound-{name}")),
        ];
        let eof = if self.stop_at_end { "true" } else { "false" };
        let forced = [
            ("group.id", self.group_id.as_str()),
            ("enable.auto.commit", "true"),
            ("enable.auto.offset.store", "false"),
            ("enable.partition.eof", eof),
        ];
        crate::kafka::client_config(
            &self.brokers.bootstrap(),
            &defaults,
            &self.rdkafka_options,
            &forced,
        )
    }
}

/// Counters of a Kafka source.
#[derive(Debug, Default)]
pub struct KafkaStats {
    /// Messages received.
    pub messages: AtomicU64,
    /// Payload bytes received.
    pub bytes: AtomicU64,
    /// Batches handed to the pipeline.
    pub batches: AtomicU64,
    /// Batches acknowledged.
    pub batches_acked: AtomicU64,
    /// Offsets stored for commit.
    pub offsets_stored: AtomicU64,
    /// Partitions assigned (over all rebalances).
    pub partitions_assigned: AtomicU64,
    /// Partitions revoked.
    pub partitions_revoked: AtomicU64,
    /// Batches still in flight when their partition was revoked (their records will be
    /// read again by the new owner).
    pub batches_abandoned: AtomicU64,
    /// Consumer errors reported by poll.
    pub errors: AtomicU64,
}

type Key = (String, i32);

#[derive(Debug)]
struct Track {
    generation: u64,
    /// Last offset of each batch in flight, in order, and whether it is acknowledged.
    inflight: VecDeque<(i64, bool)>,
}

/// Batches in flight per owned partition.
#[derive(Default)]
struct Offsets {
    parts: Mutex<(u64, HashMap<Key, Track>)>,
    changed: Condvar,
}

impl Offsets {
    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, HashMap<Key, Track>)> {
        self.parts.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn assign(&self, keys: impl Iterator<Item = Key>) {
        let mut g = self.lock();
        for k in keys {
            g.0 += 1;
            let generation = g.0;
            g.1.insert(
                k,
                Track {
                    generation,
                    inflight: VecDeque::new(),
                },
            );
        }
    }

    /// The current generation of an owned partition.
    fn generation(&self, key: &Key) -> Option<u64> {
        self.lock().1.get(key).map(|t| t.generation)
    }

    /// Registers a batch gathered in `generation`; `false` when the partition is no
    /// longer owned in that generation (revoked, perhaps assigned again since: the batch
    /// is dropped and read again from the committed offset).
    fn begin(&self, key: &Key, generation: u64, last: i64) -> bool {
        let mut g = self.lock();
        match g.1.get_mut(key) {
            Some(t) if t.generation == generation => {
                t.inflight.push_back((last, false));
                true
            }
            _ => false,
        }
    }

    /// Marks a batch done; the offset to store when the acknowledged front advanced.
    fn done(&self, key: &Key, generation: u64, last: i64) -> Option<i64> {
        let mut g = self.lock();
        let t = g.1.get_mut(key).filter(|t| t.generation == generation)?;
        if let Some(e) = t.inflight.iter_mut().find(|(o, _)| *o == last) {
            e.1 = true;
        }
        let mut front = None;
        while t.inflight.front().is_some_and(|(_, done)| *done) {
            front = t.inflight.pop_front().map(|(o, _)| o);
        }
        drop(g);
        self.changed.notify_all();
        front
    }

    /// Waits until the partitions have nothing in flight (or `timeout` passes), then
    /// forgets them; returns how many batches were still in flight.
    fn revoke(&self, keys: &[Key], timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        let mut g = self.lock();
        loop {
            let busy = keys
                .iter()
                .any(|k| g.1.get(k).is_some_and(|t| !t.inflight.is_empty()));
            let left = deadline.saturating_duration_since(Instant::now());
            if !busy || left.is_zero() {
                break;
            }
            g = match self
                .changed
                .wait_timeout(g, left.min(Duration::from_millis(100)))
            {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        let mut abandoned = 0;
        for k in keys {
            if let Some(t) = g.1.remove(k) {
                abandoned += t.inflight.len() as u64;
            }
        }
        abandoned
    }
}

/// The consumer's context: logs, and rebalances into [`Offsets`].
struct Ctx {
    log: LogContext,
    offsets: Arc<Offsets>,
    stats: Arc<KafkaStats>,
    drain: Duration,
    /// Set at close: revocations then do not wait (everything was drained or will not be).
    closing: AtomicBool,
    /// Partitions owned now, and which of them are read to their end.
    owned: Mutex<BTreeMap<Key, bool>>,
}

impl ClientContext for Ctx {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.log.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.log.error(error, reason);
    }
}

fn keys(tpl: &rdkafka::TopicPartitionList) -> Vec<Key> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

impl ConsumerContext for Ctx {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let ks = keys(tpl);
                tracing::info!(client = %self.log.who, "partitions assigned: {}", show(&ks));
                self.stats
                    .partitions_assigned
                    .fetch_add(ks.len() as u64, Ordering::Relaxed);
                if let Ok(mut o) = self.owned.lock() {
                    for k in &ks {
                        o.insert(k.clone(), false);
                    }
                }
                self.offsets.assign(ks.into_iter());
            }
            Rebalance::Revoke(tpl) => {
                let ks = keys(tpl);
                let wait = if self.closing.load(Ordering::Relaxed) {
                    Duration::ZERO
                } else {
                    self.drain
                };
                let abandoned = self.offsets.revoke(&ks, wait);
                // What was acknowledged is committed before the partitions go.
                match consumer.commit_consumer_state(CommitMode::Sync) {
                    Ok(()) | Err(KafkaError::ConsumerCommit(_)) => {}
                    Err(e) => tracing::warn!(client = %self.log.who, "commit on revoke: {e}"),
                }
                self.stats
                    .partitions_revoked
                    .fetch_add(ks.len() as u64, Ordering::Relaxed);
                self.stats
                    .batches_abandoned
                    .fetch_add(abandoned, Ordering::Relaxed);
                if let Ok(mut o) = self.owned.lock() {
                    for k in &ks {
                        o.remove(k);
                    }
                }
                if abandoned > 0 {
                    tracing::warn!(client = %self.log.who, "partitions revoked with {abandoned} batches in flight: their records will be read again by the new owner ({})", show(&ks));
                } else {
                    tracing::info!(client = %self.log.who, "partitions revoked: {}", show(&ks));
                }
            }
            Rebalance::Error(e) => tracing::warn!(client = %self.log.who, "rebalance: {e}"),
        }
    }
}

fn show(ks: &[Key]) -> String {
    ks.iter()
        .map(|(t, p)| format!("{t}/{p}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A batch being gathered.
struct Pending {
    messages: Vec<Message>,
    bytes: usize,
    since: Instant,
    /// The partition's generation when the batch was started.
    generation: u64,
}

/// A running consumer, kept until the pipeline has drained (acks store offsets
/// through it) and closed by [`Running::close`].
pub struct Running {
    consumer: Arc<BaseConsumer<Ctx>>,
    /// The source's counters.
    pub stats: Arc<KafkaStats>,
    name: String,
}

impl Running {
    /// Commits what was acknowledged and leaves the group.
    pub fn close(self) {
        self.consumer
            .context()
            .closing
            .store(true, Ordering::Relaxed);
        match self.consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) | Err(KafkaError::ConsumerCommit(_)) => {}
            Err(e) => tracing::warn!(source = %self.name, "final commit: {e}"),
        }
        // Dropping the last reference closes the consumer (leaves the group).
        drop(self.consumer);
    }
}

/// Subscribes and consumes until `stop` (or, with `stop_at_end`, until every owned
/// partition is read to its end). Runs on a blocking thread.
pub fn run(
    c: KafkaSourceConfig,
    name: String,
    tx: mpsc::Sender<Arrival>,
    stop: watch::Receiver<bool>,
) -> Result<Running, String> {
    let settings = c.settings()?;
    let stats = Arc::new(KafkaStats::default());
    let offsets = Arc::new(Offsets::default());
    let ctx = Ctx {
        log: LogContext {
            who: format!("kafka source {name}"),
        },
        offsets: offsets.clone(),
        stats: stats.clone(),
        drain: settings.drain,
        closing: AtomicBool::new(false),
        owned: Mutex::new(BTreeMap::new()),
    };
    let consumer: BaseConsumer<Ctx> = c
        .client_config(&name)?
        .create_with_context(ctx)
        .map_err(|e| format!("kafka consumer: {}", crate::kafka::describe(&e)))?;
    let topics: Vec<&str> = c.topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .map_err(|e| format!("subscribe to {}: {e}", c.topics.join(", ")))?;
    let consumer = Arc::new(consumer);
    let mut pending: HashMap<Key, Pending> = HashMap::new();
    let poll_every = settings
        .timeout
        .clamp(Duration::from_millis(1), Duration::from_millis(100));
    let mut last_error: Option<Instant> = None;
    let mut gone = false;
    while !*stop.borrow() && !gone {
        let polled = consumer.poll(poll_every);
        match polled {
            Some(Ok(m)) => {
                if crate::telemetry::enabled()
                    && let Some(ts) = m.timestamp().to_millis()
                {
                    crate::telemetry::record_lag(&name, ts);
                    crate::telemetry::component(&format!("source/{name}"), true, "consuming");
                }
                let key = (m.topic().to_string(), m.partition());
                let payload = m.payload().unwrap_or_default().to_vec();
                stats.messages.fetch_add(1, Ordering::Relaxed);
                stats
                    .bytes
                    .fetch_add(payload.len() as u64, Ordering::Relaxed);
                if let Ok(mut o) = consumer.context().owned.lock()
                    && let Some(end) = o.get_mut(&key)
                {
                    *end = false;
                }
                let Some(generation) = offsets.generation(&key) else {
                    // Not (or no longer) ours: the owner reads it.
                    continue;
                };
                if pending
                    .get(&key)
                    .is_some_and(|p| p.generation != generation)
                {
                    // Revoked and assigned again since the batch began: what it holds
                    // is read again from the committed offset.
                    pending.remove(&key);
                }
                let p = pending.entry(key.clone()).or_insert_with(|| Pending {
                    messages: Vec::new(),
                    bytes: 0,
                    since: Instant::now(),
                    generation,
                });
                p.bytes += payload.len();
                p.messages.push(Message {
                    offset: m.offset(),
                    payload,
                });
                if p.messages.len() >= settings.max_messages || p.bytes >= settings.max_bytes {
                    let p = pending.remove(&key);
                    gone = !send(&consumer, &offsets, &stats, &tx, key, p);
                }
            }
            Some(Err(KafkaError::PartitionEOF(part))) => {
                if let Ok(mut o) = consumer.context().owned.lock() {
                    for ((_, p), end) in o.iter_mut() {
                        if *p == part {
                            *end = true;
                        }
                    }
                }
            }
            Some(Err(e)) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                if last_error.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    tracing::warn!(source = %name, "kafka: {e}");
                    last_error = Some(Instant::now());
                }
            }
            None => {}
        }
        // Partial batches go on after `batch_timeout`; a batch of a partition revoked
        // since it began is refused by `send` (its generation is gone) and dropped.
        let due: Vec<Key> = pending
            .iter()
            .filter(|(_, p)| p.since.elapsed() >= settings.timeout)
            .map(|(k, _)| k.clone())
            .collect();
        for k in due {
            let p = pending.remove(&k);
            if !send(&consumer, &offsets, &stats, &tx, k, p) {
                gone = true;
                break;
            }
        }
        if c.stop_at_end && pending.is_empty() {
            let all_read = consumer
                .context()
                .owned
                .lock()
                .map(|o| !o.is_empty() && o.values().all(|e| *e))
                .unwrap_or(false);
            if all_read {
                tracing::info!(source = %name, "every assigned partition read to its end");
                break;
            }
        }
    }
    Ok(Running {
        consumer,
        stats,
        name,
    })
}

/// Hands one batch to the pipeline; false when the pipeline is gone.
fn send(
    consumer: &Arc<BaseConsumer<Ctx>>,
    offsets: &Arc<Offsets>,
    stats: &Arc<KafkaStats>,
    tx: &mpsc::Sender<Arrival>,
    key: Key,
    p: Option<Pending>,
) -> bool {
    let Some(p) = p else { return true };
    let Some(last) = p.messages.last().map(|m| m.offset) else {
        return true;
    };
    let generation = p.generation;
    if !offsets.begin(&key, generation, last) {
        return true;
    }
    let input = Input::remote(format!("kafka:{}/{}", key.0, key.1));
    let (c, o, s) = (consumer.clone(), offsets.clone(), stats.clone());
    let ack_key = key;
    let ack = Ack::new(move || {
        s.batches_acked.fetch_add(1, Ordering::Relaxed);
        if let Some(front) = o.done(&ack_key, generation, last) {
            match c.store_offset(&ack_key.0, ack_key.1, front) {
                Ok(()) => {
                    s.offsets_stored.fetch_add(1, Ordering::Relaxed);
                }
                // The partition went to another member meanwhile: not ours to commit.
                Err(e) => tracing::debug!("store offset {}/{}: {e}", ack_key.0, ack_key.1),
            }
        }
    });
    stats.batches.fetch_add(1, Ordering::Relaxed);
    tx.blocking_send(Arrival::messages(input, p.messages, ack))
        .is_ok()
}

/// Warnings for correlations that several instances in one consumer group cannot
/// evaluate exactly: each instance sees only the records of its partitions, so a
/// correlation is exact only when every one of its inputs groups by the field the
/// topic is keyed by (`key_field`).
pub fn partitioning_warnings(
    pack: &crate::rules::RulePack,
    source: &str,
    key_field: Option<&str>,
) -> Vec<String> {
    use crate::rules::correlation::GroupSource;
    let key_path = key_field.and_then(|k| crate::rules::fieldmap::path(k).ok());
    let mut out = Vec::new();
    for def in pack.correlations() {
        let covered = key_path.as_ref().is_some_and(|kp| {
            !def.inputs.is_empty()
                && def.inputs.iter().all(|i| {
                    i.group.iter().enumerate().any(|(at, g)| match g {
                        GroupSource::Path(p) => p.as_str() == kp.as_str(),
                        GroupSource::Child(_) => {
                            def.group_names.get(at).map(String::as_str) == key_field
                        }
                    })
                })
        });
        if covered {
            continue;
        }
        let Some(rule) = pack.rules().get(def.rule as usize) else {
            continue;
        };
        let groups = if def.group_names.is_empty() {
            "no group-by (one global count)".to_string()
        } else {
            format!("group-by [{}]", def.group_names.join(", "))
        };
        let advice = match key_field {
            Some(k) => format!("the topic is keyed by {k}, which it does not group by"),
            None => "the source sets no key_field".to_string(),
        };
        out.push(format!(
            "kafka source {source}: correlation {:?} ({}) has {groups}; {advice}, so with several instances in the consumer group each counts only its own partitions' records. Key the topic's messages by a group-by field (the account or principal) and set key_field, or run one instance",
            rule.meta.title, rule.meta.id
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_offset_is_the_acknowledged_front() {
        let o = Offsets::default();
        let k: Key = ("t".into(), 0);
        o.assign(std::iter::once(k.clone()));
        let g = o.generation(&k).expect("owned");
        assert!(o.begin(&k, g, 9) && o.begin(&k, g, 19) && o.begin(&k, g, 29));
        assert_eq!(o.done(&k, g, 19), None, "a later batch waits for the first");
        assert_eq!(o.done(&k, g, 9), Some(19), "both are stored at once");
        assert_eq!(o.done(&k, g, 29), Some(29));
        assert!(!o.begin(&("t".into(), 1), g, 5), "not owned");
    }

    #[test]
    fn acknowledgements_after_a_revocation_are_ignored() {
        let o = Offsets::default();
        let k: Key = ("t".into(), 3);
        o.assign(std::iter::once(k.clone()));
        let g = o.generation(&k).expect("owned");
        assert!(o.begin(&k, g, 100));
        assert_eq!(o.revoke(std::slice::from_ref(&k), Duration::ZERO), 1);
        assert_eq!(o.done(&k, g, 100), None);
        // Assigned again: a new generation; the old ack does not count and a batch
        // gathered before the revocation is refused.
        o.assign(std::iter::once(k.clone()));
        assert_eq!(o.done(&k, g, 100), None);
        assert!(!o.begin(&k, g, 110), "a batch of the old generation");
        let g2 = o.generation(&k).expect("owned");
        assert_ne!(g, g2);
        assert!(o.begin(&k, g2, 120));
        assert_eq!(o.done(&k, g2, 120), Some(120));
    }

    #[test]
    fn a_revocation_waits_for_batches_in_flight() {
        let o = Arc::new(Offsets::default());
        let k: Key = ("t".into(), 0);
        o.assign(std::iter::once(k.clone()));
        let g = o.generation(&k).expect("owned");
        assert!(o.begin(&k, g, 7));
        let o2 = o.clone();
        let k2 = k.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            o2.done(&k2, g, 7)
        });
        let abandoned = o.revoke(std::slice::from_ref(&k), Duration::from_secs(10));
        assert_eq!(t.join().expect("thread"), Some(7));
        assert_eq!(abandoned, 0);
    }

    #[test]
    fn correlations_not_covered_by_the_key_are_warned_about() {
        let opts = crate::rules::LoadOptions {
            builtin: true,
            paths: Vec::new(),
        };
        let (pack, _) = crate::rules::RulePack::load(&opts).expect("built-in pack");
        let n = pack.correlations().len();
        assert!(n >= 2, "the built-in pack has correlations and alarms");
        // No key: every correlation and alarm is named.
        assert_eq!(partitioning_warnings(&pack, "bus", None).len(), n);
        // Keyed by principal: the discovery burst (group-by userIdentity.arn) is exact.
        let by_arn = partitioning_warnings(&pack, "bus", Some("userIdentity.arn"));
        assert!(by_arn.len() < n);
        assert!(
            by_arn.iter().all(|w| !w.contains("Discovery Burst")),
            "{by_arn:?}"
        );
        assert!(by_arn.iter().any(|w| w.contains("no group-by")));
    }
}
