//! The SQS source: notifications of new CloudTrail objects (S3 event notifications,
//! SNS-wrapped or not, EventBridge, CloudTrail's own SNS message; see
//! [`super::notification`]), each object then fetched from S3.
//!
//! **Delete after delivery.** A message is deleted only when the pipeline has
//! acknowledged every object it names (records processed, findings flushed, archive
//! rows in finished files). Until then its visibility timeout is extended, so a slow
//! sink or a long archive `max_age` does not make it reappear. If trailhound stops or
//! crashes first, the message becomes visible again and is redone: at-least-once, with
//! repeats carrying the same finding ids and `tp_id`s (and removed by eventID dedup).
//!
//! **What is not retried.** `s3:TestEvent`s and notifications that name nothing to
//! read (ObjectRemoved, SNS subscription confirmations) are deleted at once. A body
//! that is not a notification, or a message received more than `max_receives` times
//! (an object that keeps failing), is written to the source's dead-letter file with the
//! reason and deleted. Queues with their own redrive policy can leave `max_receives`
//! above the policy's count.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::{mpsc, watch};

use super::aws::{ConnectionRef, describe};
use super::notification::{self, Notification};
use super::{Ack, Arrival};
use crate::decode::Position;
use crate::sink::dead_letter;
use crate::sink::rendered::Rendered;

/// `sources: - sqs: {…}`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqsConfig {
    /// The source's name (default `sqs`).
    pub name: Option<String>,
    /// A `connections:` name, or the connection inline.
    pub connection: Option<ConnectionRef>,
    /// The queue URL.
    pub queue_url: String,
    /// Long-poll wait per ReceiveMessage (default 20s, the maximum).
    pub wait_time: Option<String>,
    /// Visibility timeout set on received messages and renewed while they are in
    /// flight (default 5m).
    pub visibility_timeout: Option<String>,
    /// Messages per ReceiveMessage, 1–10 (default 10).
    pub max_messages: Option<i32>,
    /// A message received more often than this is dead-lettered (default 5).
    pub max_receives: Option<u32>,
    /// Objects fetched at once (default 16).
    pub concurrency: Option<usize>,
    /// Where dead-lettered messages go (default `<state_dir>/<name>.dead-letter.ndjson`).
    pub dead_letter: Option<PathBuf>,
}

/// Counters of an SQS source.
#[derive(Debug, Default)]
pub struct SqsStats {
    /// Messages received.
    pub messages_received: AtomicU64,
    /// Messages deleted after their objects were processed (or that named none).
    pub messages_deleted: AtomicU64,
    /// `s3:TestEvent`s and notifications naming nothing.
    pub messages_ignored: AtomicU64,
    /// Messages written to the dead-letter file.
    pub messages_dead_lettered: AtomicU64,
    /// Objects fetched.
    pub objects_fetched: AtomicU64,
    /// Objects that could not be fetched.
    pub objects_failed: AtomicU64,
    /// Visibility extensions.
    pub visibility_extended: AtomicU64,
}

struct InFlight {
    receipt: String,
    deadline: Instant,
}

/// One message whose objects are in the pipeline.
struct Pending {
    message_id: String,
    remaining: AtomicUsize,
    failed: AtomicBool,
    id: u64,
    done: mpsc::UnboundedSender<u64>,
}

impl Pending {
    fn object_done(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1
            && !self.failed.load(Ordering::Acquire)
        {
            let _ = self.done.send(self.id);
        }
    }
}

#[allow(clippy::too_many_arguments)]
/// Runs the source until `stop`; returns once the last acknowledged message is deleted.
pub async fn run(
    cfg: SqsConfig,
    sqs: aws_sdk_sqs::Client,
    s3: aws_sdk_s3::Client,
    tx: mpsc::Sender<Arrival>,
    mut stop: watch::Receiver<bool>,
    dead_letter: Option<PathBuf>,
    stats: Arc<SqsStats>,
) -> Result<(), String> {
    let wait = crate::config::duration_or(
        "wait_time",
        cfg.wait_time.as_deref(),
        Duration::from_secs(20),
    )?
    .min(Duration::from_secs(20));
    let visibility = crate::config::duration_or(
        "visibility_timeout",
        cfg.visibility_timeout.as_deref(),
        Duration::from_secs(300),
    )?
    .max(Duration::from_secs(2));
    let max_messages = cfg.max_messages.unwrap_or(10).clamp(1, 10);
    let max_receives = cfg.max_receives.unwrap_or(5).max(1);
    let concurrency = cfg.concurrency.unwrap_or(16).max(1);
    let queue = cfg.queue_url.clone();
    let inflight: Arc<Mutex<HashMap<u64, InFlight>>> = Arc::default();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<u64>();
    let mut next_id = 0u64;
    let dl = DeadLetters::new(dead_letter, &queue);

    // Deletes acknowledged messages.
    let deleter = {
        let sqs = sqs.clone();
        let inflight = inflight.clone();
        let queue = queue.clone();
        let stats = stats.clone();
        tokio::spawn(async move {
            while let Some(id) = done_rx.recv().await {
                let receipt = inflight
                    .lock()
                    .ok()
                    .and_then(|mut m| m.remove(&id))
                    .map(|f| f.receipt);
                if let Some(r) = receipt {
                    delete(&sqs, &queue, &r, &stats).await;
                }
            }
        })
    };
    // Extends the visibility of messages in flight, until the last one is deleted
    // (also while the pipeline drains after a stop).
    let (ext_done_tx, ext_done_rx) = watch::channel(false);
    let extender = {
        let sqs = sqs.clone();
        let inflight = inflight.clone();
        let queue = queue.clone();
        let stats = stats.clone();
        let mut done = ext_done_rx;
        tokio::spawn(async move {
            // Renew when less than half the timeout is left, checking four times per
            // timeout: at least a quarter of it is always left as margin.
            let tick = (visibility / 4).max(Duration::from_millis(250));
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(tick) => {}
                    _ = done.changed() => break,
                }
                let due: Vec<(u64, String)> = match inflight.lock() {
                    Ok(m) => m
                        .iter()
                        .filter(|(_, f)| {
                            f.deadline.saturating_duration_since(Instant::now()) < visibility / 2
                        })
                        .map(|(id, f)| (*id, f.receipt.clone()))
                        .collect(),
                    Err(_) => break,
                };
                for (id, receipt) in due {
                    let sent = Instant::now();
                    let r = sqs
                        .change_message_visibility()
                        .queue_url(&queue)
                        .receipt_handle(&receipt)
                        .visibility_timeout(visibility.as_secs() as i32)
                        .send()
                        .await;
                    match r {
                        Ok(_) => {
                            stats.visibility_extended.fetch_add(1, Ordering::Relaxed);
                            if let Ok(mut m) = inflight.lock()
                                && let Some(f) = m.get_mut(&id)
                            {
                                f.deadline = sent + visibility;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(queue = %queue, "visibility not extended: {}", describe(&e))
                        }
                    }
                }
            }
        })
    };

    // The last fetch failure per message id, for the dead letter's reason.
    let mut failures: HashMap<String, String> = HashMap::new();
    let mut backoff = Duration::from_secs(1);
    let component = format!("source/{}", cfg.name.as_deref().unwrap_or("sqs"));
    crate::telemetry::component(&component, false, format!("connecting to {queue}"));
    let mut healthy = false;
    while !*stop.borrow() {
        let recv = sqs
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(max_messages)
            .wait_time_seconds(wait.as_secs() as i32)
            .visibility_timeout(visibility.as_secs() as i32)
            .message_system_attribute_names(
                aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount,
            )
            .message_system_attribute_names(
                aws_sdk_sqs::types::MessageSystemAttributeName::SentTimestamp,
            )
            .send();
        let r = tokio::select! {
            r = recv => r,
            _ = stop.changed() => break,
        };
        let out = match r {
            Ok(o) => {
                backoff = Duration::from_secs(1);
                if !healthy {
                    healthy = true;
                    crate::telemetry::component(
                        &component,
                        true,
                        format!("receiving from {queue}"),
                    );
                }
                o
            }
            Err(e) => {
                healthy = false;
                crate::telemetry::component(
                    &component,
                    false,
                    format!("receive from {queue} failed: {}", describe(&e)),
                );
                tracing::error!(queue = %queue, "receive failed: {}; retrying in {}s", describe(&e), backoff.as_secs());
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => break,
                }
                backoff = (backoff * 2).min(Duration::from_secs(60));
                continue;
            }
        };
        let received_at = Instant::now();
        let mut objects: Vec<(Arc<Pending>, notification::ObjectRef)> = Vec::new();
        if crate::telemetry::enabled() {
            let newest = out
                .messages()
                .iter()
                .filter_map(|m| {
                    m.attributes()?
                        .get(&aws_sdk_sqs::types::MessageSystemAttributeName::SentTimestamp)?
                        .parse::<u64>()
                        .ok()
                })
                .max();
            if let Some(sent) = newest {
                crate::telemetry::record_lag(component.trim_start_matches("source/"), sent as i64);
            }
        }
        for m in out.messages() {
            stats.messages_received.fetch_add(1, Ordering::Relaxed);
            let (Some(receipt), body) = (m.receipt_handle(), m.body().unwrap_or("")) else {
                continue;
            };
            let msg_id = m.message_id().unwrap_or("?");
            let receives: u32 = m
                .attributes()
                .and_then(|a| {
                    a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount)
                })
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            if receives > max_receives {
                let last = failures
                    .remove(msg_id)
                    .map(|e| format!("; last failure: {e}"))
                    .unwrap_or_default();
                let reason = format!(
                    "received {receives} times without being processed (max_receives {max_receives}){last}"
                );
                dead(&dl, msg_id, &reason, body, &stats);
                delete(&sqs, &queue, receipt, &stats).await;
                continue;
            }
            match notification::parse(body) {
                Err(e) => {
                    dead(
                        &dl,
                        msg_id,
                        &format!("not a notification of new objects: {e}"),
                        body,
                        &stats,
                    );
                    delete(&sqs, &queue, receipt, &stats).await;
                }
                Ok(Notification::Test) => {
                    stats.messages_ignored.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(queue = %queue, "s3:TestEvent ignored");
                    delete(&sqs, &queue, receipt, &stats).await;
                }
                Ok(Notification::Ignored(why)) => {
                    stats.messages_ignored.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(queue = %queue, "message ignored: {why}");
                    delete(&sqs, &queue, receipt, &stats).await;
                }
                Ok(Notification::Objects(objs)) => {
                    next_id += 1;
                    let p = Arc::new(Pending {
                        message_id: msg_id.to_string(),
                        remaining: AtomicUsize::new(objs.len()),
                        failed: AtomicBool::new(false),
                        id: next_id,
                        done: done_tx.clone(),
                    });
                    if let Ok(mut f) = inflight.lock() {
                        f.insert(
                            next_id,
                            InFlight {
                                receipt: receipt.to_string(),
                                deadline: received_at + visibility,
                            },
                        );
                    }
                    for o in objs {
                        objects.push((p.clone(), o));
                    }
                }
            }
        }
        // Fetch concurrently, hand over in message order.
        let s3c = s3.clone();
        let mut fetched = Box::pin(
            futures_util::stream::iter(objects)
                .map(|(p, o)| {
                    let s3 = s3c.clone();
                    async move {
                        let r = super::s3::get_object(&s3, &o.bucket, &o.key).await;
                        (p, o, r)
                    }
                })
                .buffered(concurrency),
        );
        while let Some((p, o, r)) = fetched.next().await {
            let name = format!("s3://{}/{}", o.bucket, o.key);
            let arrival = match r {
                Ok(body) => {
                    stats.objects_fetched.fetch_add(1, Ordering::Relaxed);
                    let p = p.clone();
                    Arrival::fetched(name, body, Ack::new(move || p.object_done()))
                }
                Err(e) => {
                    // The message stays: it reappears after its visibility timeout and
                    // is retried, up to max_receives.
                    stats.objects_failed.fetch_add(1, Ordering::Relaxed);
                    p.failed.store(true, Ordering::Release);
                    if failures.len() >= 10_000 {
                        failures.clear();
                    }
                    failures.insert(p.message_id.clone(), format!("{name}: {e}"));
                    if let Ok(mut f) = inflight.lock() {
                        f.remove(&p.id);
                    }
                    Arrival::failed(name, e)
                }
            };
            if tx.send(arrival).await.is_err() {
                break;
            }
        }
    }
    drop(done_tx);
    drop(tx);
    // Acknowledgements still arrive while the pipeline drains; the deleter ends when
    // the last one is fired or dropped.
    let _ = deleter.await;
    let _ = ext_done_tx.send(true);
    let _ = extender.await;
    Ok(())
}

async fn delete(sqs: &aws_sdk_sqs::Client, queue: &str, receipt: &str, stats: &SqsStats) {
    match sqs
        .delete_message()
        .queue_url(queue)
        .receipt_handle(receipt)
        .send()
        .await
    {
        Ok(_) => {
            stats.messages_deleted.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            tracing::warn!(queue = %queue, "message not deleted (it will be redone): {}", describe(&e))
        }
    }
}

/// The source's dead-letter file (`trailhound.dead_letter/1` lines, one per message).
struct DeadLetters {
    path: Option<PathBuf>,
    queue: String,
}

impl DeadLetters {
    fn new(path: Option<PathBuf>, queue: &str) -> Self {
        DeadLetters {
            path,
            queue: queue.to_string(),
        }
    }

    fn write(&self, msg_id: &str, reason: &str, body: &str) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)?;
        }
        // The message is the one "record" of its input: the same shape and limits as
        // the run's record dead letters.
        let input = serde_json::to_string(&format!("sqs:{}#{msg_id}", self.queue))
            .map_err(std::io::Error::other)?;
        let mut line = Rendered::default();
        let pos = Position { offset: 0, line: 1 };
        let raw = body.as_bytes();
        dead_letter::render(&mut line, &input, pos, 0, reason, raw, raw.len() as u64);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        line.write_to(&mut f, 0)?;
        f.sync_data()
    }
}

fn dead(d: &DeadLetters, msg_id: &str, reason: &str, body: &str, stats: &SqsStats) {
    stats.messages_dead_lettered.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(queue = %d.queue, message_id = msg_id, "message dead-lettered: {reason}");
    if let Err(e) = d.write(msg_id, reason, body) {
        tracing::error!(queue = %d.queue, "dead-letter file: {e}");
    }
}
