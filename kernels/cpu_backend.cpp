// comb::kernels::cpu_backend: the fast function table and the thread/BLAS settings.
#include "kernels/cpu_backend.hpp"

#include "kernels/detail/blas.hpp"
#include "kernels/detail/cpu_pool.hpp"

#include <cblas.h>

namespace comb::kernels {

namespace {

// Every op's fast version, <op>_cpu, in COMB_KERNEL_OP_LIST's order.
const detail::host_ops fast_ops = {
#define COMB_CPU_OP(name) name##_cpu,
  COMB_KERNEL_OP_LIST(COMB_CPU_OP)
#undef COMB_CPU_OP
};

} // namespace

cpu_backend::cpu_backend() : host_backend("cpu", fast_ops) {
}

int cpu_backend::threads() {
  return detail::cpu_threads();
}

void cpu_backend::set_threads(int n) {
  detail::set_cpu_threads(n);
  openblas_set_num_threads(detail::sgemm_split() ? 1 : detail::cpu_threads());
}

bool cpu_backend::sgemm_split() {
  return detail::sgemm_split();
}

void cpu_backend::set_sgemm_split(bool on) {
  detail::set_sgemm_split(on);
}

std::string cpu_backend::blas_info() {
  std::string r = "OpenBLAS";
  if (const char* c = openblas_get_config())
    r += std::string{" ("} + c + ")";
  if (const char* k = openblas_get_corename())
    r += std::string{", core "} + k;
  r += ", " + std::to_string(openblas_get_num_threads()) + " threads";
  if (detail::sgemm_split())
    r += ", sgemm split over " + std::to_string(detail::cpu_threads()) + " pool threads";
  return r;
}

void cpu_backend::wake_workers(int spin_us) {
  detail::wake_workers(spin_us);
}

void cpu_backend::parallel_range(int64_t n, int64_t grain,
                                 const std::function<void(int64_t, int64_t)>& fn) {
  detail::parallel_range(n, grain, fn);
}

void cpu_backend::set_worker_placement(const char* mode) {
  detail::set_worker_placement(mode);
}

std::string cpu_backend::pool_info() {
  return std::to_string(detail::cpu_threads()) + " threads, workers " + detail::worker_placement();
}

} // namespace comb::kernels
