#!/usr/bin/python3
"""PyTorch baseline for anomaly_bench's training benchmark: the paper's TextCNN (embedding;
Conv1d with kernel sizes 2, 3, 4 and 100 filters each, ReLU; max over time; dropout 0.2;
dense to 2 classes; softmax cross-entropy), Adam, on the exact batches anomaly_bench wrote.

Input file (little-endian): int32 n, max_len, batch, vocab, embed, epochs_unused; then
int32 lengths[n]; int32 labels[n]; int32 tokens[n * max_len] (0 = padding). Batches are
taken in file order and padded to their longest sequence, as Comb's trainer does.
Prints one line: "torch_epoch_seconds <s> steps <k> mean_loss <l>".
Run with Debian's python3-torch: /usr/bin/python3 textcnn_torch.py FILE [threads]
"""
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn


class TextCNN(nn.Module):
    def __init__(self, vocab, embed, kernels=(2, 3, 4), filters=100, dropout=0.2):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed, padding_idx=0)
        self.convs = nn.ModuleList([nn.Conv1d(embed, filters, k) for k in kernels])
        self.drop = nn.Dropout(dropout)
        self.dense = nn.Linear(filters * len(kernels), 2)

    def forward(self, x):
        e = self.embed(x).transpose(1, 2)  # B x E x L
        h = [torch.relu(c(e)).max(dim=2).values for c in self.convs]
        return self.dense(self.drop(torch.cat(h, dim=1)))


def main():
    path = sys.argv[1]
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    with open(path, "rb") as f:
        n, max_len, batch, vocab, embed, _ = struct.unpack("<6i", f.read(24))
        lengths = np.frombuffer(f.read(4 * n), dtype=np.int32)
        labels = np.frombuffer(f.read(4 * n), dtype=np.int32)
        tokens = np.frombuffer(f.read(4 * n * max_len), dtype=np.int32).reshape(n, max_len)
    model = TextCNN(vocab, embed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    batches = []
    for s in range(0, n, batch):
        e = min(n, s + batch)
        L = max(4, int(lengths[s:e].max()))
        batches.append((torch.from_numpy(tokens[s:e, :L].astype(np.int64)),
                        torch.from_numpy(labels[s:e].astype(np.int64))))
    model.train()
    for x, y in batches[:3]:  # warm-up
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
    t0 = time.perf_counter()
    total = 0.0
    for x, y in batches:
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        total += float(loss)
    dt = time.perf_counter() - t0
    print(f"torch_epoch_seconds {dt:.4f} steps {len(batches)} mean_loss {total / len(batches):.4f}")


if __name__ == "__main__":
    main()
