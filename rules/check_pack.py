#!/usr/bin/env python3
"""Check the built-in Sigma rule pack: metadata, sidecar tests, firing counts.

Usage:
    python3 rules/check_pack.py [--rules DIR] [--samples DIR] [--no-samples] [--verbose]

For every `<name>.yml` rule in the rules directory this script
  * checks the metadata the pack requires (title, UUID id, status, description,
    references, author, date, ATT&CK tags, logsource aws/cloudtrail, level,
    falsepositives) and that the detection uses only the Sigma subset the
    engine supports (see rules/README.md);
  * runs the sidecar `<name>.tests.yml` (a list of {name, expect, record}) and
    prints whether each expectation holds;
  * counts, per rule, how many records of the real CloudTrail samples in
    tests/data/cloudtrail/*.ndjson.gz it fires on.

It is standard library only: it carries a small parser for the YAML style the
pack is written in and a small evaluator of the supported Sigma subset. When
PyYAML happens to be importable it is used as a second opinion: every file is
parsed by both and any difference is reported as a failure.

The last line of output is `N passed, M failed` (one test = one expectation or
one metadata/parse check). Exit status 0 when nothing failed, 1 otherwise.
"""

import argparse
import glob
import gzip
import json
import os
import re
import sys
import uuid

# ----------------------------------------------------------------------------
# Minimal YAML reader for the subset used by the pack
# ----------------------------------------------------------------------------
#
# Supported: block mappings and block sequences (indentation by spaces),
# sequence items that are scalars or mappings, plain / 'single' / "double"
# quoted scalars, flow sequences of scalars ([a, 'b']), and flow mappings
# written as JSON on one line ({"k": ...}), read with json.loads. Full-line
# comments and a leading '---' are skipped. Anything else is an error.


class YamlError(Exception):
    pass


_INT_RE = re.compile(r"^[-+]?[0-9]+$")
_FLOAT_RE = re.compile(r"^[-+]?([0-9]+\.[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$")


def _plain_scalar(text):
    if text in ("", "~", "null", "Null", "NULL"):
        return None
    if text in ("true", "True", "TRUE"):
        return True
    if text in ("false", "False", "FALSE"):
        return False
    if _INT_RE.match(text):
        return int(text)
    if _FLOAT_RE.match(text):
        return float(text)
    return text


def _single_quoted(text, where):
    if len(text) < 2 or not text.endswith("'"):
        raise YamlError(f"{where}: unterminated single-quoted scalar")
    body = text[1:-1]
    if re.search(r"(?<!')'(?!')", body.replace("''", "")):
        raise YamlError(f"{where}: stray quote in single-quoted scalar")
    return body.replace("''", "'")


def _double_quoted(text, where):
    try:
        value = json.loads(text)
    except ValueError as e:
        raise YamlError(f"{where}: double-quoted scalar not readable: {e}")
    if not isinstance(value, str):
        raise YamlError(f"{where}: not a string")
    return value


def _split_flow_seq(body, where):
    items, cur, quote, i = [], "", None, 0
    while i < len(body):
        c = body[i]
        if quote:
            cur += c
            if c == quote:
                if quote == "'" and i + 1 < len(body) and body[i + 1] == "'":
                    cur += "'"
                    i += 1
                else:
                    quote = None
            elif c == "\\" and quote == '"' and i + 1 < len(body):
                cur += body[i + 1]
                i += 1
        elif c in "'\"":
            quote = c
            cur += c
        elif c == ",":
            items.append(cur.strip())
            cur = ""
        elif c in "[]{}":
            raise YamlError(f"{where}: nested flow collections are not supported")
        else:
            cur += c
        i += 1
    if quote:
        raise YamlError(f"{where}: unterminated quote in flow sequence")
    if cur.strip():
        items.append(cur.strip())
    return items


def _scalar(text, where):
    text = text.strip()
    if text.startswith("'"):
        return _single_quoted(text, where)
    if text.startswith('"'):
        return _double_quoted(text, where)
    if text.startswith("["):
        if not text.endswith("]"):
            raise YamlError(f"{where}: unterminated flow sequence")
        return [_scalar(t, where) for t in _split_flow_seq(text[1:-1], where)]
    if text.startswith("{"):
        try:
            return json.loads(text)
        except ValueError as e:
            raise YamlError(f"{where}: flow mapping is not one-line JSON: {e}")
    if text[:1] in ("&", "*", "!", "|", ">", "%", "@", "`"):
        raise YamlError(f"{where}: unsupported YAML construct {text[:1]!r}")
    if ": " in text or text.endswith(":") or " #" in text:
        raise YamlError(f"{where}: plain scalar needs quoting: {text!r}")
    return _plain_scalar(text)


def _strip_comment(line):
    """Drop a trailing ' # comment' outside quotes and brackets (plain text only)."""
    quote = None
    depth = 0
    for i, c in enumerate(line):
        if quote:
            if c == quote:
                quote = None
            elif c == "\\" and quote == '"':
                continue
        elif c in "'\"" and (i == 0 or line[i - 1] in " [{,:-"):
            quote = c
        elif c in "[{":
            depth += 1
        elif c in "]}":
            depth -= 1
        elif c == "#" and depth == 0 and (i == 0 or line[i - 1] == " "):
            return line[:i].rstrip()
    return line.rstrip()


def _key_split(text, where):
    """'key: value' -> (key, value-text or None)."""
    if text.startswith(("'", '"')):
        q = text[0]
        end = text.find(q, 1)
        if end < 0:
            raise YamlError(f"{where}: unterminated quoted key")
        key, rest = text[1:end], text[end + 1:]
        if not rest.startswith(":"):
            return None  # a quoted scalar, not a key
        rest = rest[1:]
    else:
        m = re.match(r"^([^\s:'\"][^:]*?):(\s|$)", text)
        if not m:
            return None
        key, rest = m.group(1), text[m.end(1) + 1:]
    if rest and not rest.startswith(" "):
        raise YamlError(f"{where}: expected a space after ':'")
    rest = rest.strip()
    return key, (rest if rest != "" else None)


def parse_yaml(text, filename="<yaml>"):
    if "\t" in text:
        raise YamlError(f"{filename}: tab character found")
    lines = []
    for n, raw in enumerate(text.splitlines(), 1):
        if raw.strip() == "" or raw.lstrip().startswith("#"):
            continue
        if n == 1 and raw.strip() == "---":
            continue
        content = raw.lstrip(" ")
        indent = len(raw) - len(content)
        if not content.startswith(("{", '"', "'")) and ("{" not in content):
            content = _strip_comment(content)
        lines.append((n, indent, content.rstrip()))
    pos = [0]

    def where(i):
        return f"{filename}:{lines[i][0]}"

    def parse_block(indent):
        n, ind, content = lines[pos[0]]
        if ind != indent:
            raise YamlError(f"{filename}:{n}: unexpected indentation")
        if content == "-" or content.startswith("- "):
            return parse_seq(indent)
        return parse_map(indent)

    def parse_value_after_key(rest, key_indent, i):
        if rest is not None:
            if rest in ("|", ">", "|-", ">-", "|+", ">+"):
                raise YamlError(f"{where(i)}: block scalars are not supported")
            return _scalar(rest, where(i))
        # nested block, or null
        if pos[0] < len(lines) and lines[pos[0]][1] > key_indent:
            return parse_block(lines[pos[0]][1])
        # a sequence may sit at the same indentation as its key
        if pos[0] < len(lines) and lines[pos[0]][1] == key_indent and (
                lines[pos[0]][2] == "-" or lines[pos[0]][2].startswith("- ")):
            return parse_seq(key_indent)
        return None

    def parse_map(indent, first=None):
        result = {}
        while pos[0] < len(lines):
            i = pos[0]
            n, ind, content = lines[i]
            if first is not None:
                content, ind, first = first, indent, None
            elif ind < indent:
                break
            elif ind > indent:
                raise YamlError(f"{where(i)}: unexpected indentation")
            if content == "-" or content.startswith("- "):
                break
            kv = _key_split(content, where(i))
            if kv is None:
                raise YamlError(f"{where(i)}: expected 'key: value'")
            key, rest = kv
            if key in result:
                raise YamlError(f"{where(i)}: duplicate key {key!r}")
            pos[0] += 1
            result[key] = parse_value_after_key(rest, indent, i)
        return result

    def parse_seq(indent):
        result = []
        while pos[0] < len(lines):
            i = pos[0]
            n, ind, content = lines[i]
            if ind < indent:
                break
            if ind > indent:
                raise YamlError(f"{where(i)}: unexpected indentation")
            if not (content == "-" or content.startswith("- ")):
                break
            item = content[1:].lstrip(" ")
            item_indent = indent + (len(content) - len(item))
            if item == "":
                pos[0] += 1
                if pos[0] < len(lines) and lines[pos[0]][1] > indent:
                    result.append(parse_block(lines[pos[0]][1]))
                else:
                    result.append(None)
                continue
            kv = None if item.startswith(("[", "{")) else _key_split(item, where(i))
            if kv is not None:
                result.append(parse_map(item_indent, first=item))
            else:
                pos[0] += 1
                result.append(_scalar(item, where(i)))
        return result

    if not lines:
        return None
    value = parse_block(lines[0][1])
    if pos[0] != len(lines):
        raise YamlError(f"{where(pos[0])}: unexpected content")
    return value


def load_yaml_file(path, problems):
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    value = parse_yaml(text, os.path.basename(path))
    try:
        import yaml  # optional second opinion
    except ImportError:
        return value
    other = yaml.safe_load(text)
    if _normalise(other) != _normalise(value):
        problems.append(f"{os.path.basename(path)}: PyYAML reads this file differently")
    return value


def _normalise(v):
    if hasattr(v, "isoformat") and not isinstance(v, str):
        return v.isoformat()
    if isinstance(v, dict):
        return {str(k): _normalise(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_normalise(x) for x in v]
    if isinstance(v, float) and v == int(v):
        return ("num", int(v))
    if isinstance(v, bool):
        return ("bool", v)
    if isinstance(v, int):
        return ("num", v)
    return v


# ----------------------------------------------------------------------------
# Sigma subset evaluator
# ----------------------------------------------------------------------------

ALLOWED_MODIFIERS = {"contains", "startswith", "endswith", "all", "fieldref"}


class RuleError(Exception):
    pass


def _sigma_pattern(value, modifier):
    """Compile one Sigma string (with * ? and backslash escapes) to a regex."""
    out = []
    i = 0
    s = value
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s) and s[i + 1] in "*?\\":
            out.append(re.escape(s[i + 1]))
            i += 2
            continue
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        else:
            out.append(re.escape(c))
        i += 1
    body = "".join(out)
    if modifier == "contains":
        body = ".*" + body + ".*"
    elif modifier == "startswith":
        body = body + ".*"
    elif modifier == "endswith":
        body = ".*" + body
    return re.compile(r"\A(?:" + body + r")\Z", re.IGNORECASE | re.DOTALL)


def _scalar_text(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return json.dumps(v)
    return v


class FieldTest:
    def __init__(self, key, values):
        parts = key.split("|")
        self.field = parts[0]
        self.path = self.field.split(".")
        mods = parts[1:]
        for m in mods:
            if m not in ALLOWED_MODIFIERS:
                raise RuleError(f"modifier {m!r} is outside the supported subset")
        self.all = "all" in mods
        self.refs = None
        if "fieldref" in mods:
            if len(mods) > 1:
                raise RuleError(f"{key}: fieldref is supported only on its own")
            refs = values if isinstance(values, list) else [values]
            if not refs or not all(isinstance(r, str) for r in refs):
                raise RuleError(f"{key}: fieldref takes field names")
            self.refs = [FieldTest(r, "*") for r in refs]
            return
        kinds = [m for m in mods if m != "all"]
        if len(kinds) > 1:
            raise RuleError(f"{key}: more than one of contains/startswith/endswith")
        self.kind = kinds[0] if kinds else None
        if not isinstance(values, list):
            values = [values]
        if not values:
            raise RuleError(f"{key}: empty value list")
        self.null = False
        self.patterns = []
        for v in values:
            if v is None:
                if self.kind or self.all or len(values) > 1:
                    raise RuleError(f"{key}: null only on its own, without modifiers")
                self.null = True
            elif isinstance(v, (dict, list)):
                raise RuleError(f"{key}: value must be a scalar or a list of scalars")
            else:
                self.patterns.append(_sigma_pattern(_scalar_text(v), self.kind))

    def leaves(self, record):
        nodes = [record]
        for key in self.path:
            nxt = []
            for node in nodes:
                stack = [node]
                while stack:
                    n = stack.pop()
                    if isinstance(n, list):
                        stack.extend(n)
                    elif isinstance(n, dict) and key in n:
                        nxt.append(n[key])
            nodes = nxt
        out = []
        stack = list(nodes)
        while stack:
            n = stack.pop()
            if isinstance(n, list):
                stack.extend(n)
            else:
                out.append(n)
        return out

    def matches(self, record):
        leaves = self.leaves(record)
        if self.refs is not None:
            mine = {str(_scalar_text(x)).lower() for x in leaves if x is not None and not isinstance(x, dict)}
            for ref in self.refs:
                theirs = {str(_scalar_text(x)).lower() for x in ref.leaves(record) if x is not None and not isinstance(x, dict)}
                if mine & theirs:
                    return True
            return False
        if self.null:
            return all(x is None for x in leaves)
        texts = [_scalar_text(x) for x in leaves if x is not None and not isinstance(x, dict)]
        hit = [any(p.match(t) for t in texts) for p in self.patterns]
        return all(hit) if self.all else any(hit)


class Selection:
    def __init__(self, name, body):
        if isinstance(body, dict):
            groups = [body]
        elif isinstance(body, list) and body and all(isinstance(x, dict) for x in body):
            groups = body
        else:
            raise RuleError(f"selection {name!r} must be a map or a list of maps")
        self.groups = [[FieldTest(k, v) for k, v in g.items()] for g in groups]

    def matches(self, record):
        return any(all(t.matches(record) for t in g) for g in self.groups)


_TOKEN_RE = re.compile(r"\s*(\(|\)|[A-Za-z0-9_*]+)")


def _tokenize(cond):
    pos, out = 0, []
    cond = cond.strip()
    while pos < len(cond):
        m = _TOKEN_RE.match(cond, pos)
        if not m:
            raise RuleError(f"cannot read condition at {cond[pos:]!r}")
        out.append(m.group(1))
        pos = m.end()
        while pos < len(cond) and cond[pos].isspace():
            pos += 1
    return out


def compile_condition(cond, selections):
    tokens = _tokenize(cond)
    i = [0]

    def peek():
        return tokens[i[0]] if i[0] < len(tokens) else None

    def take(expected=None):
        t = peek()
        if t is None or (expected is not None and t.lower() != expected):
            raise RuleError(f"condition {cond!r}: expected {expected or 'a term'}, got {t!r}")
        i[0] += 1
        return t

    def names_for(pattern):
        if pattern == "them":
            names = sorted(selections)
        else:
            rx = re.compile("^" + re.escape(pattern).replace(r"\*", ".*") + "$")
            names = sorted(n for n in selections if rx.match(n))
        if not names:
            raise RuleError(f"condition {cond!r}: {pattern!r} names no selection")
        return names

    def parse_or():
        left = parse_and()
        while (peek() or "").lower() == "or":
            take()
            right = parse_and()
            left = (lambda a, b: lambda r: a(r) or b(r))(left, right)
        return left

    def parse_and():
        left = parse_not()
        while (peek() or "").lower() == "and":
            take()
            right = parse_not()
            left = (lambda a, b: lambda r: a(r) and b(r))(left, right)
        return left

    def parse_not():
        if (peek() or "").lower() == "not":
            take()
            inner = parse_not()
            return lambda r: not inner(r)
        return parse_atom()

    def parse_atom():
        t = take()
        if t == "(":
            inner = parse_or()
            take(")")
            return inner
        if t in ("1", "all") or t.lower() == "all":
            if (peek() or "").lower() != "of":
                raise RuleError(f"condition {cond!r}: expected 'of' after {t!r}")
            take()
            sels = [selections[n] for n in names_for(take())]
            if t == "1":
                return lambda r: any(s.matches(r) for s in sels)
            return lambda r: all(s.matches(r) for s in sels)
        if t.lower() in ("and", "or", "not", "of", "them", ")"):
            raise RuleError(f"condition {cond!r}: unexpected {t!r}")
        if t not in selections:
            raise RuleError(f"condition {cond!r}: unknown selection {t!r}")
        sel = selections[t]
        return sel.matches

    fn = parse_or()
    if i[0] != len(tokens):
        raise RuleError(f"condition {cond!r}: trailing {tokens[i[0]:]}")
    return fn


class Rule:
    def __init__(self, doc):
        det = doc.get("detection")
        if not isinstance(det, dict):
            raise RuleError("no detection map")
        cond = det.get("condition")
        if not isinstance(cond, str):
            raise RuleError("condition must be a single string")
        sels = {}
        for name, body in det.items():
            if name == "condition":
                continue
            if name == "timeframe":
                raise RuleError("timeframe is outside the supported subset")
            sels[name] = Selection(name, body)
        self.matches = compile_condition(cond, sels)


# ----------------------------------------------------------------------------
# Metadata checks
# ----------------------------------------------------------------------------

LEVELS = {"informational", "low", "medium", "high", "critical"}
STATUSES = {"stable", "test", "experimental"}
TACTICS = {
    "reconnaissance", "resource-development", "initial-access", "execution",
    "persistence", "privilege-escalation", "defense-evasion", "stealth",
    "defense-impairment", "credential-access", "discovery", "lateral-movement",
    "collection", "command-and-control", "exfiltration", "impact",
}
TAG_TECHNIQUE_RE = re.compile(r"^attack\.t[0-9]{4}(\.[0-9]{3})?$")
REQUIRED = ["title", "id", "status", "description", "references", "author", "date",
            "tags", "logsource", "detection", "falsepositives", "level"]


def check_metadata(doc, ids):
    errs = []
    for key in REQUIRED:
        if key not in doc or doc[key] in (None, "", []):
            errs.append(f"missing {key}")
    if errs:
        return errs
    try:
        if str(uuid.UUID(str(doc["id"]))) != str(doc["id"]).lower():
            errs.append("id is not a canonical UUID")
    except ValueError:
        errs.append("id is not a UUID")
    if doc["id"] in ids:
        errs.append(f"id {doc['id']} is used by {ids[doc['id']]}")
    if doc["status"] not in STATUSES:
        errs.append(f"status {doc['status']!r}")
    if doc["level"] not in LEVELS:
        errs.append(f"level {doc['level']!r}")
    if doc["author"] != "trailhound":
        errs.append("author is not trailhound")
    if not re.match(r"^\d{4}-\d{2}-\d{2}$", str(doc["date"])):
        errs.append("date is not YYYY-MM-DD")
    if doc["logsource"] != {"product": "aws", "service": "cloudtrail"}:
        errs.append("logsource is not {product: aws, service: cloudtrail}")
    refs = doc["references"]
    if not isinstance(refs, list) or not all(
            isinstance(r, str) and r.startswith("https://docs.aws.amazon.com/") for r in refs):
        errs.append("references must be a list of AWS documentation URLs")
    tags = doc["tags"]
    if not isinstance(tags, list):
        errs.append("tags must be a list")
    else:
        tactics = [t for t in tags if isinstance(t, str) and t[7:] in TACTICS and t.startswith("attack.")]
        techniques = [t for t in tags if isinstance(t, str) and TAG_TECHNIQUE_RE.match(t)]
        if len(tactics) + len(techniques) != len(tags):
            errs.append(f"unknown tags: {[t for t in tags if t not in tactics + techniques]}")
        if not tactics or not techniques:
            errs.append("tags need at least one attack tactic and one technique")
    if not isinstance(doc["falsepositives"], list):
        errs.append("falsepositives must be a list")
    return errs


# ----------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------


def load_samples(sample_dir):
    records = []
    for path in sorted(glob.glob(os.path.join(sample_dir, "*.ndjson.gz"))):
        name = os.path.basename(path)[: -len(".ndjson.gz")]
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    records.append((name, json.loads(line)))
    return records


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rules", default=here)
    ap.add_argument("--samples", default=os.path.join(here, "..", "tests", "data", "cloudtrail"))
    ap.add_argument("--no-samples", action="store_true", help="skip the firing counts")
    ap.add_argument("--verbose", "-v", action="store_true", help="print passing tests too")
    args = ap.parse_args(argv)

    passed = failed = 0
    ids = {}
    rules = []
    rule_files = sorted(f for f in glob.glob(os.path.join(args.rules, "*.yml"))
                        if not f.endswith(".tests.yml"))
    for path in rule_files:
        base = os.path.basename(path)[:-4]
        problems = []
        try:
            doc = load_yaml_file(path, problems)
            if not isinstance(doc, dict):
                raise RuleError("not a mapping")
            problems += check_metadata(doc, ids)
            ids.setdefault(doc.get("id"), base)
            rule = Rule(doc)
        except (YamlError, RuleError) as e:
            print(f"FAIL {base}: {e}")
            failed += 1
            continue
        if problems:
            for p in problems:
                print(f"FAIL {base}: {p}")
            failed += 1
            continue
        passed += 1
        if args.verbose:
            print(f"ok   {base}: rule loads, metadata complete")

        tests_path = os.path.join(args.rules, base + ".tests.yml")
        if not os.path.exists(tests_path):
            print(f"FAIL {base}: no {base}.tests.yml")
            failed += 1
            rules.append((base, doc, rule))
            continue
        tproblems = []
        try:
            tests = load_yaml_file(tests_path, tproblems)
        except YamlError as e:
            print(f"FAIL {base}.tests.yml: {e}")
            failed += 1
            rules.append((base, doc, rule))
            continue
        for p in tproblems:
            print(f"FAIL {p}")
            failed += 1
        if not isinstance(tests, list) or not tests:
            print(f"FAIL {base}.tests.yml: not a non-empty list")
            failed += 1
            tests = []
        seen = set()
        for t in tests:
            name = t.get("name") if isinstance(t, dict) else None
            expect = t.get("expect") if isinstance(t, dict) else None
            record = t.get("record") if isinstance(t, dict) else None
            if isinstance(t, dict) and "record_file" in t and record is None:
                with open(os.path.join(args.rules, t["record_file"]), encoding="utf-8") as fh:
                    record = json.load(fh)
            if not name or expect not in ("match", "no_match") or not isinstance(record, dict):
                print(f"FAIL {base}: malformed test {t!r:.120}")
                failed += 1
                continue
            seen.add(expect)
            got = "match" if rule.matches(record) else "no_match"
            if got == expect:
                passed += 1
                if args.verbose:
                    print(f"ok   {base}: {name} -> {got}")
            else:
                failed += 1
                print(f"FAIL {base}: {name}: expected {expect}, got {got}")
        for need in ("match", "no_match"):
            if need not in seen:
                print(f"FAIL {base}: no '{need}' test")
                failed += 1
        rules.append((base, doc, rule))
        print(f"{'ok  ' if not args.verbose else '    '} {base}: {len(tests)} tests")

    if not args.no_samples:
        samples = load_samples(args.samples)
        files = sorted({n for n, _ in samples})
        total = len(samples)
        print()
        print(f"Firing counts on {total} real records ({', '.join(files)}):")
        header = f"{'rule':48} {'total':>6} {'%':>6}  " + " ".join(f"{f[:10]:>10}" for f in files)
        print(header)
        for base, doc, rule in rules:
            per = dict.fromkeys(files, 0)
            for n, rec in samples:
                if rule.matches(rec):
                    per[n] += 1
            hits = sum(per.values())
            pct = 100.0 * hits / total if total else 0.0
            print(f"{base:48} {hits:6d} {pct:5.1f}%  " + " ".join(f"{per[f]:10d}" for f in files))

    print()
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
