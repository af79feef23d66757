// The CUDA backend: device discovery, host<->device copies, the hand-written kernels,
// cuBLAS GEMM/dense and (optionally) cuDNN convolution; see cuda_backend.hpp.
#include "kernels/cuda/cuda_backend.hpp"

#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/cuda_detail.hpp"
#include "kernels/cuda/vision_kernels.cuh"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#if COMB_HAVE_CUDNN
#include <cudnn.h>
#endif

#include <limits>
#include <set>

namespace comb::kernels::cuda {

namespace {

/// A device allocation freed on scope exit.
struct device_memory {
  void* ptr = nullptr;
  device_memory() = default;
  device_memory(const device_memory&) = delete;
  device_memory& operator=(const device_memory&) = delete;
  ~device_memory() {
    if (ptr)
      (void) cudaFree(ptr); // nothing to do about a failing free in a destructor
  }
  template <class T>
  T* as() const {
    return static_cast<T*>(ptr);
  }
};

caf::error alloc(device_memory& m, size_t bytes) {
  COMB_CUDA_CHECK(cudaMalloc(&m.ptr, bytes == 0 ? 1 : bytes));
  return caf::none;
}

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

caf::error blas_handle(cublasHandle_t& out) {
  auto& h = thread_handles();
  if (!h.blas)
    COMB_CUBLAS_CHECK(cublasCreate(&h.blas));
  out = h.blas;
  return caf::none;
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
  static const std::set<std::string> ops = {"bias_act",      "softmax",
                                            "embedding",     "max_over_time",
                                            "depthwise_conv_nhwc", "gemm",
                                            "dense"};
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
  COMB_CUDA_CHECK(detail::launch_bias_act(dx.as<float>(), bias ? db.as<float>() : nullptr, rows,
                                          cols, lo, hi, nullptr));
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
  COMB_CUDA_CHECK(detail::launch_softmax(dx.as<float>(), rows, cols, dout.as<float>(), nullptr));
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
  COMB_CUDA_CHECK(detail::launch_embedding(dids.as<int32_t>(), n, dtable.as<float>(), vocab, dim,
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
  COMB_CUDA_CHECK(detail::launch_max_over_time(dx.as<float>(), batch, time, time, channels,
                                               dout.as<float>(), nullptr, nullptr));
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
  detail::dw_geometry g{p.n,        p.h,       p.w,        p.c,      p.kh,     p.kw,  p.stride_h,
                        p.stride_w, p.pad_top, p.pad_left, p.out_h,  p.out_w,  p.lo,  p.hi};
  COMB_CUDA_CHECK(detail::launch_depthwise_nhwc(g, din.as<float>(), dw.as<float>(),
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
  COMB_CUDA_CHECK(detail::launch_bias_act(dc.as<float>(), bias ? dbias.as<float>() : nullptr, m, n,
                                          lo, hi, nullptr));
  return download(c, dc, static_cast<size_t>(m) * n);
}

caf::error dense(const float* x, const float* w, const float* bias, int64_t m, int k, int n,
                 float* out) {
  if (device_count() == 0)
    return no_device();
  cublasHandle_t h;
  if (auto err = blas_handle(h))
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
  COMB_CUDA_CHECK(detail::launch_bias_act(dout.as<float>(), bias ? dbias.as<float>() : nullptr, m,
                                          n, -inf, inf, nullptr));
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

caf::error gemm_device(const float* a, const float* b, int64_t m, int k, int n, float* c) {
  cublasHandle_t h;
  if (auto err = blas_handle(h))
    return err;
  const float one = 1.0f, zero = 0.0f;
  // Row-major C = A B is column-major C^T = B^T A^T.
  COMB_CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, n, static_cast<int>(m), k, &one, b, n,
                                a, k, &zero, c, n));
  return caf::none;
}

caf::error conv2d_device(const conv2d_nhwc_params& p, int cout, const float* in,
                         const float* hwio, const float* bias, float* out) {
#if COMB_HAVE_CUDNN
  auto& hs = thread_handles();
  if (!hs.dnn)
    COMB_CUDNN_CHECK(cudnnCreate(&hs.dnn));
  // RAII for the descriptors.
  struct descs {
    cudnnTensorDescriptor_t x = nullptr, y = nullptr;
    cudnnFilterDescriptor_t f = nullptr;
    cudnnConvolutionDescriptor_t conv = nullptr;
    ~descs() {
      if (x) (void) cudnnDestroyTensorDescriptor(x);
      if (y) (void) cudnnDestroyTensorDescriptor(y);
      if (f) (void) cudnnDestroyFilterDescriptor(f);
      if (conv) (void) cudnnDestroyConvolutionDescriptor(conv);
    }
  } d;
  COMB_CUDNN_CHECK(cudnnCreateTensorDescriptor(&d.x));
  COMB_CUDNN_CHECK(cudnnCreateTensorDescriptor(&d.y));
  COMB_CUDNN_CHECK(cudnnCreateFilterDescriptor(&d.f));
  COMB_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&d.conv));
  COMB_CUDNN_CHECK(cudnnSetTensor4dDescriptor(d.x, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, p.n, p.c,
                                              p.h, p.w));
  COMB_CUDNN_CHECK(cudnnSetFilter4dDescriptor(d.f, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NHWC, cout, p.c,
                                              p.kh, p.kw));
  COMB_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(d.conv, p.pad_top, p.pad_left, p.stride_h,
                                                   p.stride_w, 1, 1, CUDNN_CROSS_CORRELATION,
                                                   CUDNN_DATA_FLOAT));
  int on, oc, oh, ow;
  COMB_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(d.conv, d.x, d.f, &on, &oc, &oh, &ow));
  if (oh != p.out_h || ow != p.out_w)
    return make_error(errc::unsupported,
                      "cuda conv2d_nhwc: cuDNN pads symmetrically; these parameters need "
                      "asymmetric padding (use the CPU backend)");
  COMB_CUDNN_CHECK(cudnnSetTensor4dDescriptor(d.y, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, p.n, cout,
                                              oh, ow));
  cudnnConvolutionFwdAlgoPerf_t perf[8];
  int found = 0;
  COMB_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(hs.dnn, d.x, d.f, d.conv, d.y, 8, &found,
                                                          perf));
  cudnnConvolutionFwdAlgo_t algo = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
  for (int i = 0; i < found; ++i)
    if (perf[i].status == CUDNN_STATUS_SUCCESS) {
      algo = perf[i].algo;
      break;
    }
  size_t ws_bytes = 0;
  COMB_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(hs.dnn, d.x, d.f, d.conv, d.y, algo,
                                                           &ws_bytes));
  // HWIO -> OHWI, cuDNN's NHWC filter layout, on the device.
  device_memory dfilt, dws;
  if (auto err = alloc(dfilt, static_cast<size_t>(p.kh) * p.kw * p.c * cout * sizeof(float)))
    return err;
  COMB_CUDA_CHECK(launch_hwio_to_ohwi(hwio, p.kh * p.kw, p.c, cout, dfilt.as<float>(), nullptr));
  if (auto err = alloc(dws, ws_bytes))
    return err;
  const float one = 1.0f, zero = 0.0f;
  COMB_CUDNN_CHECK(cudnnConvolutionForward(hs.dnn, &one, d.x, in, d.f, dfilt.ptr, d.conv, algo,
                                           dws.ptr, ws_bytes, &zero, d.y, out));
  COMB_CUDA_CHECK(launch_bias_act(out, bias, static_cast<int64_t>(p.n) * oh * ow, cout, p.lo, p.hi,
                                  nullptr));
  return caf::none;
#else
  return make_error(errc::unsupported, "cuda conv2d_nhwc: this build has no cuDNN");
#endif
}

} // namespace detail

} // namespace comb::kernels::cuda
