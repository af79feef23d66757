// comb::anomaly::textcnn_classifier: the paper's TextCNN (embedding; 1D convolutions with
// kernel sizes 2, 3, 4 and 100 filters each, ReLU; max over time; dropout 0.2; dense;
// softmax over {normal, anomalous}) trained with Adam, as the detector uses it: batches of
// padded token ids in, probabilities of "anomalous" out, weights to and from safetensors
// bytes. The model is comb::kernels::textcnn (kernels/models/textcnn.hpp), which trains; the
// engine says where it runs and how it scores:
//  - "fused" (default): the CPU backend, scoring with comb::kernels::textcnn_fused (a
//    per-vocabulary table of convolution tap outputs instead of the convolutions);
//  - "kernels": the backend registry's choice (CUDA where one is built and a device
//    answers), scoring op by op with textcnn::forward().
// The model also carries the sequence length it is trained for (seq_len(), saved with the
// weights as textcnn.seq_len). Owned by one detector or trainer; not thread-safe (training
// and scratch buffers mutate).
#pragma once

#include <caf/expected.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace comb::kernels {
class backend;
} // namespace comb::kernels

namespace comb::anomaly {

/// Shape and optimiser settings of the model.
struct textcnn_options {
  static constexpr int default_seq_len = 512;

  int vocab = 8192;
  int embed = 64;
  std::vector<int> kernel_sizes = {2, 3, 4};
  int filters = 100;
  float dropout = 0.2f;
  float learning_rate = 1e-3f;
  uint64_t seed = 1;
  /// The sequence length the model is trained for: requests are cut to at most this many
  /// tokens (textcnn_classifier::seq_len(), saved with the weights).
  int seq_len = default_seq_len;
  /// "fused" (CPU, scoring through comb::kernels::textcnn_fused) or "kernels" (scoring op by
  /// op on the backend registry's choice).
  std::string engine = "fused";
  /// With the "kernels" engine: run on the CUDA backend when one is built and answers.
  bool prefer_gpu = true;
};

class textcnn_classifier {
public:
  /// The sequence length of a model file that does not say (files before one TextCNN).
  static constexpr int default_seq_len = textcnn_options::default_seq_len;

  ~textcnn_classifier();
  textcnn_classifier(textcnn_classifier&&) noexcept;
  textcnn_classifier& operator=(textcnn_classifier&&) noexcept;

  /// A freshly initialised model (weights drawn from `opts.seed`), trained for sequences of
  /// `opts.seq_len`. Errors: errc::invalid_argument for a bad shape, length or engine.
  static caf::expected<textcnn_classifier> create(const textcnn_options& opts);

  /// One Adam step on a batch: `tokens` is batch x len ids (0 = padding), labels 0/1.
  /// Returns the mean cross-entropy before the step. `weights` (one per row, or null):
  /// per-sample loss weights (kernels::textcnn::train_step). `lengths` (one per row, each
  /// from the widest kernel to len, or null = all len): row b is its first lengths[b]
  /// tokens, and the padding after them reaches neither its output nor the gradients, so
  /// that a row trains as it would alone (and as predict() with lengths scores it).
  caf::expected<float> train_step(const std::vector<int32_t>& tokens, int batch, int len,
                                  const std::vector<int32_t>& labels,
                                  const std::vector<float>* weights = nullptr,
                                  const std::vector<int64_t>* lengths = nullptr);

  /// Probability of "anomalous" for each row (inference: no dropout).
  caf::expected<std::vector<float>> predict(const std::vector<int32_t>& tokens, int batch, int len);

  /// predict() on rows of their own lengths: row b is its first lengths[b] tokens (at least
  /// the widest kernel), the rest padding that does not change its score (either engine:
  /// the "kernels" one through kernels::textcnn's row lengths). Errors:
  /// errc::invalid_argument for a wrong count or a length outside widest kernel..len.
  caf::expected<std::vector<float>> predict(const std::vector<int32_t>& tokens, int batch, int len,
                                            const std::vector<int64_t>& lengths);

  /// Weights as safetensors bytes (comb::kernels::textcnn's form, plus "anomaly.engine"),
  /// with `metadata` in the header's __metadata__.
  caf::expected<std::string> save(const std::map<std::string, std::string>& metadata) const;

  /// Reads a model written by `save`, or by Comb before one TextCNN (those files lack some
  /// textcnn.* keys: a file without "anomaly.engine" is a "fused" one, two classes; without
  /// textcnn.seq_len it gets default_seq_len, and a detector file's own setting replaces
  /// that, see detector::deserialize; textcnn.learning_rate falls back to
  /// "anomaly.learning_rate"). `metadata` receives the header's __metadata__ as stored.
  /// With `on`, the model runs there whatever engine the file names: the "fused" engine
  /// when `on` is the CPU backend, the "kernels" engine on `on` otherwise (e.g. a CUDA
  /// backend). Errors: errc::corrupt_data / errc::bad_model naming what does not fit.
  static caf::expected<textcnn_classifier> load(const std::string& bytes,
                                                std::map<std::string, std::string>* metadata,
                                                std::shared_ptr<kernels::backend> on = nullptr);

  /// Copies the weights of `other` (same shape) into this model, e.g. to keep the best
  /// epoch during early stopping.
  caf::error copy_weights_from(const textcnn_classifier& other);

  const textcnn_options& options() const;

  /// The sequence length the model is trained for: inputs are cut to at most this many
  /// tokens (saved with the weights).
  int seq_len() const;
  /// Errors: errc::invalid_argument for a length below the widest kernel or above 2^20.
  caf::error set_seq_len(int seq_len);

  /// Adam's learning rate for the next train_step calls (options().learning_rate, saved
  /// with the weights). Errors: errc::invalid_argument for a rate that is not positive.
  caf::error set_learning_rate(float lr);

  /// "fused/cpu", or "kernels/<backend name>".
  std::string backend() const;

private:
  textcnn_classifier();
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace comb::anomaly
