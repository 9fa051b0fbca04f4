//! Writes NDJSON CloudTrail-like records for the state memory benchmark
//! (`benches/state_memory.sh`): `state_corpus RECORDS KEYS` prints RECORDS failed
//! console logins spread over KEYS distinct users, 0.5 ms of event time apart, each
//! with a unique eventID.

use std::io::{BufWriter, Write};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let records: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000_000);
    let keys: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000)
        .max(1);
    let out = std::io::stdout();
    let mut w = BufWriter::with_capacity(1 << 20, out.lock());
    let base = 1_717_236_000u64; // 2024-06-01T10:00:00Z
    for i in 0..records {
        let user = i.wrapping_mul(2_654_435_761) % keys;
        let ms = i / 2;
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(base * 1000 + ms);
        let time = humantime::format_rfc3339_seconds(t);
        let r = writeln!(
            w,
            r#"{{"eventVersion":"1.08","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/u{user}","accountId":"111122223333","userName":"u{user}"}},"eventTime":"{time}","eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin","awsRegion":"us-east-1","sourceIPAddress":"198.51.100.7","errorMessage":"Failed authentication","responseElements":{{"ConsoleLogin":"Failure"}},"eventID":"{:08x}-0000-4000-8000-{:012x}","eventType":"AwsConsoleSignIn","recipientAccountId":"111122223333"}}"#,
            i >> 48,
            i & 0xffff_ffff_ffff
        );
        if let Err(e) = r {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(());
            }
            return Err(e);
        }
    }
    w.flush()
}
