// comb::apps::imaging::run_imaging_demo: the imaging part of `comb demo` (and `comb imaging
// demo`) on a node whose outbox reaches a compute process: loads MNIST, trains the MLP
// through the path until its test accuracy reaches the target (or reuses a stored version
// that already does), classifies the test set, and classifies the three BMPs of
// ../shared/data/models with MobileNetV2. Blocks until done; bounded by a timeout.
#pragma once

#include "apps/imaging/runs.hpp"

#include <caf/expected.hpp>

#include <chrono>
#include <ostream>
#include <string>
#include <vector>

namespace comb::apps::imaging {

struct demo_options {
  /// The shared data folder (mnist/, models/).
  std::string data_dir;
  std::string mlp = "mnist-mlp";
  std::string mobilenet = "mobilenet-v2";
  double target_accuracy = 0.98;
  /// Epochs of each training round, and the most rounds.
  int64_t epochs_per_round = 8;
  int64_t max_rounds = 3;
  std::chrono::seconds timeout{3600};
};

struct demo_report {
  int64_t train_images = 0;
  int64_t test_images = 0;
  /// Rounds trained now (0: a stored version already reached the target).
  std::vector<train_round> rounds;
  /// The MLP version classified, and its accuracy on mnist-test.
  int64_t version = 0;
  double accuracy = 0;
  double classify_seconds = 0;
  /// MobileNetV2's answers on the BMPs: file, label, class name, score.
  std::vector<answer> bmp_answers;
  std::vector<std::string> bmp_names;
};

/// Runs the imaging demo; progress lines go to `progress`.
caf::expected<demo_report> run_imaging_demo(const procedure_caller& call, const demo_options& o,
                                            const progress_fn& progress);

/// Writes the report as the demo prints it ("  imaging: ..." lines).
void print_demo_report(std::ostream& out, const demo_report& r, const demo_options& o);

} // namespace comb::apps::imaging
