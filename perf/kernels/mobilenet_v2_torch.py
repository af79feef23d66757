#!/usr/bin/python3
"""PyTorch baseline for perf_vision: torchvision MobileNetV2 (random weights), eval mode,
no_grad, 2 threads unless told otherwise, warm-up before timing.
Prints one line per batch size: "torch_mobilenet_v2 batch <b> ms <median ms>", and a probe
of what a fresh 4.8 MB allocation costs on this machine ("torch_alloc_probe ..."): on VMs
where first-touch page faults are expensive, PyTorch (which allocates every activation
afresh) slows down far more than Comb (which reuses its scratch buffers).
Run with Debian's python3-torch: /usr/bin/python3 mobilenet_v2_torch.py ITERS [threads] [batches...]
"""
import statistics
import sys
import time

import torch
import torchvision

iters = int(sys.argv[1]) if len(sys.argv) > 1 else 10
threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
batches = [int(b) for b in sys.argv[3:]] or [1, 8]
torch.set_num_threads(threads)
model = torchvision.models.mobilenet_v2().eval()
with torch.no_grad():
    a, b2, out = torch.randn(1200000), torch.randn(1200000), torch.empty(1200000)
    probe = {}
    for name, fn in (("fresh", lambda: a + b2), ("reuse", lambda: torch.add(a, b2, out=out))):
        fn()
        t0 = time.perf_counter()
        for _ in range(10):
            fn()
        probe[name] = (time.perf_counter() - t0) / 10 * 1e3
    print(f"torch_alloc_probe add of 4.8 MB: fresh output {probe['fresh']:.3f} ms, "
          f"preallocated output {probe['reuse']:.3f} ms", flush=True)
    for b in batches:
        x = torch.randn(b, 3, 224, 224)
        for _ in range(3):
            model(x)
        times = []
        for _ in range(iters if b == 1 else max(2, iters // 4)):
            t0 = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - t0) * 1e3)
        print(f"torch_mobilenet_v2 batch {b} ms {statistics.median(times):.3f}", flush=True)
