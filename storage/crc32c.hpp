// comb::storage::crc32c: CRC-32C (Castagnoli), as used to frame provenance log records. Uses the
// SSE4.2 crc32 instruction when the CPU has it, a table otherwise. Stateless; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>

namespace comb::storage {

/// Extends `crc` (0 to start) over `n` bytes at `data`.
uint32_t crc32c(const void* data, size_t n, uint32_t crc = 0);

/// The table-driven fallback, always available; same results as crc32c().
uint32_t crc32c_table(const void* data, size_t n, uint32_t crc = 0);

/// True when the CPU has SSE4.2 and crc32c_hardware() may be called.
bool crc32c_has_hardware();

/// The SSE4.2 version; only call it when crc32c_has_hardware() is true.
uint32_t crc32c_hardware(const void* data, size_t n, uint32_t crc = 0);

} // namespace comb::storage
