#!/usr/bin/env python3
"""Finding latency: record arrival on stdin -> its finding on stdout.

    python3 benches/latency.py --bin target/release/trailhound --corpus DIR/ct.ndjson \
        [--rate 20000] [--seconds 20] [--threads 2] [-- EXTRA TRAILHOUND ARGS]

Starts `trailhound detect` reading stdin and writes the corpus's records to it at a steady
rate: every millisecond the records due by then go out in one write, and each record's
send time is the moment just before that write. A reader thread takes each finding line
as soon as it is read from trailhound's stdout and looks up the `event.eventID` it names;
latency = read time - send time of that record (a correlation's finding counts from the
record that completed it). Findings without an eventID (alarm periods, suppression
summaries) are not timed. Prints count, percentiles and the rate actually held, and with
--json-out writes them as JSON.
"""
import argparse
import json
import os
import re
import resource
import subprocess
import sys
import threading
import time

EVENT_ID = re.compile(rb'"eventID":"([^"\\]*)"')
RULE_ID = re.compile(rb'"rule":\{"id":"([^"\\]*)"')
FINDING_EVENT = re.compile(rb'"event":\{"eventID":"([^"\\]*)"')


def load(path, n):
    lines, ids = [], []
    with open(path, "rb") as f:
        for line in f:
            if len(lines) >= n:
                break
            m = EVENT_ID.search(line)
            lines.append(line if line.endswith(b"\n") else line + b"\n")
            ids.append(m.group(1) if m else None)
    return lines, ids


def pct(sorted_vals, p):
    if not sorted_vals:
        return None
    k = min(len(sorted_vals) - 1, max(0, int(round(p / 100 * (len(sorted_vals) - 1)))))
    return sorted_vals[k]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--corpus", required=True, help="NDJSON records, one per line (unique eventIDs)")
    ap.add_argument("--rate", type=int, default=20000, help="records per second")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json-out")
    ap.add_argument("--slowest", type=int, default=0, help="print the rules of the N slowest findings")
    ap.add_argument("extra", nargs="*", help="more trailhound arguments (after --)")
    a = ap.parse_args()
    a.dump = [] if a.slowest else None

    n = int(a.rate * a.seconds)
    lines, ids = load(a.corpus, n)
    if len(lines) < n:
        sys.exit(f"latency: corpus has {len(lines)} records, {n} needed for {a.seconds} s at {a.rate}/s")
    sent = {}
    for i, eid in enumerate(ids):
        if eid is not None:
            sent[eid] = i
    send_time = [0.0] * n

    argv = [a.bin, "detect", "--threads", str(a.threads), "--no-record", "--stats", "json", *a.extra]
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    lat = []
    untimed = [0]

    def lines_as_read():
        # Big reads, split here: each line is timed when the read that completed it
        # returned (a line-by-line read of an unbuffered pipe costs a call per byte).
        fd_out = p.stdout.fileno()
        rest = b""
        while True:
            block = os.read(fd_out, 1 << 20)
            if not block:
                return
            t = time.perf_counter()
            parts = (rest + block).split(b"\n")
            rest = parts.pop()
            for line in parts:
                yield t, line

    def reader():
        for t, line in lines_as_read():
            m = FINDING_EVENT.search(line)
            i = sent.get(m.group(1)) if m else None
            if i is None or send_time[i] == 0.0:
                untimed[0] += 1
                continue
            lat.append(t - send_time[i])
            if a.dump is not None:
                r = RULE_ID.search(line)
                a.dump.append((t - send_time[i], r.group(1).decode() if r else "?", line[:12]))

    stats_err = []

    def err_reader():
        stats_err.append(p.stderr.read())

    hwm = [0]

    def watch_rss():
        # VmHWM: the peak RSS since exec (getrusage of children would count the
        # driver's own memory, inherited at fork).
        while p.poll() is None:
            try:
                with open(f"/proc/{p.pid}/status") as f:
                    for l in f:
                        if l.startswith("VmHWM:"):
                            hwm[0] = max(hwm[0], int(l.split()[1]))
            except OSError:
                pass
            time.sleep(0.05)

    threading.Thread(target=watch_rss, daemon=True).start()
    rt = threading.Thread(target=reader, daemon=True)
    et = threading.Thread(target=err_reader, daemon=True)
    rt.start()
    et.start()
    fd = p.stdin.fileno()
    t0 = time.perf_counter()
    i = 0
    lag_max = 0.0
    while i < n:
        now = time.perf_counter()
        due = min(n, int((now - t0) * a.rate) + 1)
        if due > i:
            lag_max = max(lag_max, (now - t0) - i / a.rate)
            buf = b"".join(lines[i:due])
            for j in range(i, due):
                send_time[j] = now
            view = memoryview(buf)
            while view:
                view = view[os.write(fd, view):]
            i = due
        time.sleep(0.001)
    t_sent = time.perf_counter() - t0
    p.stdin.close()
    rc = p.wait()
    rt.join()
    et.join()
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    if rc != 0:
        sys.stderr.write(stats_err[0].decode("utf-8", "replace")[-2000:])
        sys.exit(f"latency: trailhound exited {rc}")
    summary = None
    for l in reversed(stats_err[0].decode("utf-8", "replace").splitlines()):
        if l.startswith("{"):
            summary = json.loads(l)
            break
    lat.sort()
    ms = lambda v: None if v is None else round(v * 1000, 2)
    out = {
        "rate_target": a.rate,
        "records": n,
        "rate_held": round(n / t_sent),
        "writer_max_behind_ms": round(lag_max * 1000, 2),
        "findings_timed": len(lat),
        "findings_untimed": untimed[0],
        "p50_ms": ms(pct(lat, 50)),
        "p90_ms": ms(pct(lat, 90)),
        "p99_ms": ms(pct(lat, 99)),
        "p999_ms": ms(pct(lat, 99.9)),
        "max_ms": ms(lat[-1] if lat else None),
        "trailhound_cpu_s": round(ru.ru_utime + ru.ru_stime, 2),
        "trailhound_max_rss_MiB": round(hwm[0] / 1024, 1),
        "records_in": summary.get("records_in") if summary else None,
        "cmd": " ".join(argv),
    }
    print(f"latency at {a.rate:,} records/s for {a.seconds:g} s ({n:,} records, held {out['rate_held']:,}/s): "
          f"{len(lat):,} findings timed; p50 {out['p50_ms']} ms, p90 {out['p90_ms']} ms, "
          f"p99 {out['p99_ms']} ms, p99.9 {out['p999_ms']} ms, max {out['max_ms']} ms; "
          f"trailhound CPU {out['trailhound_cpu_s']} s, max RSS {out['trailhound_max_rss_MiB']} MiB")
    if a.dump:
        from collections import Counter
        worst = sorted(a.dump, reverse=True)[:a.slowest]
        print(f"rules of the {len(worst)} slowest findings:",
              ", ".join(f"{r} x{c}" for r, c in Counter(r for _, r, _ in worst).most_common(10)))
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
