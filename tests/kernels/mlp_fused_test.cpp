// kernels.mlp_fused: the CPU backend's fused MLP paths against the reference backend. On the
// CPU a hidden layer runs as one op (dense_relu_cpu: bias and ReLU in the GEMM's store), and a
// narrow last layer (<= 16 outputs) with its softmax runs on each block of the last hidden
// layer's rows as soon as they are final (dense_relu_then_cpu). Checked: the ops themselves
// against dense_ref + ReLU (every row handed on exactly once, final when handed on), and
// whole MLPs (forward probabilities, loss and every gradient) against the same MLP on the
// reference backend, with shapes that take each path: batches not a multiple of 8, under
// 8 rows (OpenBLAS), one and two hidden layers, a last layer too wide for the fused head.
// The narrow head's backward through the last hidden layer's ReLU (one op on the CPU:
// dense_relu_narrow_backward_cpu) against dense_backward_ref and the ReLU's backward.
#include "kernels/models/mlp.hpp"
#include "kernels/ops/dense.hpp"
#include "kernels/reference_backend.hpp"

#include "tests/kernels/kernel_check.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <vector>

using namespace comb::kernels;
using namespace comb::kernels::test;

TEST_SUITE("kernels.mlp_fused") {
  TEST_CASE("dense_relu_cpu and dense_relu_then_cpu match dense_ref followed by ReLU") {
    std::mt19937_64 rng(7);
    struct dims {
      int64_t b, in, out;
    };
    for (auto d : std::vector<dims>{{1200, 784, 512}, {203, 100, 50}, {37, 600, 100},
                                    {5, 30, 20}, {64, 40, 10}}) {
      CAPTURE(d.b);
      CAPTURE(d.out);
      auto x = random_f32({d.b, d.in}, rng), w = random_f32({d.in, d.out}, rng),
           bias = random_f32({d.out}, rng);
      auto ref = tensor::zeros({d.b, d.out}), got = tensor::zeros({d.b, d.out}),
           got2 = tensor::zeros({d.b, d.out}), seen = tensor::zeros({d.b, d.out});
      dense_ref(x.data<float>(), d.b, d.in, w.data<float>(), d.out, bias.data<float>(),
                ref.data<float>());
      int64_t negative = 0;
      for (int64_t i = 0; i < ref.numel(); ++i) {
        negative += ref.data<float>()[i] < 0;
        ref.data<float>()[i] = std::max(ref.data<float>()[i], 0.0f);
      }
      REQUIRE(negative > 0); // ReLU has something to do
      dense_relu_cpu(x.data<float>(), d.b, d.in, w.data<float>(), d.out, bias.data<float>(),
                     got.data<float>());
      CHECK(mismatches("dense_relu_cpu", ref, got) == 0);
      // Each block copied out when handed on: the copy must be the final values.
      std::vector<int> handed(static_cast<size_t>(d.b), 0);
      std::mutex m;
      dense_relu_then_cpu(x.data<float>(), d.b, d.in, w.data<float>(), d.out, bias.data<float>(),
                          got2.data<float>(), [&](int64_t r0, int64_t r1) {
                            std::lock_guard<std::mutex> g{m};
                            REQUIRE(0 <= r0);
                            REQUIRE(r0 < r1);
                            REQUIRE(r1 <= d.b);
                            for (int64_t r = r0; r < r1; ++r) {
                              ++handed[static_cast<size_t>(r)];
                              std::copy_n(got2.data<float>() + r * d.out, d.out,
                                          seen.data<float>() + r * d.out);
                            }
                          });
      CHECK(std::all_of(handed.begin(), handed.end(), [](int n) { return n == 1; }));
      CHECK(mismatches("dense_relu_then_cpu", ref, got2) == 0);
      CHECK(mismatches("dense_relu_then_cpu rows as handed on", ref, seen) == 0);
    }
  }

  TEST_CASE("dense_relu_narrow_backward_cpu matches dense_backward_ref and the ReLU's "
            "backward") {
    std::mt19937_64 rng(17);
    struct dims {
      int64_t b, in, out;
    };
    // in: multiples of 64, of 8 and neither; out 1..16 (the tiles) and 20 (the fallback).
    for (auto d : std::vector<dims>{{1200, 512, 10}, {203, 100, 16}, {37, 70, 1},
                                    {5, 9, 3}, {64, 128, 8}, {13, 64, 11}, {50, 40, 20}}) {
      CAPTURE(d.b);
      CAPTURE(d.in);
      CAPTURE(d.out);
      // h is a ReLU's output: about half of it exactly 0.
      auto h = random_f32({d.b, d.in}, rng);
      for (int64_t i = 0; i < h.numel(); ++i)
        h.data<float>()[i] = std::max(h.data<float>()[i], 0.0f);
      auto w = random_f32({d.in, d.out}, rng), dy = random_f32({d.b, d.out}, rng);
      auto dx_ref = tensor::zeros({d.b, d.in}), dw_ref = tensor::zeros({d.in, d.out}),
           db_ref = tensor::zeros({d.out}), dbp_ref = tensor::zeros({d.in});
      dense_backward_ref(h.data<float>(), d.b, d.in, w.data<float>(), d.out, dy.data<float>(),
                         dx_ref.data<float>(), dw_ref.data<float>(), db_ref.data<float>());
      for (int64_t r = 0; r < d.b; ++r)
        for (int64_t j = 0; j < d.in; ++j) {
          float& v = dx_ref.data<float>()[r * d.in + j];
          if (!(h.data<float>()[r * d.in + j] > 0))
            v = 0;
          dbp_ref.data<float>()[j] += v;
        }
      // Outputs start as garbage: the op overwrites them.
      auto dx = random_f32({d.b, d.in}, rng), dw = random_f32({d.in, d.out}, rng),
           db = random_f32({d.out}, rng), dbp = random_f32({d.in}, rng);
      dense_relu_narrow_backward_cpu(h.data<float>(), d.b, d.in, w.data<float>(), d.out,
                                     dy.data<float>(), dx.data<float>(), dw.data<float>(),
                                     db.data<float>(), dbp.data<float>());
      CHECK(mismatches("dh_pre", dx_ref, dx) == 0);
      CHECK(mismatches("dw", dw_ref, dw, 1e-3f) == 0);
      CHECK(mismatches("dbias", db_ref, db, 1e-3f) == 0);
      CHECK(mismatches("dbias_prev", dbp_ref, dbp, 1e-3f) == 0);
      // Without dbias_prev: the rest is the same.
      auto dx2 = tensor::zeros({d.b, d.in}), dw2 = tensor::zeros({d.in, d.out});
      dense_relu_narrow_backward_cpu(h.data<float>(), d.b, d.in, w.data<float>(), d.out,
                                     dy.data<float>(), dx2.data<float>(), dw2.data<float>(),
                                     nullptr, nullptr);
      CHECK(mismatches("dh_pre without sums", dx_ref, dx2) == 0);
      CHECK(mismatches("dw without sums", dw_ref, dw2, 1e-3f) == 0);
    }
  }

  TEST_CASE("MLPs on the CPU backend match the reference backend: probabilities, loss, "
            "gradients") {
    std::mt19937_64 rng(11);
    struct net {
      std::vector<int64_t> sizes;
      int64_t batch;
    };
    for (auto n : std::vector<net>{{{784, 512, 10}, 203},
                                   {{784, 512, 10}, 5},
                                   {{40, 64, 48, 7}, 130},
                                   {{30, 64, 20}, 77}}) {
      CAPTURE(n.batch);
      CAPTURE(n.sizes.size());
      mlp_config cfg;
      cfg.sizes = n.sizes;
      cfg.seed = 3;
      auto fast = mlp::create(cfg, backends().front());
      auto ref = mlp::create(cfg, std::make_shared<reference_backend>());
      REQUIRE(fast);
      REQUIRE(ref);
      REQUIRE(backends().front()->device() == device::cpu);
      auto x = random_f32({n.batch, n.sizes.front()}, rng);
      auto labels = random_i32({n.batch}, rng, static_cast<int32_t>(n.sizes.back()));
      auto pf = fast->forward(x), pr = ref->forward(x);
      REQUIRE(pf);
      REQUIRE(pr);
      CHECK(mismatches("probabilities", *pr, *pf, 1e-3f) == 0);
      // Twice: the second forward reuses the activations' buffers.
      auto pf2 = fast->forward(x);
      REQUIRE(pf2);
      CHECK(mismatches("probabilities again", *pr, *pf2, 1e-3f) == 0);
      auto lf = fast->loss_and_gradients(x, labels), lr = ref->loss_and_gradients(x, labels);
      REQUIRE(lf);
      REQUIRE(lr);
      CHECK(*lf == doctest::Approx(*lr).epsilon(1e-4));
      auto gf = fast->gradients(), gr = ref->gradients();
      REQUIRE(gf.size() == gr.size());
      for (size_t i = 0; i < gf.size(); ++i)
        CHECK(mismatches(gf[i].first, *gr[i].second, *gf[i].second, 1e-3f) == 0);
    }
  }
} // TEST_SUITE
