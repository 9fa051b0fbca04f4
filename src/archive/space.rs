//! A full disk pauses the archive instead of failing it.
//!
//! When a write to an archive file fails because the file system is full (`ENOSPC`), a
//! quota is exhausted (`EDQUOT`) or a file-size limit is reached (`EFBIG`, e.g. under
//! `ulimit -f`; the binary ignores `SIGXFSZ` so the limit is an error, not a kill),
//! [`SpaceWait`] keeps the bytes, logs once, and tries the same write again with a
//! growing pause (0.1 s doubling up to [`MAX_PAUSE`]) until it goes through. A failed
//! `write(2)` wrote nothing, so retrying it leaves the Parquet file exactly as if the
//! disk had never filled.
//!
//! Meanwhile the archive thread is blocked, its bounded channel fills, the sink and
//! workers wait on it, and the source stops reading: backpressure all the way back, with
//! memory bounded by the channels. Nothing is acknowledged while rows wait, so a crash
//! during the wait loses nothing either (the inputs are read again after a restart).
//! Once space is back the writer logs how long it waited and goes on.
//!
//! A stop request (SIGTERM, SIGINT) ends the wait: the write fails with the original
//! error, the run ends with an archive error, and the unfinished inputs stay
//! unacknowledged.

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The longest pause between two attempts.
pub const MAX_PAUSE: Duration = Duration::from_secs(5);

/// How often a continuing wait is logged again.
const REMIND_EVERY: Duration = Duration::from_secs(60);

/// Whether an I/O error means "no room": a full file system, an exhausted quota or a
/// file-size limit. These clear when space is freed; other errors do not.
pub fn is_out_of_space(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOSPC | libc::EDQUOT | libc::EFBIG)
    ) || matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::FileTooLarge | io::ErrorKind::QuotaExceeded
    )
}

/// Runs `op` until it succeeds, fails with an error other than "no room", or `stop` is
/// set; while there is no room it pauses and logs (naming `path`).
pub fn retry_on_full<T>(
    path: &std::path::Path,
    stop: &AtomicBool,
    mut op: impl FnMut() -> io::Result<T>,
) -> io::Result<T> {
    let mut since: Option<(Instant, Instant)> = None; // (first failure, last log line)
    let mut pause = Duration::from_millis(100);
    loop {
        match op() {
            Ok(v) => {
                if let Some((first, _)) = since {
                    tracing::warn!(
                        path = %path.display(),
                        "archive: space is back, writing again after {:.1} s",
                        first.elapsed().as_secs_f64()
                    );
                }
                return Ok(v);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_out_of_space(&e) => {
                let now = Instant::now();
                match since {
                    None => {
                        tracing::error!(
                            path = %path.display(),
                            "archive: {e}; waiting for space (reading is paused, nothing is \
                             acknowledged until the rows are written)"
                        );
                        since = Some((now, now));
                    }
                    Some((first, last)) if now.duration_since(last) >= REMIND_EVERY => {
                        tracing::error!(
                            path = %path.display(),
                            "archive: still no space after {} s: {e}",
                            now.duration_since(first).as_secs()
                        );
                        since = Some((first, now));
                    }
                    Some(_) => {}
                }
                if stop.load(Ordering::Relaxed) {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("{e} (stopped while waiting for space)"),
                    ));
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(MAX_PAUSE);
            }
            Err(e) => return Err(e),
        }
    }
}

/// A writer that waits for space instead of failing (see the module docs).
pub struct SpaceWait<W> {
    inner: W,
    path: PathBuf,
    stop: Arc<AtomicBool>,
}

impl<W> SpaceWait<W> {
    /// Wraps `inner`, the file at `path`; `stop` ends a wait.
    pub fn new(inner: W, path: PathBuf, stop: Arc<AtomicBool>) -> Self {
        SpaceWait { inner, path, stop }
    }
}

impl<W: Write> Write for SpaceWait<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let SpaceWait { inner, path, stop } = self;
        retry_on_full(path, stop, || inner.write(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        let SpaceWait { inner, path, stop } = self;
        retry_on_full(path, stop, || inner.flush())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file that is "full" for its first `fail` write attempts, then takes at most
    /// `chunk` bytes per call.
    struct FullFor {
        fail: usize,
        errno: i32,
        chunk: usize,
        data: Vec<u8>,
        attempts: usize,
    }

    impl Write for FullFor {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.attempts += 1;
            if self.fail > 0 {
                self.fail -= 1;
                return Err(io::Error::from_raw_os_error(self.errno));
            }
            let n = buf.len().min(self.chunk);
            self.data.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn payload() -> Vec<u8> {
        (0..10_000u32).flat_map(|i| i.to_le_bytes()).collect()
    }

    #[test]
    fn every_byte_is_written_once_after_the_disk_frees_up() {
        for errno in [libc::ENOSPC, libc::EDQUOT, libc::EFBIG] {
            let file = FullFor {
                fail: 3,
                errno,
                chunk: 4096,
                data: Vec::new(),
                attempts: 0,
            };
            let stop = Arc::new(AtomicBool::new(false));
            let mut w = SpaceWait::new(file, "x.parquet.tmp".into(), stop);
            let data = payload();
            w.write_all(&data).expect("written once space is back");
            w.flush().expect("flush");
            assert_eq!(w.inner.data, data, "errno {errno}");
            // Three refusals, then one call per 4 KiB chunk.
            assert_eq!(w.inner.attempts, 3 + data.len().div_ceil(4096));
        }
    }

    #[test]
    fn a_stop_request_ends_the_wait_with_the_original_error() {
        let file = FullFor {
            fail: usize::MAX,
            errno: libc::ENOSPC,
            chunk: 4096,
            data: Vec::new(),
            attempts: 0,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let mut w = SpaceWait::new(file, "x.parquet.tmp".into(), stop.clone());
        let setter = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            stop.store(true, Ordering::Relaxed);
        });
        let err = w.write_all(b"rows").expect_err("no space and stopped");
        setter.join().expect("join");
        assert!(is_out_of_space(&err), "{err}");
        assert!(
            err.to_string().contains("stopped while waiting for space"),
            "{err}"
        );
        assert!(w.inner.data.is_empty());
        assert!(w.inner.attempts >= 2, "it retried before giving up");
    }

    #[test]
    fn other_errors_are_not_retried() {
        let file = FullFor {
            fail: 1,
            errno: libc::EIO,
            chunk: 4096,
            data: Vec::new(),
            attempts: 0,
        };
        let mut w = SpaceWait::new(file, "x".into(), Arc::new(AtomicBool::new(false)));
        let err = w.write(b"rows").expect_err("EIO");
        assert_eq!(err.raw_os_error(), Some(libc::EIO));
        assert_eq!(w.inner.attempts, 1);
    }
}
