// kernels.vision_ops: the NHWC vision ops (fused_gemm, depthwise_conv_nhwc, conv2d_nhwc),
// each fast CPU version (<op>_cpu.cpp) against its naive reference (<op>_ref.cpp) on seeded
// random inputs: the awkward shapes MobileNetV2 and the detector use, then random shapes,
// strides, paddings, clamps, bias and residual; with one and two threads. Compared as
// kernel_check.hpp does (1e-4 + |ref| * eps, non-finite values must match, the first
// mismatches printed). kernels.vision_ops_portable runs it again with the AVX-512 kernels off.
#include "kernels/detail/cpu_pool.hpp"
#include "kernels/ops/conv2d_nhwc.hpp"
#include "kernels/ops/depthwise_conv_nhwc.hpp"
#include "kernels/ops/fused_gemm.hpp"

#include "tests/kernels/kernel_check.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

using namespace comb::kernels;

namespace {

std::vector<float> random_vec(size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v)
    x = d(rng);
  return v;
}

tensor as_tensor(const std::vector<float>& v) {
  auto t = tensor::zeros({static_cast<int64_t>(v.size())});
  std::copy(v.begin(), v.end(), t.data<float>());
  return t;
}

/// The llm.c-style comparison of kernel_check.hpp over plain vectors.
void validate(const std::vector<float>& got, const std::vector<float>& ref, const std::string& what,
              float eps = 1e-4f) {
  REQUIRE(got.size() == ref.size());
  auto bad = test::mismatches(what, as_tensor(ref), as_tensor(got), eps);
  CHECK_MESSAGE(bad == 0, what << ": " << bad << " mismatches");
}

struct thread_guard {
  explicit thread_guard(int n) { detail::set_cpu_threads(n); }
  ~thread_guard() { detail::set_cpu_threads(0); }
};

/// Geometry of one convolution; out_h/out_w from explicit padding (pad_bottom/right as the
/// remainder) or TensorFlow "same".
conv2d_nhwc_params conv_geometry(int n, int h, int w, int c, int kh, int kw, int sh, int sw, int pt,
                                 int pl, int pb, int pr) {
  conv2d_nhwc_params p;
  p.n = n;
  p.h = h;
  p.w = w;
  p.c = c;
  p.kh = kh;
  p.kw = kw;
  p.stride_h = sh;
  p.stride_w = sw;
  p.pad_top = pt;
  p.pad_left = pl;
  p.out_h = (h + pt + pb - kh) / sh + 1;
  p.out_w = (w + pl + pr - kw) / sw + 1;
  return p;
}

/// A random clamp: none, ReLU or ReLU6.
void random_clamp(conv2d_nhwc_params& p, std::mt19937& rng) {
  switch (rng() % 3) {
  case 0:
    break;
  case 1:
    p.lo = 0.0f;
    break;
  default:
    p.lo = 0.0f, p.hi = 6.0f;
  }
}

} // namespace

TEST_SUITE("kernels.vision_ops") {
  TEST_CASE("fused_gemm matches the reference with bias, residual and clamps") {
    std::mt19937 rng(1);
    struct shape {
      int64_t m;
      int k, n;
    };
    for (int threads : {1, 2}) {
      thread_guard g(threads);
      for (auto s : {shape{1, 1, 1}, shape{7, 5, 3}, shape{9, 16, 33}, shape{100, 27, 32},
                     shape{257, 96, 24}, shape{49, 320, 1280}, shape{3, 1280, 1001}}) {
        auto a = random_vec(s.m * s.k, rng);
        auto b = random_vec(static_cast<size_t>(s.k) * s.n, rng);
        auto bias = random_vec(s.n, rng);
        auto res = random_vec(s.m * s.n, rng);
        for (int variant = 0; variant < 3; ++variant) {
          gemm_epilogue ep;
          ep.bias = variant >= 1 ? bias.data() : nullptr;
          if (variant == 2) {
            ep.residual = res.data();
            ep.ldr = s.n;
          }
          if (variant == 1) {
            ep.lo = 0.0f;
            ep.hi = 6.0f;
          }
          std::vector<float> ref(s.m * s.n), got(s.m * s.n, -7.0f);
          fused_gemm_ref(a.data(), s.m, s.k, s.k, b.data(), s.n, ep, ref.data(), s.n);
          fused_gemm(a.data(), s.m, s.k, pack_gemm_b(b.data(), s.k, s.n), ep, got.data(), s.n);
          validate(got, ref,
                   "fused_gemm " + std::to_string(s.m) + "x" + std::to_string(s.k) + "x"
                     + std::to_string(s.n));
        }
      }
    }
    MESSAGE("AVX-512 micro-kernel in use: " << fused_gemm_uses_avx512());
  }

  TEST_CASE("fused_gemm on random shapes, strided A, C and residual") {
    std::mt19937 rng(11);
    for (int threads : {1, 2}) {
      thread_guard g(threads);
      for (int trial = 0; trial < 40; ++trial) {
        int64_t m = 1 + rng() % 300;
        int k = 1 + static_cast<int>(rng() % 200);
        int n = 1 + static_cast<int>(rng() % 100);
        int64_t lda = k + rng() % 4, ldc = n + rng() % 4, ldr = n + rng() % 4;
        auto a = random_vec(m * lda, rng);
        auto b = random_vec(static_cast<size_t>(k) * n, rng);
        auto bias = random_vec(n, rng);
        auto res = random_vec(m * ldr, rng);
        gemm_epilogue ep;
        if (rng() % 2)
          ep.bias = bias.data();
        if (rng() % 2) {
          ep.residual = res.data();
          ep.ldr = ldr;
        }
        if (rng() % 2) {
          ep.lo = 0.0f;
          ep.hi = rng() % 2 ? 6.0f : ep.hi;
        }
        // Untouched padding columns of C must stay as they were: compare all of C.
        std::vector<float> ref(m * ldc, -7.0f), got(m * ldc, -7.0f);
        fused_gemm_ref(a.data(), m, k, lda, b.data(), n, ep, ref.data(), ldc);
        fused_gemm(a.data(), m, lda, pack_gemm_b(b.data(), k, n), ep, got.data(), ldc);
        validate(got, ref,
                 "fused_gemm random " + std::to_string(m) + "x" + std::to_string(k) + "x"
                   + std::to_string(n) + " threads " + std::to_string(threads));
      }
    }
  }

  TEST_CASE("fused_gemm propagates NaN and infinity like the reference") {
    std::vector<float> a = {1.0f, NAN, 2.0f, 3.0f}, b = {1.0f, 2.0f}, ref(2), got(2);
    b[0] = INFINITY;
    gemm_epilogue ep;
    fused_gemm_ref(a.data(), 2, 2, 2, b.data(), 1, ep, ref.data(), 1);
    fused_gemm(a.data(), 2, 2, pack_gemm_b(b.data(), 2, 1), ep, got.data(), 1);
    validate(got, ref, "fused_gemm non-finite");
  }

  TEST_CASE("depthwise_conv_nhwc matches the reference (3x3 and 5x5, strides, asymmetric padding, "
            "remainders)") {
    std::mt19937 rng(2);
    for (int threads : {1, 2}) {
      thread_guard g(threads);
      for (int c : {1, 16, 21, 96})
        for (int stride : {1, 2})
          for (int k : {3, 5})
            for (bool tf_pad : {true, false}) {
              conv2d_nhwc_params p;
              p.n = 2;
              p.h = 13;
              p.w = 10;
              p.c = c;
              p.kh = p.kw = k;
              p.stride_h = p.stride_w = stride;
              if (tf_pad) {
                p.out_h = same_padding(p.h, k, stride, p.pad_top);
                p.out_w = same_padding(p.w, k, stride, p.pad_left);
              } else {
                p.pad_top = p.pad_left = k / 2;
                p.out_h = (p.h + 2 * (k / 2) - k) / stride + 1;
                p.out_w = (p.w + 2 * (k / 2) - k) / stride + 1;
              }
              p.lo = 0.0f;
              p.hi = c == 21 ? 6.0f : INFINITY;
              auto in = random_vec(static_cast<size_t>(p.n) * p.h * p.w * c, rng);
              auto w = random_vec(k * k * c, rng);
              auto bias = random_vec(c, rng);
              size_t outn = static_cast<size_t>(p.n) * p.out_h * p.out_w * c;
              std::vector<float> ref(outn), got(outn);
              depthwise_conv_nhwc_ref(p, in.data(), w.data(), bias.data(), ref.data());
              depthwise_conv_nhwc(p, in.data(), w.data(), bias.data(), got.data());
              validate(got, ref, "depthwise_conv_nhwc");
            }
    }
  }

  TEST_CASE("depthwise_conv_nhwc on random shapes, kernels, strides, paddings and clamps") {
    std::mt19937 rng(12);
    for (int threads : {1, 2}) {
      thread_guard g(threads);
      for (int trial = 0; trial < 60; ++trial) {
        int kh = 1 + rng() % 5, kw = 1 + rng() % 5;
        int sh = 1 + rng() % 3, sw = 1 + rng() % 3;
        int h = kh + rng() % 20, w = kw + rng() % 20;
        int c = 1 + rng() % 70;
        auto p = conv_geometry(1 + rng() % 3, h, w, c, kh, kw, sh, sw, rng() % kh, rng() % kw,
                               rng() % kh, rng() % kw);
        random_clamp(p, rng);
        auto in = random_vec(static_cast<size_t>(p.n) * h * w * c, rng);
        auto wt = random_vec(static_cast<size_t>(kh) * kw * c, rng);
        auto bias = random_vec(c, rng);
        const float* b = rng() % 2 ? bias.data() : nullptr;
        size_t outn = static_cast<size_t>(p.n) * p.out_h * p.out_w * c;
        std::vector<float> ref(outn), got(outn, -7.0f);
        depthwise_conv_nhwc_ref(p, in.data(), wt.data(), b, ref.data());
        depthwise_conv_nhwc(p, in.data(), wt.data(), b, got.data());
        validate(got, ref,
                 "depthwise_conv_nhwc random k " + std::to_string(kh) + "x" + std::to_string(kw)
                   + " stride " + std::to_string(sh) + "x" + std::to_string(sw) + " c "
                   + std::to_string(c));
      }
    }
  }

  TEST_CASE("conv2d_nhwc matches the reference (3x3 stride 2, 1x1, residual)") {
    std::mt19937 rng(3);
    for (int threads : {1, 2}) {
      thread_guard g(threads);
      struct cfg {
        int k, stride, cin, cout;
        bool residual;
      };
      for (auto cf : {cfg{3, 2, 3, 32, false}, cfg{3, 1, 8, 5, true}, cfg{1, 1, 24, 40, true},
                      cfg{1, 2, 6, 7, false}}) {
        conv2d_nhwc_params p;
        p.n = 2;
        p.h = 11;
        p.w = 9;
        p.c = cf.cin;
        p.kh = p.kw = cf.k;
        p.stride_h = p.stride_w = cf.stride;
        p.out_h = same_padding(p.h, cf.k, cf.stride, p.pad_top);
        p.out_w = same_padding(p.w, cf.k, cf.stride, p.pad_left);
        auto in = random_vec(static_cast<size_t>(p.n) * p.h * p.w * cf.cin, rng);
        auto w = random_vec(static_cast<size_t>(cf.k) * cf.k * cf.cin * cf.cout, rng);
        auto bias = random_vec(cf.cout, rng);
        size_t outn = static_cast<size_t>(p.n) * p.out_h * p.out_w * cf.cout;
        auto res = random_vec(outn, rng);
        const float* r = cf.residual ? res.data() : nullptr;
        std::vector<float> ref(outn), got(outn);
        conv2d_nhwc_ref(p, cf.cout, in.data(), w.data(), bias.data(), ref.data(), r);
        conv2d_nhwc(p, pack_conv2d_nhwc(w.data(), cf.k, cf.k, cf.cin, cf.cout), in.data(),
                    bias.data(), got.data(), r);
        validate(got, ref, "conv2d_nhwc");
      }
    }
  }

  TEST_CASE("conv2d_nhwc on random shapes, kernels, strides, paddings, clamps and residuals") {
    std::mt19937 rng(13);
    for (int threads : {1, 2}) {
      thread_guard g(threads);
      for (int trial = 0; trial < 40; ++trial) {
        int kh = 1 + rng() % 4, kw = 1 + rng() % 4;
        int sh = 1 + rng() % 2, sw = 1 + rng() % 2;
        int h = kh + rng() % 16, w = kw + rng() % 16;
        int cin = 1 + rng() % 40, cout = 1 + rng() % 70;
        // One in four is a 1x1 stride-1 unpadded convolution (the GEMM-only path).
        bool pointwise = rng() % 4 == 0;
        if (pointwise)
          kh = kw = sh = sw = 1;
        auto p = pointwise ? conv_geometry(1 + rng() % 3, h, w, cin, 1, 1, 1, 1, 0, 0, 0, 0)
                           : conv_geometry(1 + rng() % 3, h, w, cin, kh, kw, sh, sw, rng() % kh,
                                           rng() % kw, rng() % kh, rng() % kw);
        random_clamp(p, rng);
        auto in = random_vec(static_cast<size_t>(p.n) * h * w * cin, rng);
        auto wt = random_vec(static_cast<size_t>(kh) * kw * cin * cout, rng);
        auto bias = random_vec(cout, rng);
        size_t outn = static_cast<size_t>(p.n) * p.out_h * p.out_w * cout;
        auto res = random_vec(outn, rng);
        const float* b = rng() % 2 ? bias.data() : nullptr;
        const float* r = rng() % 2 ? res.data() : nullptr;
        std::vector<float> ref(outn), got(outn, -7.0f);
        conv2d_nhwc_ref(p, cout, in.data(), wt.data(), b, ref.data(), r);
        conv2d_nhwc(p, pack_conv2d_nhwc(wt.data(), kh, kw, cin, cout), in.data(), b, got.data(), r);
        validate(got, ref,
                 "conv2d_nhwc random k " + std::to_string(kh) + "x" + std::to_string(kw)
                   + " stride " + std::to_string(sh) + "x" + std::to_string(sw) + " cin "
                   + std::to_string(cin) + " cout " + std::to_string(cout));
      }
    }
  }

  TEST_CASE("one pool: nested and concurrent regions finish, every part runs once") {
    thread_guard g(2);
    std::vector<int> hits(1000, 0);
    detail::parallel_for(10, [&](int outer) {
      // A nested region runs inline on the calling thread.
      detail::parallel_range(100, 1, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i)
          ++hits[outer * 100 + i];
      });
    });
    for (int h : hits)
      CHECK(h == 1);
    CHECK(detail::cpu_threads() == 2);
    detail::set_cpu_threads(1);
    CHECK(detail::cpu_threads() == 1);
  }

} // TEST_SUITE
