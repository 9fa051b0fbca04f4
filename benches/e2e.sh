#!/usr/bin/env bash
# End-to-end benchmark: trailhound vs. the DuckDB baseline on the same corpus.
#
#   bash benches/e2e.sh [--skip-build] [--skip-duckdb] [--skip-memory] [--skip-latency]
#
# One run measures every workload of the performance targets (docs/performance.md):
# NDJSON and the S3 layout -> findings with the full rule set (built-in pack + the SigmaHQ
# AWS rules) next to DuckDB; detection + Parquet archive next to DuckDB's JSON->Parquet;
# the 57 SigmaHQ rules next to rsigma (when found) with the findings differential; rule
# scaling (callgrind, when valgrind is found); finding latency at a steady rate; max RSS
# over a long streamed input. Ends with one table of all of them (benches/e2e_summary.py).
#
# Environment (defaults in brackets; relative paths are taken from the repo root):
#   EVENTS      corpus size in events                  [500000]
#   SEED        corpus seed                            [1]
#   CORPUS_DIR  where corpora are cached               [target/bench-corpus]
#   RUNS        runs per measurement, best one counts  [3]
#   THREADS     trailhound --threads and DuckDB threads [2]
#   TRAILHOUND  binary to measure                      [target/release/trailhound]
#   RULES       rules added to the built-in pack       [tests/sigmahq/rules]
#   RSIGMA      rsigma 0.23.0 binary                   [rsigma on PATH]
#   RATE        latency: records/s                     [20000]
#   MEMORY_GB   memory: streamed input in GB           [10]
#
# Writes CORPUS_DIR/ev<EVENTS>-seed<SEED>/{ct.ndjson,s3/,corpus.json,trailhound.json,duck.json,e2e.json,
# archive.json,rsigma.json,scaling.json,latency.json,memory.json,summary.json}.
# See benches/README.md for the protocol.
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1  # keep __pycache__ out of benches/

usage() { sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; }

SKIP_BUILD=0
SKIP_DUCKDB=0
SKIP_MEMORY=0
SKIP_LATENCY=0
for arg in "$@"; do
    case "$arg" in
        --skip-build) SKIP_BUILD=1 ;;
        --skip-duckdb) SKIP_DUCKDB=1 ;;
        --skip-memory) SKIP_MEMORY=1 ;;
        --skip-latency) SKIP_LATENCY=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "e2e.sh: unknown argument: $arg" >&2; usage >&2; exit 2 ;;
    esac
done

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

EVENTS="${EVENTS:-500000}"
SEED="${SEED:-1}"
CORPUS_DIR="${CORPUS_DIR:-target/bench-corpus}"
RUNS="${RUNS:-3}"
THREADS="${THREADS:-2}"
TRAILHOUND="${TRAILHOUND:-${CARGO_TARGET_DIR:-target}/release/trailhound}"
RULES="${RULES:-tests/sigmahq/rules}"
RATE="${RATE:-20000}"
MEMORY_GB="${MEMORY_GB:-10}"

if ! [[ "$SEED" =~ ^[0-9]+$ ]]; then
    echo "e2e.sh: SEED must be a non-negative integer (got '$SEED')" >&2
    exit 2
fi
for v in EVENTS RUNS THREADS; do
    if ! [[ "${!v}" =~ ^[1-9][0-9]*$ ]]; then
        echo "e2e.sh: $v must be a positive integer (got '${!v}')" >&2
        exit 2
    fi
done

VENV=target/bench-venv
PEER=benches/peer
DIR="$CORPUS_DIR/ev${EVENTS}-seed${SEED}"

log() { printf '\n== %s\n' "$*"; }

# --- Python venv for the DuckDB baseline -----------------------------------
if [ "$SKIP_DUCKDB" = 0 ]; then
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating $VENV"
        python3 -m venv "$VENV"
    fi
    req_sum="$(sha256sum "$PEER/requirements.txt" | cut -d' ' -f1)"
    if [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null || true)" != "$req_sum" ]; then
        log "installing $PEER/requirements.txt into $VENV"
        "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$PEER/requirements.txt"
        echo "$req_sum" > "$VENV/.requirements.sha256"
    fi
fi

# --- corpus (cached per EVENTS+SEED; regenerated if the generator or samples change)
stamp="$(cat "$PEER/make_corpus.py" tests/data/cloudtrail/*.ndjson.gz | sha256sum | cut -d' ' -f1)"
if [ ! -f "$DIR/corpus.json" ] || [ "$(cat "$DIR/.stamp" 2>/dev/null || true)" != "$stamp" ]; then
    log "generating corpus in $DIR (EVENTS=$EVENTS SEED=$SEED)"
    rm -rf "$DIR.tmp" "$DIR"
    mkdir -p "$DIR.tmp"
    python3 "$PEER/make_corpus.py" --events "$EVENTS" --seed "$SEED" \
        --ndjson "$DIR.tmp/ct.ndjson" --s3-layout "$DIR.tmp/s3" > "$DIR.tmp/corpus.json.part"
    mv "$DIR.tmp/corpus.json.part" "$DIR.tmp/corpus.json"
    echo "$stamp" > "$DIR.tmp/.stamp"
    mv "$DIR.tmp" "$DIR"
else
    log "corpus cached in $DIR"
fi
cat "$DIR/corpus.json"

# --- build -----------------------------------------------------------------
if [ "$SKIP_BUILD" = 0 ]; then
    log "cargo build --release"
    cargo build --release
fi
if [ ! -x "$TRAILHOUND" ]; then
    echo "e2e.sh: trailhound binary not found or not executable: $TRAILHOUND" >&2
    exit 1
fi

# --- page cache --------------------------------------------------------------
log "warming the page cache"
cat "$DIR/ct.ndjson" > /dev/null
find "$DIR/s3" -type f -print0 | xargs -0 cat > /dev/null

# --- trailhound ------------------------------------------------------------------
log "trailhound: $TRAILHOUND, built-in pack + $RULES, threads $THREADS, best of $RUNS"
python3 benches/e2e_report.py measure --bin "$TRAILHOUND" --threads "$THREADS" --runs "$RUNS" \
    --input "ndjson=$DIR/ct.ndjson" --input "s3=$DIR/s3" --arg=--rules --arg="$RULES" \
    --keep-stats "$DIR" --out "$DIR/trailhound.json"

# --- DuckDB baseline ---------------------------------------------------------------
duck_args=()
if [ "$SKIP_DUCKDB" = 0 ]; then
    log "duckdb: variants objects,schema, threads $THREADS, best of $RUNS"
    rm -f "$DIR/duck.json"
    "$VENV/bin/python" "$PEER/duckdb_peer.py" --threads "$THREADS" \
        --ndjson "$DIR/ct.ndjson" --s3 "$DIR/s3" \
        --variants objects,schema --repeat "$RUNS" --json-out "$DIR/duck.json"
    duck_args=(--duck "$DIR/duck.json")
fi

# --- report ----------------------------------------------------------------------
python3 benches/e2e_report.py report --corpus "$DIR" --trailhound "$DIR/trailhound.json" \
    "${duck_args[@]}" --seed "$SEED" --runs "$RUNS" --threads "$THREADS" --repo "$REPO" \
    --out "$DIR/e2e.json"
echo
echo "wrote $DIR/e2e.json"

# --- detect + archive vs DuckDB's JSON->Parquet conversion (issue 5) ---------------
if [ "$SKIP_DUCKDB" = 0 ]; then
    log "detect + archive (Tailpipe schema) vs DuckDB JSON->Parquet, best of $RUNS"
    best=""
    for _ in $(seq "$RUNS"); do
        rm -rf "$DIR/archive"
        t0=$(date +%s.%N)
        "$TRAILHOUND" "$DIR/ct.ndjson" --rules "$RULES" --threads "$THREADS" --no-record --stats none --archive "$DIR/archive" > /dev/null
        t1=$(date +%s.%N)
        best=$(python3 -c "import sys; v=[float(x) for x in sys.argv[1:] if x]; print(min(v))" "$(python3 -c "print($t1 - $t0)")" "$best")
    done
    arch_bytes=$(du -sb "$DIR/archive" | cut -f1)
    rm -rf "$DIR/duckpq"
    "$VENV/bin/python" "$PEER/duckdb_peer.py" --threads "$THREADS" --ndjson "$DIR/ct.ndjson" \
        --variants objects --repeat 1 --parquet "$DIR/duckpq" > "$DIR/duck-parquet.jsonl"
    python3 - "$best" "$EVENTS" "$arch_bytes" "$DIR/duck-parquet.jsonl" "$DIR/archive.json" <<'PY'
import json, sys
best, events, arch_bytes, path, out = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
jobs = [json.loads(l) for l in open(path) if l.strip().startswith("{") and '"parquet"' in l]
json.dump({"trailhound_s": best, "events": events, "archive_bytes": arch_bytes, "duckdb": jobs}, open(out, "w"), indent=1)
print(f"{'job':46} {'seconds':>8} {'events/s':>10} {'bytes':>12}  trailhound ÷")
print(f"{'trailhound detect + archive (Tailpipe schema)':46} {best:8.3f} {events / best:10,.0f} {arch_bytes:12,}")
for j in jobs:
    ratio = (events / best) / j["events_per_s"]
    print(f"{'duckdb ' + j['parquet']:46} {j['seconds']:8.3f} {j['events_per_s']:10,.0f} {j['parquet_bytes']:12,}  {ratio:.2f}x")
PY
fi

# --- rsigma on the 57 SigmaHQ AWS rules (issue 12) --------------------------------
# rsigma 0.23.0 (`cargo install rsigma --locked --version 0.23.0`) from PATH or RSIGMA=.
RSIGMA="${RSIGMA:-$(command -v rsigma || true)}"
if [ -n "$RSIGMA" ] && [ -x "$RSIGMA" ]; then
    log "rsigma ($RSIGMA) vs trailhound on tests/sigmahq/rules, best of $RUNS"
    time_best() {  # time_best OUT CMD...: best wall seconds of RUNS runs, stdout of the last to OUT
        local out="$1"; shift
        local b=""
        for _ in $(seq "$RUNS"); do
            local t0 t1
            t0=$(date +%s.%N)
            "$@" < "$DIR/ct.ndjson" > "$out" 2> /dev/null
            t1=$(date +%s.%N)
            b=$(python3 -c "import sys; v=[float(x) for x in sys.argv[1:] if x]; print(min(v))" "$(python3 -c "print($t1 - $t0)")" "$b")
        done
        echo "$b"
    }
    rs_eval=$(time_best "$DIR/rsigma.ndjson" "$RSIGMA" engine eval -r tests/sigmahq/rules --include-event)
    rs_d1=$(RAYON_NUM_THREADS=1 time_best /dev/null "$RSIGMA" engine daemon -r tests/sigmahq/rules --input stdin --input-format json)
    rs_d2=$(RAYON_NUM_THREADS="$THREADS" time_best /dev/null "$RSIGMA" engine daemon -r tests/sigmahq/rules --input stdin --input-format json)
    # trailhound reading stdin, as rsigma does, and reading the file itself.
    th=$(time_best "$DIR/trailhound-sigmahq.ndjson" "$TRAILHOUND" --no-builtin --rules tests/sigmahq/rules --threads "$THREADS" --no-record --stats none)
    th_file=$(time_best /dev/null "$TRAILHOUND" "$DIR/ct.ndjson" --no-builtin --rules tests/sigmahq/rules --threads "$THREADS" --no-record --stats none)
    python3 - "$EVENTS" "$th" "$rs_eval" "$rs_d1" "$rs_d2" "$THREADS" "$th_file" "$DIR/rsigma.json" <<'PY'
import json, sys
events, th, ev, d1, d2, threads, th_file = int(sys.argv[1]), *map(float, sys.argv[2:6]), sys.argv[6], float(sys.argv[7])
best = min(ev, d1, d2)
json.dump({"events": events, "trailhound_stdin_s": th, "trailhound_file_s": th_file, "rsigma_eval_s": ev,
           "rsigma_daemon_1_s": d1, "rsigma_daemon_threads_s": d2, "threads": int(threads)},
          open(sys.argv[8], "w"), indent=1)
print(f"{'tool':44} {'seconds':>8} {'events/s':>10}  trailhound (stdin) ÷")
print(f"{'trailhound --threads ' + threads + ', stdin':44} {th:8.3f} {events / th:10,.0f}")
print(f"{'trailhound --threads ' + threads + ', the file':44} {th_file:8.3f} {events / th_file:10,.0f}")
for name, s in (("rsigma engine eval", ev), ("rsigma engine daemon RAYON_NUM_THREADS=1", d1),
                (f"rsigma engine daemon RAYON_NUM_THREADS={threads}", d2)):
    print(f"{name:44} {s:8.3f} {events / s:10,.0f}  {s / th:.2f}x")
print(f"against rsigma's best setting: {best / th:.2f}x reading stdin, {best / th_file:.2f}x reading the file")
PY
    log "findings: trailhound vs rsigma, (eventID, rule) pairs"
    python3 benches/compare_rsigma.py "$DIR/trailhound-sigmahq.ndjson" "$DIR/rsigma.ndjson" \
        --json-out "$DIR/differential.json" || true
else
    rm -f "$DIR/rsigma.json" "$DIR/differential.json"
    log "rsigma not found (PATH or RSIGMA=): skipped"
fi

# --- rule scaling: instructions per record, 50 vs 1,000 rules (callgrind) ---------------
if command -v valgrind > /dev/null; then
    log "rule scaling (callgrind): 50 vs 1,000 rules"
    bash benches/rule_scaling.sh --json-out "$DIR/scaling.json"
else
    rm -f "$DIR/scaling.json"
    log "valgrind not found: rule scaling skipped"
fi

# --- finding latency at a steady rate ---------------------------------------------------
if [ "$SKIP_LATENCY" = 0 ]; then
    log "latency: $RATE records/s on stdin, built-in pack + $RULES"
    seconds=$(python3 -c "print(min(20, $EVENTS / $RATE))")
    python3 benches/latency.py --bin "$TRAILHOUND" --corpus "$DIR/ct.ndjson" --rate "$RATE" \
        --seconds "$seconds" --threads "$THREADS" --json-out "$DIR/latency.json" -- --rules "$RULES"
else
    rm -f "$DIR/latency.json"
fi

# --- memory over a long streamed input --------------------------------------------------
if [ "$SKIP_MEMORY" = 0 ]; then
    log "memory: $MEMORY_GB GB streamed on stdin (never stored), then the archive on"
    GB="$MEMORY_GB" ARCHIVE_GB="$(python3 -c "print(max(0.2, $MEMORY_GB / 5))")" THREADS="$THREADS" \
        TRAILHOUND="$TRAILHOUND" RULES="$RULES" OUT="$DIR/memory" bash benches/memory.sh
    cp "$DIR/memory/memory.json" "$DIR/memory.json"
else
    rm -f "$DIR/memory.json"
fi

# --- one table ----------------------------------------------------------------------------
log "summary"
python3 benches/e2e_summary.py --dir "$DIR" --out "$DIR/summary.json"
