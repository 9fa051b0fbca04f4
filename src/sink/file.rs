//! The file sink: findings appended to a file that rotates by size and age.
//!
//! `file: {path, max_bytes, max_age, keep}`. The file is opened for appending (a restart
//! continues it). When the next line would take it past `max_bytes`, or it is older
//! than `max_age` and holds something, it is flushed, fsynced and renamed to
//! `<stem>-<UTC yyyymmddThhmmssZ>[-N].<ext>` beside it, and a new file is started; with
//! `keep: N` only the newest `N` rotated files are kept. Rotated names sort by time, so
//! `ls` and log shippers see them in order.
//!
//! Delivery: lines are written to the operating system before an input is
//! acknowledged (like stdout); a rotated file is fsynced before it is renamed.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;

use super::route::Route;

/// `sinks: - file: {...}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The sink's name (default `file`).
    pub name: Option<String>,
    /// Which findings it takes.
    pub route: Option<Route>,
    /// Finding format (`native`).
    pub format: Option<String>,
    /// The file findings are appended to.
    pub path: PathBuf,
    /// Rotate before the file grows past this size (`100MiB`; default: never).
    pub max_bytes: Option<String>,
    /// Rotate a non-empty file this old (`1h`; default: never).
    pub max_age: Option<String>,
    /// Rotated files kept (default: all).
    pub keep: Option<usize>,
}

/// A findings file with rotation.
pub struct RotatingFile {
    path: PathBuf,
    w: BufWriter<File>,
    written: u64,
    opened: Instant,
    max_bytes: Option<u64>,
    max_age: Option<Duration>,
    keep: Option<usize>,
    rotations: u64,
    /// The timestamp and number of the last rotated name, so names within one second
    /// keep increasing after older ones were pruned.
    last_name: Option<(String, u64)>,
}

impl std::fmt::Debug for RotatingFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotatingFile")
            .field("path", &self.path)
            .field("written", &self.written)
            .finish()
    }
}

fn open_append(path: &Path) -> io::Result<(BufWriter<File>, u64)> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let f = OpenOptions::new().create(true).append(true).open(path)?;
    let len = f.metadata()?.len();
    Ok((BufWriter::with_capacity(256 * 1024, f), len))
}

impl RotatingFile {
    /// Opens (creates or continues) the file.
    pub fn open(
        path: PathBuf,
        max_bytes: Option<u64>,
        max_age: Option<Duration>,
        keep: Option<usize>,
    ) -> io::Result<Self> {
        let (w, written) = open_append(&path)?;
        Ok(RotatingFile {
            path,
            w,
            written,
            opened: Instant::now(),
            max_bytes: max_bytes.filter(|&n| n > 0),
            max_age: max_age.filter(|d| !d.is_zero()),
            keep,
            rotations: 0,
            last_name: None,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Files rotated so far.
    pub fn rotations(&self) -> u64 {
        self.rotations
    }

    /// Appends one line (with its `\n`), rotating first when it would not fit.
    pub fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        if self.written > 0
            && (self
                .max_bytes
                .is_some_and(|m| self.written + line.len() as u64 > m)
                || self.aged())
        {
            self.rotate()?;
        }
        self.w.write_all(line)?;
        self.written += line.len() as u64;
        Ok(())
    }

    fn aged(&self) -> bool {
        self.max_age.is_some_and(|a| self.opened.elapsed() >= a)
    }

    /// Writes buffered lines to the file; rotates a file past its age.
    pub fn flush(&mut self) -> io::Result<()> {
        self.w.flush()?;
        if self.written > 0 && self.aged() {
            self.rotate()?;
        }
        Ok(())
    }

    /// Flushes and fsyncs (end of a run).
    pub fn close(&mut self) -> io::Result<()> {
        self.w.flush()?;
        self.w.get_ref().sync_all()
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.w.flush()?;
        self.w.get_ref().sync_all()?;
        let target = self.rotated_name();
        std::fs::rename(&self.path, &target)?;
        let (w, written) = open_append(&self.path)?;
        self.w = w;
        self.written = written;
        self.opened = Instant::now();
        self.rotations += 1;
        if let Some(dir) = self.path.parent()
            && let Ok(d) = File::open(if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            })
        {
            let _ = d.sync_all();
        }
        if let Some(keep) = self.keep {
            self.prune(keep);
        }
        Ok(())
    }

    fn parts(&self) -> (String, String) {
        let stem = self
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "findings".into());
        let ext = self
            .path
            .extension()
            .map(|s| format!(".{}", s.to_string_lossy()))
            .unwrap_or_default();
        (stem, ext)
    }

    fn rotated_name(&mut self) -> PathBuf {
        let (stem, ext) = self.parts();
        let ts: String = humantime::format_rfc3339_seconds(SystemTime::now())
            .to_string()
            .chars()
            .filter(|c| *c != '-' && *c != ':')
            .collect();
        let dir = self.path.parent().unwrap_or(Path::new(""));
        let mut n = match &self.last_name {
            Some((last, n)) if *last == ts => n + 1,
            _ => 0,
        };
        loop {
            let name = if n == 0 {
                format!("{stem}-{ts}{ext}")
            } else {
                format!("{stem}-{ts}-{n}{ext}")
            };
            let p = dir.join(name);
            if !p.exists() {
                self.last_name = Some((ts, n));
                return p;
            }
            n += 1;
        }
    }

    /// The rotated files of this sink, oldest first.
    pub fn rotated_files(&self) -> Vec<PathBuf> {
        let (stem, ext) = self.parts();
        let prefix = format!("{stem}-");
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut found: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let rest = name.strip_prefix(&prefix)?.strip_suffix(ext.as_str())?;
                // `<yyyymmddThhmmssZ>` or `<…Z>-N`: a timestamp, never another file.
                let ts = rest.split('-').next()?;
                (ts.len() == 16 && ts.ends_with('Z') && ts.as_bytes()[8] == b'T').then(|| {
                    let n: u64 = rest
                        .split_once('-')
                        .and_then(|(_, n)| n.parse().ok())
                        .unwrap_or(0);
                    (format!("{ts}{n:020}"), e.path())
                })
            })
            .collect();
        found.sort();
        found.into_iter().map(|(_, p)| p).collect()
    }

    fn prune(&self, keep: usize) {
        let files = self.rotated_files();
        let extra = files.len().saturating_sub(keep);
        for p in &files[..extra] {
            if let Err(e) = std::fs::remove_file(p) {
                tracing::warn!(file = %p.display(), "could not remove a rotated findings file: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_the_newest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out/findings.ndjson");
        let mut f = RotatingFile::open(path.clone(), Some(25), None, Some(2)).expect("open");
        for i in 0..10 {
            f.write_line(format!("{{\"n\":{i:03}}}\n").as_bytes())
                .expect("write");
        }
        f.close().expect("close");
        // 12-byte lines, two per file: 5 files written, 4 rotated, 2 kept.
        assert_eq!(f.rotations(), 4);
        let rotated = f.rotated_files();
        assert_eq!(rotated.len(), 2);
        let text = |p: &Path| std::fs::read_to_string(p).expect("read");
        assert_eq!(text(&path), "{\"n\":008}\n{\"n\":009}\n");
        assert_eq!(text(&rotated[1]), "{\"n\":006}\n{\"n\":007}\n");
        assert_eq!(text(&rotated[0]), "{\"n\":004}\n{\"n\":005}\n");
        // A restart appends.
        drop(f);
        let mut f = RotatingFile::open(path.clone(), None, None, None).expect("open");
        f.write_line(b"{\"n\":010}\n").expect("write");
        f.close().expect("close");
        assert_eq!(text(&path).lines().count(), 3);
    }

    #[test]
    fn rotates_by_age_only_when_not_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f.ndjson");
        let mut f = RotatingFile::open(path.clone(), None, Some(Duration::from_millis(1)), None)
            .expect("open");
        std::thread::sleep(Duration::from_millis(5));
        f.flush().expect("flush");
        assert_eq!(f.rotations(), 0);
        f.write_line(b"x\n").expect("write");
        std::thread::sleep(Duration::from_millis(5));
        f.flush().expect("flush");
        assert_eq!(f.rotations(), 1);
        assert_eq!(f.rotated_files().len(), 1);
        assert_eq!(std::fs::read(&path).expect("read").len(), 0);
    }
}
