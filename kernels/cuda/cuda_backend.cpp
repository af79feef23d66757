// The CUDA backend's host-pointer API: device discovery, host<->device copies around the
// ops' CUDA versions (kernels/ops/<op>.cu), cuBLAS dense, and the per-thread cuBLAS/cuDNN
// handles and device buffers of cuda_detail.hpp; see cuda_backend.hpp.
#include "kernels/cuda/cuda_backend.hpp"

#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/cuda_detail.hpp"
#include "kernels/ops/bias_act.hpp"
#include "kernels/ops/conv2d_nhwc.hpp"
#include "kernels/ops/depthwise_conv_nhwc.hpp"
#include "kernels/ops/embedding.hpp"
#include "kernels/ops/max_over_time.hpp"
#include "kernels/ops/softmax.hpp"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#if COMB_HAVE_CUDNN
#  include <cudnn.h>
#endif

#include <limits>
#include <set>

namespace comb::kernels::cuda {

namespace {

using detail::alloc;
using device_memory = detail::device_buffer;

template <class T>
caf::error upload(device_memory& m, const T* host, size_t n) {
  if (auto err = alloc(m, n * sizeof(T)))
    return err;
  if (n)
    COMB_CUDA_CHECK(cudaMemcpy(m.ptr, host, n * sizeof(T), cudaMemcpyHostToDevice));
  return caf::none;
}

template <class T>
caf::error download(T* host, const device_memory& m, size_t n) {
  COMB_CUDA_CHECK(cudaDeviceSynchronize());
  if (n)
    COMB_CUDA_CHECK(cudaMemcpy(host, m.ptr, n * sizeof(T), cudaMemcpyDeviceToHost));
  return caf::none;
}

caf::error no_device() {
  return make_error(errc::unavailable, "cuda: no CUDA device answers");
}

} // namespace

bool built() {
  return true;
}

bool has_cudnn() {
  return COMB_HAVE_CUDNN != 0;
}

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void) cudaGetLastError(); // clear the sticky error: no driver or no device means zero
    return 0;
  }
  return n;
}

std::string describe_device() {
  int n = 0;
  auto st = cudaGetDeviceCount(&n);
  if (st != cudaSuccess) {
    (void) cudaGetLastError();
    return std::string("no CUDA device (") + cudaGetErrorString(st) + ")";
  }
  if (n == 0)
    return "no CUDA device";
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess)
    return "CUDA device 0 (properties unavailable)";
  return std::string(prop.name) + " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor)
         + ", " + std::to_string(prop.totalGlobalMem >> 30) + " GiB)";
}

bool backend::supports(const std::string& op) const {
  static const std::set<std::string> ops = {
    "bias_act", "softmax", "embedding", "max_over_time", "depthwise_conv_nhwc", "gemm", "dense"};
  return ops.count(op) > 0 || (op == "conv2d_nhwc" && has_cudnn());
}

const backend* register_if_available() {
  static const backend the_backend;
  return device_count() > 0 ? &the_backend : nullptr;
}

caf::error bias_act(float* x, const float* bias, int64_t rows, int cols, float lo, float hi) {
  if (device_count() == 0)
    return no_device();
  size_t n = static_cast<size_t>(rows) * cols;
  device_memory dx, db;
  if (auto err = upload(dx, x, n))
    return err;
  if (bias)
    if (auto err = upload(db, bias, cols))
      return err;
  COMB_CUDA_CHECK(
    bias_act_cuda(dx.as<float>(), bias ? db.as<float>() : nullptr, rows, cols, lo, hi, nullptr));
  return download(x, dx, n);
}

caf::error softmax(const float* x, int64_t rows, int cols, float* out) {
  if (device_count() == 0)
    return no_device();
  size_t n = static_cast<size_t>(rows) * cols;
  device_memory dx, dout;
  if (auto err = upload(dx, x, n))
    return err;
  if (auto err = alloc(dout, n * sizeof(float)))
    return err;
  COMB_CUDA_CHECK(softmax_cuda(dx.as<float>(), rows, cols, dout.as<float>(), nullptr));
  return download(out, dout, n);
}

caf::error embedding(const int32_t* ids, int64_t n, const float* table, int vocab, int dim,
                     float* out) {
  if (device_count() == 0)
    return no_device();
  device_memory dids, dtable, dout, dbad;
  if (auto err = upload(dids, ids, n))
    return err;
  if (auto err = upload(dtable, table, static_cast<size_t>(vocab) * dim))
    return err;
  if (auto err = alloc(dout, static_cast<size_t>(n) * dim * sizeof(float)))
    return err;
  int zero = 0, bad = 0;
  if (auto err = upload(dbad, &zero, 1))
    return err;
  COMB_CUDA_CHECK(embedding_cuda(dids.as<int32_t>(), n, dtable.as<float>(), vocab, dim,
                                 dout.as<float>(), dbad.as<int>(), nullptr));
  if (auto err = download(&bad, dbad, 1))
    return err;
  if (bad)
    return make_error(errc::invalid_argument,
                      "cuda embedding: a token id lies outside [0, " + std::to_string(vocab) + ")");
  return download(out, dout, static_cast<size_t>(n) * dim);
}

caf::error max_over_time(const float* x, int batch, int time, int channels, float* out) {
  if (device_count() == 0)
    return no_device();
  device_memory dx, dout;
  if (auto err = upload(dx, x, static_cast<size_t>(batch) * time * channels))
    return err;
  if (auto err = alloc(dout, static_cast<size_t>(batch) * channels * sizeof(float)))
    return err;
  COMB_CUDA_CHECK(max_over_time_cuda(dx.as<float>(), batch, time, time, channels, dout.as<float>(),
                                     nullptr, nullptr));
  return download(out, dout, static_cast<size_t>(batch) * channels);
}

caf::error depthwise_conv_nhwc(const conv2d_nhwc_params& p, const float* in, const float* weights,
                               const float* bias, float* out) {
  if (device_count() == 0)
    return no_device();
  device_memory din, dw, db, dout;
  size_t nin = static_cast<size_t>(p.n) * p.h * p.w * p.c;
  size_t nout = static_cast<size_t>(p.n) * p.out_h * p.out_w * p.c;
  if (auto err = upload(din, in, nin))
    return err;
  if (auto err = upload(dw, weights, static_cast<size_t>(p.kh) * p.kw * p.c))
    return err;
  if (bias)
    if (auto err = upload(db, bias, p.c))
      return err;
  if (auto err = alloc(dout, nout * sizeof(float)))
    return err;
  COMB_CUDA_CHECK(depthwise_conv_nhwc_cuda(p, din.as<float>(), dw.as<float>(),
                                           bias ? db.as<float>() : nullptr, dout.as<float>(),
                                           nullptr));
  return download(out, dout, nout);
}

caf::error gemm(const float* a, const float* b, const float* bias, int64_t m, int k, int n,
                float lo, float hi, float* c) {
  if (device_count() == 0)
    return no_device();
  device_memory da, dbm, dbias, dc;
  if (auto err = upload(da, a, static_cast<size_t>(m) * k))
    return err;
  if (auto err = upload(dbm, b, static_cast<size_t>(k) * n))
    return err;
  if (bias)
    if (auto err = upload(dbias, bias, n))
      return err;
  if (auto err = alloc(dc, static_cast<size_t>(m) * n * sizeof(float)))
    return err;
  if (auto err = detail::gemm_device(da.as<float>(), dbm.as<float>(), m, k, n, dc.as<float>()))
    return err;
  COMB_CUDA_CHECK(
    bias_act_cuda(dc.as<float>(), bias ? dbias.as<float>() : nullptr, m, n, lo, hi, nullptr));
  return download(c, dc, static_cast<size_t>(m) * n);
}

caf::error dense(const float* x, const float* w, const float* bias, int64_t m, int k, int n,
                 float* out) {
  if (device_count() == 0)
    return no_device();
  cublasHandle_t h = nullptr;
  if (auto err = detail::blas_handle(h))
    return err;
  device_memory dx, dw, dbias, dout;
  if (auto err = upload(dx, x, static_cast<size_t>(m) * k))
    return err;
  if (auto err = upload(dw, w, static_cast<size_t>(n) * k))
    return err;
  if (bias)
    if (auto err = upload(dbias, bias, n))
      return err;
  if (auto err = alloc(dout, static_cast<size_t>(m) * n * sizeof(float)))
    return err;
  const float one = 1.0f, zero = 0.0f;
  // out^T (n x m) = W (n x k) x^T (k x m); row-major W is column-major W^T, hence OP_T.
  COMB_CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, n, static_cast<int>(m), k, &one,
                                dw.as<float>(), k, dx.as<float>(), k, &zero, dout.as<float>(), n));
  const float inf = std::numeric_limits<float>::infinity();
  COMB_CUDA_CHECK(
    bias_act_cuda(dout.as<float>(), bias ? dbias.as<float>() : nullptr, m, n, -inf, inf, nullptr));
  return download(out, dout, static_cast<size_t>(m) * n);
}

caf::error conv2d_nhwc(const conv2d_nhwc_params& p, int cout, const float* in, const float* hwio,
                       const float* bias, float* out) {
  if (!has_cudnn())
    return make_error(errc::unsupported, "cuda conv2d_nhwc: this build has no cuDNN");
  if (device_count() == 0)
    return no_device();
  device_memory din, dfilt, dbias, dout;
  size_t nout = static_cast<size_t>(p.n) * p.out_h * p.out_w * cout;
  if (auto err = upload(din, in, static_cast<size_t>(p.n) * p.h * p.w * p.c))
    return err;
  if (auto err = upload(dfilt, hwio, static_cast<size_t>(p.kh) * p.kw * p.c * cout))
    return err;
  if (bias)
    if (auto err = upload(dbias, bias, cout))
      return err;
  if (auto err = alloc(dout, nout * sizeof(float)))
    return err;
  if (auto err = detail::conv2d_device(p, cout, din.as<float>(), dfilt.as<float>(),
                                       bias ? dbias.as<float>() : nullptr, dout.as<float>()))
    return err;
  return download(out, dout, nout);
}

namespace detail {

device_buffer::~device_buffer() {
  if (ptr)
    (void) cudaFree(ptr); // nothing to do about a failing free in a destructor
}

caf::error alloc(device_buffer& m, size_t bytes) {
  COMB_CUDA_CHECK(cudaMalloc(&m.ptr, bytes == 0 ? 1 : bytes));
  return caf::none;
}

namespace {

/// Per-thread library handles, created on first use.
struct handles {
  cublasHandle_t blas = nullptr;
#if COMB_HAVE_CUDNN
  cudnnHandle_t dnn = nullptr;
#endif
  ~handles() {
    if (blas)
      (void) cublasDestroy(blas); // process teardown may already have dropped the context
#if COMB_HAVE_CUDNN
    if (dnn)
      (void) cudnnDestroy(dnn);
#endif
  }
};

handles& thread_handles() {
  thread_local handles h;
  return h;
}

} // namespace

caf::error blas_handle(cublasContext*& out) {
  auto& h = thread_handles();
  if (!h.blas)
    COMB_CUBLAS_CHECK(cublasCreate(&h.blas));
  out = h.blas;
  return caf::none;
}

caf::error dnn_handle(cudnnContext*& out) {
#if COMB_HAVE_CUDNN
  auto& h = thread_handles();
  if (!h.dnn)
    COMB_CUDNN_CHECK(cudnnCreate(&h.dnn));
  out = h.dnn;
  return caf::none;
#else
  out = nullptr;
  return make_error(errc::unsupported, "cuda: this build has no cuDNN");
#endif
}

} // namespace detail

} // namespace comb::kernels::cuda
