//! Operating a running trailhound: a Prometheus `/metrics` endpoint and `/health`.
//!
//! **Boundary.** Counting goes through the [`metrics`] facade; the
//! `metrics-exporter-prometheus` recorder renders the text format. Nothing is recorded
//! per record: the sink thread adds each finished unit's [`Counters`] (the run summary's
//! own numbers, so a scrape and the summary agree) with [`record_unit`], and the
//! facade is not called until [`serve`] installs the recorder, so runs without
//! `--metrics-addr` pay one relaxed atomic load per unit.
//!
//! Metric names are the run summary's counter names prefixed `trailhound_`, counters
//! suffixed `_total` (`trailhound_records_in_total{source="org-trail"}`); findings are
//! labelled by rule id and level.
//!
//! **Health.** Components (sources, sinks) report ready or not with a reason through
//! [`Health::set`]; `/health` answers 200 with every component when all are ready and
//! 503 naming the ones that are not.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Set once the recorder is installed: until then nothing is recorded at all.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether `/metrics` is being served.
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

use crate::rules::RulePack;
use crate::stats::Counters;

/// The endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The address cannot be bound.
    #[error("metrics address {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// A metrics recorder is already installed in this process.
    #[error("metrics recorder: {0}")]
    Recorder(String),
}

/// The process's health board: sources and sinks report into it wherever they run.
pub fn health() -> Arc<Health> {
    static HEALTH: std::sync::OnceLock<Arc<Health>> = std::sync::OnceLock::new();
    HEALTH.get_or_init(|| Arc::new(Health::default())).clone()
}

/// Reports component `name`'s readiness when `/health` is served (a no-op otherwise).
pub fn component(name: &str, ready: bool, detail: impl Into<String>) {
    if enabled() {
        health().set(name, ready, detail);
        ::metrics::gauge!("trailhound_component_ready", "component" => name.to_string())
            .set(if ready { 1.0 } else { 0.0 });
    }
}

/// Readiness of the parts of a run.
#[derive(Debug, Default)]
pub struct Health {
    components: Mutex<BTreeMap<String, (bool, String)>>,
}

impl Health {
    /// Records whether component `name` (e.g. `source/org-trail`, `sink/siem`) is ready,
    /// and why not.
    pub fn set(&self, name: &str, ready: bool, detail: impl Into<String>) {
        if let Ok(mut c) = self.components.lock() {
            c.insert(name.to_string(), (ready, detail.into()));
        }
    }

    /// Whether every component is ready, and the JSON body of `/health`.
    pub fn report(&self) -> (bool, serde_json::Value) {
        let c = self
            .components
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default();
        let ready = c.values().all(|(r, _)| *r);
        let components: Vec<serde_json::Value> = c
            .iter()
            .map(|(n, (r, d))| serde_json::json!({"name": n, "ready": r, "detail": d}))
            .collect();
        (
            ready,
            serde_json::json!({"status": if ready { "ready" } else { "unready" }, "components": components}),
        )
    }
}

/// Installs the Prometheus recorder and serves `/metrics` and `/health` on `addr` from a
/// thread of its own. Returns the bound address (useful with port 0).
pub fn serve(addr: &str, health: Arc<Health>) -> Result<SocketAddr, TelemetryError> {
    let io = |source| TelemetryError::Bind {
        addr: addr.to_string(),
        source,
    };
    let listener = TcpListener::bind(addr).map_err(io)?;
    let bound = listener.local_addr().map_err(io)?;
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| TelemetryError::Recorder(e.to_string()))?;
    describe();
    ENABLED.store(true, Ordering::Relaxed);
    ::metrics::gauge!("trailhound_build_info", "version" => crate::cli::VERSION).set(1.0);
    let upkeep = handle.clone();
    std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(5));
                upkeep.run_upkeep();
            }
        })
        .map_err(io)?;
    std::thread::Builder::new()
        .name("metrics-http".into())
        .spawn(move || {
            for conn in listener.incoming().flatten() {
                let _ = answer(conn, &handle, &health);
            }
        })
        .map_err(io)?;
    tracing::info!(address = %bound, "metrics on http://{bound}/metrics, health on /health");
    Ok(bound)
}

/// One HTTP/1.1 request: `GET /metrics`, `GET /health`, anything else 404. The
/// connection is closed after the answer.
fn answer(
    conn: TcpStream,
    handle: &metrics_exporter_prometheus::PrometheusHandle,
    health: &Health,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    conn.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    // Headers up to the blank line (none are used).
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let path = request.split_whitespace().nth(1).unwrap_or("");
    let (status, ctype, body) = match path {
        "/metrics" => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            handle.render(),
        ),
        "/health" => {
            let (ready, body) = health.report();
            (
                if ready {
                    "200 OK"
                } else {
                    "503 Service Unavailable"
                },
                "application/json",
                body.to_string(),
            )
        }
        _ => ("404 Not Found", "text/plain", "not found\n".to_string()),
    };
    let mut out = conn;
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    out.flush()
}

fn describe() {
    use ::metrics::{Unit, describe_counter, describe_gauge};
    for (name, help) in [
        ("trailhound_records_in_total", "Records read."),
        (
            "trailhound_records_kept_total",
            "Records that passed the filter and were matched.",
        ),
        (
            "trailhound_records_filtered_total",
            "Records dropped by the pre-storage filter or the time range.",
        ),
        (
            "trailhound_records_deduplicated_total",
            "Records dropped as repeated eventIDs.",
        ),
        (
            "trailhound_records_dead_lettered_total",
            "Malformed records sent to the dead-letter output.",
        ),
        (
            "trailhound_documents_skipped_total",
            "JSON documents that are not records (digests, control messages).",
        ),
        (
            "trailhound_inputs_total",
            "Inputs finished (files, objects, pages).",
        ),
        (
            "trailhound_inputs_failed_total",
            "Inputs that could not be read to their end.",
        ),
        (
            "trailhound_findings_total",
            "Findings written, by rule and level.",
        ),
    ] {
        describe_counter!(name, help);
    }
    describe_counter!(
        "trailhound_bytes_in_total",
        Unit::Bytes,
        "Bytes read, before decompression."
    );
    describe_counter!(
        "trailhound_bytes_decoded_total",
        Unit::Bytes,
        "Bytes after decompression."
    );
    describe_gauge!("trailhound_build_info", "Always 1; the version label.");
}

/// Counter handles of one source, registered once (a unit's update is then seven
/// atomic adds, no key building).
struct SourceCounters {
    records: [::metrics::Counter; 7],
    inputs: ::metrics::Counter,
    bytes_in: ::metrics::Counter,
    inputs_failed: ::metrics::Counter,
}

const RECORD_COUNTERS: [&str; 7] = [
    "trailhound_records_in_total",
    "trailhound_records_kept_total",
    "trailhound_records_filtered_total",
    "trailhound_records_deduplicated_total",
    "trailhound_records_dead_lettered_total",
    "trailhound_documents_skipped_total",
    "trailhound_bytes_decoded_total",
];

impl SourceCounters {
    fn new(source: &str) -> Self {
        let c = |name: &'static str| ::metrics::counter!(name, "source" => source.to_string());
        SourceCounters {
            records: RECORD_COUNTERS.map(c),
            inputs: c("trailhound_inputs_total"),
            bytes_in: c("trailhound_bytes_in_total"),
            inputs_failed: c("trailhound_inputs_failed_total"),
        }
    }
}

thread_local! {
    // The sink thread is the only one that records; each thread would keep its own.
    static SOURCES: std::cell::RefCell<std::collections::HashMap<Box<str>, SourceCounters>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
    static FINDINGS: std::cell::RefCell<std::collections::HashMap<(Box<str>, &'static str), ::metrics::Counter>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// Adds a finished unit's counters to the metrics of its source. `end` is the unit's
/// input end (compressed bytes read, whether it failed), when it ended the input.
pub fn record_unit(source: &str, c: &Counters, end: Option<(u64, bool)>, pack: &RulePack) {
    if !enabled() {
        return;
    }
    SOURCES.with_borrow_mut(|map| {
        if !map.contains_key(source) {
            map.insert(source.into(), SourceCounters::new(source));
        }
        let Some(sc) = map.get(source) else { return };
        let values = [
            c.records_in,
            c.records_kept,
            c.records_filtered,
            c.records_deduplicated,
            c.records_dead_lettered,
            c.documents_skipped,
            c.bytes_decoded,
        ];
        for (counter, n) in sc.records.iter().zip(values) {
            counter.increment(n);
        }
        if let Some((bytes, failed)) = end {
            sc.inputs.increment(1);
            sc.bytes_in.increment(bytes);
            if failed {
                sc.inputs_failed.increment(1);
            }
        }
    });
    for (i, n) in c.findings_by_rule.iter().enumerate() {
        if *n > 0 {
            record_findings(pack, i as u32, *n);
        }
    }
}

/// Counts `n` findings of rule `i`.
pub fn record_findings(pack: &RulePack, i: u32, n: u64) {
    if !enabled() {
        return;
    }
    let Some(r) = pack.rules().get(i as usize) else {
        return;
    };
    FINDINGS.with_borrow_mut(|map| {
        let level = r.meta.level.as_str();
        let key = (Box::<str>::from(r.meta.id.as_str()), level);
        map.entry(key)
            .or_insert_with(|| {
                ::metrics::counter!(
                    "trailhound_findings_total",
                    "rule" => r.meta.id.clone(),
                    "level" => level
                )
            })
            .increment(n);
    });
}

/// Counts a rule reload (`result` ok or rejected) and sets the number of rules in force.
pub fn record_reload(ok: bool, rules: usize) {
    if !enabled() {
        return;
    }
    let result = if ok { "ok" } else { "rejected" };
    ::metrics::counter!("trailhound_rule_reloads_total", "result" => result).increment(1);
    ::metrics::gauge!("trailhound_rules_loaded").set(rules as f64);
    if ok {
        ::metrics::gauge!("trailhound_rules_last_reload_timestamp_seconds").set(now_seconds());
    }
}

/// Records how long a finding took from the sink to the broker's confirmation.
pub fn record_delivery(sink: &str, took: Duration) {
    if enabled() {
        ::metrics::histogram!("trailhound_sink_delivery_seconds", "sink" => sink.to_string())
            .record(took.as_secs_f64());
    }
}

/// Sets a gauge of the pipeline's queues: `items` of `capacity` in `channel`.
pub fn record_channel(channel: &'static str, items: usize, capacity: usize) {
    if enabled() {
        ::metrics::gauge!("trailhound_channel_items", "channel" => channel).set(items as f64);
        ::metrics::gauge!("trailhound_channel_capacity", "channel" => channel).set(capacity as f64);
    }
}

/// Counts an archive file finished with `rows` rows.
pub fn record_archive_file(rows: u64) {
    if enabled() {
        ::metrics::counter!("trailhound_archive_files_total").increment(1);
        ::metrics::counter!("trailhound_records_archived_total").increment(rows);
    }
}

/// Sets how far behind a source is: the age of the newest record it received, from
/// the queue's own timestamp in epoch milliseconds (SQS `SentTimestamp`, the Kafka
/// message timestamp).
pub fn record_lag(source: &str, sent_ms: i64) {
    if enabled() {
        let lag_ms = (crate::archive::now_micros() / 1000)
            .saturating_sub(sent_ms)
            .max(0);
        ::metrics::gauge!("trailhound_source_lag_seconds", "source" => source.to_string())
            .set(lag_ms as f64 / 1000.0);
    }
}

/// Now, in seconds since the epoch (for timestamp gauges).
fn now_seconds() -> f64 {
    crate::archive::now_micros() as f64 / 1e6
}

/// Records that a source's checkpoint was written now.
pub fn record_checkpoint(source: &str) {
    if enabled() {
        ::metrics::gauge!("trailhound_checkpoint_last_timestamp_seconds", "source" => source.to_string())
            .set(now_seconds());
    }
}

/// Sets the number of rules in force (at the start of a run).
pub fn record_rules_loaded(rules: usize) {
    if enabled() {
        ::metrics::gauge!("trailhound_rules_loaded").set(rules as f64);
    }
}
