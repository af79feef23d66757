// comb::kernels::detail::make_cuda_backend: the hook through which the CUDA backend joins
// the registry. backend.cpp calls it once, on first use of the registry, when the library
// is built with COMB_KERNELS_CUDA=1; the CUDA backend's translation unit defines it: count
// devices, and on a failing cudaGetDeviceCount or zero devices return nullptr (and register
// no device_memory). Called under the registry's once-flag; it must not call back into the
// registry (backends(), register_backend()).
#pragma once

#include <memory>

namespace comb::kernels {
class backend;
} // namespace comb::kernels

namespace comb::kernels::detail {

/// The CUDA backend when a device answers (after register_device_memory(device::cuda, ..)),
/// else nullptr.
std::shared_ptr<backend> make_cuda_backend();

} // namespace comb::kernels::detail
