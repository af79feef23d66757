#!/usr/bin/env python3
"""Instructions and mallocs per transfer of perf_txn's async actor path, by callgrind.

Runs `perf_txn --benchmarks=async --no-direct --clients=64 --turns=1 --threads=1` under
callgrind for 1,000 and 4,000 transfers (both at once) and prints (N4000 - N1000) / 3000 for
the whole process and for each thread (--separate-threads=yes). With one CAF worker thread
the worker's count repeats to within about 0.2k. With --provenance the provenance writer's
thread writes its end marks once per 20 ms batch; under callgrind a batch holds about ten
records (a quiet real run: hundreds), so its per-transfer figure, and the worker's by a few
thousand through their shared memtable, is inflated and noisy: compare the worker thread, or
functions. Mallocs count calls to malloc/calloc/realloc (operator new calls malloc).

With --direct it counts the baseline instead: the same transfers with direct TransactionDB
calls on one thread (`perf_txn --direct-only --threads=1`), so that the difference of the two
counts is what the actor path adds per transfer.

  perf/txn/callgrind_per_transfer.py [--binary=build/perf/perf_txn] [--out=DIR] [--direct]
                                     [perf_txn args]
"""
import glob
import os
import re
import subprocess
import sys
import tempfile


def stats(path):
    names, total, mallocs, callee = {}, 0, 0, None
    with open(path) as f:
        for line in f:
            if line.startswith(('summary:', 'totals:')):
                total = int(line.split()[1])
                continue
            m = re.match(r'c?fn=\((\d+)\)(?: (.*))?', line)
            if m:
                if m.group(2):
                    names[m.group(1)] = m.group(2).strip()
                if line.startswith('cfn='):
                    callee = names.get(m.group(1))
                continue
            if line.startswith('calls=') and callee in ('malloc', 'calloc', 'realloc'):
                mallocs += int(line[6:].split()[0])
    return total, mallocs


def main():
    binary, out, extra, direct = 'build/perf/perf_txn', None, [], False
    for a in sys.argv[1:]:
        if a == '--direct':
            direct = True
        elif a.startswith('--binary='):
            binary = a[9:]
        elif a.startswith('--out='):
            out = a[6:]
        else:
            extra.append(a)
    out = out or tempfile.mkdtemp(prefix='comb-callgrind-')
    os.makedirs(out, exist_ok=True)
    runs = {}
    for n in (1000, 4000):
        base = os.path.join(out, f'cg.{n}')
        for f in glob.glob(base + '*'):
            os.remove(f)
        what = (['--direct-only'] if direct else
                ['--benchmarks=async', '--no-direct', '--clients=64'])
        cmd = ['valgrind', '--tool=callgrind', '--separate-threads=yes',
               f'--callgrind-out-file={base}', binary] + what + [
               '--turns=1', '--threads=1', f'--transfers={n}'] + extra
        with open(base + '.log', 'w') as log:
            runs[n] = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
    for n, p in runs.items():
        if p.wait() != 0:
            sys.exit(f'callgrind run of {n} transfers failed (rc {p.returncode}): see {out}/cg.{n}.log')
    per = {n: {f.rsplit('-', 1)[1]: stats(f) for f in glob.glob(os.path.join(out, f'cg.{n}-*'))}
           for n in (1000, 4000)}
    rows, ir_all, m_all = [], 0.0, 0.0
    for t in sorted(set(per[1000]) | set(per[4000])):
        a, b = per[1000].get(t, (0, 0)), per[4000].get(t, (0, 0))
        ir, m = (b[0] - a[0]) / 3000, (b[1] - a[1]) / 3000
        ir_all, m_all = ir_all + ir, m_all + m
        if abs(ir) >= 50:
            rows.append(f'  thread {t}: {ir / 1000:8.2f}k instructions, {m:6.2f} mallocs')
    label = ' '.join((['direct'] if direct else []) + extra) or 'provenance off'
    print(f'per transfer ({label}): {ir_all / 1000:.2f}k '
          f'instructions, {m_all:.2f} mallocs; callgrind files in {out}')
    print('\n'.join(rows))


if __name__ == '__main__':
    main()
