#!/usr/bin/env python3
"""Check the Sigma feature table (tests/sigma_features/) against the Sigma oracle.

    target/oracle-venv/bin/python tests/sigma_features/check_with_oracle.py [--dir DIR] [-v] [NAME ...]

For every DIR/<stem>.tests.yml beside DIR/<stem>.yml the rules of <stem>.yml are run
by tests/oracle/sigma_oracle.py (pySigma + DuckDB, and the pure-Python cross-check) on
the case records. A case may name one rule of a multi-document file with `rule: <id>`;
without it the case is about "any rule of the file" (as `trailhound rules test`).

* `trailhound_only_*` files are skipped: they rely on readings where trailhound
  deliberately differs from the oracle (see docs/records.md and the comment at the top
  of each such file).
* `disputed_*` files are run and every case is printed with what the oracle says; a
  difference there is reported as DISPUTED, not as a failure (the comment at the top of
  each file says why the case expects what it expects).
* Every other case must agree with both engines; a case file needs at least one
  `match` and one `no_match` case for each of its rules.

NAME restricts the run to the files whose stem contains NAME.
Exit status 0 when every non-disputed case agrees, 1 otherwise."""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import yaml

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "tests" / "oracle"))

import check_cases  # noqa: E402  (tests/oracle/check_cases.py)

ORACLE = check_cases.ORACLE


def rule_ids(path: pathlib.Path) -> list[str]:
    """Ids of the rule documents of a file (documents with an id and no action)."""
    out = []
    for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
        if isinstance(doc, dict) and doc.get("id") and doc.get("action") in (None, "repeat"):
            out.append(str(doc["id"]))
    return out


def load(path: pathlib.Path):
    """check_cases.load_cases, plus the optional `rule:` key of each case."""
    cases, errors = check_cases.load_cases(path)
    errors = [e for e in errors if not e.endswith("unknown keys ['rule']")]
    if not cases:
        return cases, errors
    src = path.read_text(encoding="utf-8")
    root = yaml.compose(src, Loader=yaml.SafeLoader)
    by_line = {}
    for node in root.value if root is not None else []:
        keys = {k.value: v for k, v in node.value}
        if "record" in keys:
            rule = keys["rule"].value if "rule" in keys else None
            by_line[keys["record"].start_mark.line + 1] = rule
    for c in cases:
        c["rule"] = by_line.get(c["line"])
    return cases, errors


def run_oracle(rules_dir: str, events: str, engine: str, tmp: str):
    """{(file, rule_id): set of matching lines}, and the summary."""
    out = os.path.join(tmp, f"matches.{engine}.ndjson")
    summ = os.path.join(tmp, f"summary.{engine}.json")
    subprocess.run([sys.executable, str(ORACLE), rules_dir, events, "-o", out, "--summary", summ,
                    "--engine", engine], check=True)
    with open(summ, encoding="utf-8") as fh:
        summary = json.load(fh)
    hits = {}
    with open(out, encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            hits[(r["file"], r["rule_id"])] = set(r["matches"])
    return hits, summary


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", default=str(HERE))
    ap.add_argument("-v", "--verbose", action="store_true", help="print every case")
    ap.add_argument("names", nargs="*")
    a = ap.parse_args(argv)
    d = pathlib.Path(a.dir)

    problems: list[str] = []
    index = []  # (cases file, rule file name, [rule ids], case, disputed)
    tmp = tempfile.mkdtemp(prefix="sigma_features_")
    rules_dir = os.path.join(tmp, "rules")
    os.mkdir(rules_dir)
    events = os.path.join(tmp, "cases.ndjson")
    skipped = []
    with open(events, "w", encoding="utf-8") as fh:
        for cf in sorted(d.glob("*.tests.yml")):
            stem = cf.name[: -len(".tests.yml")]
            if a.names and not any(n in stem for n in a.names):
                continue
            if stem.startswith("trailhound_only_"):
                skipped.append(cf.name)
                continue
            rule_file = d / f"{stem}.yml"
            if not rule_file.exists():
                problems.append(f"{cf.name}: no rule file {rule_file.name}")
                continue
            shutil.copy(rule_file, rules_dir)
            ids = rule_ids(rule_file)
            cases, errs = load(cf)
            problems += [f"{cf.name}: {e}" for e in errs]
            disputed = stem.startswith(("disputed_", "spec_"))
            for rid in ids:
                kinds = {c["expect"] for c in cases if c["rule"] in (None, rid)}
                if not {"match", "no_match"} <= kinds:
                    problems.append(f"{cf.name}: rule {rid} needs at least one match and one no_match case")
            for c in cases:
                if c["rule"] is not None and c["rule"] not in ids:
                    problems.append(f"{cf.name}:{c['line']}: rule {c['rule']} is not a rule of {rule_file.name}")
                    continue
                fh.write(c["text"] + "\n")
                index.append((cf.name, rule_file.name, [c["rule"]] if c["rule"] else ids, c, disputed))

    try:
        results = {}
        for engine in ("duckdb", "python"):
            hits, summary = run_oracle(rules_dir, events, engine, tmp)
            for f in (summary.get("failed_to_convert", []) + summary.get("unsupported", [])
                      + summary.get("runtime_errors", [])):
                msg = f"{f['file']} rule {f.get('rule_id')}: oracle ({engine}) cannot evaluate it: {f['error']}"
                if f["file"].startswith(("disputed_", "spec_")):
                    print(f"DISPUTED {msg}")
                else:
                    problems.append(msg)
            if summary.get("bad_lines"):
                problems.append(f"oracle ({engine}) skipped {summary['bad_lines']} case records")
            results[engine] = hits
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    passed = failed = disputed_same = disputed_diff = 0
    for line, (cf, rf, ids, c, disputed) in enumerate(index):
        got = {}
        for e, hits in results.items():
            known = [hits[(rf, i)] for i in ids if (rf, i) in hits]
            got[e] = "cannot-evaluate" if not known else ("match" if any(line in h for h in known) else "no_match")
        where = f"{cf}:{c['line']}"
        if disputed:
            if got["duckdb"] == c["expect"] and got["python"] == got["duckdb"]:
                disputed_same += 1
                if a.verbose:
                    print(f"ok   {where}: {c['expect']}: {c['name']} (disputed file, oracle agrees)")
            else:
                disputed_diff += 1
                print(f"DISPUTED {where}: expect {c['expect']}, oracle (duckdb) says {got['duckdb']}, "
                      f"python cross-check says {got['python']}: {c['name']}")
            continue
        ok = got["duckdb"] == c["expect"] and got["python"] == got["duckdb"]
        if ok:
            passed += 1
            if a.verbose:
                print(f"ok   {where}: {c['expect']}: {c['name']}")
        else:
            failed += 1
            detail = f"oracle says {got['duckdb']}"
            if got["python"] != got["duckdb"]:
                detail += f", python cross-check says {got['python']}"
            print(f"FAIL {where}: expect {c['expect']}, {detail}: {c['name']}")
    for p in problems:
        print(f"FAIL {p}")
    checked = len(index) - disputed_same - disputed_diff
    print(f"{checked} cases checked: {passed} agree with the oracle, {failed} disagree; "
          f"{len(problems)} other problems")
    print(f"disputed files: {disputed_same + disputed_diff} cases, the oracle differs on {disputed_diff}")
    print(f"skipped (trailhound_only_): {', '.join(skipped) if skipped else 'none'}")
    return 0 if not failed and not problems else 1


if __name__ == "__main__":
    sys.exit(main())
