// comb::perf::clean_blas_env: benchmarks run with OpenBLAS choosing its own kernels. When the
// environment forces OPENBLAS_CORETYPE or OPENBLAS_L2_SIZE (some shells here set Haswell and
// 512), the benchmark re-executes itself once without them, so that Comb and the PyTorch
// baseline it starts both use OpenBLAS at its best (docs/BENCHMARKING.md). Header only.
#pragma once

#include <cstdio>
#include <cstdlib>

#include <unistd.h>

namespace comb::perf {

/// Call first thing in main(). Returns only when the environment is clean.
inline void clean_blas_env(char** argv) {
  if (!std::getenv("OPENBLAS_CORETYPE") && !std::getenv("OPENBLAS_L2_SIZE"))
    return;
  unsetenv("OPENBLAS_CORETYPE");
  unsetenv("OPENBLAS_L2_SIZE");
  std::fprintf(stderr, "(unset OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE for this benchmark)\n");
  execv("/proc/self/exe", argv);
  std::perror("re-exec without OpenBLAS overrides failed; going on");
}

} // namespace comb::perf
