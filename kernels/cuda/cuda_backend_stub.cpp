// The CUDA backend in a build without CUDA: the same functions, answering "no device" /
// "unsupported", so callers need no #ifdef; see cuda_backend.hpp.
#include "kernels/cuda/cuda_backend.hpp"

namespace comb::kernels::cuda {

namespace {

caf::error not_built() {
  return make_error(errc::unsupported, "cuda: this build has no CUDA backend (CPU backend only)");
}

} // namespace

bool built() {
  return false;
}
bool has_cudnn() {
  return false;
}
int device_count() {
  return 0;
}
std::string describe_device() {
  return "CUDA backend not built";
}
bool backend::supports(const std::string&) const {
  return false;
}
const backend* register_if_available() {
  return nullptr;
}
caf::error bias_act(float*, const float*, int64_t, int, float, float) {
  return not_built();
}
caf::error softmax(const float*, int64_t, int, float*) {
  return not_built();
}
caf::error embedding(const int32_t*, int64_t, const float*, int, int, float*) {
  return not_built();
}
caf::error max_over_time(const float*, int, int, int, float*) {
  return not_built();
}
caf::error depthwise_conv_nhwc(const conv2d_nhwc_params&, const float*, const float*, const float*,
                               float*) {
  return not_built();
}
caf::error gemm(const float*, const float*, const float*, int64_t, int, int, float, float, float*) {
  return not_built();
}
caf::error dense(const float*, const float*, const float*, int64_t, int, int, float*) {
  return not_built();
}
caf::error conv2d_nhwc(const conv2d_nhwc_params&, int, const float*, const float*, const float*,
                       float*) {
  return not_built();
}

} // namespace comb::kernels::cuda
