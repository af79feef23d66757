#!/usr/bin/env python3
"""Checks that no folder of Comb includes a folder above it.

The layers, lowest first (ARCHITECTURE.md "Layout"):

    base < storage, kernels < runtime < actors < node < apps < cli, perf

A file may include its own folder and the folders of lower layers. Folders that share a layer
(storage and kernels; cli and perf) do not include each other. Generated Cap'n Proto headers
(schemas/) count as storage's layer. tests/ and examples/ stand above everything.
Besides the layers, a folder's internals (<folder>/detail/) are included only by that folder
and by tests.

Usage: check_includes.py SOURCE_DIR      exits 1 and names every offending include
       check_includes.py --self-test     checks the checker on made-up trees
"""
import os
import re
import sys
import tempfile

LAYERS = {
    "base": 0,
    "storage": 1,
    "schemas": 1,
    "kernels": 1,
    "runtime": 2,
    "actors": 3,
    "node": 4,
    "apps": 5,
    "cli": 6,
    "perf": 6,
    "examples": 7,
    "tests": 7,
}
# Folders of one layer that may include each other (the generated schemas are storage's
# and runtime's wire formats).
SIBLINGS = {("storage", "schemas")}
# Single headers a higher folder's files may use although their folder sits above: the
# benchmarks start child processes and temporary folders with the tests' harness helpers.
EXCEPTIONS = {("perf", "tests/test_util.hpp"),
              # perf/cluster runs its nodes in the tests' network namespaces.
              ("perf", "tests/support/netns.hpp"),
              # perf_nectar's pg_spool spools into the tests' own PostgreSQL server.
              ("perf", "tests/pg_server.hpp")}
EXTENSIONS = (".hpp", ".cpp", ".h", ".cu", ".cuh")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def allowed(src_top, inc_top):
    if src_top == inc_top:
        return True
    if (src_top, inc_top) in SIBLINGS:
        return True
    return LAYERS[inc_top] < LAYERS[src_top]


def check(root):
    """Returns a list of 'file:line: message' problems under root."""
    problems = []
    for top in sorted(LAYERS):
        base = os.path.join(root, top)
        if not os.path.isdir(base):
            continue
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if not name.endswith(EXTENSIONS):
                    continue
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, root)
                with open(path, encoding="utf-8", errors="replace") as f:
                    for lineno, line in enumerate(f, 1):
                        m = INCLUDE.match(line)
                        if not m:
                            continue
                        inc = m.group(1)
                        inc_top = inc.split("/", 1)[0]
                        if "/" not in inc or inc_top not in LAYERS:
                            continue  # a file beside this one, or a generated header
                        if (top, inc) in EXCEPTIONS:
                            continue
                        if not allowed(top, inc_top):
                            problems.append(
                                f"{rel}:{lineno}: includes \"{inc}\": {top}/ (layer "
                                f"{LAYERS[top]}) may not include {inc_top}/ (layer "
                                f"{LAYERS[inc_top]})")
                        elif "/detail/" in inc and top != inc_top and top != "tests":
                            problems.append(
                                f"{rel}:{lineno}: includes \"{inc}\": the internals of "
                                f"{inc_top}/ are not for {top}/")
    return problems


def self_test():
    cases = [
        ("storage/a.cpp", '#include "runtime/b.hpp"', 1),
        ("storage/a.cpp", '#include "kernels/b.hpp"', 1),
        ("kernels/a.cpp", '#include "storage/b.hpp"', 1),
        ("storage/a.cpp", '#include "base/errc.hpp"', 0),
        ("storage/a.cpp", '#include "schemas/log_record.capnp.h"', 0),
        ("runtime/pieces/a.cpp", '#include "actors/x.hpp"', 1),
        ("runtime/a.hpp", '#include "runtime/provenance/x.hpp"', 0),
        ("node/a.cpp", '#include "actors/x.hpp"', 0),
        ("actors/a.cpp", '#include "node/x.hpp"', 1),
        ("apps/x/a.cpp", '#include "cli/x.hpp"', 1),
        ("cli/a.cpp", '#include "perf/x.hpp"', 1),
        ("apps/x/a.cpp", '#include "kernels/detail/pool.hpp"', 1),
        ("tests/a.cpp", '#include "kernels/detail/pool.hpp"', 0),
        ("base/a.cpp", '#  include "storage/x.hpp"', 1),
        ("base/a.cpp", '#include <storage/x.hpp>', 0),
        ("base/a.cpp", '#include "local.hpp"', 0),
    ]
    failed = 0
    for path, line, want in cases:
        with tempfile.TemporaryDirectory() as root:
            full = os.path.join(root, path)
            os.makedirs(os.path.dirname(full))
            with open(full, "w") as f:
                f.write(line + "\n")
            got = len(check(root))
            if got != want:
                print(f"self-test: {path}: {line!r}: {got} problems, expected {want}")
                failed += 1
    print(f"self-test: {len(cases) - failed} passed, {failed} failed")
    return 1 if failed else 0


def main(argv):
    if len(argv) == 2 and argv[1] == "--self-test":
        return self_test()
    if len(argv) != 2:
        print(__doc__)
        return 2
    problems = check(argv[1])
    for p in problems:
        print(p)
    if problems:
        print(f"layers: {len(problems)} include(s) point upward or into another folder's "
              "internals")
        return 1
    print("layers: every include points to its own folder or a lower layer")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
