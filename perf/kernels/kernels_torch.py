#!/usr/bin/python3
"""PyTorch CPU baseline for perf_kernels: the same models and shapes as Comb's kernels.
MLP 784-512-10 at batch 1200 and TextCNN (embedding 64, conv1d 2/3/4 x 100, ReLU, max over
time, dropout 0.2, dense, 2-way softmax) at batch 64 x 256 tokens, forward (eval, no_grad)
and a train step (Adam, foreach update, gradients set to None rather than zeroed: PyTorch's
fastest CPU settings). Threads fixed (2 unless told), warm-up before timing.
Run with Debian's python3-torch:
  /usr/bin/python3 kernels_torch.py ITERS [threads] [names...]
    (the standalone phase) prints one line per measurement:
    "torch <name> ms <median ms> min <ms> max <ms> n <ITERS> runs <ms,ms,...>".
  /usr/bin/python3 kernels_torch.py --serve [threads] [names...]
    warms the named cases up, prints "ready <torch version> <threads>", then for each line
    "<name> [N]" read from stdin runs the case once untimed and N times (default 1) back to
    back, and prints "torch <name> ms <median ms of the N>" (perf_kernels uses this to time
    Comb and PyTorch in alternating turns); "quit" or end of input stops.
"""
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

serve = len(sys.argv) > 1 and sys.argv[1] == "--serve"
args = sys.argv[2:] if serve else sys.argv[1:]
if serve:
    args = ["0"] + args
iters = int(args[0]) if len(args) > 0 else 10
threads = int(args[1]) if len(args) > 1 else 2
wanted = set(args[2:])
torch.set_num_threads(threads)
torch.manual_seed(1)


class TextCNN(nn.Module):
    def __init__(self, vocab=8192, embed=64, filters=100, kernels=(2, 3, 4), classes=2,
                 dropout=0.2):
        super().__init__()
        self.emb = nn.Embedding(vocab, embed)
        self.convs = nn.ModuleList(nn.Conv1d(embed, filters, k) for k in kernels)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(filters * len(kernels), classes)

    def forward(self, tokens):
        x = self.emb(tokens).transpose(1, 2)  # [B, E, T]
        h = [F.relu(c(x)).amax(dim=2) for c in self.convs]
        return self.fc(self.drop(torch.cat(h, dim=1)))


def timed(fn):
    for _ in range(3):
        fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def report(name, fn):
    if wanted and name not in wanted:
        return
    t = timed(fn)
    print(f"torch {name} ms {statistics.median(t):.3f} min {min(t):.3f} max {max(t):.3f} "
          f"n {len(t)} runs {','.join(f'{x:.3f}' for x in t)}", flush=True)


def forward_step(model, x):
    """Inference: eval mode, no autograd, softmax output."""
    def step():
        model.eval()
        with torch.no_grad():
            F.softmax(model(x), dim=1)
    return step


def train_step(model, opt, x, y):
    """One training step: cross-entropy, backward, Adam."""
    def step():
        model.train()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    return step


mlp = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10))
mlp_opt = torch.optim.Adam(mlp.parameters(), lr=1e-3, foreach=True)
mx = torch.randn(1200, 784)
my = torch.randint(0, 10, (1200,))

cnn = TextCNN()
cnn_opt = torch.optim.Adam(cnn.parameters(), lr=1e-3, foreach=True)
tokens = torch.randint(0, 8192, (64, 256))
labels = torch.randint(0, 2, (64,))

cases = {"mlp_forward": forward_step(mlp, mx), "mlp_train": train_step(mlp, mlp_opt, mx, my),
         "textcnn_forward": forward_step(cnn, tokens),
         "textcnn_train": train_step(cnn, cnn_opt, tokens, labels)}

if serve:
    for name, fn in cases.items():
        if not wanted or name in wanted:
            for _ in range(3):
                fn()
    print(f"ready {torch.__version__} {torch.get_num_threads()}", flush=True)
    for line in sys.stdin:
        words = line.split()
        name = words[0] if words else ""
        if name == "quit":
            break
        if name not in cases:
            print(f"error unknown case {name}", flush=True)
            continue
        n = max(1, int(words[1])) if len(words) > 1 else 1
        # One untimed run first, as in the standalone phase: the other side's turn has just
        # left the caches and this process's idle threads cold.
        cases[name]()
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            cases[name]()
            times.append((time.perf_counter() - t0) * 1e3)
        print(f"torch {name} ms {statistics.median(times):.3f}", flush=True)
else:
    for name, fn in cases.items():
        report(name, fn)
