"""Helpers of perf/serving's Python tests: the processes a benchmark started."""
import os


def children(pid):
    """Child pids of every thread of `pid` (/proc/PID/task/TID/children)."""
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    out += [int(x) for x in f.read().split()]
            except OSError:
                pass
    except OSError:
        pass
    return out
