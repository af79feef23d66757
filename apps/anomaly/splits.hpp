// comb::anomaly splits: stratified k-fold and stratified train/test shares over labels,
// seeded so that runs are reproducible. Stateless, thread-safe functions.
#pragma once

#include <caf/expected.hpp>

#include <cstdint>
#include <vector>

namespace comb::anomaly {

/// One split: indices into the data set.
struct split {
  std::vector<size_t> train;
  std::vector<size_t> test;
};

/// Stratified k-fold: each label's indices are shuffled with `seed` and dealt round-robin
/// into k folds; split i tests on fold i and trains on the rest. Errors
/// (errc::invalid_argument): k < 2, or a label with fewer than k examples.
caf::expected<std::vector<split>> stratified_kfold(const std::vector<int>& labels, int k,
                                                   uint64_t seed);

/// Stratified share: `train_share` (0 < share < 1) of each label's indices, shuffled with
/// `seed`, go to train; the rest to test.
caf::expected<split> stratified_share(const std::vector<int>& labels, double train_share,
                                      uint64_t seed);

/// Splits `indices` into (train, validation) keeping `validation_share` of each label for
/// validation (at least one of each label when there are two or more).
split validation_split(const std::vector<size_t>& indices, const std::vector<int>& labels,
                       double validation_share, uint64_t seed);

} // namespace comb::anomaly
