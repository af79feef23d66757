// Stratified splits (see splits.hpp).
#include "apps/anomaly/splits.hpp"

#include "base/errc.hpp"

#include <algorithm>
#include <map>
#include <random>

namespace comb::anomaly {

namespace {

std::map<int, std::vector<size_t>> by_label(const std::vector<size_t>& indices,
                                            const std::vector<int>& labels, uint64_t seed) {
  std::map<int, std::vector<size_t>> out;
  for (auto i : indices)
    out[labels[i]].push_back(i);
  std::mt19937_64 rng(seed);
  for (auto& [label, v] : out)
    std::shuffle(v.begin(), v.end(), rng);
  return out;
}

std::vector<size_t> iota(size_t n) {
  std::vector<size_t> v(n);
  for (size_t i = 0; i < n; ++i)
    v[i] = i;
  return v;
}

} // namespace

caf::expected<std::vector<split>> stratified_kfold(const std::vector<int>& labels, int k,
                                                   uint64_t seed) {
  if (k < 2)
    return make_error(errc::invalid_argument, "k-fold needs k >= 2, got " + std::to_string(k));
  auto groups = by_label(iota(labels.size()), labels, seed);
  for (auto& [label, v] : groups)
    if (v.size() < static_cast<size_t>(k))
      return make_error(errc::invalid_argument,
                        "label " + std::to_string(label) + " has " + std::to_string(v.size())
                          + " examples, fewer than k = " + std::to_string(k));
  std::vector<std::vector<size_t>> folds(static_cast<size_t>(k));
  for (auto& [label, v] : groups)
    for (size_t j = 0; j < v.size(); ++j)
      folds[j % static_cast<size_t>(k)].push_back(v[j]);
  std::vector<split> out(static_cast<size_t>(k));
  for (size_t f = 0; f < folds.size(); ++f) {
    out[f].test = folds[f];
    for (size_t g = 0; g < folds.size(); ++g)
      if (g != f)
        out[f].train.insert(out[f].train.end(), folds[g].begin(), folds[g].end());
    std::sort(out[f].test.begin(), out[f].test.end());
    std::sort(out[f].train.begin(), out[f].train.end());
  }
  return out;
}

caf::expected<split> stratified_share(const std::vector<int>& labels, double train_share,
                                      uint64_t seed) {
  if (!(train_share > 0.0 && train_share < 1.0))
    return make_error(errc::invalid_argument,
                      "training share must be in (0, 1), got " + std::to_string(train_share));
  split s;
  for (auto& [label, v] : by_label(iota(labels.size()), labels, seed)) {
    auto n = static_cast<size_t>(static_cast<double>(v.size()) * train_share + 0.5);
    n = std::clamp<size_t>(n, 1, v.size() > 1 ? v.size() - 1 : 1);
    s.train.insert(s.train.end(), v.begin(), v.begin() + static_cast<std::ptrdiff_t>(n));
    s.test.insert(s.test.end(), v.begin() + static_cast<std::ptrdiff_t>(n), v.end());
  }
  std::sort(s.train.begin(), s.train.end());
  std::sort(s.test.begin(), s.test.end());
  return s;
}

split validation_split(const std::vector<size_t>& indices, const std::vector<int>& labels,
                       double validation_share, uint64_t seed) {
  split s; // test = validation
  for (auto& [label, v] : by_label(indices, labels, seed)) {
    auto n = static_cast<size_t>(static_cast<double>(v.size()) * validation_share + 0.5);
    if (v.size() >= 2)
      n = std::clamp<size_t>(n, 1, v.size() - 1);
    else
      n = 0;
    s.test.insert(s.test.end(), v.begin(), v.begin() + static_cast<std::ptrdiff_t>(n));
    s.train.insert(s.train.end(), v.begin() + static_cast<std::ptrdiff_t>(n), v.end());
  }
  std::sort(s.train.begin(), s.train.end());
  std::sort(s.test.begin(), s.test.end());
  return s;
}

} // namespace comb::anomaly
