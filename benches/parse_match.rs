//! Per-record costs on the real CloudTrail samples: parse (simd-json tape), match (the
//! built-in pack through the index, and without it), archive (a record into the Arrow
//! columns of the Tailpipe schema, and those columns written as a zstd Parquet file), and
//! framing + inflating one CloudTrail S3 object. `cargo bench --bench parse_match`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use trailhound::decode::{Candidate, FrameHandler, Position, detect_mode, frame, gunzip_into};
use trailhound::event::RecordParser;
use trailhound::rules::{LoadOptions, RulePack};

#[path = "support/generate.rs"]
#[allow(dead_code)]
mod generate;
use generate::sample_lines;

fn bench_records(c: &mut Criterion) {
    let lines = sample_lines();
    let bytes: usize = lines.iter().map(Vec::len).sum();
    let (pack, _) = RulePack::load(&LoadOptions {
        builtin: true,
        paths: vec![],
    })
    .expect("pack");
    let mut g = c.benchmark_group("records");
    g.throughput(Throughput::Elements(lines.len() as u64));
    let mut parser = RecordParser::new();
    g.bench_function("parse", |b| {
        b.iter(|| {
            for l in &lines {
                parser.parse(l, |r| black_box(r.is_ok()));
            }
        })
    });
    let (mut scratch, mut hits) = (Vec::new(), Vec::new());
    g.bench_function("parse+match (indexed)", |b| {
        b.iter(|| {
            let mut n = 0;
            for l in &lines {
                parser.parse(l, |r| {
                    if let Ok(root) = r {
                        pack.evaluate(root, &mut scratch, &mut hits);
                        n += hits.len();
                    }
                });
            }
            black_box(n)
        })
    });
    g.bench_function("parse+match (full scan)", |b| {
        b.iter(|| {
            let mut n = 0;
            for l in &lines {
                parser.parse(l, |r| {
                    if let Ok(root) = r {
                        pack.evaluate_unindexed(root, &mut hits);
                        n += hits.len();
                    }
                });
            }
            black_box(n)
        })
    });
    g.finish();
    eprintln!("{} records, {} bytes", lines.len(), bytes);
}

fn bench_archive(c: &mut Criterion) {
    use trailhound::archive::{BatchBuilder, RowMeta, file_properties, schema::schema};
    let lines = sample_lines();
    let mut g = c.benchmark_group("archive");
    g.throughput(Throughput::Elements(lines.len() as u64));
    g.sample_size(20);
    let mut parser = RecordParser::new();
    let meta = RowMeta {
        tp_id: "0123456789abcdef0123456789abcdef",
        source_type: "file",
        source_name: "bench",
        source_location: "tests/data/cloudtrail",
        ingest_micros: 1_700_000_000_000_000,
        timestamp_micros: 1_700_000_000_000_000,
    };
    let mut rows = |builder: &mut BatchBuilder| {
        for l in &lines {
            parser.parse(l, |r| {
                if let Ok(root) = r {
                    builder.append(root, &meta);
                }
            });
        }
    };
    g.bench_function("parse+rows (Arrow columns)", |b| {
        b.iter(|| {
            let mut builder = BatchBuilder::new();
            rows(&mut builder);
            black_box(builder.finish().num_rows())
        })
    });
    g.bench_function("parse+rows+Parquet (zstd)", |b| {
        b.iter(|| {
            let mut builder = BatchBuilder::new();
            rows(&mut builder);
            let batch = builder.finish();
            let mut out = Vec::new();
            let mut w =
                parquet::arrow::ArrowWriter::try_new(&mut out, schema(), Some(file_properties()))
                    .expect("writer");
            w.write(&batch).expect("write");
            w.close().expect("close");
            black_box(out.len())
        })
    });
    g.finish();
}

struct Count(usize);

impl FrameHandler for Count {
    fn candidate(&mut self, _: &[u8], _: Position) -> Candidate {
        self.0 += 1;
        Candidate::Handled
    }
    fn element(&mut self, _: &[u8], _: Position) {
        self.0 += 1;
    }
    fn dead_letter(&mut self, _: &[u8], _: Position, _: String) {}
}

fn bench_object(c: &mut Criterion) {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/cloudtrail/s3-layout/AWSLogs/123837392027/CloudTrail/us-east-1/2023/07/10"
    );
    let mut objects: Vec<_> = std::fs::read_dir(dir)
        .expect("fixture")
        .flatten()
        .map(|e| e.path())
        .collect();
    objects.sort();
    let gz = std::fs::read(&objects[0]).expect("object");
    let mut plain = Vec::new();
    gunzip_into(&gz, &mut plain, 1 << 30).expect("gunzip");
    let mut g = c.benchmark_group("s3 object");
    g.throughput(Throughput::Bytes(plain.len() as u64));
    let mut buf = Vec::new();
    g.bench_function("inflate", |b| {
        b.iter(|| {
            buf.clear();
            gunzip_into(&gz, &mut buf, 1 << 30).expect("gunzip");
            black_box(buf.len())
        })
    });
    g.bench_function("frame", |b| {
        b.iter(|| {
            let mut n = Count(0);
            frame(
                &plain,
                detect_mode(&plain),
                Position::default(),
                16 << 20,
                &mut n,
            );
            black_box(n.0)
        })
    });
    g.finish();
}

criterion_group!(benches, bench_records, bench_archive, bench_object);
criterion_main!(benches);
