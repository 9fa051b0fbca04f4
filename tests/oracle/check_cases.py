#!/usr/bin/env python3
"""Check the hand-built cases of the SigmaHQ rules against the Sigma oracle.

    target/oracle-venv/bin/python tests/oracle/check_cases.py [--cases DIR] [--rules DIR] [-v]

For every CASES/<stem>.tests.yml (a YAML list of {name, expect: match|no_match,
record: one-line JSON CloudTrail record}) the rule RULES/**/<stem>.yml is run by
sigma_oracle.py on the case records, with both engines (DuckDB SQL, the oracle;
and the pure-Python cross-check). Reported as failures:

* a case whose `expect` differs from what the oracle says for its rule;
* the two engines disagreeing on a case;
* a malformed cases file (missing keys, bad expect, a record that is not a JSON
  object, a record whose YAML reading differs from its JSON reading), a cases file
  with no rule, a rule with no cases file, a cases file without at least one
  `match` and one `no_match`, a rule the oracle cannot convert.

The record text is taken from the file as written (so JSON number spellings are
kept) when it is a flow mapping that parses as JSON; otherwise the YAML value is
re-serialised. Exit status 0 when everything agrees, 1 otherwise."""
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
ORACLE = HERE / "sigma_oracle.py"


def load_cases(path: pathlib.Path):
    """Return (cases, errors); a case is dict(name, expect, text, line)."""
    src = path.read_text(encoding="utf-8")
    errors: list[str] = []
    try:
        root = yaml.compose(src, Loader=yaml.SafeLoader)
        data = yaml.safe_load(src)
    except yaml.YAMLError as e:
        return [], [f"not valid YAML: {e}"]
    if root is None or not isinstance(root, yaml.SequenceNode) or not isinstance(data, list):
        return [], ["top level must be a YAML list of cases"]
    cases = []
    for i, (node, item) in enumerate(zip(root.value, data)):
        where = f"case {i} (line {node.start_mark.line + 1})"
        if not isinstance(item, dict):
            errors.append(f"{where}: not a mapping")
            continue
        unknown = set(item) - {"name", "expect", "record"}
        if unknown:
            errors.append(f"{where}: unknown keys {sorted(unknown)}")
        name, expect, record = item.get("name"), item.get("expect"), item.get("record")
        if not isinstance(name, str) or not name.strip():
            errors.append(f"{where}: missing name")
        if expect not in ("match", "no_match"):
            errors.append(f"{where}: expect must be match or no_match, got {expect!r}")
        if not isinstance(record, dict):
            errors.append(f"{where}: record must be a mapping (a CloudTrail record)")
            continue
        rec_node = next(v for k, v in node.value if k.value == "record")
        raw = src[rec_node.start_mark.index:rec_node.end_mark.index]
        try:
            as_json = json.loads(raw)
        except ValueError:
            as_json = None
        if as_json is None:
            text = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str)
        elif as_json != record:
            errors.append(f"{where}: record reads differently as YAML and as JSON (duplicate keys? escapes?)")
            continue
        else:
            text = raw
        if "\n" in text:
            text = json.dumps(json.loads(text), ensure_ascii=False, separators=(",", ":"))
        cases.append({"name": name, "expect": expect, "text": text, "line": rec_node.start_mark.line + 1})
    return cases, errors


def run_oracle(rules_dir: str, events: str, engine: str, tmp: str):
    out = os.path.join(tmp, f"matches.{engine}.ndjson")
    summ = os.path.join(tmp, f"summary.{engine}.json")
    subprocess.run([sys.executable, str(ORACLE), rules_dir, events, "-o", out, "--summary", summ,
                    "--engine", engine], check=True)
    s = json.load(open(summ))
    by_file = {}
    for line in open(out):
        r = json.loads(line)
        by_file[r["file"]] = set(r["matches"])
    return by_file, s


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", default=str(REPO / "tests" / "sigmahq" / "cases"))
    ap.add_argument("--rules", default=str(REPO / "tests" / "sigmahq" / "rules"))
    ap.add_argument("-v", "--verbose", action="store_true", help="print every case")
    a = ap.parse_args(argv)

    rules_dir = pathlib.Path(a.rules)
    rule_files = {p.stem: p for p in sorted(rules_dir.rglob("*.yml"))}
    case_files = sorted(pathlib.Path(a.cases).glob("*.tests.yml"))
    problems: list[str] = []
    if not case_files:
        problems.append(f"no *.tests.yml under {a.cases}")
    for stem in sorted(set(rule_files) - {f.name[: -len(".tests.yml")] for f in case_files}):
        problems.append(f"{rule_files[stem].relative_to(rules_dir)}: no cases file")

    # One NDJSON with every case record; remember which case each line is.
    tmp = tempfile.mkdtemp(prefix="sigmahq_cases_")
    events = os.path.join(tmp, "cases.ndjson")
    index: list[tuple[str, str, dict]] = []  # (cases file, rule rel path, case)
    with open(events, "w", encoding="utf-8") as fh:
        for cf in case_files:
            stem = cf.name[: -len(".tests.yml")]
            cases, errs = load_cases(cf)
            problems += [f"{cf.name}: {e}" for e in errs]
            if stem not in rule_files:
                problems.append(f"{cf.name}: no rule {stem}.yml under {a.rules}")
                continue
            kinds = {c["expect"] for c in cases}
            if not {"match", "no_match"} <= kinds:
                problems.append(f"{cf.name}: needs at least one match and one no_match case")
            rel = str(rule_files[stem].relative_to(rules_dir))
            for c in cases:
                fh.write(c["text"] + "\n")
                index.append((cf.name, rel, c))

    try:
        results = {}
        for engine in ("duckdb", "python"):
            by_file, summary = run_oracle(str(rules_dir), events, engine, tmp)
            for f in summary.get("failed_to_convert", []) + summary.get("unsupported", []) + summary.get("runtime_errors", []):
                problems.append(f"{f['file']}: oracle ({engine}) cannot evaluate it: {f['error']}")
            if summary.get("bad_lines"):
                problems.append(f"oracle ({engine}) skipped {summary['bad_lines']} case records as not JSON objects")
            results[engine] = by_file
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    passed = failed = 0
    per_file: dict[str, list[int]] = {}
    for line, (cf, rel, c) in enumerate(index):
        got = {e: ("match" if line in results[e].get(rel, set()) else "no_match") for e in results}
        ok = got["duckdb"] == c["expect"] and got["python"] == got["duckdb"]
        per_file.setdefault(cf, [0, 0])[0 if ok else 1] += 1
        if ok:
            passed += 1
            if a.verbose:
                print(f"ok   {cf}:{c['line']}: {c['expect']}: {c['name']}")
        else:
            failed += 1
            detail = f"oracle says {got['duckdb']}"
            if got["python"] != got["duckdb"]:
                detail += f", python cross-check says {got['python']}"
            print(f"FAIL {cf}:{c['line']}: expect {c['expect']}, {detail}: {c['name']}")
    for p in problems:
        print(f"FAIL {p}")
    n_match = sum(1 for _, _, c in index if c["expect"] == "match")
    print(f"{len(per_file)} cases files, {len(index)} cases ({n_match} match, {len(index) - n_match} no_match), "
          f"{len(problems)} other problems")
    print(f"cases: {passed} passed, {failed + len(problems)} failed")
    return 0 if not failed and not problems else 1


if __name__ == "__main__":
    sys.exit(main())
