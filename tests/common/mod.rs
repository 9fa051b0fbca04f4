//! Helpers shared by the integration tests: running the binary, reading the real
//! samples, parsing findings and the stats line.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

pub mod fault_proxy;
pub mod kafka;
pub mod moto;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_trailhound");

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `tests/data/cloudtrail/`.
pub fn data_dir() -> PathBuf {
    root().join("tests/data/cloudtrail")
}

/// `tests/data/cloudtrail/s3-layout/`.
pub fn s3_layout() -> PathBuf {
    data_dir().join("s3-layout")
}

/// The five `*.ndjson.gz` samples, sorted by name.
pub fn samples() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(data_dir())
        .expect("tests/data/cloudtrail exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".ndjson.gz"))
        .collect();
    out.sort();
    assert_eq!(
        out.len(),
        5,
        "expected the five real samples, found {out:?}"
    );
    out
}

/// Runs the binary over the five samples with `--archive ARCHIVE --no-record --stats
/// json`, requires success, and returns the stats object.
pub fn archive_samples(archive: &Path) -> Value {
    let out = Command::new(BIN)
        .args(samples())
        .arg("--archive")
        .arg(archive)
        .args(["--no-record", "--stats", "json"])
        .output()
        .expect("run trailhound");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    serde_json::from_str(err.lines().last().expect("stats line")).expect("stats json")
}

/// One sample by its file stem (`stratus-red-team`).
pub fn sample(name: &str) -> PathBuf {
    let p = data_dir().join(format!("{name}.ndjson.gz"));
    assert!(p.is_file(), "{} is missing", p.display());
    p
}

/// Decompresses a gzip file (every member) with flate2.
pub fn gunzip_file(path: &Path) -> Vec<u8> {
    let raw = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    gunzip(&raw)
}

/// Decompresses gzip bytes (every member).
pub fn gunzip(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(raw)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}

/// Compresses bytes as one gzip member (fast level: the tests build without
/// optimisation).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("gzip write");
    e.finish().expect("gzip finish")
}

/// The non-blank lines of an NDJSON buffer, without their newline.
pub fn lines(buf: &[u8]) -> Vec<&[u8]> {
    buf.split(|&b| b == b'\n')
        .filter(|l| l.iter().any(|b| !b.is_ascii_whitespace()))
        .collect()
}

/// Start offset of every line (blank ones included) of a buffer.
pub fn line_offsets(buf: &[u8]) -> Vec<usize> {
    let mut out = vec![0];
    for (i, &b) in buf.iter().enumerate() {
        if b == b'\n' && i + 1 < buf.len() {
            out.push(i + 1);
        }
    }
    out
}

/// The records joined by `sep`.
pub fn join(records: &[Vec<u8>], sep: &[u8]) -> Vec<u8> {
    records.join(sep)
}

/// A CloudTrail delivery object `{"Records":[…]}` holding the records verbatim.
pub fn records_object(records: &[Vec<u8>]) -> Vec<u8> {
    let mut o = b"{\"Records\":[".to_vec();
    o.extend(join(records, b","));
    o.extend_from_slice(b"]}");
    o
}

/// Re-indents compact JSON (two spaces per level) without touching any token, so key
/// order, escapes and number spellings stay those of the source.
pub fn pretty(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() * 2);
    let (mut in_str, mut esc, mut depth) = (false, false, 0usize);
    let nl = |out: &mut Vec<u8>, depth: usize| {
        out.push(b'\n');
        out.extend(std::iter::repeat_n(b' ', depth * 2));
    };
    for &b in raw {
        if in_str {
            out.push(b);
            match (esc, b) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => {
                in_str = true;
                out.push(b);
            }
            b'{' | b'[' => {
                out.push(b);
                depth += 1;
                nl(&mut out, depth);
            }
            b'}' | b']' => {
                depth -= 1;
                nl(&mut out, depth);
                out.push(b);
            }
            b',' => {
                out.push(b);
                nl(&mut out, depth);
            }
            b':' => out.extend_from_slice(b": "),
            _ => out.push(b),
        }
    }
    out
}

/// Files under `dir` (recursively) whose name ends with `suffix` (`""`: every file), in
/// path order; none when `dir` does not exist.
pub fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_ending(&p, suffix));
        } else if p.to_string_lossy().ends_with(suffix) {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Writes `bytes` to `dir/rel`, creating the folders.
pub fn write_file(dir: &Path, rel: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(&p, bytes).expect("write fixture");
    p
}

/// A stats object without its timing members (which differ between runs).
pub fn strip_timing(mut v: Value) -> Value {
    let o = v.as_object_mut().expect("stats object");
    o.remove("elapsed_s");
    o.remove("records_per_s");
    v
}

/// What a run of the binary left behind.
#[derive(Debug)]
pub struct Output {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Raw stdout.
    pub stdout: Vec<u8>,
    /// Stderr as text.
    pub stderr: String,
}

impl Output {
    /// Every stdout line parsed as JSON; panics on a line that is not a JSON object.
    pub fn findings(&self) -> Vec<Value> {
        self.stdout_lines()
            .iter()
            .map(|l| {
                let v: Value = serde_json::from_slice(l).unwrap_or_else(|e| {
                    panic!(
                        "stdout line is not JSON ({e}): {}",
                        String::from_utf8_lossy(l)
                    )
                });
                assert!(v.is_object(), "stdout line is not an object: {v}");
                assert_eq!(v["schema"], "trailhound.finding/1", "not a finding: {v}");
                v
            })
            .collect()
    }

    /// The raw stdout lines (without newline); stdout must end with a newline.
    pub fn stdout_lines(&self) -> Vec<&[u8]> {
        if self.stdout.is_empty() {
            return Vec::new();
        }
        assert_eq!(
            self.stdout.last(),
            Some(&b'\n'),
            "stdout does not end with a newline"
        );
        self.stdout[..self.stdout.len() - 1]
            .split(|&b| b == b'\n')
            .collect()
    }

    /// The `--stats json` object: the last line of stderr.
    pub fn stats(&self) -> Value {
        let last = self
            .stderr
            .lines()
            .last()
            .unwrap_or_else(|| panic!("stderr is empty; expected the stats line"));
        serde_json::from_str(last)
            .unwrap_or_else(|e| panic!("last stderr line is not JSON ({e}): {last}"))
    }

    /// Sorted (rule id, eventID) of every finding; a finding without an eventID string
    /// contributes its record_index instead.
    pub fn keys(&self) -> Vec<(String, String)> {
        keys(&self.findings())
    }
}

/// Sorted (rule id, eventID) pairs of findings.
pub fn keys(findings: &[Value]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = findings
        .iter()
        .map(|f| {
            let rule = f["rule"]["id"].as_str().expect("rule.id").to_string();
            let ev = match &f["event"]["eventID"] {
                Value::String(s) => s.clone(),
                other => format!("#{other}@{}", f["input"]["record_index"]),
            };
            (rule, ev)
        })
        .collect();
    out.sort();
    out
}

/// Runs the binary with `args`, feeding `stdin` (closed after writing).
pub fn run<S: AsRef<OsStr>>(args: &[S], stdin: &[u8]) -> Output {
    run_in(None, args, stdin)
}

/// Runs the binary in directory `dir` (or the current one).
pub fn run_in<S: AsRef<OsStr>>(dir: Option<&Path>, args: &[S], stdin: &[u8]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    let mut child = cmd.spawn().expect("spawn trailhound");
    let mut pipe = child.stdin.take().expect("stdin pipe");
    let input = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        // The binary may stop reading early (a usage error); that is not a test failure.
        let _ = pipe.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait for trailhound");
    writer.join().expect("stdin writer");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `detect` with `--stats json`, asserting that it exits 0 and that the
/// accounting invariant holds.
pub fn detect<S: AsRef<OsStr>>(args: &[S], stdin: &[u8]) -> Output {
    let mut all: Vec<&OsStr> = vec![OsStr::new("--stats"), OsStr::new("json")];
    all.extend(args.iter().map(AsRef::as_ref));
    let out = run(&all, stdin);
    assert_eq!(out.code, 0, "trailhound failed; stderr:\n{}", out.stderr);
    check_accounting(&out.stats());
    out
}

/// Asserts `records_in = kept + filtered + deduplicated + dead_lettered` and
/// `accounting_ok`, for the run and for each of its live sources (`sources[]`), whose
/// counts add up to the run's.
pub fn check_accounting(stats: &Value) {
    let balanced = |o: &Value, what: &str| -> [u64; 5] {
        let n = |k: &str| {
            o[k].as_u64()
                .unwrap_or_else(|| panic!("{what}.{k} missing: {stats}"))
        };
        let c = [
            n("records_in"),
            n("records_kept"),
            n("records_filtered"),
            n("records_deduplicated"),
            n("records_dead_lettered"),
        ];
        assert_eq!(
            c[0],
            c[1] + c[2] + c[3] + c[4],
            "accounting invariant broken in {what}: {stats}"
        );
        assert_eq!(o["accounting_ok"], true, "{what}: {stats}");
        c
    };
    let total = balanced(stats, "stats");
    if let Some(sources) = stats["sources"].as_array().filter(|s| !s.is_empty()) {
        let mut sum = [0u64; 5];
        for (i, s) in sources.iter().enumerate() {
            let c = balanced(s, &format!("sources[{i}]"));
            for (a, b) in sum.iter_mut().zip(c) {
                *a += b;
            }
        }
        assert_eq!(
            sum, total,
            "the sources' counts do not add up to the run's: {stats}"
        );
    }
}

/// A stats counter.
pub fn stat(stats: &Value, key: &str) -> u64 {
    stats[key]
        .as_u64()
        .unwrap_or_else(|| panic!("stats.{key} missing: {stats}"))
}

/// Removes the `"detected_at":"…"` member from every finding line, keeping the rest
/// of each line byte for byte.
pub fn without_detected_at(stdout: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(stdout).expect("stdout is UTF-8");
    let key = ",\"detected_at\":\"";
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        match line.find(key) {
            Some(i) => {
                let rest = &line[i + key.len()..];
                let close = rest.find('"').expect("detected_at is a string");
                out.push_str(&line[..i]);
                out.push_str(&rest[close + 1..]);
            }
            None => out.push_str(line),
        }
    }
    out.into_bytes()
}

/// The raw JSON text of `record` inside a finding line, as written by the binary.
pub fn raw_record(line: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Rec<'a> {
        #[serde(borrow)]
        record: Option<&'a serde_json::value::RawValue>,
    }
    let r: Rec<'_> = serde_json::from_slice(line).expect("finding line is JSON");
    r.record.map(|r| r.get().to_string())
}

/// Loads a schema from `schemas/`.
pub fn schema(name: &str) -> Value {
    let p = root().join("schemas").join(name);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).expect("schema is JSON")
}

/// A compiled validator for a schema in `schemas/`, with format checks on.
pub fn validator(name: &str) -> jsonschema::Validator {
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema(name))
        .unwrap_or_else(|e| panic!("{name} does not compile: {e}"))
}

/// Asserts that `instance` is valid, listing every error otherwise.
pub fn assert_valid(v: &jsonschema::Validator, instance: &Value, what: &str) {
    let errors: Vec<String> = v
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} is invalid: {errors:#?}\n{instance}"
    );
}

/// A small deterministic pseudo-random generator (xorshift64*).
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A random byte.
    pub fn byte(&mut self) -> u8 {
        (self.next_u64() >> 56) as u8
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Up to `n` sample records with an event time and distinct eventIDs, as (eventID, raw
/// line), in the order of the samples.
pub fn distinct_records(n: usize) -> Vec<(String, Vec<u8>)> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for s in samples() {
        let text = gunzip_file(&s);
        for line in lines(&text) {
            let Ok(v) = serde_json::from_slice::<Value>(line) else {
                continue;
            };
            let (Some(id), Some(_)) = (v["eventID"].as_str(), v["eventTime"].as_str()) else {
                continue;
            };
            if seen.insert(id.to_string()) {
                out.push((id.to_string(), line.to_vec()));
                if out.len() == n {
                    return out;
                }
            }
        }
    }
    out
}
