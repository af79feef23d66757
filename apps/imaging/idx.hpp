// comb::apps::imaging::idx: the IDX files MNIST ships in (LeCun's format: a big-endian magic
// 0x000008NN where NN is the number of dimensions, then one big-endian u32 per dimension, then
// the u8 elements), read whole from a file that may be gzip-compressed. Every count and size
// is checked against the bytes before anything is read; errors name the file and the
// problem. Plain functions and values; thread-safe.
#pragma once

#include <caf/expected.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace comb::apps::imaging {

/// An IDX file of unsigned bytes: its dimensions and its elements, row-major.
struct idx_array {
  std::vector<uint32_t> dims;
  std::vector<uint8_t> data;
  /// The first dimension (images or labels), 0 for a file of no dimensions.
  size_t count() const { return dims.empty() ? 0 : dims[0]; }
  /// Elements per item: the product of the dimensions after the first.
  size_t item_size() const;
};

/// The most elements read_idx accepts (guards against a header that claims terabytes).
constexpr uint64_t max_idx_elements = uint64_t{1} << 32;

/// Parses an IDX file's bytes (already decompressed). `what` names the input in errors.
/// Errors: errc::corrupt_data for a short header, a wrong magic, a type other than u8
/// (0x08), more than 4 dimensions, a zero dimension or more elements than max_idx_elements,
/// and a body whose size differs from what the header says.
caf::expected<idx_array> parse_idx(std::string_view bytes, const std::string& what);

/// Decompresses a gzip stream (zlib); errc::corrupt_data naming `what` when it is not one or
/// it is cut short, errc::too_large past `max_bytes` of output.
caf::expected<std::string> gunzip(std::string_view bytes, const std::string& what,
                                  size_t max_bytes = size_t{1} << 30);

/// Reads an IDX file, gzip-compressed (by its magic 1f 8b) or not. errc::not_found when the
/// file cannot be opened.
caf::expected<idx_array> read_idx(const std::string& path);

/// The MNIST images and labels of one split, checked against each other (same count, 28x28).
struct mnist_split {
  size_t count = 0;
  /// count * 784 pixels.
  std::vector<uint8_t> pixels;
  /// count labels 0..9.
  std::vector<uint8_t> labels;
};

/// Reads `<dir>/<prefix>-images-idx3-ubyte.gz` and `<prefix>-labels-idx1-ubyte.gz` (prefix
/// "train" or "t10k"; the uncompressed names are accepted too). Errors: not_found naming the
/// missing file, corrupt_data for counts or sizes that do not match or labels above 9.
caf::expected<mnist_split> read_mnist(const std::string& dir, std::string_view prefix);

} // namespace comb::apps::imaging
