// comb::kernels::detail::scratch: a few 64-byte aligned float buffers per thread, grown on
// demand and kept for the thread's life, so the CPU ops (im2col blocks, padded copies) do
// not allocate per call. Each thread owns its buffers: thread-safe; a buffer stays valid
// until the same thread asks for the same slot again.
#pragma once

#include <cstddef>

namespace comb::kernels::detail {

/// A buffer of at least `floats` floats owned by the calling thread; slot (0..3) picks one
/// of four independent buffers. Contents are unspecified on return.
float* scratch(size_t floats, int slot = 0);

} // namespace comb::kernels::detail
