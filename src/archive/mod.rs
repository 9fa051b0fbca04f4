//! The archive: every kept record as a row of Tailpipe's `aws_cloudtrail_log` table, in
//! Parquet files under a hive layout that DuckDB (and Tailpipe) query directly.
//!
//! Previous module: the [`crate::pipeline`] workers append each kept record to a
//! [`rows::BatchBuilder`] of its partition while they match it, so archiving shares
//! the single parse with detection. Next: the archive thread hands the finished Arrow
//! batches to the [`writer::ArchiveWriter`], which owns one open file per partition.
//!
//! **Boundary.** `(PartitionKey, RecordBatch)` pairs, one per unit of work and
//! partition, travel over a bounded channel: a slow disk slows the pipeline instead of
//! growing memory.
//!
//! **Invariant.** A file is visible only once complete (temporary name, fsync, rename,
//! fsync of the directory), and `records_archived` counts only rows of finished files.
//! `tests/archive.rs` checks the row count and Tailpipe's queries with DuckDB.
//!
//! **Decision.** [`schema`] alone names the columns; the rest of the crate never sees
//! Arrow or Parquet types beyond `RecordBatch`.

pub mod compact;
pub mod lock;
pub mod rows;
pub mod schema;
pub mod space;
pub mod writer;

pub use compact::{CompactStats, compact};
pub use rows::{BatchBuilder, RowMeta, date_of, now_micros, parse_time_micros};
pub use writer::{
    ArchiveConfig, ArchiveError, ArchiveStats, ArchiveWriter, PartitionKey, file_properties,
    partition_value,
};

/// The `tp_id` of a record: SHA-256 over `eventID` and `recipientAccountId` (or the raw
/// bytes when there is no `eventID`), first 16 bytes in hex. Deterministic, so a replay
/// writes the same id and compaction can drop duplicates.
pub fn tp_id(event_id: Option<&str>, account: Option<&str>, raw: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    match event_id {
        Some(e) => {
            h.update(e.as_bytes());
            h.update([0]);
            h.update(account.unwrap_or_default().as_bytes());
        }
        None => h.update(raw),
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let d = h.finalize();
    let mut out = [0u8; 32];
    for (i, b) in d.iter().take(16).enumerate() {
        out[2 * i] = HEX[(b >> 4) as usize];
        out[2 * i + 1] = HEX[(b & 15) as usize];
    }
    out
}
