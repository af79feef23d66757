// comb::kernels::backend: one interface over the places ops run (the CPU backend, always
// present; the CUDA backend, registered when built and a device answers; the naive
// reference backend, used only by tests). The public methods check shapes, dtypes and
// devices, size the outputs (tensor::ensure) and then call the protected do_* method the
// backend overrides; an op a backend does not override answers errc::unsupported.
// Inputs must live on the backend's device(). Backends are created once and live for the
// process; their ops are thread-safe (scratch is per call), though the CPU backend's
// worker pool runs one parallel region at a time.
#pragma once

#include "kernels/op.hpp"
#include "kernels/tensor.hpp"

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include <memory>
#include <string>
#include <vector>

namespace comb::kernels {

class backend {
public:
  virtual ~backend() = default;

  /// "cpu", "cuda", "reference".
  virtual std::string name() const = 0;

  /// Where the tensors of this backend live.
  virtual kernels::device device() const = 0;

  /// True when the backend runs `o`.
  virtual bool supports(op o) const = 0;

  // --- ops. Shapes use the layouts of op.hpp; optional tensors are pointers (nullptr: none).

  /// out[b, t, :] = table[tokens[b, t], :]. tokens i32 [B, T], table [V, E] -> [B, T, E].
  /// Errors: a token outside 0..V-1.
  caf::error embedding(const tensor& tokens, const tensor& table, tensor& out);
  /// d_table [V, E] = scatter-add of d_out [B, T, E] by tokens.
  caf::error embedding_backward(const tensor& tokens, const tensor& d_out, int64_t vocab,
                                tensor& d_table);

  /// y [B, T', C_out] = conv(x [B, T, C_in], w [K, C_in, C_out]) + bias [C_out].
  caf::error conv1d(const tensor& x, const tensor& w, const tensor* bias, const conv1d_params& p,
                    tensor& y);
  /// Gradients of conv1d; dx and dbias may be nullptr (not wanted).
  caf::error conv1d_backward(const tensor& x, const tensor& w, const tensor& dy,
                             const conv1d_params& p, tensor* dx, tensor& dw, tensor* dbias);

  /// y [N, H', W', C_out] = conv(x [N, H, W, C_in], w [KH, KW, C_in/g, C_out]) + bias.
  caf::error conv2d(const tensor& x, const tensor& w, const tensor* bias, const conv2d_params& p,
                    tensor& y);
  /// Gradients of conv2d; dx and dbias may be nullptr.
  caf::error conv2d_backward(const tensor& x, const tensor& w, const tensor& dy,
                             const conv2d_params& p, tensor* dx, tensor& dw, tensor* dbias);

  /// Folds batch-norm into a convolution in place: w (output channel fastest, C of them)
  /// *= gamma / sqrt(var + eps); bias = (bias - mean) * that + beta. All per-channel [C].
  caf::error batch_norm_fold(tensor& w, tensor& bias, const tensor& gamma, const tensor& beta,
                             const tensor& mean, const tensor& var, float eps);

  /// y = act(x + bias) with bias [C] broadcast over the last dimension (nullptr: none).
  caf::error bias_act(const tensor& x, const tensor* bias, activation a, tensor& y);
  /// dx = dy * act'(y) (from the forward output y); dbias = sum of dx over all but the
  /// last dimension (nullptr: not wanted).
  caf::error bias_act_backward(const tensor& y, const tensor& dy, activation a, tensor& dx,
                               tensor* dbias);

  /// y [B, C] = max over t < valid of x [B, T, C]; argmax i32 [B, C]. valid = T when 0.
  caf::error max_over_time(const tensor& x, int64_t valid, tensor& y, tensor& argmax);
  /// dx [B, time, C]: dy at the argmax, zero elsewhere.
  caf::error max_over_time_backward(const tensor& dy, const tensor& argmax, int64_t time,
                                    tensor& dx);

  /// y [B, C_out] = act(max over t of conv1d(x [B, T, C_in], w [K, C_in, C_out]) + bias)
  /// with valid padding, in one pass (a TextCNN branch: equals conv1d, max_over_time and
  /// bias_act in turn); argmax i32 [B, C_out] is the window start of the first maximum.
  /// bias may be nullptr. `lengths` (i32 [B], nullptr: all T): row b's windows lie inside
  /// its first lengths[b] steps (K..T), so that padding after them reaches neither y nor,
  /// through argmax, the gradients. Errors: T < K, shapes or lengths that do not fit.
  caf::error conv1d_max(const tensor& x, const tensor& w, const tensor* bias, activation a,
                        tensor& y, tensor& argmax, const tensor* lengths = nullptr);
  /// Gradients of conv1d_max from its outputs y and argmax: dw and dbias (nullptr: not
  /// wanted) are overwritten; dx (nullptr: not wanted) is ADDED TO, so that several
  /// convolutions over one input sum their input gradients (it is sized, zeroed, when it
  /// does not already have x's shape).
  caf::error conv1d_max_backward(const tensor& x, const tensor& w, const tensor& y,
                                 const tensor& argmax, const tensor& dy, activation a, tensor* dx,
                                 tensor& dw, tensor* dbias);

  /// Max or average pooling of NHWC x.
  caf::error pool2d(const tensor& x, const pool2d_params& p, tensor& y);
  /// dx of pool2d (max: to the first maximum of each window).
  caf::error pool2d_backward(const tensor& x, const tensor& dy, const pool2d_params& p, tensor& dx);
  /// y [N, C] = mean over H, W of x [N, H, W, C].
  caf::error global_avg_pool(const tensor& x, tensor& y);

  /// y [B, out] = x [B, in] w [in, out] + bias [out].
  caf::error dense(const tensor& x, const tensor& w, const tensor* bias, tensor& y);
  /// Gradients of dense; dx and dbias may be nullptr.
  caf::error dense_backward(const tensor& x, const tensor& w, const tensor& dy, tensor* dx,
                            tensor& dw, tensor* dbias);

  /// Row-wise softmax of logits [B, C].
  caf::error softmax(const tensor& logits, tensor& probs);
  /// probs = softmax(logits); returns the mean over rows of -log probs[label]. labels i32
  /// [B] in 0..C-1.
  caf::expected<float> softmax_cross_entropy(const tensor& logits, const tensor& labels,
                                             tensor& probs);
  /// d(mean loss)/d logits = (probs - onehot(labels)) / B.
  caf::error softmax_cross_entropy_backward(const tensor& probs, const tensor& labels,
                                            tensor& d_logits);

  /// Inverted dropout: keeps each element with probability 1 - p and scales it by
  /// 1 / (1 - p); mask u8 (1 = kept). The mask is a pure function of (seed, index), the
  /// same on every backend and thread count.
  caf::error dropout(const tensor& x, float p, uint64_t seed, tensor& y, tensor& mask);
  caf::error dropout_backward(const tensor& dy, const tensor& mask, float p, tensor& dx);

  /// y = a + b (same shapes; the residual add).
  caf::error add(const tensor& a, const tensor& b, tensor& y);

  /// y = 1 / (1 + exp(-x)).
  caf::error sigmoid(const tensor& x, tensor& y);
  /// dx = dy * y * (1 - y).
  caf::error sigmoid_backward(const tensor& y, const tensor& dy, tensor& dx);

  /// NHWC upsampling by an integer factor.
  caf::error upsample(const tensor& x, const upsample_params& p, tensor& y);

  /// The k largest of each row of x [B, C], descending (ties: lower index first);
  /// indices i32 [B, k].
  caf::error top_k(const tensor& x, int k, tensor& values, tensor& indices);

  /// param -= lr * (grad + wd * param), with momentum when p.momentum > 0 (velocity then
  /// required, same shape as param).
  caf::error sgd_step(tensor& param, const tensor& grad, tensor* velocity, const sgd_params& p);
  /// One Adam step with bias correction; step counts from 1; m and v same shape as param.
  caf::error adam_step(tensor& param, const tensor& grad, tensor& m, tensor& v, int64_t step,
                       const adam_params& p);

  /// y [..., sum of widths] = the parts [..., width_i] side by side along the last
  /// dimension (all parts share the leading dimensions).
  caf::error concat(const std::vector<const tensor*>& parts, tensor& y);
  /// Splits dy along the last dimension into parts of the given widths (the gradient of
  /// concat); parts are sized here.
  caf::error concat_backward(const tensor& dy, const std::vector<int64_t>& widths,
                             const std::vector<tensor*>& parts);

protected:
  // Overridden by each backend; called with checked inputs and sized outputs.
  virtual caf::error do_embedding(const tensor& tokens, const tensor& table, tensor& out);
  virtual caf::error do_embedding_backward(const tensor& tokens, const tensor& d_out,
                                           tensor& d_table);
  virtual caf::error do_conv1d(const tensor& x, const tensor& w, const tensor* bias,
                               const conv1d_params& p, tensor& y);
  virtual caf::error do_conv1d_backward(const tensor& x, const tensor& w, const tensor& dy,
                                        const conv1d_params& p, tensor* dx, tensor& dw,
                                        tensor* dbias);
  virtual caf::error do_conv2d(const tensor& x, const tensor& w, const tensor* bias,
                               const conv2d_params& p, tensor& y);
  virtual caf::error do_conv2d_backward(const tensor& x, const tensor& w, const tensor& dy,
                                        const conv2d_params& p, tensor* dx, tensor& dw,
                                        tensor* dbias);
  virtual caf::error do_batch_norm_fold(tensor& w, tensor& bias, const tensor& gamma,
                                        const tensor& beta, const tensor& mean, const tensor& var,
                                        float eps);
  virtual caf::error do_bias_act(const tensor& x, const tensor* bias, activation a, tensor& y);
  virtual caf::error do_bias_act_backward(const tensor& y, const tensor& dy, activation a,
                                          tensor& dx, tensor* dbias);
  virtual caf::error do_max_over_time(const tensor& x, int64_t valid, tensor& y, tensor& argmax);
  virtual caf::error do_max_over_time_backward(const tensor& dy, const tensor& argmax, tensor& dx);
  virtual caf::error do_pool2d(const tensor& x, const pool2d_params& p, tensor& y);
  virtual caf::error do_pool2d_backward(const tensor& x, const tensor& dy, const pool2d_params& p,
                                        tensor& dx);
  virtual caf::error do_global_avg_pool(const tensor& x, tensor& y);
  virtual caf::error do_dense(const tensor& x, const tensor& w, const tensor* bias, tensor& y);
  virtual caf::error do_dense_backward(const tensor& x, const tensor& w, const tensor& dy,
                                       tensor* dx, tensor& dw, tensor* dbias);
  virtual caf::error do_softmax(const tensor& logits, tensor& probs);
  virtual caf::expected<float> do_softmax_cross_entropy(const tensor& logits, const tensor& labels,
                                                        tensor& probs);
  virtual caf::error do_softmax_cross_entropy_backward(const tensor& probs, const tensor& labels,
                                                       tensor& d_logits);
  virtual caf::error do_dropout(const tensor& x, float p, uint64_t seed, tensor& y, tensor& mask);
  virtual caf::error do_dropout_backward(const tensor& dy, const tensor& mask, float p, tensor& dx);
  virtual caf::error do_add(const tensor& a, const tensor& b, tensor& y);
  virtual caf::error do_sigmoid(const tensor& x, tensor& y);
  virtual caf::error do_sigmoid_backward(const tensor& y, const tensor& dy, tensor& dx);
  virtual caf::error do_upsample(const tensor& x, const upsample_params& p, tensor& y);
  virtual caf::error do_top_k(const tensor& x, int k, tensor& values, tensor& indices);
  virtual caf::error do_sgd_step(tensor& param, const tensor& grad, tensor* velocity,
                                 const sgd_params& p);
  virtual caf::error do_adam_step(tensor& param, const tensor& grad, tensor& m, tensor& v,
                                  int64_t step, const adam_params& p);

  virtual caf::error do_concat(const std::vector<const tensor*>& parts, tensor& y);
  virtual caf::error do_concat_backward(const tensor& dy, const std::vector<tensor*>& parts);
  virtual caf::error do_conv1d_max(const tensor& x, const tensor& w, const tensor* bias,
                                   activation a, tensor& y, tensor& argmax,
                                   const tensor* lengths);
  virtual caf::error do_conv1d_max_backward(const tensor& x, const tensor& w, const tensor& y,
                                            const tensor& argmax, const tensor& dy, activation a,
                                            tensor* dx, tensor& dw, tensor* dbias);

  /// errc::unsupported naming this backend and `o`.
  caf::error unsupported(op o) const;
};

/// Registers a backend (the CUDA backend calls this when a device answers). Thread-safe.
void register_backend(std::shared_ptr<backend> b);

/// All registered backends, CPU first. The CPU backend is always there.
std::vector<std::shared_ptr<backend>> backends();

/// The registered backend called `name`, or nullptr.
std::shared_ptr<backend> find_backend(const std::string& name);

/// The CPU backend.
backend& cpu();

/// The CUDA backend when registered and `prefer_gpu`, else the CPU backend.
std::shared_ptr<backend> default_backend(bool prefer_gpu = true);

} // namespace comb::kernels
