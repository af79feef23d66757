// comb::anomaly::textcnn_classifier: the paper's TextCNN (embedding; 1D convolutions with
// kernel sizes 2, 3, 4 and 100 filters each, ReLU; max over time; dropout 0.2; dense;
// softmax over {normal, anomalous}) trained with Adam, as the detector uses it: batches of
// padded token ids in, probabilities of "anomalous" out, weights to and from safetensors
// bytes (same tensor names and layout for both engines). Two engines:
//  - "fused" (default): apps/anomaly/detail/textcnn_cpu, one OpenBLAS sgemm for all kernel
//    taps, fused tap-sum/ReLU/max, and a backward pass that follows only the arg-max windows;
//  - "kernels": comb::kernels::textcnn (kernels/models/textcnn.hpp) through its backend
//    registry, so it runs on the CUDA backend where one is built and a device answers.
// Owned by one detector or trainer; not thread-safe (training and scratch buffers mutate).
#pragma once

#include <caf/expected.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace comb::anomaly {

/// Shape and optimiser settings of the model.
struct textcnn_options {
  int vocab = 8192;
  int embed = 64;
  std::vector<int> kernel_sizes = {2, 3, 4};
  int filters = 100;
  float dropout = 0.2f;
  float learning_rate = 1e-3f;
  uint64_t seed = 1;
  /// "fused" (anomaly's CPU implementation) or "kernels" (comb::kernels::textcnn).
  std::string engine = "fused";
  /// With the "kernels" engine: run on the CUDA backend when one is built and answers.
  bool prefer_gpu = true;
};

class textcnn_classifier {
public:
  ~textcnn_classifier();
  textcnn_classifier(textcnn_classifier&&) noexcept;
  textcnn_classifier& operator=(textcnn_classifier&&) noexcept;

  /// A freshly initialised model (weights drawn from `opts.seed`). Errors:
  /// errc::invalid_argument for a bad shape.
  static caf::expected<textcnn_classifier> create(const textcnn_options& opts);

  /// One Adam step on a batch: `tokens` is batch x len ids (0 = padding), labels 0/1.
  /// Returns the mean cross-entropy before the step.
  caf::expected<float> train_step(const std::vector<int32_t>& tokens, int batch, int len,
                                  const std::vector<int32_t>& labels);

  /// Probability of "anomalous" for each row (inference: no dropout).
  caf::expected<std::vector<float>> predict(const std::vector<int32_t>& tokens, int batch,
                                            int len);

  /// Weights (and optimiser state when `with_optimizer`) as safetensors bytes, with
  /// `metadata` in the header's __metadata__.
  caf::expected<std::string> save(const std::map<std::string, std::string>& metadata) const;

  /// Reads a model written by `save`; `metadata` receives the header's __metadata__.
  static caf::expected<textcnn_classifier> load(const std::string& bytes,
                                                std::map<std::string, std::string>* metadata);

  /// Copies the weights of `other` (same shape) into this model, e.g. to keep the best
  /// epoch during early stopping.
  caf::error copy_weights_from(const textcnn_classifier& other);

  const textcnn_options& options() const;

  /// "fused/cpu", or "kernels/<backend name>".
  std::string backend() const;

private:
  textcnn_classifier();
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace comb::anomaly
