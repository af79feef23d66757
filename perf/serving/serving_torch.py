#!/usr/bin/python3
"""PyTorch baseline for perf_serving: the same models and batches as Comb's runners, run
directly (what a user would run instead of serving through Comb), eval mode, no_grad,
2 threads unless told otherwise, warm-up before timing. Inputs are uint8 like the
runners' and are converted to float inside the timed step, as the runners do.
  mnist     MLP 784-512-10 + softmax, batch 1200 (28x28 images as 784 bytes)
  mobilenet torchvision MobileNetV2 (1001 classes), batch 6 at 224x224x3 + softmax + top-5
  detector  MobileNetV2 features + CenterNet-style neck and heads (the layout of
            kernels/models/centernet.hpp: 1x1 reduce to 128, three x2 nearest upsamplings
            each with a 3x3 conv + ReLU to 128, 64, 64, heads 3x3 conv 64 + ReLU then 1x1 to
            80 classes (sigmoid), 2 and 2), batch 1 at 512x512x3
Prints "torch_serving ms <median ms per batch>".
Run with Debian's python3-torch: /usr/bin/python3 serving_torch.py MODEL ITERS [threads]
"""
import statistics
import sys
import time

import torch
import torch.nn as nn
import torchvision

which = sys.argv[1]
iters = int(sys.argv[2]) if len(sys.argv) > 2 else 10
threads = int(sys.argv[3]) if len(sys.argv) > 3 else 2
torch.set_num_threads(threads)
torch.manual_seed(1)


class CenterNet(nn.Module):
    def __init__(self, classes=80):
        super().__init__()
        self.backbone = torchvision.models.mobilenet_v2().features
        layers = [nn.Conv2d(1280, 128, 1), nn.ReLU()]
        c = 128
        for out in (128, 64, 64):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, out, 3, padding=1),
                       nn.ReLU()]
            c = out
        self.neck = nn.Sequential(*layers)

        def head(n):
            return nn.Sequential(nn.Conv2d(c, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, n, 1))

        self.heat, self.size, self.offset = head(classes), head(2), head(2)

    def forward(self, x):
        f = self.neck(self.backbone(x))
        return torch.sigmoid(self.heat(f)), self.size(f), self.offset(f)


if which == "mnist":
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10)).eval()
    x = torch.randint(0, 256, (1200, 784), dtype=torch.uint8)

    def step():
        p = torch.softmax(model(x.float() / 255.0), dim=1)
        return p.argmax(dim=1)
elif which == "mobilenet":
    model = torchvision.models.mobilenet_v2(num_classes=1001).eval()
    x = torch.randint(0, 256, (6, 224, 224, 3), dtype=torch.uint8)

    def step():
        t = (x.float() - 128.0) / 128.0
        p = torch.softmax(model(t.permute(0, 3, 1, 2).contiguous()), dim=1)
        return p.topk(5, dim=1)
elif which == "detector":
    model = CenterNet().eval()
    x = torch.randint(0, 256, (1, 512, 512, 3), dtype=torch.uint8)

    def step():
        t = (x.float() - 128.0) / 128.0
        heat, size, off = model(t.permute(0, 3, 1, 2).contiguous())
        peaks = nn.functional.max_pool2d(heat, 3, stride=1, padding=1)
        keep = (peaks == heat).float() * heat
        return keep.flatten(1).topk(100, dim=1)
else:
    sys.exit(f"unknown model {which}")

with torch.no_grad():
    for _ in range(3):
        step()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1e3)
print(f"torch_serving ms {statistics.median(times):.3f}", flush=True)
