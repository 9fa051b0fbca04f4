#!/usr/bin/env bash
# Instructions per record for parse only, 50 and 1,000 rules (callgrind: independent of
# the machine's load). Needs valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --example rule_scaling_probe
bin=target/release/examples/rule_scaling_probe
count() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" "$2" 2>&1 | awk '/Collected/ {print $4}'; }
records=$("$bin" 0 1 | awk '{print $4}')
declare -A per
for n in 0 50 1000; do
  one=$(count "$n" 1); four=$(count "$n" 4)
  per[$n]=$(( (four - one) / 3 / records ))
  echo "rules=$n  instructions/record=${per[$n]}"
done
m50=$(( per[50] - per[0] )); m1000=$(( per[1000] - per[0] ))
echo "matching only: 50 rules ${m50}, 1000 rules ${m1000} instructions/record; ratio $(python3 -c "print(round($m1000/$m50, 3))"); total ratio $(python3 -c "print(round(${per[1000]}/${per[50]}, 3))")"
