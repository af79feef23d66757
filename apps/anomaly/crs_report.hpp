// comb::anomaly::crs_report: runs a crs_engine over labeled requests and collects what the
// comparison needs: confusion counts, requests per second on one thread, latency
// percentiles, and which rules fire on the false positives; run_crs_peers runs the four
// configurations the evaluation compares with. Stateless functions; the report is a plain
// value.
#pragma once

#include "apps/anomaly/binary_metrics.hpp"
#include "apps/anomaly/crs_engine.hpp"
#include "apps/anomaly/csic_dataset.hpp"

#include <caf/expected.hpp>

#include <cstddef>
#include <functional>
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

/// CRS at paranoia levels 1 and 2, each stock and with Accept-Charset allowed, on about
/// `sample` of `requests` evenly spaced (all when 0 or at least their number). `on_report`
/// (optional) sees each report as it is done. Errors: those of crs_engine::create.
caf::expected<std::vector<crs_report>> run_crs_peers(
  const std::vector<labeled_request>& requests, size_t sample,
  const std::function<void(const crs_report&)>& on_report = {});

} // namespace comb::anomaly
