//! Parquet files in Tailpipe's hive layout, each appearing only complete.
//!
//! `<root>/tp_table=aws_cloudtrail_log/tp_partition=<p>/tp_index=<i>/tp_date=<d>/<name>.parquet`.
//! A file is written as `.<name>.parquet.tmp` in its final directory, then finished,
//! fsync'd, renamed and its directory fsync'd: a reader sees a whole file or none.
//! Temporary files left by a crashed writer are removed when a writer opens the root
//! (only those whose owner is gone: several instances may share a root, see
//! [`super::lock`]).

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::schema::schema;
use super::space::{SpaceWait, retry_on_full};

/// A row group is flushed once its encoded data reach this size, so an open file holds
/// at most about this much in memory.
pub const ROW_GROUP_BYTES: usize = 8 << 20;

/// Most files open at once (one per partition being written).
pub const MAX_OPEN_FILES: usize = 32;

/// The table directory under the root.
pub const TABLE_DIR: &str = "tp_table=aws_cloudtrail_log";

/// The Parquet settings of an archive file: zstd, row groups of at most 122,880 rows
/// or [`ROW_GROUP_BYTES`].
pub fn file_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(122_880))
        .set_max_row_group_bytes(Some(ROW_GROUP_BYTES))
        .build()
}

/// Where and how to archive.
#[derive(Debug, Clone)]
pub struct ArchiveConfig {
    /// The archive root.
    pub root: PathBuf,
    /// `tp_partition` (the source's name).
    pub partition: String,
    /// A file is closed once its buffered and written data reach this size.
    pub max_file_bytes: usize,
    /// A file is closed this long after it was opened, so data becomes visible.
    pub max_age: Duration,
    /// The writer's instance id (kept in `state_dir`); `None`: a new one per process.
    pub instance: Option<String>,
}

/// Where a row goes: `tp_index` and `tp_date`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PartitionKey {
    /// `tp_partition` when it is not the writer's (a live source's name).
    pub partition: Option<String>,
    /// `tp_index` (account id by default).
    pub index: String,
    /// `tp_date`, `YYYY-MM-DD`.
    pub date: String,
}

/// What went wrong writing the archive.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// A file or directory operation failed.
    #[error("archive {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The instance lock cannot be taken.
    #[error("archive: {0}")]
    Lock(#[from] super::lock::LockError),
    /// The Parquet writer failed.
    #[error("archive {path}: parquet: {message}")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The writer's message.
        message: String,
    },
}

/// Counts of what was archived.
#[derive(Debug, Clone, Copy, Default)]
pub struct ArchiveStats {
    /// Rows in finished files.
    pub rows: u64,
    /// Files finished.
    pub files: u64,
    /// Temporary files from an earlier crash that were removed.
    pub stale_removed: u64,
}

/// Makes a record-derived value safe as one path segment: letters, digits and `._-@`
/// are kept, anything else becomes `_`; empty, `.` and `..` become `unknown`.
pub fn partition_value(raw: &str) -> String {
    let v: String = raw
        .chars()
        .take(128)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if v.is_empty() || v.chars().all(|c| c == '.') {
        "unknown".into()
    } else {
        v
    }
}

struct OpenFile {
    tmp: PathBuf,
    path: PathBuf,
    /// A second handle to the file, to fsync it after the writer has closed it.
    handle: File,
    writer: ArrowWriter<SpaceWait<File>>,
    opened: Instant,
    rows: u64,
    /// The file's number in this writer (1, 2, …, in opening order).
    seq: u64,
    /// The partition's lock, shared while the file is open (compaction waits).
    _lock: super::lock::PartitionLock,
}

/// The archive's open files, one per partition.
pub struct ArchiveWriter {
    cfg: ArchiveConfig,
    open: HashMap<PartitionKey, OpenFile>,
    seq: u64,
    stamp: String,
    stats: ArchiveStats,
    /// Ends a wait for disk space ([`super::space`]).
    stop: Arc<AtomicBool>,
    _instance: super::lock::InstanceLock,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Removes the temporary files under `dir` whose writer is gone: this instance's own
/// (from before a crash) and those of instances that hold no lock.
fn remove_stale(root: &Path, dir: &Path, me: &str, removed: &mut u64) -> std::io::Result<()> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let p = e.path();
        if e.file_type()?.is_dir() {
            remove_stale(root, &p, me, removed)?;
            continue;
        }
        let Some(owner) = p
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(super::lock::temp_owner)
        else {
            continue;
        };
        if owner == me || !super::lock::owner_alive(root, owner) {
            fs::remove_file(&p)?;
            *removed += 1;
        }
    }
    Ok(())
}

/// Writes `ROOT/aws_cloudtrail_log.sql`, the DuckDB view over the archive:
/// `duckdb -init ROOT/aws_cloudtrail_log.sql` (or `.read` it) gives a view named
/// `aws_cloudtrail_log`.
fn write_view(root: &Path) -> Result<(), ArchiveError> {
    let abs = fs::canonicalize(root).map_err(io(root))?;
    let glob = abs.join(TABLE_DIR).join("**").join("*.parquet");
    let sql = format!(
        "-- trailhound archive: the aws_cloudtrail_log table, as Tailpipe names it.\ncreate or replace view aws_cloudtrail_log as\n  select * from read_parquet('{}', hive_partitioning = true);\n",
        glob.display().to_string().replace('\'', "''")
    );
    let path = root.join("aws_cloudtrail_log.sql");
    let tmp = root.join(".aws_cloudtrail_log.sql.tmp");
    fs::write(&tmp, sql).map_err(io(&tmp))?;
    fs::rename(&tmp, &path).map_err(io(&path))
}

impl ArchiveWriter {
    /// Opens (creates) the root and removes temporary files left by a crash.
    pub fn open(cfg: ArchiveConfig) -> Result<Self, ArchiveError> {
        let table = cfg.root.join(TABLE_DIR);
        fs::create_dir_all(&table).map_err(io(&table))?;
        let id = cfg
            .instance
            .clone()
            .unwrap_or_else(super::lock::new_instance_id);
        let instance = super::lock::InstanceLock::acquire(&cfg.root, &id)?;
        let mut stats = ArchiveStats::default();
        remove_stale(&cfg.root, &table, &id, &mut stats.stale_removed).map_err(io(&table))?;
        write_view(&cfg.root)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        Ok(ArchiveWriter {
            stamp: format!("{id}-{now}"),
            cfg,
            open: HashMap::new(),
            seq: 0,
            stats,
            stop: Arc::new(AtomicBool::new(false)),
            _instance: instance,
        })
    }

    /// A full disk pauses writing until space is back or `stop` is set (the run's
    /// shutdown flag); see [`super::space`].
    pub fn stop_waiting_on(&mut self, stop: Arc<AtomicBool>) {
        self.stop = stop;
    }

    fn dir(&self, key: &PartitionKey) -> PathBuf {
        self.cfg
            .root
            .join(TABLE_DIR)
            .join(format!(
                "tp_partition={}",
                partition_value(key.partition.as_deref().unwrap_or(&self.cfg.partition))
            ))
            .join(format!("tp_index={}", partition_value(&key.index)))
            .join(format!("tp_date={}", partition_value(&key.date)))
    }

    /// Appends rows to the partition's open file (opening one if needed).
    pub fn write(&mut self, key: &PartitionKey, batch: &RecordBatch) -> Result<(), ArchiveError> {
        if !self.open.contains_key(key) && self.open.len() >= MAX_OPEN_FILES {
            // Memory stays bounded however many partitions the input spans: the file
            // opened longest ago is finished first.
            let oldest = self
                .open
                .iter()
                .min_by_key(|(_, f)| f.opened)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.finish_one(&k)?;
            }
        }
        if !self.open.contains_key(key) {
            let dir = self.dir(key);
            retry_on_full(&dir, &self.stop, || fs::create_dir_all(&dir)).map_err(io(&dir))?;
            let lock =
                super::lock::PartitionLock::shared(&self.cfg.root, &dir).map_err(io(&dir))?;
            self.seq += 1;
            let name = format!("{}-{:06}.parquet", self.stamp, self.seq);
            let tmp = dir.join(format!(".{name}.tmp"));
            let path = dir.join(name);
            let file = retry_on_full(&tmp, &self.stop, || File::create(&tmp)).map_err(io(&tmp))?;
            let handle = file.try_clone().map_err(io(&tmp))?;
            let props = file_properties();
            let file = SpaceWait::new(file, tmp.clone(), self.stop.clone());
            let writer = ArrowWriter::try_new(file, schema(), Some(props)).map_err(|e| {
                ArchiveError::Parquet {
                    path: tmp.clone(),
                    message: e.to_string(),
                }
            })?;
            self.open.insert(
                key.clone(),
                OpenFile {
                    tmp,
                    path,
                    handle,
                    writer,
                    opened: Instant::now(),
                    rows: 0,
                    seq: self.seq,
                    _lock: lock,
                },
            );
        }
        let full = {
            let f = self
                .open
                .get_mut(key)
                .unwrap_or_else(|| unreachable!("opened above"));
            f.writer.write(batch).map_err(|e| ArchiveError::Parquet {
                path: f.tmp.clone(),
                message: e.to_string(),
            })?;
            f.rows += batch.num_rows() as u64;
            f.writer.in_progress_size() + f.writer.bytes_written() >= self.cfg.max_file_bytes
        };
        if full {
            self.finish_one(key)?;
        }
        Ok(())
    }

    fn finish_one(&mut self, key: &PartitionKey) -> Result<(), ArchiveError> {
        let Some(f) = self.open.remove(key) else {
            return Ok(());
        };
        f.writer.close().map_err(|e| ArchiveError::Parquet {
            path: f.tmp.clone(),
            message: e.to_string(),
        })?;
        f.handle.sync_all().map_err(io(&f.tmp))?;
        fs::rename(&f.tmp, &f.path).map_err(io(&f.path))?;
        if let Some(dir) = f.path.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io(dir))?;
        }
        self.stats.rows += f.rows;
        self.stats.files += 1;
        crate::telemetry::record_archive_file(f.rows);
        Ok(())
    }

    /// How many files this writer has opened (the number of the newest).
    pub fn files_opened(&self) -> u64 {
        self.seq
    }

    /// The number of the oldest file still open.
    pub fn oldest_open(&self) -> Option<u64> {
        self.open.values().map(|f| f.seq).min()
    }

    /// Finishes files opened longer than `max_age` ago.
    pub fn finish_aged(&mut self) -> Result<(), ArchiveError> {
        let aged: Vec<PartitionKey> = self
            .open
            .iter()
            .filter(|(_, f)| f.opened.elapsed() >= self.cfg.max_age)
            .map(|(k, _)| k.clone())
            .collect();
        for k in aged {
            self.finish_one(&k)?;
        }
        Ok(())
    }

    /// Finishes every open file and returns the counts.
    pub fn close(mut self) -> Result<ArchiveStats, ArchiveError> {
        let keys: Vec<PartitionKey> = self.open.keys().cloned().collect();
        for k in keys {
            self.finish_one(&k)?;
        }
        Ok(self.stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_values_cannot_escape() {
        assert_eq!(partition_value("123456789012"), "123456789012");
        assert_eq!(partition_value("../../etc"), ".._.._etc");
        assert_eq!(partition_value(".."), "unknown");
        assert_eq!(partition_value(""), "unknown");
        assert_eq!(partition_value("a/b\\c d"), "a_b_c_d");
        assert_eq!(partition_value("2024-12-01"), "2024-12-01");
    }
}
