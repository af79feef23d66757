// comb::kernels::device_memory: how tensors get and free bytes on a non-CPU device. The CUDA
// backend registers one for device::cuda when it finds a device; until then cuda tensors
// cannot be made (errc::unsupported). CPU memory is built in and never registered. The
// registry is thread-safe; a registered object must outlive every tensor it allocated (the
// CUDA backend keeps its instance for the life of the process).
#pragma once

#include "kernels/tensor.hpp"

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include <cstddef>

namespace comb::kernels {

/// Allocation and copies for one device kind.
class device_memory {
public:
  virtual ~device_memory() = default;

  /// Zeroed bytes on the device; errc::overloaded when out of memory.
  virtual caf::expected<void*> allocate(size_t bytes) = 0;

  /// Frees what allocate() returned.
  virtual void deallocate(void* p) noexcept = 0;

  /// Copies `bytes` between host and device or within the device (synchronous).
  virtual caf::error copy(void* dst, device dst_dev, const void* src, device src_dev,
                          size_t bytes) = 0;

  /// Zeroes `bytes` at `p` on the device.
  virtual caf::error zero(void* p, size_t bytes) = 0;
};

/// Registers (or with nullptr, removes) the memory for `dev`; cpu cannot be replaced.
void register_device_memory(device dev, device_memory* m);

/// The registered memory for `dev`, or nullptr (always nullptr for cpu).
device_memory* find_device_memory(device dev);

} // namespace comb::kernels
