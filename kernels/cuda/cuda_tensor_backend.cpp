// The CUDA backend behind comb::kernels::backend: tensors on device::cuda, memory from
// cudaMalloc (registered as the device_memory for cuda), ops from their CUDA versions
// (kernels/ops/<op>.cu: bias_act, softmax, embedding, max_over_time, depthwise conv2d, add),
// cuBLAS (dense) and cuDNN (dense conv2d, when built with it). Joins the registry through
// detail::make_cuda_backend, which returns nullptr (and registers nothing) when
// cudaGetDeviceCount fails or finds no device. Ops not listed answer errc::unsupported;
// callers fall back to the CPU backend. Thread-safe as the ops it calls.
#include "kernels/backend.hpp"
#include "kernels/cuda/cuda_backend.hpp"
#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/cuda_detail.hpp"
#include "kernels/detail/cuda_hook.hpp"
#include "kernels/device_memory.hpp"
#include "kernels/ops/bias_act.hpp"
#include "kernels/ops/depthwise_conv_nhwc.hpp"
#include "kernels/ops/elementwise.hpp"
#include "kernels/ops/embedding.hpp"
#include "kernels/ops/max_over_time.hpp"
#include "kernels/ops/softmax.hpp"

#include <cuda_runtime_api.h>

#include <limits>

namespace comb::kernels {

namespace {

cudaMemcpyKind kind_of(device dst, device src) {
  if (dst == device::cuda)
    return src == device::cuda ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice;
  return src == device::cuda ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost;
}

class cuda_memory final : public device_memory {
public:
  caf::expected<void*> allocate(size_t bytes) override {
    void* p = nullptr;
    if (cudaMalloc(&p, bytes == 0 ? 1 : bytes) != cudaSuccess) {
      (void) cudaGetLastError(); // clear; out of device memory is reported as overloaded
      return make_error(errc::overloaded,
                        "cuda: cannot allocate " + std::to_string(bytes) + " bytes on the device");
    }
    if (cudaMemset(p, 0, bytes) != cudaSuccess) {
      (void) cudaFree(p);
      return make_error(errc::unavailable, "cuda: cudaMemset failed on a fresh allocation");
    }
    return p;
  }

  void deallocate(void* p) noexcept override {
    (void) cudaFree(p); // nothing useful to do about a failing free
  }

  caf::error copy(void* dst, device dst_dev, const void* src, device src_dev,
                  size_t bytes) override {
    if (bytes)
      COMB_CUDA_CHECK(cudaMemcpy(dst, src, bytes, kind_of(dst_dev, src_dev)));
    return caf::none;
  }

  caf::error zero(void* p, size_t bytes) override {
    if (bytes)
      COMB_CUDA_CHECK(cudaMemset(p, 0, bytes));
    return caf::none;
  }
};

std::pair<float, float> clamp_of(activation a) {
  const float inf = std::numeric_limits<float>::infinity();
  switch (a) {
  case activation::relu:
    return {0.0f, inf};
  case activation::relu6:
    return {0.0f, 6.0f};
  default:
    return {-inf, inf};
  }
}

class cuda_tensor_backend final : public backend {
public:
  std::string name() const override { return "cuda"; }

  kernels::device device() const override { return device::cuda; }

  bool supports(op o) const override {
    switch (o) {
    case op::embedding:
    case op::bias_act:
    case op::max_over_time:
    case op::dense:
    case op::softmax:
    case op::add:
    case op::conv2d: // depthwise always; dense convolutions need cuDNN
      return true;
    default:
      return false;
    }
  }

protected:
  caf::error do_embedding(const tensor& tokens, const tensor& table, tensor& out) override {
    void* flag = nullptr;
    COMB_CUDA_CHECK(cudaMalloc(&flag, sizeof(int)));
    struct guard {
      void* p;
      ~guard() { (void) cudaFree(p); }
    } g{flag};
    COMB_CUDA_CHECK(cudaMemset(flag, 0, sizeof(int)));
    int vocab = static_cast<int>(table.dim(0)), dim = static_cast<int>(table.dim(1));
    COMB_CUDA_CHECK(embedding_cuda(tokens.data<int32_t>(), tokens.numel(), table.data<float>(),
                                   vocab, dim, out.data<float>(), static_cast<int*>(flag),
                                   nullptr));
    int bad = 0;
    COMB_CUDA_CHECK(cudaMemcpy(&bad, flag, sizeof(int), cudaMemcpyDeviceToHost));
    if (bad)
      return make_error(errc::invalid_argument,
                        "cuda embedding: a token lies outside 0.." + std::to_string(vocab - 1));
    return caf::none;
  }

  caf::error do_bias_act(const tensor& x, const tensor* bias, activation a, tensor& y) override {
    if (y.raw() != x.raw())
      COMB_CUDA_CHECK(cudaMemcpy(y.raw(), x.raw(), x.bytes(), cudaMemcpyDeviceToDevice));
    int64_t cols = x.dim(x.rank() - 1);
    auto [lo, hi] = clamp_of(a);
    COMB_CUDA_CHECK(bias_act_cuda(y.data<float>(), bias ? bias->data<float>() : nullptr,
                                  cols ? x.numel() / cols : 0, static_cast<int>(cols), lo, hi,
                                  nullptr));
    return caf::none;
  }

  caf::error do_max_over_time(const tensor& x, int64_t valid, tensor& y, tensor& argmax) override {
    int t = static_cast<int>(x.dim(1));
    COMB_CUDA_CHECK(max_over_time_cuda(x.data<float>(), static_cast<int>(x.dim(0)), t,
                                       valid > 0 ? static_cast<int>(valid) : t,
                                       static_cast<int>(x.dim(2)), y.data<float>(),
                                       argmax.data<int32_t>(), nullptr));
    return caf::none;
  }

  caf::error do_dense(const tensor& x, const tensor& w, const tensor* bias, tensor& y) override {
    int64_t m = x.dim(0);
    int k = static_cast<int>(x.dim(1)), n = static_cast<int>(w.dim(1));
    if (auto err = cuda::detail::gemm_device(x.data<float>(), w.data<float>(), m, k, n,
                                             y.data<float>()))
      return err;
    if (bias) {
      const float inf = std::numeric_limits<float>::infinity();
      COMB_CUDA_CHECK(
        bias_act_cuda(y.data<float>(), bias->data<float>(), m, n, -inf, inf, nullptr));
    }
    return caf::none;
  }

  caf::error do_softmax(const tensor& logits, tensor& probs) override {
    COMB_CUDA_CHECK(softmax_cuda(logits.data<float>(), logits.dim(0),
                                 static_cast<int>(logits.dim(1)), probs.data<float>(), nullptr));
    return caf::none;
  }

  caf::error do_add(const tensor& a, const tensor& b, tensor& y) override {
    COMB_CUDA_CHECK(
      add_cuda(a.data<float>(), b.data<float>(), a.numel(), y.data<float>(), nullptr));
    return caf::none;
  }

  caf::error do_conv2d(const tensor& x, const tensor& w, const tensor* bias, const conv2d_params& p,
                       tensor& y) override {
    conv2d_nhwc_params q;
    q.n = static_cast<int>(x.dim(0));
    q.h = static_cast<int>(x.dim(1));
    q.w = static_cast<int>(x.dim(2));
    q.c = static_cast<int>(x.dim(3));
    q.kh = static_cast<int>(w.dim(0));
    q.kw = static_cast<int>(w.dim(1));
    q.stride_h = p.stride_h;
    q.stride_w = p.stride_w;
    q.pad_top = p.pad_top;
    q.pad_left = p.pad_left;
    q.out_h = static_cast<int>(y.dim(1));
    q.out_w = static_cast<int>(y.dim(2));
    int cout = static_cast<int>(w.dim(3));
    const float* b = bias ? bias->data<float>() : nullptr;
    if (p.groups == q.c && cout == q.c && w.dim(2) == 1) {
      COMB_CUDA_CHECK(
        depthwise_conv_nhwc_cuda(q, x.data<float>(), w.data<float>(), b, y.data<float>(), nullptr));
      return caf::none;
    }
    if (p.groups != 1)
      return make_error(errc::unsupported,
                        "cuda conv2d: only depthwise and groups = 1 convolutions are supported");
    if (p.pad_top != p.pad_bottom || p.pad_left != p.pad_right)
      return make_error(errc::unsupported, "cuda conv2d: cuDNN needs symmetric padding");
    return cuda::detail::conv2d_device(q, cout, x.data<float>(), w.data<float>(), b,
                                       y.data<float>());
  }
};

} // namespace

namespace detail {

std::shared_ptr<backend> make_cuda_backend() {
  if (cuda::device_count() == 0)
    return nullptr;
  static cuda_memory memory; // lives for the process, as every cuda tensor may use it
  register_device_memory(device::cuda, &memory);
  return std::make_shared<cuda_tensor_backend>();
}

} // namespace detail

} // namespace comb::kernels
