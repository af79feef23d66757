// comb::perf::clean_blas_env: benchmarks run with OpenBLAS choosing its own kernels and with
// the same glibc malloc settings for Comb and PyTorch. When the environment forces
// OPENBLAS_CORETYPE or OPENBLAS_L2_SIZE (some shells here set Haswell and 512), or lacks the
// malloc settings, the benchmark re-executes itself once with them fixed, so that Comb and the
// PyTorch baseline it starts both run at their best (docs/BENCHMARKING.md). Header only.
#pragma once

#include <cstdio>
#include <cstdlib>

#include <unistd.h>

namespace comb::perf {

/// The glibc malloc settings benchmarks run with, Comb and its PyTorch baselines alike. On the
/// VMs here a first touch of fresh memory is expensive, and glibc by default returns large
/// freed blocks to the OS (mmap threshold, trim): PyTorch, which allocates every activation
/// afresh, then ran MobileNetV2 5–7x slower than on a machine without that cost. Keeping freed
/// memory in the heap (mmap threshold at glibc's maximum of 32 MiB, trim threshold 1 GiB, top
/// pad 256 MiB) puts PyTorch back at its reference speed (docs/BENCHMARKING.md).
inline constexpr const char* malloc_env[][2] = {
  {"MALLOC_MMAP_THRESHOLD_", "33554432"},
  {"MALLOC_TRIM_THRESHOLD_", "1073741824"},
  {"MALLOC_TOP_PAD_", "268435456"},
};

/// Call first thing in main(). Returns only when the environment is clean: no OpenBLAS
/// overrides, and the malloc settings above (glibc reads them at start, hence the re-exec).
inline void clean_blas_env(char** argv) {
  bool blas = std::getenv("OPENBLAS_CORETYPE") || std::getenv("OPENBLAS_L2_SIZE");
  bool malloc_set = true;
  for (auto& kv : malloc_env)
    malloc_set = malloc_set && std::getenv(kv[0]);
  if (!blas && malloc_set)
    return;
  unsetenv("OPENBLAS_CORETYPE");
  unsetenv("OPENBLAS_L2_SIZE");
  for (auto& kv : malloc_env)
    setenv(kv[0], kv[1], /*overwrite=*/0);
  std::fprintf(stderr,
               "(benchmark environment: OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset; "
               "MALLOC_MMAP_THRESHOLD_=%s MALLOC_TRIM_THRESHOLD_=%s MALLOC_TOP_PAD_=%s)\n",
               std::getenv("MALLOC_MMAP_THRESHOLD_"), std::getenv("MALLOC_TRIM_THRESHOLD_"),
               std::getenv("MALLOC_TOP_PAD_"));
  execv("/proc/self/exe", argv);
  std::perror("re-exec with the benchmark environment failed; going on");
}

} // namespace comb::perf
