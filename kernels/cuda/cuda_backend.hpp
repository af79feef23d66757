// comb::kernels::cuda: the CUDA backend's public face, free of CUDA headers so that code
// outside kernels/ can call it. Built with the ops' CUDA versions (kernels/ops/<op>.cu),
// cuBLAS for GEMM/dense and, where cuDNN was found, cuDNN for dense 2-D convolution; in a
// build without CUDA the same functions exist and answer "unsupported". Every CUDA, cuBLAS
// and cuDNN call goes through a check that records file and line and returns an error
// (errc::unavailable / errc::unsupported); nothing exits. device_count() treats a failing
// cudaGetDeviceCount (no driver, no device) as zero devices. The ops take host pointers,
// copy to the device, run and copy back: simple to test against the CPU references; the
// compute actor batches enough work per call for the copies not to dominate. Thread-safe:
// each calling thread gets its own cuBLAS/cuDNN handles.
#pragma once

#include "kernels/ops/depthwise_conv_nhwc.hpp"
#include "base/errc.hpp"

#include <caf/error.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace comb::kernels::cuda {

/// True when this build contains the CUDA backend.
bool built();

/// True when this build can use cuDNN.
bool has_cudnn();

/// CUDA devices that answer (0 when none, when the driver is missing, or in a CPU build).
int device_count();

/// "NVIDIA H100 (sm_90, 80 GiB)", or why no device is there.
std::string describe_device();

/// The backend behind the common interface: name() "cuda", supports(op), registered only
/// when device_count() > 0 (see register_if_available).
class backend {
public:
  std::string name() const { return "cuda"; }
  /// Ops this backend runs: bias_act, softmax, embedding, max_over_time, depthwise_conv_nhwc,
  /// gemm, dense, and conv2d_nhwc when cuDNN is present.
  bool supports(const std::string& op) const;
};

/// The backend when a device answers, else nullptr: callers fall back to the CPU backend.
const backend* register_if_available();

/// x[rows][cols] = clamp(x + bias[col], lo, hi) (bias may be nullptr). ReLU: lo = 0;
/// ReLU6: lo = 0, hi = 6.
caf::error bias_act(float* x, const float* bias, int64_t rows, int cols, float lo, float hi);

/// Row-wise softmax of x[rows][cols] into out (numerically stable).
caf::error softmax(const float* x, int64_t rows, int cols, float* out);

/// out[i][:] = table[ids[i]][:]; an id outside [0, vocab) is an error (invalid_argument).
caf::error embedding(const int32_t* ids, int64_t n, const float* table, int vocab, int dim,
                     float* out);

/// out[b][c] = max over t of x[b][t][c] (the first maximum, comparing with >).
caf::error max_over_time(const float* x, int batch, int time, int channels, float* out);

/// Depthwise NHWC convolution, same contract as kernels::depthwise_conv_nhwc.
caf::error depthwise_conv_nhwc(const conv2d_nhwc_params& p, const float* in, const float* weights,
                               const float* bias, float* out);

/// C[m][n] = clamp(A[m][k] * B[k][n] + bias, lo, hi), row-major, through cuBLAS sgemm.
caf::error gemm(const float* a, const float* b, const float* bias, int64_t m, int k, int n,
                float lo, float hi, float* c);

/// Dense layer: out[m][n] = x[m][k] * W^T + bias, W stored [n][k] (as PyTorch's Linear).
caf::error dense(const float* x, const float* w, const float* bias, int64_t m, int k, int n,
                 float* out);

/// Dense NHWC convolution through cuDNN, weights HWIO, then bias and clamp.
caf::error conv2d_nhwc(const conv2d_nhwc_params& p, int cout, const float* in, const float* hwio,
                       const float* bias, float* out);

} // namespace comb::kernels::cuda
