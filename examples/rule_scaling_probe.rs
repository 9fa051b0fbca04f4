//! Deterministic instruction counts for the rule-scaling comparison: run under
//! `valgrind --tool=callgrind` with `N` rules (0 = parse only) and `P` passes over the
//! real samples; the difference between P = 4 and P = 1, divided by 3, is the cost of
//! one pass. `benches/rule_scaling.sh` does exactly that.
//!
//! `cargo build --release --example rule_scaling_probe`
//! `target/release/examples/rule_scaling_probe N P`

use trailhound::event::RecordParser;

#[path = "../benches/support/generate.rs"]
mod generate;
use generate::{pack_of, sample_lines};

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(50);
    let passes: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let lines = sample_lines();
    let pack = (n > 0).then(|| pack_of(n));
    let mut parser = RecordParser::new();
    let (mut scratch, mut hits) = (Vec::new(), Vec::new());
    let mut total = 0;
    for l in lines.iter().cycle().take(lines.len() * passes) {
        parser.parse(l, |r| {
            if let (Ok(root), Some(p)) = (r, &pack) {
                p.evaluate(root, &mut scratch, &mut hits);
                total += hits.len();
            }
        });
    }
    println!("{total} hits over {} records", lines.len() * passes);
}
