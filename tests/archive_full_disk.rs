//! A full archive disk on the real samples: the archive waits for space instead of
//! failing, the pipeline is held back meanwhile, and once space is back every kept
//! record ends up as exactly one row of a complete Parquet file, with the same findings
//! as a run that never ran out of space.
//!
//! Two ways to run out of space: a file-size limit (`prlimit --fsize`, `EFBIG`), which
//! any user may set and raise again on a running process, and a small tmpfs that is
//! filled up and then emptied (`ENOSPC`), where the test may mount one (root in a
//! machine or container that allows mounts).

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, check_accounting, samples, stat};
use serde_json::Value;

/// About 11,600 real records, as NDJSON.
fn corpus(dir: &Path) -> PathBuf {
    let mut data = Vec::new();
    for s in samples() {
        data.extend_from_slice(&common::gunzip_file(&s));
        if !data.ends_with(b"\n") {
            data.push(b'\n');
        }
    }
    common::write_file(dir, "corpus.ndjson", &data)
}

fn files_with(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    trailhound::fswalk::files_under(dir, &|p| p.to_string_lossy().ends_with(suffix))
        .unwrap_or_default()
}

/// Rows over every complete file; panics on a file that is not whole Parquet.
fn archived_rows(root: &Path) -> u64 {
    files_with(root, ".parquet")
        .iter()
        .map(|f| {
            let file = std::fs::File::open(f).expect("open");
            let r = parquet::file::reader::SerializedFileReader::new(file)
                .unwrap_or_else(|e| panic!("{} is not a whole Parquet file: {e}", f.display()));
            parquet::file::reader::FileReader::metadata(&r)
                .file_metadata()
                .num_rows() as u64
        })
        .sum()
}

/// The reference: the same input with no archive at all.
fn reference_findings(input: &Path) -> Vec<(String, String)> {
    let out = common::run(&[input.as_os_str()], b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.keys()
}

/// A detect run writing the archive to `root`, started under `wrap` (e.g. `prlimit`).
struct Archiving {
    child: Child,
    stderr: PathBuf,
    stdout: Option<std::thread::JoinHandle<Vec<u8>>>,
}

impl Archiving {
    fn start(wrap: &[&str], input: &Path, root: &Path, stderr: PathBuf) -> Archiving {
        let mut cmd = Command::new(wrap.first().copied().unwrap_or(BIN));
        if !wrap.is_empty() {
            cmd.args(&wrap[1..]).arg(BIN);
        }
        let mut child = cmd
            .arg(input)
            .arg("--archive")
            .arg(root)
            .args(["--archive-max-bytes", "400000", "--stats", "json"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("spawn trailhound");
        let mut out = child.stdout.take().expect("stdout");
        let stdout = std::thread::spawn(move || {
            let mut buf = Vec::new();
            out.read_to_end(&mut buf).expect("read findings");
            buf
        });
        Archiving {
            child,
            stderr,
            stdout: Some(stdout),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn wait_for_log(&mut self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !self.log().contains(what) {
            if let Ok(Some(s)) = self.child.try_wait() {
                panic!("exited ({s}) before logging {what:?}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "no {what:?} on stderr:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn still_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the end: exit code, findings, stats.
    fn finish(mut self) -> (i32, Vec<(String, String)>, Value) {
        let status = self.child.wait().expect("wait");
        let stdout = self
            .stdout
            .take()
            .expect("once")
            .join()
            .expect("stdout thread");
        let log = self.log();
        let stats: Value = serde_json::from_str(log.lines().last().unwrap_or_default())
            .unwrap_or_else(|e| panic!("no stats line ({e}):\n{log}"));
        let findings: Vec<Value> = stdout
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).expect("finding JSON"))
            .collect();
        (status.code().unwrap_or(-1), common::keys(&findings), stats)
    }
}

impl Drop for Archiving {
    fn drop(&mut self) {
        if self.still_running() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What every recovered run must show.
fn check_recovered(
    code: i32,
    findings: &[(String, String)],
    stats: &Value,
    log: &str,
    root: &Path,
    want: &[(String, String)],
) {
    assert_eq!(code, 0, "{log}");
    check_accounting(stats);
    assert_eq!(findings, want, "the same findings as without a full disk");
    let kept = stat(stats, "records_kept");
    assert!(kept > 10_000, "{stats}");
    assert_eq!(stat(stats, "records_archived"), kept, "{stats}");
    assert_eq!(archived_rows(root), kept, "one row per kept record");
    assert!(
        files_with(root, ".tmp").is_empty(),
        "no temporary file after the run"
    );
    assert!(log.contains("space is back, writing again after"), "{log}");
    for line in log.lines().filter(|l| l.contains("waiting for space")) {
        assert!(line.contains(".parquet.tmp"), "names the file: {line}");
    }
}

#[test]
fn a_file_size_limit_pauses_the_archive_until_it_is_raised() {
    let tmp = tempfile::tempdir().expect("tmp");
    let input = corpus(tmp.path());
    let want = reference_findings(&input);
    let root = tmp.path().join("archive");
    // Soft limit 150 kB (the hard limit stays unlimited so it can be raised again).
    let mut run = Archiving::start(
        &["prlimit", "--fsize=150000:unlimited", "--"],
        &input,
        &root,
        tmp.path().join("stderr"),
    );
    run.wait_for_log("waiting for space");
    let log = run.log();
    assert!(log.contains("File too large"), "{log}");
    // It waits, holding everything: no file of the stalled writer appears complete.
    std::thread::sleep(Duration::from_secs(2));
    assert!(run.still_running(), "{}", run.log());
    for f in files_with(&root, ".tmp") {
        let len = std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0);
        assert!(len <= 150_000, "{} is {len} bytes", f.display());
    }
    let before = archived_rows(&root);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        archived_rows(&root),
        before,
        "nothing finished while stalled"
    );
    let pid = run.child.id().to_string();
    let raised = Command::new("prlimit")
        .args(["--pid", &pid, "--fsize=unlimited:unlimited"])
        .status()
        .expect("prlimit");
    assert!(raised.success());
    let (code, findings, stats) = run.finish();
    let log = std::fs::read_to_string(tmp.path().join("stderr")).expect("stderr");
    check_recovered(code, &findings, &stats, &log, &root, &want);
}

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).expect("mount point");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_file_system_pauses_the_archive_until_space_is_freed() {
    let tmp = tempfile::tempdir().expect("tmp");
    let Some(fs) = Tmpfs::mount(&tmp.path().join("small"), "16m") else {
        // Mounting needs privileges; the file-size-limit test covers the same path.
        println!("skipped: cannot mount a tmpfs here");
        return;
    };
    let input = corpus(tmp.path());
    let want = reference_findings(&input);
    let root = fs.0.join("archive");
    // Leave about 200 kB free.
    let filler = fs.0.join("filler");
    let free = {
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(&fs.0)
            .output()
            .expect("df");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse::<u64>().ok())
            .expect("df avail")
    };
    std::fs::write(&filler, vec![0u8; (free - 200_000) as usize]).expect("filler");
    let mut run = Archiving::start(&[], &input, &root, tmp.path().join("stderr"));
    run.wait_for_log("waiting for space");
    assert!(
        run.log().contains("No space left on device"),
        "{}",
        run.log()
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(run.still_running(), "{}", run.log());
    std::fs::remove_file(&filler).expect("free the space");
    let (code, findings, stats) = run.finish();
    let log = std::fs::read_to_string(tmp.path().join("stderr")).expect("stderr");
    check_recovered(code, &findings, &stats, &log, &root, &want);
}

#[test]
fn a_stop_request_while_waiting_for_space_ends_the_run_with_an_archive_error() {
    let tmp = tempfile::tempdir().expect("tmp");
    let input = corpus(tmp.path());
    let root = tmp.path().join("archive");
    let mut run = Archiving::start(
        &["prlimit", "--fsize=150000:unlimited", "--"],
        &input,
        &root,
        tmp.path().join("stderr"),
    );
    run.wait_for_log("waiting for space");
    // SAFETY: kill(2) with the pid of a child this test spawned.
    unsafe {
        libc::kill(run.child.id() as i32, libc::SIGTERM);
    }
    let status = run.child.wait().expect("wait");
    let log = run.log();
    assert_ne!(status.code(), Some(0), "{log}");
    assert!(
        log.contains("stopped while waiting for space"),
        "the error says why: {log}"
    );
    // What is visible is whole; what was not finished is not counted as archived.
    archived_rows(&root);
}
