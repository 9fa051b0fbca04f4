//! Matching cost against the number of rules: 50 SigmaHQ AWS rules versus 1,000 rules
//! generated from them by varying their values (issue 4's scaling target: ≤ 2×).
//! `cargo bench --bench rule_scaling`; instruction counts, which do not depend on the
//! machine's load: `examples/rule_scaling_probe.rs`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use trailhound::event::RecordParser;

#[path = "support/generate.rs"]
mod generate;
use generate::{pack_of, sample_lines};

fn bench_scaling(c: &mut Criterion) {
    let lines = sample_lines();
    let mut g = c.benchmark_group("rule scaling");
    g.throughput(Throughput::Elements(lines.len() as u64));
    let mut parser = RecordParser::new();
    g.bench_function("parse only", |b| {
        b.iter(|| {
            for l in &lines {
                parser.parse(l, |r| black_box(r.is_ok()));
            }
        })
    });
    for n in [50usize, 1000] {
        let pack = pack_of(n);
        eprintln!(
            "{n} rules: {} always tested, {} eventName literals, fields {:?}",
            pack.index().always().len(),
            pack.index().keys(),
            pack.index().fields()
        );
        let (mut scratch, mut hits) = (Vec::new(), Vec::new());
        g.bench_function(format!("parse+match {n} rules"), |b| {
            b.iter(|| {
                let mut total = 0;
                for l in &lines {
                    parser.parse(l, |r| {
                        if let Ok(root) = r {
                            pack.evaluate(root, &mut scratch, &mut hits);
                            total += hits.len();
                        }
                    });
                }
                black_box(total)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_scaling);
criterion_main!(benches);
