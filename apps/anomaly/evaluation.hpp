// comb::anomaly evaluation: the experiments of the paper's Tables 2 and 3 on CSIC 2010, and
// the ablations. Each experiment renders requests as text, trains a BBPE tokenizer (on the
// training part only, or on all data as the paper did), trains the TextCNN with early
// stopping on a validation share of the training part, and scores the held-out part at
// threshold 0.5. Stateless functions; single-threaded drivers.
#pragma once

#include "apps/anomaly/calibration.hpp"

#include "apps/anomaly/binary_metrics.hpp"
#include "apps/anomaly/csic_dataset.hpp"
#include "apps/anomaly/detector.hpp"
#include "apps/anomaly/splits.hpp"
#include "apps/anomaly/trainer.hpp"

#include <caf/expected.hpp>

#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

namespace comb::anomaly {

/// Where the tokenizer learns its merges.
enum class tokenizer_protocol {
  /// Protocol 1: the training part only (stricter; reported first).
  training_part,
  /// Protocol 2: all requests, test part included (the paper's).
  all_data,
};

std::string to_string(tokenizer_protocol p);

/// What is done to the test requests before scoring (ablations).
enum class test_perturbation {
  none,
  /// Header fields in a random order (seeded per request).
  shuffle_headers,
  /// Cookie values replaced by fresh random JSESSIONIDs.
  random_cookies,
};

/// Where an experiment's validation lines (early stopping, learning-rate drops) come from.
enum class validation_lines {
  /// A share of the data set's own training requests, split off before augmentation (the
  /// added requests are made from the rest's normal ones): the payload sets and other
  /// sites do not decide the schedule.
  own,
  /// A share of everything trained on, added requests included (the earlier behaviour).
  all,
};

struct eval_options {
  detector_config config;
  train_options train;
  /// Share of the training part held out for early stopping.
  double validation_share = 0.1;
  validation_lines validation = validation_lines::own;
  uint64_t seed = 1;
  test_perturbation perturb = test_perturbation::none;
  /// Log lines (per experiment results); nullptr = quiet.
  std::ostream* log = nullptr;
  /// Payload sets put into the training part's normal requests (augmentation); the test
  /// part stays CSIC's own. nullptr = CSIC only.
  const augment_options* augment = nullptr;
  /// Also score the test part at each plateau that lowers the learning rate
  /// (train_options::on_plateau): experiment_result::at_plateau.
  bool plateau_metrics = false;
  /// Misclassified test requests of every experiment: "label L score S\n<model text>\n\n".
  std::ostream* errors = nullptr;
};

struct experiment_result {
  binary_metrics metrics;
  train_result training;
  double tokenizer_seconds = 0;
  double test_seconds = 0;
  size_t train_size = 0;
  size_t test_size = 0;
  /// Requests added to training by augmentation.
  size_t augmented = 0;
  /// The validation lines: indices into the data set, or at or past its size for added
  /// requests (validation_lines::all only).
  std::vector<size_t> validation;
  /// With eval_options::plateau_metrics: at_plateau[k] is the test part's metrics of the
  /// model that a schedule of k learning-rate drops would have kept.
  std::vector<binary_metrics> at_plateau;
};

/// Trains on `s.train`, tests on `s.test`.
caf::expected<experiment_result> run_experiment(const csic_dataset& ds, const split& s,
                                                tokenizer_protocol protocol,
                                                const eval_options& opts);

/// Stratified k-fold cross-validation; `only_folds` > 0 runs just that many, starting at
/// fold `first_fold` (1-based; so that folds can run in separate processes). Errors:
/// errc::invalid_argument for a first fold outside 1..k.
caf::expected<std::vector<experiment_result>> run_kfold(const csic_dataset& ds, int k,
                                                        tokenizer_protocol protocol,
                                                        const eval_options& opts,
                                                        int only_folds = 0, int first_fold = 1);

/// One row of Table 3: a training share and its experiment.
struct share_result {
  double share = 0;
  experiment_result result;
};

/// Table 3: for each share in `shares` (0 < share < 1), a stratified train/test split
/// (seeded with opts.seed) and run_experiment on it. `on_row` (optional) sees each row as
/// it is done. Errors: errc::invalid_argument for a share outside (0, 1), and those of
/// run_experiment.
caf::expected<std::vector<share_result>> run_share_sweep(
  const csic_dataset& ds, const std::vector<double>& shares, tokenizer_protocol protocol,
  const eval_options& opts, const std::function<void(const share_result&)>& on_row = {});

/// One ablation: how the model's text is made and what is done to the test requests.
struct ablation {
  const char* name;
  text_options::cookie_mode cookie;
  bool sort_headers;
  bool drop_headers;
  test_perturbation perturb;
};

/// The ablations run_ablations runs, in order: does the model key on session cookies or on
/// the order of header fields?
const std::vector<ablation>& ablations();

struct ablation_result {
  const ablation* variant = nullptr;
  experiment_result result;
};

/// Each of ablations() under protocol 1 on one stratified 80/20 split (seeded with
/// opts.seed), opts.config's text settings replaced by the ablation's. `on_row` (optional)
/// sees each result as it is done. Errors: those of run_experiment.
caf::expected<std::vector<ablation_result>> run_ablations(
  const csic_dataset& ds, const eval_options& opts,
  const std::function<void(const ablation_result&)>& on_row = {});

/// Applies `p` to one request (seeded), returning the perturbed copy.
http_request perturb_request(const http_request& r, test_perturbation p, uint64_t seed);

} // namespace comb::anomaly
