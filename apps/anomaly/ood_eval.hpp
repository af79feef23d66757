// comb::anomaly out-of-distribution evaluation (`comb anomaly eval --ood DIR`): the attack
// payloads and benign values of a directory in the payloads layout, each put into a CSIC
// normal request, scored by the detector and judged by any other detectors (CRS at two
// paranoia levels, their OR); recall per attack family and false positives per benign set,
// at given thresholds. Stateless functions and plain values; single-threaded.
#pragma once

#include "apps/anomaly/detector.hpp"
#include "apps/anomaly/payload_sets.hpp"

#include <caf/expected.hpp>

#include <string>
#include <vector>

namespace comb::anomaly {

/// One request of the evaluation: a line of one set put into a normal request.
struct ood_case {
  /// Index into ood_suite::sets.
  size_t set = 0;
  bool attack = false;
  /// The line holds letters of a non-Latin script (has_non_latin).
  bool non_latin = false;
  http_request request;
};

struct ood_suite {
  /// Attack sets first, then benign sets (payload_dir order).
  std::vector<payload_set> sets;
  std::vector<ood_case> cases;
};

struct ood_options {
  /// Lines used (use_of); all when empty: the project's own sets pass {line_use::test} to
  /// stay clear of the lines training and calibration used.
  std::vector<line_use> uses;
  /// At most this many lines of each set (evenly drawn), 0 = all.
  size_t per_set = 0;
  uint64_t seed = 1;
};

/// Builds the requests. Errors: those of inject_sets.
caf::expected<ood_suite> make_ood_suite(const std::vector<const http_request*>& bases,
                                        const payload_dir& dir, const ood_options& opts);

/// One detector's verdicts on every case, by name ("model @0.9987", "CRS PL1").
struct ood_column {
  std::string name;
  std::vector<bool> flagged;
};

/// The table: for each attack family its size and each column's recall, then all attacks;
/// for each benign set each column's false-positive rate, then all benign, then benign
/// values in non-Latin scripts. Columns must have one verdict per case. Families named in
/// `held_out` (detector_config::held_out: left out of the model's training) are marked
/// "(held out)", and two more rows give recall over the held-out families and over the
/// others ("trained families").
std::string ood_table(const ood_suite& suite, const std::vector<ood_column>& columns,
                      const std::vector<std::string>& held_out = {});

/// The model's verdicts at `threshold` on `scores`.
ood_column model_column(const std::vector<float>& scores, float threshold, std::string name);

/// Element-wise OR of two columns, named `name`.
ood_column or_column(const ood_column& a, const ood_column& b, std::string name);

/// The threshold that keeps false positives on the suite's benign cases at most `target_fp`
/// (threshold_for over their scores).
float ood_threshold(const ood_suite& suite, const std::vector<float>& scores, double target_fp);

} // namespace comb::anomaly
