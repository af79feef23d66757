// comb::kernels::textcnn: the paper's TextCNN (§3.1) for token sequences: embedding
// (vocab x embed); one conv1d per kernel size (default 2, 3, 4; `filters` each, valid
// padding) followed by max over time, bias and ReLU; concatenation; dropout (training
// only); dense; softmax over `classes`. Forward, backward and an Adam trainer step, all
// through one kernels::backend (the CPU backend unless another is given). Weights are
// saved and loaded as safetensors with tensor names embedding.weight, conv<k>.weight
// [k, embed, filters], conv<k>.bias, dense.weight [n_k * filters, classes], dense.bias,
// and the config in the metadata ("textcnn.*", the one parser of it is here). Inference has
// two engines: forward() runs the layers op by op on the backend; textcnn_fused
// (textcnn_fused.hpp) is a CPU engine over the same weights for scoring. A model is owned by
// one trainer or predictor and is not thread-safe (activations and optimiser state are
// members).
#pragma once

#include "kernels/backend.hpp"
#include "kernels/op.hpp"
#include "kernels/safetensors.hpp"
#include "kernels/tensor.hpp"

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace comb::kernels {

struct textcnn_config {
  int64_t vocab = 8192;
  int64_t embed = 64;
  /// Sequence length the model is trained for (saved as textcnn.seq_len): callers cut their
  /// inputs to at most this many tokens. forward() accepts any length >= the widest kernel
  /// (shorter sequences must be padded by the caller).
  int64_t seq_len = 256;
  int64_t filters = 100;
  std::vector<int64_t> kernel_sizes = {2, 3, 4};
  int64_t classes = 2;
  float dropout = 0.2f;
  uint64_t seed = 1;
  adam_params adam;
};

class textcnn {
public:
  textcnn(textcnn&&) noexcept;
  textcnn& operator=(textcnn&&) noexcept;
  ~textcnn();

  /// A model with weights drawn from cfg.seed. Errors: errc::invalid_argument naming the
  /// bad field (sizes < 1 or absurdly large, dropout outside [0, 1), classes < 2).
  static caf::expected<textcnn> create(const textcnn_config& cfg,
                                       std::shared_ptr<backend> be = nullptr);

  /// Class probabilities [batch, classes] for tokens i32 [batch, len] (no dropout).
  /// Errors: errc::invalid_argument for a token outside the vocabulary or a sequence
  /// shorter than the widest kernel.
  caf::expected<tensor> forward(const tensor& tokens);
  /// The same for rows of their own lengths (`lengths`, one per row, each from the widest
  /// kernel to len; null = every row is len long): row b is its first lengths[b] tokens,
  /// and what follows them (padding) reaches neither its output nor, in the passes below,
  /// the gradients; a row's result is then the one it gets alone, unpadded. The fused
  /// conv1d_max op takes the lengths; unfused backends get the windows past them masked
  /// (on the host). Errors: errc::invalid_argument for a wrong count or a length out of range.
  caf::expected<tensor> forward(const tensor& tokens, const std::vector<int64_t>* lengths);

  /// forward() on a row-major vector of batch * len ids; probabilities row-major.
  caf::expected<std::vector<float>> predict(const std::vector<int32_t>& tokens, int64_t batch,
                                            const std::vector<int64_t>* lengths = nullptr);

  /// One training step: forward with dropout, cross-entropy against labels i32 [batch] in
  /// 0..classes-1, backward, Adam update. Returns the mean loss before the update.
  caf::expected<float> train_step(const tensor& tokens, const tensor& labels);
  /// The same with per-sample loss weights (`weights`, one per row, >= 0, not all 0; null =
  /// all equal): the step follows the weighted mean loss sum(w_b * loss_b) / sum(w), so that
  /// some samples (augmented ones, say) count less. The returned loss is the plain mean.
  /// `lengths` (null = whole rows): each row's own length, as forward() takes them, so that
  /// a row's loss and gradient do not depend on how far its batch was padded. Errors:
  /// errc::invalid_argument for a wrong count or a negative or non-finite weight, or bad
  /// lengths.
  caf::expected<float> train_step(const tensor& tokens, const tensor& labels,
                                  const std::vector<float>* weights,
                                  const std::vector<int64_t>* lengths = nullptr);
  caf::expected<float> train_step(const std::vector<int32_t>& tokens,
                                  const std::vector<int32_t>& labels,
                                  const std::vector<float>* weights = nullptr,
                                  const std::vector<int64_t>* lengths = nullptr);

  /// Forward and backward without updating: fills gradients(); returns the mean loss.
  /// `train` applies dropout (seeded by the step counter). `lengths` as train_step. Used by
  /// train_step and by gradient checks.
  caf::expected<float> loss_and_gradients(const tensor& tokens, const tensor& labels, bool train,
                                          const std::vector<int64_t>* lengths = nullptr);

  /// Named parameters and their gradients (same order, same shapes). The mutable form counts
  /// as a change of the weights (see weights_version()).
  std::vector<std::pair<std::string, tensor*>> parameters();
  std::vector<std::pair<std::string, const tensor*>> parameters() const;
  std::vector<std::pair<std::string, tensor*>> gradients();

  /// A number that changes whenever the weights may have changed (a training step,
  /// copy_weights_from, the mutable parameters(), weights_changed()); never the same for two
  /// models. Engines that cache something derived from the weights compare it.
  uint64_t weights_version() const;
  /// Call after writing through pointers from parameters() obtained earlier.
  void weights_changed();

  /// Sets the sequence length the model is trained for (config().seq_len). Errors:
  /// errc::invalid_argument for a length outside widest kernel..2^20.
  caf::error set_seq_len(int64_t seq_len);

  /// Sets Adam's learning rate for the next steps (config().adam.lr; a schedule lowers it
  /// during training). Errors: errc::invalid_argument for a rate that is not positive.
  caf::error set_learning_rate(float lr);

  /// Weights as safetensors bytes / file, with the config and `metadata` in the header.
  caf::expected<std::string> to_bytes(const std::map<std::string, std::string>& metadata = {});
  caf::error save(const std::string& path, const std::map<std::string, std::string>& metadata = {});

  /// A model from to_bytes()/save() output; `metadata` (optional) receives the header's
  /// metadata. Errors: errc::corrupt_data / errc::bad_model naming what does not fit (a
  /// missing tensor or textcnn.* key, a shape, a non-finite weight). textcnn.learning_rate
  /// may be absent (files before it was saved): the default Adam rate.
  static caf::expected<textcnn> from_bytes(std::string_view bytes,
                                           std::shared_ptr<backend> be = nullptr,
                                           std::map<std::string, std::string>* metadata = nullptr);
  static caf::expected<textcnn> load(const std::string& path, std::shared_ptr<backend> be = nullptr,
                                     std::map<std::string, std::string>* metadata = nullptr);
  /// The same from an already decoded file (a caller that looks at the metadata first).
  static caf::expected<textcnn> from_safetensors(
    safetensors_file file, std::shared_ptr<backend> be = nullptr,
    std::map<std::string, std::string>* metadata = nullptr);

  /// Copies the weights of a model of the same config (e.g. the best epoch).
  caf::error copy_weights_from(textcnn& other);

  const textcnn_config& config() const;
  backend& backend_used();
  /// Adam steps taken.
  int64_t steps() const;

  /// Multiply-adds x 2 of one forward pass over batch x len tokens (for GFLOP/s).
  double forward_flops(int64_t batch, int64_t len) const;

private:
  textcnn();
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace comb::kernels
