"""Fills a bucket with CloudTrail log objects in the AWSLogs layout, built from the real
samples in tests/data/cloudtrail/, and prints a manifest as JSON on stdout:
{"objects": {key: record_count}, "records": total}.

    make_trail_bucket.py BUCKET [--days 2024-12-01,2024-12-02] [--per-day 12] [--tag x]

Layout: three accounts (111111111111 and 333333333333 as plain trails, 222222222222 in an
organization trail under AWSLogs/o-abc123def4/), two regions, the given days, --per-day
objects per account, region and day, delivered every two hours (T0005Z, T0205Z, ...).
Each object holds 5 records taken in turn from the samples; every record gets the
object's account and region, an eventTime a few minutes before the delivery time and a
fresh eventID (so dedup never merges records of different objects). A digest file and an
unrelated object are added, which a reader must not treat as log files.
"""
import argparse
import gzip
import io
import json
import os
import sys
import uuid

import boto3

ROOT = os.path.join(os.path.dirname(__file__), "..", "data", "cloudtrail")
SAMPLES = sorted(f for f in os.listdir(ROOT) if f.endswith(".ndjson.gz"))
ACCOUNTS = [("111111111111", ""), ("222222222222", "o-abc123def4/"), ("333333333333", "")]
REGIONS = ["eu-west-1", "us-east-1"]


def records():
    out = []
    for name in SAMPLES:
        with gzip.open(os.path.join(ROOT, name), "rt", encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line:
                    rec = json.loads(line)
                    if isinstance(rec, dict):
                        out.append(rec)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bucket")
    ap.add_argument("--days", default="2024-12-01,2024-12-02,2024-12-03")
    ap.add_argument("--per-day", type=int, default=12)
    ap.add_argument("--tag", default="a")
    ap.add_argument("--accounts", default="")
    args = ap.parse_args()
    s3 = boto3.client("s3")
    try:
        s3.create_bucket(Bucket=args.bucket)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    pool = records()
    n = 0
    manifest = {}
    accounts = [a for a in ACCOUNTS if not args.accounts or a[0] in args.accounts.split(",")]
    for acct, org in accounts:
        for region in REGIONS:
            for day in args.days.split(","):
                y, m, d = day.split("-")
                for i in range(args.per_day):
                    hh = 2 * i
                    ts = f"{y}{m}{d}T{hh:02d}05Z"
                    key = (f"AWSLogs/{org}{acct}/CloudTrail/{region}/{y}/{m}/{d}/"
                           f"{acct}_CloudTrail_{region}_{ts}_{args.tag}{i:03d}.json.gz")
                    recs = []
                    for j in range(5):
                        r = dict(pool[n % len(pool)])
                        n += 1
                        r["recipientAccountId"] = acct
                        r["awsRegion"] = region
                        r["eventTime"] = f"{y}-{m}-{d}T{hh:02d}:0{j}:00Z"
                        r.pop("@timestamp", None)
                        r["eventID"] = str(uuid.uuid5(uuid.NAMESPACE_URL, key + str(j)))
                        recs.append(r)
                    body = gzip.compress(json.dumps({"Records": recs}).encode())
                    s3.put_object(Bucket=args.bucket, Key=key, Body=body)
                    manifest[key] = len(recs)
    # Not log objects.
    s3.put_object(Bucket=args.bucket,
                  Key="AWSLogs/111111111111/CloudTrail-Digest/us-east-1/2024/12/01/"
                      "111111111111_CloudTrail-Digest_us-east-1_trail_us-east-1_20241201T010000Z.json.gz",
                  Body=gzip.compress(b'{"awsAccountId":"111111111111","digestStartTime":"2024-12-01T00:00:00Z"}'))
    s3.put_object(Bucket=args.bucket, Key="other/readme.txt", Body=b"not a trail")
    json.dump({"objects": manifest, "records": sum(manifest.values())}, sys.stdout)


if __name__ == "__main__":
    main()
