#!/usr/bin/python3
"""PyTorch baseline for perf_vision: torchvision MobileNetV2 (random weights), eval mode,
no_grad, 2 threads unless told otherwise, warm-up before timing.
Prints one line per batch size: "torch_mobilenet_v2 batch <b> ms <median ms>".
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
