#!/usr/bin/env bash
# Runs the Sigma reference oracle (tests/oracle/) for the vendored SigmaHQ AWS rules.
#
#   scripts/oracle.sh
#
# 0. checks that the vendored SigmaHQ rules are byte-identical to upstream (tests/sigmahq/SHA256SUMS);
# 1. creates the Python venv target/oracle-venv from tests/oracle/requirements.txt
#    (only when missing or when the requirements changed; needs python3 with venv and
#    pip, and the Python package index);
# 2. runs the oracle's self test (tests/oracle/tests/run_tests.py);
# 3. runs the SigmaHQ rules (tests/sigmahq/rules) over each real sample
#    tests/data/cloudtrail/*.ndjson.gz and writes, per sample,
#      target/oracle/<sample>.matches.ndjson   one line per rule:
#                                             {"rule_id","title","file","matches":[0-based line numbers]}
#      target/oracle/<sample>.summary.json     rules converted/failed, events, bad lines, timings
#    plus target/oracle/summary.txt (the table printed at the end);
# 4. reports which rules under tests/sigmahq/extra/ the oracle cannot evaluate (information only);
# 5. checks every tests/sigmahq/cases/*.tests.yml against the oracle (tests/oracle/check_cases.py).
#
# Exits non-zero when a vendored rule changed, the self test fails, a SigmaHQ rule cannot be evaluated, or a case
# disagrees with the oracle.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=target/oracle-venv
PY="$VENV/bin/python"
REQ=tests/oracle/requirements.txt
OUT=target/oracle

if ! command -v python3 >/dev/null 2>&1; then
  echo "python3 not found: the oracle needs Python 3.11 or newer with venv and pip" >&2
  exit 2
fi
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "$(python3 --version): the oracle needs Python 3.11 or newer (duckdb 2.0.0 requires it)" >&2
  exit 2
fi

echo "==> vendored SigmaHQ rules unchanged (tests/sigmahq/SHA256SUMS)"
(cd tests/sigmahq && sha256sum --check --quiet --strict SHA256SUMS)
n_listed=$(wc -l < tests/sigmahq/SHA256SUMS)
n_files=$(find tests/sigmahq/rules tests/sigmahq/extra -type f | wc -l)
if [ "$n_listed" -ne "$n_files" ]; then
  echo "tests/sigmahq: $n_files rule files but $n_listed in SHA256SUMS" >&2
  exit 1
fi

stamp="$VENV/.requirements.sha256"
want=$(sha256sum "$REQ" | cut -d' ' -f1)
if [ ! -x "$PY" ] || [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "==> creating $VENV from $REQ"
  rm -rf "$VENV"
  if ! python3 -m venv "$VENV"; then
    echo "python3 -m venv failed (on Debian/Ubuntu: apt-get install python3-venv)" >&2
    exit 2
  fi
  "$PY" -m pip install --quiet --disable-pip-version-check -r "$REQ"
  echo "$want" > "$stamp"
fi

echo "==> oracle self test"
"$PY" tests/oracle/tests/run_tests.py

echo "==> SigmaHQ rules over the real samples"
mkdir -p "$OUT"
shopt -s nullglob
samples=(tests/data/cloudtrail/*.ndjson.gz)
if [ ${#samples[@]} -eq 0 ]; then
  echo "no samples under tests/data/cloudtrail" >&2
  exit 1
fi
for f in "${samples[@]}"; do
  name=$(basename "$f" .ndjson.gz)
  "$PY" tests/oracle/sigma_oracle.py tests/sigmahq/rules "$f" \
    -o "$OUT/$name.matches.ndjson" --summary "$OUT/$name.summary.json"
done

"$PY" - "$OUT" "${samples[@]}" <<'EOF'
import json, os, sys
out, samples = sys.argv[1], sys.argv[2:]
rows, bad = [], []
for f in samples:
    name = os.path.basename(f)[: -len(".ndjson.gz")]
    s = json.load(open(os.path.join(out, name + ".summary.json")))
    matches = [json.loads(l) for l in open(os.path.join(out, name + ".matches.ndjson"))]
    pairs = sum(len(m["matches"]) for m in matches)
    records = len({i for m in matches for i in m["matches"]})
    rows.append((name, s["events"], s["bad_lines"], s["rules_run"], s["rules_with_matches"], pairs, records))
    for k in ("failed_to_convert", "unsupported", "runtime_errors"):
        bad += [f"{name}: {e['file']}: {e['error']}" for e in s[k]]
head = ("sample", "records", "skipped lines", "rules run", "rules matching", "(rule, record) matches", "records matched")
lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|"]
lines += ["| " + " | ".join(str(x) for x in r) + " |" for r in rows]
tot = [sum(r[i] for r in rows) for i in range(1, len(head))]
tot[2] = max(r[3] for r in rows)
tot[3] = "-"
lines.append("| total | " + " | ".join(str(x) for x in tot) + " |")
text = "\n".join(lines)
open(os.path.join(out, "summary.txt"), "w").write(text + "\n")
print(text)
for b in bad:
    print("FAIL", b)
sys.exit(1 if bad else 0)
EOF

echo "==> rules the oracle cannot evaluate (tests/sigmahq/extra, information only)"
"$PY" tests/oracle/sigma_oracle.py tests/sigmahq/extra tests/data/cloudtrail/stratus-red-team.ndjson.gz \
  -o "$OUT/extra.matches.ndjson" --summary "$OUT/extra.summary.json"
"$PY" - "$OUT/extra.summary.json" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
for k in ("failed_to_convert", "unsupported", "runtime_errors"):
    for e in s[k]:
        print(f"  {e['file']}: {e['error'][:160]}")
print(f"  {s['rules_run']} of {s['rule_files']} extra rule files evaluated")
EOF

echo "==> SigmaHQ rule cases (tests/sigmahq/cases)"
"$PY" tests/oracle/check_cases.py
echo "oracle: all checks passed"
