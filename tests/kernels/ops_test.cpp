// kernels.ops: every op of every registered backend (CPU; CUDA when a device answers)
// against the naive reference backend on seeded random inputs, ggml test-backend-ops
// style: one case per op and shape, outputs compared with 1e-4 + |ref| * eps.
#include "kernels/backend.hpp"
#include "kernels/reference_backend.hpp"

#include "tests/kernels/kernel_check.hpp"

#include <doctest/doctest.h>

#include <functional>
#include <limits>

using namespace comb::kernels;
using namespace comb::kernels::test;

namespace {

/// Inputs live on the CPU; `on` moves one to the backend's device.
tensor on(backend& b, const tensor& t) {
  if (b.device() == device::cpu)
    return t;
  auto r = t.to(b.device());
  REQUIRE(r);
  return *r;
}

struct op_case {
  std::string name;
  op o;
  std::function<std::vector<tensor>(backend&)> run;
  float eps = 1e-4f;
};

/// Runs each case on the reference and on every registered backend; returns the number of
/// backend/case pairs compared.
int run_cases(const std::vector<op_case>& cases) {
  reference_backend ref;
  int compared = 0;
  for (auto& be : backends()) {
    for (auto& c : cases) {
      if (!be->supports(c.o)) {
        MESSAGE(be->name() << " does not support " << to_string(c.o) << ": " << c.name
                           << " skipped");
        continue;
      }
      auto want = c.run(ref);
      auto got = c.run(*be);
      if (got.empty() && !want.empty()) {
        MESSAGE(be->name() << " does not run this shape of " << to_string(c.o) << ": " << c.name
                           << " skipped");
        continue;
      }
      REQUIRE(want.size() == got.size());
      for (size_t i = 0; i < want.size(); ++i) {
        auto what = be->name() + " " + c.name + " output " + std::to_string(i);
        CHECK_MESSAGE(mismatches(what, want[i], got[i], c.eps) == 0, what);
      }
      ++compared;
    }
  }
  return compared;
}

#define OK(expr) REQUIRE_MESSAGE(!(expr), #expr)

/// Like OK, but a backend other than the CPU's may refuse a shape it does not run
/// (errc::unsupported: the CUDA backend's asymmetric padding or groups): the case then
/// returns no outputs and run_cases skips it visibly.
#define OK_OR_SKIP(b, expr)                                                                        \
  do {                                                                                             \
    if (auto err_ = (expr)) {                                                                      \
      if ((b).device() != device::cpu && is(err_, comb::errc::unsupported))                        \
        return std::vector<tensor>{};                                                              \
      REQUIRE_MESSAGE(!err_, #expr);                                                               \
    }                                                                                              \
  } while (false)

} // namespace

TEST_SUITE("kernels.ops") {
  TEST_CASE("registry: the CPU backend is always there; CUDA only with a device") {
    auto list = backends();
    REQUIRE(!list.empty());
    CHECK(list.front()->name() == "cpu");
    CHECK(&cpu() == list.front().get());
    for (int o = 0; o < static_cast<int>(op::count_); ++o)
      CHECK(cpu().supports(static_cast<op>(o)));
    if (!find_backend("cuda"))
      MESSAGE("no CUDA backend registered (not built or no device): CUDA comparisons skipped");
    CHECK(default_backend(false)->name() == "cpu");
  }

  TEST_CASE("the comparison itself catches wrong values and non-finite mismatches") {
    std::mt19937_64 rng(99);
    auto ref = random_f32({100}, rng);
    auto got = *ref.clone();
    CHECK(mismatches("identical", ref, got) == 0);
    got.data<float>()[7] += 1e-2f;
    CHECK(mismatches("off by 1e-2 (expected to be reported)", ref, got) == 1);
    got.data<float>()[7] = std::numeric_limits<float>::quiet_NaN();
    CHECK(mismatches("NaN for a number (expected to be reported)", ref, got) == 1);
    ref.data<float>()[7] = std::numeric_limits<float>::quiet_NaN();
    CHECK(mismatches("NaN for NaN", ref, got) == 0);
    ref.data<float>()[8] = std::numeric_limits<float>::infinity();
    got.data<float>()[8] = -std::numeric_limits<float>::infinity();
    CHECK(mismatches("+inf for -inf (expected to be reported)", ref, got) == 1);
    CHECK(mismatches("shape (expected to be reported)", ref, tensor::zeros({10, 10})) > 0);
  }

  TEST_CASE("tensors: aligned zeroed storage, shared copies, deep clones, clear errors") {
    auto t = tensor::zeros({3, 5});
    CHECK(reinterpret_cast<uintptr_t>(t.raw()) % 64 == 0);
    CHECK(t.bytes() == 60);
    for (int64_t i = 0; i < t.numel(); ++i)
      CHECK(t.data<float>()[i] == 0.0f);
    auto shared = t;
    shared.data<float>()[2] = 5;
    CHECK(t.data<float>()[2] == 5);
    auto deep = *t.clone();
    deep.data<float>()[2] = 6;
    CHECK(t.data<float>()[2] == 5);
    auto r = t.reshape({15});
    REQUIRE(r);
    CHECK(r->data<float>()[2] == 5);
    CHECK(!t.reshape({4, 4}));
    CHECK(!tensor::from({2, 2}, std::vector<float>{1, 2, 3}));
    CHECK(size_of(dtype::u8) == 1);
    CHECK(size_of(dtype::i32) == 4);
    CHECK(tensor::zeros({2}, dtype::i8).bytes() == 2);
    CHECK(t.describe() == "f32[3, 5] on cpu");
    // ensure() keeps storage it owns alone when the new shape fits, and zeroes it.
    auto before = deep.raw();
    REQUIRE(!deep.ensure({5, 3}));
    CHECK(deep.raw() == before);
    CHECK(deep.data<float>()[2] == 0.0f);
  }

  TEST_CASE("embedding and its gradient") {
    std::mt19937_64 rng(1);
    auto table = random_f32({50, 24}, rng);
    auto tokens = random_i32({16, 200}, rng, 50); // repeated ids exercise the scatter-add
    auto dout = random_f32({16, 200, 24}, rng);
    CHECK(run_cases({{"embedding", op::embedding,
                      [&](backend& b) {
                        tensor out;
                        OK(b.embedding(on(b, tokens), on(b, table), out));
                        return std::vector<tensor>{out};
                      }},
                     {"embedding_backward", op::embedding_backward,
                      [&](backend& b) {
                        tensor d;
                        OK(b.embedding_backward(on(b, tokens), on(b, dout), 50, d));
                        return std::vector<tensor>{d};
                      }}})
          > 0);
  }

  TEST_CASE("conv1d valid and same, kernels 2, 3, 4, forward and backward") {
    std::mt19937_64 rng(2);
    std::vector<op_case> cases;
    for (int64_t k : {2, 3, 4})
      for (auto pad : {padding1d::valid, padding1d::same}) {
        auto x = random_f32({5, 37, 12}, rng);
        auto w = random_f32({k, 12, 9}, rng);
        auto bias = random_f32({9}, rng);
        int64_t t_out = pad == padding1d::same ? 37 : 37 - k + 1;
        auto dy = random_f32({5, t_out, 9}, rng);
        std::string name = "conv1d k=" + std::to_string(k)
                           + (pad == padding1d::same ? " same" : " valid");
        conv1d_params p{pad};
        cases.push_back({name, op::conv1d, [=](backend& b) {
                           tensor y, y2;
                           auto bb = on(b, bias);
                           OK(b.conv1d(on(b, x), on(b, w), &bb, p, y));
                           OK(b.conv1d(on(b, x), on(b, w), nullptr, p, y2));
                           return std::vector<tensor>{y, y2};
                         }});
        cases.push_back({name + " backward", op::conv1d_backward, [=](backend& b) {
                           tensor dx, dw, db;
                           OK(b.conv1d_backward(on(b, x), on(b, w), on(b, dy), p, &dx, dw, &db));
                           return std::vector<tensor>{dx, dw, db};
                         }});
      }
    // TextCNN-sized channels (full vectors of 16 in k * c_in, filters in blocks of 48, 32
    // and 32, in the weight gradient's tiles of 6 and 4) over more sequences than the
    // backward splits the weight gradient into.
    for (int64_t k : {3, 4}) {
      auto x = random_f32({7, 21, 64}, rng);
      auto w = random_f32({k, 64, 100}, rng);
      auto dy = random_f32({7, 21 - k + 1, 100}, rng);
      cases.push_back({"conv1d k=" + std::to_string(k) + " 64 -> 100", op::conv1d,
                       [=](backend& b) {
                         tensor y;
                         OK(b.conv1d(on(b, x), on(b, w), nullptr, conv1d_params{}, y));
                         return std::vector<tensor>{y};
                       }});
      cases.push_back({"conv1d k=" + std::to_string(k) + " 64 -> 100 backward",
                       op::conv1d_backward, [=](backend& b) {
                         tensor dx, dw, db;
                         OK(b.conv1d_backward(on(b, x), on(b, w), on(b, dy), conv1d_params{}, &dx,
                                              dw, &db));
                         return std::vector<tensor>{dx, dw, db};
                       }});
    }
    // Batch 1 and a sequence exactly the kernel long.
    auto x1 = random_f32({1, 4, 3}, rng);
    auto w1 = random_f32({4, 3, 2}, rng);
    cases.push_back({"conv1d t == k", op::conv1d, [=](backend& b) {
                       tensor y;
                       OK(b.conv1d(on(b, x1), on(b, w1), nullptr, conv1d_params{}, y));
                       return std::vector<tensor>{y};
                     }});
    CHECK(run_cases(cases) > 0);
  }

  TEST_CASE("conv2d: stride, padding, groups, depthwise; forward and backward") {
    std::mt19937_64 rng(3);
    struct shape_case {
      const char* name;
      int64_t n, h, w, cin, kh, kw, cout;
      conv2d_params p;
    };
    std::vector<shape_case> shapes = {
      {"3x3 s1 p1", 2, 9, 8, 5, 3, 3, 7, {1, 1, 1, 1, 1, 1, 1}},
      {"3x3 s2 asymmetric pad", 2, 11, 10, 4, 3, 3, 6, {2, 2, 0, 0, 1, 1, 1}},
      // Several 8-pixel strips and a partial one; 53 filters span blocks of 48 + 16.
      {"3x3 s1 p1 wide, 53 filters", 1, 5, 19, 6, 3, 3, 53, {1, 1, 1, 1, 1, 1, 1}},
      {"2x3 unpadded", 2, 6, 13, 3, 2, 3, 20, {}},
      {"1x1", 3, 6, 6, 8, 1, 1, 16, {}},
      {"1x1, 40 filters (the dense GEMM)", 2, 5, 6, 24, 1, 1, 40, {}},
      {"1x1 groups 2", 2, 5, 4, 8, 1, 1, 6, {1, 1, 0, 0, 0, 0, 2}},
      {"1x1 s2", 2, 7, 7, 4, 1, 1, 6, {2, 2, 0, 0, 0, 0, 1}},
      {"groups 2", 1, 7, 7, 6, 3, 3, 4, {1, 1, 1, 1, 1, 1, 2}},
      {"depthwise 3x3 s2", 2, 12, 12, 32, 3, 3, 32, {2, 2, 1, 1, 1, 1, 32}},
      {"depthwise 5x5 s1", 1, 9, 9, 16, 5, 5, 16, {1, 1, 2, 2, 2, 2, 16}},
    };
    std::vector<op_case> cases;
    for (auto& s : shapes) {
      auto x = random_f32({s.n, s.h, s.w, s.cin}, rng);
      auto w = random_f32({s.kh, s.kw, s.cin / s.p.groups, s.cout}, rng);
      auto bias = random_f32({s.cout}, rng);
      tensor probe;
      OK(cpu().conv2d(x, w, nullptr, s.p, probe));
      auto dy = random_f32(probe.shape(), rng);
      auto p = s.p;
      cases.push_back({std::string{"conv2d "} + s.name, op::conv2d, [=](backend& b) {
                         tensor y, y2;
                         auto bb = on(b, bias);
                         OK_OR_SKIP(b, b.conv2d(on(b, x), on(b, w), &bb, p, y));
                         OK_OR_SKIP(b, b.conv2d(on(b, x), on(b, w), nullptr, p, y2));
                         return std::vector<tensor>{y, y2};
                       }});
      cases.push_back(
        {std::string{"conv2d backward "} + s.name, op::conv2d_backward, [=](backend& b) {
           tensor dx, dw, db;
           OK(b.conv2d_backward(on(b, x), on(b, w), on(b, dy), p, &dx, dw, &db));
           return std::vector<tensor>{dx, dw, db};
         }});
    }
    CHECK(run_cases(cases) > 0);
  }

  TEST_CASE("batch-norm folding") {
    std::mt19937_64 rng(4);
    auto w = random_f32({3, 3, 4, 8}, rng);
    auto bias = random_f32({8}, rng);
    auto gamma = random_f32({8}, rng, 0.5f, 2);
    auto beta = random_f32({8}, rng);
    auto mean = random_f32({8}, rng);
    auto var = random_f32({8}, rng, 0.1f, 3);
    CHECK(run_cases({{"batch_norm_fold", op::batch_norm_fold,
                      [&](backend& b) {
                        auto ww = on(b, *w.clone()), bb = on(b, *bias.clone());
                        OK(b.batch_norm_fold(ww, bb, on(b, gamma), on(b, beta), on(b, mean),
                                             on(b, var), 1e-3f));
                        return std::vector<tensor>{ww, bb};
                      }}})
          > 0);
  }

  TEST_CASE("bias + ReLU / ReLU6 / none, with non-finite inputs, and the gradient") {
    std::mt19937_64 rng(5);
    auto x = random_f32({300, 70}, rng, -8, 8);
    x.data<float>()[3] = std::numeric_limits<float>::quiet_NaN();
    x.data<float>()[80] = std::numeric_limits<float>::infinity();
    x.data<float>()[81] = -std::numeric_limits<float>::infinity();
    auto bias = random_f32({70}, rng);
    auto dy = random_f32({300, 70}, rng);
    auto xf = random_f32({300, 70}, rng, -8, 8); // finite: the gradient is taken from y
    std::vector<op_case> cases;
    for (auto a : {activation::none, activation::relu, activation::relu6}) {
      std::string n = a == activation::none ? "none" : a == activation::relu ? "relu" : "relu6";
      cases.push_back({"bias_act " + n, op::bias_act, [=](backend& b) {
                         tensor y, y2;
                         auto bb = on(b, bias);
                         OK(b.bias_act(on(b, x), &bb, a, y));
                         OK(b.bias_act(on(b, x), nullptr, a, y2));
                         return std::vector<tensor>{y, y2};
                       }});
      cases.push_back({"bias_act_backward " + n, op::bias_act_backward, [=](backend& b) {
                         tensor y, dx, db;
                         auto bb = on(b, bias);
                         OK(b.bias_act(on(b, xf), &bb, a, y));
                         OK(b.bias_act_backward(y, on(b, dy), a, dx, &db));
                         return std::vector<tensor>{dx, db};
                       }});
    }
    CHECK(run_cases(cases) > 0);
  }

  TEST_CASE("max over time and its gradient") {
    std::mt19937_64 rng(6);
    auto x = random_f32({7, 40, 33}, rng);
    auto dy = random_f32({7, 33}, rng);
    CHECK(run_cases({{"max_over_time", op::max_over_time,
                      [&](backend& b) {
                        tensor y, arg, y2, arg2;
                        OK(b.max_over_time(on(b, x), 0, y, arg));
                        OK(b.max_over_time(on(b, x), 17, y2, arg2));
                        return std::vector<tensor>{y, arg, y2, arg2};
                      }},
                     {"max_over_time_backward", op::max_over_time_backward,
                      [&](backend& b) {
                        tensor y, arg, dx;
                        OK(b.max_over_time(on(b, x), 0, y, arg));
                        OK(b.max_over_time_backward(on(b, dy), arg, 40, dx));
                        return std::vector<tensor>{dx};
                      }}})
          > 0);
  }

  TEST_CASE("conv1d_max (conv1d + max over time + bias + activation) and its gradient") {
    std::mt19937_64 rng(12);
    struct shape_case {
      shape x, w;
    };
    // c_out 9, 40 and 70 cover one partial vector, a full 3-vector block and 3 + 2 vectors;
    // t == k leaves a single window.
    std::vector<shape_case> shapes = {{{5, 37, 12}, {2, 12, 9}},  {{5, 37, 12}, {3, 12, 9}},
                                      {{5, 37, 12}, {4, 12, 9}},  {{3, 20, 8}, {3, 8, 40}},
                                      {{2, 30, 16}, {2, 16, 70}}, {{1, 4, 3}, {4, 3, 2}}};
    std::vector<op_case> cases;
    for (auto& sc : shapes)
      for (auto a : {activation::relu, activation::none, activation::relu6}) {
        auto x = random_f32(sc.x, rng);
        auto w = random_f32(sc.w, rng);
        auto bias = random_f32({sc.w[2]}, rng);
        auto dy = random_f32({sc.x[0], sc.w[2]}, rng);
        auto dx0 = random_f32(sc.x, rng);
        std::string name = "conv1d_max x " + to_string(sc.x) + " w " + to_string(sc.w) + " act "
                           + std::to_string(static_cast<int>(a));
        cases.push_back({name, op::conv1d_max, [=](backend& b) {
                           tensor y, arg, y2, arg2;
                           auto bb = on(b, bias);
                           OK(b.conv1d_max(on(b, x), on(b, w), &bb, a, y, arg));
                           OK(b.conv1d_max(on(b, x), on(b, w), nullptr, a, y2, arg2));
                           return std::vector<tensor>{y, arg, y2, arg2};
                         }});
        cases.push_back(
          {name + " backward", op::conv1d_max_backward, [=](backend& b) {
             tensor y, arg, dw, db, dw2;
             auto bb = on(b, bias);
             OK(b.conv1d_max(on(b, x), on(b, w), &bb, a, y, arg));
             // dx is added to: start from random values.
             auto dx = *on(b, dx0).clone();
             OK(b.conv1d_max_backward(on(b, x), on(b, w), y, arg, on(b, dy), a, &dx, dw, &db));
             OK(b.conv1d_max_backward(on(b, x), on(b, w), y, arg, on(b, dy), a, nullptr, dw2,
                                      nullptr));
             return std::vector<tensor>{dx, dw, db, dw2};
           }});
      }
    CHECK(run_cases(cases) > 0);
    // A sequence shorter than the kernel and a bad argmax are errors, not crashes.
    tensor y, arg, dw;
    CHECK(cpu().conv1d_max(random_f32({2, 3, 4}, rng), random_f32({4, 4, 5}, rng), nullptr,
                           activation::relu, y, arg));
    auto x = random_f32({2, 6, 4}, rng), w = random_f32({3, 4, 5}, rng);
    OK(cpu().conv1d_max(x, w, nullptr, activation::relu, y, arg));
    arg.data<int32_t>()[0] = 4;
    CHECK(cpu().conv1d_max_backward(x, w, y, arg, y, activation::relu, nullptr, dw, nullptr));
  }

  TEST_CASE("max / avg / global-avg pooling and gradients") {
    std::mt19937_64 rng(7);
    auto x = random_f32({2, 13, 12, 10}, rng);
    std::vector<op_case> cases;
    for (auto kind : {pool_kind::max, pool_kind::avg})
      for (auto p : {pool2d_params{kind, 2, 2, 2, 2, 0, 0}, pool2d_params{kind, 3, 3, 2, 2, 1, 1},
                     pool2d_params{kind, 3, 2, 1, 2, 1, 0}}) {
        tensor probe;
        OK(cpu().pool2d(x, p, probe));
        auto dy = random_f32(probe.shape(), rng);
        std::string n = std::string{kind == pool_kind::max ? "max" : "avg"} + " pool "
                        + std::to_string(p.kernel_h) + "x" + std::to_string(p.kernel_w) + " s"
                        + std::to_string(p.stride_h) + " p" + std::to_string(p.pad_h);
        cases.push_back({n, op::pool2d, [=](backend& b) {
                           tensor y;
                           OK(b.pool2d(on(b, x), p, y));
                           return std::vector<tensor>{y};
                         }});
        cases.push_back({n + " backward", op::pool2d_backward, [=](backend& b) {
                           tensor dx;
                           OK(b.pool2d_backward(on(b, x), on(b, dy), p, dx));
                           return std::vector<tensor>{dx};
                         }});
      }
    cases.push_back({"global_avg_pool", op::global_avg_pool, [=](backend& b) {
                       tensor y;
                       OK(b.global_avg_pool(on(b, x), y));
                       return std::vector<tensor>{y};
                     }});
    CHECK(run_cases(cases) > 0);
  }

  TEST_CASE("dense and its gradients") {
    std::mt19937_64 rng(8);
    std::vector<op_case> cases;
    // out <= 16 takes the CPU backend's narrow path (classifier heads).
    for (int64_t out : {45, 10, 16, 1})
      for (int64_t batch : {1, 33, 130}) {
        auto x = random_f32({batch, 70}, rng);
        auto w = random_f32({70, out}, rng);
        auto bias = random_f32({out}, rng);
        auto dy = random_f32({batch, out}, rng);
        std::string n = "dense batch " + std::to_string(batch) + " out " + std::to_string(out);
        cases.push_back({n, op::dense, [=](backend& b) {
                           tensor y, y2;
                           auto bb = on(b, bias);
                           OK(b.dense(on(b, x), on(b, w), &bb, y));
                           OK(b.dense(on(b, x), on(b, w), nullptr, y2));
                           return std::vector<tensor>{y, y2};
                         }});
        cases.push_back({n + " backward", op::dense_backward, [=](backend& b) {
                           tensor dx, dw, db;
                           OK(b.dense_backward(on(b, x), on(b, w), on(b, dy), &dx, dw, &db));
                           return std::vector<tensor>{dx, dw, db};
                         }});
      }
    // Inputs in several blocks (the AVX-512 GEMM sums blocks of up to 256), outputs in
    // panels of 48, 48 and 4, a last tile of 5 rows.
    auto x = random_f32({37, 600}, rng);
    auto w = random_f32({600, 100}, rng);
    auto bias = random_f32({100}, rng);
    cases.push_back({"dense 37 x 600 -> 100", op::dense, [=](backend& b) {
                       tensor y, y2;
                       auto bb = on(b, bias);
                       OK(b.dense(on(b, x), on(b, w), &bb, y));
                       OK(b.dense(on(b, x), on(b, w), nullptr, y2));
                       return std::vector<tensor>{y, y2};
                     }});
    auto dy = random_f32({37, 100}, rng);
    cases.push_back({"dense 37 x 600 -> 100 backward", op::dense_backward, [=](backend& b) {
                       tensor dx, dw, db;
                       OK(b.dense_backward(on(b, x), on(b, w), on(b, dy), &dx, dw, &db));
                       return std::vector<tensor>{dx, dw, db};
                     }});
    // The weight gradient sums 300 rows in two blocks; 20 inputs end in a tile of 4.
    auto x2 = random_f32({300, 20}, rng);
    auto w2 = random_f32({20, 50}, rng);
    auto dy2 = random_f32({300, 50}, rng);
    cases.push_back({"dense 300 x 20 -> 50 backward", op::dense_backward, [=](backend& b) {
                       tensor dx, dw, db;
                       OK(b.dense_backward(on(b, x2), on(b, w2), on(b, dy2), &dx, dw, &db));
                       return std::vector<tensor>{dx, dw, db};
                     }});
    CHECK(run_cases(cases) > 0);
  }

  TEST_CASE("softmax, cross-entropy (large logits too) and the gradient") {
    std::mt19937_64 rng(9);
    auto logits = random_f32({300, 10}, rng, -5, 5);
    logits.data<float>()[0] = 1000; // must not overflow
    logits.data<float>()[11] = -1000;
    auto labels = random_i32({300}, rng, 10);
    CHECK(run_cases({{"softmax", op::softmax,
                      [&](backend& b) {
                        tensor p;
                        OK(b.softmax(on(b, logits), p));
                        return std::vector<tensor>{p};
                      }},
                     {"softmax_cross_entropy", op::softmax_cross_entropy,
                      [&](backend& b) {
                        tensor p, d;
                        auto loss = b.softmax_cross_entropy(on(b, logits), on(b, labels), p);
                        REQUIRE(loss);
                        OK(b.softmax_cross_entropy_backward(p, on(b, labels), d));
                        auto l = tensor::from({1}, std::vector<float>{*loss});
                        return std::vector<tensor>{p, d, *l};
                      }}})
          > 0);
  }

  TEST_CASE("dropout draws the same mask everywhere; gradient") {
    std::mt19937_64 rng(10);
    auto x = random_f32({64, 300}, rng);
    auto dy = random_f32({64, 300}, rng);
    CHECK(run_cases({{"dropout", op::dropout,
                      [&](backend& b) {
                        tensor y, mask, dx;
                        OK(b.dropout(on(b, x), 0.2f, 42, y, mask));
                        OK(b.dropout_backward(on(b, dy), mask, 0.2f, dx));
                        return std::vector<tensor>{y, mask, dx};
                      }}})
          > 0);
    // The mask keeps about 1 - p, and another seed draws another mask.
    tensor y, m1, m2;
    OK(cpu().dropout(x, 0.2f, 42, y, m1));
    OK(cpu().dropout(x, 0.2f, 43, y, m2));
    int64_t kept = 0, differ = 0;
    for (int64_t i = 0; i < m1.numel(); ++i) {
      kept += m1.data<uint8_t>()[i];
      differ += m1.data<uint8_t>()[i] != m2.data<uint8_t>()[i];
    }
    CHECK(kept > m1.numel() * 0.77);
    CHECK(kept < m1.numel() * 0.83);
    CHECK(differ > 0);
  }

  TEST_CASE("residual add, sigmoid, upsampling, top-k, concat") {
    std::mt19937_64 rng(11);
    auto a = random_f32({40, 1000}, rng, -10, 10);
    auto c = random_f32({40, 1000}, rng);
    a.data<float>()[5] = std::numeric_limits<float>::quiet_NaN();
    auto img = random_f32({2, 5, 7, 12}, rng);
    auto scores = random_f32({9, 50}, rng);
    scores.data<float>()[3] = scores.data<float>()[4]; // a tie
    scores.data<float>()[60] = std::numeric_limits<float>::quiet_NaN();
    auto p1 = random_f32({30, 7}, rng), p2 = random_f32({30, 5}, rng);
    auto dcat = random_f32({30, 12}, rng);
    CHECK(run_cases({{"add", op::add,
                      [&](backend& b) {
                        tensor y;
                        OK(b.add(on(b, a), on(b, c), y));
                        return std::vector<tensor>{y};
                      }},
                     {"sigmoid", op::sigmoid,
                      [&](backend& b) {
                        tensor y, dx;
                        OK(b.sigmoid(on(b, a), y));
                        OK(b.sigmoid_backward(y, on(b, c), dx));
                        return std::vector<tensor>{y, dx};
                      }},
                     {"upsample nearest x2", op::upsample,
                      [&](backend& b) {
                        tensor y;
                        OK(b.upsample(on(b, img), {upsample_mode::nearest, 2}, y));
                        return std::vector<tensor>{y};
                      }},
                     {"upsample bilinear x2, x3", op::upsample,
                      [&](backend& b) {
                        tensor y, y3;
                        OK(b.upsample(on(b, img), {upsample_mode::bilinear, 2}, y));
                        OK(b.upsample(on(b, img), {upsample_mode::bilinear, 3}, y3));
                        return std::vector<tensor>{y, y3};
                      }},
                     {"top_k", op::top_k,
                      [&](backend& b) {
                        tensor v, i, v1, i1;
                        OK(b.top_k(on(b, scores), 5, v, i));
                        OK(b.top_k(on(b, scores), 50, v1, i1));
                        return std::vector<tensor>{v, i, v1, i1};
                      }},
                     {"concat", op::concat,
                      [&](backend& b) {
                        tensor y, d1, d2;
                        auto q1 = on(b, p1), q2 = on(b, p2);
                        OK(b.concat({&q1, &q2}, y));
                        OK(b.concat_backward(on(b, dcat), {7, 5}, {&d1, &d2}));
                        return std::vector<tensor>{y, d1, d2};
                      }}})
          > 0);
    // Upsampling by 1 is the identity; top-1 is the maximum.
    tensor same;
    OK(cpu().upsample(img, {upsample_mode::bilinear, 1}, same));
    CHECK(mismatches("bilinear x1", img, same) == 0);
  }

  TEST_CASE("SGD with momentum and Adam over several steps") {
    std::mt19937_64 rng(12);
    auto param = random_f32({70000}, rng);
    std::vector<tensor> grads;
    for (int s = 0; s < 3; ++s)
      grads.push_back(random_f32({70000}, rng));
    CHECK(run_cases({{"sgd_step", op::sgd_step,
                      [&](backend& b) {
                        auto p = on(b, *param.clone());
                        tensor vel;
                        for (auto& g : grads)
                          OK(b.sgd_step(p, on(b, g), &vel, {0.1f, 0.9f, 1e-3f}));
                        return std::vector<tensor>{p, vel};
                      }},
                     {"adam_step", op::adam_step,
                      [&](backend& b) {
                        auto p = on(b, *param.clone());
                        tensor m, v;
                        for (int s = 0; s < 3; ++s)
                          OK(b.adam_step(p, on(b, grads[static_cast<size_t>(s)]), m, v, s + 1,
                                         {1e-2f, 0.9f, 0.999f, 1e-8f, 1e-4f}));
                        return std::vector<tensor>{p, m, v};
                      }}})
          > 0);
  }

  TEST_CASE("bad input gets a clear error, never a crash") {
    auto& b = cpu();
    tensor y, arg;
    auto x = tensor::zeros({2, 5, 3});
    auto w = tensor::zeros({6, 3, 4});
    auto err = b.conv1d(x, w, nullptr, {}, y);
    REQUIRE(err);
    CHECK(comb::is(err, comb::errc::invalid_argument));
    CHECK(comb::describe(err).find("shorter than kernel") != std::string::npos);
    auto tok = *tensor::from({1, 2}, std::vector<int32_t>{1, 99});
    err = b.embedding(tok, tensor::zeros({10, 4}), y);
    REQUIRE(err);
    CHECK(comb::describe(err).find("token 99") != std::string::npos);
    err = b.dense(tensor::zeros({2, 3}), tensor::zeros({4, 5}), nullptr, y);
    REQUIRE(err);
    CHECK(comb::describe(err).find("do not fit") != std::string::npos);
    auto labels = *tensor::from({2}, std::vector<int32_t>{0, 7});
    auto loss = b.softmax_cross_entropy(tensor::zeros({2, 3}), labels, y);
    REQUIRE(!loss);
    CHECK(comb::describe(loss.error()).find("label 7") != std::string::npos);
    err = b.dropout(x, 1.0f, 1, y, arg);
    CHECK(comb::is(err, comb::errc::invalid_argument));
    err = b.bias_act(tensor::zeros({2, 3}, dtype::i32), nullptr, activation::relu, y);
    CHECK(comb::describe(err).find("expected f32") != std::string::npos);
    err = b.top_k(tensor::zeros({2, 3}), 4, y, arg);
    CHECK(comb::is(err, comb::errc::invalid_argument));
    err = b.conv2d(tensor::zeros({1, 4, 4, 6}), tensor::zeros({3, 3, 4, 6}), nullptr,
                   conv2d_params{1, 1, 0, 0, 0, 0, 4}, y);
    CHECK(comb::is(err, comb::errc::invalid_argument));
    err = b.conv1d(tensor::zeros({2, 5, 0}), tensor::zeros({2, 0, 4}), nullptr, {}, y);
    CHECK(comb::describe(err).find("channel counts") != std::string::npos);
    auto neg = tensor::make({-1, 3});
    CHECK(!neg);
    auto cuda = tensor::make({4}, dtype::f32, device::cuda);
    if (!find_backend("cuda"))
      CHECK(comb::is(cuda.error(), comb::errc::unsupported));
  }

} // TEST_SUITE
