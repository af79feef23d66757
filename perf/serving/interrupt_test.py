#!/usr/bin/env python3
"""perf.serving.interrupt: perf_serving killed by SIGINT or SIGTERM while it runs takes its
`comb compute` child along (before, the child served on: an orphan on the cores the next run
measured). Usage: interrupt_test.py PERF_SERVING"""
import os
import signal
import subprocess
import sys
import time

from procs import children


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def alive(pid):
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def run(binary, sig):
    p = subprocess.Popen([binary, "--models=mnist", "--torch=off", "--durability=async",
                          "--hotswap=0", "--counts=1000", "--single-reps=1"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    child = None
    deadline = time.monotonic() + 300
    while child is None and time.monotonic() < deadline and p.poll() is None:
        for c in children(p.pid):
            if b"compute" in cmdline(c):
                child = c
        time.sleep(0.05)
    if child is None:
        p.kill()
        sys.exit(f"FAIL: perf_serving started no comb compute child "
                 f"(exit {p.poll()}): {p.stderr.read().decode(errors='replace')}")
    p.send_signal(sig)
    try:
        _, err = p.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        p.kill()
        sys.exit(f"FAIL: perf_serving did not end within 120 s of signal {sig}")
    if p.returncode != -sig:
        sys.exit(f"FAIL: perf_serving ended with {p.returncode}, not by signal {sig}")
    # Reaped by perf_serving before it ended: gone now, not an orphan.
    if alive(child):
        os.kill(child, signal.SIGKILL)
        sys.exit(f"FAIL: signal {sig}: comb compute (pid {child}) still runs after "
                 f"perf_serving ended")
    if b"its comb compute child was killed" not in err:
        sys.exit(f"FAIL: signal {sig}: no word of the child on stderr: {err!r}")
    print(f"signal {sig}: perf_serving and its comb compute child (pid {child}) ended")


def main():
    binary = sys.argv[1]
    for sig in (signal.SIGTERM, signal.SIGINT):
        run(binary, sig)


if __name__ == "__main__":
    main()
