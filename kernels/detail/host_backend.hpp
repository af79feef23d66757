// comb::kernels::detail::host_backend: a backend whose ops run on host memory through a
// table of plain functions. The CPU backend (fast functions) and the reference backend
// (naive functions, tests only) are two tables over this one class, so both unpack tensors
// the same way. Immutable after construction; thread-safe.
#pragma once

#include "kernels/backend.hpp"
#include "kernels/ops/batch_norm_fold.hpp"
#include "kernels/ops/bias_act.hpp"
#include "kernels/ops/concat.hpp"
#include "kernels/ops/conv1d.hpp"
#include "kernels/ops/conv1d_max.hpp"
#include "kernels/ops/conv2d.hpp"
#include "kernels/ops/dense.hpp"
#include "kernels/ops/dropout.hpp"
#include "kernels/ops/elementwise.hpp"
#include "kernels/ops/embedding.hpp"
#include "kernels/ops/max_over_time.hpp"
#include "kernels/ops/optimizer.hpp"
#include "kernels/ops/pool2d.hpp"
#include "kernels/ops/softmax.hpp"
#include "kernels/ops/top_k.hpp"
#include "kernels/ops/upsample.hpp"

namespace comb::kernels::detail {

/// One function per op, all on host pointers: a field `name` of name##_ref's type for every
/// op of COMB_KERNEL_OP_LIST (op.hpp), in that order.
struct host_ops {
#define COMB_HOST_OP_FIELD(name) decltype(&name##_ref) name;
  COMB_KERNEL_OP_LIST(COMB_HOST_OP_FIELD)
#undef COMB_HOST_OP_FIELD
};

class host_backend : public backend {
public:
  host_backend(std::string name, const host_ops& ops) : name_(std::move(name)), ops_(ops) {}

  std::string name() const override { return name_; }
  kernels::device device() const override { return device::cpu; }
  bool supports(op o) const override { return o < op::count_; }

protected:
  caf::error do_embedding(const tensor& tokens, const tensor& table, tensor& out) override;
  caf::error do_embedding_backward(const tensor& tokens, const tensor& d_out,
                                   tensor& d_table) override;
  caf::error do_conv1d(const tensor& x, const tensor& w, const tensor* bias, const conv1d_params& p,
                       tensor& y) override;
  caf::error do_conv1d_backward(const tensor& x, const tensor& w, const tensor& dy,
                                const conv1d_params& p, tensor* dx, tensor& dw,
                                tensor* dbias) override;
  caf::error do_conv2d(const tensor& x, const tensor& w, const tensor* bias, const conv2d_params& p,
                       tensor& y) override;
  caf::error do_conv2d_backward(const tensor& x, const tensor& w, const tensor& dy,
                                const conv2d_params& p, tensor* dx, tensor& dw,
                                tensor* dbias) override;
  caf::error do_batch_norm_fold(tensor& w, tensor& bias, const tensor& gamma, const tensor& beta,
                                const tensor& mean, const tensor& var, float eps) override;
  caf::error do_bias_act(const tensor& x, const tensor* bias, activation a, tensor& y) override;
  caf::error do_bias_act_backward(const tensor& y, const tensor& dy, activation a, tensor& dx,
                                  tensor* dbias) override;
  caf::error do_max_over_time(const tensor& x, int64_t valid, tensor& y, tensor& argmax) override;
  caf::error do_max_over_time_backward(const tensor& dy, const tensor& argmax, tensor& dx) override;
  caf::error do_pool2d(const tensor& x, const pool2d_params& p, tensor& y) override;
  caf::error do_pool2d_backward(const tensor& x, const tensor& dy, const pool2d_params& p,
                                tensor& dx) override;
  caf::error do_global_avg_pool(const tensor& x, tensor& y) override;
  caf::error do_dense(const tensor& x, const tensor& w, const tensor* bias, tensor& y) override;
  caf::error do_dense_backward(const tensor& x, const tensor& w, const tensor& dy, tensor* dx,
                               tensor& dw, tensor* dbias) override;
  caf::error do_softmax(const tensor& logits, tensor& probs) override;
  caf::expected<float> do_softmax_cross_entropy(const tensor& logits, const tensor& labels,
                                                tensor& probs) override;
  caf::error do_softmax_cross_entropy_backward(const tensor& probs, const tensor& labels,
                                               tensor& d_logits) override;
  caf::error do_dropout(const tensor& x, float p, uint64_t seed, tensor& y, tensor& mask) override;
  caf::error do_dropout_backward(const tensor& dy, const tensor& mask, float p,
                                 tensor& dx) override;
  caf::error do_add(const tensor& a, const tensor& b, tensor& y) override;
  caf::error do_sigmoid(const tensor& x, tensor& y) override;
  caf::error do_sigmoid_backward(const tensor& y, const tensor& dy, tensor& dx) override;
  caf::error do_upsample(const tensor& x, const upsample_params& p, tensor& y) override;
  caf::error do_top_k(const tensor& x, int k, tensor& values, tensor& indices) override;
  caf::error do_sgd_step(tensor& param, const tensor& grad, tensor* velocity,
                         const sgd_params& p) override;
  caf::error do_adam_step(tensor& param, const tensor& grad, tensor& m, tensor& v, int64_t step,
                          const adam_params& p) override;
  caf::error do_concat(const std::vector<const tensor*>& parts, tensor& y) override;
  caf::error do_concat_backward(const tensor& dy, const std::vector<tensor*>& parts) override;
  caf::error do_conv1d_max(const tensor& x, const tensor& w, const tensor* bias, activation a,
                           tensor& y, tensor& argmax, const tensor* lengths) override;
  caf::error do_conv1d_max_backward(const tensor& x, const tensor& w, const tensor& y,
                                    const tensor& argmax, const tensor& dy, activation a,
                                    tensor* dx, tensor& dw, tensor* dbias) override;

private:
  std::string name_;
  host_ops ops_;
};

} // namespace comb::kernels::detail
