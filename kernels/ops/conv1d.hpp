// comb::kernels conv1d: 1-D convolution over [batch, time, c_in] with weights
// [k, c_in, c_out] (cross-correlation, as PyTorch), optional bias, valid or same padding,
// and its gradients. The fast version runs each kernel tap window as one OpenBLAS sgemm
// over the whole batch (a window of k rows is k * c_in contiguous floats).
// Pure functions of their arguments (outputs are overwritten, never read), thread-safe.
// The _ref versions are naive loops used only by tests; the _cpu versions are the CPU
// backend's fast ones.
#pragma once

#include "kernels/op.hpp"

#include <cstdint>

namespace comb::kernels {

/// Sizes of one conv1d.
struct conv1d_dims {
  int64_t batch = 0, time = 0, c_in = 0, k = 0, c_out = 0;
  /// Output length and zeros before the sequence (0 for valid).
  int64_t t_out = 0, pad_before = 0;
  /// conv1d_max only: each row's own length (`batch` values, each in k..time; nullptr: all
  /// `time`). Row b's max runs over the windows inside its first lengths[b] steps, so what
  /// follows them (padding) reaches neither its output nor its gradients.
  const int32_t* lengths = nullptr;
};

/// Dims for x [b, t, c_in], w [k, c_in, c_out] and padding p.
conv1d_dims make_conv1d_dims(int64_t b, int64_t t, int64_t c_in, int64_t k, int64_t c_out,
                             padding1d p);

void conv1d_ref(const conv1d_dims& d, const float* x, const float* w, const float* bias, float* y);
void conv1d_cpu(const conv1d_dims& d, const float* x, const float* w, const float* bias, float* y);

/// dx and dbias may be nullptr.
void conv1d_backward_ref(const conv1d_dims& d, const float* x, const float* w, const float* dy,
                         float* dx, float* dw, float* dbias);
void conv1d_backward_cpu(const conv1d_dims& d, const float* x, const float* w, const float* dy,
                         float* dx, float* dw, float* dbias);

} // namespace comb::kernels
