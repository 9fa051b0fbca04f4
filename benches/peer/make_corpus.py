#!/usr/bin/env python3
"""Deterministic CloudTrail benchmark-corpus generator (Python 3.11, stdlib only).

Templates are the real records in tests/data/cloudtrail/*.ndjson.gz (see
SOURCES.md there).  Each generated event is a resampled template whose raw JSON
text is patched in place -- never re-serialised -- so key order, duplicate
case-differing keys, escapes and number spellings of the real record survive.

Patched per event:
  * every ISO-8601 'Z' timestamp (eventTime, creationDate, @timestamp, ...) is
    shifted by the same delta so eventTime lands inside the file's 5-minute
    delivery window (non-ISO dates such as "Jul 3, 2023 11:47:39 AM" are kept);
  * top-level eventID / sharedEventID -> fresh UUIDv4, requestID -> fresh value
    of the same shape;
  * top-level sourceIPAddress, when a valid IPv4/IPv6 literal, -> drawn from a
    skewed pool (service names, "AWS Internal" and odd forms such as
    "225.01.00.16" are kept verbatim);
  * every known 12-digit account id: the record's own account -> the file's
    account, any other (cross-account) id -> a stable substitute;
  * every occurrence of the record's awsRegion value -> the file's region;
  * access key ids: ASIA* -> fresh per event, AKIA* -> stable per (key, account).

Output (pick one or both):
  --ndjson OUT      one record per line (gzip'd if OUT ends in .gz)
  --s3-layout DIR   DIR/AWSLogs/<acct>/CloudTrail/<region>/YYYY/MM/DD/
                    <acct>_CloudTrail_<region>_<YYYYMMDDTHHMMZ>_<rand16>.json.gz
                    each holding {"Records":[...]}.  Records per file are drawn
                    from a skewed (log-normal, 1..500, median ~20) distribution,
                    or ~5000 per file with --big-files.
Both outputs hold the same events in the same order when given together.

Example: make_corpus.py --events 500000 --seed 1 --ndjson /tmp/corpus/ct.ndjson \
             --s3-layout /tmp/corpus/s3
"""
import argparse
import bisect
import datetime as dt
import glob
import gzip
import hashlib
import io
import ipaddress
import json
import os
import random
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_TEMPLATES = os.path.normpath(os.path.join(HERE, "..", "..", "tests", "data", "cloudtrail"))
DEFAULT_WEIGHTS = ("invictus-aws-dataset=0.60,permiso-cartographer=0.20,"
                   "grycap-cloudtrail-tracker=0.08,stratus-red-team=0.07,"
                   "otrf-security-datasets=0.05")
REGIONS = ["us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-central-1",
           "us-west-1", "eu-west-2", "ap-southeast-1", "ap-northeast-1",
           "ap-south-1", "sa-east-1", "ca-central-1", "eu-north-1", "ap-southeast-2"]
ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
UPALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
HEX = "0123456789abcdef"

ISO_RE = re.compile(r'"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d{1,9})?Z"')
AKID_RE = re.compile(r'(?<![A-Z0-9])(AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])')
UUID_RE = re.compile(r'^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$')
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)

# placeholder kinds
P_TIME, P_UUID, P_REQID, P_IP, P_ACCT, P_REGION, P_AKID = range(7)


def iso_to_epoch(s):
    return int((dt.datetime.fromisoformat(s + "+00:00") - EPOCH).total_seconds())


def top_level_string_spans(raw, keys):
    """{key: (start, end)} of the *contents* of top-level string values.

    Minified records: a cheap scan that tracks depth outside strings.
    """
    out = {}
    depth = 0
    i, n = 0, len(raw)
    expect_key = False
    while i < n:
        c = raw[i]
        if c == '"':
            j = i + 1
            while True:
                j = raw.index('"', j)
                k = j - 1
                bs = 0
                while raw[k] == "\\":
                    bs += 1
                    k -= 1
                if bs % 2 == 0:
                    break
                j += 1
            if depth == 1 and expect_key:
                key = raw[i + 1:j]
                # value follows ':'
                v = j + 2
                if key in keys and key not in out and raw[v] == '"':
                    e = raw.index('"', v + 1)
                    out[key] = (v + 1, e)
                expect_key = False
            i = j + 1
            continue
        if c in "{[":
            depth += 1
            expect_key = c == "{" and depth == 1
        elif c in "}]":
            depth -= 1
        elif c == "," and depth == 1:
            expect_key = True
        i += 1
    return out


class Template:
    __slots__ = ("parts", "phs", "src", "ref")


def compile_template(raw, rec, src, acct_re, known_accts):
    ui = rec.get("userIdentity") if isinstance(rec.get("userIdentity"), dict) else {}
    own = rec.get("recipientAccountId") or ui.get("accountId")
    ref_s = rec.get("eventTime") if isinstance(rec.get("eventTime"), str) else rec.get("@timestamp")
    ref = None
    if isinstance(ref_s, str):
        m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)", ref_s)
        if m:
            ref = iso_to_epoch(m.group(1))
    spans = []  # (start, end, kind, arg)
    if ref is not None:
        for m in ISO_RE.finditer(raw):
            off = iso_to_epoch(m.group(1)) - ref
            spans.append((m.start(1), m.end(1), P_TIME, off))
    tl = top_level_string_spans(raw, {"eventID", "sharedEventID", "requestID", "sourceIPAddress", "awsRegion"})
    for key in ("eventID", "sharedEventID"):
        if key in tl and UUID_RE.match(raw[tl[key][0]:tl[key][1]]):
            spans.append((*tl[key], P_UUID, None))
    if "requestID" in tl:
        s, e = tl["requestID"]
        v = raw[s:e]
        shape = "uuid" if UUID_RE.match(v) else ("upalnum" if re.fullmatch(r"[A-Z0-9]+", v) else None)
        if shape and e > s:
            spans.append((s, e, P_REQID, (shape, e - s)))
    if "sourceIPAddress" in tl:
        s, e = tl["sourceIPAddress"]
        try:
            a = ipaddress.ip_address(raw[s:e])
            if not a.is_private or a.version == 6:
                spans.append((s, e, P_IP, a.version))
        except ValueError:
            pass
    region = rec.get("awsRegion") if isinstance(rec.get("awsRegion"), str) else None
    if region:
        for m in re.finditer(re.escape(region), raw):
            spans.append((m.start(), m.end(), P_REGION, None))
    if acct_re is not None:
        for m in acct_re.finditer(raw):
            spans.append((m.start(), m.end(), P_ACCT, None if m.group(0) == own else m.group(0)))
    for m in AKID_RE.finditer(raw):
        spans.append((m.start(), m.end(), P_AKID, m.group(0)))
    # drop overlaps (first/longest wins)
    spans.sort(key=lambda t: (t[0], -(t[1] - t[0])))
    parts, phs = [], []
    pos = 0
    for s, e, kind, arg in spans:
        if s < pos:
            continue
        parts.append(raw[pos:s])
        phs.append((kind, arg))
        pos = e
    parts.append(raw[pos:])
    t = Template()
    t.parts, t.phs, t.src, t.ref = parts, tuple(phs), src, ref
    return t


def load_templates(tdir):
    recs = []
    for path in sorted(glob.glob(os.path.join(tdir, "*.ndjson.gz"))):
        src = os.path.basename(path)[:-len(".ndjson.gz")]
        for raw in gzip.open(path, "rt", encoding="utf-8").read().splitlines():
            if raw.strip():
                recs.append((src, raw, json.loads(raw)))
    if not recs:
        sys.exit(f"no templates in {tdir}")
    accts = set()
    for _, _, r in recs:
        ui = r.get("userIdentity") if isinstance(r.get("userIdentity"), dict) else {}
        si = ((ui.get("sessionContext") or {}).get("sessionIssuer") or {}) if isinstance(ui.get("sessionContext"), dict) else {}
        for a in (r.get("recipientAccountId"), ui.get("accountId"), si.get("accountId") if isinstance(si, dict) else None):
            if isinstance(a, str) and re.fullmatch(r"\d{12}", a):
                accts.add(a)
    acct_re = re.compile(r"(?<![0-9])(?:" + "|".join(sorted(accts)) + r")(?![0-9])") if accts else None
    by_src = {}
    for src, raw, r in recs:
        by_src.setdefault(src, []).append(compile_template(raw, r, src, acct_re, accts))
    return by_src


class Gen:
    def __init__(self, args):
        self.rng = random.Random(args.seed)
        rng = self.rng
        self.by_src = load_templates(args.templates)
        weights = {}
        for kv in args.source_weights.split(","):
            k, v = kv.split("=")
            if k in self.by_src and float(v) > 0:
                weights[k] = float(v)
        self.srcs = list(weights)
        tot = sum(weights.values())
        acc, self.src_cum = 0.0, []
        for s in self.srcs:
            acc += weights[s] / tot
            self.src_cum.append(acc)
        self.src_lists = [[t for t in self.by_src[s] if t.ref is not None] for s in self.srcs]
        # accounts, skewed activity; each with a home region and a few others
        self.accounts = ["%012d" % rng.randrange(10**11, 10**12) for _ in range(args.accounts)]
        self.acct_w = [1.0 / (i + 1) ** 1.1 for i in range(args.accounts)]
        self.streams, sw = [], []
        for i, a in enumerate(self.accounts):
            regs = [REGIONS[i % 3]] + rng.sample(REGIONS, 3)
            for j, r in enumerate(dict.fromkeys(regs)):
                self.streams.append((a, r))
                sw.append(self.acct_w[i] * (0.85 if j == 0 else 0.05))
        tot = sum(sw)
        acc, self.stream_cum = 0.0, []
        for w in sw:
            acc += w / tot
            self.stream_cum.append(acc)
        self.ip4 = ["%d.%d.%d.%d" % (rng.choice([3, 13, 18, 34, 35, 44, 52, 54, 63, 81, 86, 91, 104, 185, 203]),
                                     rng.randrange(256), rng.randrange(256), rng.randrange(1, 255))
                    for _ in range(args.ips)]
        self.ip6 = ["2a05:d018:%x:%x::%x" % (rng.randrange(65536), rng.randrange(65536), rng.randrange(65536))
                    for _ in range(max(1, args.ips // 20))]
        self.ext_acct = {}
        self.akia = {}
        self.tcache = {}

    # ---- value makers -------------------------------------------------
    def uuid4(self):
        h = "%032x" % self.rng.getrandbits(128)
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"

    def fmt_time(self, epoch):
        s = self.tcache.get(epoch)
        if s is None:
            if len(self.tcache) > 200000:
                self.tcache.clear()
            s = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch))
            self.tcache[epoch] = s
        return s

    def ext(self, orig, acct):
        k = (orig, acct)
        v = self.ext_acct.get(k)
        if v is None:
            h = int(hashlib.sha256((orig + "/" + acct).encode()).hexdigest(), 16)
            v = "%012d" % (10**11 + h % (9 * 10**11))
            self.ext_acct[k] = v
        return v

    def akid(self, orig, acct):
        if orig.startswith("ASIA"):
            return "ASIA" + "".join(self.rng.choices(UPALNUM, k=16))
        k = (orig, acct)
        v = self.akia.get(k)
        if v is None:
            d = hashlib.sha256((orig + acct).encode()).digest()
            v = "AKIA" + "".join(UPALNUM[b % 36] for b in d[:16])
            self.akia[k] = v
        return v

    def event(self, t, acct, region, epoch):
        rng = self.rng
        out = []
        parts = t.parts
        delta = epoch - t.ref
        for i, (kind, arg) in enumerate(t.phs):
            out.append(parts[i])
            if kind == P_TIME:
                out.append(self.fmt_time(t.ref + arg + delta))
            elif kind == P_UUID:
                out.append(self.uuid4())
            elif kind == P_REQID:
                out.append(self.uuid4() if arg[0] == "uuid" else "".join(rng.choices(UPALNUM, k=arg[1])))
            elif kind == P_IP:
                if arg == 4:
                    out.append(self.ip4[int(len(self.ip4) * rng.random() ** 3)])
                else:
                    out.append(self.ip6[int(len(self.ip6) * rng.random() ** 3)])
            elif kind == P_ACCT:
                out.append(acct if arg is None else self.ext(arg, acct))
            elif kind == P_REGION:
                out.append(region)
            else:  # P_AKID
                out.append(self.akid(arg, acct))
        out.append(parts[-1])
        return "".join(out)

    def pick_template(self):
        rng = self.rng
        i = bisect.bisect_left(self.src_cum, rng.random())
        lst = self.src_lists[min(i, len(self.src_lists) - 1)]
        return lst[rng.randrange(len(lst))]

    def files(self, n_events, big, start, span_s):
        """Yield (acct, region, stamp_dt, rand16, [record_text, ...])."""
        rng = self.rng
        done = 0
        while done < n_events:
            if big:
                k = max(1, int(rng.gauss(5000, 250)))
            else:
                k = min(500, max(1, int(rng.lognormvariate(3.0, 1.2))))
            k = min(k, n_events - done)
            acct, region = self.streams[bisect.bisect_left(self.stream_cum, rng.random())]
            clock = start + span_s * done / n_events
            win_end = int(clock // 300) * 300 + 300
            times = sorted(rng.randrange(win_end - 300, win_end) for _ in range(k))
            recs = [self.event(self.pick_template(), acct, region, ep) for ep in times]
            stamp = dt.datetime.fromtimestamp(win_end, dt.timezone.utc)
            rand16 = "".join(rng.choices(ALNUM, k=16))
            done += k
            yield acct, region, stamp, rand16, recs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--ndjson", metavar="OUT", help="NDJSON output file (.gz to compress), or - for stdout (summary then goes to stderr)")
    ap.add_argument("--s3-layout", metavar="DIR")
    ap.add_argument("--big-files", action="store_true", help="~5000 records per S3 file")
    ap.add_argument("--templates", default=DEFAULT_TEMPLATES)
    ap.add_argument("--source-weights", default=DEFAULT_WEIGHTS)
    ap.add_argument("--accounts", type=int, default=25)
    ap.add_argument("--ips", type=int, default=5000, help="IPv4 pool size (IPv6 pool = 1/20)")
    ap.add_argument("--start", default="2024-06-01T00:00:00", help="UTC start of the simulated period")
    ap.add_argument("--span-hours", type=float, default=24.0)
    ap.add_argument("--level", type=int, default=6, help="gzip level")
    args = ap.parse_args()
    if not args.ndjson and not args.s3_layout:
        ap.error("give --ndjson and/or --s3-layout")
    t0 = time.time()
    g = Gen(args)
    start = iso_to_epoch(args.start)
    nd = None
    to_stdout = args.ndjson == "-"
    if args.ndjson:
        if to_stdout:
            f = sys.stdout.buffer
        else:
            os.makedirs(os.path.dirname(os.path.abspath(args.ndjson)), exist_ok=True)
            f = open(args.ndjson, "wb")
        nd = gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0, compresslevel=args.level) \
            if args.ndjson.endswith(".gz") else f
        nd_file = f
    n_files = n_ev = raw_bytes = gz_bytes = 0
    made_dirs = set()
    for acct, region, stamp, rand16, recs in g.files(args.events, args.big_files, start, args.span_hours * 3600):
        n_ev += len(recs)
        if nd is not None:
            b = ("\n".join(recs) + "\n").encode("utf-8")
            nd.write(b)
            raw_bytes += len(b)
        if args.s3_layout:
            d = os.path.join(args.s3_layout, "AWSLogs", acct, "CloudTrail", region, stamp.strftime("%Y/%m/%d"))
            if d not in made_dirs:
                os.makedirs(d, exist_ok=True)
                made_dirs.add(d)
            name = f"{acct}_CloudTrail_{region}_{stamp:%Y%m%dT%H%MZ}_{rand16}.json.gz"
            body = ('{"Records":[' + ",".join(recs) + "]}").encode("utf-8")
            z = gzip.compress(body, compresslevel=args.level, mtime=0)
            with open(os.path.join(d, name), "wb") as f:
                f.write(z)
            gz_bytes += len(z)
            if nd is None:
                raw_bytes += len(body)
            n_files += 1
    if nd is not None:
        nd.close()
        if nd is not nd_file and not to_stdout:
            nd_file.close()
    print(json.dumps({"events": n_ev, "s3_files": n_files, "raw_bytes": raw_bytes,
                      "s3_gz_bytes": gz_bytes,
                      "ndjson_bytes": (raw_bytes if to_stdout else os.path.getsize(args.ndjson)) if args.ndjson else None,
                      "seconds": round(time.time() - t0, 2),
                      "templates": {s: len(v) for s, v in g.by_src.items()}}),
          file=sys.stderr if to_stdout else sys.stdout)


if __name__ == "__main__":
    main()
