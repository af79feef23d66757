#!/usr/bin/env python3
"""perf.serving.split: `perf_serving --cores=split` puts the node's threads on the first half of
the CPUs and its `comb compute` child (every thread of it) on the rest, and the path's output
still equals direct execution's. The run has COMB_STAGE_TRACE set: both processes leave their
marks and scripts/stage_trace.py puts them in order, the hops between the processes included.
Skipped (exit 77) with fewer than 2 CPUs.
Usage: split_test.py PERF_SERVING STAGE_TRACE_PY"""
import os
import subprocess
import sys
import tempfile
import time

from procs import children


def cpu_list(text):
    out = []
    for item in text.strip().split(","):
        if "-" in item:
            lo, hi = item.split("-")
            out += range(int(lo), int(hi) + 1)
        elif item:
            out.append(int(item))
    return out


def list_text(cpus):
    """As comb::cpu_list_text: 0-2,8."""
    out, i = [], 0
    while i < len(cpus):
        j = i
        while j + 1 < len(cpus) and cpus[j + 1] == cpus[j] + 1:
            j += 1
        out.append(str(cpus[i]) if i == j else f"{cpus[i]}-{cpus[j]}")
        i = j + 1
    return ",".join(out)


def threads(pid):
    """(name, allowed CPUs) of each thread of `pid`."""
    out = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            out.append((fields["Name"].strip(), cpu_list(fields["Cpus_allowed_list"])))
        except (OSError, KeyError, ValueError):
            pass
    return out




def stop(p):
    """SIGTERM first: perf_serving then kills and reaps its comb compute child (SIGKILL would
    leave the child serving, an orphan)."""
    p.terminate()
    try:
        p.wait(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def main():
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        print(f"SKIPPED: --cores=split needs 2 CPUs; this test may use {allowed}")
        sys.exit(77)
    node_cpus, compute_cpus = allowed[: len(allowed) // 2], allowed[len(allowed) // 2:]
    trace_dir = tempfile.TemporaryDirectory(prefix="comb_split_test_")
    prefix = os.path.join(trace_dir.name, "t")
    env = dict(os.environ, COMB_STAGE_TRACE=prefix)
    p = subprocess.Popen([sys.argv[1], "--models=mnist", "--torch=off", "--durability=async",
                          "--hotswap=0", "--counts=1,10", "--single-reps=3", "--cores=split"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    seen_compute = seen_node = False
    deadline = time.monotonic() + 400
    while p.poll() is None and time.monotonic() < deadline:
        for c in children(p.pid):
            ts = threads(c)
            # Once its scheduler runs (threads caf.*): --cpus was applied before any started.
            if any(name.startswith("caf.") for name, _ in ts):
                seen_compute = True
                for name, cpus in ts:
                    if cpus != compute_cpus:
                        stop(p)
                        sys.exit(f"FAIL: comb compute thread {name} may run on {cpus}, "
                                 f"not {compute_cpus}")
        for name, cpus in threads(p.pid):
            # The node's scheduler workers and the middleman's thread; the main thread moves
            # to the compute CPUs while it runs direct execution.
            if name.startswith("caf."):
                seen_node = True
                if cpus != node_cpus:
                    stop(p)
                    sys.exit(f"FAIL: node thread {name} may run on {cpus}, not {node_cpus}")
        time.sleep(0.1)
    if p.poll() is None:
        stop(p)
        sys.exit("FAIL: perf_serving --cores=split did not finish in 400 s")
    out = p.stdout.read().decode(errors="replace")
    if p.returncode != 0:
        sys.exit(f"FAIL: perf_serving exited {p.returncode}:\n{out[-3000:]}")
    want = [
        "cores split (--cores=split)",
        f"on CPUs {list_text(compute_cpus)})",
        "output through the path equals direct execution's",
        f"kernels' pool of {len(compute_cpus)} threads",
    ]
    for w in want:
        if w not in out:
            sys.exit(f"FAIL: '{w}' is not in perf_serving's output:\n{out[-3000:]}")
    if not (seen_compute and seen_node):
        sys.exit(f"FAIL: never saw the threads (compute {seen_compute}, node {seen_node})")
    files = [f for f in os.listdir(trace_dir.name) if f.startswith("t.")]
    if len(files) != 2:
        sys.exit(f"FAIL: COMB_STAGE_TRACE left {files}, not one file per process")
    trace = subprocess.run([sys.executable, sys.argv[2], prefix], capture_output=True, text=True)
    lines = trace.stdout.splitlines()
    steps = [line.split() for line in lines[1:]]
    # The single invocations ran alone; the batch of 10 overlapped and is left out.
    alone_runs = int(lines[0].split()[0]) if lines and lines[0].split()[0].isdigit() else 0
    # A step is "from -> to [thread|proc] median (range)"; the way to the compute process and
    # back are steps between processes.
    cross = [(a[0], a[2]) for a in steps if len(a) > 3 and a[3] == "proc"]
    compute_side = ("cmp.", "ex.")
    node_side = ("commit.", "prim.", "disp.", "fn.", "res.")
    if trace.returncode != 0 or alone_runs < 3 \
            or not any(a.startswith(node_side) and b.startswith(compute_side) for a, b in cross) \
            or not any(a.startswith(compute_side) and b.startswith(node_side) for a, b in cross) \
            or not any(s[0] == "ex.run" or s[2] == "ex.run" for s in steps if len(s) > 2):
        sys.exit(f"FAIL: stage_trace.py did not order both processes' marks:\n{trace.stdout}"
                 f"{trace.stderr}")
    print(f"ok: node threads on {node_cpus}, comb compute on {compute_cpus}; outputs equal; "
          f"{len(steps)} traced steps, {len(cross)} between the processes")


main()
