#!/usr/bin/env python3
"""sync_report.py RESULTS_DIR - the synchronization rows of micro.csv (bench `queue` and `lock`,
see bench/micro.lua and bench/peers/py_sync.py) as a markdown table: median wall time and median
CPU time per operation over the rounds, each with its ratio against uvloop (lower is better).
Wall time is what the peers' report uses; CPU time also holds when other processes share the
CPU. The peers' report.py only knows the loop-core columns, so bench/run appends this table."""
import csv
import os
import statistics as st
import sys
from collections import defaultdict

BENCHES = [("queue", "queue put+get, maxsize 100: ns/item"), ("lock", "lock hand-off, 100 tasks: ns/hand-off")]
ORDER = ["aloop", "uvloop", "asyncio"]

rows = list(csv.DictReader(open(os.path.join(sys.argv[1], "micro.csv"))))
secs, cpu, ns = defaultdict(list), defaultdict(list), {}
for r in rows:
    if r["bench"] in dict(BENCHES):
        secs[(r["variant"], r["bench"])].append(float(r["secs"]))
        cpu[(r["variant"], r["bench"])].append(float(r["cpu"]))
        ns[(r["variant"], r["bench"])] = int(r["n"])
if not secs:
    sys.exit(0)


def per_op(v, b, col=secs):
    k = (v, b)
    return st.median(col[k]) / ns[k] * 1e9 if k in col else None


variants = [v for v in ORDER if any(k[0] == v for k in secs)]
variants += sorted({k[0] for k in secs} - set(variants))
print("\n## Synchronization micro-benchmarks (median of rounds; (x) = time ratio vs uvloop, lower is better)\n")
print("| runtime | " + " | ".join(f"{d}, wall / CPU" for _, d in BENCHES) + " |")
print("|---|" + "---|" * len(BENCHES))
for v in variants:
    cells = []
    for b, _ in BENCHES:
        parts = []
        for col in (secs, cpu):
            x, ref = per_op(v, b, col), per_op("uvloop", b, col)
            parts.append("—" if x is None else f"{x:.0f}" + (f" ({x / ref:.2f})" if ref else ""))
        cells.append(" / ".join(parts))
    print(f"| {v} | " + " | ".join(cells) + " |")
n_rounds = max(len(x) for x in secs.values())
speedups = []
for b, _ in BENCHES:
    if per_op("aloop", b) and per_op("uvloop", b):
        speedups.append(f"{b} {per_op('uvloop', b) / per_op('aloop', b):.2f}x wall, "
                        f"{per_op('uvloop', b, cpu) / per_op('aloop', b, cpu):.2f}x CPU")
print(f"\n{n_rounds} rounds per cell. Speed-up of aloop over uvloop: " + "; ".join(speedups) + ".")
