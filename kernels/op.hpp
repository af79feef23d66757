// comb::kernels::op: the list of operations a backend may run, and the parameters of those
// that take any. Layouts, for every backend: sequences are [batch, time, channels];
// images are NHWC; conv1d weights are [k, c_in, c_out]; conv2d weights are HWIO
// [kh, kw, c_in / groups, c_out]; dense weights are [in, out] (y = x W + b). Plain data,
// thread-safe.
#pragma once

#include <cstdint>
#include <string>

// The struct behind cudaStream_t, declared so that op headers can declare their CUDA
// versions without CUDA headers.
struct CUstream_st;

namespace comb::kernels {

/// A CUDA stream (cudaStream_t; nullptr: the default stream). An op's CUDA version
/// (kernels/ops/<op>.cu, built where CUDA is) is declared in the op's header as
/// `int <op>_cuda(..., cuda_stream s)`: device pointers in, the kernel launched on s, the
/// launch's cudaError_t returned as an int (0: success). Called from kernels/cuda only.
using cuda_stream = CUstream_st*;

/// Every operation of the kernels library, in one list: X(name) per op. The op enum,
/// to_string and the host backends' function tables (name##_ref and name##_cpu, declared
/// in kernels/ops/<op>.hpp; see detail/host_backend.hpp) are generated from it, so a new
/// op is one line here beside its files (and its name in kernels/CMakeLists.txt's
/// COMB_KERNEL_OPS), plus its typed method in backend.hpp/.cpp. conv1d_max is conv1d +
/// max over time + bias + activation, fused (a TextCNN branch).
#define COMB_KERNEL_OP_LIST(X)                                                                     \
  X(embedding)                                                                                     \
  X(embedding_backward) X(conv1d) X(conv1d_backward) X(conv2d) X(conv2d_backward)                  \
    X(batch_norm_fold) X(bias_act) X(bias_act_backward) X(max_over_time) X(max_over_time_backward) \
      X(pool2d) X(pool2d_backward) X(global_avg_pool) X(dense) X(dense_backward) X(softmax)        \
        X(softmax_cross_entropy) X(softmax_cross_entropy_backward) X(dropout) X(dropout_backward)  \
          X(add) X(sigmoid) X(sigmoid_backward) X(upsample) X(top_k) X(sgd_step) X(adam_step)      \
            X(concat) X(concat_backward) X(conv1d_max) X(conv1d_max_backward)

/// Backward ops produce gradients for the corresponding forward op; they overwrite their
/// outputs (no accumulation).
enum class op : uint8_t {
#define COMB_KERNEL_OP_ENUM(name) name,
  COMB_KERNEL_OP_LIST(COMB_KERNEL_OP_ENUM)
#undef COMB_KERNEL_OP_ENUM
  /// Not an op: the number of ops.
  count_,
};

/// "conv1d_backward" etc.
std::string to_string(op o);

/// Element-wise activation fused after a bias.
enum class activation : uint8_t {
  none,
  relu,
  /// min(max(x, 0), 6).
  relu6,
};

/// conv1d padding: "valid" (t_out = t - k + 1) or "same" (t_out = t; (k-1)/2 zeros before,
/// the rest after, as PyTorch's padding="same").
enum class padding1d : uint8_t { valid, same };

struct conv1d_params {
  padding1d padding = padding1d::valid;
};

struct conv2d_params {
  int stride_h = 1, stride_w = 1;
  int pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  /// c_in and c_out must be multiples; groups == c_in == c_out is depthwise.
  int groups = 1;
};

enum class pool_kind : uint8_t { max, avg };

struct pool2d_params {
  pool_kind kind = pool_kind::max;
  int kernel_h = 2, kernel_w = 2;
  int stride_h = 2, stride_w = 2;
  /// Zero padding on each side; avg counts only the elements inside the input.
  int pad_h = 0, pad_w = 0;
};

enum class upsample_mode : uint8_t {
  nearest,
  /// align_corners = false, half-pixel centres (PyTorch's default).
  bilinear,
};

struct upsample_params {
  upsample_mode mode = upsample_mode::nearest;
  int scale = 2;
};

struct sgd_params {
  float lr = 0.01f;
  /// 0: plain SGD (no velocity tensor needed).
  float momentum = 0;
  float weight_decay = 0;
};

struct adam_params {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  /// L2 added to the gradient (Adam, not AdamW).
  float weight_decay = 0;
};

} // namespace comb::kernels
