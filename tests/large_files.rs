//! Files too large to read whole (over 8 MiB): a plain file is read block by block by
//! the reader itself, a gzip'd one through the inflating pump. Both must give what the
//! same bytes give on stdin: the same records, findings, positions and dead letters,
//! including across block boundaries, a malformed line and an unterminated last line.

mod common;

use common::{detect, gzip, lines, sample, write_file};
use serde_json::Value;

/// The real samples repeated to about 20 MiB, one malformed line in the middle, the
/// last record without its newline.
fn big_ndjson() -> (Vec<u8>, u64) {
    let mut recs = Vec::new();
    for name in [
        "invictus-aws-dataset",
        "stratus-red-team",
        "otrf-security-datasets",
    ] {
        let raw = common::gunzip_file(&sample(name));
        recs.extend(lines(&raw).into_iter().map(<[u8]>::to_vec));
    }
    assert!(!recs.is_empty());
    let mut out = Vec::new();
    let mut n = 0u64;
    while out.len() < 20 << 20 {
        for r in &recs {
            out.extend_from_slice(r);
            out.push(b'\n');
            n += 1;
            if n == 7_000 {
                out.extend_from_slice(b"{\"eventName\": broken\n");
                n += 1;
            }
        }
    }
    out.pop();
    (out, n)
}

/// (rule id, line, byte offset) of every finding, sorted.
fn positions(findings: &[Value]) -> Vec<(String, u64, u64)> {
    let mut v: Vec<_> = findings
        .iter()
        .map(|f| {
            (
                f["rule"]["id"].as_str().unwrap_or_default().to_string(),
                f["input"]["line"].as_u64().unwrap_or(0),
                f["input"]["byte_offset"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    v.sort();
    v
}

/// Runs `detect --stats json ARGS` with stdin being `file` itself (not a pipe), asserting
/// that it exits 0 and that the accounting holds.
fn detect_with_stdin(args: &[&str], file: std::fs::File) -> common::Output {
    let out = std::process::Command::new(common::BIN)
        .args(["--stats", "json"])
        .args(args)
        .stdin(file)
        .output()
        .expect("run trailhound");
    let out = common::Output {
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_eq!(out.code, 0, "trailhound failed; stderr:\n{}", out.stderr);
    common::check_accounting(&out.stats());
    out
}

#[test]
fn large_plain_and_gzip_files_read_like_stdin() {
    let (data, lines_total) = big_ndjson();
    let t = tempfile::tempdir().expect("tempdir");
    let plain = write_file(t.path(), "big.ndjson", &data);
    let gz = write_file(t.path(), "big.ndjson.gz", &gzip(&data));
    let args = ["--no-dedup", "--no-record", "--threads", "2"];

    let stdin = detect(&args, &data);
    let s = stdin.stats();
    assert_eq!(s["records_in"], lines_total, "{s}");
    assert_eq!(s["records_dead_lettered"], 1, "{s}");
    assert_eq!(s["bytes_decoded"], data.len() as u64, "{s}");
    let want = positions(&stdin.findings());
    assert!(
        want.len() > 100,
        "the samples give findings: {}",
        want.len()
    );

    for (path, bytes_in) in [
        (&plain, data.len()),
        (&gz, std::fs::metadata(&gz).expect("gz size").len() as usize),
    ] {
        let mut a: Vec<&str> = args.to_vec();
        a.push(path.to_str().expect("utf-8 path"));
        let out = detect(&a, b"");
        let st = out.stats();
        for k in [
            "records_in",
            "records_kept",
            "records_dead_lettered",
            "bytes_decoded",
        ] {
            assert_eq!(
                st[k],
                s[k],
                "{k} of {} differs from stdin: {st}",
                path.display()
            );
        }
        assert_eq!(st["bytes_in"], bytes_in as u64, "{st}");
        assert_eq!(positions(&out.findings()), want, "{}", path.display());
        assert!(
            out.stderr.contains("line=7001") || out.stderr.contains("line 7001"),
            "the malformed line is named: {}",
            out.stderr
        );
    }

    // `trailhound < big.ndjson`: stdin is the file itself (read without a pump).
    for path in [&plain, &gz] {
        let out = detect_with_stdin(&args, std::fs::File::open(path).expect("open"));
        let st = out.stats();
        for k in [
            "records_in",
            "records_kept",
            "records_dead_lettered",
            "bytes_decoded",
        ] {
            assert_eq!(
                st[k],
                s[k],
                "{k} of < {} differs from a pipe: {st}",
                path.display()
            );
        }
        let findings = out.findings();
        assert_eq!(positions(&findings), want, "< {}", path.display());
        assert!(findings.iter().all(|f| f["input"]["name"] == "<stdin>"));
    }

    // Stdin that starts after the file's first line (`(read -r l; trailhound) < f`).
    use std::io::{Seek, SeekFrom};
    let first = data.iter().position(|&b| b == b'\n').expect("a first line") as u64 + 1;
    let mut f = std::fs::File::open(&plain).expect("open");
    f.seek(SeekFrom::Start(first)).expect("seek");
    let st = detect_with_stdin(&args, f).stats();
    assert_eq!(st["records_in"], lines_total - 1, "{st}");
    assert_eq!(st["bytes_in"], data.len() as u64 - first, "{st}");

    // The same with a gzip stream after a plain first line: the gzip is found where
    // stdin starts, not at the start of the file.
    let mut mixed = b"not part of the input\n".to_vec();
    let skip = mixed.len() as u64;
    mixed.extend(gzip(&data));
    let path = write_file(t.path(), "mixed.bin", &mixed);
    let mut f = std::fs::File::open(&path).expect("open");
    f.seek(SeekFrom::Start(skip)).expect("seek");
    let st = detect_with_stdin(&args, f).stats();
    assert_eq!(st["records_in"], lines_total, "{st}");
    assert_eq!(st["bytes_decoded"], data.len() as u64, "{st}");
}
