// comb::runtime::tensor_spec: the typed tensors a compute task carries (schemas/piece.capnp
// TensorSpec). A task's payload is its tensors' bytes one after another, in the order of its
// specs; each spec names the tensor, its element type, its shape and its byte size. Fixed-size
// element types hold numel * element size bytes, little-endian, row-major. `str` tensors hold
// variable-length byte strings: shape [n] (or any shape; numel strings), the bytes are the
// strings one after another, each as a little-endian u32 length then its bytes. Tasks with no
// specs carry opaque bytes (built-in tasks, load_model). Plain values and stateless functions;
// thread-safe.
#pragma once

#include <caf/expected.hpp>
#include <caf/meta/type_name.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace comb::runtime {

/// Element type of a task tensor. The numbers are the wire values (piece.capnp TensorSpec.DType).
enum class tensor_dtype : uint8_t { f32 = 0, u8 = 1, i8 = 2, i32 = 3, str = 4 };

/// "f32", "u8", "i8", "i32", "str".
std::string to_string(tensor_dtype t);

/// Parses to_string's names; errc::invalid_argument otherwise.
caf::expected<tensor_dtype> parse_tensor_dtype(std::string_view s);

/// Bytes per element (0 for str).
size_t element_size(tensor_dtype t);

/// One tensor of a task.
struct tensor_spec {
  std::string name;
  uint8_t dtype = 0; // tensor_dtype as a number (CAF serializes it as is)
  std::vector<int64_t> shape;
  /// Bytes of the tensor in the payload.
  uint64_t bytes = 0;

  tensor_dtype type() const { return static_cast<tensor_dtype>(dtype); }
  /// Product of the shape (1 for a scalar).
  int64_t numel() const;
  /// "images u8 [1200, 28, 28, 1]".
  std::string describe() const;
  friend bool operator==(const tensor_spec&, const tensor_spec&) = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, tensor_spec& x) {
  return f(caf::meta::type_name("comb.tensor_spec"), x.name, x.dtype, x.shape, x.bytes);
}

/// A spec for a fixed-size tensor (bytes computed from the shape).
tensor_spec make_spec(std::string name, tensor_dtype t, std::vector<int64_t> shape);

/// Checks that `specs` are well-formed (known dtype, dimensions >= 0, byte sizes that match
/// the shape for fixed-size types, unique names, at most 64 tensors of at most 8 dimensions)
/// and that their byte sizes add up to `payload_bytes`. Errors: errc::invalid_argument naming
/// the tensor and what is wrong.
caf::error check_specs(const std::vector<tensor_spec>& specs, uint64_t payload_bytes);

/// A tensor inside a task's payload: its spec and a window into the payload.
struct tensor_view {
  const tensor_spec* spec = nullptr;
  const char* data = nullptr;
  size_t size = 0;
};

/// Splits a whole payload into its tensors (check_specs first).
caf::expected<std::vector<tensor_view>> split_payload(const std::vector<tensor_spec>& specs,
                                                      const char* payload, size_t size);

/// Reads the strings of a str tensor (views into its bytes); errc::invalid_argument when a
/// length runs past the end or the count differs from the spec's numel.
caf::expected<std::vector<std::string_view>> read_strings(const tensor_view& t);

/// Appends `s` to a str tensor's bytes.
void append_string(std::vector<char>& out, std::string_view s);

/// Tensors and their payload, owned: what a task carries in, and what it gives back. add()
/// appends a tensor's spec and bytes.
struct tensor_pack {
  std::vector<tensor_spec> specs;
  std::vector<char> bytes;
  /// Appends a fixed-size tensor; `data` holds numel * element_size bytes.
  void add(std::string name, tensor_dtype t, std::vector<int64_t> shape, const void* data);
  /// Appends a str tensor of `strings` (shape [strings.size()]).
  void add_strings(std::string name, const std::vector<std::string_view>& strings);
  /// The tensors as views into `bytes` (check_specs first).
  caf::expected<std::vector<tensor_view>> views() const {
    return split_payload(specs, bytes.data(), bytes.size());
  }
};

/// The specs as JSON: [{"name", "dtype": "u8", "shape": [...], "bytes"}] (how outbox calls
/// and result procedures see them).
nlohmann::json specs_to_json(const std::vector<tensor_spec>& specs);

/// Reads specs_to_json's form; errc::invalid_argument naming what is wrong.
caf::expected<std::vector<tensor_spec>> specs_from_json(const nlohmann::json& j);

/// The output tensors of a task result as a result procedure receives it (its "outputs"
/// specs and "output" bytes, see actors/outbox_dispatcher.hpp), checked against each other.
caf::expected<tensor_pack> result_tensors(const nlohmann::json& result);

} // namespace comb::runtime
