//! The S3 source: CloudTrail log objects in a bucket, listed by key layout and fetched
//! concurrently.
//!
//! **Pruning by key.** CloudTrail writes `AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/
//! <account>_CloudTrail_<region>_<YYYYMMDDTHHmmZ>_<rand>.json.gz` (organization trails
//! put `o-xxxx/` before the account). The layout is a list of `/`-separated segments,
//! literal or `{variable}`; [`leaf_prefixes`] walks it level by level: a variable with
//! known values (`regions:`, or `{year}/{month}/{day}` within `since`/`until`) is
//! enumerated without a request; any other is discovered with one delimiter listing
//! (`ListObjectsV2 delimiter=/`) of that level, and `accounts:` filters what is found.
//! Only the day prefixes of the time range are ever listed in full: reading one day
//! never lists the bucket. Within a day, object names carry their delivery time, and
//! an object delivered before `since` cannot hold a record of the range (CloudTrail
//! delivers after the fact), so it is not fetched; `until` keeps a one-hour margin for
//! late deliveries. Records are then filtered by event time exactly (`[since, until)`).
//!
//! **Concurrency and order.** One task lists; fetches run `concurrency` at a time (64
//! by default) but are handed to the pipeline in listing order, so output is
//! deterministic and the checkpoint can be a single key per prefix.
//!
//! **Checkpoint.** Per leaf prefix, the last key of the unbroken run of objects the
//! pipeline acknowledged; a restart lists with `start-after` that key. An object that
//! failed stops its prefix's checkpoint there, so it is fetched again next time.
//!
//! **Failed listings.** A listing the service denies (`AccessDenied`: a policy may deny
//! one account's or one day's prefix) is skipped, its prefix gets no checkpoint, the
//! other prefixes are read, and the pass then fails naming it. Any other failed
//! listing (throttling, 5xx, no connection) ends the pass where it is.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use super::aws::{ConnectionRef, access_denied, describe};
use super::checkpoint::Checkpoints;
use super::{Ack, Arrival};

/// CloudTrail's key layout under the prefix.
pub const DEFAULT_LAYOUT: &str = "AWSLogs/{account_id}/CloudTrail/{region}/{year}/{month}/{day}";

/// `sources: - s3: {…}` and `detect s3://bucket/prefix/`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// The source's name: its `tp_partition` and checkpoint key (default `s3`).
    pub name: Option<String>,
    /// A `connections:` name, or the connection inline.
    pub connection: Option<ConnectionRef>,
    /// The bucket.
    pub bucket: String,
    /// Key prefix before the layout (e.g. a trail's S3 key prefix).
    #[serde(default)]
    pub prefix: String,
    /// The key layout after the prefix (default: CloudTrail's); `none` lists every
    /// object under the prefix.
    pub layout: Option<String>,
    /// Only these accounts (default: all found).
    #[serde(default)]
    pub accounts: Vec<String>,
    /// Only these regions (default: all found).
    #[serde(default)]
    pub regions: Vec<String>,
    /// Records from this time on (`2024-12-01` or RFC 3339), inclusive.
    pub since: Option<String>,
    /// Records before this time, exclusive.
    pub until: Option<String>,
    /// Objects fetched at once (default 64).
    pub concurrency: Option<usize>,
    /// `run`: list again this often for new objects (default 1m); `detect` reads once.
    pub poll_interval: Option<String>,
}

/// Parsed `since`/`until`: `2024-12-01` (midnight UTC) or an RFC 3339 time.
pub fn parse_time_bound(s: &str) -> Option<i64> {
    let t = s.trim();
    if t.len() == 10 {
        return crate::archive::parse_time_micros(&format!("{t}T00:00:00Z"));
    }
    crate::archive::parse_time_micros(t)
}

/// One segment of a layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Must be exactly this.
    Literal(String),
    /// Any value, bound to the name.
    Var(String),
}

/// Reads a layout: `/`-separated segments, each literal or one whole `{name}`.
pub fn parse_layout(s: &str) -> Result<Vec<Segment>, String> {
    let mut out = Vec::new();
    for seg in s.trim_matches('/').split('/') {
        if seg.is_empty() {
            return Err(format!("layout {s:?}: empty segment"));
        }
        if let Some(name) = seg.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("layout {s:?}: bad variable {seg:?}"));
            }
            out.push(Segment::Var(name.to_string()));
        } else if seg.contains(['{', '}']) {
            return Err(format!(
                "layout {s:?}: a variable must be a whole segment ({seg:?})"
            ));
        } else {
            out.push(Segment::Literal(seg.to_string()));
        }
    }
    Ok(out)
}

/// Counters of an S3 source, for the summary and the closing log line.
#[derive(Debug, Default)]
pub struct S3Stats {
    /// ListObjectsV2 calls.
    pub list_requests: AtomicU64,
    /// Objects listed that matched the layout and time range.
    pub objects_listed: AtomicU64,
    /// Objects left out by their delivery time.
    pub objects_pruned: AtomicU64,
    /// Objects fetched.
    pub objects_fetched: AtomicU64,
    /// Objects that could not be fetched.
    pub objects_failed: AtomicU64,
    /// Bytes fetched.
    pub bytes_fetched: AtomicU64,
}

/// The checkpoint: per leaf prefix, the last key of the acknowledged run.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct S3Checkpoint {
    /// Leaf prefix → last key.
    pub done: BTreeMap<String, String>,
}

#[derive(Default)]
struct Track {
    cp: S3Checkpoint,
    /// Per prefix, keys handed out in order, with whether they are acknowledged.
    queues: HashMap<String, VecDeque<(String, bool)>>,
    /// Per prefix, the last key handed out (a later pass starts after it).
    issued: HashMap<String, String>,
    /// Objects that could not be fetched, as (prefix, key): a later pass fetches them
    /// again before it lists.
    failed: BTreeSet<(String, String)>,
}

/// What the source has done, shared with the acknowledgements.
pub struct Progress {
    name: String,
    checkpoints: Checkpoints,
    track: Mutex<Track>,
    dirty: AtomicBool,
}

impl Progress {
    /// Loads the source's checkpoint.
    pub fn load(name: &str, checkpoints: Checkpoints) -> Result<Arc<Self>, String> {
        let cp: S3Checkpoint = checkpoints.load(name).map_err(|e| e.to_string())?;
        Ok(Arc::new(Progress {
            name: name.to_string(),
            checkpoints,
            track: Mutex::new(Track {
                cp,
                ..Track::default()
            }),
            dirty: AtomicBool::new(false),
        }))
    }

    fn start_after(&self, prefix: &str) -> Option<String> {
        let t = self.track.lock().ok()?;
        let done = t.cp.done.get(prefix);
        let issued = t.issued.get(prefix);
        done.max(issued).cloned()
    }

    fn issue(&self, prefix: &str, key: &str) {
        if let Ok(mut t) = self.track.lock() {
            let q = t.queues.entry(prefix.to_string()).or_default();
            // A failed object fetched again keeps its place in the queue.
            if !q.iter().any(|(k, _)| k == key) {
                q.push_back((key.to_string(), false));
            }
            let later = t.issued.get(prefix).is_none_or(|i| i.as_str() < key);
            if later {
                t.issued.insert(prefix.to_string(), key.to_string());
            }
        }
    }

    /// An issued object could not be fetched: it stays unacknowledged (the prefix's
    /// checkpoint stops before it) and the next pass fetches it again.
    fn fail(&self, prefix: &str, key: &str) {
        if let Ok(mut t) = self.track.lock() {
            t.failed.insert((prefix.to_string(), key.to_string()));
        }
    }

    /// The failed objects to fetch again, in key order; they are forgotten until they
    /// fail again.
    fn take_failed(&self) -> Vec<(String, String)> {
        self.track
            .lock()
            .map(|mut t| std::mem::take(&mut t.failed).into_iter().collect())
            .unwrap_or_default()
    }

    /// Objects that failed and have not been fetched again yet.
    pub fn failed_count(&self) -> usize {
        self.track.lock().map(|t| t.failed.len()).unwrap_or(0)
    }

    fn ack(&self, prefix: &str, key: &str) {
        let Ok(mut t) = self.track.lock() else { return };
        let Some(q) = t.queues.get_mut(prefix) else {
            return;
        };
        if let Some(e) = q.iter_mut().find(|(k, _)| k == key) {
            e.1 = true;
        }
        let mut last = None;
        while q.front().is_some_and(|(_, done)| *done) {
            last = q.pop_front().map(|(k, _)| k);
        }
        if let Some(k) = last {
            t.cp.done.insert(prefix.to_string(), k);
            self.dirty.store(true, Ordering::Relaxed);
        }
    }

    /// Writes the checkpoint if it moved.
    pub fn save(&self) {
        if !self.dirty.swap(false, Ordering::Relaxed) {
            return;
        }
        let cp = match self.track.lock() {
            Ok(t) => t.cp.clone(),
            Err(_) => return,
        };
        if let Err(e) = self.checkpoints.save(&self.name, &cp) {
            tracing::error!(source = %self.name, "{e}");
            self.dirty.store(true, Ordering::Relaxed);
        }
    }

    /// The checkpoint as it stands.
    pub fn snapshot(&self) -> S3Checkpoint {
        self.track.lock().map(|t| t.cp.clone()).unwrap_or_default()
    }
}

/// A listing that failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("s3://{bucket}/{prefix}: listing: {message}")]
pub struct ListError {
    /// The bucket.
    pub bucket: String,
    /// The prefix listed.
    pub prefix: String,
    /// The service's code and message, or the transport failure.
    pub message: String,
    /// The service denied access (`AccessDenied`): the other prefixes are listed on.
    pub denied: bool,
}

impl ListError {
    fn new<E, R>(bucket: &str, prefix: &str, e: &aws_sdk_s3::error::SdkError<E, R>) -> Self
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug + 'static,
    {
        ListError {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            message: describe(e),
            denied: access_denied(e),
        }
    }
}

/// How many denied listings [`denied_summary`] names.
const DENIED_SHOWN: usize = 5;

/// One line for the listings a pass could not make because access was denied: how
/// many, the first few with their error, and that their objects were not read.
fn denied_summary(denied: &[ListError]) -> String {
    let shown: Vec<String> = denied
        .iter()
        .take(DENIED_SHOWN)
        .map(ToString::to_string)
        .collect();
    let mut s = format!(
        "{} listing(s) denied, their objects not read: {}",
        denied.len(),
        shown.join("; ")
    );
    if denied.len() > DENIED_SHOWN {
        s.push_str(&format!("; and {} more", denied.len() - DENIED_SHOWN));
    }
    s
}

/// Lists and fetches; one per source.
pub struct S3Reader {
    client: aws_sdk_s3::Client,
    bucket: String,
    /// Counters.
    pub stats: Arc<S3Stats>,
}

impl S3Reader {
    /// A reader of `bucket`.
    pub fn new(client: aws_sdk_s3::Client, bucket: String) -> Self {
        S3Reader {
            client,
            bucket,
            stats: Arc::default(),
        }
    }

    /// The next level under `prefix` (one delimiter listing, all pages).
    async fn children(&self, prefix: &str) -> Result<Vec<String>, ListError> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            self.stats.list_requests.fetch_add(1, Ordering::Relaxed);
            let r = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .delimiter("/")
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| ListError::new(&self.bucket, prefix, &e))?;
            for cp in r.common_prefixes() {
                if let Some(p) = cp.prefix() {
                    out.push(p.to_string());
                }
            }
            token = r.next_continuation_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        Ok(out)
    }

    /// `children`, except that a listing the service denies is added to `denied` and
    /// has no children: the walk goes on with the other prefixes.
    async fn children_or_denied(
        &self,
        prefix: &str,
        denied: &mut Vec<ListError>,
    ) -> Result<Vec<String>, ListError> {
        match self.children(prefix).await {
            Err(e) if e.denied => {
                denied.push(e);
                Ok(Vec::new())
            }
            r => r,
        }
    }

    /// Every prefix the layout leads to under `base`, in key order, and the listings
    /// the service denied (`AccessDenied`), whose subtrees are left out. Any other
    /// failed listing fails the walk.
    pub async fn leaf_prefixes(
        &self,
        base: &str,
        layout: &[Segment],
        f: &Filters,
    ) -> Result<(Vec<String>, Vec<ListError>), ListError> {
        let mut denied = Vec::new();
        let mut frontier = vec![base.to_string()];
        let mut i = 0;
        while i < layout.len() {
            let var = |j: usize| match layout.get(j) {
                Some(Segment::Var(v)) => Some(v.as_str()),
                _ => None,
            };
            match &layout[i] {
                Segment::Literal(l) => {
                    for p in &mut frontier {
                        p.push_str(l);
                        p.push('/');
                    }
                }
                Segment::Var(v)
                    if v == "year"
                        && var(i + 1) == Some("month")
                        && var(i + 2) == Some("day")
                        && f.days.is_some() =>
                {
                    let (first, last) = f.days.unwrap_or((0, -1));
                    let mut next = Vec::new();
                    for p in &frontier {
                        for day in first..=last {
                            let d = crate::archive::date_of(day * 86_400_000_000);
                            next.push(format!("{p}{}/{}/{}/", &d[0..4], &d[5..7], &d[8..10]));
                        }
                    }
                    frontier = next;
                    i += 2;
                }
                Segment::Var(v) if v == "region" && !f.regions.is_empty() => {
                    let mut regions = f.regions.clone();
                    regions.sort();
                    frontier = frontier
                        .iter()
                        .flat_map(|p| regions.iter().map(move |r| format!("{p}{r}/")))
                        .collect();
                }
                Segment::Var(v) => {
                    let mut next = Vec::new();
                    for p in &frontier {
                        for child in self.children_or_denied(p, &mut denied).await? {
                            let name = child[p.len()..].trim_end_matches('/');
                            if v == "account_id" && name.starts_with("o-") {
                                // An organization trail: accounts are one level down.
                                for acct in self.children_or_denied(&child, &mut denied).await? {
                                    let a = acct[child.len()..].trim_end_matches('/');
                                    if f.accepts_account(a) {
                                        next.push(acct.clone());
                                    }
                                }
                            } else if v != "account_id" || f.accepts_account(name) {
                                next.push(child.clone());
                            }
                        }
                    }
                    next.sort();
                    frontier = next;
                }
            }
            i += 1;
        }
        Ok((frontier, denied))
    }
}

/// What prunes the listing.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    /// Accounts kept (empty: all).
    pub accounts: Vec<String>,
    /// Regions kept (empty: all found).
    pub regions: Vec<String>,
    /// Day numbers (since 1970-01-01) to list, inclusive, when a range is given.
    pub days: Option<(i64, i64)>,
    /// `[since, until)` in microseconds.
    pub range: Option<(i64, i64)>,
}

impl Filters {
    fn accepts_account(&self, a: &str) -> bool {
        self.accounts.is_empty() || self.accounts.iter().any(|x| x == a)
    }

    /// From the config's `since`/`until` (`until` defaults to now when only `since`
    /// is given).
    pub fn new(c: &S3Config) -> Result<Self, String> {
        let bound = |k: &str, v: &Option<String>| {
            v.as_deref()
                .map(|s| {
                    parse_time_bound(s)
                        .ok_or_else(|| format!("{k}: {s:?} is not a date or RFC 3339 time"))
                })
                .transpose()
        };
        let since = bound("since", &c.since)?;
        let until = bound("until", &c.until)?;
        let range = match (since, until) {
            (None, None) => None,
            (s, u) => Some((s.unwrap_or(i64::MIN), u.unwrap_or(i64::MAX))),
        };
        if let Some((s, u)) = range
            && s >= u
        {
            return Err("since must be before until".into());
        }
        // Days listed: from since's day to the day of until + 1h (late deliveries),
        // capped at today.
        let days = since.map(|s| {
            let now = crate::archive::now_micros();
            let end = until.map_or(now, |u| u.saturating_add(3_600_000_000).min(now.max(s)));
            (s.div_euclid(86_400_000_000), end.div_euclid(86_400_000_000))
        });
        Ok(Filters {
            accounts: c.accounts.clone(),
            regions: c.regions.clone(),
            days,
            range,
        })
    }

    /// Whether an object can hold records of the range, by the delivery time in its
    /// CloudTrail file name (names without one are kept).
    pub fn keeps_key(&self, key: &str) -> bool {
        let Some((since, until)) = self.range else {
            return true;
        };
        let Some(t) = delivery_time(key) else {
            return true;
        };
        t >= since.saturating_sub(60_000_000) && t < until.saturating_add(3_600_000_000)
    }
}

/// The delivery time in a CloudTrail object name (`…_20241201T0005Z_…`), microseconds.
pub fn delivery_time(key: &str) -> Option<i64> {
    let name = key.rsplit('/').next()?;
    let i = name.find("_CloudTrail_")?;
    let rest = &name[i + "_CloudTrail_".len()..];
    let ts = rest.split('_').nth(1)?;
    let b = ts.as_bytes();
    if b.len() != 14 || b[8] != b'T' || b[13] != b'Z' {
        return None;
    }
    let text = format!(
        "{}-{}-{}T{}:{}:00Z",
        &ts[0..4],
        &ts[4..6],
        &ts[6..8],
        &ts[9..11],
        &ts[11..13]
    );
    crate::archive::parse_time_micros(&text)
}

/// Whether a key is a CloudTrail log object (not a digest, not a folder marker).
fn is_log_object(key: &str) -> bool {
    !key.ends_with('/')
        && !key.contains("/CloudTrail-Digest/")
        && !key.contains("_CloudTrail-Digest_")
}

/// One pass over the source: list the layout's prefixes, fetch what is new, hand it to
/// the pipeline in order. Returns when everything listed has been handed over, or on
/// shutdown. A prefix whose listing is denied (`AccessDenied`) is skipped and the other
/// prefixes are read; the pass then fails naming it. Any other failed listing ends
/// the pass there (the service is failing: throttling, 5xx, no connection).
#[allow(clippy::too_many_arguments)]
pub async fn pass(
    reader: Arc<S3Reader>,
    cfg: &S3Config,
    filters: &Filters,
    progress: Arc<Progress>,
    tx: &mpsc::Sender<Arrival>,
    stop: &watch::Receiver<bool>,
    bar: Option<&indicatif::ProgressBar>,
) -> Result<(), String> {
    let layout = match cfg.layout.as_deref() {
        Some("none") => Vec::new(),
        Some(l) => parse_layout(l)?,
        None => parse_layout(DEFAULT_LAYOUT)?,
    };
    let base = cfg.prefix.clone();
    let (leaves, mut denied) = reader
        .leaf_prefixes(&base, &layout, filters)
        .await
        .map_err(|e| e.to_string())?;
    tracing::debug!(bucket = %reader.bucket, prefixes = leaves.len(), "prefixes to list");
    let (ktx, krx) = mpsc::channel::<(String, String)>(1024);
    let lister = {
        let reader = reader.clone();
        let progress = progress.clone();
        let filters = filters.clone();
        let stop = stop.clone();
        async move {
            // What failed in an earlier pass goes first (its prefix may no longer be
            // listed: later passes list only the last two days).
            let mut denied = Vec::new();
            for (leaf, key) in progress.take_failed() {
                if *stop.borrow() {
                    return Ok(denied);
                }
                if ktx.send((leaf, key)).await.is_err() {
                    return Ok(denied);
                }
            }
            'leaves: for leaf in leaves {
                let mut token = None;
                let start_after = progress.start_after(&leaf);
                loop {
                    if *stop.borrow() {
                        return Ok(denied);
                    }
                    reader.stats.list_requests.fetch_add(1, Ordering::Relaxed);
                    let r = reader
                        .client
                        .list_objects_v2()
                        .bucket(&reader.bucket)
                        .prefix(&leaf)
                        .set_start_after(start_after.clone())
                        .set_continuation_token(token)
                        .send()
                        .await;
                    let r = match r {
                        Ok(r) => r,
                        Err(e) => {
                            let e = ListError::new(&reader.bucket, &leaf, &e);
                            if !e.denied {
                                return Err(e.to_string());
                            }
                            denied.push(e);
                            continue 'leaves;
                        }
                    };
                    for o in r.contents() {
                        let Some(key) = o.key() else { continue };
                        if !is_log_object(key) {
                            continue;
                        }
                        if !filters.keeps_key(key) {
                            reader.stats.objects_pruned.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        reader.stats.objects_listed.fetch_add(1, Ordering::Relaxed);
                        if ktx.send((leaf.clone(), key.to_string())).await.is_err() {
                            return Ok(denied);
                        }
                    }
                    token = r.next_continuation_token().map(str::to_string);
                    if token.is_none() {
                        break;
                    }
                }
            }
            Ok::<Vec<ListError>, String>(denied)
        }
    };
    let fetcher =
        {
            let reader = reader.clone();
            let stream = futures_util::stream::unfold(krx, |mut rx| async move {
                rx.recv().await.map(|x| (x, rx))
            });
            let n = cfg.concurrency.unwrap_or(64).max(1);
            let fetch_reader = reader.clone();
            let mut fetched = Box::pin(
                stream
                    .map(move |(leaf, key)| {
                        let reader = fetch_reader.clone();
                        async move {
                            let r = fetch(&reader, &key).await;
                            (leaf, key, r)
                        }
                    })
                    .buffered(n),
            );
            let progress = progress.clone();
            let stop = stop.clone();
            async move {
                while let Some((leaf, key, r)) = fetched.next().await {
                    if *stop.borrow() {
                        break;
                    }
                    let name = format!("s3://{}/{key}", reader.bucket);
                    // A failed object is issued too and not acknowledged: its prefix's
                    // checkpoint stops before it, the next pass (`run`) fetches it again,
                    // and a restart lists it again.
                    progress.issue(&leaf, &key);
                    let arrival = match r {
                        Ok(body) => {
                            let p = progress.clone();
                            Arrival::fetched(name, body, Ack::new(move || p.ack(&leaf, &key)))
                        }
                        Err(e) => {
                            progress.fail(&leaf, &key);
                            Arrival::failed(name, e)
                        }
                    };
                    if let Some(b) = bar {
                        b.inc(1);
                    }
                    if tx.send(arrival).await.is_err() {
                        break;
                    }
                }
            }
        };
    let (listed, ()) = tokio::join!(lister, fetcher);
    denied.extend(listed?);
    if denied.is_empty() {
        Ok(())
    } else {
        Err(denied_summary(&denied))
    }
}

/// One object's bytes (GetObject, body read whole); the error is one line.
///
/// The SDK retries a request until its response head arrives; a body cut off after
/// that (a connection reset mid-object) is not retried by it. Such a read is retried
/// here with the connection's retry settings (`max_error_retry_attempts` in all,
/// backoff from `min_error_retry_delay`, doubling), so a transient reset does not fail
/// the object.
pub async fn get_object(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<Vec<u8>, String> {
    let (attempts, backoff) = body_retry(client.config().retry_config());
    let mut attempt = 1u32;
    loop {
        let r = client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| describe(&e))?;
        match r.body.collect().await {
            Ok(body) => return Ok(body.into_bytes().to_vec()),
            Err(e) if attempt < attempts => {
                let wait = backoff.saturating_mul(1 << (attempt - 1).min(16));
                tracing::warn!(
                    "s3://{bucket}/{key}: reading the object: {} (attempt {attempt} of {attempts}; retrying in {}ms)",
                    super::aws::chain(&e),
                    wait.as_millis()
                );
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            Err(e) => {
                return Err(format!(
                    "reading the object: {} (after {attempts} attempts)",
                    super::aws::chain(&e)
                ));
            }
        }
    }
}

/// Attempts in all and the first backoff for re-reading a body that broke off: the
/// connection's retry settings, else the SDK's standard ones (3 attempts, 1 s).
fn body_retry(c: Option<&aws_sdk_s3::config::retry::RetryConfig>) -> (u32, Duration) {
    match c {
        Some(c) => (c.max_attempts().max(1), c.initial_backoff()),
        None => (3, Duration::from_secs(1)),
    }
}

async fn fetch(reader: &S3Reader, key: &str) -> Result<Vec<u8>, String> {
    let bytes = get_object(&reader.client, &reader.bucket, key)
        .await
        .inspect_err(|_| {
            reader.stats.objects_failed.fetch_add(1, Ordering::Relaxed);
        })?;
    reader.stats.objects_fetched.fetch_add(1, Ordering::Relaxed);
    reader
        .stats
        .bytes_fetched
        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
    Ok(bytes)
}

/// The poll interval of a followed source (default 1m).
pub fn poll_interval(cfg: &S3Config) -> Result<Duration, String> {
    crate::config::duration_or(
        "poll_interval",
        cfg.poll_interval.as_deref(),
        Duration::from_secs(60),
    )
}

/// `s3://bucket/prefix/` → bucket and the config it implies. A prefix that runs into
/// the layout (`AWSLogs/123/CloudTrail/`) binds those levels: accounts and regions
/// named there become filters and the base stops before `AWSLogs/`.
pub fn from_url(url: &str) -> Result<S3Config, String> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| format!("{url}: not an s3:// URL"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(format!("{url}: no bucket"));
    }
    let mut cfg = S3Config {
        bucket: bucket.to_string(),
        ..S3Config::default()
    };
    if let Some(i) = prefix
        .find("AWSLogs/")
        .filter(|i| *i == 0 || prefix.as_bytes()[i - 1] == b'/')
    {
        cfg.prefix = prefix[..i].to_string();
        let parts: Vec<&str> = prefix[i + "AWSLogs/".len()..]
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        let mut k = 0;
        if parts.get(k).is_some_and(|p| p.starts_with("o-")) {
            // An organization: keep it in the prefix, accounts below it.
            cfg.prefix = format!("{}AWSLogs/{}/", cfg.prefix, parts[k]);
            cfg.layout = Some("{account_id}/CloudTrail/{region}/{year}/{month}/{day}".into());
            k += 1;
        }
        if let Some(a) = parts.get(k) {
            cfg.accounts.push((*a).to_string());
        }
        if parts.get(k + 1).is_some_and(|p| *p != "CloudTrail") {
            // Not CloudTrail's layout after all: read everything under the prefix.
            cfg.prefix = prefix.to_string();
            cfg.layout = Some("none".into());
            cfg.accounts.clear();
            return Ok(cfg);
        }
        if let Some(r) = parts.get(k + 2) {
            cfg.regions.push((*r).to_string());
        }
        if parts.len() > k + 3 {
            // Down to a date: list that prefix as is.
            cfg.prefix = prefix.to_string();
            cfg.layout = Some("none".into());
            cfg.accounts.clear();
            cfg.regions.clear();
        }
    } else {
        cfg.prefix = prefix.to_string();
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts() {
        let l = parse_layout(DEFAULT_LAYOUT).expect("default");
        assert_eq!(l.len(), 7);
        assert_eq!(l[0], Segment::Literal("AWSLogs".into()));
        assert_eq!(l[1], Segment::Var("account_id".into()));
        assert!(parse_layout("a/{x}y/b").is_err());
        assert!(parse_layout("a//b").is_err());
        assert!(parse_layout("a/{}/b").is_err());
    }

    #[test]
    fn delivery_times_and_pruning() {
        let k = "AWSLogs/123/CloudTrail/us-east-1/2024/12/01/123_CloudTrail_us-east-1_20241201T0005Z_abc.json.gz";
        assert_eq!(
            delivery_time(k),
            crate::archive::parse_time_micros("2024-12-01T00:05:00Z")
        );
        assert_eq!(delivery_time("x/other.json.gz"), None);
        let c = S3Config {
            since: Some("2024-12-01".into()),
            until: Some("2024-12-02".into()),
            ..S3Config::default()
        };
        let f = Filters::new(&c).expect("filters");
        assert!(f.keeps_key(k));
        assert!(!f.keeps_key(&k.replace("20241201T0005Z", "20241130T2300Z")));
        // Late deliveries of the last hour of the range are kept.
        assert!(f.keeps_key(&k.replace("20241201T0005Z", "20241202T0030Z")));
        assert!(!f.keeps_key(&k.replace("20241201T0005Z", "20241202T0130Z")));
        let (a, b) = f.days.expect("days");
        assert_eq!(b - a, 1);
        let bad = S3Config {
            since: Some("2024-12-02".into()),
            until: Some("2024-12-01".into()),
            ..S3Config::default()
        };
        assert!(Filters::new(&bad).is_err());
    }

    #[test]
    fn urls() {
        let c = from_url("s3://trail-bucket/").expect("url");
        assert_eq!((c.bucket.as_str(), c.prefix.as_str()), ("trail-bucket", ""));
        assert!(c.layout.is_none());
        let c = from_url("s3://b/logs/AWSLogs/123456789012/CloudTrail/eu-west-1/").expect("url");
        assert_eq!(c.prefix, "logs/");
        assert_eq!(c.accounts, ["123456789012"]);
        assert_eq!(c.regions, ["eu-west-1"]);
        let c = from_url("s3://b/AWSLogs/o-abc123/111122223333/").expect("url");
        assert_eq!(c.prefix, "AWSLogs/o-abc123/");
        assert_eq!(c.accounts, ["111122223333"]);
        let c = from_url("s3://b/AWSLogs/1/CloudTrail/us-east-1/2024/12/01/").expect("url");
        assert_eq!(c.layout.as_deref(), Some("none"));
        assert_eq!(c.prefix, "AWSLogs/1/CloudTrail/us-east-1/2024/12/01/");
        assert!(from_url("s3:///x").is_err());
        assert!(from_url("/tmp/x").is_err());
    }

    #[test]
    fn denied_listings_are_summed_up_by_prefix() {
        let denied = |i: usize| ListError {
            bucket: "trail".into(),
            prefix: format!("AWSLogs/{i}/"),
            message: "AccessDenied: Access Denied".into(),
            denied: true,
        };
        assert_eq!(
            denied(1).to_string(),
            "s3://trail/AWSLogs/1/: listing: AccessDenied: Access Denied"
        );
        let two: Vec<ListError> = (1..=2).map(denied).collect();
        assert_eq!(
            denied_summary(&two),
            "2 listing(s) denied, their objects not read: s3://trail/AWSLogs/1/: listing: AccessDenied: Access Denied; s3://trail/AWSLogs/2/: listing: AccessDenied: Access Denied"
        );
        let many: Vec<ListError> = (1..=8).map(denied).collect();
        let s = denied_summary(&many);
        assert!(s.starts_with("8 listing(s) denied"), "{s}");
        assert!(s.contains("AWSLogs/5/") && !s.contains("AWSLogs/6/"), "{s}");
        assert!(s.ends_with("; and 3 more"), "{s}");
    }

    #[test]
    fn a_failed_object_is_fetched_again_in_its_place() {
        let p = Progress::load("t", Checkpoints::new(None)).expect("progress");
        for k in ["a1", "a2", "a3"] {
            p.issue("A/", k);
        }
        p.fail("A/", "a2");
        p.ack("A/", "a1");
        p.ack("A/", "a3");
        assert_eq!(
            p.snapshot().done.get("A/").map(String::as_str),
            Some("a1"),
            "the checkpoint stops before the failed object"
        );
        assert_eq!(p.failed_count(), 1);
        let again = p.take_failed();
        assert_eq!(again, [("A/".to_string(), "a2".to_string())]);
        assert_eq!(p.failed_count(), 0);
        // Fetched again: issued in its old place, the listing does not go back.
        p.issue("A/", "a2");
        assert_eq!(p.start_after("A/").as_deref(), Some("a3"));
        p.ack("A/", "a2");
        assert_eq!(p.snapshot().done.get("A/").map(String::as_str), Some("a3"));
    }

    #[test]
    fn body_retry_follows_the_connection() {
        use aws_sdk_s3::config::retry::RetryConfig;
        let c = RetryConfig::standard()
            .with_max_attempts(5)
            .with_initial_backoff(Duration::from_millis(10));
        assert_eq!(body_retry(Some(&c)), (5, Duration::from_millis(10)));
        assert_eq!(body_retry(None), (3, Duration::from_secs(1)));
        let once = RetryConfig::standard().with_max_attempts(1);
        assert_eq!(body_retry(Some(&once)).0, 1);
    }

    #[test]
    fn checkpoint_moves_over_the_acknowledged_run_only() {
        let p = Progress::load("t", Checkpoints::new(None)).expect("progress");
        for k in ["a1", "a2", "a3"] {
            p.issue("A/", k);
        }
        p.ack("A/", "a2");
        assert!(p.snapshot().done.is_empty(), "a1 is not done yet");
        p.ack("A/", "a1");
        assert_eq!(p.snapshot().done.get("A/").map(String::as_str), Some("a2"));
        assert_eq!(p.start_after("A/").as_deref(), Some("a3"), "issued wins");
        p.ack("A/", "a3");
        assert_eq!(p.snapshot().done.get("A/").map(String::as_str), Some("a3"));
    }
}
