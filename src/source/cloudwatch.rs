//! The CloudWatch Logs source: a trail delivered to a log group, read with
//! `FilterLogEvents`. Each log event's message is one CloudTrail record; a page of
//! events becomes one input of NDJSON (`cloudwatch:<group>`), so a page is framed,
//! parsed and matched like a file.
//!
//! **Scans.** A scan reads every event from the checkpoint's time on, page by page,
//! `api_sleep` apart (FilterLogEvents allows 5 requests per second per account and
//! region); the next scan starts `scan_frequency` later. `start_position: end` starts
//! at the current time when there is no checkpoint.
//!
//! **Checkpoint.** The newest event time of the last fully acknowledged scan, with the
//! ids (and times) of the events read within `lookback` (default 15m) of it. The next
//! scan starts `lookback` before that time — CloudTrail writes one stream per account
//! and region and delivers minutes late, so an event can arrive with a time older than
//! one already read — and skips the ids it has. An event arriving more than `lookback`
//! late is missed; raise it for slow streams. A crash mid-scan redoes that scan: events
//! repeat (removed by eventID dedup), and none inside the window go missing.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use super::aws::{ConnectionRef, describe};
use super::checkpoint::Checkpoints;
use super::{Ack, Arrival};

/// `sources: - cloudwatch_logs: {…}`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudWatchConfig {
    /// The source's name (default `cloudwatch_logs`).
    pub name: Option<String>,
    /// A `connections:` name, or the connection inline.
    pub connection: Option<ConnectionRef>,
    /// The log group's name…
    pub log_group_name: Option<String>,
    /// …or its ARN (`arn:aws:logs:region:account:log-group:NAME[:*]`).
    pub log_group_arn: Option<String>,
    /// Only these streams.
    #[serde(default)]
    pub log_streams: Vec<String>,
    /// Only streams starting with this.
    pub log_stream_prefix: Option<String>,
    /// Where to start without a checkpoint: `beginning` (default) or `end`.
    pub start_position: Option<String>,
    /// Time between scans (default 1m).
    pub scan_frequency: Option<String>,
    /// Timeout of one API call (default 120s).
    pub api_timeout: Option<String>,
    /// Pause between API calls (default 200ms).
    pub api_sleep: Option<String>,
    /// A CloudWatch filter pattern passed to the API (default: every event).
    pub filter_pattern: Option<String>,
    /// Events per FilterLogEvents page, 1–10000 (default: the API's, 10000).
    pub limit: Option<i32>,
    /// Each scan starts this far before the newest event seen, so events that arrive
    /// late (other streams, delivery delays) are still read; events already read are
    /// skipped by id (default 15m; `0s` reads strictly forward).
    pub lookback: Option<String>,
}

impl CloudWatchConfig {
    /// The group's name (from `log_group_name`, or the name part of the ARN).
    pub fn group(&self) -> Result<String, String> {
        match (&self.log_group_name, &self.log_group_arn) {
            (Some(n), None) => Ok(n.clone()),
            (None, Some(arn)) => {
                let rest = arn
                    .split_once(":log-group:")
                    .map(|(_, r)| r)
                    .filter(|_| arn.starts_with("arn:"))
                    .ok_or_else(|| format!("log_group_arn: {arn:?} is not a log group ARN"))?;
                Ok(rest.trim_end_matches(":*").to_string())
            }
            (Some(_), Some(_)) => Err("give log_group_name or log_group_arn, not both".into()),
            (None, None) => Err("log_group_name or log_group_arn is required".into()),
        }
    }

    /// Checks durations and options.
    pub fn validate(&self) -> Result<(), String> {
        self.group()?;
        if !self.log_streams.is_empty() && self.log_stream_prefix.is_some() {
            return Err("give log_streams or log_stream_prefix, not both".into());
        }
        match self.start_position.as_deref() {
            None | Some("beginning") | Some("end") => {}
            Some(o) => return Err(format!("start_position: {o:?} (beginning or end)")),
        }
        for (k, v) in [
            ("scan_frequency", &self.scan_frequency),
            ("api_timeout", &self.api_timeout),
            ("api_sleep", &self.api_sleep),
            ("lookback", &self.lookback),
        ] {
            crate::config::duration_field(k, v.as_deref())?;
        }
        Ok(())
    }
}

/// The checkpoint.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CloudWatchCheckpoint {
    /// Milliseconds since the epoch: the newest event read (the next scan starts
    /// `lookback` before it).
    pub start_time: Option<i64>,
    /// Ids of the events read within `lookback` of `start_time`, with their times: a
    /// later scan skips them.
    pub seen: BTreeMap<String, i64>,
}

impl CloudWatchCheckpoint {
    /// Forgets ids older than the lookback window.
    fn prune(&mut self, lookback_ms: i64) {
        if let Some(t) = self.start_time {
            let floor = t.saturating_sub(lookback_ms);
            self.seen.retain(|_, ts| *ts >= floor);
        }
    }
}

/// Counters.
#[derive(Debug, Default)]
pub struct CloudWatchStats {
    /// FilterLogEvents calls.
    pub requests: std::sync::atomic::AtomicU64,
    /// Log events handed to the pipeline.
    pub events: std::sync::atomic::AtomicU64,
}

/// A scan's acknowledgement state: the checkpoint moves when its last page is done.
struct ScanAck {
    remaining: std::sync::atomic::AtomicUsize,
    next: CloudWatchCheckpoint,
    shared: Shared,
}

impl ScanAck {
    fn page_done(&self) {
        if self
            .remaining
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel)
            == 1
            && let Ok(mut s) = self.shared.lock()
        {
            s.0 = self.next.clone();
            s.1 = true;
        }
    }
}

/// Runs scans until `stop` (or after one scan when `once`).
#[allow(clippy::too_many_arguments)]
pub async fn run(
    cfg: CloudWatchConfig,
    name: String,
    client: aws_sdk_cloudwatchlogs::Client,
    checkpoints: Checkpoints,
    tx: mpsc::Sender<Arrival>,
    mut stop: watch::Receiver<bool>,
    once: bool,
    stats: Arc<CloudWatchStats>,
    shared: Shared,
) -> Result<(), String> {
    cfg.validate()?;
    let group = cfg.group()?;
    let mut cp: CloudWatchCheckpoint = checkpoints.load(&name).map_err(|e| e.to_string())?;
    if cp.start_time.is_none() && cfg.start_position.as_deref() == Some("end") {
        cp.start_time = Some(crate::archive::now_micros() / 1000);
    }
    if let Ok(mut s) = shared.lock() {
        s.0 = cp.clone();
    }
    let scan_every = crate::config::duration_or(
        "scan_frequency",
        cfg.scan_frequency.as_deref(),
        Duration::from_secs(60),
    )?;
    let sleep = crate::config::duration_or(
        "api_sleep",
        cfg.api_sleep.as_deref(),
        Duration::from_millis(200),
    )?;
    let timeout = crate::config::duration_or(
        "api_timeout",
        cfg.api_timeout.as_deref(),
        Duration::from_secs(120),
    )?;
    let lookback_ms = crate::config::duration_or(
        "lookback",
        cfg.lookback.as_deref(),
        Duration::from_secs(15 * 60),
    )?
    .as_millis() as i64;
    // What the next scan starts from (moves ahead of the acknowledged checkpoint).
    let mut cursor = cp;
    let save = |shared: &Shared| save(shared, &name, &checkpoints);
    'scans: loop {
        let mut token: Option<String> = None;
        let mut pages: Vec<(Vec<u8>, usize)> = Vec::new();
        let mut next = cursor.clone();
        loop {
            if *stop.borrow() {
                break 'scans;
            }
            let mut req = client
                .filter_log_events()
                .log_group_name(&group)
                .set_start_time(cursor.start_time.map(|t| t.saturating_sub(lookback_ms)))
                .set_next_token(token.clone())
                .set_filter_pattern(cfg.filter_pattern.clone())
                .set_limit(cfg.limit.map(|l| l.clamp(1, 10_000)));
            if !cfg.log_streams.is_empty() {
                req = req.set_log_stream_names(Some(cfg.log_streams.clone()));
            } else if let Some(p) = &cfg.log_stream_prefix {
                req = req.log_stream_name_prefix(p);
            }
            #[allow(deprecated)]
            let req = req.interleaved(true);
            stats
                .requests
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let r = tokio::select! {
                r = tokio::time::timeout(timeout, req.send()) => r,
                _ = stop.changed() => break 'scans,
            };
            let component = format!("source/{name}");
            let out = match r {
                Ok(Ok(o)) => {
                    crate::telemetry::component(&component, true, format!("reading {group}"));
                    o
                }
                Ok(Err(e)) => {
                    crate::telemetry::component(
                        &component,
                        false,
                        format!("FilterLogEvents on {group} failed: {}", describe(&e)),
                    );
                    tracing::error!(source = %name, group = %group, "FilterLogEvents failed: {}; next scan in {}s", describe(&e), scan_every.as_secs());
                    pages.clear();
                    break;
                }
                Err(_) => {
                    crate::telemetry::component(
                        &component,
                        false,
                        format!("FilterLogEvents on {group} timed out"),
                    );
                    tracing::error!(source = %name, group = %group, "FilterLogEvents timed out after {}s", timeout.as_secs());
                    pages.clear();
                    break;
                }
            };
            let mut body = Vec::new();
            let mut n = 0;
            for e in out.events() {
                let (Some(ts), Some(msg)) = (e.timestamp(), e.message()) else {
                    continue;
                };
                let id = e.event_id().unwrap_or_default();
                if next.seen.contains_key(id) {
                    continue;
                }
                next.seen.insert(id.to_string(), ts);
                next.start_time = Some(next.start_time.map_or(ts, |t| t.max(ts)));
                body.extend_from_slice(msg.trim_end().as_bytes());
                body.push(b'\n');
                n += 1;
            }
            if n > 0 {
                pages.push((body, n));
            }
            token = out.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
            tokio::time::sleep(sleep).await;
        }
        next.prune(lookback_ms);
        if !pages.is_empty() {
            let ack = Arc::new(ScanAck {
                remaining: std::sync::atomic::AtomicUsize::new(pages.len()),
                next: next.clone(),
                shared: shared.clone(),
            });
            for (body, n) in pages {
                stats
                    .events
                    .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                let a = ack.clone();
                let arrival = Arrival::fetched(
                    format!("cloudwatch:{group}"),
                    body,
                    Ack::new(move || a.page_done()),
                );
                if tx.send(arrival).await.is_err() {
                    break 'scans;
                }
            }
            cursor = next;
        }
        save(&shared);
        if once {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(scan_every) => {}
            _ = stop.changed() => break,
        }
        save(&shared);
    }
    drop(tx);
    Ok(())
}

/// The acknowledged checkpoint and whether it moved since it was last written.
pub type Shared = Arc<Mutex<(CloudWatchCheckpoint, bool)>>;

/// Writes the acknowledged checkpoint if it moved (also called once the pipeline has
/// drained, when the last acknowledgements are in).
pub fn save(shared: &Shared, name: &str, checkpoints: &Checkpoints) {
    let snapshot = match shared.lock() {
        Ok(mut s) if s.1 => {
            s.1 = false;
            Some(s.0.clone())
        }
        _ => None,
    };
    if let Some(c) = snapshot
        && let Err(e) = checkpoints.save(name, &c)
    {
        tracing::error!(source = %name, "{e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_from_name_or_arn() {
        let c = CloudWatchConfig {
            log_group_arn: Some(
                "arn:aws:logs:us-east-1:123456789012:log-group:aws-cloudtrail-logs:*".into(),
            ),
            ..CloudWatchConfig::default()
        };
        assert_eq!(c.group().as_deref(), Ok("aws-cloudtrail-logs"));
        let c = CloudWatchConfig {
            log_group_name: Some("g".into()),
            log_streams: vec!["a".into()],
            log_stream_prefix: Some("x".into()),
            ..CloudWatchConfig::default()
        };
        assert!(c.validate().unwrap_err().contains("not both"));
        assert!(CloudWatchConfig::default().validate().is_err());
        let c = CloudWatchConfig {
            log_group_name: Some("g".into()),
            start_position: Some("middle".into()),
            ..CloudWatchConfig::default()
        };
        assert!(c.validate().is_err());
    }
}
