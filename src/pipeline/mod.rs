//! The pipeline: inputs → reader → workers → in-order sink, over bounded channels.
//!
//! ```text
//!  reader thread ──Work──▶ [bounded] ──▶ N workers ──Done──▶ sink (this thread)
//!   (files, pump)                         inflate, frame,     reorder by seq,
//!        ▲                                parse, match,       write stdout +
//!        └──────────── permits (max_in_flight) ◀──────────────  dead letters
//! ```
//!
//! - **Batches, not records, cross channels**: a [`Work`] unit is a small file, a group
//!   of small local files (up to 32, `reader::GROUP_FILES`, or a chunk's worth of bytes, so thousands
//!   of tiny CloudTrail objects cost a few hundred channel hand-offs, not thousands), a
//!   ~1 MiB chunk of a stream, or an end-of-input marker; a [`Done`] carries one input's
//!   share of a unit: its rendered findings and dead letters and its counters.
//! - **Backpressure and bounded memory**: the reader takes a permit per unit and the sink
//!   returns it after writing the unit's output, so at most `max_in_flight` units exist
//!   at any moment. A slow stdout blocks the sink, which stops returning permits, which
//!   blocks the reader, which stops reading.
//! - **Deterministic output**: units carry sequence numbers; the sink writes them in
//!   order, so findings appear in input order whatever the thread count
//!   (`tests/cli.rs::output_is_independent_of_thread_count`).
//! - **Shutdown**: end of input drains everything; a signal sets `shutdown`, the reader
//!   stops reading, and what is in flight drains before the summary.
//!
//! Decision: decompression, framing, parsing and matching of a unit happen in one
//! worker, in place, because a record borrowed from its buffer (`Record<'a>`) cannot
//! cross a channel without a copy, and per-unit work is coarse enough that the channel
//! cost is noise.

mod reader;
mod worker;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crossbeam_channel::{TryRecvError, bounded, unbounded};

use arrow_array::RecordBatch;

use crate::archive::{ArchiveError, ArchiveWriter, BatchBuilder, PartitionKey};
use crate::decode::{Mode, Position};
use crate::event::KnownPaths;
use crate::rules::live::LiveRules;
use crate::rules::{Level, RulePack};
use crate::sink::rendered::Rendered;
use crate::sink::{Output, SinkError};
use crate::source::{Ack, Feed, Input};
use crate::state::{Emit, KeyHasher, Stage, StateBatch, StateConfig};
use crate::stats::{Counters, RunSummary};

/// Tunables of a run.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Worker threads.
    pub threads: usize,
    /// Longest record kept (`max_record_bytes`, default 16 MiB).
    pub max_record_bytes: usize,
    /// Longest line holding a delivery object or array, or multi-line document.
    pub max_document_bytes: usize,
    /// Largest decompressed size of a file read whole.
    pub max_inflated_bytes: u64,
    /// Target size of a stream chunk.
    pub chunk_bytes: usize,
    /// Units in flight at most.
    pub max_in_flight: usize,
    /// Embed the record in findings.
    pub include_record: bool,
    /// Stderr warnings shown per input before they are only counted.
    pub warnings_per_input: u64,
    /// `tp_partition` of archived rows (the source's name); `None`: no archive.
    pub archive_partition: Option<String>,
    /// The field whose value is `tp_index` (default: `recipientAccountId`, else
    /// `userIdentity.accountId`).
    pub archive_tp_index: Option<crate::event::FieldPath>,
    /// The pre-storage filter.
    pub filter: Option<Arc<crate::filter::RecordFilter>>,
    /// Filtered records skip detection too (`filter_applies_to: both`).
    pub filter_applies_to_detection: bool,
    /// `--since/--until` in event-time microseconds, half-open: records outside are
    /// filtered (neither matched nor archived).
    pub time_range: Option<(i64, i64)>,
    /// Dedup, correlation and suppression settings.
    pub state: StateConfig,
    /// Set by [`run`]: workers compute what the stateful stage needs.
    pub stateful: bool,
    /// Set by [`run`]: workers compute dedup keys.
    pub dedup: bool,
    /// The run's keyed hasher (set by [`run`]).
    pub key_hasher: KeyHasher,
    /// Log a one-line status (records, records/s, findings) this often (`--progress`
    /// when stderr is not a terminal).
    pub status_every: Option<std::time::Duration>,
    /// Show a progress line (indicatif) on stderr, which is a terminal: records,
    /// records/s, findings, event-time lag.
    pub progress_bar: bool,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        PipelineConfig {
            threads,
            max_record_bytes: 16 << 20,
            max_document_bytes: 256 << 20,
            max_inflated_bytes: 1 << 30,
            chunk_bytes: 1 << 20,
            max_in_flight: 4 * threads + 4,
            include_record: true,
            warnings_per_input: 10,
            archive_partition: None,
            archive_tp_index: None,
            filter: None,
            filter_applies_to_detection: false,
            time_range: None,
            state: StateConfig::default(),
            stateful: false,
            dedup: false,
            key_hasher: KeyHasher::new(),
            status_every: None,
            progress_bar: false,
        }
    }
}

/// Why an input did not read to its end.
#[derive(Debug, Clone)]
pub struct InputFailure {
    /// What happened.
    pub message: String,
    /// True for I/O errors (exit code 3); false for damaged content such as a
    /// truncated gzip stream, whose complete records were still processed.
    pub io: bool,
}

impl InputFailure {
    fn io(message: String) -> Self {
        InputFailure { message, io: true }
    }

    fn content(message: String) -> Self {
        InputFailure { message, io: false }
    }
}

/// A unit of work, in input order.
#[derive(Debug)]
enum Work {
    /// A small file, read and decoded by the worker, or a fetched object's bytes.
    File {
        seq: u64,
        input: Arc<Input>,
        body: Option<Vec<u8>>,
        ack: Option<Ack>,
    },
    /// A batch of queue messages of one partition, each decoded and framed on its own.
    Messages {
        seq: u64,
        input: Arc<Input>,
        messages: Vec<crate::source::Message>,
        ack: Option<Ack>,
    },
    /// A decompressed chunk of a stream, cut at a line boundary.
    Chunk {
        seq: u64,
        input: Arc<Input>,
        bytes: Vec<u8>,
        mode: Mode,
        base: Position,
    },
    /// A line longer than `limit`: its first bytes and its length.
    Oversized {
        seq: u64,
        input: Arc<Input>,
        head: Vec<u8>,
        len: u64,
        pos: Position,
        limit: usize,
    },
    /// Small local files read one after another by one worker, each its own input
    /// with its own sequence number.
    Group(Vec<GroupedFile>),
    /// End of a streamed input.
    End {
        seq: u64,
        input: Arc<Input>,
        bytes_in: u64,
        failure: Option<InputFailure>,
        ack: Option<Ack>,
    },
}

/// One file of a [`Work::Group`]: read from its path by the worker.
#[derive(Debug)]
struct GroupedFile {
    seq: u64,
    input: Arc<Input>,
    ack: Option<Ack>,
}

/// A unit with the rules it is matched against (stamped by the reader).
#[derive(Debug)]
struct Unit {
    pack: Arc<RulePack>,
    work: Work,
}

/// A malformed record, for the stderr warning.
#[derive(Debug)]
struct Note {
    rel: u64,
    pos: Position,
    reason: String,
}

/// The output of one unit.
#[derive(Debug)]
struct Done {
    seq: u64,
    input: Arc<Input>,
    findings: Rendered,
    dead: Rendered,
    notes: Vec<Note>,
    notes_dropped: u64,
    counters: Counters,
    /// Set when the unit ends its input: raw bytes read and the failure, if any.
    end: Option<(u64, Option<InputFailure>)>,
    /// Rows to archive while the unit is processed: (tp_index, day number, key, the
    /// rows' record indices, rows).
    archive_rows: Vec<(String, i64, PartitionKey, Vec<u64>, BatchBuilder)>,
    /// The finished archive batches of the unit, with each row's record index.
    archive: Vec<(PartitionKey, RecordBatch, Vec<u64>)>,
    /// What the stateful stage needs.
    state: StateBatch,
    /// Fired once the unit's input is done (the unit ends its input).
    ack: Option<Ack>,
    /// The rules the unit was matched against.
    pack: Option<Arc<RulePack>>,
    /// The unit's permit goes back once this is written (false for all but the last
    /// input of a [`Work::Group`]).
    returns_permit: bool,
}

impl Done {
    fn new(seq: u64, input: Arc<Input>) -> Self {
        Done {
            seq,
            input,
            findings: Rendered::default(),
            dead: Rendered::default(),
            notes: Vec::new(),
            notes_dropped: 0,
            counters: Counters::default(),
            end: None,
            archive_rows: Vec::new(),
            archive: Vec::new(),
            state: StateBatch::default(),
            ack: None,
            pack: None,
            returns_permit: true,
        }
    }

    /// The builder of a partition's rows (made on first use; a unit rarely has more
    /// than a few partitions, and nothing is allocated for one already seen).
    fn archive_builder(&mut self, index: &str, micros: i64) -> (&mut Vec<u64>, &mut BatchBuilder) {
        // All rows of a unit belong to one input, so to one source's partition.
        let day = micros.div_euclid(86_400_000_000);
        let i = match self
            .archive_rows
            .iter()
            .position(|(ix, d, _, _, _)| *d == day && ix == index)
        {
            Some(i) => i,
            None => {
                let key = PartitionKey {
                    partition: self.input.source.as_deref().map(str::to_string),
                    index: crate::archive::partition_value(index),
                    date: crate::archive::date_of(micros),
                };
                self.archive_rows.push((
                    index.to_string(),
                    day,
                    key,
                    Vec::new(),
                    BatchBuilder::new(),
                ));
                self.archive_rows.len() - 1
            }
        };
        let (_, _, _, rels, b) = &mut self.archive_rows[i];
        (rels, b)
    }

    /// Turns the unit's rows into Arrow batches for the archive thread.
    fn finish_archive(&mut self) {
        for (_, _, key, rels, mut b) in self.archive_rows.drain(..) {
            if !b.is_empty() {
                self.archive.push((key, b.finish(), rels));
            }
        }
    }
}

/// A run that could not finish writing its output.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Findings or dead letters could not be written.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The archive could not be written.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
}

/// What a run produced besides its output.
#[derive(Debug)]
pub struct RunOutcome {
    /// Counters and timings.
    pub summary: RunSummary,
    /// Inputs that failed with an I/O error, with the message.
    pub failed_inputs: Vec<(String, String)>,
    /// The highest level among the findings written.
    pub max_level: Option<Level>,
    /// Counters of the stateful stage (`None` when it did not run).
    pub state: Option<crate::state::StageStats>,
    /// The rules in force at the end (another pack than the first after a reload).
    pub pack: Arc<RulePack>,
}

/// Per-input state of the in-order sink.
#[derive(Default)]
struct InputCursor {
    id: Option<u32>,
    records: u64,
    warned: u64,
    unshown: u64,
}

impl InputCursor {
    /// Starts counting afresh when the units move on to the next input.
    fn enter(&mut self, id: u32) {
        if self.id != Some(id) {
            *self = InputCursor {
                id: Some(id),
                ..InputCursor::default()
            };
        }
    }
}

/// What one in-memory input gave the worker stage ([`evaluate_bytes`]).
#[derive(Debug, Default)]
pub struct BufferOutcome {
    /// The input's counters (records in, kept, dead-lettered, …).
    pub counters: Counters,
    /// Finding lines, in input order.
    pub findings: Vec<u8>,
    /// Dead-letter lines, in input order.
    pub dead_letters: Vec<u8>,
    /// Why the input did not decode to its end (a damaged or oversized gzip stream).
    pub failure: Option<String>,
}

/// Runs one in-memory input (compressed or not, in any framing) through a worker on
/// the calling thread: decompression, framing, parsing, the filter and rule matching,
/// exactly as a unit of [`run`] is processed, without the threads, the stateful stage
/// and the sinks. For fuzzing and for embedding the matcher in another program.
pub fn evaluate_bytes(bytes: Vec<u8>, pack: Arc<RulePack>, cfg: &PipelineConfig) -> BufferOutcome {
    let input = Arc::new(Input::remote("memory:".into()));
    let mut w = worker::Worker::new(pack.clone(), Arc::new(KnownPaths::new()), cfg.clone(), true);
    let unit = Unit {
        pack,
        work: Work::File {
            seq: 1,
            input,
            body: Some(bytes),
            ack: None,
        },
    };
    let mut out = BufferOutcome::default();
    for d in w.process(unit) {
        out.counters.merge(&d.counters);
        let base = out.counters.records_in - d.counters.records_in;
        for i in 0..d.findings.len() {
            d.findings.line_into(i, base, &mut out.findings);
        }
        for i in 0..d.dead.len() {
            d.dead.line_into(i, base, &mut out.dead_letters);
        }
        if let Some((_, Some(f))) = d.end {
            out.failure = Some(f.message);
        }
    }
    out
}

/// Runs the pipeline over `inputs` to the end (or until `shutdown` is set) and
/// writes findings and dead letters to `output`.
pub fn run(
    feed: impl Into<Feed>,
    pack: Arc<RulePack>,
    output: Output,
    archive: Option<ArchiveWriter>,
    cfg: &PipelineConfig,
    shutdown: Arc<AtomicBool>,
) -> Result<RunOutcome, PipelineError> {
    let live = Arc::new(LiveRules::new(pack));
    run_live(feed, live, output, archive, cfg, shutdown)
}

/// [`run`] with rules that may be replaced while it runs ([`LiveRules`]): each unit
/// is matched against the pack current when the reader made it, and the sink switches
/// routes, counters and the stateful stage over when the first unit of a new pack
/// reaches it.
pub fn run_live(
    feed: impl Into<Feed>,
    live: Arc<LiveRules>,
    mut output: Output,
    archive: Option<ArchiveWriter>,
    cfg: &PipelineConfig,
    shutdown: Arc<AtomicBool>,
) -> Result<RunOutcome, PipelineError> {
    let start = Instant::now();
    let cache = live.snapshot();
    let mut pack = live.current(&mut cache.clone());
    let mut cfg = cfg.clone();
    let mut stage = Stage::new(&pack, &cfg.state, cfg.key_hasher.clone());
    cfg.stateful = stage.is_some();
    cfg.dedup = stage.as_ref().is_some_and(Stage::dedups);
    let cfg = &cfg;
    let mut emit = Emit::default();
    let threads = cfg.threads.max(1);
    let in_flight = cfg.max_in_flight.max(threads + 1);
    let (work_tx, work_rx) = bounded::<Unit>(threads * 2);
    let (done_tx, done_rx) = unbounded::<Vec<Done>>();
    let (permit_tx, permit_rx) = bounded::<()>(in_flight);
    for _ in 0..in_flight {
        let _ = permit_tx.send(());
    }
    let feed = feed.into();
    output.bind(&pack);
    let known = Arc::new(KnownPaths::new());
    let keep_dead = output.keeps_dead_letters();

    let mut summary = RunSummary::default();
    let mut failed_inputs = Vec::new();
    let mut max_level: Option<Level> = None;
    let mut sink_error = None;
    let archiving = archive.is_some();
    let (archive_tx, archive_rx) = bounded::<ArchiveMsg>(4);
    let mut archive_result: Option<Result<crate::archive::ArchiveStats, ArchiveError>> = None;

    std::thread::scope(|s| {
        // The archive thread: writes batches as they come, finishes files by age, and
        // fires an input's acknowledgement once every file holding its rows is finished.
        let archive_thread = archive.map(|mut w| {
            let stop = shutdown.clone();
            w.stop_waiting_on(stop.clone());
            s.spawn(move || archive_loop(w, &archive_rx, &stop))
        });
        let archive_tx = archive_tx;
        let reader = reader::Reader {
            work: work_tx,
            permits: permit_rx,
            shutdown: shutdown.clone(),
            cfg: cfg.clone(),
            seq: 0,
            rules: live.clone(),
            cache,
            group: Vec::new(),
            group_bytes: 0,
        };
        s.spawn(move || reader.run(feed));
        for _ in 0..threads {
            let rx = work_rx.clone();
            let tx = done_tx.clone();
            let mut w = worker::Worker::new(pack.clone(), known.clone(), cfg.clone(), keep_dead);
            s.spawn(move || {
                for work in rx.iter() {
                    if tx.send(w.process(work)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(work_rx);
        drop(done_tx);

        let mut pending: BTreeMap<u64, Done> = BTreeMap::new();
        let mut next = 1u64;
        let mut cur = InputCursor::default();
        let mut writing = true;
        let mut status = cfg.status_every.map(Status::new);
        let mut bar = cfg.progress_bar.then(Bar::new);
        loop {
            let msg = match done_rx.try_recv() {
                Ok(d) => Some(d),
                Err(TryRecvError::Empty) => {
                    if writing && let Err(e) = output.flush() {
                        sink_error = Some(e);
                        writing = false;
                        shutdown.store(true, Ordering::Relaxed);
                    }
                    match status.as_mut() {
                        // Idle: still say so every period.
                        Some(st) => loop {
                            match done_rx.recv_timeout(st.every) {
                                Ok(d) => break Some(d),
                                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                                    st.tick(
                                        &summary,
                                        stage.as_ref().and_then(Stage::newest_event_time),
                                    );
                                }
                                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                                    break None;
                                }
                            }
                        },
                        None => done_rx.recv().ok(),
                    }
                }
                Err(TryRecvError::Disconnected) => None,
            };
            let Some(ds) = msg else { break };
            if let Some(st) = status.as_mut() {
                st.tick(&summary, stage.as_ref().and_then(Stage::newest_event_time));
            }
            for d in ds {
                pending.insert(d.seq, d);
            }
            if crate::telemetry::enabled() {
                // Units held by the pipeline (reading, queued, in workers, waiting
                // to be written) and finished ones waiting for their turn.
                crate::telemetry::record_channel(
                    "units_in_flight",
                    in_flight.saturating_sub(permit_tx.len()),
                    in_flight,
                );
                crate::telemetry::record_channel("done_reorder", pending.len(), in_flight);
            }
            while let Some(mut d) = pending.remove(&next) {
                next += 1;
                if let Some(p) = d.pack.clone()
                    && !Arc::ptr_eq(&p, &pack)
                {
                    if let Some(st) = stage.as_mut() {
                        let (kept, fresh) = st.rebind(&pack, &p, &mut emit);
                        tracing::debug!(kept, fresh, "correlations re-bound to the reloaded rules");
                        if writing
                            && !emit.buf.is_empty()
                            && let Err(e) = output.write_emit(&emit)
                        {
                            sink_error = Some(e);
                            writing = false;
                            shutdown.store(true, Ordering::Relaxed);
                        }
                        count_emitted(&emit, &pack, &mut summary, &mut max_level);
                        emit.clear();
                    } else {
                        stage = Stage::new(&p, &cfg.state, cfg.key_hasher.clone());
                    }
                    output.bind(&p);
                    summary.counters.renumber(&pack, &p, &mut summary.retired);
                    pack = p;
                }
                cur.enter(d.input.id);
                if let Some(st) = stage.as_mut() {
                    apply_state(st, &mut d, cur.records, &mut emit);
                }
                if writing
                    && let Err(e) = write_done(
                        &mut output,
                        &d,
                        &mut cur,
                        cfg,
                        stage.is_some().then_some(&emit),
                    )
                {
                    sink_error = Some(e);
                    writing = false;
                    shutdown.store(true, Ordering::Relaxed);
                }
                account(
                    &d,
                    &pack,
                    &mut summary,
                    &mut failed_inputs,
                    &mut max_level,
                    &mut cur,
                );
                count_emitted(&emit, &pack, &mut summary, &mut max_level);
                emit.clear();
                if let Some(b) = bar.as_mut() {
                    b.update(&summary, stage.as_ref().and_then(Stage::newest_event_time));
                }
                if archiving && !d.archive.is_empty() {
                    let batches = std::mem::take(&mut d.archive)
                        .into_iter()
                        .map(|(k, b, _)| (k, b))
                        .collect();
                    if crate::telemetry::enabled() {
                        crate::telemetry::record_channel(
                            "archive",
                            archive_tx.len(),
                            archive_tx.capacity().unwrap_or(0),
                        );
                    }
                    let _ = archive_tx.send(ArchiveMsg::Batches(batches));
                }
                if let Some(ack) = d.ack.take() {
                    // Findings reach the sink before the source lets go of the input;
                    // an unwritable sink never acknowledges.
                    if writing && let Err(e) = output.flush() {
                        sink_error = Some(e);
                        writing = false;
                        shutdown.store(true, Ordering::Relaxed);
                    }
                    if writing {
                        // Kafka sinks hold their parts until their deliveries catch up.
                        let ack = output.hold(ack);
                        if archiving {
                            let _ = archive_tx.send(ArchiveMsg::Ack(ack));
                        } else {
                            ack.fire();
                        }
                    }
                }
                if d.returns_permit {
                    let _ = permit_tx.send(());
                }
            }
        }
        if let Some(st) = stage.as_mut() {
            st.finish(&mut emit);
            if writing
                && !emit.buf.is_empty()
                && let Err(e) = output.write_emit(&emit)
            {
                sink_error = Some(e);
            }
            count_emitted(&emit, &pack, &mut summary, &mut max_level);
            emit.clear();
        }
        if let Some(b) = bar.take() {
            b.bar.finish_and_clear();
        }
        drop(archive_tx);
        if let Some(t) = archive_thread {
            archive_result = Some(t.join().unwrap_or_else(|_| {
                Err(ArchiveError::Parquet {
                    path: Default::default(),
                    message: "archive thread panicked".into(),
                })
            }));
        }
    });
    match archive_result {
        Some(Ok(stats)) => {
            summary.records_archived = Some(stats.rows);
            summary.archive_files = stats.files;
        }
        Some(Err(e)) => return Err(e.into()),
        None => {}
    }

    if sink_error.is_none() {
        // Files fsynced, Kafka deliveries awaited (their held acks fire meanwhile).
        match output.finish() {
            Ok(reports) => summary.sinks = reports,
            Err(SinkError::Closed) => {}
            Err(e) => return Err(e.into()),
        }
    }
    summary.elapsed = start.elapsed();
    summary.interrupted = shutdown.load(Ordering::Relaxed);
    match sink_error {
        Some(SinkError::Closed) | None => Ok(RunOutcome {
            summary,
            failed_inputs,
            max_level,
            state: stage.as_ref().map(Stage::stats),
            pack,
        }),
        Some(e) => Err(e.into()),
    }
}

/// What the sink sends the archive thread.
enum ArchiveMsg {
    /// Rows to write.
    Batches(Vec<(PartitionKey, RecordBatch)>),
    /// An input whose rows were all sent before this message.
    Ack(Ack),
}

/// The archive thread's loop. Acknowledgements wait until every file that was open
/// when they arrived (and so may hold their rows) is finished.
fn archive_loop(
    mut w: ArchiveWriter,
    rx: &crossbeam_channel::Receiver<ArchiveMsg>,
    stop: &AtomicBool,
) -> Result<crate::archive::ArchiveStats, ArchiveError> {
    let mut pending: std::collections::VecDeque<(u64, Ack)> = Default::default();
    let fail = |e: ArchiveError| {
        stop.store(true, Ordering::Relaxed);
        // Keep draining so the sink never blocks on a dead writer; nothing is acked.
        for _ in rx.iter() {}
        Err(e)
    };
    loop {
        match rx.recv_timeout(std::time::Duration::from_secs(1)) {
            Ok(ArchiveMsg::Batches(batches)) => {
                for (key, batch) in &batches {
                    if let Err(e) = w.write(key, batch) {
                        return fail(e);
                    }
                }
            }
            Ok(ArchiveMsg::Ack(ack)) => pending.push_back((w.files_opened(), ack)),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        }
        // Files close by age even while rows keep coming.
        if let Err(e) = w.finish_aged() {
            return fail(e);
        }
        let oldest = w.oldest_open();
        while pending
            .front()
            .is_some_and(|(barrier, _)| oldest.is_none_or(|o| o > *barrier))
        {
            if let Some((_, ack)) = pending.pop_front() {
                ack.fire();
            }
        }
    }
    let stats = w.close()?;
    for (_, ack) in pending {
        ack.fire();
    }
    Ok(stats)
}

fn write_done(
    out: &mut Output,
    d: &Done,
    cur: &mut InputCursor,
    cfg: &PipelineConfig,
    emit: Option<&Emit>,
) -> Result<(), SinkError> {
    match emit {
        // The stage wrote the unit's surviving findings and its own into `emit`.
        Some(e) => out.write_emit(e)?,
        None => out.write_findings(&d.findings, cur.records)?,
    }
    out.write_dead_letters(&d.dead, cur.records)?;
    for n in &d.notes {
        if cur.warned < cfg.warnings_per_input {
            cur.warned += 1;
            tracing::warn!(
                input = %d.input.name,
                record_index = cur.records + n.rel,
                line = n.pos.line,
                byte_offset = n.pos.offset,
                "malformed record: {}",
                n.reason
            );
        } else {
            cur.unshown += 1;
        }
    }
    cur.unshown += d.notes_dropped;
    Ok(())
}

/// Runs the stateful stage over a unit: drops duplicates (findings, contributions,
/// archive rows) and moves them from kept to deduplicated, applies suppression, feeds
/// correlations. The unit's surviving findings and the stage's own go to `emit`, in
/// that order.
fn apply_state(st: &mut Stage, d: &mut Done, base: u64, emit: &mut Emit) {
    let input_json: Arc<str> = d.input.name_json.as_str().into();
    let (dups, dropped) = st.run_unit(
        &mut d.state,
        &d.findings,
        (d.input.id, &input_json),
        base,
        emit,
    );
    for r in dropped {
        uncount(&mut d.counters, r);
    }
    if dups.is_empty() {
        return;
    }
    let n = dups.len() as u64;
    d.counters.records_kept -= n;
    d.counters.records_deduplicated += n;
    for (_, batch, rels) in &mut d.archive {
        if rels.iter().any(|r| dups.binary_search(r).is_ok()) {
            let mask: arrow_array::BooleanArray = rels
                .iter()
                .map(|r| Some(dups.binary_search(r).is_err()))
                .collect();
            if let Ok(b) = arrow_select::filter::filter_record_batch(batch, &mask) {
                *batch = b;
            }
            rels.retain(|r| dups.binary_search(r).is_err());
        }
    }
    d.archive.retain(|(_, b, _)| b.num_rows() > 0);
}

/// The periodic status line of `--progress` without a terminal.
/// How many seconds the newest event time seen (µs) is behind the clock.
fn event_lag_s(newest: Option<i64>) -> Option<i64> {
    newest.map(|t| crate::archive::now_micros().saturating_sub(t).max(0) / 1_000_000)
}

fn format_lag(s: i64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(s as u64)).to_string()
}

/// The progress line on a terminal.
struct Bar {
    bar: indicatif::ProgressBar,
    last: std::time::Instant,
    started: std::time::Instant,
}

impl Bar {
    fn new() -> Self {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        let now = std::time::Instant::now();
        Bar {
            bar,
            last: now,
            started: now,
        }
    }

    /// Redraws at most ten times a second.
    fn update(&mut self, summary: &RunSummary, newest: Option<i64>) {
        if self.last.elapsed() < std::time::Duration::from_millis(100) {
            return;
        }
        self.last = std::time::Instant::now();
        let c = &summary.counters;
        let rate = c.records_in as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        let lag = event_lag_s(newest)
            .map(|s| format!(", event time lag {}", format_lag(s)))
            .unwrap_or_default();
        self.bar.set_message(format!(
            "{} records ({:.0}/s), {} findings, {} dead-lettered{lag}",
            c.records_in,
            rate,
            c.findings(),
            c.records_dead_lettered
        ));
    }
}

struct Status {
    every: std::time::Duration,
    last: std::time::Instant,
    last_records: u64,
}

impl Status {
    fn new(every: std::time::Duration) -> Self {
        Status {
            every,
            last: std::time::Instant::now(),
            last_records: 0,
        }
    }

    /// Logs the status when a period has passed since the last line.
    /// `newest` is the newest event time seen (µs), for the lag: how far the records
    /// being read are behind the wall clock.
    fn tick(&mut self, summary: &RunSummary, newest: Option<i64>) {
        let since = self.last.elapsed();
        if since < self.every {
            return;
        }
        let c = &summary.counters;
        let rate = (c.records_in - self.last_records) as f64 / since.as_secs_f64().max(1e-9);
        let lag_s = event_lag_s(newest);
        let lag = lag_s.map_or_else(|| "-".to_string(), format_lag);
        tracing::info!(
            records_in = c.records_in,
            records_per_s = rate.round() as u64,
            findings = c.findings(),
            dead_lettered = c.records_dead_lettered,
            event_lag_s = lag_s,
            "status: {} records ({:.0}/s), {} findings, event time lag {}",
            c.records_in,
            rate,
            c.findings(),
            lag
        );
        self.last = std::time::Instant::now();
        self.last_records = c.records_in;
    }
}

fn uncount(c: &mut Counters, rule: u32) {
    if let Some(n) = c.findings_by_rule.get_mut(rule as usize) {
        *n = n.saturating_sub(1);
    }
}

/// Counts the stage's own findings (correlations, alarms, suppression summaries).
fn count_emitted(
    emit: &Emit,
    pack: &RulePack,
    summary: &mut RunSummary,
    max_level: &mut Option<Level>,
) {
    for &r in &emit.rules {
        summary.counters.add_finding(r);
        crate::telemetry::record_findings(pack, r, 1);
        if let Some(rule) = pack.rules().get(r as usize) {
            *max_level = (*max_level).max(Some(rule.meta.level));
        }
    }
}

fn account(
    d: &Done,
    pack: &RulePack,
    summary: &mut RunSummary,
    failed: &mut Vec<(String, String)>,
    max_level: &mut Option<Level>,
    cur: &mut InputCursor,
) {
    cur.records += d.counters.records_in;
    summary.counters.merge(&d.counters);
    if crate::telemetry::enabled() {
        let label = match &d.input.source {
            Some(s) => s.as_ref(),
            None if matches!(d.input.kind, crate::source::InputKind::Stdin) => "stdin",
            None => "files",
        };
        let end = d
            .end
            .as_ref()
            .map(|(b, f)| (*b, f.as_ref().is_some_and(|f| f.io)));
        crate::telemetry::record_unit(label, &d.counters, end, pack);
    }
    if let Some(src) = &d.input.source {
        let t = summary.by_source.entry(src.clone()).or_default();
        t.add(&d.counters);
        if let Some((bytes_in, failure)) = &d.end {
            t.inputs += 1;
            t.bytes_in += bytes_in;
            t.inputs_failed += u64::from(failure.as_ref().is_some_and(|f| f.io));
        }
    }
    for (i, n) in d.counters.findings_by_rule.iter().enumerate() {
        if *n > 0
            && let Some(r) = pack.rules().get(i)
        {
            *max_level = (*max_level).max(Some(r.meta.level));
        }
    }
    if let Some((bytes_in, failure)) = &d.end {
        summary.inputs += 1;
        summary.bytes_in += bytes_in;
        if cur.unshown > 0 {
            tracing::warn!(input = %d.input.name, "{} more malformed records not shown", cur.unshown);
            cur.unshown = 0;
        }
        if let Some(f) = failure {
            if f.io {
                summary.inputs_failed += 1;
                tracing::error!(input = %d.input.name, "input could not be read to its end: {}", f.message);
                failed.push((d.input.name.clone(), f.message.clone()));
            } else {
                tracing::warn!(input = %d.input.name, "{}; the complete records before the damage were processed", f.message);
            }
        }
    }
}
