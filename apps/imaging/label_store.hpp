// comb::apps::imaging::label_store: the models' answers (class labels) kept as one row of
// imaging_labels per classify call, keyed "<dataset>/<first index, 8 digits>/<model>": a
// call's result procedure writes one row for its (up to 1,200) images, not one per image, so
// that it takes one row lock, one row change and one provenance entry per call. Each image
// keeps one answer per model: writing a row takes the images it answers out of the model's
// older rows (rewritten, or deleted once empty). Readers also accept the per-image rows of
// earlier versions ({index, label, score, ...}). Stateless functions; thread-safe.
#pragma once

#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace comb::storage {
class transaction;
} // namespace comb::storage

namespace comb::apps::imaging {

/// Most images between the first and the last of one row (exclusive span): the images of
/// one classify call lie in [from, from + 1,200).
constexpr int64_t max_label_span = 1200;

/// One image's answer.
struct label_answer {
  int64_t index = 0;
  int32_t label = 0;
  float score = 0.f;
};

/// One row of imaging_labels: which model version answered, in which call, and its answers
/// in index order. MessagePack of {dataset, model, version, digest, call, from, count,
/// labels: [..], scores: [..], indexes?: [..]} (indexes only when they are not from,
/// from + 1, ...; SQL readers use json_each over labels).
struct label_row {
  std::string dataset, model, digest, call;
  int64_t version = 0;
  std::vector<label_answer> answers;
};

/// Decodes a row of imaging_labels (a block, or an earlier per-image row). corrupt_data
/// naming `key` when it is not one.
caf::expected<label_row> read_label_row(std::string_view value, std::string_view key);

/// The stored form of `row` (its answers must be in strictly increasing index order).
nlohmann::json label_row_json(const label_row& row);

/// Writes the answers of one call for `row.dataset` and `row.model` (answers in strictly
/// increasing index order, spanning fewer than max_label_span indexes), and removes the
/// same images from the model's older rows. invalid_argument for answers out of order or
/// too widely spread; storage errors.
caf::error write_labels(storage::transaction& txn, const label_row& row);

/// Visits the rows of imaging_labels that may answer images [from, to) of `dataset` (to < 0:
/// to the end), in key order (answers outside [from, to) included: the visitor filters). The visitor returns
/// false to stop. Errors: storage errors, corrupt_data for an unreadable row.
caf::error scan_labels(storage::transaction& txn, std::string_view dataset, int64_t from,
                       int64_t to, const std::function<bool(const label_row&)>& fn);

} // namespace comb::apps::imaging
