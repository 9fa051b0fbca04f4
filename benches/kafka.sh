#!/usr/bin/env bash
# Kafka end to end: records on a topic → trailhound run (consumer group, detection) →
# findings on a topic, against a local Kafka-protocol broker (Tansu via
# scripts/kafka-local), compared with the same corpus read from an NDJSON file in the
# same run.
#
#   bash benches/kafka.sh [--skip-build]
#
# Environment (defaults in brackets):
#   EVENTS      corpus size in events                 [200000]
#   SEED        corpus seed                           [1]
#   PARTITIONS  partitions of the records topic       [4]
#   THREADS     trailhound --threads                  [2]
#   TRAILHOUND  binary                                [target/release/trailhound]
#
# Prints one JSON object per measurement and a summary; writes
# target/bench-kafka/result.json.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
EVENTS="${EVENTS:-200000}"
SEED="${SEED:-1}"
PARTITIONS="${PARTITIONS:-4}"
THREADS="${THREADS:-2}"
TRAILHOUND="${TRAILHOUND:-${CARGO_TARGET_DIR:-target}/release/trailhound}"
OUT=target/bench-kafka
mkdir -p "$OUT"

if [[ "${1:-}" != --skip-build ]]; then
  cargo build --release --locked
fi
scripts/kafka-local fetch >/dev/null

VENV=target/bench-kafka-venv
if [[ ! -x $VENV/bin/python ]]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r benches/kafka/requirements.txt
fi

CORPUS="$OUT/ev$EVENTS-seed$SEED.ndjson"
if [[ ! -s $CORPUS ]]; then
  python3 benches/peer/make_corpus.py --events "$EVENTS" --seed "$SEED" --ndjson "$CORPUS"
fi

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BDIR=$(mktemp -d)/broker
scripts/kafka-local start --port "$PORT" --dir "$BDIR" >/dev/null
trap 'scripts/kafka-local stop --dir "$BDIR" --kill >/dev/null 2>&1 || true' EXIT
B=127.0.0.1:$PORT
scripts/kafka-local topics --dir "$BDIR" create records --partitions "$PARTITIONS" >/dev/null
scripts/kafka-local topics --dir "$BDIR" create findings --partitions 2 >/dev/null

echo "producing $EVENTS records to $PARTITIONS partitions" >&2
produced=$("$VENV/bin/python" benches/kafka/produce.py "$B" records "$CORPUS")
echo "$produced"

cat >"$OUT/run.yaml" <<YAML
sources:
  - kafka: {name: bench, brokers: "$B", topics: [records], group_id: bench-$(date +%s), stop_at_end: true,
            rdkafka_options: {broker.address.family: v4, session.timeout.ms: 6000, heartbeat.interval.ms: 500,
                              fetch.min.bytes: 1048576, fetch.wait.max.ms: 50, max.partition.fetch.bytes: 10485760}}
sinks:
  - kafka: {name: findings, brokers: "$B", topic: findings, rdkafka_options: {broker.address.family: v4}}
YAML

# CPU seconds of the broker process (utime + stime), to tell its share from trailhound's.
BPID=$(cat "$BDIR/broker.pid")
broker_cpu() { awk -v hz="$(getconf CLK_TCK)" '{print ($14+$15)/hz}' "/proc/$BPID/stat"; }
bc0=$(broker_cpu)
t0=$(date +%s.%N)
/usr/bin/time -f "%U %S" -o "$OUT/kafka.cpu" \
  "$TRAILHOUND" run --config "$OUT/run.yaml" --threads "$THREADS" --stats json 2>"$OUT/kafka.stderr"
t1=$(date +%s.%N)
bc1=$(broker_cpu)
tail -1 "$OUT/kafka.stderr" >"$OUT/kafka.stats.json"

t2=$(date +%s.%N)
"$TRAILHOUND" detect "$CORPUS" --threads "$THREADS" --stats json >/dev/null 2>"$OUT/file.stderr"
t3=$(date +%s.%N)
tail -1 "$OUT/file.stderr" >"$OUT/file.stats.json"

python3 - "$OUT" "$t0" "$t1" "$t2" "$t3" "$produced" "$bc0" "$bc1" <<'PY'
import json, sys
out, t0, t1, t2, t3, produced = sys.argv[1], *map(float, sys.argv[2:6]), json.loads(sys.argv[6])
broker_cpu = float(sys.argv[8]) - float(sys.argv[7])
th_cpu = sum(map(float, open(f"{out}/kafka.cpu").read().split()))
k = json.load(open(f"{out}/kafka.stats.json"))
f = json.load(open(f"{out}/file.stats.json"))
kw, fw = t1 - t0, t3 - t2
sink = next(s for s in k["sinks"] if s["kind"] == "kafka")
res = {
    "events": k["records_in"],
    "kafka": {"wall_s": round(kw, 3), "events_per_s": round(k["records_in"] / kw),
              "bytes_per_s": round(k["bytes_in"] / kw), "findings": k["findings"]["total"],
              "findings_delivered": sink["delivered"], "accounting_ok": k["accounting_ok"],
              "trailhound_cpu_s": round(th_cpu, 3), "broker_cpu_s": round(broker_cpu, 3),
              "events_per_trailhound_cpu_s": round(k["records_in"] / th_cpu),
              "source": k["sources"][0]["counters"]},
    "file": {"wall_s": round(fw, 3), "events_per_s": round(f["records_in"] / fw),
             "findings": f["findings"]["total"]},
    "producer": produced,
}
res["kafka_vs_file"] = round(res["kafka"]["events_per_s"] / res["file"]["events_per_s"], 3)
json.dump(res, open(f"{out}/result.json", "w"), indent=1)
print(json.dumps(res, indent=1))
assert k["records_in"] == f["records_in"], "every record read from the topic"
assert sink["delivered"] == k["findings"]["total"], "every finding delivered"
PY
