#!/usr/bin/env python3
"""Self-test of the oracle. From the repository root: target/oracle-venv/bin/python tests/oracle/tests/run_tests.py
(scripts/oracle.sh creates that venv and runs this).
1. hand-written CloudTrail events x the SigmaHQ AWS rules == tests/handwritten.expected.json
   (every rule listed; [] = must stay silent)
2. synthetic rules (keywords, cidr, cased, exists, gt, numbers, parentheses, all of/1 of them,
   escaped and single-char wildcards, re|i, null vs '') == tests/synthetic.expected.json
3. the DuckDB oracle and the independent pure-Python evaluator agree on every rule over
   hand-written, synthetic and every tests/data/cloudtrail/*.ndjson.gz sample."""
import glob, json, os, shutil, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ORACLE = os.path.join(HERE, "..", "sigma_oracle.py")
RULES = os.path.join(HERE, "..", "..", "sigmahq", "rules")  # tests/sigmahq/rules
CORPORA = sorted(glob.glob(os.path.join(HERE, "..", "..", "data", "cloudtrail", "*.ndjson.gz")))  # tests/data/cloudtrail
assert os.path.isdir(RULES) and len(CORPORA) == 5, (RULES, CORPORA)
tmp = tempfile.mkdtemp(prefix="oracle_test_")
fails = 0


def run(rules, events, *extra):
    out = os.path.join(tmp, f"{len(os.listdir(tmp))}.ndjson")
    summ = out + ".summary.json"
    subprocess.run([sys.executable, ORACLE, rules, events, "-o", out, "--summary", summ, *extra], check=True)
    s = json.load(open(summ))
    assert not s["failed_to_convert"] and not s["runtime_errors"], s
    return {json.loads(l)["rule_id"]: json.loads(l)["matches"] for l in open(out)}


def check(name, got, expected):
    global fails
    bad = [(rid, e["file"], e["matches"], got.get(rid)) for rid, e in expected.items() if got.get(rid) != e["matches"]]
    extra = set(got) - set(expected)
    for rid, f, e, g in bad:
        print(f"FAIL {name}: {f}: expected {e} got {g}")
    for rid in extra:
        print(f"FAIL {name}: unexpected rule {rid}")
    fails += len(bad) + len(extra)
    print(f"{'ok  ' if not bad and not extra else 'FAIL'} {name}: {len(expected)} rules")


hw = os.path.join(HERE, "handwritten.ndjson")
syn_rules, syn = os.path.join(HERE, "rules-synthetic"), os.path.join(HERE, "synthetic.ndjson")
check("handwritten (duckdb)", run(RULES, hw), json.load(open(os.path.join(HERE, "handwritten.expected.json"))))
check("synthetic (duckdb)", run(syn_rules, syn), json.load(open(os.path.join(HERE, "synthetic.expected.json"))))
for rules, ev in [(RULES, hw), (syn_rules, syn)] + [(RULES, c) for c in CORPORA]:
    a, b = run(rules, ev), run(rules, ev, "--engine", "python")
    diff = [k for k in set(a) | set(b) if a.get(k) != b.get(k)]
    fails += len(diff)
    print(f"{'ok  ' if not diff else 'FAIL'} duckdb == python on {os.path.basename(ev)}: {len(a)} rules, "
          f"{sum(len(v) for v in a.values())} matches" + (f", disagree: {diff}" if diff else ""))
shutil.rmtree(tmp, ignore_errors=True)
print("PASS" if not fails else f"{fails} FAILURES")
sys.exit(1 if fails else 0)
