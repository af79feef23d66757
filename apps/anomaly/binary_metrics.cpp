// Figures of a binary detector (see binary_metrics.hpp).
#include "apps/anomaly/binary_metrics.hpp"

#include <cmath>
#include <cstdio>

namespace comb::anomaly {

double binary_metrics::accuracy() const {
  return total() == 0 ? 0.0 : static_cast<double>(tp + tn) / static_cast<double>(total());
}

double binary_metrics::precision() const {
  return tp + fp == 0 ? 0.0 : static_cast<double>(tp) / static_cast<double>(tp + fp);
}

double binary_metrics::recall() const {
  return tp + fn == 0 ? 0.0 : static_cast<double>(tp) / static_cast<double>(tp + fn);
}

double binary_metrics::f1() const {
  double p = precision();
  double r = recall();
  return p + r == 0.0 ? 0.0 : 2.0 * p * r / (p + r);
}

std::string binary_metrics::to_string() const {
  char buf[256];
  std::snprintf(buf, sizeof(buf),
                "accuracy %.4f precision %.4f recall %.4f F1 %.4f (tp %zu fp %zu tn %zu fn %zu)",
                accuracy(), precision(), recall(), f1(), tp, fp, tn, fn);
  return buf;
}

metrics_summary summarize(const std::vector<binary_metrics>& folds) {
  metrics_summary s;
  s.folds = folds.size();
  if (folds.empty())
    return s;
  auto value = [](const binary_metrics& m, int i) {
    switch (i) {
    case 0:
      return m.accuracy();
    case 1:
      return m.precision();
    case 2:
      return m.recall();
    default:
      return m.f1();
    }
  };
  for (int i = 0; i < 4; ++i) {
    double sum = 0;
    for (auto& m : folds)
      sum += value(m, i);
    s.mean[i] = sum / static_cast<double>(folds.size());
    double sq = 0;
    for (auto& m : folds)
      sq += (value(m, i) - s.mean[i]) * (value(m, i) - s.mean[i]);
    s.stddev[i] = folds.size() > 1 ? std::sqrt(sq / static_cast<double>(folds.size() - 1)) : 0;
  }
  return s;
}

std::string metrics_summary::to_string() const {
  char buf[320];
  std::snprintf(buf, sizeof(buf),
                "accuracy %.4f ± %.4f  precision %.4f ± %.4f  recall %.4f ± %.4f  "
                "F1 %.4f ± %.4f  (%zu folds)",
                mean[0], stddev[0], mean[1], stddev[1], mean[2], stddev[2], mean[3], stddev[3],
                folds);
  return buf;
}

} // namespace comb::anomaly
