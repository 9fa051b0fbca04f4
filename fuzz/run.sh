#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for SECONDS each, on the stable toolchain,
# from seed corpora made out of the repository's own data (fuzz/seeds.py), and prints
# one line per target: executions, executions/s, corpus size, crashes.
#
#   bash fuzz/run.sh [SECONDS] [TARGET ...]      # default: 30 s each, all targets
#
# Env: FUZZ_JOBS (parallel libFuzzer jobs per target, default 1), FUZZ_ARGS (extra
# libFuzzer flags, e.g. -runs=1000000 to stop after a million inputs), FUZZ_REPORT
# (write the table as JSON there). seconds/execs/s are measured, not the budget.
# A crash leaves its input in fuzz/artifacts/<target>/ and makes the script exit 1;
# copy it into fuzz/regressions/<target>/ so `cargo test --test fuzz_regressions`
# replays it forever.
set -euo pipefail
cd "$(dirname "$0")"

secs="${1:-30}"
shift || true
all=(decode record sigma_rule correlation metric_filter sql_filter config)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz (once)" >&2
  cargo install cargo-fuzz --locked --version 0.13.2 >&2
fi

python3 seeds.py seeds >&2
# Sanitizers need nightly-only flags; coverage-guided fuzzing itself works on stable.
t0=$(date +%s)
cargo fuzz build --sanitizer none -O >&2
echo "fuzz build: $(( $(date +%s) - t0 )) s" >&2

# -jobs makes libFuzzer write fuzz-<n>.log in the working directory; with one job the
# output goes straight to the target's log, so two runs of this script may run at once.
jobs_args=()
if [ "${FUZZ_JOBS:-1}" -gt 1 ]; then
  jobs_args=(-jobs="$FUZZ_JOBS" -workers="$FUZZ_JOBS")
fi
report=()
failed=0
printf '%-14s %8s %12s %10s %8s %8s\n' target seconds execs execs/s corpus crashes
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  log="artifacts/$t.log"
  before=$(find "artifacts/$t" -type f | wc -l)
  t1=$(date +%s)
  set +e
  cargo fuzz run --sanitizer none -O "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=1048576 \
    -print_final_stats=1 ${jobs_args[@]+"${jobs_args[@]}"} ${FUZZ_ARGS:-} >"$log" 2>&1
  rc=$?
  set -e
  took=$(( $(date +%s) - t1 ))
  logs=("$log")
  [ ${#jobs_args[@]} -gt 0 ] && logs+=(fuzz-*.log)
  execs=$( { cat "${logs[@]}" 2>/dev/null || true; } | awk '/stat::number_of_executed_units/ {s+=$2} END {print s+0}')
  [ ${#jobs_args[@]} -gt 0 ] && rm -f fuzz-*.log
  after=$(find "artifacts/$t" -type f | wc -l)
  crashes=$(( after - before ))
  if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then
    # A failure that left no artifact (an error of the harness itself).
    crashes=1
    tail -20 "$log" >&2
  fi
  corpus=$(find "corpus/$t" -type f | wc -l)
  rate=$(( execs / (took > 0 ? took : 1) ))
  printf '%-14s %8s %12s %10s %8s %8s\n' "$t" "$took" "$execs" "$rate" "$corpus" "$crashes"
  report+=("{\"target\":\"$t\",\"seconds\":$took,\"execs\":$execs,\"corpus\":$corpus,\"crashes\":$crashes}")
  [ "$crashes" -gt 0 ] && failed=1
done
if [ -n "${FUZZ_REPORT:-}" ]; then
  (IFS=,; echo "[${report[*]}]") > "$FUZZ_REPORT"
fi
exit "$failed"
