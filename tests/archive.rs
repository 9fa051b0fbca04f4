//! The Parquet archive on the real samples: every kept record becomes one row, files
//! appear only complete in Tailpipe's hive layout, partition values from records cannot
//! escape the root, and DuckDB answers Tailpipe's queries as the source JSON does.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{BIN, root, samples};

fn files_with(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    trailhound::fswalk::files_under(dir, &|p| p.to_string_lossy().ends_with(suffix))
        .unwrap_or_default()
}

fn run(args: &[&std::ffi::OsStr]) -> serde_json::Value {
    let out = Command::new(BIN)
        .args(args)
        .args(["--no-record", "--stats", "json"])
        .output()
        .expect("run trailhound");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let stats = serde_json::from_str(err.lines().last().expect("stats line")).expect("stats json");
    common::check_accounting(&stats);
    stats
}

#[test]
fn every_kept_record_is_one_row_in_a_complete_file() {
    let tmp = tempfile::tempdir().expect("tmp");
    let archive = tmp.path().join("archive");
    let stats = common::archive_samples(&archive);
    assert_eq!(stats["records_kept"], 11_625);
    assert_eq!(stats["records_archived"], stats["records_kept"]);
    let parquet = files_with(&archive, ".parquet");
    assert_eq!(stats["archive_files"].as_u64(), Some(parquet.len() as u64));
    assert!(
        files_with(&archive, ".tmp").is_empty(),
        "temporary files left behind"
    );
    let mut rows = 0;
    for f in &parquet {
        let rel = f.strip_prefix(&archive).expect("under the root");
        let parts: Vec<String> = rel
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        assert_eq!(parts.len(), 5, "{}", rel.display());
        assert_eq!(parts[0], "tp_table=aws_cloudtrail_log");
        assert_eq!(parts[1], "tp_partition=files");
        assert!(parts[2].starts_with("tp_index="));
        let date = parts[3].strip_prefix("tp_date=").expect("tp_date");
        assert!(
            date.len() == 10 && date.as_bytes()[4] == b'-' && date.as_bytes()[7] == b'-',
            "{date}"
        );
        let reader =
            parquet::file::reader::SerializedFileReader::new(std::fs::File::open(f).expect("open"))
                .expect("a complete parquet file");
        rows += parquet::file::reader::FileReader::metadata(&reader)
            .file_metadata()
            .num_rows();
    }
    assert_eq!(rows, 11_625);
}

#[test]
fn stale_temporary_files_are_removed_and_hostile_partition_values_stay_inside() {
    let tmp = tempfile::tempdir().expect("tmp");
    let archive = tmp.path().join("a");
    let stale_dir = archive
        .join("tp_table=aws_cloudtrail_log/tp_partition=files/tp_index=1/tp_date=2024-01-01");
    std::fs::create_dir_all(&stale_dir).expect("mkdir");
    std::fs::write(stale_dir.join(".crashed.parquet.tmp"), b"half a file").expect("stale");
    let input = tmp.path().join("hostile.ndjson");
    let mut f = std::fs::File::create(&input).expect("input");
    for acct in ["../../escape", "..", "a/b", ""] {
        writeln!(
            f,
            r#"{{"eventVersion":"1.08","eventTime":"2024-01-01T00:00:00Z","eventName":"GetCallerIdentity","eventID":"{acct}x","recipientAccountId":"{acct}"}}"#
        )
        .expect("write");
    }
    writeln!(
        f,
        r#"{{"eventVersion":"1.08","eventTime":"../../x","eventName":"A","eventID":"t"}}"#
    )
    .expect("write");
    drop(f);
    let stats = run(&[input.as_os_str(), "--archive".as_ref(), archive.as_os_str()]);
    assert_eq!(stats["records_archived"], 5);
    assert!(files_with(&archive, ".tmp").is_empty());
    // Nothing was written outside the root.
    let outside: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("ls")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(outside.len(), 2, "{outside:?}");
    for p in files_with(&archive, ".parquet") {
        let rel = p.strip_prefix(&archive).expect("under the root");
        assert!(
            rel.components()
                .all(|c| matches!(c, std::path::Component::Normal(_))),
            "{}",
            rel.display()
        );
    }
}

/// Tailpipe's example queries, run by DuckDB over the archive, agree with the same
/// questions asked of the source JSON (tests/archive_check.py). Needs the Python venv
/// that scripts/oracle.sh builds (with duckdb); `TRAILHOUND_ORACLE=required` (set by
/// scripts/test.sh) makes its absence a failure.
#[test]
fn duckdb_answers_tailpipe_queries_as_the_source_does() {
    let python = root().join("target/oracle-venv/bin/python");
    if !python.exists() {
        assert!(
            std::env::var("TRAILHOUND_ORACLE").as_deref() != Ok("required"),
            "target/oracle-venv is missing: run scripts/oracle.sh"
        );
        eprintln!("skipped: no target/oracle-venv (run scripts/oracle.sh, or ./scripts/test.sh)");
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let archive = tmp.path().join("archive");
    common::archive_samples(&archive);
    let out = Command::new(&python)
        .arg(root().join("tests/archive_check.py"))
        .arg(&archive)
        .args(samples())
        .output()
        .expect("python");
    let report = String::from_utf8_lossy(&out.stdout);
    println!("{report}");
    assert!(
        out.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(report.trim()).expect("report json");
    assert_eq!(v["rows"], 11_625);
    assert!(v["access_denied"].as_u64() > Some(0));
    assert!(v["console_logins"].as_u64() > Some(0));
}

/// Distinct `tp_id`s and total rows visible to a glob reader right now, or `None` if a
/// file vanished while being read (a reader retries).
fn snapshot(archive: &Path) -> Option<(std::collections::HashSet<String>, usize)> {
    use arrow_array::{Array, StringArray};
    let mut ids = std::collections::HashSet::new();
    let mut rows = 0;
    for f in files_with(&archive.join("tp_table=aws_cloudtrail_log"), ".parquet") {
        if f.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'))
        {
            continue;
        }
        let file = std::fs::File::open(&f).ok()?;
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .ok()?
            .build()
            .ok()?;
        for b in reader {
            let b = b.ok()?;
            let col = b
                .column_by_name("tp_id")?
                .as_any()
                .downcast_ref::<StringArray>()?
                .clone();
            rows += col.len();
            ids.extend((0..col.len()).map(|i| col.value(i).to_string()));
        }
    }
    Some((ids, rows))
}

#[test]
fn compaction_merges_partitions_drops_replayed_rows_and_never_hides_one() {
    let tmp = tempfile::tempdir().expect("tmp");
    let archive = tmp.path().join("archive");
    let fixture = root().join("tests/data/cloudtrail/s3-layout");
    // Two runs over the same objects: the second is a replay with the same tp_ids.
    for _ in 0..2 {
        let stats = run(&[
            fixture.as_os_str(),
            "--archive".as_ref(),
            archive.as_os_str(),
        ]);
        assert_eq!(stats["records_archived"], 2880);
    }
    let (before_ids, before_rows) = snapshot(&archive).expect("stable archive");
    assert_eq!(before_rows, 2 * 2880);
    assert_eq!(before_ids.len(), 2880);
    let files_before = files_with(&archive, ".parquet").len();
    // A reader polls while compaction runs: every row stays visible at every moment.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (a2, s2, want) = (archive.clone(), stop.clone(), before_ids.clone());
    let reader = std::thread::spawn(move || {
        let mut samples = 0;
        while !s2.load(std::sync::atomic::Ordering::Relaxed) {
            if let Some((ids, rows)) = snapshot(&a2) {
                assert_eq!(ids, want, "a row went missing during compaction");
                assert!((2880..=2 * 2880).contains(&rows), "{rows} rows visible");
                samples += 1;
            }
        }
        samples
    });
    let out = Command::new(BIN)
        .args(["archive", "compact"])
        .arg(&archive)
        .output()
        .expect("compact");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let samples = reader.join().expect("reader");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let msg = String::from_utf8_lossy(&out.stdout);
    println!("{msg} ({samples} reader snapshots during compaction)");
    assert!(msg.contains("2880 duplicate tp_ids dropped"), "{msg}");
    let (after_ids, after_rows) = snapshot(&archive).expect("stable archive");
    assert_eq!(after_ids, before_ids);
    assert_eq!(after_rows, 2880);
    let files_after = files_with(&archive, ".parquet");
    assert!(files_after.len() < files_before);
    // One file per partition, nothing left in the staging area.
    let mut dirs: Vec<_> = files_after.iter().filter_map(|f| f.parent()).collect();
    dirs.dedup();
    assert_eq!(dirs.len(), files_after.len());
    assert!(!archive.join(".compact").exists());
}

#[test]
fn a_killed_writer_leaves_only_complete_files_and_the_next_run_cleans_up() {
    use std::io::Read;
    let tmp = tempfile::tempdir().expect("tmp");
    let archive = tmp.path().join("archive");
    // About 35k real records on a pipe, archived into small files so some finish early.
    let mut sample = Vec::new();
    for s in samples() {
        flate2::read::MultiGzDecoder::new(std::fs::File::open(s).expect("sample"))
            .read_to_end(&mut sample)
            .expect("gunzip");
    }
    for (round, delay_ms) in [10u64, 400, 900].into_iter().enumerate() {
        let mut child = Command::new(BIN)
            .args([
                "--no-record",
                "--stats",
                "none",
                "--archive-max-bytes",
                "200000",
                "--archive",
            ])
            .arg(&archive)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        let mut stdin = child.stdin.take().expect("stdin");
        let data = sample.repeat(3);
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
        if round == 0 {
            // The first kill comes once a file has been finished, so the check below sees
            // complete files next to the temporaries of the killed run.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while files_with(&archive, ".parquet").is_empty()
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL (a no-op if the run already ended)
        let _ = child.wait();
        let _ = writer.join();
        // Every visible file is a complete Parquet file.
        for f in files_with(&archive, ".parquet") {
            let file = std::fs::File::open(&f).expect("open");
            parquet::file::reader::SerializedFileReader::new(file)
                .unwrap_or_else(|e| panic!("round {round}: {} is not complete: {e}", f.display()));
        }
    }
    // The next run removes the temporaries of the killed ones and adds its own rows.
    let before = files_with(&archive, ".parquet").len();
    let temporaries = files_with(&archive, ".tmp").len();
    println!("after the kills: {before} complete files, {temporaries} temporaries");
    assert!(
        before > 0,
        "no file finished before the kills: the test saw nothing"
    );
    let stats = run(&[
        root()
            .join("tests/data/cloudtrail/grycap-cloudtrail-tracker.ndjson.gz")
            .as_os_str(),
        "--archive".as_ref(),
        archive.as_os_str(),
    ]);
    assert_eq!(stats["records_archived"], 142);
    assert!(
        files_with(&archive, ".tmp").is_empty(),
        "temporary files left after restart"
    );
    assert!(files_with(&archive, ".parquet").len() > before);
}
