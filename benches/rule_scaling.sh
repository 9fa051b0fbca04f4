#!/usr/bin/env bash
# Instructions per record for parse only, 50 and 1,000 rules (callgrind: independent of
# the machine's load). Needs valgrind.
#   bash benches/rule_scaling.sh [--json-out F]
set -euo pipefail
json_out=""
if [ "${1:-}" = "--json-out" ]; then json_out="$2"; fi
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
if [ -n "$json_out" ]; then
  python3 -c "import json,sys; json.dump({'records': $records, 'per_record': {'parse_only': ${per[0]}, 'rules_50': ${per[50]}, 'rules_1000': ${per[1000]}}, 'matching_50': $m50, 'matching_1000': $m1000, 'matching_ratio': round($m1000/$m50, 3), 'total_ratio': round(${per[1000]}/${per[50]}, 3)}, open(sys.argv[1], 'w'), indent=1)" "$json_out"
fi
