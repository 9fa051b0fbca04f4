//! The reader thread: inputs → [`Work`] units in input order, each with a sequence number.
//!
//! Small files become one [`Work::File`] each (a worker reads, inflates and frames it);
//! consecutive small local files travel together as a [`Work::Group`] of up to
//! [`GROUP_FILES`] files or `chunk_bytes` of input, each file still its own input with
//! its own sequence number, so a directory of tiny CloudTrail objects costs one channel
//! hand-off, one wake-up and one permit per group instead of per object.
//! Large files and stdin are cut into [`Work::Chunk`]s at line boundaries. A plain large
//! file (or stdin redirected from one) is read here, block by block; a pipe, a terminal
//! or a gzip stream goes through a pump thread, and its chunks are about 1 MiB each, or
//! whatever complete lines arrived once the oldest of them has waited 10 ms (so a steady
//! trickle is not held until a megabyte has gathered, and an idle stream is flushed at
//! once). A line longer than `max_record_bytes` is never held whole: its first 64 KiB
//! become a [`Work::Oversized`] dead letter and the rest is skipped.
//!
//! Every unit takes a permit before it is sent; the sink returns the permit once it has
//! written the unit's output. Permits bound the work in flight, so memory stays flat
//! however large the input and however slow the sink.

use std::fs::File;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::{GroupedFile, InputFailure, PipelineConfig, Work};
use crate::decode::{Mode, Position, detect_mode, detect_mode_partial, is_gzip, scan};
use crate::sink::dead_letter::MAX_RAW;
use crate::source::file::WHOLE_FILE_MAX;
use crate::source::stdin::{self as pump, PumpMsg};
use crate::source::{Ack, Arrival, Feed, Input, InputKind};

/// The longest a complete line waits in a partial batch.
pub const FLUSH_AFTER: Duration = Duration::from_millis(10);

/// Small local files in one [`Work::Group`] at most.
pub const GROUP_FILES: usize = 32;

pub(super) struct Reader {
    pub work: Sender<super::Unit>,
    /// The rules units are stamped with (hot reload swaps them between units).
    pub rules: Arc<crate::rules::live::LiveRules>,
    pub cache: crate::rules::live::Cached,
    pub permits: Receiver<()>,
    pub shutdown: Arc<AtomicBool>,
    pub cfg: PipelineConfig,
    pub seq: u64,
    /// Small local files waiting to be sent as one group, and their size on disk.
    pub group: Vec<GroupedFile>,
    pub group_bytes: u64,
}

impl Reader {
    /// Sends `w` once a permit is free (after any group waiting, which comes first in
    /// input order); false if the pipeline is gone.
    fn send(&mut self, w: Work) -> bool {
        if !self.flush_group() {
            return false;
        }
        self.send_unit(w, 1)
    }

    /// Sends the waiting group, if any.
    fn flush_group(&mut self) -> bool {
        if self.group.is_empty() {
            return true;
        }
        let files = std::mem::take(&mut self.group);
        self.group_bytes = 0;
        let n = files.len() as u64;
        self.send_unit(Work::Group(files), n)
    }

    /// Adds a small local file to the waiting group; sends the group when it is full.
    fn group_file(&mut self, input: Arc<Input>, len: u64, ack: Option<Ack>) -> bool {
        let seq = self.next_seq();
        self.group.push(GroupedFile { seq, input, ack });
        self.group_bytes += len;
        if self.group.len() >= GROUP_FILES || self.group_bytes >= self.cfg.chunk_bytes as u64 {
            return self.flush_group();
        }
        true
    }

    /// Sends a unit holding `seqs` sequence numbers once a permit is free.
    fn send_unit(&mut self, w: Work, seqs: u64) -> bool {
        if self.permits.recv().is_err() {
            return false;
        }
        self.seq += seqs;
        if crate::telemetry::enabled() {
            let cap = self.work.capacity().unwrap_or(0);
            crate::telemetry::record_channel("work_queue", self.work.len(), cap);
        }
        let pack = self.rules.current(&mut self.cache);
        self.work.send(super::Unit { pack, work: w }).is_ok()
    }

    /// The sequence number of the next input's first unit (after the waiting group).
    fn next_seq(&self) -> u64 {
        self.seq + self.group.len() as u64 + 1
    }

    fn stopped(&self) -> bool {
        self.shutdown.load(Ordering::Relaxed)
    }

    pub fn run(mut self, feed: Feed) {
        match feed {
            Feed::Inputs(inputs) => {
                for input in inputs {
                    if self.stopped() || !self.one(Arrival::local(input), true) {
                        return;
                    }
                }
                self.flush_group();
            }
            Feed::Live(mut rx) => {
                // Sources stop sending (and drop their senders) on shutdown.
                let mut id = 0u32;
                while let Some(mut a) = rx.blocking_recv() {
                    a.input.id = id;
                    id = id.wrapping_add(1);
                    if self.stopped() || !self.one(a, false) {
                        break;
                    }
                }
            }
        }
    }

    /// Sends one input's units (a small file joins the waiting group when `group`);
    /// false if the pipeline is gone.
    fn one(&mut self, a: Arrival, group: bool) -> bool {
        let input = Arc::new(a.input);
        let ack = a.ack;
        if let Some(e) = a.error {
            return self.end(&input, 0, Some(InputFailure::io(e)), None);
        }
        if !a.messages.is_empty() {
            let seq = self.next_seq();
            return self.send(Work::Messages {
                seq,
                input,
                messages: a.messages,
                ack,
            });
        }
        match a.body {
            Some(bytes) if bytes.len() as u64 <= WHOLE_FILE_MAX => {
                let seq = self.next_seq();
                self.send(Work::File {
                    seq,
                    input,
                    body: Some(bytes),
                    ack,
                })
            }
            Some(bytes) => {
                let p = pump::spawn(Box::new(std::io::Cursor::new(bytes)));
                self.stream(&input, p, ack)
            }
            None => match &input.kind {
                InputKind::Stdin => match stdin_file() {
                    // `trailhound < file`: reads never block, so no pump is needed.
                    Some(f) => self.large_file(&input, f, ack),
                    None => {
                        let p = pump::spawn(Box::new(std::io::stdin()));
                        self.stream(&input, p, ack)
                    }
                },
                InputKind::File(path) => match std::fs::metadata(path) {
                    Ok(m) if group && m.len() <= WHOLE_FILE_MAX => {
                        self.group_file(input.clone(), m.len(), ack)
                    }
                    Ok(m) if m.len() <= WHOLE_FILE_MAX => {
                        let seq = self.next_seq();
                        self.send(Work::File {
                            seq,
                            input: input.clone(),
                            body: None,
                            ack,
                        })
                    }
                    Ok(_) => match File::open(path) {
                        Ok(f) => self.large_file(&input, f, ack),
                        Err(e) => self.end(&input, 0, Some(InputFailure::io(e.to_string())), ack),
                    },
                    Err(e) => self.end(&input, 0, Some(InputFailure::io(e.to_string())), ack),
                },
                InputKind::Remote => {
                    let f = InputFailure::io("the source delivered no bytes".into());
                    self.end(&input, 0, Some(f), ack)
                }
            },
        }
    }

    fn end(
        &mut self,
        input: &Arc<Input>,
        bytes_in: u64,
        failure: Option<InputFailure>,
        ack: Option<Ack>,
    ) -> bool {
        let seq = self.next_seq();
        self.send(Work::End {
            seq,
            input: input.clone(),
            bytes_in,
            failure,
            ack,
        })
    }

    /// A file too large to read whole: gzip is inflated by a pump; a plain file is read
    /// here, each block straight behind the unfinished line the last one left, so the
    /// chunk a worker gets is the buffer the kernel wrote into (a pump would read into a
    /// zeroed block that is then copied behind the tail).
    fn large_file(&mut self, input: &Arc<Input>, mut f: File, ack: Option<Ack>) -> bool {
        use std::io::{Seek, SeekFrom};
        let mut st = StreamState::new();
        let mut head = [0u8; 2];
        // Stdin may start anywhere in its file (`(read -r first; trailhound) < f`).
        let peek = f.stream_position().and_then(|at| {
            let n = (&mut f).take(2).read(&mut head)?;
            Ok((at, n))
        });
        let (at, peeked) = match peek {
            Ok(p) => p,
            Err(e) => return self.end(input, 0, Some(InputFailure::io(e.to_string())), ack),
        };
        let gz = is_gzip(&head[..peeked]);
        if gz || peeked < 2 {
            if let Err(e) = f.seek(SeekFrom::Start(at)) {
                return self.end(input, 0, Some(InputFailure::io(e.to_string())), ack);
            }
            if gz {
                return self.stream(input, pump::spawn(Box::new(f)), ack);
            }
        } else {
            st.pending.extend_from_slice(&head);
        }
        let mut bytes_in = st.pending.len() as u64;
        let block = self.cfg.chunk_bytes.max(64 << 10);
        let mut failure = None;
        while !self.stopped() {
            let mut buf = std::mem::take(&mut st.pending);
            buf.reserve(block);
            // Retries interrupted reads; on an error the bytes read so far are in `buf`.
            let res = (&mut f).take(block as u64).read_to_end(&mut buf);
            match res {
                Ok(0) => {
                    st.pending = buf;
                    break;
                }
                Ok(n) => {
                    bytes_in += n as u64;
                    // `pending` is empty, so `feed` takes the buffer as it is.
                    if !self.feed(input, &mut st, buf) {
                        return false;
                    }
                }
                Err(e) => {
                    st.pending = buf;
                    failure = Some(InputFailure::io(e.to_string()));
                    break;
                }
            }
        }
        self.close_stream(input, st, bytes_in, failure, ack)
    }

    /// Cuts a pumped stream into chunks.
    fn stream(&mut self, input: &Arc<Input>, p: pump::Pump, ack: Option<Ack>) -> bool {
        let mut st = StreamState::new();
        let mut failure = None;
        // When the oldest bytes not yet cut arrived.
        let mut oldest: Option<Instant> = None;
        loop {
            if self.stopped() {
                break;
            }
            let wait = oldest.map_or(FLUSH_AFTER, |t| FLUSH_AFTER.saturating_sub(t.elapsed()));
            match p.rx.recv_timeout(wait) {
                Ok(PumpMsg::Data(block)) => {
                    let at = *oldest.get_or_insert_with(Instant::now);
                    let before = st.base.offset;
                    if !self.feed(input, &mut st, block) {
                        return false;
                    }
                    if st.base.offset != before {
                        // A full chunk was cut: what is left arrived with the last block.
                        oldest = (!st.pending.is_empty()).then(Instant::now);
                    } else if at.elapsed() >= FLUSH_AFTER && st.mode == Some(Mode::Lines) {
                        if !self.cut(input, &mut st, false) {
                            return false;
                        }
                        oldest = None;
                    }
                }
                Ok(PumpMsg::Eof) | Err(RecvTimeoutError::Disconnected) => break,
                Ok(PumpMsg::Failed { message, io }) => {
                    failure = Some(InputFailure { message, io });
                    break;
                }
                Err(RecvTimeoutError::Timeout) => {
                    if st.mode == Some(Mode::Lines) && !self.cut(input, &mut st, false) {
                        return false;
                    }
                    // An unfinished line left over waits for its newline, not the clock.
                    oldest = None;
                }
            }
        }
        let bytes_in = p.bytes_in.load(Ordering::Relaxed);
        self.close_stream(input, st, bytes_in, failure, ack)
    }

    /// The end of a stream: the rest is framed (or, when stopping, only its complete
    /// lines), then the input ends.
    fn close_stream(
        &mut self,
        input: &Arc<Input>,
        mut st: StreamState,
        bytes_in: u64,
        failure: Option<InputFailure>,
        ack: Option<Ack>,
    ) -> bool {
        if self.stopped() {
            // Stop reading: what is complete is processed; an unfinished last line is
            // not a record yet and is left unread.
            if st.mode == Some(Mode::Lines) && !self.cut(input, &mut st, false) {
                return false;
            }
            if !st.pending.is_empty() {
                tracing::info!(
                    input = %input.name,
                    "stopped: {} bytes of an unfinished record left unread",
                    st.pending.len()
                );
                st.pending.clear();
            }
            st.skipping = None;
        } else if !self.finish(input, &mut st) {
            return false;
        }
        // A stream cut short by shutdown is not done: no acknowledgement.
        let ack = if self.stopped() { None } else { ack };
        self.end(input, bytes_in, failure, ack)
    }

    fn feed(&mut self, input: &Arc<Input>, st: &mut StreamState, block: Vec<u8>) -> bool {
        let mut data = block;
        if let Some(sk) = &mut st.skipping {
            match memchr::memchr(b'\n', &data) {
                None => {
                    sk.len += data.len() as u64;
                    return true;
                }
                Some(nl) => {
                    sk.len += nl as u64;
                    let sk = st.skipping.take().unwrap_or_else(|| unreachable!());
                    st.base.offset = sk.pos.offset + sk.len + 1;
                    st.base.line = sk.pos.line + 1;
                    if !self.oversized(input, sk) {
                        return false;
                    }
                    data.drain(..=nl);
                }
            }
        }
        let block_has_nl = st.mode.is_none() && memchr::memchr(b'\n', &data).is_some();
        if st.pending.is_empty() {
            st.pending = data;
        } else {
            st.pending.extend_from_slice(&data);
        }
        if st.mode.is_none() {
            let limit = self.line_limit(&st.pending);
            st.settle_mode(block_has_nl, limit);
        }
        match st.mode {
            Some(Mode::Lines) if st.pending.len() >= self.cfg.chunk_bytes => {
                self.cut(input, st, true)
            }
            Some(Mode::Document) if st.pending.len() > self.cfg.max_document_bytes => {
                // A multi-line document this large cannot be framed in memory.
                let head = st.pending[..MAX_RAW.min(st.pending.len())].to_vec();
                let len = st.pending.len() as u64;
                st.pending = Vec::new();
                st.skipping = None;
                st.mode = Some(Mode::Lines);
                st.skipping = Some(Skip {
                    head,
                    len,
                    pos: st.base,
                });
                true
            }
            _ => true,
        }
    }

    /// Emits the complete lines of `pending`. With `full`, an over-long line without a
    /// newline switches to skipping.
    fn cut(&mut self, input: &Arc<Input>, st: &mut StreamState, full: bool) -> bool {
        let Some(nl) = memchr::memrchr(b'\n', &st.pending) else {
            if full && st.pending.len() > self.line_limit(&st.pending) {
                let head = st.pending[..MAX_RAW].to_vec();
                st.skipping = Some(Skip {
                    head,
                    len: st.pending.len() as u64,
                    pos: st.base,
                });
                st.pending = Vec::new();
            }
            return true;
        };
        let rest = st.pending.split_off(nl + 1);
        let chunk = std::mem::replace(&mut st.pending, rest);
        self.emit(input, st, chunk, Mode::Lines)
    }

    /// The longest line kept: a record line is bounded by `max_record_bytes`, a line
    /// holding a CloudTrail delivery object or an array (whose records are bounded one
    /// by one) by `max_document_bytes`.
    fn line_limit(&self, line: &[u8]) -> usize {
        let first = line.get(scan::skip_ws(line, 0));
        if first == Some(&b'[') || scan::records_array_start(line).is_some() {
            self.cfg.max_document_bytes
        } else {
            self.cfg.max_record_bytes
        }
    }

    fn emit(
        &mut self,
        input: &Arc<Input>,
        st: &mut StreamState,
        chunk: Vec<u8>,
        mode: Mode,
    ) -> bool {
        let base = st.base;
        st.base.offset += chunk.len() as u64;
        st.base.line += memchr::memchr_iter(b'\n', &chunk).count() as u64;
        let seq = self.next_seq();
        self.send(Work::Chunk {
            seq,
            input: input.clone(),
            bytes: chunk,
            mode,
            base,
        })
    }

    /// Sends the dead letter of a line that was too long to keep.
    fn oversized(&mut self, input: &Arc<Input>, sk: Skip) -> bool {
        let seq = self.next_seq();
        self.send(Work::Oversized {
            seq,
            input: input.clone(),
            head: sk.head,
            len: sk.len,
            pos: sk.pos,
            limit: self.cfg.max_record_bytes,
        })
    }

    fn finish(&mut self, input: &Arc<Input>, st: &mut StreamState) -> bool {
        if let Some(sk) = st.skipping.take()
            && !self.oversized(input, sk)
        {
            return false;
        }
        if st.pending.is_empty() {
            return true;
        }
        let mode = st.mode.unwrap_or_else(|| detect_mode(&st.pending));
        let chunk = std::mem::take(&mut st.pending);
        self.emit(input, st, chunk, mode)
    }
}

struct Skip {
    head: Vec<u8>,
    len: u64,
    pos: Position,
}

struct StreamState {
    pending: Vec<u8>,
    base: Position,
    mode: Option<Mode>,
    skipping: Option<Skip>,
    /// Length of `pending` when the mode was last looked for.
    probed: usize,
}

impl StreamState {
    fn new() -> Self {
        StreamState {
            pending: Vec::new(),
            base: Position { offset: 0, line: 1 },
            mode: None,
            skipping: None,
            probed: 0,
        }
    }

    /// Decides the mode once enough of the stream has arrived, after a block was
    /// appended to `pending`. The first value is scanned again only when the block
    /// brought a newline or `pending` has doubled since the last scan, so a first line
    /// that arrives in many blocks costs linear time, not a rescan per block. A first
    /// line longer than `line_limit` is in lines mode whatever it holds: it is then
    /// skipped as over-long instead of being held whole.
    fn settle_mode(&mut self, block_has_nl: bool, line_limit: usize) {
        if self.mode.is_some() {
            return;
        }
        if block_has_nl || self.pending.len() >= self.probed.saturating_mul(2) {
            self.probed = self.pending.len();
            self.mode = mode_if_known(&self.pending);
        }
        if self.mode.is_none() && self.pending.len() > line_limit {
            self.mode = Some(Mode::Lines);
        }
    }
}

/// The stream's mode once enough of it has arrived to tell: a newline, or the end of
/// the first value.
fn mode_if_known(pending: &[u8]) -> Option<Mode> {
    let start = scan::skip_ws(pending, 0);
    if start >= pending.len() {
        return None;
    }
    let has_nl = memchr::memchr(b'\n', &pending[start..]).is_some();
    let first_done = matches!(
        scan::value_end(pending, start, false),
        scan::ValueEnd::Complete(_) | scan::ValueEnd::Invalid { .. }
    );
    (has_nl || first_done).then(|| detect_mode_partial(pending))
}

/// Reads a small file whole.
pub(super) fn read_file(path: &std::path::Path, buf: &mut Vec<u8>) -> std::io::Result<()> {
    buf.clear();
    File::open(path)?.read_to_end(buf).map(|_| ())
}

/// Stdin as a file when it is redirected from a regular file.
fn stdin_file() -> Option<File> {
    use std::os::fd::AsFd;
    let fd = std::io::stdin().as_fd().try_clone_to_owned().ok()?;
    let f = File::from(fd);
    f.metadata().ok()?.is_file().then_some(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `blocks` blocks of `block` bytes each into a fresh state.
    fn feed(st: &mut StreamState, block: &[u8], blocks: usize, limit: usize) {
        for _ in 0..blocks {
            st.pending.extend_from_slice(block);
            st.settle_mode(block.contains(&b'\n'), limit);
        }
    }

    #[test]
    fn an_unfinished_first_line_is_rescanned_geometrically_then_bounded() {
        let mut st = StreamState::new();
        st.pending.extend_from_slice(b"{\"eventName\":\"");
        let block = vec![b'A'; 4096];
        let mut scans = Vec::new();
        for _ in 0..1000 {
            let before = st.probed;
            feed(&mut st, &block, 1, 8 << 20);
            if st.probed != before {
                scans.push(st.probed);
            }
        }
        assert_eq!(st.mode, None, "a string still open decides nothing");
        // 4 MB in 1000 blocks, scanned about log2(1000) times, each time at twice the
        // length of the scan before.
        assert!(scans.len() <= 12, "{scans:?}");
        assert!(scans.windows(2).all(|w| w[1] >= 2 * w[0]), "{scans:?}");
        // Past the line limit the line is in lines mode (and is skipped as over-long).
        feed(&mut st, &block, 1100, 8 << 20);
        assert_eq!(st.mode, Some(Mode::Lines));
    }

    #[test]
    fn a_newline_or_a_complete_first_value_decides_at_once() {
        let mut st = StreamState::new();
        st.pending.extend_from_slice(b"{\"a\":\"");
        st.pending.extend_from_slice(&[b'A'; 100]);
        feed(&mut st, b"\"}\n", 1, 1 << 20);
        assert_eq!(st.mode, Some(Mode::Lines));
        let mut st = StreamState::new();
        feed(&mut st, b"{\n  \"eventName\": \"x\"", 1, 1 << 20);
        assert_eq!(st.mode, Some(Mode::Document));
        let mut st = StreamState::new();
        feed(&mut st, b"{\"a\":1}{\"b\"", 1, 1 << 20);
        assert_eq!(st.mode, Some(Mode::Lines), "glued values without a newline");
    }
}
