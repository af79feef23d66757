// comb::anomaly calibration and augmentation: training data beyond CSIC 2010 (attack payloads
// and benign values of many shapes put into CSIC's normal requests, apps/anomaly/payloads)
// and the choice of the detector's threshold on benign traffic it was not trained on, so
// that its false-positive rate there is at most a target (1%). Stateless functions;
// single-threaded.
#pragma once

#include "apps/anomaly/detector.hpp"
#include "apps/anomaly/payload_sets.hpp"

#include <caf/expected.hpp>

#include <string>
#include <vector>

namespace comb::anomaly {

/// What goes into training beside CSIC.
struct augment_options {
  /// The payload sets (attacks and benign); nullptr = CSIC only.
  const payload_dir* payloads = nullptr;
  /// Attack families left out of training, to measure recall on families never seen.
  std::vector<std::string> holdout;
  /// Each train-use attack line is put into this many requests; benign lines likewise.
  int attack_copies = 2;
  int benign_copies = 1;
  uint64_t seed = 1;
  /// Benign requests of another site (Nectar's benign sessions): each is added to training
  /// as normal, and the same payload lines are also put into them (`site_copies` requests
  /// per line), so that the model learns that site's normal traffic and the attacks in it,
  /// not "another site" as an anomaly.
  std::vector<const http_request*> site;
  int site_copies = 1;
};

/// Requests for training: the train-use lines (use_of) of the attack families not held out
/// and of every benign set, each put into requests drawn from `bases` (CSIC normal requests
/// of the training part); with `opts.site`, those requests as normal and the same lines put
/// into them too. Errors: those of inject_sets; errc::invalid_argument naming a
/// held-out family the payloads do not have.
caf::expected<std::vector<labeled_request>> augmentation(
  const std::vector<const http_request*>& bases, const augment_options& opts);

/// The threshold chosen by calibrate and what it gives on the calibration traffic.
struct calibration_result {
  float threshold = 0.5f;
  /// Calibration requests: benign values put into requests, and CSIC normal requests.
  size_t benign_values = 0;
  size_t non_latin_values = 0;
  size_t csic_normal = 0;
  /// Benign requests of another site (Nectar's traffic generator's benign sessions), 0 when
  /// none were given.
  size_t site_requests = 0;
  /// Benign value sets: each weighs the same in fp_all, as in `eval --ood` (the sizes of the
  /// project's sets say nothing of a real site's mix).
  size_t benign_sets = 0;
  /// The false-positive target it was chosen for.
  double target_fp = 0;
  /// False-positive rates at the threshold: benign values, those in a non-Latin script,
  /// CSIC's normal requests.
  double fp_all = 0;
  double fp_non_latin = 0;
  double fp_csic = 0;
  double fp_site = 0;
  /// The highest false-positive rate of one benign set at the threshold, and that set.
  double fp_worst_set = 0;
  std::string worst_set;
  /// One line for the model file and the reports.
  std::string describe() const;
};

/// The lowest threshold at which at most `target_fp` of the scores are at or above it (the
/// highest scores may tie: then as low as ties allow, at most 1). Empty scores give 0.
float threshold_for(std::vector<float> scores, double target_fp);

/// The lowest threshold at which the weight of the scores at or above it is at most
/// `target_fp` of the total weight (weights >= 0, one per score; ties as in threshold_for).
/// Empty scores or zero total weight give 0.
float threshold_for_weighted(const std::vector<float>& scores, const std::vector<double>& weights,
                             double target_fp);

/// Chooses the threshold: the calibration-use benign lines (use_of) of `payloads` put into
/// `bases` (CSIC normal requests the model was not trained on), `bases` themselves and
/// `site` (benign requests of another site, may be empty), all scored; the threshold keeps
/// false positives at most `target_fp` in each group: the benign values (each set weighing
/// the same), those of them in non-Latin scripts, `bases`, and `site`. Does not change `d`.
/// Errors: those of scoring.
caf::expected<calibration_result> calibrate(detector& d,
                                            const std::vector<const http_request*>& bases,
                                            const payload_dir& payloads, double target_fp,
                                            uint64_t seed,
                                            const std::vector<const http_request*>& site = {});

} // namespace comb::anomaly
