// comb::kernels::reference_backend: the naive function table.
#include "kernels/reference_backend.hpp"

namespace comb::kernels {

namespace {

const detail::host_ops naive_ops = {
  embedding_ref, embedding_backward_ref, conv1d_ref, conv1d_backward_ref, conv2d_ref,
  conv2d_backward_ref, batch_norm_fold_ref, bias_act_ref, bias_act_backward_ref,
  max_over_time_ref, max_over_time_backward_ref, pool2d_ref, pool2d_backward_ref,
  global_avg_pool_ref, dense_ref, dense_backward_ref, softmax_ref, softmax_cross_entropy_ref,
  softmax_cross_entropy_backward_ref, dropout_ref, dropout_backward_ref, add_ref, sigmoid_ref,
  sigmoid_backward_ref, upsample_ref, top_k_ref, sgd_step_ref, adam_step_ref, concat_ref,
  concat_backward_ref, conv1d_max_ref, conv1d_max_backward_ref,
};

} // namespace

reference_backend::reference_backend() : host_backend("reference", naive_ops) {
}

} // namespace comb::kernels
