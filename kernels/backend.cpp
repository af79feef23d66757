// comb::kernels::backend: the checks in front of every op (shapes, dtypes, devices; outputs
// sized) and the registry of backends.
#include "kernels/backend.hpp"

#include "kernels/cpu_backend.hpp"
#include "kernels/detail/cuda_hook.hpp"

#include <algorithm>
#include <mutex>

namespace comb::kernels {

std::string to_string(op o) {
  static const char* names[] = {
#define COMB_KERNEL_OP_NAME(name) #name,
    COMB_KERNEL_OP_LIST(COMB_KERNEL_OP_NAME)
#undef COMB_KERNEL_OP_NAME
  };
  static_assert(sizeof(names) / sizeof(names[0]) == static_cast<size_t>(op::count_));
  auto i = static_cast<size_t>(o);
  return i < static_cast<size_t>(op::count_) ? names[i] : "unknown_op";
}

namespace {

caf::error bad(op o, const std::string& what) {
  return make_error(errc::invalid_argument, to_string(o) + ": " + what);
}

/// Checks dtype, device and rank of an input.
caf::error check(op o, const char* name, const tensor& t, dtype dt, device dev, size_t rank) {
  if (t.empty())
    return bad(o, std::string{name} + " is empty");
  if (t.dtype() != dt)
    return bad(o, std::string{name} + " is " + t.describe() + ", expected " + to_string(dt));
  if (t.device() != dev)
    return bad(o,
               std::string{name} + " is " + t.describe() + ", backend runs on " + to_string(dev));
  if (rank != 0 && t.rank() != rank)
    return bad(o, std::string{name} + " is " + t.describe() + ", expected rank "
                    + std::to_string(rank));
  return {};
}

caf::error check_same(op o, const char* a, const tensor& x, const char* b, const tensor& y) {
  if (x.shape() != y.shape())
    return bad(o, std::string{a} + " " + x.describe() + " and " + b + " " + y.describe()
                    + " differ in shape");
  return {};
}

#define COMB_CHECK(expr)                                                                           \
  do {                                                                                             \
    if (auto err_ = (expr))                                                                        \
      return err_;                                                                                 \
  } while (false)

int64_t conv1d_out_len(int64_t t, int64_t k, padding1d p) {
  return p == padding1d::same ? t : t - k + 1;
}

caf::error conv2d_out(op o, const tensor& x, const tensor& w, const conv2d_params& p, int64_t& oh,
                      int64_t& ow) {
  if (p.stride_h < 1 || p.stride_w < 1 || p.pad_top < 0 || p.pad_left < 0 || p.pad_bottom < 0
      || p.pad_right < 0 || p.groups < 1)
    return bad(o, "stride must be >= 1, padding >= 0, groups >= 1");
  int64_t cin = x.dim(3), cout = w.dim(3);
  if (cin < 1 || cout < 1)
    return bad(o, "channel counts must be >= 1 (x " + x.describe() + ", w " + w.describe() + ")");
  if (cin % p.groups != 0 || cout % p.groups != 0 || w.dim(2) != cin / p.groups)
    return bad(o, "weights " + w.describe() + " do not fit input " + x.describe() + " with "
                    + std::to_string(p.groups) + " groups (expected [kh, kw, "
                    + std::to_string(cin / std::max(p.groups, 1)) + ", c_out])");
  int64_t hp = x.dim(1) + p.pad_top + p.pad_bottom, wp = x.dim(2) + p.pad_left + p.pad_right;
  if (hp < w.dim(0) || wp < w.dim(1) || w.dim(0) < 1 || w.dim(1) < 1)
    return bad(o, "kernel " + to_string(w.shape()) + " is larger than the padded input "
                    + x.describe());
  oh = (hp - w.dim(0)) / p.stride_h + 1;
  ow = (wp - w.dim(1)) / p.stride_w + 1;
  return {};
}

caf::error pool_out(op o, const tensor& x, const pool2d_params& p, int64_t& oh, int64_t& ow) {
  if (p.kernel_h < 1 || p.kernel_w < 1 || p.stride_h < 1 || p.stride_w < 1 || p.pad_h < 0
      || p.pad_w < 0 || p.pad_h >= p.kernel_h || p.pad_w >= p.kernel_w)
    return bad(o, "kernel and stride must be >= 1 and padding smaller than the kernel");
  int64_t hp = x.dim(1) + 2 * p.pad_h, wp = x.dim(2) + 2 * p.pad_w;
  if (hp < p.kernel_h || wp < p.kernel_w)
    return bad(o, "window larger than the padded input " + x.describe());
  oh = (hp - p.kernel_h) / p.stride_h + 1;
  ow = (wp - p.kernel_w) / p.stride_w + 1;
  return {};
}

} // namespace

caf::error backend::unsupported(op o) const {
  return make_error(errc::unsupported, "backend '" + name() + "' does not run " + to_string(o));
}

// --- embedding --------------------------------------------------------------------------

caf::error backend::embedding(const tensor& tokens, const tensor& table, tensor& out) {
  auto o = op::embedding;
  COMB_CHECK(check(o, "tokens", tokens, dtype::i32, device(), 2));
  COMB_CHECK(check(o, "table", table, dtype::f32, device(), 2));
  COMB_CHECK(out.ensure({tokens.dim(0), tokens.dim(1), table.dim(1)}, dtype::f32, device()));
  return do_embedding(tokens, table, out);
}

caf::error backend::embedding_backward(const tensor& tokens, const tensor& d_out, int64_t vocab,
                                       tensor& d_table) {
  auto o = op::embedding_backward;
  COMB_CHECK(check(o, "tokens", tokens, dtype::i32, device(), 2));
  COMB_CHECK(check(o, "d_out", d_out, dtype::f32, device(), 3));
  if (d_out.dim(0) != tokens.dim(0) || d_out.dim(1) != tokens.dim(1) || vocab < 1)
    return bad(o, "d_out " + d_out.describe() + " does not match tokens " + tokens.describe());
  COMB_CHECK(d_table.ensure({vocab, d_out.dim(2)}, dtype::f32, device()));
  return do_embedding_backward(tokens, d_out, d_table);
}

// --- conv1d -----------------------------------------------------------------------------

caf::error backend::conv1d(const tensor& x, const tensor& w, const tensor* bias,
                           const conv1d_params& p, tensor& y) {
  auto o = op::conv1d;
  COMB_CHECK(check(o, "x", x, dtype::f32, device(), 3));
  COMB_CHECK(check(o, "w", w, dtype::f32, device(), 3));
  if (w.dim(1) != x.dim(2) || w.dim(0) < 1)
    return bad(o, "weights " + w.describe() + " do not fit input " + x.describe()
                    + " (expected [k, " + std::to_string(x.dim(2)) + ", c_out])");
  if (x.dim(2) < 1 || w.dim(2) < 1)
    return bad(o, "channel counts must be >= 1 (x " + x.describe() + ", w " + w.describe() + ")");
  if (bias) {
    COMB_CHECK(check(o, "bias", *bias, dtype::f32, device(), 1));
    if (bias->dim(0) != w.dim(2))
      return bad(o,
                 "bias " + bias->describe() + " does not match c_out " + std::to_string(w.dim(2)));
  }
  auto t = conv1d_out_len(x.dim(1), w.dim(0), p.padding);
  if (t < 1)
    return bad(o, "sequence of " + std::to_string(x.dim(1)) + " is shorter than kernel "
                    + std::to_string(w.dim(0)));
  COMB_CHECK(y.ensure({x.dim(0), t, w.dim(2)}, dtype::f32, device()));
  return do_conv1d(x, w, bias, p, y);
}

caf::error backend::conv1d_backward(const tensor& x, const tensor& w, const tensor& dy,
                                    const conv1d_params& p, tensor* dx, tensor& dw, tensor* dbias) {
  auto o = op::conv1d_backward;
  COMB_CHECK(check(o, "x", x, dtype::f32, device(), 3));
  COMB_CHECK(check(o, "w", w, dtype::f32, device(), 3));
  COMB_CHECK(check(o, "dy", dy, dtype::f32, device(), 3));
  if (w.dim(1) != x.dim(2) || w.dim(0) < 1 || x.dim(2) < 1 || w.dim(2) < 1)
    return bad(o, "weights " + w.describe() + " do not fit input " + x.describe());
  auto t = conv1d_out_len(x.dim(1), w.dim(0), p.padding);
  if (dy.dim(0) != x.dim(0) || dy.dim(1) != t || dy.dim(2) != w.dim(2))
    return bad(o, "dy " + dy.describe() + " does not match the output of x " + x.describe());
  if (dx)
    COMB_CHECK(dx->ensure(x.shape(), dtype::f32, device()));
  COMB_CHECK(dw.ensure(w.shape(), dtype::f32, device()));
  if (dbias)
    COMB_CHECK(dbias->ensure({w.dim(2)}, dtype::f32, device()));
  return do_conv1d_backward(x, w, dy, p, dx, dw, dbias);
}

// --- conv2d -----------------------------------------------------------------------------

caf::error backend::conv2d(const tensor& x, const tensor& w, const tensor* bias,
                           const conv2d_params& p, tensor& y) {
  auto o = op::conv2d;
  COMB_CHECK(check(o, "x", x, dtype::f32, device(), 4));
  COMB_CHECK(check(o, "w", w, dtype::f32, device(), 4));
  int64_t oh = 0, ow = 0;
  COMB_CHECK(conv2d_out(o, x, w, p, oh, ow));
  if (bias) {
    COMB_CHECK(check(o, "bias", *bias, dtype::f32, device(), 1));
    if (bias->dim(0) != w.dim(3))
      return bad(o, "bias " + bias->describe() + " does not match c_out");
  }
  COMB_CHECK(y.ensure({x.dim(0), oh, ow, w.dim(3)}, dtype::f32, device()));
  return do_conv2d(x, w, bias, p, y);
}

caf::error backend::conv2d_backward(const tensor& x, const tensor& w, const tensor& dy,
                                    const conv2d_params& p, tensor* dx, tensor& dw, tensor* dbias) {
  auto o = op::conv2d_backward;
  COMB_CHECK(check(o, "x", x, dtype::f32, device(), 4));
  COMB_CHECK(check(o, "w", w, dtype::f32, device(), 4));
  COMB_CHECK(check(o, "dy", dy, dtype::f32, device(), 4));
  int64_t oh = 0, ow = 0;
  COMB_CHECK(conv2d_out(o, x, w, p, oh, ow));
  if (dy.shape() != shape{x.dim(0), oh, ow, w.dim(3)})
    return bad(o, "dy " + dy.describe() + " does not match the output of x " + x.describe());
  if (dx)
    COMB_CHECK(dx->ensure(x.shape(), dtype::f32, device()));
  COMB_CHECK(dw.ensure(w.shape(), dtype::f32, device()));
  if (dbias)
    COMB_CHECK(dbias->ensure({w.dim(3)}, dtype::f32, device()));
  return do_conv2d_backward(x, w, dy, p, dx, dw, dbias);
}

caf::error backend::batch_norm_fold(tensor& w, tensor& bias, const tensor& gamma,
                                    const tensor& beta, const tensor& mean, const tensor& var,
                                    float eps) {
  auto o = op::batch_norm_fold;
  COMB_CHECK(check(o, "w", w, dtype::f32, device(), 0));
  COMB_CHECK(check(o, "bias", bias, dtype::f32, device(), 1));
  int64_t c = bias.dim(0);
  for (auto* t : {&gamma, &beta, &mean, &var}) {
    COMB_CHECK(check(o, "batch-norm parameter", *t, dtype::f32, device(), 1));
    if (t->dim(0) != c)
      return bad(o, "batch-norm parameter " + t->describe() + " does not have " + std::to_string(c)
                      + " channels");
  }
  if (c < 1 || w.numel() % c != 0 || w.dim(w.rank() - 1) != c)
    return bad(o, "weights " + w.describe() + " do not end in " + std::to_string(c)
                    + " output channels");
  if (!(eps > 0))
    return bad(o, "eps must be positive");
  return do_batch_norm_fold(w, bias, gamma, beta, mean, var, eps);
}

// --- element-wise -----------------------------------------------------------------------

caf::error backend::bias_act(const tensor& x, const tensor* bias, activation a, tensor& y) {
  auto o = op::bias_act;
  COMB_CHECK(check(o, "x", x, dtype::f32, device(), 0));
  if (x.rank() < 1)
    return bad(o, "x must have rank >= 1");
  if (bias) {
    COMB_CHECK(check(o, "bias", *bias, dtype::f32, device(), 1));
    if (bias->dim(0) != x.dim(x.rank() - 1))
      return bad(o, "bias " + bias->describe() + " does not match the last dimension of "
                      + x.describe());
  }
  COMB_CHECK(y.ensure(x.shape(), dtype::f32, device()));
  return do_bias_act(x, bias, a, y);
}

caf::error backend::bias_act_backward(const tensor& y, const tensor& dy, activation a, tensor& dx,
                                      tensor* dbias) {
  auto o = op::bias_act_backward;
  COMB_CHECK(check(o, "y", y, dtype::f32, device(), 0));
  COMB_CHECK(check(o, "dy", dy, dtype::f32, device(), 0));
  COMB_CHECK(check_same(o, "y", y, "dy", dy));
  if (y.rank() < 1)
    return bad(o, "y must have rank >= 1");
  COMB_CHECK(dx.ensure(y.shape(), dtype::f32, device()));
  if (dbias)
    COMB_CHECK(dbias->ensure({y.dim(y.rank() - 1)}, dtype::f32, device()));
  return do_bias_act_backward(y, dy, a, dx, dbias);
}

caf::error backend::max_over_time(const tensor& x, int64_t valid, tensor& y, tensor& argmax) {
  auto o = op::max_over_time;
  COMB_CHECK(check(o, "x", x, dtype::f32, device(), 3));
  if (valid == 0)
    valid = x.dim(1);
  if (valid < 1 || valid > x.dim(1))
    return bad(o,
               "valid length " + std::to_string(valid) + " outside 1.." + std::to_string(x.dim(1)));
  COMB_CHECK(y.ensure({x.dim(0), x.dim(2)}, dtype::f32, device()));
  COMB_CHECK(argmax.ensure({x.dim(0), x.dim(2)}, dtype::i32, device()));
  return do_max_over_time(x, valid, y, argmax);
}

caf::error backend::max_over_time_backward(const tensor& dy, const tensor& argmax, int64_t time,
                                           tensor& dx) {
  auto o = op::max_over_time_backward;
  COMB_CHECK(check(o, "dy", dy, dtype::f32, device(), 2));
  COMB_CHECK(check(o, "argmax", argmax, dtype::i32, device(), 2));
  if (dy.shape() != argmax.shape() || time < 1)
    return bad(o, "dy " + dy.describe() + " and argmax " + argmax.describe() + " differ");
  COMB_CHECK(dx.ensure({dy.dim(0), time, dy.dim(1)}, dtype::f32, device()));
  return do_max_over_time_backward(dy, argmax, dx);
}

caf::error backend::pool2d(const tensor& x, const pool2d_params& p, tensor& y) {
  auto o = op::pool2d;
  COMB_CHECK(check(o, "x", x, dtype::f32, device(), 4));
  int64_t oh = 0, ow = 0;
  COMB_CHECK(pool_out(o, x, p, oh, ow));
  COMB_CHECK(y.ensure({x.dim(0), oh, ow, x.dim(3)}, dtype::f32, device()));
  return do_pool2d(x, p, y);
}

caf::error backend::pool2d_backward(const tensor& x, const tensor& dy, const pool2d_params& p,
                                    tensor& dx) {
  auto o = op::pool2d_backward;
  COMB_CHECK(check(o, "x", x, dtype::f32, device(), 4));
  COMB_CHECK(check(o, "dy", dy, dtype::f32, device(), 4));
  int64_t oh = 0, ow = 0;
  COMB_CHECK(pool_out(o, x, p, oh, ow));
  if (dy.shape() != shape{x.dim(0), oh, ow, x.dim(3)})
    return bad(o, "dy " + dy.describe() + " does not match the pooled " + x.describe());
  COMB_CHECK(dx.ensure(x.shape(), dtype::f32, device()));
  return do_pool2d_backward(x, dy, p, dx);
}

caf::error backend::global_avg_pool(const tensor& x, tensor& y) {
  auto o = op::global_avg_pool;
  COMB_CHECK(check(o, "x", x, dtype::f32, device(), 4));
  if (x.dim(1) * x.dim(2) < 1)
    return bad(o, "empty image " + x.describe());
  COMB_CHECK(y.ensure({x.dim(0), x.dim(3)}, dtype::f32, device()));
  return do_global_avg_pool(x, y);
}

// --- dense, softmax ---------------------------------------------------------------------

caf::error backend::dense(const tensor& x, const tensor& w, const tensor* bias, tensor& y) {
  auto o = op::dense;
  COMB_CHECK(check(o, "x", x, dtype::f32, device(), 2));
  COMB_CHECK(check(o, "w", w, dtype::f32, device(), 2));
  if (w.dim(0) != x.dim(1))
    return bad(o, "weights " + w.describe() + " do not fit input " + x.describe() + " (expected ["
                    + std::to_string(x.dim(1)) + ", out])");
  if (bias) {
    COMB_CHECK(check(o, "bias", *bias, dtype::f32, device(), 1));
    if (bias->dim(0) != w.dim(1))
      return bad(o, "bias " + bias->describe() + " does not match " + w.describe());
  }
  COMB_CHECK(y.ensure({x.dim(0), w.dim(1)}, dtype::f32, device()));
  return do_dense(x, w, bias, y);
}

caf::error backend::dense_backward(const tensor& x, const tensor& w, const tensor& dy, tensor* dx,
                                   tensor& dw, tensor* dbias) {
  auto o = op::dense_backward;
  COMB_CHECK(check(o, "x", x, dtype::f32, device(), 2));
  COMB_CHECK(check(o, "w", w, dtype::f32, device(), 2));
  COMB_CHECK(check(o, "dy", dy, dtype::f32, device(), 2));
  if (w.dim(0) != x.dim(1) || dy.dim(0) != x.dim(0) || dy.dim(1) != w.dim(1))
    return bad(o, "x " + x.describe() + ", w " + w.describe() + ", dy " + dy.describe()
                    + " do not fit together");
  if (dx)
    COMB_CHECK(dx->ensure(x.shape(), dtype::f32, device()));
  COMB_CHECK(dw.ensure(w.shape(), dtype::f32, device()));
  if (dbias)
    COMB_CHECK(dbias->ensure({w.dim(1)}, dtype::f32, device()));
  return do_dense_backward(x, w, dy, dx, dw, dbias);
}

caf::error backend::softmax(const tensor& logits, tensor& probs) {
  auto o = op::softmax;
  COMB_CHECK(check(o, "logits", logits, dtype::f32, device(), 2));
  COMB_CHECK(probs.ensure(logits.shape(), dtype::f32, device()));
  return do_softmax(logits, probs);
}

namespace {

caf::error check_labels(op o, const tensor& logits, const tensor& labels, device dev) {
  COMB_CHECK(check(o, "logits", logits, dtype::f32, dev, 2));
  COMB_CHECK(check(o, "labels", labels, dtype::i32, dev, 1));
  if (labels.dim(0) != logits.dim(0) || logits.dim(0) < 1)
    return bad(o, "labels " + labels.describe() + " do not match logits " + logits.describe());
  if (dev == device::cpu) {
    auto* l = labels.data<int32_t>();
    for (int64_t i = 0; i < labels.numel(); ++i)
      if (l[i] < 0 || l[i] >= logits.dim(1))
        return bad(o, "label " + std::to_string(l[i]) + " at row " + std::to_string(i)
                        + " outside 0.." + std::to_string(logits.dim(1) - 1));
  }
  return {};
}

} // namespace

caf::expected<float> backend::softmax_cross_entropy(const tensor& logits, const tensor& labels,
                                                    tensor& probs) {
  COMB_CHECK(check_labels(op::softmax_cross_entropy, logits, labels, device()));
  COMB_CHECK(probs.ensure(logits.shape(), dtype::f32, device()));
  return do_softmax_cross_entropy(logits, labels, probs);
}

caf::error backend::softmax_cross_entropy_backward(const tensor& probs, const tensor& labels,
                                                   tensor& d_logits) {
  COMB_CHECK(check_labels(op::softmax_cross_entropy_backward, probs, labels, device()));
  COMB_CHECK(d_logits.ensure(probs.shape(), dtype::f32, device()));
  return do_softmax_cross_entropy_backward(probs, labels, d_logits);
}

// --- dropout, add, sigmoid, upsample, top-k ---------------------------------------------

caf::error backend::dropout(const tensor& x, float p, uint64_t seed, tensor& y, tensor& mask) {
  auto o = op::dropout;
  COMB_CHECK(check(o, "x", x, dtype::f32, device(), 0));
  if (!(p >= 0 && p < 1))
    return bad(o, "probability " + std::to_string(p) + " outside [0, 1)");
  COMB_CHECK(y.ensure(x.shape(), dtype::f32, device()));
  COMB_CHECK(mask.ensure(x.shape(), dtype::u8, device()));
  return do_dropout(x, p, seed, y, mask);
}

caf::error backend::dropout_backward(const tensor& dy, const tensor& mask, float p, tensor& dx) {
  auto o = op::dropout_backward;
  COMB_CHECK(check(o, "dy", dy, dtype::f32, device(), 0));
  COMB_CHECK(check(o, "mask", mask, dtype::u8, device(), 0));
  COMB_CHECK(check_same(o, "dy", dy, "mask", mask));
  if (!(p >= 0 && p < 1))
    return bad(o, "probability " + std::to_string(p) + " outside [0, 1)");
  COMB_CHECK(dx.ensure(dy.shape(), dtype::f32, device()));
  return do_dropout_backward(dy, mask, p, dx);
}

caf::error backend::add(const tensor& a, const tensor& b, tensor& y) {
  auto o = op::add;
  COMB_CHECK(check(o, "a", a, dtype::f32, device(), 0));
  COMB_CHECK(check(o, "b", b, dtype::f32, device(), 0));
  COMB_CHECK(check_same(o, "a", a, "b", b));
  COMB_CHECK(y.ensure(a.shape(), dtype::f32, device()));
  return do_add(a, b, y);
}

caf::error backend::sigmoid(const tensor& x, tensor& y) {
  COMB_CHECK(check(op::sigmoid, "x", x, dtype::f32, device(), 0));
  COMB_CHECK(y.ensure(x.shape(), dtype::f32, device()));
  return do_sigmoid(x, y);
}

caf::error backend::sigmoid_backward(const tensor& y, const tensor& dy, tensor& dx) {
  auto o = op::sigmoid_backward;
  COMB_CHECK(check(o, "y", y, dtype::f32, device(), 0));
  COMB_CHECK(check(o, "dy", dy, dtype::f32, device(), 0));
  COMB_CHECK(check_same(o, "y", y, "dy", dy));
  COMB_CHECK(dx.ensure(y.shape(), dtype::f32, device()));
  return do_sigmoid_backward(y, dy, dx);
}

caf::error backend::upsample(const tensor& x, const upsample_params& p, tensor& y) {
  auto o = op::upsample;
  COMB_CHECK(check(o, "x", x, dtype::f32, device(), 4));
  if (p.scale < 1 || p.scale > 64)
    return bad(o, "scale " + std::to_string(p.scale) + " outside 1..64");
  COMB_CHECK(
    y.ensure({x.dim(0), x.dim(1) * p.scale, x.dim(2) * p.scale, x.dim(3)}, dtype::f32, device()));
  return do_upsample(x, p, y);
}

caf::error backend::top_k(const tensor& x, int k, tensor& values, tensor& indices) {
  auto o = op::top_k;
  COMB_CHECK(check(o, "x", x, dtype::f32, device(), 2));
  if (k < 1 || k > x.dim(1))
    return bad(o, "k = " + std::to_string(k) + " outside 1.." + std::to_string(x.dim(1)));
  COMB_CHECK(values.ensure({x.dim(0), k}, dtype::f32, device()));
  COMB_CHECK(indices.ensure({x.dim(0), k}, dtype::i32, device()));
  return do_top_k(x, k, values, indices);
}

// --- optimisers -------------------------------------------------------------------------

caf::error backend::sgd_step(tensor& param, const tensor& grad, tensor* velocity,
                             const sgd_params& p) {
  auto o = op::sgd_step;
  COMB_CHECK(check(o, "param", param, dtype::f32, device(), 0));
  COMB_CHECK(check(o, "grad", grad, dtype::f32, device(), 0));
  COMB_CHECK(check_same(o, "param", param, "grad", grad));
  if (p.momentum < 0 || p.momentum >= 1 || !(p.lr > 0))
    return bad(o, "lr must be > 0 and momentum in [0, 1)");
  if (p.momentum > 0) {
    if (!velocity)
      return bad(o, "momentum needs a velocity tensor");
    COMB_CHECK(velocity->ensure(param.shape(), dtype::f32, device()));
  }
  return do_sgd_step(param, grad, velocity, p);
}

caf::error backend::adam_step(tensor& param, const tensor& grad, tensor& m, tensor& v, int64_t step,
                              const adam_params& p) {
  auto o = op::adam_step;
  COMB_CHECK(check(o, "param", param, dtype::f32, device(), 0));
  COMB_CHECK(check(o, "grad", grad, dtype::f32, device(), 0));
  COMB_CHECK(check_same(o, "param", param, "grad", grad));
  if (step < 1 || !(p.lr > 0) || !(p.beta1 >= 0 && p.beta1 < 1) || !(p.beta2 >= 0 && p.beta2 < 1)
      || !(p.eps > 0))
    return bad(o, "step must be >= 1, lr > 0, betas in [0, 1), eps > 0");
  COMB_CHECK(m.ensure(param.shape(), dtype::f32, device()));
  COMB_CHECK(v.ensure(param.shape(), dtype::f32, device()));
  return do_adam_step(param, grad, m, v, step, p);
}

// --- concat -----------------------------------------------------------------------------

caf::error backend::concat(const std::vector<const tensor*>& parts, tensor& y) {
  auto o = op::concat;
  if (parts.empty())
    return bad(o, "no parts");
  int64_t width = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (!parts[i])
      return bad(o, "part " + std::to_string(i) + " is null");
    COMB_CHECK(check(o, "part", *parts[i], dtype::f32, device(), parts[0]->rank()));
    if (parts[i]->rank() < 1)
      return bad(o, "parts must have rank >= 1");
    auto& a = parts[0]->shape().dims();
    auto& b = parts[i]->shape().dims();
    if (!std::equal(a.begin(), a.end() - 1, b.begin()))
      return bad(o, "part " + std::to_string(i) + " " + parts[i]->describe()
                      + " differs from part 0 " + parts[0]->describe()
                      + " before the last dimension");
    width += b.back();
  }
  auto dims = parts[0]->shape().dims();
  dims.back() = width;
  COMB_CHECK(y.ensure(shape{dims}, dtype::f32, device()));
  return do_concat(parts, y);
}

caf::error backend::concat_backward(const tensor& dy, const std::vector<int64_t>& widths,
                                    const std::vector<tensor*>& parts) {
  auto o = op::concat_backward;
  COMB_CHECK(check(o, "dy", dy, dtype::f32, device(), 0));
  if (dy.rank() < 1 || widths.size() != parts.size() || widths.empty())
    return bad(o, "need rank >= 1 and one width per part");
  int64_t sum = 0;
  for (auto w : widths) {
    if (w < 0)
      return bad(o, "negative width");
    sum += w;
  }
  if (sum != dy.dim(dy.rank() - 1))
    return bad(o, "widths add up to " + std::to_string(sum) + ", dy is " + dy.describe());
  for (size_t i = 0; i < parts.size(); ++i) {
    if (!parts[i])
      return bad(o, "part " + std::to_string(i) + " is null");
    auto dims = dy.shape().dims();
    dims.back() = widths[i];
    COMB_CHECK(parts[i]->ensure(shape{dims}, dtype::f32, device()));
  }
  return do_concat_backward(dy, parts);
}

// --- conv1d_max -------------------------------------------------------------------------

namespace {

caf::error check_conv1d_max(op o, const tensor& x, const tensor& w, device dev) {
  COMB_CHECK(check(o, "x", x, dtype::f32, dev, 3));
  COMB_CHECK(check(o, "w", w, dtype::f32, dev, 3));
  if (w.dim(1) != x.dim(2) || w.dim(0) < 1 || x.dim(2) < 1 || w.dim(2) < 1)
    return bad(o, "weights " + w.describe() + " do not fit input " + x.describe()
                    + " (expected [k, " + std::to_string(x.dim(2)) + ", c_out])");
  if (x.dim(1) < w.dim(0))
    return bad(o, "sequence of " + std::to_string(x.dim(1)) + " is shorter than kernel "
                    + std::to_string(w.dim(0)));
  return {};
}

} // namespace

caf::error backend::conv1d_max(const tensor& x, const tensor& w, const tensor* bias, activation a,
                               tensor& y, tensor& argmax, const tensor* lengths) {
  auto o = op::conv1d_max;
  COMB_CHECK(check_conv1d_max(o, x, w, device()));
  if (bias) {
    COMB_CHECK(check(o, "bias", *bias, dtype::f32, device(), 1));
    if (bias->dim(0) != w.dim(2))
      return bad(o,
                 "bias " + bias->describe() + " does not match c_out " + std::to_string(w.dim(2)));
  }
  if (lengths) { // read on the host: the backends that run this op keep tensors there
    COMB_CHECK(check(o, "lengths", *lengths, dtype::i32, device::cpu, 1));
    if (lengths->dim(0) != x.dim(0))
      return bad(o, "lengths " + lengths->describe() + " for a batch of "
                      + std::to_string(x.dim(0)));
    const int32_t* l = lengths->data<int32_t>();
    for (int64_t b = 0; b < x.dim(0); ++b)
      if (l[b] < w.dim(0) || l[b] > x.dim(1))
        return bad(o, "length " + std::to_string(l[b]) + " of row " + std::to_string(b)
                        + " outside " + std::to_string(w.dim(0)) + ".."
                        + std::to_string(x.dim(1)));
  }
  COMB_CHECK(y.ensure({x.dim(0), w.dim(2)}, dtype::f32, device()));
  COMB_CHECK(argmax.ensure({x.dim(0), w.dim(2)}, dtype::i32, device()));
  return do_conv1d_max(x, w, bias, a, y, argmax, lengths);
}

caf::error backend::conv1d_max_backward(const tensor& x, const tensor& w, const tensor& y,
                                        const tensor& argmax, const tensor& dy, activation a,
                                        tensor* dx, tensor& dw, tensor* dbias) {
  auto o = op::conv1d_max_backward;
  COMB_CHECK(check_conv1d_max(o, x, w, device()));
  COMB_CHECK(check(o, "y", y, dtype::f32, device(), 2));
  COMB_CHECK(check(o, "argmax", argmax, dtype::i32, device(), 2));
  COMB_CHECK(check(o, "dy", dy, dtype::f32, device(), 2));
  shape out{x.dim(0), w.dim(2)};
  if (y.shape() != out || argmax.shape() != out || dy.shape() != out)
    return bad(o, "y " + y.describe() + ", argmax " + argmax.describe() + " and dy " + dy.describe()
                    + " must all be " + to_string(out));
  if (dx)
    COMB_CHECK(dx->ensure(x.shape(), dtype::f32, device()));
  COMB_CHECK(dw.ensure(w.shape(), dtype::f32, device()));
  if (dbias)
    COMB_CHECK(dbias->ensure({w.dim(2)}, dtype::f32, device()));
  return do_conv1d_max_backward(x, w, y, argmax, dy, a, dx, dw, dbias);
}

// --- defaults: unsupported --------------------------------------------------------------

caf::error backend::do_embedding(const tensor&, const tensor&, tensor&) {
  return unsupported(op::embedding);
}
caf::error backend::do_embedding_backward(const tensor&, const tensor&, tensor&) {
  return unsupported(op::embedding_backward);
}
caf::error backend::do_conv1d(const tensor&, const tensor&, const tensor*, const conv1d_params&,
                              tensor&) {
  return unsupported(op::conv1d);
}
caf::error backend::do_conv1d_backward(const tensor&, const tensor&, const tensor&,
                                       const conv1d_params&, tensor*, tensor&, tensor*) {
  return unsupported(op::conv1d_backward);
}
caf::error backend::do_conv2d(const tensor&, const tensor&, const tensor*, const conv2d_params&,
                              tensor&) {
  return unsupported(op::conv2d);
}
caf::error backend::do_conv2d_backward(const tensor&, const tensor&, const tensor&,
                                       const conv2d_params&, tensor*, tensor&, tensor*) {
  return unsupported(op::conv2d_backward);
}
caf::error backend::do_batch_norm_fold(tensor&, tensor&, const tensor&, const tensor&,
                                       const tensor&, const tensor&, float) {
  return unsupported(op::batch_norm_fold);
}
caf::error backend::do_bias_act(const tensor&, const tensor*, activation, tensor&) {
  return unsupported(op::bias_act);
}
caf::error backend::do_bias_act_backward(const tensor&, const tensor&, activation, tensor&,
                                         tensor*) {
  return unsupported(op::bias_act_backward);
}
caf::error backend::do_max_over_time(const tensor&, int64_t, tensor&, tensor&) {
  return unsupported(op::max_over_time);
}
caf::error backend::do_max_over_time_backward(const tensor&, const tensor&, tensor&) {
  return unsupported(op::max_over_time_backward);
}
caf::error backend::do_pool2d(const tensor&, const pool2d_params&, tensor&) {
  return unsupported(op::pool2d);
}
caf::error backend::do_pool2d_backward(const tensor&, const tensor&, const pool2d_params&,
                                       tensor&) {
  return unsupported(op::pool2d_backward);
}
caf::error backend::do_global_avg_pool(const tensor&, tensor&) {
  return unsupported(op::global_avg_pool);
}
caf::error backend::do_dense(const tensor&, const tensor&, const tensor*, tensor&) {
  return unsupported(op::dense);
}
caf::error backend::do_dense_backward(const tensor&, const tensor&, const tensor&, tensor*, tensor&,
                                      tensor*) {
  return unsupported(op::dense_backward);
}
caf::error backend::do_softmax(const tensor&, tensor&) {
  return unsupported(op::softmax);
}
caf::expected<float> backend::do_softmax_cross_entropy(const tensor&, const tensor&, tensor&) {
  return unsupported(op::softmax_cross_entropy);
}
caf::error backend::do_softmax_cross_entropy_backward(const tensor&, const tensor&, tensor&) {
  return unsupported(op::softmax_cross_entropy_backward);
}
caf::error backend::do_dropout(const tensor&, float, uint64_t, tensor&, tensor&) {
  return unsupported(op::dropout);
}
caf::error backend::do_dropout_backward(const tensor&, const tensor&, float, tensor&) {
  return unsupported(op::dropout_backward);
}
caf::error backend::do_add(const tensor&, const tensor&, tensor&) {
  return unsupported(op::add);
}
caf::error backend::do_sigmoid(const tensor&, tensor&) {
  return unsupported(op::sigmoid);
}
caf::error backend::do_sigmoid_backward(const tensor&, const tensor&, tensor&) {
  return unsupported(op::sigmoid_backward);
}
caf::error backend::do_upsample(const tensor&, const upsample_params&, tensor&) {
  return unsupported(op::upsample);
}
caf::error backend::do_top_k(const tensor&, int, tensor&, tensor&) {
  return unsupported(op::top_k);
}
caf::error backend::do_sgd_step(tensor&, const tensor&, tensor*, const sgd_params&) {
  return unsupported(op::sgd_step);
}
caf::error backend::do_adam_step(tensor&, const tensor&, tensor&, tensor&, int64_t,
                                 const adam_params&) {
  return unsupported(op::adam_step);
}

caf::error backend::do_concat(const std::vector<const tensor*>&, tensor&) {
  return unsupported(op::concat);
}
caf::error backend::do_concat_backward(const tensor&, const std::vector<tensor*>&) {
  return unsupported(op::concat_backward);
}

caf::error backend::do_conv1d_max(const tensor&, const tensor&, const tensor*, activation, tensor&,
                                  tensor&, const tensor*) {
  return unsupported(op::conv1d_max);
}

caf::error backend::do_conv1d_max_backward(const tensor&, const tensor&, const tensor&,
                                           const tensor&, const tensor&, activation, tensor*,
                                           tensor&, tensor*) {
  return unsupported(op::conv1d_max_backward);
}

// --- registry ---------------------------------------------------------------------------

namespace {

struct registry {
  std::mutex mtx;
  std::vector<std::shared_ptr<backend>> list;
};

registry& reg() {
  static registry r;
  static std::once_flag once;
  std::call_once(once, [] {
    r.list.push_back(std::make_shared<cpu_backend>());
#if COMB_KERNELS_CUDA
    if (auto cuda = detail::make_cuda_backend())
      r.list.push_back(std::move(cuda));
#endif
  });
  return r;
}

} // namespace

void register_backend(std::shared_ptr<backend> b) {
  auto& r = reg();
  std::lock_guard<std::mutex> g{r.mtx};
  r.list.push_back(std::move(b));
}

std::vector<std::shared_ptr<backend>> backends() {
  auto& r = reg();
  std::lock_guard<std::mutex> g{r.mtx};
  return r.list;
}

std::shared_ptr<backend> find_backend(const std::string& name) {
  for (auto& b : backends())
    if (b->name() == name)
      return b;
  return nullptr;
}

backend& cpu() {
  static backend* b = backends().front().get();
  return *b;
}

std::shared_ptr<backend> default_backend(bool prefer_gpu) {
  if (prefer_gpu)
    if (auto b = find_backend("cuda"))
      return b;
  return backends().front();
}

} // namespace comb::kernels
