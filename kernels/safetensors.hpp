// comb::kernels safetensors: model weights in the safetensors format (8-byte little-endian
// header length, a JSON header naming each tensor's dtype, shape and byte range, then the
// raw little-endian data; "__metadata__" holds string pairs). Reading checks everything a
// corrupt or foreign file could get wrong (lengths, JSON, dtypes, shapes, ranges inside the
// file, overlaps) and names the problem; it never trusts a size from the file. Stateless
// functions, thread-safe.
#pragma once

#include "kernels/tensor.hpp"

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace comb::kernels {

/// A decoded file: tensors by name (CPU), metadata pairs.
struct safetensors_file {
  std::map<std::string, tensor> tensors;
  std::map<std::string, std::string> metadata;
};

/// Encodes CPU tensors (f32, u8, i8, i32) in the given order. Errors: errc::invalid_argument
/// for an empty or duplicate name, a non-CPU or empty tensor.
caf::expected<std::string> encode_safetensors(
  const std::vector<std::pair<std::string, const tensor*>>& tensors,
  const std::map<std::string, std::string>& metadata = {});

/// Decodes bytes. Errors: errc::corrupt_data naming what is wrong (short file, header
/// length, JSON, dtype, shape, data range), errc::unsupported for a dtype Comb does not
/// handle (F16, BF16, F64, ...).
caf::expected<safetensors_file> decode_safetensors(std::string_view bytes);

/// Writes encode_safetensors(...) to `path` (through a temporary file and rename).
/// Errors: as encode, errc::storage_error when the file cannot be written.
caf::error save_safetensors(const std::string& path,
                            const std::vector<std::pair<std::string, const tensor*>>& tensors,
                            const std::map<std::string, std::string>& metadata = {});

/// Reads and decodes `path`. Errors: errc::not_found when the file is missing, else as
/// decode_safetensors (the message names the path).
caf::expected<safetensors_file> load_safetensors(const std::string& path);

/// Copies decoded tensors into `params` by name. Errors: errc::bad_model naming a missing
/// tensor, a dtype or shape that differs from the model's, or a tensor in the file the model
/// does not have.
caf::error assign_parameters(const safetensors_file& file,
                             const std::vector<std::pair<std::string, tensor*>>& params);

} // namespace comb::kernels
