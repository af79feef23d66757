// comb::apps::imaging::image_store: images kept in tables, as stored procedures. Each image
// is one row of imaging_images, keyed "<dataset>/<index, 8 digits>", holding its dataset,
// index, width, height, channels, label (when known), name (its file, when loaded from one)
// and where its pixels are (binary, row-major, interleaved channels): the images of one
// imaging.put_images call that share a size are one block, a row of the blobs table
// imaging_blocks keyed by the block's first image ("<dataset>/<first index, 8 digits>")
// holding their pixels one after the other, and each of their rows names its block (block:
// first index, block_count, offset in bytes); an image of a size of its own, or a row written
// before blocks, holds its pixels in the row (pixels). A classify or detect call over exactly
// one block sends that block as its input without reading it (outbox::enqueue_rows), so a
// loader puts images in calls of images_per_call() images. imaging_datasets keeps per dataset the number of images (highest
// index + 1), their common size (or 0 when mixed) and how many carry labels. The models'
// answers are in imaging_labels (one row per classify call and model, label_store.hpp) and
// imaging_boxes (one row per image and model). Stateless functions; thread-safe.
#pragma once

#include "runtime/procedure_registry.hpp"

#include <caf/expected.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
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
constexpr const char* blocks_table = "imaging_blocks";

/// Largest input payload of one classify or detect call (MNIST: 1,200 images; 224x224x3:
/// 6; 512x512x3: 1), and the most images of one call.
constexpr size_t max_infer_bytes = size_t{1} << 20;
constexpr int64_t max_infer_images = 1200;

/// How many images of `pixel_bytes` each one inference call takes: as many as fit in
/// max_infer_bytes, at most max_infer_images, at least 1.
inline int64_t images_per_call(size_t pixel_bytes) {
  if (pixel_bytes == 0 || pixel_bytes >= max_infer_bytes)
    return 1;
  return std::min<int64_t>(int64_t(max_infer_bytes / pixel_bytes), max_infer_images);
}

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
  /// The block holding the pixels (its first image's index), or -1 when the row holds them;
  /// the block's image count and this image's byte offset in it.
  int64_t block = -1;
  int64_t block_count = 0;
  int64_t offset = 0;
  size_t pixel_bytes() const { return size_t(width) * size_t(height) * size_t(channels); }
};

/// "<dataset>/<first index as 8 digits>": the imaging_blocks key of a block.
inline std::string block_key(std::string_view dataset, int64_t first) {
  return image_key(dataset, first);
}

/// Reads images [from, from + limit) of `dataset` in index order (a missing index is
/// skipped), stopping once their pixels would pass `max_bytes` (at least one is read), with
/// their pixels (from their blocks). Errors: storage errors, corrupt_data for an unreadable
/// row or a block that is missing or does not hold the row's pixels, naming it.
caf::expected<std::vector<stored_image>> read_images(storage::transaction& txn,
                                                     std::string_view dataset, int64_t from,
                                                     int64_t limit, size_t max_bytes);

/// The image at `index` of `dataset` without its pixels (block, block_count and offset say
/// where they are), or nullopt when there is none. Errors as read_images.
caf::expected<std::optional<stored_image>> read_image_meta(storage::transaction& txn,
                                                           std::string_view dataset,
                                                           int64_t index);

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
