// comb::anomaly::crs_report: runs a crs_engine over labeled requests and collects what the
// comparison needs: confusion counts, requests per second on one thread, latency
// percentiles, and which rules fire on the false positives. Stateless function; the report
// is a plain value.
#pragma once

#include "apps/anomaly/binary_metrics.hpp"
#include "apps/anomaly/crs_engine.hpp"
#include "apps/anomaly/csic_dataset.hpp"

#include <cstddef>
#include <map>
#include <string>
#include <vector>

namespace comb::anomaly {

struct crs_report {
  std::string engine;
  binary_metrics metrics;
  double seconds = 0;
  double requests_per_second = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  /// Rule id -> number of false positives on which it fired (949110 excluded).
  std::map<int, size_t> false_positive_rules;
  /// "rule:count rule:count ..." for the `n` most frequent false-positive rules.
  std::string top_false_positive_rules(size_t n) const;
};

/// Evaluates `engine` on `requests[i]` for each i in `indices` (all when empty), on the
/// calling thread.
crs_report run_crs(const crs_engine& engine, const std::vector<labeled_request>& requests,
                   const std::vector<size_t>& indices = {});

} // namespace comb::anomaly
