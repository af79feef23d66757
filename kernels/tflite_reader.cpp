// Bounds-checked reader of TFLite flatbuffers; see tflite_reader.hpp.
#include "kernels/tflite_reader.hpp"

#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>

namespace comb::kernels {

namespace {

/// Thrown inside the walker; read_tflite turns it into errc::corrupt_data.
struct parse_failure {
  std::string what;
};

[[noreturn]] void fail(std::string what) {
  throw parse_failure{std::move(what)};
}

/// A checked view of FlatBuffers bytes. Positions are byte offsets from the start.
class flatbuffer_view {
public:
  struct table {
    uint64_t pos = 0;
    uint64_t vtable = 0;
    uint16_t vsize = 0;
    uint16_t tsize = 0;
  };

  /// A vector: `count` elements of `elem` bytes starting at `pos`.
  struct vec {
    uint64_t pos = 0;
    uint32_t count = 0;
  };

  explicit flatbuffer_view(std::span<const uint8_t> b) : b_(b) {}

  template <class T>
  T read(uint64_t pos, const char* what) const {
    if (pos > b_.size() || b_.size() - pos < sizeof(T))
      fail(std::string(what) + ": offset " + std::to_string(pos) + " past end of file ("
           + std::to_string(b_.size()) + " bytes)");
    T x;
    std::memcpy(&x, b_.data() + pos, sizeof(T));
    return x;
  }

  table table_at(uint64_t pos, const char* what) const {
    table t;
    t.pos = pos;
    auto soff = read<int32_t>(pos, what);
    int64_t vt = static_cast<int64_t>(pos) - soff;
    if (vt < 0 || static_cast<uint64_t>(vt) + 4 > b_.size())
      fail(std::string(what) + ": vtable offset out of range at " + std::to_string(pos));
    t.vtable = static_cast<uint64_t>(vt);
    t.vsize = read<uint16_t>(t.vtable, what);
    t.tsize = read<uint16_t>(t.vtable + 2, what);
    if (t.vsize < 4 || (t.vsize & 1) || t.vtable + t.vsize > b_.size())
      fail(std::string(what) + ": malformed vtable at " + std::to_string(t.vtable));
    if (t.tsize < 4 || pos + t.tsize > b_.size())
      fail(std::string(what) + ": table at " + std::to_string(pos) + " runs past end of file");
    return t;
  }

  table root() const {
    if (b_.size() < 8)
      fail("file too short for a flatbuffer (" + std::to_string(b_.size()) + " bytes)");
    return table_at(read<uint32_t>(0, "root offset"), "root table");
  }

  /// Position of field `id` inside table `t`, or nullopt when absent.
  std::optional<uint64_t> field(const table& t, int id, size_t size, const char* what) const {
    uint64_t slot = 4 + 2 * static_cast<uint64_t>(id);
    if (slot + 2 > t.vsize)
      return std::nullopt;
    auto off = read<uint16_t>(t.vtable + slot, what);
    if (off == 0)
      return std::nullopt;
    if (off + size > t.tsize)
      fail(std::string(what) + ": field lies outside its table at " + std::to_string(t.pos));
    return t.pos + off;
  }

  template <class T>
  T scalar(const table& t, int id, T def, const char* what) const {
    auto p = field(t, id, sizeof(T), what);
    return p ? read<T>(*p, what) : def;
  }

  /// Follows the uoffset stored at `p`.
  uint64_t deref(uint64_t p, const char* what) const {
    auto off = read<uint32_t>(p, what);
    uint64_t target = p + off;
    if (target >= b_.size())
      fail(std::string(what) + ": offset points past end of file");
    return target;
  }

  std::optional<table> sub_table(const table& t, int id, const char* what) const {
    auto p = field(t, id, 4, what);
    if (!p)
      return std::nullopt;
    return table_at(deref(*p, what), what);
  }

  std::optional<vec> vector(const table& t, int id, size_t elem, const char* what) const {
    auto p = field(t, id, 4, what);
    if (!p)
      return std::nullopt;
    auto start = deref(*p, what);
    auto n = read<uint32_t>(start, what);
    if (static_cast<uint64_t>(n) * elem > b_.size() - start - 4)
      fail(std::string(what) + ": vector of " + std::to_string(n)
           + " elements runs past end of file");
    return vec{start + 4, n};
  }

  table vector_table(const vec& v, uint32_t i, const char* what) const {
    return table_at(deref(v.pos + 4ull * i, what), what);
  }

  std::string string(const table& t, int id, const char* what) const {
    auto v = vector(t, id, 1, what);
    if (!v)
      return {};
    return std::string(reinterpret_cast<const char*>(b_.data() + v->pos), v->count);
  }

  template <class T>
  std::vector<T> scalars(const table& t, int id, const char* what) const {
    std::vector<T> out;
    if (auto v = vector(t, id, sizeof(T), what)) {
      out.resize(v->count);
      if (v->count)
        std::memcpy(out.data(), b_.data() + v->pos, v->count * sizeof(T));
    }
    return out;
  }

  size_t size() const { return b_.size(); }

private:
  std::span<const uint8_t> b_;
};

// BuiltinOptions union type values (schema.fbs) for the option tables Comb reads.
constexpr uint8_t opt_conv2d = 1;
constexpr uint8_t opt_depthwise_conv2d = 2;
constexpr uint8_t opt_pool2d = 5;
constexpr uint8_t opt_fully_connected = 8;
constexpr uint8_t opt_softmax = 9;
constexpr uint8_t opt_add = 11;
constexpr uint8_t opt_reshape = 17;

tflite_activation activation_of(int8_t v, const char* what) {
  if (v < 0 || v > 5)
    fail(std::string(what) + ": unknown fused activation " + std::to_string(v));
  return static_cast<tflite_activation>(v);
}

tflite_padding padding_of(int8_t v, const char* what) {
  if (v != 0 && v != 1)
    fail(std::string(what) + ": unknown padding " + std::to_string(v));
  return static_cast<tflite_padding>(v);
}

void read_options(const flatbuffer_view& fb, const flatbuffer_view::table& op,
                  tflite_operator& out) {
  out.options_type = fb.scalar<uint8_t>(op, 3, 0, "operator.builtin_options_type");
  auto t = fb.sub_table(op, 4, "operator.builtin_options");
  if (!t)
    return;
  auto& o = out.options;
  switch (out.options_type) {
  case opt_conv2d:
    o.padding = padding_of(fb.scalar<int8_t>(*t, 0, 0, "Conv2DOptions.padding"), "Conv2DOptions");
    o.stride_w = fb.scalar<int32_t>(*t, 1, 0, "Conv2DOptions.stride_w");
    o.stride_h = fb.scalar<int32_t>(*t, 2, 0, "Conv2DOptions.stride_h");
    o.activation = activation_of(fb.scalar<int8_t>(*t, 3, 0, "Conv2DOptions.activation"),
                                 "Conv2DOptions");
    o.dilation_w = fb.scalar<int32_t>(*t, 4, 1, "Conv2DOptions.dilation_w");
    o.dilation_h = fb.scalar<int32_t>(*t, 5, 1, "Conv2DOptions.dilation_h");
    break;
  case opt_depthwise_conv2d:
    o.padding = padding_of(fb.scalar<int8_t>(*t, 0, 0, "DepthwiseConv2DOptions.padding"),
                           "DepthwiseConv2DOptions");
    o.stride_w = fb.scalar<int32_t>(*t, 1, 0, "DepthwiseConv2DOptions.stride_w");
    o.stride_h = fb.scalar<int32_t>(*t, 2, 0, "DepthwiseConv2DOptions.stride_h");
    o.depth_multiplier = fb.scalar<int32_t>(*t, 3, 0, "DepthwiseConv2DOptions.depth_multiplier");
    o.activation = activation_of(fb.scalar<int8_t>(*t, 4, 0, "DepthwiseConv2DOptions.activation"),
                                 "DepthwiseConv2DOptions");
    o.dilation_w = fb.scalar<int32_t>(*t, 5, 1, "DepthwiseConv2DOptions.dilation_w");
    o.dilation_h = fb.scalar<int32_t>(*t, 6, 1, "DepthwiseConv2DOptions.dilation_h");
    break;
  case opt_pool2d:
    o.padding = padding_of(fb.scalar<int8_t>(*t, 0, 0, "Pool2DOptions.padding"), "Pool2DOptions");
    o.stride_w = fb.scalar<int32_t>(*t, 1, 0, "Pool2DOptions.stride_w");
    o.stride_h = fb.scalar<int32_t>(*t, 2, 0, "Pool2DOptions.stride_h");
    o.filter_w = fb.scalar<int32_t>(*t, 3, 0, "Pool2DOptions.filter_width");
    o.filter_h = fb.scalar<int32_t>(*t, 4, 0, "Pool2DOptions.filter_height");
    o.activation = activation_of(fb.scalar<int8_t>(*t, 5, 0, "Pool2DOptions.activation"),
                                 "Pool2DOptions");
    break;
  case opt_fully_connected:
    o.activation = activation_of(fb.scalar<int8_t>(*t, 0, 0, "FullyConnectedOptions.activation"),
                                 "FullyConnectedOptions");
    break;
  case opt_softmax:
    o.beta = fb.scalar<float>(*t, 0, 0.0f, "SoftmaxOptions.beta");
    break;
  case opt_add:
    o.activation = activation_of(fb.scalar<int8_t>(*t, 0, 0, "AddOptions.activation"),
                                 "AddOptions");
    break;
  case opt_reshape:
    o.new_shape = fb.scalars<int32_t>(*t, 0, "ReshapeOptions.new_shape");
    break;
  default:
    break; // options Comb does not use are skipped
  }
}

void check_index_list(const std::vector<int32_t>& xs, size_t n, bool allow_omitted,
                      const std::string& what) {
  for (auto x : xs)
    if ((x < 0 && !(allow_omitted && x == -1)) || (x >= 0 && static_cast<size_t>(x) >= n))
      fail(what + ": tensor index " + std::to_string(x) + " out of range (" + std::to_string(n)
           + " tensors)");
}

tflite_model parse(std::span<const uint8_t> bytes) {
  flatbuffer_view fb(bytes);
  tflite_model m;
  auto root = fb.root();
  if (bytes.size() >= 8 && std::memcmp(bytes.data() + 4, "TFL3", 4) != 0)
    fail("file identifier is not \"TFL3\" (not a TensorFlow Lite model)");
  m.version = fb.scalar<uint32_t>(root, 0, 0, "Model.version");
  if (m.version != 3)
    fail("unsupported TFLite schema version " + std::to_string(m.version) + " (expected 3)");
  m.description = fb.string(root, 3, "Model.description");

  // Operator codes.
  struct opcode {
    int32_t builtin;
    std::string custom;
  };
  std::vector<opcode> codes;
  if (auto v = fb.vector(root, 1, 4, "Model.operator_codes")) {
    for (uint32_t i = 0; i < v->count; ++i) {
      auto t = fb.vector_table(*v, i, "OperatorCode");
      auto deprecated = fb.scalar<int8_t>(t, 0, 0, "OperatorCode.deprecated_builtin_code");
      auto builtin = fb.scalar<int32_t>(t, 3, 0, "OperatorCode.builtin_code");
      codes.push_back(
        {std::max<int32_t>(deprecated, builtin), fb.string(t, 1, "OperatorCode.custom_code")});
    }
  }

  // Buffers.
  auto bufs = fb.vector(root, 4, 4, "Model.buffers");
  if (!bufs || bufs->count == 0)
    fail("model has no buffers");
  for (uint32_t i = 0; i < bufs->count; ++i) {
    auto t = fb.vector_table(*bufs, i, "Buffer");
    tflite_buffer b;
    if (auto d = fb.vector(t, 0, 1, "Buffer.data")) {
      b.offset = d->pos;
      b.size = d->count;
    } else {
      // Buffers of large models may sit after the flatbuffer (offset, size fields).
      b.offset = fb.scalar<uint64_t>(t, 1, 0, "Buffer.offset");
      b.size = fb.scalar<uint64_t>(t, 2, 0, "Buffer.size");
      if (b.offset > bytes.size() || b.size > bytes.size() - b.offset)
        fail("buffer " + std::to_string(i) + " lies outside the file");
    }
    m.buffers.push_back(b);
  }

  // First subgraph.
  auto subgraphs = fb.vector(root, 2, 4, "Model.subgraphs");
  if (!subgraphs || subgraphs->count == 0)
    fail("model has no subgraphs");
  auto sg = fb.vector_table(*subgraphs, 0, "SubGraph");
  if (auto v = fb.vector(sg, 0, 4, "SubGraph.tensors")) {
    for (uint32_t i = 0; i < v->count; ++i) {
      auto t = fb.vector_table(*v, i, "Tensor");
      tflite_tensor x;
      x.shape = fb.scalars<int32_t>(t, 0, "Tensor.shape");
      auto type = fb.scalar<int8_t>(t, 1, 0, "Tensor.type");
      if (type < 0 || type > 9)
        fail("tensor " + std::to_string(i) + ": unsupported type " + std::to_string(type));
      x.type = static_cast<tflite_type>(type);
      x.buffer = fb.scalar<uint32_t>(t, 2, 0, "Tensor.buffer");
      x.name = fb.string(t, 3, "Tensor.name");
      if (x.buffer >= m.buffers.size())
        fail("tensor '" + x.name + "': buffer index " + std::to_string(x.buffer) + " out of range ("
             + std::to_string(m.buffers.size()) + " buffers)");
      for (auto d : x.shape)
        if (d < 0)
          fail("tensor '" + x.name + "': negative dimension " + std::to_string(d));
      if (auto q = fb.sub_table(t, 4, "Tensor.quantization")) {
        x.quant.scale = fb.scalars<float>(*q, 2, "QuantizationParameters.scale");
        x.quant.zero_point = fb.scalars<int64_t>(*q, 3, "QuantizationParameters.zero_point");
        x.quant.quantized_dimension = fb.scalar<int32_t>(
          *q, 6, 0, "QuantizationParameters.quantized_dimension");
      }
      m.tensors.push_back(std::move(x));
    }
  }
  m.inputs = fb.scalars<int32_t>(sg, 1, "SubGraph.inputs");
  m.outputs = fb.scalars<int32_t>(sg, 2, "SubGraph.outputs");
  check_index_list(m.inputs, m.tensors.size(), false, "SubGraph.inputs");
  check_index_list(m.outputs, m.tensors.size(), false, "SubGraph.outputs");
  if (auto v = fb.vector(sg, 3, 4, "SubGraph.operators")) {
    for (uint32_t i = 0; i < v->count; ++i) {
      auto t = fb.vector_table(*v, i, "Operator");
      tflite_operator op;
      auto idx = fb.scalar<uint32_t>(t, 0, 0, "Operator.opcode_index");
      if (idx >= codes.size())
        fail("operator " + std::to_string(i) + ": opcode index " + std::to_string(idx)
             + " out of range (" + std::to_string(codes.size()) + " operator codes)");
      op.builtin_code = codes[idx].builtin;
      op.custom_code = codes[idx].custom;
      op.inputs = fb.scalars<int32_t>(t, 1, "Operator.inputs");
      op.outputs = fb.scalars<int32_t>(t, 2, "Operator.outputs");
      auto where = "operator " + std::to_string(i) + " (" + tflite_op_name(op.builtin_code) + ")";
      check_index_list(op.inputs, m.tensors.size(), true, where + " inputs");
      check_index_list(op.outputs, m.tensors.size(), false, where + " outputs");
      read_options(fb, t, op);
      m.operators.push_back(std::move(op));
    }
  }
  m.bytes.assign(bytes.begin(), bytes.end());
  return m;
}

size_t type_size(tflite_type t) {
  switch (t) {
  case tflite_type::float32:
  case tflite_type::int32:
    return 4;
  case tflite_type::float16:
  case tflite_type::int16:
    return 2;
  case tflite_type::uint8:
  case tflite_type::int8:
  case tflite_type::boolean:
    return 1;
  case tflite_type::int64:
  case tflite_type::complex64:
    return 8;
  default:
    return 0;
  }
}

} // namespace

std::string tflite_op_name(int32_t code) {
  switch (code) {
  case tflite_op::add:
    return "ADD";
  case tflite_op::average_pool_2d:
    return "AVERAGE_POOL_2D";
  case tflite_op::concatenation:
    return "CONCATENATION";
  case tflite_op::conv_2d:
    return "CONV_2D";
  case tflite_op::depthwise_conv_2d:
    return "DEPTHWISE_CONV_2D";
  case tflite_op::dequantize:
    return "DEQUANTIZE";
  case tflite_op::fully_connected:
    return "FULLY_CONNECTED";
  case tflite_op::logistic:
    return "LOGISTIC";
  case tflite_op::max_pool_2d:
    return "MAX_POOL_2D";
  case tflite_op::relu:
    return "RELU";
  case tflite_op::relu6:
    return "RELU6";
  case tflite_op::reshape:
    return "RESHAPE";
  case tflite_op::softmax:
    return "SOFTMAX";
  case tflite_op::mean:
    return "MEAN";
  case tflite_op::squeeze:
    return "SQUEEZE";
  case tflite_op::quantize:
    return "QUANTIZE";
  default:
    return "BUILTIN_" + std::to_string(code);
  }
}

int64_t tflite_tensor::elements() const {
  int64_t n = 1;
  for (auto d : shape) {
    n *= d;
    if (n > (int64_t{1} << 40))
      return -1; // absurd; callers treat negative as malformed
  }
  return n;
}

std::span<const uint8_t> tflite_model::data(const tflite_tensor& t) const {
  if (t.buffer >= buffers.size())
    return {};
  auto& b = buffers[t.buffer];
  return std::span<const uint8_t>(bytes).subspan(b.offset, b.size);
}

caf::expected<std::vector<float>> tflite_model::dequantize(size_t index) const {
  if (index >= tensors.size())
    return make_error(errc::bad_model, "tflite: tensor index " + std::to_string(index)
                                         + " out of range (" + std::to_string(tensors.size())
                                         + " tensors)");
  auto& t = tensors[index];
  auto where = "tflite tensor '" + t.name + "'";
  auto n = t.elements();
  auto es = type_size(t.type);
  if (n < 0 || es == 0)
    return make_error(errc::bad_model, where + ": unsupported type or absurd shape");
  auto d = data(t);
  if (d.empty())
    return make_error(errc::bad_model, where + ": has no constant data");
  if (d.size() != static_cast<uint64_t>(n) * es)
    return make_error(errc::bad_model, where + ": buffer holds " + std::to_string(d.size())
                                         + " bytes, shape needs " + std::to_string(n * es));
  std::vector<float> out(static_cast<size_t>(n));
  if (t.type == tflite_type::float32) {
    std::memcpy(out.data(), d.data(), d.size());
    return out;
  }
  if (t.type != tflite_type::uint8 && t.type != tflite_type::int8 && t.type != tflite_type::int32)
    return make_error(errc::bad_model, where + ": cannot dequantize this element type");
  auto& q = t.quant;
  if (!q.present())
    return make_error(errc::bad_model, where + ": quantized tensor without scale");
  if (!q.zero_point.empty() && q.zero_point.size() != q.scale.size())
    return make_error(errc::bad_model, where + ": " + std::to_string(q.scale.size())
                                         + " scales but " + std::to_string(q.zero_point.size())
                                         + " zero points");
  // Per-axis quantization: the channel of element i along quantized_dimension.
  int64_t inner = 1, axis_len = 1;
  if (q.scale.size() > 1) {
    auto dim = q.quantized_dimension;
    if (dim < 0 || static_cast<size_t>(dim) >= t.shape.size()
        || static_cast<size_t>(t.shape[dim]) != q.scale.size())
      return make_error(errc::bad_model, where + ": per-axis scales do not match the shape");
    axis_len = t.shape[dim];
    for (size_t k = dim + 1; k < t.shape.size(); ++k)
      inner *= t.shape[k];
  }
  for (auto s : q.scale)
    if (!std::isfinite(s))
      return make_error(errc::bad_model, where + ": non-finite quantization scale");
  for (int64_t i = 0; i < n; ++i) {
    size_t c = q.scale.size() > 1 ? static_cast<size_t>((i / inner) % axis_len) : 0;
    float s = q.scale[c];
    int64_t zp = q.zero_point.empty() ? 0 : q.zero_point[c];
    int64_t v;
    if (t.type == tflite_type::uint8)
      v = d[i];
    else if (t.type == tflite_type::int8)
      v = static_cast<int8_t>(d[i]);
    else {
      int32_t x;
      std::memcpy(&x, d.data() + 4 * i, 4);
      v = x;
    }
    out[i] = s * static_cast<float>(v - zp);
  }
  return out;
}

caf::expected<tflite_model> read_tflite(std::span<const uint8_t> bytes) {
  try {
    return parse(bytes);
  } catch (const parse_failure& e) {
    return make_error(errc::corrupt_data, "tflite: " + e.what);
  } catch (const std::bad_alloc&) {
    return make_error(errc::corrupt_data, "tflite: file describes more data than fits in memory");
  }
}

caf::expected<tflite_model> load_tflite(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return make_error(errc::not_found, "tflite: cannot open '" + path + "'");
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
  auto m = read_tflite(bytes);
  if (!m)
    return make_error(errc::corrupt_data, "'" + path + "': " + describe(m.error()));
  return m;
}

} // namespace comb::kernels
