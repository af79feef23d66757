// comb::apps::imaging runs: what `comb imaging classify | detect | train` and the demo do on a
// node, as calls of the app's procedures: enqueue the calls that cover a dataset, wait for
// their results (imaging.call) and read the accuracy (imaging.results); train in rounds, each
// waiting for the version its call stores to become active. Every wait is bounded by a
// deadline and reports progress. Stateless functions; each blocks until done.
#pragma once

#include "apps/imaging/loader.hpp"

#include <caf/expected.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace comb::apps::imaging {

using deadline = std::chrono::steady_clock::time_point;

/// Waits until imaging call `call` is done and returns its imaging_calls row; the call's
/// error (procedure_failed, naming it) when it failed, errc::timeout past `until`.
/// Says every 10 s that it still waits, when `progress` is set.
caf::expected<nlohmann::json> wait_call(const procedure_caller& call, const std::string& key,
                                        deadline until, const progress_fn& progress = nullptr);

/// The stored versions of `model` (comb.model.list rows), by version.
caf::expected<std::vector<nlohmann::json>> model_versions(const procedure_caller& call,
                                                          const std::string& model);

/// Stores `bytes` as `model` version `version` (1 MiB chunks, then comb.model.put).
caf::error put_model(const procedure_caller& call, const std::string& model, uint32_t version,
                     const std::string& bytes);

/// Waits until `version` of `model` is the active one (its activation was enqueued); calls
/// comb.model.activate first when `activate` is true.
caf::error wait_active(const procedure_caller& call, const std::string& model, uint32_t version,
                       bool activate, deadline until, const progress_fn& progress);

struct dataset_run {
  int64_t calls = 0;
  int64_t images = 0;
  double seconds = 0;
  /// imaging.results for the dataset and model once every call is done.
  nlohmann::json results;
};

/// Classifies (proc "imaging.classify") or detects ("imaging.detect") every image of
/// `dataset` with `model`'s active version: enqueues calls from index 0 until the dataset is
/// covered, then waits for them all.
caf::expected<dataset_run> run_dataset(const procedure_caller& call, const std::string& proc,
                                       const std::string& dataset, const std::string& model,
                                       deadline until, const progress_fn& progress);

struct train_options {
  std::string model = "mnist-mlp";
  std::string dataset = "mnist-train";
  int64_t epochs = 2;
  int64_t batch = 128;
  double lr = 1e-3;
  int64_t rounds = 1;
  int64_t from = 0;
  /// 0: to the end of the dataset.
  int64_t limit = 0;
  uint64_t seed = 1;
  /// Layer widths of version 1 when the model does not exist yet.
  std::vector<int64_t> sizes{784, 512, 10};
};

struct train_round {
  int64_t trained_from = 0;
  int64_t version = 0;
  int64_t rows = 0;
  nlohmann::json losses;
  double seconds = 0;
};

/// Trains `o.model` on `o.dataset` for `o.rounds` calls one after the other, each from the
/// latest stored version and waiting for the version it stores to become active. Creates
/// version 1 (a random MLP of o.sizes) when the model has no version.
caf::expected<std::vector<train_round>> train_rounds(const procedure_caller& call,
                                                     const train_options& o, deadline until,
                                                     const progress_fn& progress);

/// One image's answer from one model (imaging.labels).
struct answer {
  int64_t index = 0;
  std::string name;
  /// The image's known label, -1 when it has none.
  int truth = -1;
  int label = -1;
  double score = 0;
  int64_t version = 0;
};

/// The answers of `model` for images [0, count) of `dataset`, in index order (images it did
/// not answer are left out).
caf::expected<std::vector<answer>> answers(const procedure_caller& call, const std::string& dataset,
                                           const std::string& model, int64_t count);

/// Class names, one a line (imagenet_labels.txt: line k names class k). Errors: not_found.
caf::expected<std::vector<std::string>> read_class_names(const std::string& path);

} // namespace comb::apps::imaging
