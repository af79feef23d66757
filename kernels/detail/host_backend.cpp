// comb::kernels::detail::host_backend: unpacks checked tensors into the host functions.
#include "kernels/detail/host_backend.hpp"

namespace comb::kernels::detail {

namespace {

const float* f(const tensor& t) {
  return t.data<float>();
}
float* f(tensor& t) {
  return t.data<float>();
}
const float* f(const tensor* t) {
  return t ? t->data<float>() : nullptr;
}
float* f(tensor* t) {
  return t ? t->data<float>() : nullptr;
}
const int32_t* i(const tensor& t) {
  return t.data<int32_t>();
}

/// Rows and columns of a tensor seen as [numel / last, last].
int64_t rows_of(const tensor& t) {
  auto c = t.dim(t.rank() - 1);
  return c == 0 ? 0 : t.numel() / c;
}

} // namespace

caf::error host_backend::do_embedding(const tensor& tokens, const tensor& table, tensor& out) {
  auto vocab = table.dim(0);
  auto* tk = i(tokens);
  for (int64_t j = 0; j < tokens.numel(); ++j)
    if (tk[j] < 0 || tk[j] >= vocab)
      return make_error(errc::invalid_argument, "embedding: token " + std::to_string(tk[j])
                                                  + " at position " + std::to_string(j)
                                                  + " outside the vocabulary 0.."
                                                  + std::to_string(vocab - 1));
  ops_.embedding(tk, tokens.numel(), f(table), table.dim(1), f(out));
  return {};
}

caf::error host_backend::do_embedding_backward(const tensor& tokens, const tensor& d_out,
                                               tensor& d_table) {
  auto vocab = d_table.dim(0);
  auto* tk = i(tokens);
  for (int64_t j = 0; j < tokens.numel(); ++j)
    if (tk[j] < 0 || tk[j] >= vocab)
      return make_error(errc::invalid_argument, "embedding_backward: token " + std::to_string(tk[j])
                                                  + " outside the vocabulary 0.."
                                                  + std::to_string(vocab - 1));
  ops_.embedding_backward(tk, tokens.numel(), f(d_out), d_out.dim(2), vocab, f(d_table));
  return {};
}

caf::error host_backend::do_conv1d(const tensor& x, const tensor& w, const tensor* bias,
                                   const conv1d_params& p, tensor& y) {
  auto d = make_conv1d_dims(x.dim(0), x.dim(1), x.dim(2), w.dim(0), w.dim(2), p.padding);
  ops_.conv1d(d, f(x), f(w), f(bias), f(y));
  return {};
}

caf::error host_backend::do_conv1d_backward(const tensor& x, const tensor& w, const tensor& dy,
                                            const conv1d_params& p, tensor* dx, tensor& dw,
                                            tensor* dbias) {
  auto d = make_conv1d_dims(x.dim(0), x.dim(1), x.dim(2), w.dim(0), w.dim(2), p.padding);
  ops_.conv1d_backward(d, f(x), f(w), f(dy), f(dx), f(dw), f(dbias));
  return {};
}

caf::error host_backend::do_conv2d(const tensor& x, const tensor& w, const tensor* bias,
                                   const conv2d_params& p, tensor& y) {
  auto d = make_conv2d_dims(x.dim(0), x.dim(1), x.dim(2), x.dim(3), w.dim(0), w.dim(1), w.dim(3),
                            p);
  ops_.conv2d(d, f(x), f(w), f(bias), f(y));
  return {};
}

caf::error host_backend::do_conv2d_backward(const tensor& x, const tensor& w, const tensor& dy,
                                            const conv2d_params& p, tensor* dx, tensor& dw,
                                            tensor* dbias) {
  auto d = make_conv2d_dims(x.dim(0), x.dim(1), x.dim(2), x.dim(3), w.dim(0), w.dim(1), w.dim(3),
                            p);
  ops_.conv2d_backward(d, f(x), f(w), f(dy), f(dx), f(dw), f(dbias));
  return {};
}

caf::error host_backend::do_batch_norm_fold(tensor& w, tensor& bias, const tensor& gamma,
                                            const tensor& beta, const tensor& mean,
                                            const tensor& var, float eps) {
  auto* vr = f(var);
  for (int64_t c = 0; c < var.numel(); ++c)
    if (!(vr[c] + eps > 0))
      return make_error(errc::invalid_argument, "batch_norm_fold: variance of channel "
                                                  + std::to_string(c) + " is negative");
  ops_.batch_norm_fold(f(w), w.numel(), f(bias), bias.numel(), f(gamma), f(beta), f(mean), vr, eps);
  return {};
}

caf::error host_backend::do_bias_act(const tensor& x, const tensor* bias, activation a, tensor& y) {
  ops_.bias_act(f(x), rows_of(x), x.dim(x.rank() - 1), f(bias), a, f(y));
  return {};
}

caf::error host_backend::do_bias_act_backward(const tensor& y, const tensor& dy, activation a,
                                              tensor& dx, tensor* dbias) {
  ops_.bias_act_backward(f(y), f(dy), rows_of(y), y.dim(y.rank() - 1), a, f(dx), f(dbias));
  return {};
}

caf::error host_backend::do_max_over_time(const tensor& x, int64_t valid, tensor& y,
                                          tensor& argmax) {
  ops_.max_over_time(f(x), x.dim(0), x.dim(1), x.dim(2), valid, f(y), argmax.data<int32_t>());
  return {};
}

caf::error host_backend::do_max_over_time_backward(const tensor& dy, const tensor& argmax,
                                                   tensor& dx) {
  auto t = dx.dim(1);
  auto* am = i(argmax);
  for (int64_t j = 0; j < argmax.numel(); ++j)
    if (am[j] < 0 || am[j] >= t)
      return make_error(errc::invalid_argument, "max_over_time_backward: argmax "
                                                  + std::to_string(am[j]) + " outside 0.."
                                                  + std::to_string(t - 1));
  ops_.max_over_time_backward(f(dy), am, dy.dim(0), t, dy.dim(1), f(dx));
  return {};
}

caf::error host_backend::do_pool2d(const tensor& x, const pool2d_params& p, tensor& y) {
  ops_.pool2d(make_pool2d_dims(x.dim(0), x.dim(1), x.dim(2), x.dim(3), p), f(x), f(y));
  return {};
}

caf::error host_backend::do_pool2d_backward(const tensor& x, const tensor& dy,
                                            const pool2d_params& p, tensor& dx) {
  ops_.pool2d_backward(make_pool2d_dims(x.dim(0), x.dim(1), x.dim(2), x.dim(3), p), f(x), f(dy),
                       f(dx));
  return {};
}

caf::error host_backend::do_global_avg_pool(const tensor& x, tensor& y) {
  ops_.global_avg_pool(f(x), x.dim(0), x.dim(1) * x.dim(2), x.dim(3), f(y));
  return {};
}

caf::error host_backend::do_dense(const tensor& x, const tensor& w, const tensor* bias, tensor& y) {
  ops_.dense(f(x), x.dim(0), x.dim(1), f(w), w.dim(1), f(bias), f(y));
  return {};
}

caf::error host_backend::do_dense_backward(const tensor& x, const tensor& w, const tensor& dy,
                                           tensor* dx, tensor& dw, tensor* dbias) {
  ops_.dense_backward(f(x), x.dim(0), x.dim(1), f(w), w.dim(1), f(dy), f(dx), f(dw), f(dbias));
  return {};
}

caf::error host_backend::do_softmax(const tensor& logits, tensor& probs) {
  ops_.softmax(f(logits), logits.dim(0), logits.dim(1), f(probs));
  return {};
}

caf::expected<float> host_backend::do_softmax_cross_entropy(const tensor& logits,
                                                            const tensor& labels, tensor& probs) {
  return ops_.softmax_cross_entropy(f(logits), i(labels), logits.dim(0), logits.dim(1), f(probs));
}

caf::error host_backend::do_softmax_cross_entropy_backward(const tensor& probs,
                                                           const tensor& labels, tensor& d_logits) {
  ops_.softmax_cross_entropy_backward(f(probs), i(labels), probs.dim(0), probs.dim(1), f(d_logits));
  return {};
}

caf::error host_backend::do_dropout(const tensor& x, float p, uint64_t seed, tensor& y,
                                    tensor& mask) {
  ops_.dropout(f(x), x.numel(), p, seed, f(y), mask.data<uint8_t>());
  return {};
}

caf::error host_backend::do_dropout_backward(const tensor& dy, const tensor& mask, float p,
                                             tensor& dx) {
  ops_.dropout_backward(f(dy), mask.data<uint8_t>(), dy.numel(), p, f(dx));
  return {};
}

caf::error host_backend::do_add(const tensor& a, const tensor& b, tensor& y) {
  ops_.add(f(a), f(b), a.numel(), f(y));
  return {};
}

caf::error host_backend::do_sigmoid(const tensor& x, tensor& y) {
  ops_.sigmoid(f(x), x.numel(), f(y));
  return {};
}

caf::error host_backend::do_sigmoid_backward(const tensor& y, const tensor& dy, tensor& dx) {
  ops_.sigmoid_backward(f(y), f(dy), y.numel(), f(dx));
  return {};
}

caf::error host_backend::do_upsample(const tensor& x, const upsample_params& p, tensor& y) {
  ops_.upsample(f(x), x.dim(0), x.dim(1), x.dim(2), x.dim(3), p, f(y));
  return {};
}

caf::error host_backend::do_top_k(const tensor& x, int k, tensor& values, tensor& indices) {
  ops_.top_k(f(x), x.dim(0), x.dim(1), k, f(values), indices.data<int32_t>());
  return {};
}

caf::error host_backend::do_sgd_step(tensor& param, const tensor& grad, tensor* velocity,
                                     const sgd_params& p) {
  ops_.sgd_step(f(param), f(grad), f(velocity), param.numel(), p);
  return {};
}

caf::error host_backend::do_adam_step(tensor& param, const tensor& grad, tensor& m, tensor& v,
                                      int64_t step, const adam_params& p) {
  ops_.adam_step(f(param), f(grad), f(m), f(v), param.numel(), step, p);
  return {};
}

caf::error host_backend::do_concat(const std::vector<const tensor*>& parts, tensor& y) {
  std::vector<const float*> ptrs;
  std::vector<int64_t> widths;
  for (auto* p : parts) {
    ptrs.push_back(p->data<float>());
    widths.push_back(p->dim(p->rank() - 1));
  }
  ops_.concat(ptrs.data(), widths.data(), static_cast<int64_t>(parts.size()), rows_of(y), f(y));
  return {};
}

caf::error host_backend::do_concat_backward(const tensor& dy, const std::vector<tensor*>& parts) {
  std::vector<float*> ptrs;
  std::vector<int64_t> widths;
  for (auto* p : parts) {
    ptrs.push_back(p->data<float>());
    widths.push_back(p->dim(p->rank() - 1));
  }
  ops_.concat_backward(f(dy), rows_of(dy), widths.data(), ptrs.data(),
                       static_cast<int64_t>(parts.size()));
  return {};
}

caf::error host_backend::do_conv1d_max(const tensor& x, const tensor& w, const tensor* bias,
                                       activation a, tensor& y, tensor& argmax,
                                       const tensor* lengths) {
  auto d = make_conv1d_dims(x.dim(0), x.dim(1), x.dim(2), w.dim(0), w.dim(2), padding1d::valid);
  d.lengths = lengths ? lengths->data<int32_t>() : nullptr;
  ops_.conv1d_max(d, f(x), f(w), f(bias), a, f(y), argmax.data<int32_t>());
  return {};
}

caf::error host_backend::do_conv1d_max_backward(const tensor& x, const tensor& w, const tensor& y,
                                                const tensor& argmax, const tensor& dy,
                                                activation a, tensor* dx, tensor& dw,
                                                tensor* dbias) {
  auto d = make_conv1d_dims(x.dim(0), x.dim(1), x.dim(2), w.dim(0), w.dim(2), padding1d::valid);
  auto* am = i(argmax);
  for (int64_t j = 0; j < argmax.numel(); ++j)
    if (am[j] < 0 || am[j] >= d.t_out)
      return make_error(errc::invalid_argument, "conv1d_max_backward: argmax "
                                                  + std::to_string(am[j]) + " outside 0.."
                                                  + std::to_string(d.t_out - 1));
  ops_.conv1d_max_backward(d, f(x), f(w), f(y), am, f(dy), a, f(dx), f(dw), f(dbias));
  return {};
}

} // namespace comb::kernels::detail
