#!/usr/bin/env python3
"""sync_report.py RESULTS_DIR - the synchronization rows of micro.csv (bench `queue` and `lock`,
see bench/micro.lua and bench/peers/py_sync.py) as a markdown table: median time per operation
over the rounds, and the ratio against uvloop (lower is better). The peers' report.py only knows
the loop-core columns, so bench/run appends this table to results.md."""
import csv
import os
import statistics as st
import sys
from collections import defaultdict

BENCHES = [("queue", "queue put+get, maxsize 100: ns/item"), ("lock", "lock hand-off, 100 tasks: ns/hand-off")]
ORDER = ["aloop", "uvloop", "asyncio"]

rows = list(csv.DictReader(open(os.path.join(sys.argv[1], "micro.csv"))))
secs, ns = defaultdict(list), {}
for r in rows:
    if r["bench"] in dict(BENCHES):
        secs[(r["variant"], r["bench"])].append(float(r["secs"]))
        ns[(r["variant"], r["bench"])] = int(r["n"])
if not secs:
    sys.exit(0)


def per_op(v, b):
    k = (v, b)
    return st.median(secs[k]) / ns[k] * 1e9 if k in secs else None


variants = [v for v in ORDER if any(k[0] == v for k in secs)]
variants += sorted({k[0] for k in secs} - set(variants))
print("\n## Synchronization micro-benchmarks (median of rounds; (x) = time ratio vs uvloop, lower is better)\n")
print("| runtime | " + " | ".join(d for _, d in BENCHES) + " |")
print("|---|" + "---|" * len(BENCHES))
for v in variants:
    cells = []
    for b, _ in BENCHES:
        x, ref = per_op(v, b), per_op("uvloop", b)
        cells.append("—" if x is None else f"{x:.0f}" + (f" ({x / ref:.2f})" if ref else ""))
    print(f"| {v} | " + " | ".join(cells) + " |")
n_rounds = max(len(x) for x in secs.values())
print(f"\n{n_rounds} rounds per cell. Speed-up of aloop over uvloop: " + ", ".join(
    f"{b} {per_op('uvloop', b) / per_op('aloop', b):.2f}x" for b, _ in BENCHES
    if per_op("aloop", b) and per_op("uvloop", b)) + ".")
