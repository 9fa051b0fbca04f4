#!/usr/bin/env bash
# Memory of the stateful stage: RECORDS records (default 10 million) over KEYS distinct
# group keys (default 1 million), streamed on stdin (never stored), through a
# correlation that keeps every group live for a day. Prints max RSS, records/s and the
# state counters for the default bounds and for tighter ones.
#   benches/state_memory.sh [RECORDS] [KEYS]
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDS=${1:-10000000}
KEYS=${2:-1000000}
cargo build --release --locked --quiet --bin trailhound --example state_corpus
BIN=target/release/trailhound
GEN=target/release/examples/state_corpus
run() {
  local label=$1; shift
  local stats rss
  stats=$(mktemp); rss=$(mktemp)
  "$GEN" "$RECORDS" "$KEYS" | /usr/bin/time -f "%M" -o "$rss" \
    "$BIN" --no-builtin --no-record --stats-file "$stats" "$@" >/dev/null
  python3 - "$label" "$stats" "$(cat "$rss")" <<'PY'
import json, sys
label, path, rss_kb = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = json.load(open(path))
st = s.get("state") or {}
print(f"{label:<44} max RSS {rss_kb/1024:7.1f} MiB  {s['records_per_s']:>9.0f} rec/s  "
      f"records {s['records_in']}  groups peak {st.get('correlation_groups_peak')}  "
      f"groups evicted {st.get('correlation_groups_evicted')}  dedup evicted {st.get('dedup_evicted')}  "
      f"accounting {'ok' if s['accounting_ok'] else 'BROKEN'}")
PY
  rm -f "$stats" "$rss"
}
echo "state memory: $RECORDS records, $KEYS distinct group keys, $(nproc) cores"
R=(--rules benches/state_rules.yml)
run "defaults (1M groups, 2M events, dedup 1M)" "${R[@]}"
run "max 100k groups" "${R[@]}" --max-groups 100000
run "dedup only (no correlation)"
run "no state (--no-dedup, no correlation)" --no-dedup
