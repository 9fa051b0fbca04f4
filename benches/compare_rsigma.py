#!/usr/bin/env python3
"""Compares the (eventID, rule id) findings of trailhound and rsigma on the same rules.

    python3 benches/compare_rsigma.py TRAILHOUND_FINDINGS.ndjson RSIGMA_MATCHES.ndjson [--json-out F]

trailhound's lines are native findings (`event.eventID`, `rule.id`); rsigma's are the
matches of `rsigma engine eval|daemon --include-event` (`rule_id`, `event.eventID`).
Prints the counts, then every pair found by one tool and not the other (at most 50 per
side, with the rule title), and exits 1 when there is any difference. Pairs are compared
as sets: trailhound drops repeated eventIDs (dedup) where rsigma reports each copy.
"""
import json
import sys
from collections import Counter


def load(path, rule_of, event_of, title_of):
    pairs, titles, n = set(), {}, 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            d = json.loads(line)
            rule, ev = rule_of(d), event_of(d)
            if rule is None:
                continue
            n += 1
            pairs.add((str(ev), rule))
            titles[rule] = title_of(d)
    return pairs, titles, n


def main():
    args = sys.argv[1:]
    json_out = None
    if len(args) == 4 and args[2] == "--json-out":
        json_out = args[3]
        args = args[:2]
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    th, th_titles, th_n = load(
        args[0],
        lambda d: (d.get("rule") or {}).get("id"),
        lambda d: (d.get("event") or {}).get("eventID"),
        lambda d: (d.get("rule") or {}).get("title"),
    )
    rs, rs_titles, rs_n = load(
        args[1],
        lambda d: d.get("rule_id"),
        lambda d: (d.get("event") or {}).get("eventID"),
        lambda d: d.get("rule_title"),
    )
    titles = {**rs_titles, **th_titles}
    only_th, only_rs = sorted(th - rs), sorted(rs - th)
    print(f"trailhound: {th_n} findings, {len(th)} distinct (eventID, rule)")
    print(f"rsigma:     {rs_n} matches, {len(rs)} distinct (eventID, rule)")
    print(f"common: {len(th & rs)}; only trailhound: {len(only_th)}; only rsigma: {len(only_rs)}")
    if json_out:
        with open(json_out, "w") as f:
            json.dump({"trailhound_findings": th_n, "trailhound_pairs": len(th), "rsigma_matches": rs_n,
                       "rsigma_pairs": len(rs), "common": len(th & rs), "only_trailhound": len(only_th),
                       "only_rsigma": len(only_rs)}, f, indent=1)
    for name, side in (("only trailhound", only_th), ("only rsigma", only_rs)):
        if not side:
            continue
        by_rule = Counter(r for _, r in side)
        print(f"\n{name}, by rule:")
        for r, c in by_rule.most_common():
            print(f"  {c:6}  {r}  {titles.get(r, '')}")
        for ev, r in side[:50]:
            print(f"  {ev}  {r}")
    return 1 if only_th or only_rs else 0


if __name__ == "__main__":
    sys.exit(main())
