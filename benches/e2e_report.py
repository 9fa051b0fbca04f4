#!/usr/bin/env python3
"""Measuring and summary half of benches/e2e.sh (Python 3.11, stdlib only).

  e2e_report.py measure --bin BIN --threads N --runs R --out FILE \
      --input ndjson=PATH --input s3=PATH
      Runs `BIN detect PATH --threads N --stats json --stats-file F > /dev/null`
      R times per input, timing each run from here (time.perf_counter around the
      child, plus its CPU time and max RSS from wait4), and writes all runs and
      the binary's own stats to FILE (JSON).

  e2e_report.py report --corpus DIR --trailhound FILE [--duck FILE] --out FILE ...
      Reads the measurements of both sides, prints the comparison table and
      writes the same as JSON.

MB = 10^6 bytes of uncompressed input (NDJSON file size; for the S3 layout the
sum of the gzip trailers' uncompressed sizes).  events/s = corpus events / best
wall seconds.
"""
import argparse
import datetime as dt
import glob
import json
import os
import platform
import shlex
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time

MB = 1e6
HERE = os.path.dirname(os.path.abspath(__file__))
INPUT_LABEL = {"ndjson": "ndjson", "s3": "s3 layout"}


def loadavg():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def s3_files(path):
    return sorted(glob.glob(os.path.join(path, "**", "*.json.gz"), recursive=True))


def uncompressed_bytes(kind, path):
    """(uncompressed bytes, bytes on disk, file count) of one input."""
    if kind == "ndjson":
        n = os.path.getsize(path)
        return n, n, 1
    raw = disk = 0
    files = s3_files(path)
    for p in files:
        with open(p, "rb") as f:
            f.seek(-4, 2)
            raw += struct.unpack("<I", f.read(4))[0]  # ISIZE: objects are < 4 GiB
        disk += os.path.getsize(p)
    return raw, disk, len(files)


def run_once(argv, stderr_path):
    """One child run: (exit code, wall s, cpu s, max RSS MiB)."""
    with open(stderr_path, "wb") as err, open(os.devnull, "wb") as null:
        t = time.perf_counter()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=null, stderr=err)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
    p.returncode = os.waitstatus_to_exitcode(status)
    return p.returncode, wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024


def cmd_measure(a):
    out = {"binary": a.bin, "threads": a.threads, "runs": a.runs,
           "rules": "built-in pack" + (" + " + " ".join(a.arg) if a.arg else ""),
           "loadavg_before": loadavg(), "inputs": []}
    work = tempfile.mkdtemp(prefix="trailhound-e2e-")
    try:
        measure_inputs(a, out, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out["loadavg_after"] = loadavg()
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)


def measure_inputs(a, out, work):
    for spec in a.input:
        kind, path = spec.split("=", 1)
        stats_path = os.path.join(work, f"{kind}.stats.json")
        err_path = os.path.join(work, f"{kind}.stderr")
        argv = [a.bin, "detect", path, "--threads", str(a.threads), *a.arg,
                "--stats", "json", "--stats-file", stats_path]
        rec = {"input": kind, "path": path, "cmd": shlex.join(argv) + " > /dev/null", "runs": []}
        for i in range(a.runs):
            if os.path.exists(stats_path):
                os.remove(stats_path)
            rc, wall, cpu, rss = run_once(argv, err_path)
            if rc != 0:
                with open(err_path, "rb") as f:
                    tail = f.read()[-4000:].decode("utf-8", "replace")
                sys.stderr.write(f"e2e: trailhound exited {rc} on {kind} (run {i + 1}):\n"
                                 f"  {rec['cmd']}\n{tail}\n")
                sys.exit(1)
            try:
                with open(stats_path) as f:
                    stats = json.load(f)
            except (OSError, ValueError) as e:
                sys.stderr.write(f"e2e: no readable stats file after run {i + 1} on {kind}: {e}\n")
                sys.exit(1)
            run = {"wall_s": round(wall, 4), "cpu_s": round(cpu, 3), "max_rss_MiB": round(rss, 1),
                   "stats": stats}
            rec["runs"].append(run)
            print(f"  trailhound {INPUT_LABEL[kind]:<9} run {i + 1}/{a.runs}: wall {wall:.3f} s, "
                  f"elapsed_s {fmt_num(stats.get('elapsed_s'), '.3f')}, cpu {cpu:.2f} s, "
                  f"max RSS {rss:.0f} MiB, records_in {stats.get('records_in')}, "
                  f"findings {findings_total(stats)}", flush=True)
        if a.keep_stats:
            os.makedirs(a.keep_stats, exist_ok=True)
            with open(os.path.join(a.keep_stats, f"trailhound-{kind}.stats.json"), "w") as f:
                json.dump(rec["runs"][-1]["stats"], f, indent=1)
        out["inputs"].append(rec)


def findings_total(stats):
    f = stats.get("findings")
    if isinstance(f, dict):
        return f.get("total")
    return f if isinstance(f, int) else None


def fmt_num(x, spec):
    return format(x, spec) if isinstance(x, (int, float)) else "-"


def machine():
    cpu = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    try:
        nproc = int(subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout)
    except (OSError, ValueError, subprocess.CalledProcessError):
        nproc = os.cpu_count()
    return {"nproc": nproc, "kernel": platform.release(), "cpu_model": cpu, "mem_GiB": mem,
            "python": platform.python_version()}


def git_rev(repo):
    try:
        rev = subprocess.run(["git", "-C", repo, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def duck_rules():
    sys.path.insert(0, os.path.join(HERE, "peer"))
    try:
        import detections
        return list(detections.RULE_NAMES)
    except ImportError:
        return None


def cmd_report(a):
    corpus_dir = a.corpus
    with open(os.path.join(corpus_dir, "corpus.json")) as f:
        corpus = json.load(f)
    events = corpus["events"]
    inputs = {"ndjson": os.path.join(corpus_dir, "ct.ndjson"), "s3": os.path.join(corpus_dir, "s3")}
    sizes = {}
    for kind, path in inputs.items():
        raw, disk, nfiles = uncompressed_bytes(kind, path)
        sizes[kind] = {"path": path, "bytes_uncompressed": raw, "bytes_on_disk": disk, "files": nfiles}

    warnings = []
    rows = []
    th_rules = None
    with open(a.trailhound) as f:
        th = json.load(f)
    for rec in th["inputs"]:
        kind = rec["input"]
        walls = [r["wall_s"] for r in rec["runs"]]
        best_i = min(range(len(walls)), key=walls.__getitem__)
        best = rec["runs"][best_i]
        st = best["stats"]
        for key in ("records_in", "elapsed_s", "findings", "bytes_decoded"):
            if key not in st:
                warnings.append(f"trailhound {kind}: stats file has no '{key}'")
        if st.get("records_in") is not None and st.get("records_in") != events:
            warnings.append(f"trailhound {kind}: records_in {st.get('records_in')} != corpus events {events}")
        totals = {findings_total(r["stats"]) for r in rec["runs"]}
        if len(totals) > 1:
            warnings.append(f"trailhound {kind}: findings total differs between runs: {sorted(totals, key=str)}")
        if th_rules is None:
            th_rules = {k: v for k, v in st.items() if k.startswith("rule")} or None
        raw = sizes[kind]["bytes_uncompressed"]
        rows.append({
            "input": kind, "tool": "trailhound", "best_s": round(best["wall_s"], 3),
            "median_s": round(statistics.median(walls), 3), "runs_s": walls,
            "events": events, "events_per_s": round(events / best["wall_s"]),
            "MB_per_s": round(raw / MB / best["wall_s"], 1),
            "elapsed_s_binary": st.get("elapsed_s"),
            "cpu_s": best["cpu_s"], "max_rss_MiB": best["max_rss_MiB"],
            "records_in": st.get("records_in"), "bytes_decoded": st.get("bytes_decoded"),
            "findings": findings_total(st),
        })

    duck_meta = None
    if a.duck:
        with open(a.duck) as f:
            duck = json.load(f)
        duck_meta = next((d for d in duck if "duckdb" in d), None)
        for d in duck:
            if "bytes_uncompressed" in d and "variant" not in d:
                kind = d.get("input", "").split(":", 1)[0]
                if kind in sizes and d["bytes_uncompressed"] != sizes[kind]["bytes_uncompressed"]:
                    warnings.append(f"duckdb {kind}: input byte count {d['bytes_uncompressed']} differs "
                                    f"from {sizes[kind]['bytes_uncompressed']}")
                continue
            if "variant" not in d or ":" not in d.get("input", ""):
                continue
            kind = d["input"].split(":", 1)[0]
            if kind not in sizes:
                continue
            row = {"input": kind, "tool": f"duckdb-{d['variant']}"}
            if "error" in d:
                row["error"] = d["error"]
                warnings.append(f"duckdb {d['variant']} on {kind}: {d['error']}")
            else:
                # duckdb_peer.py derives both rates from the unrounded best time
                # (events from count(*), MB from the same uncompressed byte count)
                row.update({"best_s": d["seconds_best"], "median_s": d["seconds_median"],
                            "events": d["events"], "events_per_s": d["events_per_s"],
                            "MB_per_s": d["MB_per_s_uncompressed"], "findings": d["hits"],
                            "counts": d.get("counts")})
                if d["events"] != events:
                    warnings.append(f"duckdb {d['variant']} on {kind}: counted {d['events']} events, "
                                    f"corpus has {events}")
            rows.append(row)

    ratios = []
    for kind in inputs:
        th_row = next((r for r in rows if r["input"] == kind and r["tool"] == "trailhound"), None)
        for r in rows:
            if r["input"] != kind or not r["tool"].startswith("duckdb-"):
                continue
            if th_row and r.get("events_per_s"):
                r["trailhound_ratio"] = round(th_row["events_per_s"] / r["events_per_s"], 2)
                ratios.append({"input": kind, "duckdb_variant": r["tool"][len("duckdb-"):],
                               "trailhound_events_per_s": th_row["events_per_s"],
                               "duckdb_events_per_s": r["events_per_s"],
                               "trailhound_over_duckdb": r["trailhound_ratio"]})
    order = {"ndjson": 0, "s3": 1}
    rows.sort(key=lambda r: (order[r["input"]], r["tool"] != "trailhound", r["tool"]))

    report = {
        "when": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "git": git_rev(a.repo) if a.repo else None,
        "machine": machine(),
        "loadavg": {"before_trailhound": th.get("loadavg_before"), "after_trailhound": th.get("loadavg_after"),
                    "at_report": loadavg()},
        "params": {"events": events, "seed": a.seed, "runs": a.runs, "threads": a.threads},
        "corpus": {"dir": corpus_dir, "generator": corpus, "inputs": sizes},
        "rules": {
            "trailhound": {"pack": th.get("rules", "built-in"), "cmd": {r["input"]: r["cmd"] for r in th["inputs"]},
                           "stats": th_rules},
            "duckdb": ({"detections": duck_rules(), "source": "benches/peer/detections.py",
                        "version": duck_meta.get("duckdb"), "threads": duck_meta.get("threads")}
                       if duck_meta else None),
        },
        "results": rows,
        "ratios": ratios,
        "warnings": warnings,
    }
    with open(a.out, "w") as f:
        json.dump(report, f, indent=1)
    print_report(report)


def print_report(rep):
    m, p = rep["machine"], rep["params"]
    la = rep["loadavg"]
    print()
    print(f"machine: nproc {m['nproc']}, kernel {m['kernel']}, {m['cpu_model'] or 'cpu ?'}, "
          f"{m['mem_GiB']} GiB, python {m['python']}")
    print(f"load average (1/5/15 min): before trailhound {fmt_la(la['before_trailhound'])}, "
          f"after trailhound {fmt_la(la['after_trailhound'])}, now {fmt_la(la['at_report'])}")
    ins = rep["corpus"]["inputs"]
    print(f"corpus: make_corpus.py --events {p['events']} --seed {p['seed']}  ({rep['corpus']['dir']})")
    print(f"  ndjson    {ins['ndjson']['bytes_uncompressed']:,} bytes")
    print(f"  s3 layout {ins['s3']['files']:,} objects, {ins['s3']['bytes_on_disk']:,} bytes gzip'd, "
          f"{ins['s3']['bytes_uncompressed']:,} bytes uncompressed")
    print(f"protocol: page cache warm, best of {p['runs']} wall-clock runs, findings to /dev/null, "
          f"threads {p['threads']}" + (" on both sides" if rep["rules"]["duckdb"] else "")
          + (f", git {rep['git']}" if rep["git"] else ""))
    r = rep["rules"]
    th_stats = r["trailhound"]["stats"]
    print(f"rules: trailhound: {r['trailhound']['pack']}" + (f" ({json.dumps(th_stats)})" if th_stats else ""))
    if r["duckdb"]:
        d = r["duckdb"]
        names = d["detections"] or []
        print(f"       duckdb {d['version']} (threads={d['threads']}): the {len(names)} reference "
              f"detections in benches/peer/detections.py: {', '.join(names)}")
    else:
        print("       duckdb: not run (--skip-duckdb)")
    print()
    hdr = ["input", "tool", "best s", "median s", "events/s", "MB/s", "bin elapsed_s", "findings",
           "trailhound ÷"]
    table = [hdr]
    for row in rep["results"]:
        if "error" in row:
            table.append([INPUT_LABEL[row["input"]], row["tool"], "error", "", "", "", "", "", ""])
            continue
        table.append([
            INPUT_LABEL[row["input"]], row["tool"], f"{row['best_s']:.3f}", f"{row['median_s']:.3f}",
            f"{row['events_per_s']:,}", f"{row['MB_per_s']:,.1f}",
            fmt_num(row.get("elapsed_s_binary"), ".3f") if row["tool"] == "trailhound" else "",
            f"{row['findings']:,}" if isinstance(row.get("findings"), int) else "-",
            f"{row['trailhound_ratio']:.2f}x" if "trailhound_ratio" in row else "",
        ])
    if not rep["ratios"]:
        table = [t[:-1] for t in table]
    widths = [max(len(t[i]) for t in table) for i in range(len(table[0]))]
    left = {0, 1}
    for j, t in enumerate(table):
        print("  ".join(c.ljust(widths[i]) if i in left else c.rjust(widths[i]) for i, c in enumerate(t)).rstrip())
        if j == 0:
            print("  ".join("-" * w for w in widths))
    print()
    print("events/s = corpus events / best wall seconds (timed around the process by this script); "
          "MB/s = uncompressed input MB (10^6) / best seconds;")
    print("'trailhound ÷' = trailhound events/s / that DuckDB variant's events/s on the same input; "
          "findings are per-side counts of different rule sets, not comparable.")
    for w in rep["warnings"]:
        print(f"warning: {w}")


def fmt_la(x):
    return " ".join(f"{v:.2f}" for v in x) if x else "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--bin", required=True)
    m.add_argument("--threads", type=int, default=2)
    m.add_argument("--runs", type=int, default=3)
    m.add_argument("--input", action="append", required=True, help="KIND=PATH, KIND in ndjson|s3")
    m.add_argument("--arg", action="append", default=[], help="one more trailhound argument (repeatable)")
    m.add_argument("--keep-stats", metavar="DIR", help="copy each input's last stats file here")
    m.add_argument("--out", required=True)
    r = sub.add_parser("report")
    r.add_argument("--corpus", required=True, help="corpus directory (ct.ndjson, s3/, corpus.json)")
    r.add_argument("--trailhound", required=True)
    r.add_argument("--duck")
    r.add_argument("--seed", type=int)
    r.add_argument("--runs", type=int)
    r.add_argument("--threads", type=int)
    r.add_argument("--repo")
    r.add_argument("--out", required=True)
    a = ap.parse_args()
    if a.cmd == "measure":
        for spec in a.input:
            if "=" not in spec or spec.split("=", 1)[0] not in INPUT_LABEL:
                ap.error(f"--input {spec!r}: want ndjson=PATH or s3=PATH")
        if a.runs < 1:
            ap.error("--runs must be >= 1")
        cmd_measure(a)
    else:
        cmd_report(a)


if __name__ == "__main__":
    main()
