#!/usr/bin/env python3
"""DuckDB peer baseline for the CloudTrail detection benchmark.

Runs the 11 reference detections (benches/peer/detections.py) in one DuckDB
process (threads=--threads) over an NDJSON corpus and/or CloudTrail S3-layout
directories of {"Records":[...]} .json.gz files (see make_corpus.py), and prints
one JSON object per measurement (events/s, MB/s).  Optional: JSON->Parquet
conversion timing (--parquet DIR), machine floors (--floors), and a check of
every variant's per-rule counts against a pure-Python reference (--verify).

Variants (--variants):
  objects  schema-free: read_ndjson_objects / read_json_objects(format=
           'unstructured') + unnest($.Records[*]); one json_extract_string(j,
           [paths]) per record (single parse), rules on the extracted list.
  naive    as objects, but one json_extract_string(j, path) per rule reference.
  schema   read_json(columns={only the fields the rules need}, records=true) --
           explicit schema, no inference (without records=true DuckDB still
           samples every file to detect the records mode: ~3 ms per file,
           which dominated the S3 layout's 12k small objects).
  auto     read_json_auto + struct-path access, i.e. what an analyst would type;
           kept to document how inference behaves on real CloudTrail (errors
           and silently wrong counts are reported, not hidden).

Needs: pip install duckdb (tested with 2.0.0).  Example:
  python duckdb_peer.py --threads 2 --ndjson /tmp/corpus/ct-500k.ndjson \
      --s3 /tmp/corpus/s3-500k --s3 /tmp/corpus/s3big-500k --verify \
      --parquet /tmp/corpus/parquet --floors
"""
import argparse
import glob
import gzip
import json
import os
import tempfile
import struct
import subprocess
import sys
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import detections  # noqa: E402

import duckdb  # noqa: E402

F = list(detections.FIELDS)
PATHS = [detections.FIELDS[k] for k in F]
MB = 1e6


def gz_isize_total(files):
    """Sum of uncompressed sizes from gzip trailers (mod 2^32; files < 4 GiB)."""
    tot = 0
    for p in files:
        with open(p, "rb") as f:
            f.seek(-4, 2)
            tot += struct.unpack("<I", f.read(4))[0]
    return tot


class Input:
    def __init__(self, kind, path):
        self.kind, self.path = kind, path
        if kind == "ndjson":
            self.files = [path]
            self.disk = os.path.getsize(path)
            self.raw = gz_isize_total(self.files) if path.endswith(".gz") else self.disk
            self.glob = path
        else:
            self.glob = os.path.join(path, "**", "*.json.gz")
            self.files = glob.glob(self.glob, recursive=True)
            self.disk = sum(os.path.getsize(p) for p in self.files)
            self.raw = gz_isize_total(self.files)
        self.name = f"{kind}:{os.path.basename(path.rstrip('/'))}"

    def objects_src(self):
        """SQL yielding one JSON record per row, column j."""
        if self.kind == "ndjson":
            return f"SELECT json AS j FROM read_ndjson_objects('{self.glob}')"
        return (f"SELECT unnest(json_extract(json, '$.Records[*]')) AS j FROM "
                f"read_json_objects('{self.glob}', format='unstructured', maximum_object_size=268435456)")


def agg_select(cols):
    rules = detections.sql_rules(cols)
    return ", ".join(["count(*) AS total"] + [f"count(*) FILTER (WHERE {sql}) AS \"{n}\"" for n, sql in rules])


def q_objects(inp):
    lst = "[" + ", ".join(f"'{p}'" for p in PATHS) + "]"
    cols = {k: f"v[{i + 1}]" for i, k in enumerate(F)}
    return (f"SELECT {agg_select(cols)} FROM (SELECT json_extract_string(j, {lst}) AS v "
            f"FROM ({inp.objects_src()}))")


def q_naive(inp):
    return f"SELECT {agg_select(None)} FROM ({inp.objects_src()})"


SCHEMA_STRUCT = ("STRUCT(eventName VARCHAR, eventSource VARCHAR, errorCode VARCHAR, "
                 "userIdentity STRUCT(\"type\" VARCHAR, invokedBy VARCHAR), "
                 "additionalEventData STRUCT(MFAUsed VARCHAR), "
                 "requestParameters STRUCT(policyArn VARCHAR))")
STRUCT_COLS = {"eventName": "r.eventName", "eventSource": "r.eventSource", "errorCode": "r.errorCode",
               "uiType": "r.userIdentity.\"type\"", "uiInvokedBy": "r.userIdentity.invokedBy",
               "mfaUsed": "r.additionalEventData.MFAUsed", "policyArn": "r.requestParameters.policyArn"}


def q_schema(inp):
    if inp.kind == "ndjson":
        cols = ("{eventName: 'VARCHAR', eventSource: 'VARCHAR', errorCode: 'VARCHAR', "
                "userIdentity: 'STRUCT(\"type\" VARCHAR, invokedBy VARCHAR)', "
                "additionalEventData: 'STRUCT(MFAUsed VARCHAR)', requestParameters: 'STRUCT(policyArn VARCHAR)'}")
        src = f"SELECT t AS r FROM read_json('{inp.glob}', format='newline_delimited', records=true, columns={cols}) t"
    else:
        src = (f"SELECT unnest(Records) AS r FROM read_json('{inp.glob}', format='unstructured', records=true, "
               f"columns={{Records: '{SCHEMA_STRUCT}[]'}}, maximum_object_size=268435456)")
    return f"SELECT {agg_select(STRUCT_COLS)} FROM ({src})"


def q_auto(inp):
    if inp.kind == "ndjson":
        src = f"SELECT t AS r FROM read_json_auto('{inp.glob}') t"
    else:
        src = (f"SELECT unnest(Records) AS r FROM read_json_auto('{inp.glob}', "
               f"maximum_object_size=268435456)")
    return f"SELECT {agg_select(STRUCT_COLS)} FROM ({src})"


VARIANTS = {"objects": q_objects, "naive": q_naive, "schema": q_schema, "auto": q_auto}


def run_query(con, sql, repeat):
    times, row = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        row = con.execute(sql).fetchone()
        times.append(time.perf_counter() - t)
    return min(times), sorted(times)[len(times) // 2], row


def reference_counts(inp):
    """Pure-Python per-rule counts (json.loads + detections.match)."""
    counts = dict.fromkeys(["total"] + detections.RULE_NAMES, 0)

    def feed(rec):
        counts["total"] += 1
        for n in detections.match(rec):
            counts[n] += 1
    if inp.kind == "ndjson":
        op = gzip.open if inp.path.endswith(".gz") else open
        with op(inp.path, "rb") as f:
            for line in f:
                if line.strip():
                    feed(json.loads(line))
    else:
        for p in inp.files:
            for rec in json.loads(gzip.open(p, "rb").read())["Records"]:
                feed(rec)
    return counts


def emit(out, d):
    print(json.dumps(d), flush=True)
    out.append(d)


def sh_time(cmd):
    t = time.perf_counter()
    subprocess.run(cmd, shell=True, check=True, executable="/bin/bash")
    return time.perf_counter() - t


def floors(inputs, out, ndjson_gz):
    for inp in inputs:
        if inp.kind == "ndjson":
            sh_time(f"cat '{inp.path}' > /dev/null")  # warm
            t = sh_time(f"cat '{inp.path}' > /dev/null")
            emit(out, {"floor": "cat > /dev/null (page cache warm)", "input": inp.name,
                       "cmd": f"cat {inp.path} > /dev/null", "seconds": round(t, 3),
                       "MB_per_s": round(inp.disk / MB / t, 1)})
        else:
            lst = f"find '{inp.path}' -name '*.json.gz' -print0"
            sh_time(f"{lst} | xargs -0 cat > /dev/null")
            t = sh_time(f"{lst} | xargs -0 cat > /dev/null")
            emit(out, {"floor": "cat > /dev/null (page cache warm)", "input": inp.name, "files": len(inp.files),
                       "cmd": f"{lst} | xargs -0 cat > /dev/null", "seconds": round(t, 3),
                       "MB_per_s_disk": round(inp.disk / MB / t, 1)})
            t = sh_time(f"{lst} | xargs -0 zcat > /dev/null")
            emit(out, {"floor": "zcat", "input": inp.name, "cmd": f"{lst} | xargs -0 zcat > /dev/null",
                       "seconds": round(t, 3), "MB_per_s_uncompressed": round(inp.raw / MB / t, 1),
                       "MB_per_s_compressed": round(inp.disk / MB / t, 1)})
            # python per-file zlib on the same files
            t0 = time.perf_counter()
            n = 0
            for p in inp.files:
                with open(p, "rb") as f:
                    n += len(zlib.decompress(f.read(), 31))
            t = time.perf_counter() - t0
            emit(out, {"floor": "python zlib.decompress(wbits=31) per file (incl. open/read)",
                       "input": inp.name, "seconds": round(t, 3), "MB_per_s_uncompressed": round(n / MB / t, 1)})
    if ndjson_gz:
        comp = open(ndjson_gz, "rb").read()
        raw_len = gz_isize_total([ndjson_gz])
        t = sh_time(f"zcat '{ndjson_gz}' > /dev/null")
        emit(out, {"floor": "zcat", "input": os.path.basename(ndjson_gz), "cmd": f"zcat {ndjson_gz} > /dev/null",
                   "seconds": round(t, 3), "MB_per_s_uncompressed": round(raw_len / MB / t, 1),
                   "MB_per_s_compressed": round(len(comp) / MB / t, 1)})
        cases = {
            "gzip.decompress(bytes)": lambda: len(gzip.decompress(comp)),
            "zlib.decompress(bytes, wbits=31)": lambda: len(zlib.decompress(comp, 31)),
        }

        def zstream():
            d = zlib.decompressobj(31)
            n = 0
            for i in range(0, len(comp), 1 << 20):
                n += len(d.decompress(comp[i:i + (1 << 20)]))
            return n + len(d.flush())

        def gzfile():
            n = 0
            with gzip.open(ndjson_gz, "rb") as f:
                while True:
                    b = f.read(1 << 20)
                    if not b:
                        return n
                    n += len(b)
        cases["zlib.decompressobj 1 MiB chunks"] = zstream
        cases["gzip.open().read(1 MiB) loop"] = gzfile
        for name, fn in cases.items():
            t0 = time.perf_counter()
            n = fn()
            t = time.perf_counter() - t0
            emit(out, {"floor": f"python {name}", "input": os.path.basename(ndjson_gz), "seconds": round(t, 3),
                       "MB_per_s_uncompressed": round(n / MB / t, 1),
                       "MB_per_s_compressed": round(len(comp) / MB / t, 1)})
    for inp in inputs:
        if inp.kind == "ndjson" and not inp.path.endswith(".gz"):
            t0 = time.perf_counter()
            n = b = 0
            with open(inp.path, "rb") as f:
                for line in f:
                    json.loads(line)
                    n += 1
                    b += len(line)
                    if n == 200000:
                        break
            t = time.perf_counter() - t0
            emit(out, {"floor": "python json.loads per line (first 200k lines)", "input": inp.name,
                       "seconds": round(t, 3), "events_per_s": round(n / t), "MB_per_s": round(b / MB / t, 1)})


def probe(con, out, data_dir):
    """read_json_auto on the real samples: per source, per fixture file, and on
    the records holding case-differing duplicate keys ("Tagging"/"tagging")."""
    targets = sorted(glob.glob(os.path.join(data_dir, "*.ndjson.gz")))
    targets += sorted(glob.glob(os.path.join(data_dir, "s3-layout", "AWSLogs", "**", "*.json.gz"), recursive=True))
    dup = [ln for p in sorted(glob.glob(os.path.join(data_dir, "*.ndjson.gz")))
           for ln in gzip.open(p, "rt", encoding="utf-8").read().splitlines()
           if '"Tagging"' in ln and '"tagging"' in ln]
    tmp = tempfile.NamedTemporaryFile("w", suffix=".ndjson", delete=False)
    tmp.write("\n".join(dup) + "\n")
    tmp.close()
    targets.append(tmp.name)
    for t in targets:
        label = os.path.relpath(t, data_dir) if t.startswith(data_dir) else f"case-dup-key records ({len(dup)})"
        for opts in ("", ", sample_size=-1"):
            rec = {"probe": f"read_json_auto{opts and ' sample_size=-1'}", "target": label}
            try:
                src = f"read_json_auto('{t}'{opts}, maximum_object_size=268435456)"
                if "s3-layout" in t:
                    src = f"(SELECT unnest(Records, recursive := true) FROM {src})"
                con.execute(f"CREATE OR REPLACE TEMP TABLE probe_t AS SELECT * FROM {src}")
                rec["rows"] = con.execute("SELECT count(*) FROM probe_t").fetchone()[0]
                ty = con.execute("SELECT column_type FROM (DESCRIBE probe_t) "
                                 "WHERE column_name = 'requestParameters'").fetchall()
                rec["requestParameters_type"] = ty[0][0][:60] if ty else None
            except duckdb.Error as e:
                rec["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
            emit(out, rec)
    os.unlink(tmp.name)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ndjson", action="append", default=[])
    ap.add_argument("--s3", action="append", default=[])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--memory-limit", default=None, help="e.g. 4GB")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--variants", default="objects,naive,schema,auto")
    ap.add_argument("--verify", action="store_true", help="compare counts with the Python reference")
    ap.add_argument("--parquet", metavar="DIR", help="time JSON->Parquet COPY of the first --ndjson input")
    ap.add_argument("--floors", action="store_true")
    ap.add_argument("--probe", metavar="DATA_DIR", nargs="?", const=os.path.normpath(os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "data", "cloudtrail")),
        help="read_json_auto edge-case probe on the real samples (default: tests/data/cloudtrail)")
    ap.add_argument("--ndjson-gz", help="gzip'd copy of the NDJSON corpus, for zcat/python floors")
    ap.add_argument("--json-out", help="also write all results to this file")
    args = ap.parse_args()

    con = duckdb.connect()
    con.execute(f"SET threads={args.threads}")
    con.execute("SET preserve_insertion_order=false")
    if args.memory_limit:
        con.execute(f"SET memory_limit='{args.memory_limit}'")
    try:
        con.execute("SET enable_external_file_cache=false")
    except duckdb.Error:
        pass
    out = []
    emit(out, {"duckdb": duckdb.__version__, "threads": args.threads,
               "cpus": os.cpu_count(), "python": sys.version.split()[0]})
    if args.probe:
        probe(con, out, args.probe)
    inputs = [Input("ndjson", p) for p in args.ndjson] + [Input("s3", p) for p in args.s3]
    for inp in inputs:
        emit(out, {"input": inp.name, "path": inp.path, "files": len(inp.files),
                   "bytes_on_disk": inp.disk, "bytes_uncompressed": inp.raw})
        ref = None
        if args.verify:
            t = time.perf_counter()
            ref = reference_counts(inp)
            emit(out, {"input": inp.name, "variant": "python-reference (json.loads + detections.match, 1 core)",
                       "seconds": round(time.perf_counter() - t, 2), "counts": ref})
        for v in args.variants.split(","):
            sql = VARIANTS[v](inp)
            rec = {"input": inp.name, "variant": v}
            try:
                best, med, row = run_query(con, sql, args.repeat)
            except duckdb.Error as e:
                rec["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
                emit(out, rec)
                continue
            counts = dict(zip(["total"] + detections.RULE_NAMES, row))
            rec.update({"seconds_best": round(best, 3), "seconds_median": round(med, 3),
                        "events": counts["total"],
                        "events_per_s": round(counts["total"] / best),
                        "MB_per_s_uncompressed": round(inp.raw / MB / best, 1),
                        "MB_per_s_on_disk": round(inp.disk / MB / best, 1),
                        "hits": sum(c for k, c in counts.items() if k != "total")})
            if ref is not None:
                diff = {k: [counts[k], ref[k]] for k in ref if counts[k] != ref[k]}
                rec["verify"] = "ok" if not diff else {"MISMATCH (duckdb, python)": diff}
            rec["counts"] = counts
            emit(out, rec)

    if args.parquet and args.ndjson:
        inp = inputs[0]
        os.makedirs(args.parquet, exist_ok=True)
        top = ["eventVersion", "eventTime", "eventSource", "eventName", "awsRegion", "sourceIPAddress",
               "userAgent", "errorCode", "errorMessage", "eventID", "eventType", "recipientAccountId"]
        paths = [f"$.{k}" for k in top] + list(detections.FIELDS.values())[3:]
        names = top + list(detections.FIELDS)[3:]
        lst = "[" + ", ".join(f"'{p}'" for p in paths) + "]"
        sel = ", ".join(f"v[{i + 1}] AS \"{n}\"" for i, n in enumerate(names))
        jobs = {
            "raw+columns": (f"COPY (SELECT {sel}, j AS raw FROM (SELECT j, json_extract_string(j, {lst}) AS v "
                            f"FROM ({inp.objects_src()}))) TO '{{out}}' (FORMAT parquet, COMPRESSION zstd)"),
            "read_json_auto SELECT *": (f"COPY (SELECT * FROM read_json_auto('{inp.glob}')) "
                                        f"TO '{{out}}' (FORMAT parquet, COMPRESSION zstd)"),
        }
        for name, tmpl in jobs.items():
            pq = os.path.join(args.parquet, name.split()[0].replace("+", "_") + ".parquet")
            if os.path.exists(pq):
                os.remove(pq)
            rec = {"parquet": name, "input": inp.name, "out": pq}
            try:
                t = time.perf_counter()
                con.execute(tmpl.format(out=pq))
                s = time.perf_counter() - t
                rec.update({"seconds": round(s, 3), "events_per_s": round(inp_events(con, pq) / s),
                            "MB_per_s_uncompressed": round(inp.raw / MB / s, 1),
                            "parquet_bytes": os.path.getsize(pq)})
            except duckdb.Error as e:
                rec["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
            emit(out, rec)
        pq = os.path.join(args.parquet, "raw_columns.parquet")
        if os.path.exists(pq):
            cols = {k: f"\"{k}\"" for k in detections.FIELDS}
            sql = f"SELECT {agg_select(cols)} FROM read_parquet('{pq}')"
            best, med, row = run_query(con, sql, args.repeat)
            emit(out, {"input": "parquet:raw_columns", "variant": "detections over parquet columns",
                       "seconds_best": round(best, 3), "events_per_s": round(row[0] / best),
                       "counts": dict(zip(["total"] + detections.RULE_NAMES, row))})
    if args.floors:
        floors(inputs, out, args.ndjson_gz)
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(out, f, indent=1)


def inp_events(con, pq):
    return con.execute(f"SELECT count(*) FROM read_parquet('{pq}')").fetchone()[0]


if __name__ == "__main__":
    main()
