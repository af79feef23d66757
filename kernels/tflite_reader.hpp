// comb::kernels::tflite_model: a TensorFlow Lite flatbuffer (schema.fbs) read into plain
// structs: the first subgraph's tensors (shape, type, buffer, quantization), operators
// (builtin code, inputs, outputs, the builtin options Comb's models use) and buffers.
// The reader is Comb's own bounds-checked FlatBuffers walker: every offset, vtable,
// vector and string is checked against the file before it is read, so a corrupt or
// truncated file yields errc::corrupt_data naming the field, never a crash. A model
// value owns its bytes; it is immutable after reading and safe to share across threads.
#pragma once

#include "base/errc.hpp"

#include <caf/expected.hpp>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace comb::kernels {

/// Element types of TFLite tensors (schema.fbs TensorType), the ones Comb names.
enum class tflite_type : int8_t {
  float32 = 0,
  float16 = 1,
  int32 = 2,
  uint8 = 3,
  int64 = 4,
  string = 5,
  boolean = 6,
  int16 = 7,
  complex64 = 8,
  int8 = 9,
};

/// Builtin operator codes (schema.fbs BuiltinOperator) that Comb's importers use.
namespace tflite_op {
constexpr int32_t add = 0;
constexpr int32_t average_pool_2d = 1;
constexpr int32_t concatenation = 2;
constexpr int32_t conv_2d = 3;
constexpr int32_t depthwise_conv_2d = 4;
constexpr int32_t dequantize = 6;
constexpr int32_t fully_connected = 9;
constexpr int32_t logistic = 14;
constexpr int32_t max_pool_2d = 17;
constexpr int32_t relu = 19;
constexpr int32_t relu6 = 21;
constexpr int32_t reshape = 22;
constexpr int32_t softmax = 25;
constexpr int32_t mean = 40;
constexpr int32_t squeeze = 43;
constexpr int32_t quantize = 114;
} // namespace tflite_op

/// Returns a readable name for a builtin code ("CONV_2D"), or "BUILTIN_<n>".
std::string tflite_op_name(int32_t code);

/// Fused activation (schema.fbs ActivationFunctionType).
enum class tflite_activation : int8_t {
  none = 0,
  relu = 1,
  relu_n1_to_1 = 2,
  relu6 = 3,
  tanh = 4,
  sign_bit = 5
};

/// Padding (schema.fbs Padding).
enum class tflite_padding : int8_t { same = 0, valid = 1 };

/// Per-tensor or per-axis affine quantization: real = scale * (q - zero_point).
struct tflite_quantization {
  std::vector<float> scale;
  std::vector<int64_t> zero_point;
  int32_t quantized_dimension = 0;
  /// True when at least one scale is present.
  bool present() const { return !scale.empty(); }
};

/// One tensor of the subgraph.
struct tflite_tensor {
  std::string name;
  std::vector<int32_t> shape;
  tflite_type type = tflite_type::float32;
  /// Index into tflite_model::buffers; buffer 0 is the empty sentinel.
  uint32_t buffer = 0;
  tflite_quantization quant;
  /// Number of elements (product of shape; 1 for a scalar).
  int64_t elements() const;
};

/// The builtin options Comb reads, flattened (fields that do not apply keep defaults).
struct tflite_options {
  tflite_padding padding = tflite_padding::same;
  int32_t stride_w = 1;
  int32_t stride_h = 1;
  int32_t dilation_w = 1;
  int32_t dilation_h = 1;
  int32_t depth_multiplier = 1;
  int32_t filter_w = 1;
  int32_t filter_h = 1;
  tflite_activation activation = tflite_activation::none;
  float beta = 1.0f;
  std::vector<int32_t> new_shape;
};

/// One operator of the subgraph, in execution order.
struct tflite_operator {
  int32_t builtin_code = 0;
  std::string custom_code;
  /// Tensor indices; -1 marks an omitted optional input.
  std::vector<int32_t> inputs;
  std::vector<int32_t> outputs;
  /// schema.fbs BuiltinOptions union type (0 when absent).
  uint8_t options_type = 0;
  tflite_options options;
};

/// A byte range of the model file holding one buffer's data.
struct tflite_buffer {
  uint64_t offset = 0;
  uint64_t size = 0;
};

/// A read TFLite model (first subgraph). Owns the file's bytes.
struct tflite_model {
  uint32_t version = 0;
  std::string description;
  std::vector<tflite_tensor> tensors;
  std::vector<tflite_operator> operators;
  std::vector<int32_t> inputs;
  std::vector<int32_t> outputs;
  std::vector<tflite_buffer> buffers;
  std::vector<uint8_t> bytes;

  /// The raw data of tensor `t`'s buffer (empty for activations).
  std::span<const uint8_t> data(const tflite_tensor& t) const;

  /// Dequantizes a constant tensor to f32 (uint8/int8/int32 with scale and zero point,
  /// or float32 as is). Errors (bad_model) when the tensor has no data, the data size
  /// does not match its shape, or quantization parameters are missing or malformed.
  caf::expected<std::vector<float>> dequantize(size_t tensor) const;
};

/// Parses a TFLite flatbuffer held in memory (the bytes are copied into the model).
caf::expected<tflite_model> read_tflite(std::span<const uint8_t> bytes);

/// Reads and parses a TFLite file; errc::not_found when it cannot be opened.
caf::expected<tflite_model> load_tflite(const std::string& path);

} // namespace comb::kernels
