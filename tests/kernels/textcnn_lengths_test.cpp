// kernels.textcnn_lengths: padding-free TextCNN passes. Rows of a batch padded to its
// longest, given their own lengths, get the outputs, losses and gradients they get alone and
// unpadded, whatever the padding holds, on the fast CPU backend, on the reference backend
// and on a backend without the fused conv1d_max op (windows masked instead); without the
// lengths they do not (the padding reaches them). Training on such batches does not depend
// on how far they were padded. conv1d_max with lengths matches the reference and each row
// run alone. Bad lengths are refused.
#include "kernels/cpu_backend.hpp"
#include "kernels/models/textcnn.hpp"
#include "kernels/ops/conv1d_max.hpp"
#include "kernels/reference_backend.hpp"

#include "tests/kernels/kernel_check.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <utility>
#include <vector>

using namespace comb::kernels;
using namespace comb::kernels::test;

namespace {

/// The CPU backend without the fused op: the model runs conv1d, max_over_time, bias_act.
class unfused_cpu_backend : public cpu_backend {
public:
  std::string name() const override { return "cpu-unfused"; }
  bool supports(op o) const override {
    return o != op::conv1d_max && o != op::conv1d_max_backward && cpu_backend::supports(o);
  }
};

struct named_backend {
  const char* name;
  std::shared_ptr<backend> be;
};

std::vector<named_backend> host_backends() {
  return {{"cpu", std::make_shared<cpu_backend>()},
          {"reference", std::make_shared<reference_backend>()},
          {"cpu without conv1d_max", std::make_shared<unfused_cpu_backend>()}};
}

textcnn_config small_config(float dropout) {
  textcnn_config c;
  // 40 filters: the AVX-512 tiles take blocks of 16, so a partial block is covered too.
  c.vocab = 50, c.embed = 12, c.seq_len = 48, c.filters = 40, c.classes = 2;
  c.kernel_sizes = {2, 3, 5};
  c.dropout = dropout, c.seed = 9;
  c.adam.lr = 1e-2f;
  return c;
}

/// Rows of random tokens of the given lengths; the batch is padded to `len` with random
/// ids (not one pad id), so that padding that reached a row would show.
struct batch {
  std::vector<std::vector<int32_t>> rows;
  std::vector<int32_t> labels;
  std::vector<int64_t> lengths;
};

batch make_batch(const std::vector<int64_t>& lengths, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> tok(0, 49);
  batch b;
  for (size_t i = 0; i < lengths.size(); ++i) {
    std::vector<int32_t> r(static_cast<size_t>(lengths[i]));
    for (auto& t : r)
      t = tok(rng);
    b.rows.push_back(std::move(r));
    b.labels.push_back(static_cast<int32_t>(i % 2));
  }
  b.lengths = lengths;
  return b;
}

std::vector<int32_t> padded(const batch& b, int64_t len, uint64_t pad_seed) {
  std::mt19937_64 rng(pad_seed);
  std::uniform_int_distribution<int32_t> tok(0, 49);
  std::vector<int32_t> out;
  for (auto& r : b.rows) {
    out.insert(out.end(), r.begin(), r.end());
    for (int64_t t = static_cast<int64_t>(r.size()); t < len; ++t)
      out.push_back(tok(rng));
  }
  return out;
}

std::vector<std::vector<float>> grads_of(textcnn& m) {
  std::vector<std::vector<float>> g;
  for (auto& [name, t] : m.gradients()) {
    auto h = host(*t);
    g.emplace_back(h.data<float>(), h.data<float>() + h.numel());
  }
  return g;
}

std::vector<std::vector<float>> weights_of(textcnn& m) {
  std::vector<std::vector<float>> w;
  for (auto& [name, t] : std::as_const(m).parameters()) {
    auto h = host(*t);
    w.emplace_back(h.data<float>(), h.data<float>() + h.numel());
  }
  return w;
}

/// Largest |a - b| / (1e-3 + |b|) over all values.
double max_rel_diff(const std::vector<std::vector<float>>& a,
                    const std::vector<std::vector<float>>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i)
    for (size_t j = 0; j < a[i].size(); ++j)
      worst = std::max(worst, std::abs(static_cast<double>(a[i][j]) - b[i][j])
                                / (1e-3 + std::abs(static_cast<double>(b[i][j]))));
  return worst;
}

const std::vector<int64_t> row_lengths = {5, 9, 17, 31, 31, 6, 23};
constexpr int64_t padded_len = 44;

} // namespace

TEST_SUITE("kernels.textcnn_lengths") {
  TEST_CASE("a row's output, loss and gradients in a padded batch are those it gets alone") {
    auto b = make_batch(row_lengths, 1);
    const auto n = static_cast<int64_t>(b.rows.size());
    for (auto& [name, be] : host_backends()) {
      CAPTURE(name);
      auto m = textcnn::create(small_config(0), be);
      REQUIRE(m);
      // Each row alone, unpadded: the batch's mean loss has the mean of their gradients.
      std::vector<std::vector<float>> mean_grads;
      double mean_loss = 0;
      std::vector<float> alone_probs;
      for (int64_t i = 0; i < n; ++i) {
        auto& r = b.rows[static_cast<size_t>(i)];
        auto t = *tensor::from({1, static_cast<int64_t>(r.size())}, r);
        auto l = *tensor::from({1}, std::vector<int32_t>{b.labels[static_cast<size_t>(i)]});
        auto loss = m->loss_and_gradients(t, l, /*train=*/false);
        REQUIRE(loss);
        mean_loss += *loss / static_cast<double>(n);
        auto g = grads_of(*m);
        if (mean_grads.empty())
          mean_grads.assign(g.size(), {});
        for (size_t p = 0; p < g.size(); ++p) {
          mean_grads[p].resize(g[p].size(), 0.0f);
          for (size_t j = 0; j < g[p].size(); ++j)
            mean_grads[p][j] += g[p][j] / static_cast<float>(n);
        }
        auto p = m->predict(r, 1);
        REQUIRE(p);
        alone_probs.push_back((*p)[1]);
      }
      auto labels = *tensor::from({n}, b.labels);
      for (uint64_t pad_seed : {2, 3}) { // two different paddings
        CAPTURE(pad_seed);
        auto tokens = *tensor::from({n, padded_len}, padded(b, padded_len, pad_seed));
        auto loss = m->loss_and_gradients(tokens, labels, /*train=*/false, &b.lengths);
        REQUIRE(loss);
        CHECK(*loss == doctest::Approx(mean_loss).epsilon(1e-5));
        CHECK(max_rel_diff(grads_of(*m), mean_grads) < 1e-3);
        auto p = m->predict(padded(b, padded_len, pad_seed), n, &b.lengths);
        REQUIRE(p);
        for (int64_t i = 0; i < n; ++i)
          CHECK((*p)[static_cast<size_t>(i * 2 + 1)]
                == doctest::Approx(alone_probs[static_cast<size_t>(i)]).epsilon(1e-5));
      }
      // Without the lengths the padding reaches the rows: what this suite guards against.
      auto tokens = *tensor::from({n, padded_len}, padded(b, padded_len, 2));
      REQUIRE(m->loss_and_gradients(tokens, labels, /*train=*/false));
      CHECK(max_rel_diff(grads_of(*m), mean_grads) > 1e-2);
    }
  }

  TEST_CASE("training on padded batches with lengths does not depend on the padding") {
    auto b = make_batch(row_lengths, 4);
    const auto n = static_cast<int64_t>(b.rows.size());
    for (auto& [name, be] : host_backends()) {
      CAPTURE(name);
      // Dropout on: its mask is per row and step, not per padded length.
      auto short_pad = textcnn::create(small_config(0.2f), be);
      auto long_pad = textcnn::create(small_config(0.2f), be);
      auto no_lengths = textcnn::create(small_config(0.2f), be);
      REQUIRE(short_pad);
      REQUIRE(long_pad);
      REQUIRE(no_lengths);
      const int64_t tight = *std::max_element(row_lengths.begin(), row_lengths.end());
      for (int step = 0; step < 5; ++step) {
        auto ls = short_pad->train_step(padded(b, tight, 10 + step), b.labels, nullptr, &b.lengths);
        auto ll = long_pad->train_step(padded(b, padded_len, 20 + step), b.labels, nullptr,
                                       &b.lengths);
        REQUIRE(ls);
        REQUIRE(ll);
        CHECK(*ll == doctest::Approx(*ls).epsilon(1e-5));
        REQUIRE(no_lengths->train_step(padded(b, padded_len, 20 + step), b.labels));
      }
      CHECK(max_rel_diff(weights_of(*long_pad), weights_of(*short_pad)) < 1e-3);
      CHECK(max_rel_diff(weights_of(*no_lengths), weights_of(*short_pad)) > 1e-2);
      (void) n;
    }
  }

  TEST_CASE("conv1d_max with lengths: each row over its own windows, CPU as the reference") {
    std::mt19937_64 rng(5);
    const int64_t nb = 5, time = 30, c_in = 7, k = 4, c_out = 37;
    auto x = random_f32({nb, time, c_in}, rng);
    auto w = random_f32({k, c_in, c_out}, rng);
    auto bias = random_f32({c_out}, rng);
    std::vector<int32_t> lengths = {4, 30, 11, 5, 29};
    auto d = make_conv1d_dims(nb, time, c_in, k, c_out, padding1d::valid);
    d.lengths = lengths.data();
    std::vector<float> y_ref(nb * c_out), y_cpu(nb * c_out);
    std::vector<int32_t> a_ref(nb * c_out), a_cpu(nb * c_out);
    conv1d_max_ref(d, x.data<float>(), w.data<float>(), bias.data<float>(), activation::relu,
                   y_ref.data(), a_ref.data());
    conv1d_max_cpu(d, x.data<float>(), w.data<float>(), bias.data<float>(), activation::relu,
                   y_cpu.data(), a_cpu.data());
    for (int64_t b = 0; b < nb; ++b) {
      CAPTURE(b);
      // Row b alone, cut to its length.
      auto da = make_conv1d_dims(1, lengths[static_cast<size_t>(b)], c_in, k, c_out,
                                 padding1d::valid);
      std::vector<float> y1(c_out);
      std::vector<int32_t> a1(c_out);
      conv1d_max_ref(da, x.data<float>() + b * time * c_in, w.data<float>(), bias.data<float>(),
                     activation::relu, y1.data(), a1.data());
      for (int64_t f = 0; f < c_out; ++f) {
        auto i = static_cast<size_t>(b * c_out + f);
        CHECK(a_ref[i] == a1[static_cast<size_t>(f)]);
        CHECK(y_ref[i] == y1[static_cast<size_t>(f)]);
        CHECK(a_cpu[i] == a_ref[i]);
        CHECK(y_cpu[i] == doctest::Approx(y_ref[i]).epsilon(1e-5));
        CHECK(a_ref[i] <= lengths[static_cast<size_t>(b)] - k);
      }
    }
  }

  TEST_CASE("bad lengths are refused") {
    auto m = textcnn::create(small_config(0), std::make_shared<cpu_backend>());
    REQUIRE(m);
    auto b = make_batch({6, 8}, 7);
    auto tokens = padded(b, 10, 1);
    std::vector<int64_t> too_few = {6};
    std::vector<int64_t> too_short = {4, 8}; // the widest kernel is 5
    std::vector<int64_t> too_long = {6, 11};
    CHECK_FALSE(m->train_step(tokens, b.labels, nullptr, &too_few));
    CHECK_FALSE(m->train_step(tokens, b.labels, nullptr, &too_short));
    CHECK_FALSE(m->train_step(tokens, b.labels, nullptr, &too_long));
    CHECK_FALSE(m->predict(tokens, 2, &too_long));
    CHECK(m->steps() == 0);
    std::vector<int64_t> ok = {5, 10};
    CHECK(m->train_step(tokens, b.labels, nullptr, &ok));
    // The backend op checks its lengths too.
    cpu_backend be;
    std::mt19937_64 rng(1);
    auto x = random_f32({2, 10, 3}, rng);
    auto w = random_f32({3, 3, 4}, rng);
    tensor y, am;
    auto bad = *tensor::from({2}, std::vector<int32_t>{2, 10});
    CHECK(be.conv1d_max(x, w, nullptr, activation::relu, y, am, &bad));
    CHECK(be.conv1d_max(x, w, nullptr, activation::relu, y, am, nullptr) == caf::error{});
    auto good = *tensor::from({2}, std::vector<int32_t>{3, 10});
    CHECK(be.conv1d_max(x, w, nullptr, activation::relu, y, am, &good) == caf::error{});
  }
}
