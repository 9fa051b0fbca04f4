#!/usr/bin/env python3
"""Differential oracle: which CloudTrail events does each Sigma rule match?

    target/oracle-venv/bin/python tests/oracle/sigma_oracle.py RULES_DIR EVENTS.ndjson[.gz] [-o matches.ndjson]
        [--summary summary.json] [--mode spec|stock] [--object-leaf leaves|json] [--with-sql]

For every *.yml under RULES_DIR the rule is parsed by pySigma and converted to a
DuckDB SQL predicate by pySigma-backend-duckdb (subclassed, see below); the
predicate is run in DuckDB over the events and, per rule, one line

    {"rule_id": ..., "title": ..., "file": ..., "matches": [0-based line numbers]}

is written to -o (default stdout). A summary (rules converted / failed to convert
and why / failed at run time, events read, bad input lines) goes to --summary
(default: stderr). Input lines that are empty or not a JSON object are skipped
but still count for numbering. Correlation rules are reported as not supported.

Why a subclass. The stock backend (0.1.4) quotes `userIdentity.arn` as the
column "userIdentity.arn" (no nested access), compares plain strings with a
case-sensitive `=`, leaves `_`/`%` inside values unescaped in ILIKE patterns,
compares numbers/booleans with `=` against text and does not quote `'` in
regexes. This oracle keeps pySigma's parsing, modifier handling and condition
tree and the backend's expression templates, but:

* Field access. Every field path used by a rule is resolved in Python per event
  into a list of leaf strings (column VARCHAR[]) plus a presence flag, and each
  atomic Sigma test `field <op> value` becomes
      len(list_filter(<col>, lambda x: <backend expression on x>)) > 0
  i.e. "some leaf value of the field satisfies it".
  Path resolution: split on '.', walk objects; an array met on the way is
  walked element-wise (any element); a key that itself contains dots ("a.b")
  is also found. Leaf -> string: string as is; true/false -> 'true'/'false';
  number -> its JSON spelling; null -> no value; array -> its elements;
  object -> (--object-leaf leaves, default) every scalar below it,
  (--object-leaf json) its compact JSON text.
* `field: null`  -> the field has no non-null leaf value (missing, JSON null,
  empty array). `field|exists: true` -> the key is present (even if null).
* --mode spec (default): strings compare case-insensitively
  (ILIKE ... ESCAPE '\\', `_` `%` `\\` in values escaped); |cased -> LIKE;
  numbers -> TRY_CAST(x AS DOUBLE) = n; booleans -> lower(x) = 'true'/'false';
  |lt/|gt/... numeric on TRY_CAST; |re -> DuckDB regexp_matches (RE2, search,
  (?i)(?m)(?s) flags), `'` quoted; |cidr -> exact IPv4 arithmetic in SQL (IPv6: pySigma's
  wildcard-prefix expansion);
  |fieldref -> case-insensitive equality (or starts/ends/contains) of any leaf
  pair; keywords (field-less values) -> contains-match against any leaf string
  of the whole event (case-insensitive, wildcards honoured).
  --mode stock: the backend's own string/number/bool/regex expressions (only
  field access, null/exists/fieldref/keywords handled as above) -- run it next
  to spec mode to see where the stock backend disagrees.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import pathlib
import re
import sys
import tempfile
import time
import traceback
from typing import Any

import duckdb
from sigma.collection import SigmaCollection
from sigma.conditions import ConditionFieldEqualsValueExpression, ConditionValueExpression
from sigma.conversion.state import ConversionState
from sigma.correlations import SigmaCorrelationRule
from sigma.processing.pipeline import ProcessingPipeline
from sigma.rule import SigmaRule
from sigma.types import (
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaString,
    SigmaTimestampPart,
    SpecialChars,
)
from sigma_backend_duckdb import DuckDBBackend

# ----------------------------------------------------------------------------
# Event side: field path -> list of leaf strings
# ----------------------------------------------------------------------------


class _Num(str):
    """A JSON number kept in its source spelling."""


def parse_event(line: bytes | str) -> Any:
    return json.loads(line, parse_int=_Num, parse_float=_Num, parse_constant=_Num)


def _resolve(node: Any, segs: list[str]):
    """Yield every node reached by the dotted path segs (arrays walked element-wise)."""
    if not segs:
        yield node
        return
    if isinstance(node, dict):
        for i in range(1, len(segs) + 1):
            k = ".".join(segs[:i])
            if k in node:
                yield from _resolve(node[k], segs[i:])
    elif isinstance(node, list):
        for el in node:
            yield from _resolve(el, segs)


def _leaves(node: Any, object_leaf: str, out: list[str]):
    if node is None:
        return
    if isinstance(node, bool):
        out.append("true" if node else "false")
    elif isinstance(node, str):  # includes _Num
        out.append(str(node))
    elif isinstance(node, list):
        for el in node:
            _leaves(el, object_leaf, out)
    elif isinstance(node, dict):
        if object_leaf == "json":
            out.append(_compact_json(node))
        else:
            for v in node.values():
                _leaves(v, object_leaf, out)
    else:  # pragma: no cover
        out.append(str(node))


def _compact_json(node: Any) -> str:
    def conv(n):
        if isinstance(n, _Num):
            return _RawJSON(str(n))
        if isinstance(n, dict):
            return {k: conv(v) for k, v in n.items()}
        if isinstance(n, list):
            return [conv(v) for v in n]
        return n

    return _raw_dumps(conv(node))


class _RawJSON(str):
    pass


def _raw_dumps(n: Any) -> str:
    if isinstance(n, _RawJSON):
        return str(n)
    if isinstance(n, dict):
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + _raw_dumps(v) for k, v in n.items()) + "}"
    if isinstance(n, list):
        return "[" + ",".join(_raw_dumps(v) for v in n) + "]"
    return json.dumps(n, ensure_ascii=False)


def field_values(event: Any, path: str, object_leaf: str) -> tuple[bool, list[str]]:
    nodes = list(_resolve(event, path.split(".")))
    out: list[str] = []
    for n in nodes:
        _leaves(n, object_leaf, out)
    return (len(nodes) > 0, out)


def all_leaves(event: Any) -> list[str]:
    out: list[str] = []
    _leaves(event, "leaves", out)
    return out


# ----------------------------------------------------------------------------
# Rule side: the backend subclass
# ----------------------------------------------------------------------------


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


class OracleBackend(DuckDBBackend):
    """pySigma DuckDB backend with per-field list columns (see module doc)."""

    def __init__(self, mode: str = "spec"):
        super().__init__(processing_pipeline=ProcessingPipeline(name="identity", items=[]))
        self.mode = mode
        self.fields: dict[str, str] = {}  # sigma field path -> column stem
        self.uses_keywords = False
        self._lambda = False

    # -- columns ------------------------------------------------------------
    def col(self, field: str) -> str:
        if field not in self.fields:
            self.fields[field] = f"f{len(self.fields)}"
        return self.fields[field]

    def escape_and_quote_field(self, field_name: str) -> str:
        if self._lambda:
            return "x"
        return '"' + self.col(field_name) + '_v"'

    def finalize_query_default(self, rule, query, index, state):
        return query

    # -- atomic conditions -----------------------------------------------------
    def convert_condition_field_eq_val(self, cond: ConditionFieldEqualsValueExpression, state: ConversionState):
        if self._lambda:
            return super().convert_condition_field_eq_val(cond, state)
        v = cond.value
        c = self.col(cond.field)
        if isinstance(v, SigmaNull):
            return f'(len("{c}_v") = 0)'
        if isinstance(v, SigmaExists):
            return f'"{c}_p"' if v.exists else f'(NOT "{c}_p")'
        if isinstance(v, SigmaFieldReference):
            return self._fieldref(cond.field, v)
        self._lambda = True
        try:
            inner = super().convert_condition_field_eq_val(cond, state)
        finally:
            self._lambda = False
        return f'(len(list_filter("{c}_v", lambda x: {inner})) > 0)'

    def _fieldref(self, field: str, ref: SigmaFieldReference) -> str:
        a, b = self.col(field), self.col(ref.field)
        if self.mode == "stock":  # the backend's own templates, applied to each leaf pair
            if ref.starts_with and ref.ends_with:
                tpl = self.field_equals_field_contains_expression
            elif ref.starts_with:
                tpl = self.field_equals_field_startswith_expression
            elif ref.ends_with:
                tpl = self.field_equals_field_endswith_expression
            else:
                tpl = self.field_equals_field_expression
            pred = tpl.format(field1="x", field2="y")
        elif ref.starts_with and ref.ends_with:
            pred = "contains(lower(x), lower(y))"
        elif ref.starts_with:
            pred = "starts_with(lower(x), lower(y))"
        elif ref.ends_with:
            pred = "ends_with(lower(x), lower(y))"
        else:
            pred = "lower(x) = lower(y)"
        return f'(len(list_filter("{a}_v", lambda x: len(list_filter("{b}_v", lambda y: {pred})) > 0)) > 0)'

    # keywords: value-only expressions -> any leaf of the whole event contains it
    def convert_condition_val_str(self, cond: ConditionValueExpression, state: ConversionState):
        self.uses_keywords = True
        s: SigmaString = cond.value
        if not s.startswith(SpecialChars.WILDCARD_MULTI):
            s = SpecialChars.WILDCARD_MULTI + s
        if not s.endswith(SpecialChars.WILDCARD_MULTI):
            s = s + SpecialChars.WILDCARD_MULTI
        pat = self._like_pattern(s)
        return f"(len(list_filter(\"kw_v\", lambda x: x ILIKE {pat} ESCAPE '\\')) > 0)"

    def convert_condition_val_num(self, cond: ConditionValueExpression, state: ConversionState):
        return self.convert_condition_val_str(
            ConditionValueExpression(SigmaString(str(cond.value)), cond.source), state
        )

    def convert_condition_val_re(self, cond: ConditionValueExpression, state: ConversionState):
        self.uses_keywords = True
        return f'(len(list_filter("kw_v", lambda x: regexp_matches(x, {self._re(cond.value)}))) > 0)'

    # -- value expressions (spec mode) ---------------------------------------
    def _like_pattern(self, s: SigmaString) -> str:
        conv = s.convert(escape_char="\\", wildcard_multi="%", wildcard_single="_", add_escaped="\\")
        return _sql_str(conv)

    def _re(self, r: SigmaRegularExpression) -> str:
        rx = r.escape((), "", False, True)  # only the (?ims) flag prefix
        return _sql_str(rx)

    def convert_condition_field_eq_val_str(self, cond, state):
        if self.mode == "stock":
            return super().convert_condition_field_eq_val_str(cond, state)
        return f"x ILIKE {self._like_pattern(cond.value)} ESCAPE '\\'"

    def convert_condition_field_eq_val_str_case_sensitive(self, cond, state):
        if self.mode == "stock":
            return super().convert_condition_field_eq_val_str_case_sensitive(cond, state)
        return f"x LIKE {self._like_pattern(cond.value)} ESCAPE '\\'"

    def convert_condition_field_eq_val_num(self, cond, state):
        if self.mode == "stock":
            return super().convert_condition_field_eq_val_num(cond, state)
        return f"TRY_CAST(x AS DOUBLE) = {cond.value}"

    def convert_condition_field_eq_val_bool(self, cond, state):
        if self.mode == "stock":
            return super().convert_condition_field_eq_val_bool(cond, state)
        return f"lower(x) = '{'true' if cond.value.boolean else 'false'}'"

    def convert_condition_field_eq_val_re(self, cond, state):
        if self.mode == "stock":
            return super().convert_condition_field_eq_val_re(cond, state)
        return f"regexp_matches(x, {self._re(cond.value)})"

    def convert_condition_field_eq_val_cidr(self, cond, state):
        if self.mode == "stock":
            return super().convert_condition_field_eq_val_cidr(cond, state)
        net = cond.value.network
        if net.version == 4:
            shift = 2 ** (32 - net.prefixlen)
            octs = [f"TRY_CAST(split_part(x, '.', {i}) AS UBIGINT)" for i in range(1, 5)]
            ok = " AND ".join(f"{o} < 256" for o in octs)
            num = " + ".join(f"{o} * {m}" for o, m in zip(octs, (16777216, 65536, 256, 1)))
            return (f"(regexp_full_match(x, '[0-9]{{1,3}}[.][0-9]{{1,3}}[.][0-9]{{1,3}}[.][0-9]{{1,3}}') "
                    f"AND {ok} AND ({num}) // {shift} = {int(net.network_address) // shift})")
        # IPv6: pySigma's own expansion into wildcard prefixes (approximate: no '::' forms)
        return super().convert_condition_field_eq_val_cidr(cond, state)

    def convert_condition_field_compare_op_val(self, cond, state):
        v: SigmaCompareExpression = cond.value
        if isinstance(v.number, SigmaTimestampPart):
            return super().convert_condition_field_compare_op_val(cond, state)
        op = {
            SigmaCompareExpression.CompareOperators.LT: "<",
            SigmaCompareExpression.CompareOperators.LTE: "<=",
            SigmaCompareExpression.CompareOperators.GT: ">",
            SigmaCompareExpression.CompareOperators.GTE: ">=",
            SigmaCompareExpression.CompareOperators.NEQ: "<>",
        }[v.op]
        return f"TRY_CAST(x AS DOUBLE) {op} {v.number}"

    field_timestamp_part_expression = "EXTRACT({timestamp_part} FROM TRY_CAST({field} AS TIMESTAMPTZ))"


# ----------------------------------------------------------------------------
# Independent cross-check: the same semantics evaluated in pure Python on
# pySigma's condition tree (no SQL). `--engine python` selects it.
# ----------------------------------------------------------------------------

import ipaddress as _ip
import re as _re

from sigma.conditions import ConditionAND, ConditionNOT, ConditionOR
from sigma.types import SigmaExpansion


class PyMatcher:
    def __init__(self, object_leaf: str):
        self.object_leaf = object_leaf
        self._rx: dict = {}

    def compile(self, rule: SigmaRule):
        ProcessingPipeline(name="identity", items=[]).apply(rule)
        return [c.parsed for c in rule.detection.parsed_condition]

    def _str_rx(self, s: SigmaString, cased: bool):
        key = (id(s), cased)
        if key not in self._rx:
            flags = _re.DOTALL | (0 if cased else _re.IGNORECASE)
            self._rx[key] = (_re.compile(str(s.to_regex().regexp), flags), s)  # keep s alive
        return self._rx[key][0]

    def _test(self, v, leaf: str) -> bool:
        if isinstance(v, SigmaCasedString):
            return self._str_rx(v, True).fullmatch(leaf) is not None
        if isinstance(v, SigmaString):
            return self._str_rx(v, False).fullmatch(leaf) is not None
        if isinstance(v, SigmaBool):
            return leaf.lower() == ("true" if v.boolean else "false")
        if isinstance(v, SigmaNumber):
            try:
                return float(leaf) == float(v.number)
            except ValueError:
                return False
        if isinstance(v, SigmaRegularExpression):
            fl = 0
            for f in v.flags:
                fl |= {"i": _re.IGNORECASE, "m": _re.MULTILINE, "s": _re.DOTALL}[SigmaRegularExpression.sigma_to_re_flag[f]]
            return _re.search(str(v.regexp), leaf, fl) is not None
        if isinstance(v, SigmaCIDRExpression):
            try:
                return _ip.ip_address(leaf) in v.network
            except ValueError:
                return False
        if isinstance(v, SigmaCompareExpression):
            try:
                x = float(leaf)
            except ValueError:
                return False
            n = float(v.number.number)
            O = SigmaCompareExpression.CompareOperators
            return {O.LT: x < n, O.LTE: x <= n, O.GT: x > n, O.GTE: x >= n, O.NEQ: x != n}[v.op]
        if isinstance(v, SigmaExpansion):
            return any(self._test(e, leaf) for e in v.values)
        raise NotImplementedError(f"python engine: value type {type(v).__name__}")

    def eval(self, node, ev) -> bool:
        if isinstance(node, ConditionAND):
            return all(self.eval(a, ev) for a in node.args)
        if isinstance(node, ConditionOR):
            return any(self.eval(a, ev) for a in node.args)
        if isinstance(node, ConditionNOT):
            return not self.eval(node.args[0], ev)
        if isinstance(node, ConditionFieldEqualsValueExpression):
            v = node.value
            present, leaves = field_values(ev, node.field, self.object_leaf)
            if isinstance(v, SigmaNull):
                return len(leaves) == 0
            if isinstance(v, SigmaExists):
                return present == v.exists
            if isinstance(v, SigmaFieldReference):
                _, other = field_values(ev, v.field, self.object_leaf)
                for x in leaves:
                    for y in other:
                        xl, yl = x.lower(), y.lower()
                        if v.starts_with and v.ends_with:
                            ok = yl in xl
                        elif v.starts_with:
                            ok = xl.startswith(yl)
                        elif v.ends_with:
                            ok = xl.endswith(yl)
                        else:
                            ok = xl == yl
                        if ok:
                            return True
                return False
            return any(self._test(v, leaf) for leaf in leaves)
        if isinstance(node, ConditionValueExpression):
            v = node.value
            if isinstance(v, SigmaString):
                if not v.startswith(SpecialChars.WILDCARD_MULTI):
                    v = SpecialChars.WILDCARD_MULTI + v
                if not v.endswith(SpecialChars.WILDCARD_MULTI):
                    v = v + SpecialChars.WILDCARD_MULTI
            elif isinstance(v, SigmaNumber):
                v = SigmaString("*" + str(v.number) + "*")
            node_v = v
            return any(self._test(node_v, leaf) for leaf in all_leaves(ev))
        raise NotImplementedError(f"python engine: node {type(node).__name__}")


# ----------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------


def load_rules(rules_dir: str):
    """Yield (file, SigmaRule | SigmaCorrelationRule | None, error).

    Each file is parsed on its own (one bad file does not hide the others);
    Sigma meta-filters (`filter:` documents, sigma-filters-specification) found
    anywhere under rules_dir are then applied to every rule they target.
    Correlation rules are yielded as such (the caller reports them)."""
    from sigma.filters import SigmaFilter

    parsed = []
    filters = []
    for f in sorted(pathlib.Path(rules_dir).rglob("*.yml")):
        rel = str(f.relative_to(rules_dir))
        try:
            coll = SigmaCollection.from_yaml(
                f.read_text(), collect_errors=True, collect_filters=True, resolve_references=False
            )
        except Exception as e:  # noqa
            parsed.append((rel, None, f"parse: {type(e).__name__}: {e}"))
            continue
        filters.extend(coll.filters)
        for r in coll.rules:
            if r.errors:
                parsed.append((rel, r, "parse: " + "; ".join(f"{type(e).__name__}: {e}" for e in r.errors)))
            else:
                parsed.append((rel, r, None))
        if not coll.rules and not coll.filters:
            errs = list(getattr(coll, "errors", []) or [])
            parsed.append((rel, None, "parse: no rule in file " + "; ".join(str(e) for e in errs)))
    for rel, r, err in parsed:
        if r is not None and err is None and filters and isinstance(r, SigmaRule):
            try:
                for flt in filters:
                    r = flt.apply_on_rule(r)
            except Exception as e:  # noqa
                err = f"filter: {type(e).__name__}: {e}"
        yield rel, r, err


def read_events(path: str):
    op = gzip.open if path.endswith(".gz") else open
    with op(path, "rb") as fh:
        for i, line in enumerate(fh):
            if not line.strip():
                yield i, None, "empty line"
                continue
            try:
                ev = parse_event(line)
            except Exception as e:  # noqa
                yield i, None, f"invalid JSON: {e}"
                continue
            if not isinstance(ev, dict):
                yield i, None, "not a JSON object"
                continue
            yield i, ev, None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("rules_dir")
    ap.add_argument("events", help="NDJSON (optionally .gz) of CloudTrail records, one per line")
    ap.add_argument("-o", "--out", help="matches NDJSON (default stdout)")
    ap.add_argument("--summary", help="summary JSON (default stderr)")
    ap.add_argument("--mode", choices=["spec", "stock"], default="spec")
    ap.add_argument("--object-leaf", choices=["leaves", "json"], default="leaves")
    ap.add_argument("--with-sql", action="store_true", help="add the SQL predicate to each output line")
    ap.add_argument("--engine", choices=["duckdb", "python"], default="duckdb",
                    help="duckdb: pySigma DuckDB backend SQL (the oracle); python: independent "
                         "pure-Python evaluation of the same semantics (cross-check; spec mode only)")
    a = ap.parse_args(argv)
    if a.engine == "python":
        return main_python(a)

    t0 = time.time()
    be = OracleBackend(mode=a.mode)
    converted: list[dict] = []
    failed: list[dict] = []
    unsupported: list[dict] = []
    for rel, rule, err in load_rules(a.rules_dir):
        meta = {"file": rel}
        if rule is not None:
            meta.update(rule_id=str(rule.id) if rule.id else None, title=rule.title)
        if err:
            failed.append({**meta, "error": err})
            continue
        if isinstance(rule, SigmaCorrelationRule):
            unsupported.append({**meta, "error": "correlation rules are not evaluated by this oracle"})
            continue
        try:
            qs = be.convert_rule(rule)
            if not qs:
                raise ValueError("backend returned no query")
            sql = " OR ".join(f"({q})" for q in qs)
            converted.append({**meta, "sql": sql, "level": str(rule.level) if rule.level else None})
        except Exception as e:  # noqa
            failed.append({**meta, "error": f"convert: {type(e).__name__}: {e}"})

    # Build the event table: one VARCHAR[] + presence flag per field path.
    fields = dict(be.fields)
    cols = [(path, stem) for path, stem in fields.items()]
    n_events = 0
    bad_lines: list[dict] = []
    tmpdir = tempfile.mkdtemp(prefix="sigma_oracle_")
    tmp = os.path.join(tmpdir, "cols.ndjson")
    with open(tmp, "w") as out:
        for i, ev, err in read_events(a.events):
            if err:
                bad_lines.append({"line": i, "why": err})
                continue
            n_events += 1
            row: dict[str, Any] = {"line": i}
            for path, stem in cols:
                p, vals = field_values(ev, path, a.object_leaf)
                row[stem + "_p"] = p
                row[stem + "_v"] = vals
            if be.uses_keywords:
                row["kw_v"] = all_leaves(ev)
            out.write(json.dumps(row, ensure_ascii=False) + "\n")

    con = duckdb.connect()
    coldefs = {"line": "BIGINT"}
    for _, stem in cols:
        coldefs[stem + "_p"] = "BOOLEAN"
        coldefs[stem + "_v"] = "VARCHAR[]"
    if be.uses_keywords:
        coldefs["kw_v"] = "VARCHAR[]"
    con.execute(
        "CREATE TABLE ev AS SELECT * FROM read_json(?, format='newline_delimited', columns=?, "
        "maximum_object_size=1073741824)",
        [tmp, coldefs],
    )
    os.remove(tmp)
    os.rmdir(tmpdir)

    outfh = open(a.out, "w") if a.out else sys.stdout
    runtime_errors: list[dict] = []
    n_ok = 0
    matched_rules = 0
    for r in converted:
        try:
            rows = con.execute(f"SELECT line FROM ev WHERE {r['sql']} ORDER BY line").fetchall()
        except Exception as e:  # noqa
            runtime_errors.append({k: r[k] for k in ("file", "rule_id", "title")} | {"error": f"{type(e).__name__}: {e}"})
            continue
        n_ok += 1
        m = [x[0] for x in rows]
        matched_rules += bool(m)
        rec = {"rule_id": r["rule_id"], "title": r["title"], "file": r["file"], "matches": m}
        if a.with_sql:
            rec["sql"] = r["sql"]
        outfh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    if a.out:
        outfh.close()

    summary = {
        "rules_dir": a.rules_dir,
        "events_file": a.events,
        "mode": a.mode,
        "object_leaf": a.object_leaf,
        "rule_files": len({x["file"] for x in converted + failed + unsupported}),
        "rules_converted": len(converted),
        "rules_run": n_ok,
        "rules_with_matches": matched_rules,
        "events": n_events,
        "bad_lines": len(bad_lines),
        "bad_line_examples": bad_lines[:10],
        "fields": sorted(fields),
        "failed_to_convert": failed,
        "unsupported": unsupported,
        "runtime_errors": runtime_errors,
        "seconds": round(time.time() - t0, 2),
        "versions": {"duckdb": duckdb.__version__},
    }
    try:
        from importlib.metadata import version

        summary["versions"].update(pysigma=version("pysigma"), backend=version("pysigma-backend-duckdb"))
    except Exception:  # noqa
        pass
    text = json.dumps(summary, indent=1, ensure_ascii=False)
    if a.summary:
        pathlib.Path(a.summary).write_text(text + "\n")
    else:
        print(text, file=sys.stderr)
    return 0 if not runtime_errors else 1


def main_python(a) -> int:
    t0 = time.time()
    pm = PyMatcher(a.object_leaf)
    rules, failed, unsupported = [], [], []
    for rel, rule, err in load_rules(a.rules_dir):
        meta = {"file": rel}
        if rule is not None:
            meta.update(rule_id=str(rule.id) if rule.id else None, title=rule.title)
        if err:
            failed.append({**meta, "error": err})
        elif isinstance(rule, SigmaCorrelationRule):
            unsupported.append({**meta, "error": "correlation rules are not evaluated by this oracle"})
        else:
            try:
                rules.append((meta, pm.compile(rule), []))
            except Exception as e:  # noqa
                failed.append({**meta, "error": f"convert: {type(e).__name__}: {e}"})
    n_events, bad = 0, []
    runtime_errors = {}
    for i, ev, err in read_events(a.events):
        if err:
            bad.append({"line": i, "why": err})
            continue
        n_events += 1
        for meta, trees, m in rules:
            if meta["file"] in runtime_errors:
                continue
            try:
                if any(pm.eval(t, ev) for t in trees):
                    m.append(i)
            except Exception as e:  # noqa
                runtime_errors[meta["file"]] = {**meta, "error": f"{type(e).__name__}: {e}"}
    outfh = open(a.out, "w") if a.out else sys.stdout
    for meta, _, m in rules:
        if meta["file"] in runtime_errors:
            continue
        outfh.write(json.dumps({"rule_id": meta.get("rule_id"), "title": meta.get("title"), "file": meta["file"], "matches": m}, ensure_ascii=False) + "\n")
    if a.out:
        outfh.close()
    summary = {"engine": "python", "rules_dir": a.rules_dir, "events_file": a.events, "object_leaf": a.object_leaf,
               "rules_converted": len(rules), "rules_run": len(rules) - len(runtime_errors), "events": n_events,
               "bad_lines": len(bad), "failed_to_convert": failed, "unsupported": unsupported,
               "runtime_errors": list(runtime_errors.values()), "seconds": round(time.time() - t0, 2)}
    text = json.dumps(summary, indent=1, ensure_ascii=False)
    if a.summary:
        pathlib.Path(a.summary).write_text(text + "\n")
    else:
        print(text, file=sys.stderr)
    return 0 if not runtime_errors else 1


if __name__ == "__main__":
    sys.exit(main())
