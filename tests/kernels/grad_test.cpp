// kernels.grad: finite-difference checks of the CPU backend's gradients for every op used
// in training. Loss = sum(y * r) for a fixed random r; central differences (h = 1e-2) on
// sampled elements of each input against the analytic gradient from the backward op.
#include "kernels/backend.hpp"

#include "tests/kernels/kernel_check.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <functional>
#include <numeric>

using namespace comb::kernels;
using namespace comb::kernels::test;

namespace {

using forward_fn = std::function<tensor(std::vector<tensor>&)>;
using backward_fn = std::function<std::vector<tensor>(std::vector<tensor>&, const tensor&)>;

double weighted_sum(const tensor& y, const tensor& r) {
  double s = 0;
  for (int64_t i = 0; i < y.numel(); ++i)
    s += static_cast<double>(y.data<float>()[i]) * r.data<float>()[i];
  return s;
}

/// Checks d(sum(fwd(inputs) * r))/d inputs[which[j]] against bwd(inputs, r)[j].
void grad_check(const std::string& name, std::vector<tensor> inputs,
                const std::vector<size_t>& which, const forward_fn& fwd, const backward_fn& bwd,
                uint64_t seed, float h = 1e-2f) {
  std::mt19937_64 rng(seed);
  auto y = fwd(inputs);
  auto r = random_f32(y.shape(), rng);
  auto grads = bwd(inputs, r);
  REQUIRE(grads.size() == which.size());
  int bad = 0, checked = 0;
  for (size_t j = 0; j < which.size(); ++j) {
    auto& x = inputs[which[j]];
    REQUIRE(grads[j].shape() == x.shape());
    int64_t n = x.numel();
    std::vector<int64_t> idx(static_cast<size_t>(n));
    std::iota(idx.begin(), idx.end(), 0);
    std::shuffle(idx.begin(), idx.end(), rng);
    idx.resize(std::min<size_t>(idx.size(), 24));
    for (auto i : idx) {
      float* p = x.data<float>() + i;
      float keep = *p;
      *p = keep + h;
      double up = weighted_sum(fwd(inputs), r);
      *p = keep - h;
      double down = weighted_sum(fwd(inputs), r);
      *p = keep;
      double num = (up - down) / (2.0 * h);
      double ana = grads[j].data<float>()[i];
      ++checked;
      if (std::fabs(num - ana) > 1e-2 + 1e-2 * std::fabs(ana) && bad++ < 5)
        MESSAGE(name << " input " << which[j] << " element " << i << ": analytic " << ana
                     << ", numeric " << num);
    }
  }
  CHECK_MESSAGE(bad == 0, name);
  CHECK(checked > 0);
}

/// Distinct values (shuffled multiples of `step`), so a small perturbation never changes
/// which element is the maximum.
tensor distinct(const shape& s, std::mt19937_64& rng, float step = 0.05f) {
  auto t = tensor::zeros(s);
  std::vector<float> v(static_cast<size_t>(t.numel()));
  for (size_t i = 0; i < v.size(); ++i)
    v[i] = (static_cast<float>(i) - static_cast<float>(v.size()) / 2) * step;
  std::shuffle(v.begin(), v.end(), rng);
  std::copy(v.begin(), v.end(), t.data<float>());
  return t;
}

/// Values in ±[lo, hi], away from the kinks of ReLU at 0.
tensor away_from_zero(const shape& s, std::mt19937_64& rng, float lo, float hi) {
  auto t = random_f32(s, rng, lo, hi);
  std::bernoulli_distribution sign(0.5);
  for (int64_t i = 0; i < t.numel(); ++i)
    if (sign(rng))
      t.data<float>()[i] = -t.data<float>()[i];
  return t;
}

#define OK(expr) REQUIRE_MESSAGE(!(expr), #expr)

} // namespace

TEST_SUITE("kernels.grad") {
  TEST_CASE("embedding") {
    std::mt19937_64 rng(1);
    auto tokens = random_i32({3, 9}, rng, 6);
    grad_check(
      "embedding", {random_f32({6, 5}, rng)}, {0},
      [&](std::vector<tensor>& in) {
        tensor y;
        OK(cpu().embedding(tokens, in[0], y));
        return y;
      },
      [&](std::vector<tensor>&, const tensor& dy) {
        tensor d;
        OK(cpu().embedding_backward(tokens, dy, 6, d));
        return std::vector<tensor>{d};
      },
      2);
  }

  TEST_CASE("conv1d valid and same") {
    std::mt19937_64 rng(3);
    for (auto pad : {padding1d::valid, padding1d::same})
      for (int64_t k : {2, 3, 4}) {
        conv1d_params p{pad};
        grad_check(
          "conv1d k=" + std::to_string(k),
          {random_f32({2, 11, 4}, rng), random_f32({k, 4, 5}, rng), random_f32({5}, rng)},
          {0, 1, 2},
          [&](std::vector<tensor>& in) {
            tensor y;
            OK(cpu().conv1d(in[0], in[1], &in[2], p, y));
            return y;
          },
          [&](std::vector<tensor>& in, const tensor& dy) {
            tensor dx, dw, db;
            OK(cpu().conv1d_backward(in[0], in[1], dy, p, &dx, dw, &db));
            return std::vector<tensor>{dx, dw, db};
          },
          4 + static_cast<uint64_t>(k));
      }
  }

  TEST_CASE("conv2d: dense, strided, grouped, depthwise") {
    std::mt19937_64 rng(5);
    struct c2 {
      const char* name;
      int64_t cin, k, cout;
      conv2d_params p;
    };
    for (auto& c : {c2{"3x3 p1", 3, 3, 4, {1, 1, 1, 1, 1, 1, 1}},
                    c2{"3x3 s2", 4, 3, 6, {2, 2, 0, 0, 1, 1, 1}},
                    c2{"groups 2", 4, 3, 6, {1, 1, 1, 1, 1, 1, 2}},
                    c2{"depthwise", 5, 3, 5, {2, 2, 1, 1, 1, 1, 5}}}) {
      auto p = c.p;
      grad_check(
        std::string{"conv2d "} + c.name,
        {random_f32({2, 6, 5, c.cin}, rng), random_f32({c.k, c.k, c.cin / p.groups, c.cout}, rng),
         random_f32({c.cout}, rng)},
        {0, 1, 2},
        [&](std::vector<tensor>& in) {
          tensor y;
          OK(cpu().conv2d(in[0], in[1], &in[2], p, y));
          return y;
        },
        [&](std::vector<tensor>& in, const tensor& dy) {
          tensor dx, dw, db;
          OK(cpu().conv2d_backward(in[0], in[1], dy, p, &dx, dw, &db));
          return std::vector<tensor>{dx, dw, db};
        },
        6);
    }
  }

  TEST_CASE("bias + ReLU and ReLU6") {
    std::mt19937_64 rng(7);
    for (auto a : {activation::relu, activation::relu6, activation::none}) {
      // |x + b| in [0.2, 5.3] keeps clear of the kinks at 0 and 6 (b is zero).
      grad_check(
        "bias_act", {away_from_zero({6, 7}, rng, 0.2f, 5.3f), tensor::zeros({7})}, {0, 1},
        [&](std::vector<tensor>& in) {
          tensor y;
          OK(cpu().bias_act(in[0], &in[1], a, y));
          return y;
        },
        [&](std::vector<tensor>& in, const tensor& dy) {
          tensor y, dx, db;
          OK(cpu().bias_act(in[0], &in[1], a, y));
          OK(cpu().bias_act_backward(y, dy, a, dx, &db));
          return std::vector<tensor>{dx, db};
        },
        8);
    }
  }

  TEST_CASE("conv1d_max (conv1d + max over time + bias + ReLU)") {
    std::mt19937_64 rng(13);
    for (int64_t k : {2, 3, 4}) {
      grad_check(
        "conv1d_max k=" + std::to_string(k),
        {random_f32({2, 9, 4}, rng), random_f32({k, 4, 5}, rng), random_f32({5}, rng)}, {0, 1, 2},
        [&](std::vector<tensor>& in) {
          tensor y, arg;
          OK(cpu().conv1d_max(in[0], in[1], &in[2], activation::relu, y, arg));
          return y;
        },
        [&](std::vector<tensor>& in, const tensor& dy) {
          tensor y, arg, dx, dw, db;
          OK(cpu().conv1d_max(in[0], in[1], &in[2], activation::relu, y, arg));
          OK(cpu().conv1d_max_backward(in[0], in[1], y, arg, dy, activation::relu, &dx, dw, &db));
          return std::vector<tensor>{dx, dw, db};
        },
        100 + static_cast<uint64_t>(k), 1e-3f);
    }
  }

  TEST_CASE("max over time") {
    std::mt19937_64 rng(9);
    grad_check(
      "max_over_time", {distinct({3, 8, 5}, rng)}, {0},
      [&](std::vector<tensor>& in) {
        tensor y, arg;
        OK(cpu().max_over_time(in[0], 0, y, arg));
        return y;
      },
      [&](std::vector<tensor>& in, const tensor& dy) {
        tensor y, arg, dx;
        OK(cpu().max_over_time(in[0], 0, y, arg));
        OK(cpu().max_over_time_backward(dy, arg, 8, dx));
        return std::vector<tensor>{dx};
      },
      10);
  }

  TEST_CASE("max and average pooling") {
    std::mt19937_64 rng(11);
    for (auto kind : {pool_kind::max, pool_kind::avg}) {
      pool2d_params p{kind, 3, 3, 2, 2, 1, 1};
      grad_check(
        "pool2d", {distinct({2, 7, 6, 3}, rng)}, {0},
        [&](std::vector<tensor>& in) {
          tensor y;
          OK(cpu().pool2d(in[0], p, y));
          return y;
        },
        [&](std::vector<tensor>& in, const tensor& dy) {
          tensor dx;
          OK(cpu().pool2d_backward(in[0], dy, p, dx));
          return std::vector<tensor>{dx};
        },
        12);
    }
  }

  TEST_CASE("dense") {
    std::mt19937_64 rng(13);
    grad_check(
      "dense", {random_f32({5, 8}, rng), random_f32({8, 6}, rng), random_f32({6}, rng)}, {0, 1, 2},
      [&](std::vector<tensor>& in) {
        tensor y;
        OK(cpu().dense(in[0], in[1], &in[2], y));
        return y;
      },
      [&](std::vector<tensor>& in, const tensor& dy) {
        tensor dx, dw, db;
        OK(cpu().dense_backward(in[0], in[1], dy, &dx, dw, &db));
        return std::vector<tensor>{dx, dw, db};
      },
      14);
  }

  TEST_CASE("softmax cross-entropy") {
    std::mt19937_64 rng(15);
    auto labels = random_i32({6}, rng, 4);
    // The loss is a scalar: y = [loss], r scales it.
    grad_check(
      "softmax_cross_entropy", {random_f32({6, 4}, rng, -3, 3)}, {0},
      [&](std::vector<tensor>& in) {
        tensor p;
        auto l = cpu().softmax_cross_entropy(in[0], labels, p);
        REQUIRE(l);
        return *tensor::from({1}, std::vector<float>{*l});
      },
      [&](std::vector<tensor>& in, const tensor& dy) {
        tensor p, d;
        REQUIRE(cpu().softmax_cross_entropy(in[0], labels, p));
        OK(cpu().softmax_cross_entropy_backward(p, labels, d));
        for (int64_t i = 0; i < d.numel(); ++i)
          d.data<float>()[i] *= dy.data<float>()[0];
        return std::vector<tensor>{d};
      },
      16);
  }

  TEST_CASE("dropout, residual add, sigmoid, concat") {
    std::mt19937_64 rng(17);
    grad_check(
      "dropout", {random_f32({4, 30}, rng)}, {0},
      [&](std::vector<tensor>& in) {
        tensor y, m;
        OK(cpu().dropout(in[0], 0.3f, 5, y, m));
        return y;
      },
      [&](std::vector<tensor>& in, const tensor& dy) {
        tensor y, m, dx;
        OK(cpu().dropout(in[0], 0.3f, 5, y, m));
        OK(cpu().dropout_backward(dy, m, 0.3f, dx));
        return std::vector<tensor>{dx};
      },
      18);
    grad_check(
      "add", {random_f32({3, 5}, rng), random_f32({3, 5}, rng)}, {0, 1},
      [&](std::vector<tensor>& in) {
        tensor y;
        OK(cpu().add(in[0], in[1], y));
        return y;
      },
      [&](std::vector<tensor>&, const tensor& dy) {
        return std::vector<tensor>{*dy.clone(), *dy.clone()};
      },
      19);
    grad_check(
      "sigmoid", {random_f32({3, 5}, rng, -4, 4)}, {0},
      [&](std::vector<tensor>& in) {
        tensor y;
        OK(cpu().sigmoid(in[0], y));
        return y;
      },
      [&](std::vector<tensor>& in, const tensor& dy) {
        tensor y, dx;
        OK(cpu().sigmoid(in[0], y));
        OK(cpu().sigmoid_backward(y, dy, dx));
        return std::vector<tensor>{dx};
      },
      20);
    grad_check(
      "concat", {random_f32({3, 4}, rng), random_f32({3, 2}, rng)}, {0, 1},
      [&](std::vector<tensor>& in) {
        tensor y;
        OK(cpu().concat({&in[0], &in[1]}, y));
        return y;
      },
      [&](std::vector<tensor>&, const tensor& dy) {
        tensor a, b;
        OK(cpu().concat_backward(dy, {4, 2}, {&a, &b}));
        return std::vector<tensor>{a, b};
      },
      21);
  }

} // TEST_SUITE
