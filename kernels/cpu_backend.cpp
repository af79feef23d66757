// comb::kernels::cpu_backend: the fast function table and the thread/BLAS settings.
#include "kernels/cpu_backend.hpp"

#include "kernels/detail/cpu_pool.hpp"

#include <cblas.h>

namespace comb::kernels {

namespace {

const detail::host_ops fast_ops = {
  embedding_cpu, embedding_backward_cpu, conv1d_cpu, conv1d_backward_cpu, conv2d_cpu,
  conv2d_backward_cpu, batch_norm_fold_cpu, bias_act_cpu, bias_act_backward_cpu,
  max_over_time_cpu, max_over_time_backward_cpu, pool2d_cpu, pool2d_backward_cpu,
  global_avg_pool_cpu, dense_cpu, dense_backward_cpu, softmax_cpu, softmax_cross_entropy_cpu,
  softmax_cross_entropy_backward_cpu, dropout_cpu, dropout_backward_cpu, add_cpu, sigmoid_cpu,
  sigmoid_backward_cpu, upsample_cpu, top_k_cpu, sgd_step_cpu, adam_step_cpu, concat_cpu,
  concat_backward_cpu, conv1d_max_cpu, conv1d_max_backward_cpu,
};

} // namespace

cpu_backend::cpu_backend() : host_backend("cpu", fast_ops) {
}

int cpu_backend::threads() {
  return detail::cpu_threads();
}

void cpu_backend::set_threads(int n) {
  detail::set_cpu_threads(n);
  openblas_set_num_threads(detail::cpu_threads());
}

std::string cpu_backend::blas_info() {
  std::string r = "OpenBLAS";
  if (const char* c = openblas_get_config())
    r += std::string{" ("} + c + ")";
  if (const char* k = openblas_get_corename())
    r += std::string{", core "} + k;
  r += ", " + std::to_string(openblas_get_num_threads()) + " threads";
  return r;
}

} // namespace comb::kernels
