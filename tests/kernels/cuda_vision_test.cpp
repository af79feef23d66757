// Tests for the CUDA backend (kernels/cuda): each CUDA op against its CPU reference on random
// inputs (tolerance 1e-4 + |ref| * 1e-4; cuBLAS/cuDNN may use TF32-free float paths, checked
// at 1e-3). Skips visibly where no CUDA device answers; checks that a missing device is an
// error, not a crash.
#include "kernels/cuda/cuda_backend.hpp"
#include "kernels/ops/conv2d_nhwc.hpp"
#include "kernels/ops/depthwise_conv_nhwc.hpp"
#include "kernels/ops/fused_gemm.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <vector>

using namespace comb;
using namespace comb::kernels;

namespace {

std::vector<float> random_vec(size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v)
    x = d(rng);
  return v;
}

void validate(const std::vector<float>& got, const std::vector<float>& ref, const char* what,
              float eps = 1e-4f) {
  REQUIRE(got.size() == ref.size());
  int bad = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    bool ok = std::isfinite(ref[i]) ? std::fabs(got[i] - ref[i]) <= eps + std::fabs(ref[i]) * eps
                                    : (std::isnan(ref[i]) ? std::isnan(got[i]) : got[i] == ref[i]);
    if (!ok && ++bad <= 5)
      MESSAGE(what << "[" << i << "]: got " << got[i] << ", reference " << ref[i]);
  }
  CHECK_MESSAGE(bad == 0, what << ": " << bad << " mismatches");
}

bool have_device() {
  if (cuda::device_count() > 0) {
    MESSAGE("CUDA device: " << cuda::describe_device());
    return true;
  }
  MESSAGE("no CUDA device: skipping (" << cuda::describe_device() << ")");
  return false;
}

} // namespace

TEST_SUITE("kernels.cuda_vision") {
  TEST_CASE("without a device the backend does not register and ops return errors") {
    if (cuda::device_count() > 0) {
      CHECK(cuda::register_if_available() != nullptr);
      CHECK(cuda::register_if_available()->name() == "cuda");
      CHECK(cuda::register_if_available()->supports("depthwise_conv_nhwc"));
      CHECK_FALSE(cuda::register_if_available()->supports("no_such_op"));
      return;
    }
    MESSAGE(cuda::describe_device()
            << "; CUDA built: " << cuda::built() << ", cuDNN: " << cuda::has_cudnn());
    CHECK(cuda::register_if_available() == nullptr);
    std::vector<float> x(4, 1.0f);
    auto err = cuda::bias_act(x.data(), nullptr, 2, 2, 0.0f, 6.0f);
    REQUIRE(err);
    CHECK((is(err, errc::unavailable) || is(err, errc::unsupported)));
    CHECK(x[0] == 1.0f); // untouched
  }

  TEST_CASE("bias_act (ReLU6) matches the reference, NaN included") {
    if (!have_device())
      return;
    std::mt19937 rng(1);
    int64_t rows = 37;
    int cols = 53;
    auto x = random_vec(rows * cols, rng);
    for (auto& v : x)
      v *= 10;
    x[5] = NAN;
    auto bias = random_vec(cols, rng);
    std::vector<float> ref(x.size());
    for (int64_t r = 0; r < rows; ++r)
      for (int c = 0; c < cols; ++c) {
        float v = x[r * cols + c] + bias[c];
        ref[r * cols + c] = std::isnan(v) ? v : std::min(std::max(v, 0.0f), 6.0f);
      }
    auto got = x;
    auto err = cuda::bias_act(got.data(), bias.data(), rows, cols, 0.0f, 6.0f);
    REQUIRE_MESSAGE(!err, describe(err));
    validate(got, ref, "bias_act");
  }

  TEST_CASE("softmax matches the reference") {
    if (!have_device())
      return;
    std::mt19937 rng(2);
    for (int cols : {1, 10, 1001}) {
      int64_t rows = 9;
      auto x = random_vec(rows * cols, rng);
      for (auto& v : x)
        v *= 20;
      std::vector<float> ref(x.size()), got(x.size());
      for (int64_t r = 0; r < rows; ++r) {
        const float* xr = &x[r * cols];
        float m = *std::max_element(xr, xr + cols);
        double s = 0;
        for (int j = 0; j < cols; ++j)
          s += std::exp(static_cast<double>(xr[j]) - m);
        for (int j = 0; j < cols; ++j)
          ref[r * cols + j] = static_cast<float>(std::exp(static_cast<double>(xr[j]) - m) / s);
      }
      auto err = cuda::softmax(x.data(), rows, cols, got.data());
      REQUIRE_MESSAGE(!err, describe(err));
      validate(got, ref, "softmax");
    }
  }

  TEST_CASE("embedding matches the reference and rejects out-of-range ids") {
    if (!have_device())
      return;
    std::mt19937 rng(3);
    int vocab = 50, dim = 24;
    auto table = random_vec(vocab * dim, rng);
    std::vector<int32_t> ids = {0, 49, 7, 7, 13};
    std::vector<float> ref(ids.size() * dim), got(ref.size());
    for (size_t i = 0; i < ids.size(); ++i)
      for (int d = 0; d < dim; ++d)
        ref[i * dim + d] = table[ids[i] * dim + d];
    auto err = cuda::embedding(ids.data(), static_cast<int64_t>(ids.size()), table.data(), vocab,
                               dim, got.data());
    REQUIRE_MESSAGE(!err, describe(err));
    validate(got, ref, "embedding");
    ids[2] = 50;
    auto bad = cuda::embedding(ids.data(), static_cast<int64_t>(ids.size()), table.data(), vocab,
                               dim, got.data());
    REQUIRE(bad);
    CHECK(is(bad, errc::invalid_argument));
  }

  TEST_CASE("max_over_time matches the reference") {
    if (!have_device())
      return;
    std::mt19937 rng(4);
    int batch = 3, time = 17, channels = 300;
    auto x = random_vec(static_cast<size_t>(batch) * time * channels, rng);
    std::vector<float> ref(batch * channels), got(ref.size());
    for (int b = 0; b < batch; ++b)
      for (int c = 0; c < channels; ++c) {
        float m = -INFINITY;
        for (int t = 0; t < time; ++t)
          m = std::max(m, x[(static_cast<size_t>(b) * time + t) * channels + c]);
        ref[b * channels + c] = m;
      }
    auto err = cuda::max_over_time(x.data(), batch, time, channels, got.data());
    REQUIRE_MESSAGE(!err, describe(err));
    validate(got, ref, "max_over_time");
  }

  TEST_CASE("depthwise_conv_nhwc matches the reference") {
    if (!have_device())
      return;
    std::mt19937 rng(5);
    for (int stride : {1, 2}) {
      conv2d_nhwc_params p;
      p.n = 2;
      p.h = 15;
      p.w = 12;
      p.c = 40;
      p.stride_h = p.stride_w = stride;
      p.out_h = same_padding(p.h, 3, stride, p.pad_top);
      p.out_w = same_padding(p.w, 3, stride, p.pad_left);
      p.lo = 0.0f;
      p.hi = 6.0f;
      auto in = random_vec(static_cast<size_t>(p.n) * p.h * p.w * p.c, rng);
      auto w = random_vec(9 * p.c, rng);
      auto bias = random_vec(p.c, rng);
      size_t nout = static_cast<size_t>(p.n) * p.out_h * p.out_w * p.c;
      std::vector<float> ref(nout), got(nout);
      depthwise_conv_nhwc_ref(p, in.data(), w.data(), bias.data(), ref.data());
      auto err = cuda::depthwise_conv_nhwc(p, in.data(), w.data(), bias.data(), got.data());
      REQUIRE_MESSAGE(!err, describe(err));
      validate(got, ref, "cuda depthwise_conv_nhwc");
    }
  }

  TEST_CASE("cuBLAS gemm and dense match the reference") {
    if (!have_device())
      return;
    std::mt19937 rng(6);
    int64_t m = 33;
    int k = 70, n = 45;
    auto a = random_vec(m * k, rng);
    auto b = random_vec(static_cast<size_t>(k) * n, rng);
    auto bias = random_vec(n, rng);
    std::vector<float> ref(m * n), got(m * n);
    gemm_epilogue ep;
    ep.bias = bias.data();
    ep.lo = 0.0f;
    ep.hi = 6.0f;
    fused_gemm_ref(a.data(), m, k, k, b.data(), n, ep, ref.data(), n);
    auto err = cuda::gemm(a.data(), b.data(), bias.data(), m, k, n, 0.0f, 6.0f, got.data());
    REQUIRE_MESSAGE(!err, describe(err));
    validate(got, ref, "cuda gemm", 1e-3f);
    // dense: W stored [n][k].
    std::vector<float> wt(static_cast<size_t>(n) * k);
    for (int kk = 0; kk < k; ++kk)
      for (int j = 0; j < n; ++j)
        wt[static_cast<size_t>(j) * k + kk] = b[static_cast<size_t>(kk) * n + j];
    gemm_epilogue plain;
    plain.bias = bias.data();
    fused_gemm_ref(a.data(), m, k, k, b.data(), n, plain, ref.data(), n);
    err = cuda::dense(a.data(), wt.data(), bias.data(), m, k, n, got.data());
    REQUIRE_MESSAGE(!err, describe(err));
    validate(got, ref, "cuda dense", 1e-3f);
  }

  TEST_CASE("cuDNN conv2d_nhwc matches the reference") {
    if (!have_device())
      return;
    if (!cuda::has_cudnn()) {
      MESSAGE("built without cuDNN: skipping conv2d_nhwc");
      return;
    }
    std::mt19937 rng(7);
    conv2d_nhwc_params p;
    p.n = 2;
    p.h = 14;
    p.w = 10;
    p.c = 8;
    p.kh = p.kw = 3;
    p.stride_h = p.stride_w = 1;
    p.pad_top = p.pad_left = 1;
    p.out_h = 14;
    p.out_w = 10;
    p.lo = 0.0f;
    int cout = 12;
    auto in = random_vec(static_cast<size_t>(p.n) * p.h * p.w * p.c, rng);
    auto w = random_vec(static_cast<size_t>(9) * p.c * cout, rng);
    auto bias = random_vec(cout, rng);
    size_t nout = static_cast<size_t>(p.n) * p.out_h * p.out_w * cout;
    std::vector<float> ref(nout), got(nout);
    conv2d_nhwc_ref(p, cout, in.data(), w.data(), bias.data(), ref.data());
    auto err = cuda::conv2d_nhwc(p, cout, in.data(), w.data(), bias.data(), got.data());
    REQUIRE_MESSAGE(!err, describe(err));
    validate(got, ref, "cudnn conv2d_nhwc", 1e-3f);
  }

} // TEST_SUITE

#if COMB_TEST_REGISTRY
#  include "kernels/backend.hpp"

TEST_SUITE("kernels.cuda_vision") {
  TEST_CASE("the registry holds the CUDA backend exactly when a device answers") {
    auto cuda_backend = find_backend("cuda");
    if (cuda::device_count() == 0) {
      MESSAGE("no CUDA device: skipping the tensor backend comparison");
      CHECK(cuda_backend == nullptr);
      CHECK(default_backend(/*prefer_gpu=*/true)->name() == "cpu");
      return;
    }
    REQUIRE(cuda_backend != nullptr);
    CHECK(cuda_backend->supports(op::conv2d));
    // Depthwise conv2d, bias_act and softmax on the device against the CPU backend.
    std::mt19937 rng(8);
    auto x = tensor::from({2, 9, 7, 16}, random_vec(2 * 9 * 7 * 16, rng));
    auto w = tensor::from({3, 3, 1, 16}, random_vec(9 * 16, rng));
    auto b = tensor::from({16}, random_vec(16, rng));
    REQUIRE(x);
    REQUIRE(w);
    REQUIRE(b);
    conv2d_params p;
    p.stride_h = p.stride_w = 2;
    p.pad_top = p.pad_left = 0;
    p.pad_bottom = p.pad_right = 1;
    p.groups = 16;
    tensor y_cpu, y_cpu_act;
    REQUIRE(!cpu().conv2d(*x, *w, &*b, p, y_cpu));
    REQUIRE(!cpu().bias_act(y_cpu, nullptr, activation::relu6, y_cpu_act));
    auto xd = x->to(device::cuda), wd = w->to(device::cuda), bd = b->to(device::cuda);
    REQUIRE(xd);
    REQUIRE(wd);
    REQUIRE(bd);
    tensor yd, yd_act;
    auto err = cuda_backend->conv2d(*xd, *wd, &*bd, p, yd);
    REQUIRE_MESSAGE(!err, describe(err));
    err = cuda_backend->bias_act(yd, nullptr, activation::relu6, yd_act);
    REQUIRE_MESSAGE(!err, describe(err));
    auto back = yd_act.to(device::cpu);
    REQUIRE(back);
    std::vector<float> got(back->data<float>(), back->data<float>() + back->numel());
    std::vector<float> ref(y_cpu_act.data<float>(), y_cpu_act.data<float>() + y_cpu_act.numel());
    validate(got, ref, "cuda backend depthwise conv2d + relu6");
  }

} // TEST_SUITE
#endif
