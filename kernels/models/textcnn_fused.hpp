// comb::kernels::textcnn_fused: the fast CPU inference engine of comb::kernels::textcnn
// (the HTTP anomaly detector scores with it). A convolution over embeddings is a sum over its
// taps of (embedding x tap weights), which depends on the token alone; so the tap outputs of
// the whole vocabulary are computed once per set of weights (one sgemm, vocab x embed x
// taps*filters) and each position adds rows of that table: about 100x fewer FLOPs than
// running the convolutions, the same numbers up to rounding. Then bias, max over time, ReLU,
// dense and softmax, as textcnn::forward() does op by op. The table is rebuilt when the
// model's weights_version() changes. An engine is owned by one user (table and scratch are
// members) and is not thread-safe; the samples of a batch are split over the CPU pool.
#pragma once

#include "kernels/models/textcnn.hpp"

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include <cstdint>
#include <memory>
#include <vector>

namespace comb::kernels {

class textcnn_fused {
public:
  textcnn_fused();
  textcnn_fused(textcnn_fused&&) noexcept;
  textcnn_fused& operator=(textcnn_fused&&) noexcept;
  ~textcnn_fused();

  /// Class probabilities of `model`, row-major [batch, classes], for the token ids
  /// `tokens` (row-major [batch, len]), no dropout. Errors: errc::invalid_argument for an
  /// empty batch, a sequence shorter than the widest kernel, a token outside the vocabulary.
  caf::error forward(const textcnn& model, const int32_t* tokens, int64_t batch, int64_t len,
                     std::vector<float>& probs);

  /// forward() on rows of their own lengths: row b holds `lengths[b]` tokens (in [widest
  /// kernel, len]) followed by padding that is never read, so its probabilities are those of
  /// its first lengths[b] tokens scored alone, whatever the other rows' lengths (padding
  /// would otherwise enter the convolution windows and the max over time). Errors: those of
  /// forward(), and errc::invalid_argument for a length out of range.
  caf::error forward(const textcnn& model, const int32_t* tokens, int64_t batch, int64_t len,
                     const int64_t* lengths, std::vector<float>& probs);

  /// forward() on a row-major vector of batch * len ids.
  caf::expected<std::vector<float>> predict(const textcnn& model,
                                            const std::vector<int32_t>& tokens, int64_t batch);

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace comb::kernels
