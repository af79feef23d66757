// Model benchmarks of anomaly_bench: scoring latency/throughput against the ModSecurity CRS
// engine, and training time per epoch against PyTorch's TextCNN on the same batches. Each
// prints Comb's figure, the baseline's, and the ratio, measured in the same run.
#pragma once

#include "apps/anomaly/csic_dataset.hpp"

#include <string>

namespace comb::anomaly::bench {

/// Scoring: single-request p50/p99 and batch throughput, model (the fused engine) against CRS
/// PL1 (accept-charset allowed) on the same `sample` requests; and batch throughput of the
/// fused engine against the op-by-op forward on the same weights.
void run_score_benchmark(const csic_dataset& ds, size_t sample, size_t vocab);

/// Training: one epoch over `sample` requests, batch 64, Comb against
/// `python3 textcnn_torch.py` (Debian python3-torch, 2 threads) on the same batches.
void run_train_benchmark(const csic_dataset& ds, size_t sample, size_t vocab,
                         const std::string& python, const std::string& script);

} // namespace comb::anomaly::bench
