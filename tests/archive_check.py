"""Checks a trailhound Parquet archive with DuckDB against the source CloudTrail JSON.

    python tests/archive_check.py ARCHIVE_ROOT SAMPLE.ndjson.gz [...]

Runs Tailpipe's example queries unchanged over the `aws_cloudtrail_log` view and asks
the same questions of the source records (json.loads per line); prints one JSON object
with the results and exits 1 if any answer differs.
"""
import collections
import gzip
import json
import sys

import duckdb

root, samples = sys.argv[1], sys.argv[2:]
records = []
for path in samples:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        records.extend(json.loads(line) for line in f if line.strip())

con = duckdb.connect()
# The view file trailhound writes beside the table.
with open(f"{root}/aws_cloudtrail_log.sql", encoding="utf-8") as f:
    con.execute(f.read())
problems = []
out = {}

def ts(col):
    return f"strftime({col}, '%Y-%m-%dT%H:%M:%SZ')"

# Row count.
rows = con.execute("select count(*) from aws_cloudtrail_log").fetchone()[0]
out["rows"] = rows
if rows != len(records):
    problems.append(f"rows {rows} != records {len(records)}")

# 1. Top event names (the query as Tailpipe users write it), and the full histogram.
top = con.execute("select event_name, count(*) from aws_cloudtrail_log group by all order by 2 desc limit 10").fetchall()
hist = collections.Counter(r.get("eventName") for r in records)
want_top_counts = sorted(hist.values(), reverse=True)[:10]
if [c for _, c in top] != want_top_counts or any(hist[n] != c for n, c in top):
    problems.append(f"top event names differ: {top} vs {hist.most_common(10)}")
full = dict(con.execute("select event_name, count(*) from aws_cloudtrail_log group by all").fetchall())
if full != dict(hist):
    problems.append("event name histogram differs")
out["top_event_names"] = top

# 2. Access denied calls.
q2 = f"select event_time, event_name, source_ip_address, error_code from aws_cloudtrail_log where error_code in ('AccessDenied','UnauthorizedOperation')"
got = collections.Counter(
    con.execute(f"select {ts('event_time')}, event_name, source_ip_address, error_code from ({q2})").fetchall()
)
want = collections.Counter(
    (r.get("eventTime"), r.get("eventName"), r.get("sourceIPAddress"), r.get("errorCode"))
    for r in records
    if r.get("errorCode") in ("AccessDenied", "UnauthorizedOperation")
)
out["access_denied"] = sum(got.values())
if got != want:
    problems.append(f"access-denied rows differ: {sum(got.values())} vs {sum(want.values())}")

# 3. Console logins with MFA.
q3 = "select event_time, user_identity.arn, additional_event_data::JSON->>'MFAUsed' as mfa from aws_cloudtrail_log where event_name = 'ConsoleLogin'"
got = collections.Counter(con.execute(f"select {ts('event_time')}, arn, mfa from ({q3})").fetchall())
def mfa(r):
    v = (r.get("additionalEventData") or {}).get("MFAUsed")
    return None if v is None else str(v)
want = collections.Counter(
    (r.get("eventTime"), (r.get("userIdentity") or {}).get("arn"), mfa(r))
    for r in records
    if r.get("eventName") == "ConsoleLogin"
)
out["console_logins"] = sum(got.values())
if got != want:
    problems.append(f"console-login rows differ: {sorted(got.items())} vs {sorted(want.items())}")

# Partition columns come from the path.
parts = con.execute("select count(*) from aws_cloudtrail_log where tp_table is null or tp_partition is null or tp_index is null or tp_date is null").fetchone()[0]
if parts:
    problems.append(f"{parts} rows without partition columns")
out["tp_index_values"] = con.execute("select count(distinct tp_index) from aws_cloudtrail_log").fetchone()[0]
out["misfit_rows"] = con.execute("select count(*) from aws_cloudtrail_log where tp_misfits is not null").fetchone()[0]
out["problems"] = problems
print(json.dumps(out, default=str))
sys.exit(1 if problems else 0)
