// comb::anomaly::detail::textcnn_cpu: the TextCNN's numbers and its CPU forward/backward
// pass and Adam update, behind textcnn_classifier. Convolutions run as one OpenBLAS sgemm per
// chunk of samples (embeddings x all kernel taps), then a fused tap-sum, bias, ReLU and
// max-over-time; the backward pass follows only each filter's arg-max window (the gradient
// of max-pooling is zero elsewhere). Owned by one classifier; not thread-safe.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace comb::anomaly::detail {

struct textcnn_shape {
  int vocab = 0;
  int embed = 0;
  std::vector<int> kernels;
  int filters = 0;
  float dropout = 0;
};

/// Parameters (or gradients, or Adam moments: same layout).
/// emb: vocab x embed. conv_w[c]: kernels[c] x embed x filters (tap, input, filter).
/// conv_b[c]: filters. dense_w: (kernels.size() * filters) x 2. dense_b: 2.
struct textcnn_params {
  std::vector<float> emb;
  std::vector<std::vector<float>> conv_w;
  std::vector<std::vector<float>> conv_b;
  std::vector<float> dense_w;
  std::vector<float> dense_b;

  /// Same layout as `shape`, zero-filled.
  static textcnn_params zeros(const textcnn_shape& shape);
  /// Calls f(pointer, count) for each tensor in a fixed order.
  template <class F>
  void each(F&& f) {
    f(emb.data(), emb.size());
    for (auto& w : conv_w)
      f(w.data(), w.size());
    for (auto& b : conv_b)
      f(b.data(), b.size());
    f(dense_w.data(), dense_w.size());
    f(dense_b.data(), dense_b.size());
  }
};

class textcnn_cpu {
public:
  textcnn_cpu(textcnn_shape shape, uint64_t seed);

  /// PyTorch-style initialisation: embeddings N(0, 1) (padding row 0), convolution and dense
  /// weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
  void init(uint64_t seed);

  /// Forward pass; fills `probs` (batch x 2, softmax). With `train`, applies dropout and
  /// keeps what backward needs. Returns the mean cross-entropy when `labels` is given.
  float forward(const int32_t* tokens, int batch, int len, const int32_t* labels, bool train,
                std::vector<float>& probs);

  /// Gradients of the last training forward's mean cross-entropy into `grad` (overwritten).
  void backward(const int32_t* tokens, int batch, int len, const int32_t* labels,
                textcnn_params& grad);

  /// One Adam step (beta1 0.9, beta2 0.999, eps 1e-8) with `grad`.
  void adam_step(const textcnn_params& grad, float lr);

  /// Mutable access marks the packed convolution weights stale.
  textcnn_params& params() {
    w_all_stale_ = true;
    return p_;
  }
  const textcnn_params& params() const {
    return p_;
  }
  const textcnn_shape& shape() const {
    return shape_;
  }

private:
  void pack_taps();
  void train_forward(const int32_t* tokens, int batch, int len);
  void infer_forward(const int32_t* tokens, int batch, int len);
  /// Convolutions + bias + ReLU + max over time of sample b into pooled_ / arg_, from the
  /// tap outputs of its positions (gb), or from the vocabulary table when gb is null.
  void pool_from_rows(const int32_t* tokens, int b, int len, const float* gb);

  textcnn_shape shape_;
  textcnn_params p_;
  textcnn_params m_;
  textcnn_params v_;
  int64_t step_ = 0;
  std::mt19937_64 rng_;
  // Scratch of the last forward.
  std::vector<float> e_;       // gathered embeddings, batch*len x embed
  std::vector<float> w_all_;   // embed x (sum_c k_c * filters), packed from conv_w
  bool w_all_stale_ = true;    // set when conv_w changes (Adam step, params() access)
  std::vector<float> table_;   // inference: vocab x (sum_c k_c * filters) = emb x w_all
  bool table_stale_ = true;    // set when w_all_ is repacked
  std::vector<float> g_;       // chunk rows x (sum_c k_c * filters)
  std::vector<float> pooled_;  // batch x (C * filters), after ReLU and max
  std::vector<int32_t> arg_;   // batch x (C * filters): arg-max window start
  std::vector<float> z_;       // pooled after dropout
  std::vector<float> mask_;    // dropout scale per feature (0 or 1/(1-p))
  std::vector<float> probs_;
};

} // namespace comb::anomaly::detail
