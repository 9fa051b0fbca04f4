//! `trailhound archive compact ROOT`: many small files per partition → one, atomically.
//!
//! CloudTrail's five-minute objects otherwise leave thousands of tiny Parquet files. For
//! each `tp_date=` directory (a partition) holding more than one file, the rows of all
//! its files are streamed, rows whose `tp_id` was already seen are dropped (replays after
//! a crash write the same `tp_id`), and the rest go into one new file in a staging
//! directory *outside* the table (`ROOT/.compact/…`, which no `tp_table=…/**` glob sees).
//! The staging directory and the partition directory are then exchanged in one atomic
//! `renameat2(RENAME_EXCHANGE)`: a reader globbing the table sees either all the old files
//! or the one new file, never both and never neither, so every row appears exactly once
//! at every moment. The old files, now in the staging place, are deleted afterwards.
//!
//! A partition is compacted under its exclusive lock ([`super::lock`]); a writer holds
//! the lock shared while it has a file open there, so a partition being written is
//! skipped (counted as `busy`) and never has a file hidden by the exchange. Partitions
//! dated today or later (UTC) are left alone unless `--all` is given: they are still
//! receiving files, and compacting them again and again gains nothing.

use std::collections::HashSet;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use arrow_array::{Array, BooleanArray, StringArray};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::schema::schema;
use super::writer::{ArchiveError, ROW_GROUP_BYTES, TABLE_DIR};

/// What compaction did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactStats {
    /// Partitions rewritten.
    pub partitions: u64,
    /// Files merged away.
    pub files_in: u64,
    /// Files written.
    pub files_out: u64,
    /// Rows kept.
    pub rows: u64,
    /// Rows dropped as duplicate `tp_id`s.
    pub duplicates: u64,
    /// Partitions skipped because a writer had a file open in them.
    pub busy: u64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn pq(path: &Path) -> impl FnOnce(parquet::errors::ParquetError) -> ArchiveError + '_ {
    move |e| ArchiveError::Parquet {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Exchanges two directories atomically (Linux `renameat2(RENAME_EXCHANGE)`).
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let ca = CString::new(a.as_os_str().as_bytes())?;
        let cb = CString::new(b.as_os_str().as_bytes())?;
        // SAFETY: both paths are valid NUL-terminated strings for the duration of the call.
        let rc = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                ca.as_ptr(),
                libc::AT_FDCWD,
                cb.as_ptr(),
                libc::RENAME_EXCHANGE,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (a, b);
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "atomic directory exchange needs Linux",
        ))
    }
}

fn partitions(table: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in fs::read_dir(table)? {
        let e = e?;
        if !e.file_type()?.is_dir() {
            continue;
        }
        let p = e.path();
        if p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("tp_date="))
        {
            out.push(p);
        } else {
            partitions(&p, out)?;
        }
    }
    Ok(())
}

/// Compacts every partition under `root` with more than one file. `all` includes
/// partitions dated today or later.
pub fn compact(root: &Path, all: bool) -> Result<CompactStats, ArchiveError> {
    let table = root.join(TABLE_DIR);
    let mut parts = Vec::new();
    partitions(&table, &mut parts).map_err(io(&table))?;
    parts.sort();
    let today = super::date_of(super::now_micros());
    let staging_root = root.join(".compact");
    let mut stats = CompactStats::default();
    for part in parts {
        let date = part
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("tp_date="))
            .unwrap_or_default()
            .to_string();
        if !all && date >= today {
            continue;
        }
        let files = super::super::fswalk::files_under(&part, &|p| {
            p.extension().is_some_and(|e| e == "parquet")
                && !p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'))
        })
        .map_err(io(&part))?;
        if files.len() < 2 {
            continue;
        }
        // A writer with a file open here holds the lock shared: leave the partition to
        // a later run rather than hide the file it is about to finish.
        let Some(_lock) =
            super::lock::PartitionLock::try_exclusive(root, &part).map_err(io(&part))?
        else {
            stats.busy += 1;
            continue;
        };
        let staging = staging_root.join(format!("{}-{}", std::process::id(), stats.partitions));
        fs::create_dir_all(&staging).map_err(io(&staging))?;
        let merged = staging.join(format!("compacted-{}.parquet", super::now_micros()));
        let (rows, dups) = merge(&files, &merged)?;
        File::open(&staging)
            .and_then(|d| d.sync_all())
            .map_err(io(&staging))?;
        exchange(&staging, &part).map_err(io(&part))?;
        if let Some(parent) = part.parent() {
            File::open(parent)
                .and_then(|d| d.sync_all())
                .map_err(io(parent))?;
        }
        fs::remove_dir_all(&staging).map_err(io(&staging))?;
        stats.partitions += 1;
        stats.files_in += files.len() as u64;
        stats.files_out += 1;
        stats.rows += rows;
        stats.duplicates += dups;
    }
    let _ = fs::remove_dir(&staging_root);
    Ok(stats)
}

/// Streams `files` into `out`, dropping rows whose `tp_id` was seen before. Returns
/// (rows written, duplicates dropped).
fn merge(files: &[PathBuf], out: &Path) -> Result<(u64, u64), ArchiveError> {
    let file = File::create(out).map_err(io(out))?;
    let handle = file.try_clone().map_err(io(out))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_bytes(Some(ROW_GROUP_BYTES))
        .build();
    let mut writer = ArrowWriter::try_new(file, schema(), Some(props)).map_err(pq(out))?;
    let mut seen: HashSet<String> = HashSet::new();
    let (mut rows, mut dups) = (0u64, 0u64);
    for f in files {
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(f).map_err(io(f))?)
            .and_then(|b| b.build())
            .map_err(pq(f))?;
        for batch in reader {
            let batch = batch.map_err(|e| ArchiveError::Parquet {
                path: f.clone(),
                message: e.to_string(),
            })?;
            let ids = batch
                .column_by_name("tp_id")
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                .ok_or_else(|| ArchiveError::Parquet {
                    path: f.clone(),
                    message: "no tp_id column".into(),
                })?;
            let keep: BooleanArray = (0..ids.len())
                .map(|i| Some(ids.is_null(i) || seen.insert(ids.value(i).to_string())))
                .collect();
            let kept = arrow_select_filter(&batch, &keep, f)?;
            dups += (batch.num_rows() - kept.num_rows()) as u64;
            rows += kept.num_rows() as u64;
            writer.write(&kept).map_err(pq(out))?;
        }
    }
    writer.close().map_err(pq(out))?;
    handle.sync_all().map_err(io(out))?;
    Ok((rows, dups))
}

fn arrow_select_filter(
    batch: &arrow_array::RecordBatch,
    keep: &BooleanArray,
    f: &Path,
) -> Result<arrow_array::RecordBatch, ArchiveError> {
    arrow_select::filter::filter_record_batch(batch, keep).map_err(|e| ArchiveError::Parquet {
        path: f.to_path_buf(),
        message: e.to_string(),
    })
}
