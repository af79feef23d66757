// Tests for the NHWC vision ops (fused_gemm, depthwise_conv_nhwc, conv2d_nhwc): each fast
// version against its plain reference on random inputs and awkward shapes, tolerance
// 1e-4 + |ref| * 1e-4, non-finite values must match; with one and two threads.
#include "kernels/detail/task_pool.hpp"
#include "kernels/ops/conv2d_nhwc.hpp"
#include "kernels/ops/depthwise_conv_nhwc.hpp"
#include "kernels/ops/fused_gemm.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <random>
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

/// Compares like llm.c's validate_result; prints the first mismatches.
void validate(const std::vector<float>& got, const std::vector<float>& ref, const char* what) {
  REQUIRE(got.size() == ref.size());
  int bad = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    bool ok = std::isfinite(ref[i]) ? std::fabs(got[i] - ref[i]) <= 1e-4f + std::fabs(ref[i]) * 1e-4f
                                    : (std::isnan(ref[i]) ? std::isnan(got[i]) : got[i] == ref[i]);
    if (!ok && ++bad <= 5)
      MESSAGE(what << "[" << i << "]: got " << got[i] << ", reference " << ref[i]);
  }
  CHECK_MESSAGE(bad == 0, what << ": " << bad << " mismatches");
}

struct thread_guard {
  explicit thread_guard(int n) {
    comb::kernels::detail::set_vision_threads(n);
  }
  ~thread_guard() {
    comb::kernels::detail::set_vision_threads(0);
  }
};

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
        fused_gemm_reference(a.data(), s.m, s.k, s.k, b.data(), s.n, ep, ref.data(), s.n);
        fused_gemm(a.data(), s.m, s.k, pack_gemm_b(b.data(), s.k, s.n), ep, got.data(), s.n);
        validate(got, ref, "fused_gemm");
      }
    }
  }
  MESSAGE("AVX-512 micro-kernel in use: " << fused_gemm_uses_avx512());
}

TEST_CASE("fused_gemm propagates NaN and infinity like the reference") {
  std::vector<float> a = {1.0f, NAN, 2.0f, 3.0f}, b = {1.0f, 2.0f}, ref(2), got(2);
  b[0] = INFINITY;
  gemm_epilogue ep;
  fused_gemm_reference(a.data(), 2, 2, 2, b.data(), 1, ep, ref.data(), 1);
  fused_gemm(a.data(), 2, 2, pack_gemm_b(b.data(), 2, 1), ep, got.data(), 1);
  validate(got, ref, "fused_gemm non-finite");
}

TEST_CASE("depthwise_conv_nhwc matches the reference (3x3 and 5x5, strides, asymmetric padding, remainders)") {
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
          depthwise_conv_nhwc_reference(p, in.data(), w.data(), bias.data(), ref.data());
          depthwise_conv_nhwc(p, in.data(), w.data(), bias.data(), got.data());
          validate(got, ref, "depthwise_conv_nhwc");
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
      std::vector<float> ref(outn), got(outn);
      conv2d_nhwc_reference(p, cf.cout, in.data(), w.data(), bias.data(), ref.data());
      if (cf.residual)
        for (size_t i = 0; i < outn; ++i)
          ref[i] += res[i];
      conv2d_nhwc(p, pack_conv2d_nhwc(w.data(), cf.k, cf.k, cf.cin, cf.cout), in.data(),
                  bias.data(), got.data(), cf.residual ? res.data() : nullptr);
      validate(got, ref, "conv2d_nhwc");
    }
  }
}

} // TEST_SUITE
