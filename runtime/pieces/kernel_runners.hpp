// comb::runtime kernel runners: the model runners of the kernels' own models ("mlp",
// "mobilenet_v2", "centernet"), registered in the model-runner registry on its first use.
#pragma once

#include "runtime/pieces/model_runner.hpp"

namespace comb::runtime {

/// Registers the kernels' runners (called by the registry once; idempotent).
void register_kernel_runners();

} // namespace comb::runtime
