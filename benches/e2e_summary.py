#!/usr/bin/env python3
"""One table of every performance target from the pieces `benches/e2e.sh` wrote.

    python3 benches/e2e_summary.py --dir CORPUS_DIR/ev500000-seed1 [--out summary.json]

Reads e2e.json (NDJSON and S3 layout, trailhound and DuckDB), archive.json (detect +
archive vs DuckDB's JSON->Parquet), rsigma.json and differential.json (the 57 SigmaHQ
rules), scaling.json (callgrind, 50 vs 1,000 rules), latency.json and memory.json; a
missing piece (a step skipped) is shown as not measured. Ratios are trailhound ÷ peer
from the same run.
"""
import argparse
import json
import os

MB = 1e6


def load(d, name):
    p = os.path.join(d, name)
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return json.load(f)


def fmt(x, spec=",.0f"):
    return "-" if x is None else format(x, spec)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--out")
    a = ap.parse_args()
    e2e = load(a.dir, "e2e.json")
    arch = load(a.dir, "archive.json")
    rs = load(a.dir, "rsigma.json")
    diff = load(a.dir, "differential.json")
    sc = load(a.dir, "scaling.json")
    lat = load(a.dir, "latency.json")
    mem = load(a.dir, "memory.json")
    rows = []

    def row(workload, th_eps, th_mbs, peer, peer_eps, ratio, target, ok, rss=None):
        rows.append({"workload": workload, "trailhound_events_per_s": th_eps, "trailhound_MB_per_s": th_mbs,
                     "peer": peer, "peer_events_per_s": peer_eps, "ratio": ratio, "target": target,
                     "met": ok, "max_rss_MiB": rss})

    ndjson_bytes = None
    if e2e:
        ndjson_bytes = e2e["corpus"]["inputs"]["ndjson"]["bytes_uncompressed"]
        for kind, label, want in (("ndjson", "NDJSON file -> findings (full rule set)", 1.5),
                                  ("s3", "S3 layout, gz objects -> findings (full rule set)", 2.0)):
            th = next((r for r in e2e["results"] if r["input"] == kind and r["tool"] == "trailhound"), None)
            duck = [r for r in e2e["results"] if r["input"] == kind and r["tool"].startswith("duckdb-")
                    and r.get("events_per_s")]
            best = max(duck, key=lambda r: r["events_per_s"]) if duck else None
            if th is None:
                continue
            ratio = round(th["events_per_s"] / best["events_per_s"], 2) if best else None
            row(label, th["events_per_s"], th["MB_per_s"], best["tool"] if best else "-",
                best["events_per_s"] if best else None, ratio, f">= {want}x fastest DuckDB",
                None if ratio is None else ratio >= want, th.get("max_rss_MiB"))
    if arch:
        eps = arch["events"] / arch["trailhound_s"]
        job = next((j for j in arch["duckdb"] if j.get("parquet") == "raw+columns" and "events_per_s" in j), None)
        ratio = round(eps / job["events_per_s"], 2) if job else None
        row("detection + Parquet archive (Tailpipe schema)", round(eps),
            round(ndjson_bytes / MB / arch["trailhound_s"], 1) if ndjson_bytes else None,
            "duckdb JSON->Parquet raw+columns", job["events_per_s"] if job else None, ratio,
            ">= 2x", None if ratio is None else ratio >= 2)
    if rs:
        best = min(rs["rsigma_eval_s"], rs["rsigma_daemon_1_s"], rs["rsigma_daemon_threads_s"])
        for label, t in (("57 SigmaHQ rules, NDJSON file", rs["trailhound_file_s"]),
                         ("57 SigmaHQ rules, NDJSON on stdin", rs["trailhound_stdin_s"])):
            ratio = round(best / t, 2)
            row(label, round(rs["events"] / t), round(ndjson_bytes / MB / t, 1) if ndjson_bytes else None,
                "rsigma best setting", round(rs["events"] / best), ratio, ">= 10x", ratio >= 10)
    if sc:
        r = sc["total_ratio"]
        row(f"rule scaling: 1,000 vs 50 rules (instructions/record {sc['per_record']['rules_1000']:,} vs "
            f"{sc['per_record']['rules_50']:,})", None, None, "-", None, r, "<= 2x", r <= 2)
    if lat:
        p99 = lat["p99_ms"]
        row(f"latency p99 at {lat['rate_target']:,} records/s (p50 {lat['p50_ms']} ms, max {lat['max_ms']} ms)",
            lat["rate_held"], None, "-", None, p99, "<= 100 ms", p99 is not None and p99 <= 100,
            lat.get("trailhound_max_rss_MiB"))
    if mem:
        d = mem.get("detect")
        if d:
            row(f"memory, detection only, {d['GB']:.1f} GB streamed", round(d["records_in"] / d["wall_s"]), None,
                "-", None, d["max_rss_MiB"], "<= 200 MB RSS", d["max_rss_MiB"] * 1.048576 <= 200,
                d["max_rss_MiB"])
        d = mem.get("detect+archive")
        if d:
            row(f"memory, archive on (default bounds), {d['GB']:.1f} GB streamed",
                round(d["records_in"] / d["wall_s"]), None, "-", None, d["max_rss_MiB"], "report", None,
                d["max_rss_MiB"])

    hdr = ["workload", "trailhound ev/s", "MB/s", "peer", "peer ev/s", "ratio / value", "target", "met",
           "max RSS MiB"]
    table = [hdr]
    for r in rows:
        table.append([r["workload"], fmt(r["trailhound_events_per_s"]), fmt(r["trailhound_MB_per_s"], ",.1f"),
                      r["peer"], fmt(r["peer_events_per_s"]),
                      fmt(r["ratio"], ".2f") if r["ratio"] is not None else "-", r["target"],
                      {True: "yes", False: "MISSED", None: "-"}[r["met"]], fmt(r["max_rss_MiB"], ".0f")])
    widths = [max(len(t[i]) for t in table) for i in range(len(hdr))]
    for j, t in enumerate(table):
        print("  ".join(c.ljust(widths[i]) if i in (0, 3, 6) else c.rjust(widths[i])
                        for i, c in enumerate(t)).rstrip())
        if j == 0:
            print("  ".join("-" * w for w in widths))
    if diff:
        print(f"\nfindings differential, trailhound vs rsigma on the 57 SigmaHQ rules: "
              f"{diff['trailhound_pairs']:,} vs {diff['rsigma_pairs']:,} (eventID, rule) pairs, "
              f"{diff['common']:,} common, {diff['only_trailhound']} only trailhound, {diff['only_rsigma']} only rsigma")
    missing = [n for n, v in (("e2e.json", e2e), ("archive.json", arch), ("rsigma.json", rs),
                              ("scaling.json", sc), ("latency.json", lat), ("memory.json", mem)) if v is None]
    if missing:
        print(f"not measured in this run: {', '.join(missing)}")
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"rows": rows, "differential": diff, "git": e2e.get("git") if e2e else None,
                       "machine": e2e.get("machine") if e2e else None}, f, indent=1)


if __name__ == "__main__":
    main()
