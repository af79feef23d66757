// comb::kernels conv1d_max: a valid 1-D convolution followed by max over time, bias and an
// activation, in one op (a TextCNN branch): y [B, C_out] = act(max over t of
// conv(x [B, T, C_in], w [K, C_in, C_out])[b, t, :] + bias), argmax i32 [B, C_out] the
// window start of the first maximum. Bias and a monotone activation commute with the max,
// so the result equals conv1d, max_over_time and bias_act run in turn. The fast version
// keeps each filter's running maximum in registers and never writes the [B, T', C_out]
// convolution output; its gradient follows only each filter's arg-max window (the gradient
// of the max is zero elsewhere), so the backward pass costs B * C_out windows, not B * T'.
// Pure functions of their arguments, thread-safe. The _ref versions compose the naive
// conv1d, max_over_time and bias_act references (tests only); the _cpu versions are the
// CPU backend's fast ones.
#pragma once

#include "kernels/ops/conv1d.hpp"

#include <cstdint>

namespace comb::kernels {

/// d: valid padding (d.pad_before == 0, d.t_out == d.time - d.k + 1 >= 1); with d.lengths,
/// row b's windows are the lengths[b] - k + 1 inside its own length. bias may be nullptr. y
/// and argmax [batch, c_out] are overwritten. The backward pass needs no lengths: it
/// follows argmax, which lies inside them.
void conv1d_max_ref(const conv1d_dims& d, const float* x, const float* w, const float* bias,
                    activation a, float* y, int32_t* argmax);
void conv1d_max_cpu(const conv1d_dims& d, const float* x, const float* w, const float* bias,
                    activation a, float* y, int32_t* argmax);

/// Gradients from the forward outputs y and argmax and dy [batch, c_out]: dw (overwritten),
/// dbias (overwritten; nullptr: not wanted) and dx, which is ADDED TO (nullptr: not
/// wanted), so that several convolutions over one input sum their input gradients.
void conv1d_max_backward_ref(const conv1d_dims& d, const float* x, const float* w, const float* y,
                             const int32_t* argmax, const float* dy, activation a, float* dx,
                             float* dw, float* dbias);
void conv1d_max_backward_cpu(const conv1d_dims& d, const float* x, const float* w, const float* y,
                             const int32_t* argmax, const float* dy, activation a, float* dx,
                             float* dw, float* dbias);

} // namespace comb::kernels
