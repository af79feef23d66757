// comb::anomaly::binary_metrics: confusion counts of a binary detector (1 = anomalous is the
// positive class) and the figures derived from them, plus mean/standard deviation over
// folds. Plain value type.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace comb::anomaly {

struct binary_metrics {
  size_t tp = 0;
  size_t fp = 0;
  size_t tn = 0;
  size_t fn = 0;

  /// Counts one prediction against its label.
  void add(int label, bool predicted_anomalous) {
    if (label == 1)
      (predicted_anomalous ? tp : fn) += 1;
    else
      (predicted_anomalous ? fp : tn) += 1;
  }

  size_t total() const { return tp + fp + tn + fn; }
  double accuracy() const;
  /// tp / (tp + fp); 0 when nothing was flagged.
  double precision() const;
  /// tp / (tp + fn); 0 when there are no positives.
  double recall() const;
  double f1() const;
  /// "acc 0.9990 prec 0.9990 rec 0.9980 F1 0.9985 (tp .. fp .. tn .. fn ..)".
  std::string to_string() const;
};

/// Mean and sample standard deviation of each figure over folds.
struct metrics_summary {
  double mean[4] = {0, 0, 0, 0}; // accuracy, precision, recall, f1
  double stddev[4] = {0, 0, 0, 0};
  size_t folds = 0;
  /// "accuracy 0.9990 ± 0.0003  precision ...".
  std::string to_string() const;
};

metrics_summary summarize(const std::vector<binary_metrics>& folds);

} // namespace comb::anomaly
