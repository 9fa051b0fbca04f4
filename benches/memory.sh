#!/usr/bin/env bash
# Memory over a long streamed input: max RSS of trailhound with the full rule set
# (built-in pack + the SigmaHQ AWS rules) while make_corpus.py streams records into its
# stdin (never stored), then the same with the archive on at its default buffer bounds.
#
#   bash benches/memory.sh
#
# Environment: GB (detection-only input size in GB, default 10), ARCHIVE_GB (default 2),
# THREADS (2), TRAILHOUND (target/release/trailhound), RULES (tests/sigmahq/rules, added to
# the built-in pack), OUT (target/bench-memory; OUT/memory.json gets both results).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
GB="${GB:-10}"
ARCHIVE_GB="${ARCHIVE_GB:-2}"
THREADS="${THREADS:-2}"
TRAILHOUND="${TRAILHOUND:-${CARGO_TARGET_DIR:-target}/release/trailhound}"
OUT="${OUT:-target/bench-memory}"
RULES="${RULES:-tests/sigmahq/rules}"
mkdir -p "$OUT"
rm -f "$OUT/memory.json"
# make_corpus.py records average 1,074 bytes (537 MB per 500k events).
events_for() { python3 -c "print(int($1 * 1e9 / 1074))"; }

run() {  # run NAME EVENTS ARGS...: streams EVENTS records into trailhound
    local name="$1" events="$2"; shift 2
    echo "== $name: $events events streamed on stdin"
    local t0 t1
    t0=$(date +%s.%N)
    python3 benches/peer/make_corpus.py --events "$events" --seed 7 --ndjson - 2> /dev/null \
        | /usr/bin/time -f '%M' -o "$OUT/$name.rss" \
            "$TRAILHOUND" --threads "$THREADS" --rules "$RULES" --no-record \
            --stats json --stats-file "$OUT/$name.stats.json" "$@" > /dev/null
    t1=$(date +%s.%N)
    python3 - "$name" "$OUT/$name.rss" "$OUT/$name.stats.json" "$t0" "$t1" "$OUT/memory.json" <<'PY'
import json, os, sys
name, rss_path, stats_path, t0, t1, out = sys.argv[1:]
rss_kb = int(open(rss_path).read().split()[-1])
st = json.load(open(stats_path))
wall = float(t1) - float(t0)
gb = st.get("bytes_decoded", 0) / 1e9
print(f"{name}: {st['records_in']:,} records, {gb:.2f} GB in {wall:.0f} s, "
      f"max RSS {rss_kb / 1024:.0f} MiB, findings {st['findings']['total']:,}, "
      f"accounting {'holds' if st['records_in'] == st['records_kept'] + st['records_filtered'] + st['records_deduplicated'] + st['records_dead_lettered'] else 'BROKEN'}")
res = json.load(open(out)) if os.path.exists(out) else {}
res[name] = {"records_in": st["records_in"], "GB": round(gb, 3), "wall_s": round(wall, 1),
             "max_rss_MiB": round(rss_kb / 1024, 1), "findings": st["findings"]["total"]}
json.dump(res, open(out, "w"), indent=1)
PY
}

run detect "$(events_for "$GB")"
rm -rf "$OUT/archive"
run detect+archive "$(events_for "$ARCHIVE_GB")" --archive "$OUT/archive"
rm -rf "$OUT/archive"
