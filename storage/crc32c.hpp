// comb::storage::crc32c: CRC-32C (Castagnoli), as used to frame provenance log records. Uses the
// SSE4.2 crc32 instruction when the CPU has it, a table otherwise. Stateless; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>

namespace comb::storage {

/// Extends `crc` (0 to start) over `n` bytes at `data`.
uint32_t crc32c(const void* data, size_t n, uint32_t crc = 0);

} // namespace comb::storage
