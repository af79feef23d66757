// comb::kernels::reference_backend: every op as plain, obviously-correct loops (the _ref
// functions under kernels/ops/), single-threaded. Used only by tests, to check the CPU and
// CUDA backends against it; never registered. Thread-safe.
#pragma once

#include "kernels/detail/host_backend.hpp"

namespace comb::kernels {

class reference_backend : public detail::host_backend {
public:
  reference_backend();
};

} // namespace comb::kernels
