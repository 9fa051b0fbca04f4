#!/usr/bin/env bash
# Installs the local AWS emulator (moto server, from PyPI) that the integration tests run
# against on 127.0.0.1, and checks that it works.
#
#   scripts/moto.sh
#
# 1. creates the Python venv target/moto-venv from tests/moto/requirements.txt (only when
#    missing or when the requirements changed; needs python3 >= 3.11 with venv and pip, and
#    the Python package index);
# 2. smoke check: starts target/moto-venv/bin/moto_server -H 127.0.0.1 -p <free port> with
#    the request recorder on, waits until it answers (30 s at most), makes S3 calls with
#    boto3 (ListObjectsV2 with prefix, delimiter and start-after; GetObject) and checks that
#    they appear with their query strings in the recording, then stops the server by its PID.
#
# The tests start their own servers through tests/common/moto.rs; see tests/moto/README.md.
# Exits non-zero with a message when python3 is missing or too old, the install fails, the
# server does not come up, or the recording lacks the requests.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=target/moto-venv
PY="$VENV/bin/python"
SERVER="$VENV/bin/moto_server"
ROOT=$(pwd)
REQ=tests/moto/requirements.txt

if ! command -v python3 >/dev/null 2>&1; then
  echo "python3 not found: moto needs Python 3.11 or newer with venv and pip" >&2
  exit 2
fi
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "$(python3 --version): moto needs Python 3.11 or newer" >&2
  exit 2
fi

stamp="$VENV/.requirements.sha256"
want=$(sha256sum "$REQ" | cut -d' ' -f1)
if [ ! -x "$PY" ] || [ ! -x "$SERVER" ] || [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "==> creating $VENV from $REQ"
  rm -rf "$VENV"
  if ! python3 -m venv "$VENV"; then
    echo "python3 -m venv failed (on Debian/Ubuntu: apt-get install python3-venv)" >&2
    exit 2
  fi
  if ! "$PY" -m pip install --quiet --disable-pip-version-check -r "$REQ"; then
    echo "pip install -r $REQ failed" >&2
    rm -rf "$VENV"
    exit 2
  fi
  echo "$want" > "$stamp"
else
  echo "==> $VENV is up to date with $REQ"
fi
"$PY" -c 'import importlib.metadata as m; print("    moto", m.version("moto"), "boto3", m.version("boto3"), "botocore", m.version("botocore"))'

echo "==> smoke check: moto_server on 127.0.0.1"
work=$(mktemp -d "${TMPDIR:-/tmp}/trailhound-moto.XXXXXX")
pid=
stop_server() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  pid=
}
cleanup() {
  stop_server
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "moto smoke check failed: $*" >&2
  if [ -s "$work/stderr.log" ]; then
    echo "---- moto_server stderr (last 40 lines) ----" >&2
    tail -n 40 "$work/stderr.log" >&2
  fi
  exit 1
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port=
for attempt in 1 2 3 4 5; do
  try_port=$(free_port)
  : > "$work/stderr.log"
  (cd "$work" && MOTO_ENABLE_RECORDING=True MOTO_RECORDER_FILEPATH="$work/recording.jsonl" \
    exec "$ROOT/$SERVER" -H 127.0.0.1 -p "$try_port" >"$work/stdout.log" 2>"$work/stderr.log") &
  pid=$!
  probe="probe-$$-$attempt"
  deadline=$((SECONDS + 30))
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid" 2>/dev/null || true
      pid=
      if grep -q "Address already in use" "$work/stderr.log"; then
        echo "    port $try_port taken, trying another"
        continue 2
      fi
      fail "moto_server exited before it was ready"
    fi
    # The probe's query string ends up in this server's own recording, which tells our
    # server from anything else that might have taken the port meanwhile.
    if curl -sf -o /dev/null "http://127.0.0.1:$try_port/moto-api/?probe=$probe" \
      && grep -qs "$probe" "$work/recording.jsonl"; then
      port=$try_port
      break 2
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      fail "moto_server did not answer on 127.0.0.1:$try_port within 30 s"
    fi
    sleep 0.1
  done
done
[ -n "$port" ] || fail "no free port after 5 attempts"
endpoint="http://127.0.0.1:$port"
echo "    moto_server pid $pid ready on $endpoint"

curl -sf -o /dev/null -X POST "$endpoint/moto-api/recorder/reset-recording" || fail "reset-recording failed"
curl -sf -o /dev/null -X POST "$endpoint/moto-api/reset" || fail "/moto-api/reset failed"

echo "==> smoke check: S3 calls with boto3 are recorded with their query strings"
if ! "$PY" - "$endpoint" "$work/recording.jsonl" <<'EOF'
import json
import sys
import urllib.parse

import boto3

endpoint, recording = sys.argv[1], sys.argv[2]
s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    region_name="us-east-1",
    aws_access_key_id="test",
    aws_secret_access_key="test",
)
s3.create_bucket(Bucket="trailhound-smoke")
base = "AWSLogs/111122223333/CloudTrail/us-east-1/2024/01/"
keys = [f"{base}{d:02d}/f{i}.json.gz" for d in (1, 2) for i in (1, 2)]
for k in keys:
    s3.put_object(Bucket="trailhound-smoke", Key=k, Body=b"{}")

r = s3.list_objects_v2(Bucket="trailhound-smoke", Prefix=base, Delimiter="/")
got = [p["Prefix"] for p in r.get("CommonPrefixes", [])]
assert got == [base + "01/", base + "02/"], got
r = s3.list_objects_v2(Bucket="trailhound-smoke", Prefix=base, StartAfter=keys[1])
got = [o["Key"] for o in r.get("Contents", [])]
assert got == keys[2:], got
assert s3.get_object(Bucket="trailhound-smoke", Key=keys[0])["Body"].read() == b"{}"

# One JSON object per request; concurrent large requests can put two objects on one line,
# so read the file as a stream of objects rather than line by line.
text = open(recording).read()
dec, i, entries = json.JSONDecoder(), 0, []
while True:
    while i < len(text) and text[i].isspace():
        i += 1
    if i >= len(text):
        break
    obj, i = dec.raw_decode(text, i)
    entries.append(obj)

seen = []
for e in entries:
    u = urllib.parse.urlsplit(e["url"])
    seen.append((e["method"], urllib.parse.unquote(u.path), dict(urllib.parse.parse_qsl(u.query))))

def has(method, path, **query):
    return any(m == method and p == path and all(q.get(k) == v for k, v in query.items()) for m, p, q in seen)

want = [
    ("GET", "/trailhound-smoke", {"list-type": "2", "prefix": base, "delimiter": "/"}),
    ("GET", "/trailhound-smoke", {"list-type": "2", "prefix": base, "start-after": keys[1]}),
    ("GET", "/trailhound-smoke/" + keys[0], {}),
]
missing = [w for w in want if not has(w[0], w[1], **w[2])]
if missing:
    print("not in the recording:", missing, file=sys.stderr)
    print("recorded:", *seen, sep="\n  ", file=sys.stderr)
    sys.exit(1)
print(f"    {len(entries)} requests recorded, ListObjectsV2 (prefix, delimiter, start-after) and GetObject among them")
EOF
then
  fail "the S3 requests are missing from moto's recording"
fi

echo "==> stopping moto_server (pid $pid)"
stop_server
echo "moto: ready ($VENV)"
