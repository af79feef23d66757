// Naive conv1d_max and its gradient (tests only): the conv1d, max_over_time and bias_act
// references run in turn, so the fused op is checked against the unfused definition.
#include "kernels/ops/conv1d_max.hpp"

#include "kernels/ops/bias_act.hpp"
#include "kernels/ops/max_over_time.hpp"

#include <vector>

namespace comb::kernels {

void conv1d_max_ref(const conv1d_dims& d, const float* x, const float* w, const float* bias,
                    activation a, float* y, int32_t* argmax) {
  std::vector<float> conv(static_cast<size_t>(d.batch * d.t_out * d.c_out));
  std::vector<float> pooled(static_cast<size_t>(d.batch * d.c_out));
  conv1d_ref(d, x, w, nullptr, conv.data());
  for (int64_t b = 0; b < d.batch; ++b) { // each row over its own windows
    int64_t valid = d.lengths ? d.lengths[b] - d.k + 1 : d.t_out;
    max_over_time_ref(conv.data() + b * d.t_out * d.c_out, 1, d.t_out, d.c_out, valid,
                      pooled.data() + b * d.c_out, argmax + b * d.c_out);
  }
  bias_act_ref(pooled.data(), d.batch, d.c_out, bias, a, y);
}

void conv1d_max_backward_ref(const conv1d_dims& d, const float* x, const float* w, const float* y,
                             const int32_t* argmax, const float* dy, activation a, float* dx,
                             float* dw, float* dbias) {
  std::vector<float> d_pooled(static_cast<size_t>(d.batch * d.c_out));
  std::vector<float> d_conv(static_cast<size_t>(d.batch * d.t_out * d.c_out));
  std::vector<float> d_x(dx ? static_cast<size_t>(d.batch * d.time * d.c_in) : 0);
  bias_act_backward_ref(y, dy, d.batch, d.c_out, a, d_pooled.data(), dbias);
  max_over_time_backward_ref(d_pooled.data(), argmax, d.batch, d.t_out, d.c_out, d_conv.data());
  conv1d_backward_ref(d, x, w, d_conv.data(), dx ? d_x.data() : nullptr, dw, nullptr);
  if (dx)
    for (size_t i = 0; i < d_x.size(); ++i)
      dx[i] += d_x[i];
}

} // namespace comb::kernels
