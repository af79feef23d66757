// CPU forward/backward/Adam of the TextCNN (see textcnn_cpu.hpp).
#include "apps/anomaly/detail/textcnn_cpu.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <thread>

namespace comb::anomaly::detail {

textcnn_params textcnn_params::zeros(const textcnn_shape& s) {
  textcnn_params p;
  p.emb.assign(static_cast<size_t>(s.vocab) * s.embed, 0.0f);
  for (int k : s.kernels) {
    p.conv_w.emplace_back(static_cast<size_t>(k) * s.embed * s.filters, 0.0f);
    p.conv_b.emplace_back(static_cast<size_t>(s.filters), 0.0f);
  }
  p.dense_w.assign(s.kernels.size() * s.filters * 2, 0.0f);
  p.dense_b.assign(2, 0.0f);
  return p;
}

textcnn_cpu::textcnn_cpu(textcnn_shape shape, uint64_t seed)
  : shape_(std::move(shape)), rng_(seed ^ 0x5DEECE66Dull) {
  p_ = textcnn_params::zeros(shape_);
  m_ = textcnn_params::zeros(shape_);
  v_ = textcnn_params::zeros(shape_);
  init(seed);
}

void textcnn_cpu::init(uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (auto& x : p_.emb)
    x = normal(rng);
  std::fill(p_.emb.begin(), p_.emb.begin() + shape_.embed, 0.0f); // padding row
  for (size_t c = 0; c < shape_.kernels.size(); ++c) {
    float bound = 1.0f / std::sqrt(static_cast<float>(shape_.kernels[c] * shape_.embed));
    std::uniform_real_distribution<float> u(-bound, bound);
    for (auto& x : p_.conv_w[c])
      x = u(rng);
    for (auto& x : p_.conv_b[c])
      x = u(rng);
  }
  float bound = 1.0f / std::sqrt(static_cast<float>(p_.dense_w.size() / 2));
  std::uniform_real_distribution<float> u(-bound, bound);
  for (auto& x : p_.dense_w)
    x = u(rng);
  for (auto& x : p_.dense_b)
    x = u(rng);
}

void textcnn_cpu::pack_taps() {
  const int D = shape_.embed;
  const int F = shape_.filters;
  const int C = static_cast<int>(shape_.kernels.size());
  int taps = 0;
  for (int k : shape_.kernels)
    taps += k;
  const int N = taps * F;
  if (!w_all_stale_ && w_all_.size() == static_cast<size_t>(D) * N)
    return;
  // Pack all taps: w_all[d][off + j*F + f] = conv_w[c][j][d][f].
  w_all_.resize(static_cast<size_t>(D) * N);
  w_all_stale_ = false;
  table_stale_ = true;
  int off = 0;
  for (int c = 0; c < C; ++c) {
    int k = shape_.kernels[c];
    for (int j = 0; j < k; ++j)
      for (int d = 0; d < D; ++d)
        std::memcpy(&w_all_[static_cast<size_t>(d) * N + off + j * F],
                    &p_.conv_w[c][(static_cast<size_t>(j) * D + d) * F], sizeof(float) * F);
    off += k * F;
  }
}

void textcnn_cpu::pool_from_rows(const int32_t* tokens, int b, int len, const float* gb) {
  // Row t of the per-position tap outputs, G[t] = emb(token t) x w_all: computed for this
  // batch (gb), or, with gb null, looked up in the vocabulary table (row = token id).
  const int F = shape_.filters;
  const int C = static_cast<int>(shape_.kernels.size());
  const int CF = C * F;
  const int N = static_cast<int>(w_all_.size()) / shape_.embed;
  auto row = [&](int t) -> const float* {
    if (gb)
      return gb + static_cast<size_t>(t) * N;
    int32_t id = tokens[static_cast<size_t>(b) * len + t];
    if (id < 0 || id >= shape_.vocab)
      id = 0;
    return &table_[static_cast<size_t>(id) * N];
  };
  thread_local std::vector<float> best, h;
  thread_local std::vector<int32_t> barg;
  best.resize(static_cast<size_t>(F));
  h.resize(static_cast<size_t>(F));
  barg.resize(static_cast<size_t>(F));
  float* __restrict hp = h.data();
  float* __restrict bp = best.data();
  int32_t* __restrict ap = barg.data();
  int off = 0;
  for (int c = 0; c < C; ++c) {
    int k = shape_.kernels[c];
    const float* bias = p_.conv_b[c].data();
    std::fill(best.begin(), best.end(), -std::numeric_limits<float>::infinity());
    std::fill(barg.begin(), barg.end(), 0);
    for (int t = 0; t + k <= len; ++t) {
      // h = bias + sum over taps, one simple (vectorised) pass per tap.
      const float* __restrict r0 = row(t) + off;
      for (int f = 0; f < F; ++f)
        hp[f] = bias[f] + r0[f];
      for (int j = 1; j < k; ++j) {
        const float* __restrict rj = row(t + j) + off + j * F;
        for (int f = 0; f < F; ++f)
          hp[f] += rj[f];
      }
      for (int f = 0; f < F; ++f) {
        bool better = hp[f] > bp[f];
        bp[f] = better ? hp[f] : bp[f];
        ap[f] = better ? t : ap[f];
      }
    }
    size_t base = static_cast<size_t>(b) * CF + static_cast<size_t>(c) * F;
    for (int f = 0; f < F; ++f) {
      pooled_[base + f] = std::max(best[f], 0.0f); // ReLU commutes with max
      arg_[base + f] = barg[f];
    }
    off += k * F;
  }
}

void textcnn_cpu::train_forward(const int32_t* tokens, int batch, int len) {
  const int D = shape_.embed;
  const int N = static_cast<int>(w_all_.size()) / D;
  // Gather embeddings (backward needs them).
  e_.resize(static_cast<size_t>(batch) * len * D);
  for (int64_t i = 0; i < static_cast<int64_t>(batch) * len; ++i) {
    int32_t t = tokens[i];
    if (t < 0 || t >= shape_.vocab)
      t = 0; // callers validate; never read outside the table
    std::memcpy(&e_[static_cast<size_t>(i) * D], &p_.emb[static_cast<size_t>(t) * D],
                sizeof(float) * D);
  }
  // Chunks of samples so that G stays in cache.
  int chunk = std::max(1, 1024 / std::max(len, 1));
  for (int s0 = 0; s0 < batch; s0 += chunk) {
    int cs = std::min(chunk, batch - s0);
    int rows = cs * len;
    g_.resize(static_cast<size_t>(rows) * N);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, N, D, 1.0f,
                &e_[static_cast<size_t>(s0) * len * D], D, w_all_.data(), N, 0.0f, g_.data(),
                N);
    for (int b = 0; b < cs; ++b)
      pool_from_rows(tokens, s0 + b, len, &g_[static_cast<size_t>(b) * len * N]);
  }
}

void textcnn_cpu::infer_forward(const int32_t* tokens, int batch, int len) {
  // A convolution over embeddings is a sum over taps of (embedding x tap weights), which
  // depends on the token alone. So the tap outputs of the whole vocabulary are computed once
  // per set of weights (one sgemm, vocab x embed x taps*filters) and each position adds table
  // rows: ~100x fewer FLOPs than an sgemm per position, the same numbers up to rounding.
  // Samples are split over the cores.
  const int D = shape_.embed;
  const int N = static_cast<int>(w_all_.size()) / D;
  if (table_stale_ || table_.size() != static_cast<size_t>(shape_.vocab) * N) {
    table_.resize(static_cast<size_t>(shape_.vocab) * N);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, shape_.vocab, N, D, 1.0f,
                p_.emb.data(), D, w_all_.data(), N, 0.0f, table_.data(), N);
    table_stale_ = false;
  }
  int workers = batch >= 16 ? static_cast<int>(std::max(1u, std::thread::hardware_concurrency()))
                            : 1;
  auto part = [&](int w) {
    for (int b = w; b < batch; b += workers)
      pool_from_rows(tokens, b, len, nullptr);
  };
  std::vector<std::thread> pool;
  for (int w = 1; w < workers; ++w)
    pool.emplace_back(part, w);
  part(0);
  for (auto& t : pool)
    t.join();
  e_.clear(); // backward needs a training forward
}

float textcnn_cpu::forward(const int32_t* tokens, int batch, int len, const int32_t* labels,
                           bool train, std::vector<float>& probs) {
  const int F = shape_.filters;
  const int C = static_cast<int>(shape_.kernels.size());
  const int CF = C * F;
  pack_taps();
  pooled_.assign(static_cast<size_t>(batch) * CF, 0.0f);
  arg_.assign(static_cast<size_t>(batch) * CF, 0);
  if (train)
    train_forward(tokens, batch, len);
  else
    infer_forward(tokens, batch, len);
  // Dropout.
  z_ = pooled_;
  mask_.assign(z_.size(), 1.0f);
  if (train && shape_.dropout > 0) {
    std::uniform_real_distribution<float> u(0.0f, 1.0f);
    float scale = 1.0f / (1.0f - shape_.dropout);
    for (size_t i = 0; i < z_.size(); ++i) {
      mask_[i] = u(rng_) < shape_.dropout ? 0.0f : scale;
      z_[i] *= mask_[i];
    }
  }
  // Dense and softmax.
  probs.resize(static_cast<size_t>(batch) * 2);
  double loss = 0;
  for (int b = 0; b < batch; ++b) {
    float l0 = p_.dense_b[0];
    float l1 = p_.dense_b[1];
    const float* z = &z_[static_cast<size_t>(b) * CF];
    for (int i = 0; i < CF; ++i) {
      l0 += z[i] * p_.dense_w[static_cast<size_t>(i) * 2];
      l1 += z[i] * p_.dense_w[static_cast<size_t>(i) * 2 + 1];
    }
    float m = std::max(l0, l1);
    float e0 = std::exp(l0 - m);
    float e1 = std::exp(l1 - m);
    float sum = e0 + e1;
    probs[static_cast<size_t>(b) * 2] = e0 / sum;
    probs[static_cast<size_t>(b) * 2 + 1] = e1 / sum;
    if (labels != nullptr) {
      float lt = labels[b] == 1 ? l1 : l0;
      loss += static_cast<double>(m + std::log(sum) - lt);
    }
  }
  probs_ = probs;
  return static_cast<float>(loss / std::max(batch, 1));
}

void textcnn_cpu::backward(const int32_t* tokens, int batch, int len, const int32_t* labels,
                           textcnn_params& grad) {
  const int D = shape_.embed;
  const int F = shape_.filters;
  const int C = static_cast<int>(shape_.kernels.size());
  const int CF = C * F;
  if (grad.emb.size() != p_.emb.size())
    grad = textcnn_params::zeros(shape_);
  else
    grad.each([](float* x, size_t n) { std::fill(x, x + n, 0.0f); });
  float inv_b = 1.0f / static_cast<float>(std::max(batch, 1));
  std::vector<float> dz(static_cast<size_t>(CF));
  std::vector<float> de(static_cast<size_t>(len) * D);
  for (int b = 0; b < batch; ++b) {
    float dl0 = (probs_[static_cast<size_t>(b) * 2] - (labels[b] == 0 ? 1.0f : 0.0f)) * inv_b;
    float dl1 = (probs_[static_cast<size_t>(b) * 2 + 1] - (labels[b] == 1 ? 1.0f : 0.0f)) * inv_b;
    grad.dense_b[0] += dl0;
    grad.dense_b[1] += dl1;
    const float* z = &z_[static_cast<size_t>(b) * CF];
    for (int i = 0; i < CF; ++i) {
      grad.dense_w[static_cast<size_t>(i) * 2] += z[i] * dl0;
      grad.dense_w[static_cast<size_t>(i) * 2 + 1] += z[i] * dl1;
      float dzi = p_.dense_w[static_cast<size_t>(i) * 2] * dl0
                  + p_.dense_w[static_cast<size_t>(i) * 2 + 1] * dl1;
      size_t at = static_cast<size_t>(b) * CF + i;
      // Through dropout and ReLU: only features whose max was positive carry gradient.
      dz[static_cast<size_t>(i)] = pooled_[at] > 0.0f ? dzi * mask_[at] : 0.0f;
    }
    std::fill(de.begin(), de.end(), 0.0f);
    const float* eb = &e_[static_cast<size_t>(b) * len * D];
    for (int c = 0; c < C; ++c) {
      int k = shape_.kernels[c];
      auto& gw = grad.conv_w[c];
      auto& w = p_.conv_w[c];
      for (int f = 0; f < F; ++f) {
        float g = dz[static_cast<size_t>(c) * F + f];
        if (g == 0.0f)
          continue;
        grad.conv_b[c][f] += g;
        int t = arg_[static_cast<size_t>(b) * CF + static_cast<size_t>(c) * F + f];
        for (int j = 0; j < k; ++j) {
          const float* x = eb + static_cast<size_t>(t + j) * D;
          float* dx = &de[static_cast<size_t>(t + j) * D];
          size_t wb = static_cast<size_t>(j) * D * F + f;
          for (int d = 0; d < D; ++d) {
            gw[wb + static_cast<size_t>(d) * F] += g * x[d];
            dx[d] += g * w[wb + static_cast<size_t>(d) * F];
          }
        }
      }
    }
    const int32_t* tk = tokens + static_cast<size_t>(b) * len;
    for (int t = 0; t < len; ++t) {
      int32_t id = tk[t];
      if (id <= 0 || id >= shape_.vocab)
        continue; // padding keeps a zero embedding
      float* ge = &grad.emb[static_cast<size_t>(id) * D];
      const float* d = &de[static_cast<size_t>(t) * D];
      for (int i = 0; i < D; ++i)
        ge[i] += d[i];
    }
  }
}

void textcnn_cpu::adam_step(const textcnn_params& grad, float lr) {
  ++step_;
  const float b1 = 0.9f;
  const float b2 = 0.999f;
  const float eps = 1e-8f;
  float c1 = 1.0f - std::pow(b1, static_cast<float>(step_));
  float c2 = 1.0f - std::pow(b2, static_cast<float>(step_));
  float step = lr / c1;
  float rc2 = 1.0f / std::sqrt(c2);
  auto upd = [&](float* p, float* m, float* v, const float* g, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      m[i] = b1 * m[i] + (1.0f - b1) * g[i];
      v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
      p[i] -= step * m[i] / (std::sqrt(v[i]) * rc2 + eps);
    }
  };
  w_all_stale_ = true;
  upd(p_.emb.data(), m_.emb.data(), v_.emb.data(), grad.emb.data(), p_.emb.size());
  for (size_t c = 0; c < p_.conv_w.size(); ++c) {
    upd(p_.conv_w[c].data(), m_.conv_w[c].data(), v_.conv_w[c].data(), grad.conv_w[c].data(),
        p_.conv_w[c].size());
    upd(p_.conv_b[c].data(), m_.conv_b[c].data(), v_.conv_b[c].data(), grad.conv_b[c].data(),
        p_.conv_b[c].size());
  }
  upd(p_.dense_w.data(), m_.dense_w.data(), v_.dense_w.data(), grad.dense_w.data(),
      p_.dense_w.size());
  upd(p_.dense_b.data(), m_.dense_b.data(), v_.dense_b.data(), grad.dense_b.data(),
      p_.dense_b.size());
  // Padding row stays zero (PyTorch padding_idx semantics).
  std::fill(p_.emb.begin(), p_.emb.begin() + shape_.embed, 0.0f);
}

} // namespace comb::anomaly::detail
