// comb::apps::imaging::image_store: images kept in tables, as stored procedures. Each image
// is one row of imaging_images, keyed "<dataset>/<index, 8 digits>", holding its dataset,
// index, width, height, channels, label (when known), name (its file, when loaded from one)
// and pixels (binary, row-major,
// interleaved channels); imaging_datasets keeps per dataset the number of images (highest
// index + 1), their common size (or 0 when mixed) and how many carry labels. The models'
// answers are in imaging_labels (one row per classify call and model, label_store.hpp) and
// imaging_boxes (one row per image and model). Stateless functions; thread-safe.
#pragma once

#include "runtime/procedure_registry.hpp"

#include <caf/expected.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace comb::storage {
class transaction;
} // namespace comb::storage

namespace comb::apps::imaging {

constexpr const char* images_table = "imaging_images";
constexpr const char* datasets_table = "imaging_datasets";
constexpr const char* labels_table = "imaging_labels";
constexpr const char* boxes_table = "imaging_boxes";

/// Most images one imaging.put_images call takes, and the largest side of one.
constexpr size_t max_images_per_put = 4096;
constexpr int64_t max_stored_side = 4096;
/// Largest argument text of imaging.put_images.
constexpr size_t max_put_bytes = size_t{8} << 20;

/// "<dataset>/<index as 8 digits>" (sorts by index within a dataset).
std::string image_key(std::string_view dataset, int64_t index);

/// Checks a dataset or model name: 1 to 64 characters of [A-Za-z0-9._-]. `what` names the
/// argument in the error (errc::invalid_argument).
caf::error check_name(std::string_view name, const std::string& what);

/// One stored image.
struct stored_image {
  int64_t index = 0;
  int width = 0;
  int height = 0;
  int channels = 0;
  std::optional<int> label;
  std::vector<uint8_t> pixels;
};

/// Reads images [from, from + limit) of `dataset` in index order (a missing index is
/// skipped), stopping once their pixels would pass `max_bytes` (at least one is read).
/// Errors: storage errors, corrupt_data for an unreadable row.
caf::expected<std::vector<stored_image>> read_images(storage::transaction& txn,
                                                     std::string_view dataset, int64_t from,
                                                     int64_t limit, size_t max_bytes);

/// The imaging_datasets row of `dataset`; errc::not_found naming it when it has no images.
caf::expected<nlohmann::json> dataset_info(storage::transaction& txn, std::string_view dataset);

/// Registers the tables and imaging.put_images {dataset, first_index, images: [{width,
/// height, channels, label?, name?, pixels (base64)}]} -> {dataset, stored, next_index},
/// imaging.dataset {dataset} -> the dataset's row, imaging.labels {dataset, from, limit}
/// -> [{index, label?, name?, answers: [{model, version, label, score, digest,
/// call}]}], imaging.results
/// {dataset, model} -> accuracy per model version, imaging.boxes {dataset, model, from,
/// limit <= 100} -> the detector's imaging_boxes rows ({index, count, boxes: [[x0, y0, x1, y1,
/// score, class]], version, digest, call}).
void register_image_store(runtime::procedure_registry& procs);

} // namespace comb::apps::imaging
