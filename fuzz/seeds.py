#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets from the repository's own data.

usage: fuzz/seeds.py OUT_DIR

OUT_DIR/<target>/ gets one file per seed (named by its content's hash, as libFuzzer
names its own finds). Nothing is downloaded: the seeds are the real CloudTrail samples
and S3-layout objects of tests/data, the built-in rules and SigmaHQ rules of rules/ and
tests/, the metric-filter patterns and filter expressions they and docs/ contain, and
the example configuration files.
"""

import glob
import gzip
import hashlib
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rel(*p):
    return os.path.join(ROOT, *p)


def files(*patterns):
    out = []
    for p in patterns:
        out.extend(sorted(glob.glob(rel(p), recursive=True)))
    return [f for f in out if os.path.isfile(f)]


def records(limit_per_file=40):
    out = []
    for f in files("tests/data/cloudtrail/*.ndjson.gz"):
        with gzip.open(f, "rb") as fh:
            for i, line in enumerate(fh):
                if i >= limit_per_file:
                    break
                out.append(line.rstrip(b"\n"))
    return out


def rule_files():
    return [
        f
        for f in files("rules/*.yml", "tests/sigmahq/rules/**/*.yml", "tests/sigma_features/*.yml",
                       "tests/fixtures/rules/**/*.yml", "tests/fixtures/broken_rules/**/*.yml")
        if not f.endswith(".tests.yml")
    ]


def read(f):
    with open(f, "rb") as fh:
        return fh.read()


def seeds():
    recs = records()
    s = {k: [] for k in ("decode", "record", "sigma_rule", "correlation", "metric_filter",
                         "sql_filter", "config")}
    # decode: objects as delivered, and the same records in every framing.
    s["decode"] += [read(f) for f in files("tests/data/cloudtrail/s3-layout/**/*")]
    s["decode"].append(read(rel("tests/fixtures/oddities.ndjson")))
    for i in range(0, len(recs), 10):
        group = recs[i:i + 10]
        ndjson = b"\n".join(group) + b"\n"
        obj = b'{"Records":[' + b",".join(group) + b"]}"
        s["decode"] += [ndjson, gzip.compress(ndjson, mtime=0), obj, gzip.compress(obj, mtime=0),
                        b"[" + b",".join(group) + b"]",
                        json.dumps(json.loads(obj), indent=2).encode()]
    # record: a field path on the first line, a record after it.
    paths = [b"eventName", b"userIdentity.arn", b"requestParameters.bucketName",
             b"$.resources[*].ARN", b"$.requestParameters..name", b"responseElements"]
    for i, r in enumerate(recs):
        s["record"].append(paths[i % len(paths)] + b"\n" + r)
    # rules, and the rule files that hold correlations.
    for f in rule_files():
        body = read(f)
        s["sigma_rule"].append(body)
        if b"correlation:" in body:
            s["correlation"].append(body)
    # metric-filter patterns, from the rules and docs that hold them.
    for f in rule_files() + files("docs/**/*.md", "docs/examples/**/*.yml"):
        for m in re.finditer(rb"pattern: *'(\{.*\})'", read(f)):
            s["metric_filter"].append(m.group(1))
    s["metric_filter"] += [b'{ $.errorCode = "*UnauthorizedOperation" }',
                           b'{ ($.userIdentity.type = "Root") && ($.eventType != "AwsServiceEvent") }',
                           b'{ $.responseElements.ConsoleLogin = "Failure" || $.additionalEventData.MFAUsed != "Yes" }']
    # filter expressions: the quoted list items of `filter:` blocks in docs and configs.
    for f in files("docs/**/*.md", "docs/examples/**/*.y*ml", "deploy/*.yaml", "tests/*.rs"):
        text = read(f)
        for m in re.finditer(rb'^\s*- "((?:[^"\\]|\\.)*(?:=|like|in \(|is not|between)(?:[^"\\]|\\.)*)"\s*$',
                             text, re.M | re.I):
            s["sql_filter"].append(m.group(1).replace(b'\\"', b'"'))
    # and the expressions the filter's unit tests evaluate.
    for m in re.finditer(rb'"((?:[^"\\\n{]|\\.)+)"', read(rel("src/filter/tests.rs"))):
        e = m.group(1)
        if b" " in e and re.search(rb"=|<>|like|\bin\b|\bis\b|between|\(", e, re.I):
            s["sql_filter"].append(e.replace(b'\\"', b'"').replace(b"\\\\", b"\\"))
    s["sql_filter"] += [b"event_source = 'kms.amazonaws.com' and event_name = 'Decrypt'",
                        b"user_agent not like 'AWS Internal%'",
                        b"tp_index in ('123456789012', '210987654321') or error_code is not null",
                        b"year(tp_timestamp) between 2019 and 2026"]
    # configuration files.
    s["config"] += [read(f) for f in files("docs/examples/*.yaml", "deploy/*.yaml")]
    return s


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    for target, items in seeds().items():
        d = os.path.join(out, target)
        os.makedirs(d, exist_ok=True)
        for body in items:
            name = hashlib.sha1(body).hexdigest()
            with open(os.path.join(d, name), "wb") as fh:
                fh.write(body)
        print(f"{target}: {len(items)} seeds", file=sys.stderr)


if __name__ == "__main__":
    main()
