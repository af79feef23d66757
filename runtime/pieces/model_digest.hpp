// comb::runtime::model_digest: the SHA-256 digest (lowercase hex) that identifies a model
// version's bytes, computed the same way by the model store and the compute process.
// Stateless; thread-safe.
#pragma once

#include "runtime/pieces/piece.hpp"

#include <cstddef>
#include <string>
#include <vector>

namespace comb::runtime {

/// SHA-256 of `data[0, size)` as 64 lowercase hex digits.
std::string model_digest(const char* data, size_t size);

/// SHA-256 of the concatenation of `chunks`, as 64 lowercase hex digits.
std::string model_digest(const std::vector<payload_buffer>& chunks);

} // namespace comb::runtime
