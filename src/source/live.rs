//! Live sources: the `sources:` of `trailhound run` (and the `s3://` inputs of
//! `detect`), run on a tokio runtime of their own and feeding the pipeline through one
//! bounded channel.
//!
//! ```text
//!  tokio runtime (2 threads)                       pipeline (std threads)
//!  ┌ s3 source ──┐
//!  ├ sqs source ─┼─▶ forwarder ─▶ [bounded 16] ─▶ reader ─▶ workers ─▶ sink ─▶ archive
//!  └ cloudwatch ─┘   (names the source)                       │          │
//!        ▲                                                    └── Ack ◀──┘
//!        └──── delete message / advance checkpoint ◀──────────────┘
//! ```
//!
//! Network I/O stays on tokio; parsing and matching stay on the pipeline's threads. The
//! channel is bounded, so a slow sink stops the fetches: nothing is dropped and memory
//! stays flat. Every input carries an [`super::Ack`] that the pipeline fires once it is
//! fully delivered; sources act on acknowledgements only (SQS deletes, checkpoints).
//!
//! Shutdown (SIGINT/SIGTERM): sources stop fetching, the pipeline drains what it has,
//! the last acknowledgements are applied and checkpoints written; what was not
//! acknowledged is redone by the next run.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::{mpsc, oneshot, watch};

use super::aws::{Connection, ConnectionRef};
use super::checkpoint::Checkpoints;
use super::cloudwatch::{self, CloudWatchConfig};
use super::kafka::{self, KafkaSourceConfig};
use super::s3::{self, S3Config};
use super::sqs::{self, SqsConfig};
use super::{Arrival, Feed, Input};

/// `sources: - stdin: {name}`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdinConfig {
    /// The source's name (default `stdin`).
    pub name: Option<String>,
}

/// `sources: - files: {name, paths}`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesConfig {
    /// The source's name (default `files`).
    pub name: Option<String>,
    /// Files and directories (read recursively, once).
    pub paths: Vec<PathBuf>,
}

/// One entry of `sources:`: a mapping with one key, the kind (`- s3: {…}`).
#[derive(Debug, Clone)]
pub enum SourceConfig {
    /// Objects in a bucket.
    S3(S3Config),
    /// Notifications of new objects.
    Sqs(SqsConfig),
    /// A log group.
    CloudwatchLogs(CloudWatchConfig),
    /// Standard input.
    Stdin(StdinConfig),
    /// Files and directories.
    Files(FilesConfig),
    /// Kafka topics, in a consumer group.
    Kafka(Box<KafkaSourceConfig>),
}

impl<'de> Deserialize<'de> for SourceConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let map = BTreeMap::<String, serde_yaml_ng::Value>::deserialize(d)?;
        let (kind, body) = crate::config::one_kind::<D::Error>(
            map,
            "source",
            "s3, sqs, cloudwatch_logs, kafka, stdin, files",
        )?;
        let e = |err: serde_yaml_ng::Error| D::Error::custom(format!("{kind}: {err}"));
        Ok(match kind.as_str() {
            "s3" => SourceConfig::S3(serde_yaml_ng::from_value(body).map_err(e)?),
            "sqs" => SourceConfig::Sqs(serde_yaml_ng::from_value(body).map_err(e)?),
            "cloudwatch_logs" => {
                SourceConfig::CloudwatchLogs(serde_yaml_ng::from_value(body).map_err(e)?)
            }
            "stdin" => SourceConfig::Stdin(serde_yaml_ng::from_value(body).map_err(e)?),
            "files" => SourceConfig::Files(serde_yaml_ng::from_value(body).map_err(e)?),
            "kafka" => SourceConfig::Kafka(Box::new(serde_yaml_ng::from_value(body).map_err(e)?)),
            other => {
                return Err(D::Error::custom(format!(
                    "unknown source kind {other:?} (s3, sqs, cloudwatch_logs, kafka, stdin, files)"
                )));
            }
        })
    }
}

impl SourceConfig {
    /// `s3`, `sqs`, `cloudwatch_logs`, `kafka`, `stdin`, `files`.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceConfig::Kafka(_) => "kafka",
            SourceConfig::S3(_) => "s3",
            SourceConfig::Sqs(_) => "sqs",
            SourceConfig::CloudwatchLogs(_) => "cloudwatch_logs",
            SourceConfig::Stdin(_) => "stdin",
            SourceConfig::Files(_) => "files",
        }
    }

    /// The source's name (its `tp_partition`, checkpoint key and metrics label).
    pub fn name(&self) -> String {
        let n = match self {
            SourceConfig::S3(c) => c.name.clone(),
            SourceConfig::Sqs(c) => c.name.clone(),
            SourceConfig::CloudwatchLogs(c) => c.name.clone(),
            SourceConfig::Stdin(c) => c.name.clone(),
            SourceConfig::Files(c) => c.name.clone(),
            SourceConfig::Kafka(c) => c.name.clone(),
        };
        n.unwrap_or_else(|| self.kind().to_string())
    }

    fn connection(&self) -> Option<&ConnectionRef> {
        match self {
            SourceConfig::S3(c) => c.connection.as_ref(),
            SourceConfig::Sqs(c) => c.connection.as_ref(),
            SourceConfig::CloudwatchLogs(c) => c.connection.as_ref(),
            _ => None,
        }
    }

    /// Resolves the connection against `connections:`.
    pub fn resolve_connection(
        &self,
        connections: &BTreeMap<String, Connection>,
    ) -> Result<Connection, String> {
        match self.connection() {
            None => Ok(Connection::default()),
            Some(ConnectionRef::Inline(c)) => Ok((**c).clone()),
            Some(ConnectionRef::Name(n)) => connections
                .get(n)
                .cloned()
                .ok_or_else(|| format!("connection {n:?} is not in connections:")),
        }
    }

    /// Checks what can be checked before anything runs.
    pub fn validate(&self, connections: &BTreeMap<String, Connection>) -> Result<(), String> {
        self.resolve_connection(connections)?
            .validate()
            .map_err(|e| e.to_string())?;
        match self {
            SourceConfig::S3(c) => {
                if c.bucket.is_empty() {
                    return Err("bucket is required".into());
                }
                s3::Filters::new(c)?;
                s3::poll_interval(c)?;
                if let Some(l) = c.layout.as_deref().filter(|l| *l != "none") {
                    s3::parse_layout(l)?;
                }
                Ok(())
            }
            SourceConfig::Sqs(c) if c.queue_url.is_empty() => Err("queue_url is required".into()),
            SourceConfig::CloudwatchLogs(c) => c.validate(),
            SourceConfig::Files(c) if c.paths.is_empty() => Err("paths is required".into()),
            SourceConfig::Kafka(c) => c.validate(),
            _ => Ok(()),
        }
    }
}

/// How live sources run.
#[derive(Debug, Clone, Default)]
pub struct LiveOptions {
    /// Keep polling (`run`) instead of one pass (`detect s3://…`).
    pub follow: bool,
    /// Where checkpoints go.
    pub checkpoints: Checkpoints,
    /// `state_dir`, for default dead-letter paths of SQS sources.
    pub state_dir: Option<PathBuf>,
    /// Show an indicatif progress bar on stderr.
    pub progress: bool,
}

/// What a source did, for the run summary.
#[derive(Debug, Clone)]
pub struct SourceReport {
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: &'static str,
    /// Why it stopped early, if it did.
    pub error: Option<String>,
    /// Its counters.
    pub stats: serde_json::Value,
}

type Finalizer = Box<dyn FnOnce() -> serde_json::Value + Send>;

/// A source that stopped with an error. `finish`, when the source has one, still runs
/// once the pipeline has drained: it saves what the pipeline acknowledged after the
/// error (so the next run does not read it again) and gives the counters.
struct Failure {
    error: String,
    finish: Option<Finalizer>,
}

impl From<String> for Failure {
    fn from(error: String) -> Self {
        Failure {
            error,
            finish: None,
        }
    }
}

/// Running live sources.
pub struct Live {
    rx: Option<mpsc::Receiver<Arrival>>,
    drained: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Vec<SourceReport>>>,
}

impl Live {
    /// The pipeline's feed (once).
    pub fn feed(&mut self) -> Feed {
        match self.rx.take() {
            Some(rx) => Feed::Live(rx),
            None => Feed::Inputs(Vec::new()),
        }
    }

    /// Called after the pipeline has drained: applies the last acknowledgements,
    /// writes checkpoints, and returns what each source did.
    pub fn finish(mut self) -> Vec<SourceReport> {
        if let Some(d) = self.drained.take() {
            let _ = d.send(());
        }
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

/// Starts the sources on their own runtime.
pub fn start(
    sources: Vec<SourceConfig>,
    connections: BTreeMap<String, Connection>,
    opts: LiveOptions,
    shutdown: Arc<AtomicBool>,
) -> Result<Live, String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("trailhound-io")
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let (tx, rx) = mpsc::channel::<Arrival>(16);
    let (drained_tx, drained_rx) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("trailhound-sources".into())
        .spawn(move || {
            rt.block_on(async move {
                let (stop_tx, stop_rx) = watch::channel(false);
                let watcher = tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        if shutdown.load(Ordering::Relaxed) {
                            let _ = stop_tx.send(true);
                            break;
                        }
                    }
                });
                let mut tasks = Vec::new();
                for src in sources {
                    let name = src.name();
                    let kind = src.kind();
                    let conn = src.resolve_connection(&connections);
                    let tx = tx.clone();
                    let stop = stop_rx.clone();
                    let opts = opts.clone();
                    tasks.push(tokio::spawn(async move {
                        let r = match conn {
                            Ok(conn) => run_one(src, &name, conn, tx, stop, &opts).await,
                            Err(e) => Err(Failure::from(e)),
                        };
                        (name, kind, r)
                    }));
                }
                drop(tx);
                let mut done = Vec::new();
                for t in tasks {
                    if let Ok(x) = t.await {
                        done.push(x);
                    }
                }
                let _ = drained_rx.await;
                watcher.abort();
                done.into_iter()
                    .map(|(name, kind, r)| match r {
                        Ok(fin) => SourceReport {
                            name,
                            kind,
                            error: None,
                            stats: fin(),
                        },
                        Err(Failure { error, finish }) => {
                            tracing::error!(source = %name, "source stopped: {error}");
                            SourceReport {
                                name,
                                kind,
                                error: Some(error),
                                stats: finish.map_or(serde_json::Value::Null, |f| f()),
                            }
                        }
                    })
                    .collect()
            })
        })
        .map_err(|e| format!("source thread: {e}"))?;
    Ok(Live {
        rx: Some(rx),
        drained: Some(drained_tx),
        thread: Some(thread),
    })
}

/// Sends every arrival of one source on, named after it.
fn forwarder(name: &str, out: mpsc::Sender<Arrival>) -> mpsc::Sender<Arrival> {
    let (tx, mut rx) = mpsc::channel::<Arrival>(4);
    let source: Arc<str> = name.into();
    tokio::spawn(async move {
        while let Some(mut a) = rx.recv().await {
            a.input.source = Some(source.clone());
            if out.send(a).await.is_err() {
                break;
            }
        }
    });
    tx
}

async fn run_one(
    src: SourceConfig,
    name: &str,
    conn: Connection,
    out: mpsc::Sender<Arrival>,
    mut stop: watch::Receiver<bool>,
    opts: &LiveOptions,
) -> Result<Finalizer, Failure> {
    let tx = forwarder(name, out);
    match src {
        SourceConfig::Stdin(_) => {
            let _ = tx.send(Arrival::local(Input::stdin(0))).await;
            Ok(Box::new(|| serde_json::Value::Null))
        }
        SourceConfig::Files(c) => {
            let (inputs, errors) = super::discover(&c.paths);
            for e in errors {
                tracing::error!(source = %name, "input {e}");
            }
            for i in inputs {
                if tx.send(Arrival::local(i)).await.is_err() {
                    break;
                }
            }
            Ok(Box::new(|| serde_json::Value::Null))
        }
        SourceConfig::S3(c) => {
            let sdk = conn.load().await.map_err(|e| e.to_string())?;
            let reader = Arc::new(s3::S3Reader::new(conn.s3(&sdk), c.bucket.clone()));
            let progress = s3::Progress::load(name, opts.checkpoints.clone())?;
            let mut filters = s3::Filters::new(&c)?;
            let every = s3::poll_interval(&c)?;
            let bar = opts.progress.then(|| {
                let b = indicatif::ProgressBar::new_spinner();
                b.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{spinner} {pos} objects from s3://{msg} ({per_sec}, {elapsed})",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                );
                b.set_message(format!("{}/{}", c.bucket, c.prefix));
                b.enable_steady_tick(Duration::from_millis(200));
                b
            });
            // Saves the checkpoint and gives the counters once the pipeline has drained,
            // whether the source ends or fails.
            let finish = {
                let progress = progress.clone();
                let stats = reader.stats.clone();
                move || {
                    progress.save();
                    let g = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
                    serde_json::json!({
                        "list_requests": g(&stats.list_requests),
                        "objects_listed": g(&stats.objects_listed),
                        "objects_pruned": g(&stats.objects_pruned),
                        "objects_fetched": g(&stats.objects_fetched),
                        "objects_failed": g(&stats.objects_failed),
                        "bytes_fetched": g(&stats.bytes_fetched),
                    })
                }
            };
            // Whether a pass has listed everything once: until then every pass lists
            // the whole range, so a first pass cut short by an outage loses no day.
            let mut listed_once = false;
            loop {
                let r = s3::pass(
                    reader.clone(),
                    &c,
                    &filters,
                    progress.clone(),
                    &tx,
                    &stop,
                    bar.as_ref(),
                )
                .await;
                progress.save();
                match r {
                    Ok(()) => listed_once = true,
                    Err(error) if !opts.follow => {
                        if let Some(b) = &bar {
                            b.finish_and_clear();
                        }
                        return Err(Failure {
                            error,
                            finish: Some(Box::new(finish)),
                        });
                    }
                    Err(e) => {
                        tracing::error!(source = %name, "{e}; listing again in {}s", every.as_secs())
                    }
                }
                let failed = progress.failed_count();
                if opts.follow && failed > 0 && !*stop.borrow() {
                    tracing::warn!(
                        source = %name,
                        "{failed} object(s) could not be fetched; fetching them again in {}s",
                        every.as_secs()
                    );
                }
                if !opts.follow || *stop.borrow() {
                    break;
                }
                let now = crate::archive::now_micros();
                if failed == 0
                    && filters
                        .range
                        .is_some_and(|(_, until)| until.saturating_add(3_600_000_000) < now)
                {
                    // The range ended over an hour ago: no new object can belong to it
                    // (objects that failed are fetched again first).
                    tracing::info!(source = %name, "range complete; not polling");
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop.changed() => break,
                }
                // Later passes list yesterday and today only: older days were listed
                // completely by the first pass and their checkpoints hold.
                if !listed_once {
                    continue;
                }
                let today = crate::archive::now_micros().div_euclid(86_400_000_000);
                let (first, last) = filters.days.unwrap_or((today - 1, today));
                filters.days = Some((first.max(today - 1), last.max(today)));
                if let Some((_, until)) = filters.range.filter(|(_, u)| *u != i64::MAX) {
                    let end = until
                        .saturating_add(3_600_000_000)
                        .div_euclid(86_400_000_000);
                    filters.days = filters.days.map(|(a, b)| (a, b.min(end)));
                }
            }
            if let Some(b) = &bar {
                b.finish_and_clear();
            }
            Ok(Box::new(finish))
        }
        SourceConfig::Sqs(c) => {
            let sdk = conn.load().await.map_err(|e| e.to_string())?;
            let client = aws_sdk_sqs::Client::new(&sdk);
            let s3c = conn.s3(&sdk);
            let stats = Arc::new(sqs::SqsStats::default());
            let dl = c.dead_letter.clone().or_else(|| {
                opts.state_dir.as_ref().map(|d| {
                    d.join(format!(
                        "{}.dead-letter.ndjson",
                        crate::archive::partition_value(name)
                    ))
                })
            });
            sqs::run(c, client, s3c, tx, stop.clone(), dl, stats.clone()).await?;
            Ok(Box::new(move || {
                let g = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
                serde_json::json!({
                    "messages_received": g(&stats.messages_received),
                    "messages_deleted": g(&stats.messages_deleted),
                    "messages_ignored": g(&stats.messages_ignored),
                    "messages_dead_lettered": g(&stats.messages_dead_lettered),
                    "objects_fetched": g(&stats.objects_fetched),
                    "objects_failed": g(&stats.objects_failed),
                    "visibility_extended": g(&stats.visibility_extended),
                })
            }))
        }
        SourceConfig::Kafka(c) => {
            let stop = stop.clone();
            let owner = name.to_string();
            let running = tokio::task::spawn_blocking(move || kafka::run(*c, owner, tx, stop))
                .await
                .map_err(|e| format!("kafka source thread: {e}"))??;
            Ok(Box::new(move || {
                let stats = running.stats.clone();
                // The pipeline has drained: commit what it acknowledged, leave the group.
                running.close();
                let g = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
                serde_json::json!({
                    "messages": g(&stats.messages),
                    "bytes": g(&stats.bytes),
                    "batches": g(&stats.batches),
                    "batches_acked": g(&stats.batches_acked),
                    "offsets_stored": g(&stats.offsets_stored),
                    "partitions_assigned": g(&stats.partitions_assigned),
                    "partitions_revoked": g(&stats.partitions_revoked),
                    "batches_abandoned": g(&stats.batches_abandoned),
                    "errors": g(&stats.errors),
                })
            }))
        }
        SourceConfig::CloudwatchLogs(c) => {
            let mut conn = conn;
            if conn.api_timeout.is_none() {
                conn.api_timeout = c.api_timeout.clone();
            }
            let sdk = conn.load().await.map_err(|e| e.to_string())?;
            let client = aws_sdk_cloudwatchlogs::Client::new(&sdk);
            let stats = Arc::new(cloudwatch::CloudWatchStats::default());
            let shared: cloudwatch::Shared = Arc::new(Mutex::new(Default::default()));
            let checkpoints = opts.checkpoints.clone();
            cloudwatch::run(
                c,
                name.to_string(),
                client,
                checkpoints.clone(),
                tx,
                stop.clone(),
                !opts.follow,
                stats.clone(),
                shared.clone(),
            )
            .await?;
            let name = name.to_string();
            Ok(Box::new(move || {
                cloudwatch::save(&shared, &name, &checkpoints);
                let g = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
                serde_json::json!({
                    "requests": g(&stats.requests),
                    "events": g(&stats.events),
                })
            }))
        }
    }
}
