#!/usr/bin/env python3
"""Merges the stage marks of COMB_STAGE_TRACE=PREFIX (runtime/pieces/stage_trace.hpp) of every
process (PREFIX.<pid>) by time and prints, for invocations that ran one at a time, the median
time between consecutive stages, and whether the step changed thread or process.

An invocation is the marks from one START mark to the next. It ran alone when its marks that
carry a task id all carry the same one, and every mark of that task id lies inside it; the
others (invocations in flight together, whose marks interleave) are counted and left out.

  scripts/stage_trace.py PREFIX [--start STAGE] [--skip N]
"""
import glob
import statistics
import struct
import sys
from collections import defaultdict


def read(prefix):
    marks = []
    for path in glob.glob(prefix + ".*"):
        pid = path.rsplit(".", 1)[1]
        data = open(path, "rb").read()
        for off in range(0, len(data) - 39, 40):
            ns, ident, tid = struct.unpack_from("<QQI", data, off)
            if ns == 0:
                continue
            stage = data[off + 20:off + 40].split(b"\0", 1)[0].decode()
            marks.append((ns, pid, tid, stage, ident))
    marks.sort()
    return marks


def alone(runs, marks):
    """The runs whose id-carrying marks name one task, all of whose marks they hold."""
    per_id = defaultdict(int)
    for m in marks:
        if m[4]:
            per_id[m[4]] += 1
    out = []
    for run in runs:
        ids = [m[4] for m in run if m[4]]
        if ids and len(set(ids)) == 1 and per_id[ids[0]] == len(ids):
            out.append(run)
    return out


def main():
    args = sys.argv[1:]
    prefix = args[0]
    start = "commit.hook"
    skip = 2
    if "--start" in args:
        start = args[args.index("--start") + 1]
    if "--skip" in args:
        skip = int(args[args.index("--skip") + 1])
    marks = read(prefix)
    runs = []
    for m in marks:
        if m[3] == start:
            runs.append([m])
        elif runs:
            runs[-1].append(m)
    runs = runs[skip:]
    total = len(runs)
    runs = alone(runs, marks)
    steps = defaultdict(list)
    order = []
    for run in runs:
        for a, b in zip(run, run[1:]):
            key = (a[3], b[3], "proc" if a[1] != b[1] else ("thread" if a[2] != b[2] else ""))
            if key not in steps:
                order.append(key)
            steps[key].append((b[0] - a[0]) / 1000.0)
    print(f"{len(runs)} invocations from {start} ran alone ({total - len(runs)} overlapped, left "
          f"out); median us (range) between consecutive marks")
    for key in order:
        v = steps[key]
        if len(v) < len(runs) / 2:
            continue
        print(f"  {key[0]:>14} -> {key[1]:<14} {key[2]:>6}  {statistics.median(v):9.1f}"
              f"  ({min(v):.1f}-{max(v):.1f}, n={len(v)})")


if __name__ == "__main__":
    main()
