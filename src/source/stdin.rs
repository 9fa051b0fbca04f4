//! Byte streams read by a pump thread: stdin when it is a pipe or a terminal, and gzip'd
//! files or stdin too large to read whole (a plain large file, or stdin redirected from
//! one, is read by the reader itself: its reads never block).
//!
//! The pump owns the blocking `read` calls, so the reader that cuts the stream into
//! batches can wait with a timeout: a quiet stream (`tail -f`) still gets its batch
//! flushed within 10 ms, and a signal stops the run even while stdin blocks. Gzip is
//! detected from the first bytes and inflated in the pump, across member boundaries.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam_channel::{Receiver, Sender, bounded};

use crate::decode::is_gzip;

/// What the pump sends.
#[derive(Debug)]
pub enum PumpMsg {
    /// Decompressed bytes.
    Data(Vec<u8>),
    /// The stream ended cleanly.
    Eof,
    /// Reading failed: `io` is true for an I/O error of the underlying stream, false for
    /// damaged gzip content.
    Failed {
        /// The message.
        message: String,
        /// Whether the stream itself failed (not its content).
        io: bool,
    },
}

/// Counts the bytes read through it and remembers whether a read failed.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
    failed: Arc<AtomicBool>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.count.fetch_add(n as u64, Ordering::Relaxed);
                Ok(n)
            }
            Err(e) => {
                if e.kind() != io::ErrorKind::Interrupted {
                    self.failed.store(true, Ordering::Relaxed);
                }
                Err(e)
            }
        }
    }
}

/// A running pump: its messages and the count of raw bytes read.
pub struct Pump {
    /// Blocks of decompressed bytes, then `Eof` or `Failed`.
    pub rx: Receiver<PumpMsg>,
    /// Raw (compressed) bytes read so far.
    pub bytes_in: Arc<AtomicU64>,
}

const BLOCK: usize = 1 << 20;

/// Starts a thread that reads `source` to its end.
pub fn spawn(source: Box<dyn Read + Send>) -> Pump {
    let (tx, rx) = bounded(4);
    let bytes_in = Arc::new(AtomicU64::new(0));
    let count = bytes_in.clone();
    let spawned = std::thread::Builder::new()
        .name("trailhound-pump".into())
        .spawn(move || pump(source, tx, count));
    if let Err(e) = spawned {
        let (tx2, rx2) = bounded(1);
        let _ = tx2.send(PumpMsg::Failed {
            message: format!("cannot start reader thread: {e}"),
            io: true,
        });
        return Pump { rx: rx2, bytes_in };
    }
    Pump { rx, bytes_in }
}

fn pump(source: Box<dyn Read + Send>, tx: Sender<PumpMsg>, count: Arc<AtomicU64>) {
    let failed = Arc::new(AtomicBool::new(false));
    let mut raw = Counting {
        inner: source,
        count,
        failed: failed.clone(),
    };
    // Peek at the first bytes for the gzip magic.
    let mut head = [0u8; 2];
    let mut n = 0;
    while n < 2 {
        match raw.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                let _ = tx.send(PumpMsg::Failed {
                    message: e.to_string(),
                    io: true,
                });
                return;
            }
        }
    }
    let prefix = io::Cursor::new(head[..n].to_vec());
    let mut reader: Box<dyn Read> = if is_gzip(&head[..n]) {
        Box::new(flate2::read::MultiGzDecoder::new(prefix.chain(raw)))
    } else {
        Box::new(prefix.chain(raw))
    };
    loop {
        let mut block = vec![0u8; BLOCK];
        let got = loop {
            match reader.read(&mut block) {
                Ok(k) => break Ok(k),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        match got {
            Ok(0) => {
                let _ = tx.send(PumpMsg::Eof);
                return;
            }
            Ok(k) => {
                block.truncate(k);
                if tx.send(PumpMsg::Data(block)).is_err() {
                    return;
                }
            }
            Err(e) => {
                let io = failed.load(Ordering::Relaxed);
                let message = if io {
                    e.to_string()
                } else {
                    format!("gzip stream is truncated or corrupt: {e}")
                };
                let _ = tx.send(PumpMsg::Failed { message, io });
                return;
            }
        }
    }
}
