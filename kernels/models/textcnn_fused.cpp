// comb::kernels::textcnn_fused: the vocabulary table of tap outputs (one OpenBLAS sgemm per
// set of weights), then per sample a tap-sum of table rows, bias, max over time and ReLU, and
// the dense layer and softmax. See textcnn_fused.hpp.
#include "kernels/models/textcnn_fused.hpp"

#include "kernels/detail/cpu_pool.hpp"
#include "kernels/detail/blas.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <utility>

namespace comb::kernels {

namespace {

/// The largest table (floats) the engine builds: 8 GiB.
constexpr int64_t max_table_floats = int64_t{1} << 31;

/// Samples per chunk of the CPU pool (smaller batches run on the caller alone).
constexpr int64_t samples_per_chunk = 8;

caf::expected<tensor> on_host(const tensor& t) {
  if (t.device() == device::cpu)
    return t;
  return t.to(device::cpu);
}

} // namespace

struct textcnn_fused::impl {
  /// weights_version() of the model the table was built from (0: none yet).
  uint64_t version = 0;
  int64_t vocab = 0;
  int64_t filters = 0;
  int64_t classes = 0;
  std::vector<int64_t> kernels;
  /// Columns of the table: all taps of all kernel sizes, `filters` each.
  int64_t n = 0;
  /// vocab x n: row id = embedding(id) x (every tap's weights), tap j of kernel size c at
  /// column off(c) + j * filters.
  std::vector<float> table;
  std::vector<float> conv_b;  // C * filters, the kernel sizes' biases concatenated
  std::vector<float> dense_w; // C * filters x classes
  std::vector<float> dense_b; // classes
  std::vector<float> pooled;  // batch x C * filters, after max and ReLU

  caf::error refresh(const textcnn& m) {
    if (version == m.weights_version())
      return {};
    auto& c = m.config();
    auto ps = m.parameters();
    const auto nk = c.kernel_sizes.size();
    std::vector<tensor> host;
    for (auto& [name, t] : ps) {
      auto h = on_host(*t);
      if (!h)
        return h.error();
      host.push_back(std::move(*h));
    }
    int64_t taps = 0;
    for (auto k : c.kernel_sizes)
      taps += k;
    const int64_t E = c.embed, F = c.filters, N = taps * F;
    if (c.vocab * N > max_table_floats)
      return make_error(errc::invalid_argument,
                        "textcnn_fused: the tap table of vocab " + std::to_string(c.vocab) + " x "
                          + std::to_string(N) + " outputs is too large; use forward()");
    // Pack all taps: w_all[d][off + j*F + f] = conv<k>.weight[j][d][f].
    std::vector<float> w_all(static_cast<size_t>(E * N));
    int64_t off = 0;
    for (size_t i = 0; i < nk; ++i) {
      int64_t k = c.kernel_sizes[i];
      const float* w = host[1 + 2 * i].data<float>();
      for (int64_t j = 0; j < k; ++j)
        for (int64_t d = 0; d < E; ++d)
          std::memcpy(&w_all[static_cast<size_t>(d * N + off + j * F)], &w[(j * E + d) * F],
                      sizeof(float) * static_cast<size_t>(F));
      off += k * F;
    }
    table.resize(static_cast<size_t>(c.vocab * N));
    detail::sgemm(/*trans_a=*/false, /*trans_b=*/false, c.vocab, N, E, 1.0f, host[0].data<float>(),
                  E, w_all.data(), N, 0.0f, table.data(), N);
    conv_b.clear();
    for (size_t i = 0; i < nk; ++i) {
      const float* b = host[2 + 2 * i].data<float>();
      conv_b.insert(conv_b.end(), b, b + F);
    }
    const auto& dw = host[1 + 2 * nk];
    const auto& db = host[2 + 2 * nk];
    dense_w.assign(dw.data<float>(), dw.data<float>() + dw.numel());
    dense_b.assign(db.data<float>(), db.data<float>() + db.numel());
    vocab = c.vocab;
    filters = F;
    classes = c.classes;
    kernels = c.kernel_sizes;
    n = N;
    version = m.weights_version();
    return {};
  }

  /// Convolutions + bias + max over time + ReLU of sample b (its first `valid` tokens of a
  /// row of `len`) into pooled (row b).
  void pool(const int32_t* tokens, int64_t b, int64_t len, int64_t valid) {
    const int64_t F = filters;
    const int64_t CF = static_cast<int64_t>(kernels.size()) * F;
    const int32_t* tk = tokens + b * len;
    auto row = [&](int64_t t) { return &table[static_cast<size_t>(tk[t]) * n]; };
    thread_local std::vector<float> best, h;
    best.resize(static_cast<size_t>(F));
    h.resize(static_cast<size_t>(F));
    float* __restrict hp = h.data();
    float* __restrict bp = best.data();
    int64_t off = 0;
    for (size_t c = 0; c < kernels.size(); ++c) {
      int64_t k = kernels[c];
      const float* bias = &conv_b[c * static_cast<size_t>(F)];
      std::fill(best.begin(), best.end(), -std::numeric_limits<float>::infinity());
      for (int64_t t = 0; t + k <= valid; ++t) {
        // h = bias + sum over taps, one simple (vectorised) pass per tap.
        const float* __restrict r0 = row(t) + off;
        for (int64_t f = 0; f < F; ++f)
          hp[f] = bias[f] + r0[f];
        for (int64_t j = 1; j < k; ++j) {
          const float* __restrict rj = row(t + j) + off + j * F;
          for (int64_t f = 0; f < F; ++f)
            hp[f] += rj[f];
        }
        for (int64_t f = 0; f < F; ++f)
          bp[f] = hp[f] > bp[f] ? hp[f] : bp[f];
      }
      float* out = &pooled[static_cast<size_t>(b * CF + static_cast<int64_t>(c) * F)];
      for (int64_t f = 0; f < F; ++f)
        out[f] = std::max(bp[f], 0.0f); // ReLU commutes with max
      off += k * F;
    }
  }
};

textcnn_fused::textcnn_fused() : impl_(std::make_unique<impl>()) {
}
textcnn_fused::textcnn_fused(textcnn_fused&&) noexcept = default;
textcnn_fused& textcnn_fused::operator=(textcnn_fused&&) noexcept = default;
textcnn_fused::~textcnn_fused() = default;

caf::error textcnn_fused::forward(const textcnn& model, const int32_t* tokens, int64_t batch,
                                  int64_t len, std::vector<float>& probs) {
  return forward(model, tokens, batch, len, /*lengths=*/nullptr, probs);
}

caf::error textcnn_fused::forward(const textcnn& model, const int32_t* tokens, int64_t batch,
                                  int64_t len, const int64_t* lengths, std::vector<float>& probs) {
  auto& c = model.config();
  if (batch < 1 || len < 1)
    return make_error(errc::invalid_argument, "textcnn_fused: empty batch (" + std::to_string(batch)
                                                + " x " + std::to_string(len) + ")");
  auto widest = *std::max_element(c.kernel_sizes.begin(), c.kernel_sizes.end());
  if (len < widest)
    return make_error(errc::invalid_argument,
                      "textcnn_fused: sequence length " + std::to_string(len)
                        + " is shorter than kernel size " + std::to_string(widest));
  if (lengths)
    for (int64_t b = 0; b < batch; ++b)
      if (lengths[b] < widest || lengths[b] > len)
        return make_error(errc::invalid_argument, "textcnn_fused: row " + std::to_string(b)
                                                    + " has length " + std::to_string(lengths[b])
                                                    + ", outside " + std::to_string(widest) + ".."
                                                    + std::to_string(len));
  for (int64_t i = 0; i < batch * len; ++i)
    if (tokens[i] < 0 || tokens[i] >= c.vocab)
      return make_error(errc::invalid_argument, "textcnn_fused: token " + std::to_string(tokens[i])
                                                  + " at position " + std::to_string(i)
                                                  + " is outside the vocabulary 0.."
                                                  + std::to_string(c.vocab - 1));
  auto& im = *impl_;
  if (auto err = im.refresh(model))
    return err;
  const int64_t CF = static_cast<int64_t>(im.kernels.size()) * im.filters;
  const int64_t K = im.classes;
  im.pooled.resize(static_cast<size_t>(batch * CF));
  detail::parallel_range(batch, samples_per_chunk, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b)
      im.pool(tokens, b, len, lengths ? lengths[b] : len);
  });
  // Dense and softmax.
  probs.resize(static_cast<size_t>(batch * K));
  std::vector<float> logits(static_cast<size_t>(K));
  for (int64_t b = 0; b < batch; ++b) {
    const float* z = &im.pooled[static_cast<size_t>(b * CF)];
    std::copy(im.dense_b.begin(), im.dense_b.end(), logits.begin());
    for (int64_t i = 0; i < CF; ++i) {
      const float* w = &im.dense_w[static_cast<size_t>(i * K)];
      for (int64_t k = 0; k < K; ++k)
        logits[static_cast<size_t>(k)] += z[i] * w[k];
    }
    float m = *std::max_element(logits.begin(), logits.end());
    float sum = 0;
    float* p = &probs[static_cast<size_t>(b * K)];
    for (int64_t k = 0; k < K; ++k)
      sum += p[k] = std::exp(logits[static_cast<size_t>(k)] - m);
    for (int64_t k = 0; k < K; ++k)
      p[k] /= sum;
  }
  return {};
}

caf::expected<std::vector<float>> textcnn_fused::predict(const textcnn& model,
                                                         const std::vector<int32_t>& tokens,
                                                         int64_t batch) {
  if (batch < 1 || tokens.size() % static_cast<size_t>(batch) != 0)
    return make_error(errc::invalid_argument,
                      "textcnn_fused::predict: " + std::to_string(tokens.size())
                        + " token ids do not split into " + std::to_string(batch) + " rows");
  std::vector<float> probs;
  if (auto err = forward(model, tokens.data(), batch, static_cast<int64_t>(tokens.size()) / batch,
                         probs))
    return err;
  return probs;
}

} // namespace comb::kernels
