// comb::runtime::tensor_spec: checking, splitting, packing and JSON forms of a task's typed
// tensors (see tensor_spec.hpp). Stateless; thread-safe.
#include "runtime/pieces/tensor_spec.hpp"

#include "base/errc.hpp"

#include <cstring>
#include <limits>
#include <set>

namespace comb::runtime {

namespace {

/// Most tensors of one task, and most dimensions of one tensor.
constexpr size_t max_tensors = 64;
constexpr size_t max_rank = 8;

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0)
      s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

bool known_dtype(uint8_t d) {
  return d <= static_cast<uint8_t>(tensor_dtype::str);
}

// numel of `shape`, or -1 when it overflows int64.
int64_t checked_numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (auto d : shape) {
    if (d < 0)
      return -1;
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d)
      return -1;
    n *= d;
  }
  return n;
}

} // namespace

std::string to_string(tensor_dtype t) {
  switch (t) {
  case tensor_dtype::f32:
    return "f32";
  case tensor_dtype::u8:
    return "u8";
  case tensor_dtype::i8:
    return "i8";
  case tensor_dtype::i32:
    return "i32";
  case tensor_dtype::str:
    return "str";
  }
  return "dtype(" + std::to_string(static_cast<int>(t)) + ")";
}

caf::expected<tensor_dtype> parse_tensor_dtype(std::string_view s) {
  for (auto t : {tensor_dtype::f32, tensor_dtype::u8, tensor_dtype::i8, tensor_dtype::i32,
                 tensor_dtype::str})
    if (s == to_string(t))
      return t;
  return make_error(errc::invalid_argument,
                    "unknown tensor dtype '" + std::string{s} + "' (f32, u8, i8, i32, str)");
}

size_t element_size(tensor_dtype t) {
  switch (t) {
  case tensor_dtype::f32:
  case tensor_dtype::i32:
    return 4;
  case tensor_dtype::u8:
  case tensor_dtype::i8:
    return 1;
  case tensor_dtype::str:
    return 0;
  }
  return 0;
}

int64_t tensor_spec::numel() const {
  int64_t n = 1;
  for (auto d : shape)
    n *= d;
  return n;
}

std::string tensor_spec::describe() const {
  return name + " " + to_string(type()) + " " + shape_text(shape);
}

tensor_spec make_spec(std::string name, tensor_dtype t, std::vector<int64_t> shape) {
  tensor_spec s;
  s.name = std::move(name);
  s.dtype = static_cast<uint8_t>(t);
  s.shape = std::move(shape);
  s.bytes = static_cast<uint64_t>(s.numel()) * element_size(t);
  return s;
}

caf::error check_specs(const std::vector<tensor_spec>& specs, uint64_t payload_bytes) {
  if (specs.size() > max_tensors)
    return make_error(errc::invalid_argument, std::to_string(specs.size())
                                                + " tensors in one task, more than the "
                                                + std::to_string(max_tensors) + " allowed");
  std::set<std::string_view> names;
  uint64_t sum = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    const auto& s = specs[i];
    auto what = "tensor " + std::to_string(i) + " '" + s.name + "'";
    if (s.name.empty())
      return make_error(errc::invalid_argument, what + " has no name");
    if (!names.insert(s.name).second)
      return make_error(errc::invalid_argument,
                        what + ": the name is used by an earlier tensor of the task");
    if (!known_dtype(s.dtype))
      return make_error(errc::invalid_argument, what + " has unknown dtype "
                                                  + std::to_string(static_cast<int>(s.dtype))
                                                  + " (0 f32, 1 u8, 2 i8, 3 i32, 4 str)");
    if (s.shape.size() > max_rank)
      return make_error(errc::invalid_argument, what + " has " + std::to_string(s.shape.size())
                                                  + " dimensions, more than "
                                                  + std::to_string(max_rank));
    for (size_t d = 0; d < s.shape.size(); ++d)
      if (s.shape[d] < 0)
        return make_error(errc::invalid_argument, what + " has negative dimension "
                                                    + std::to_string(d) + " in shape "
                                                    + shape_text(s.shape));
    auto n = checked_numel(s.shape);
    if (n < 0)
      return make_error(errc::invalid_argument,
                        what + ": shape " + shape_text(s.shape) + " has too many elements");
    if (s.type() == tensor_dtype::str) {
      // Each string takes at least its 4-byte length.
      if (static_cast<uint64_t>(n) > s.bytes / 4)
        return make_error(errc::invalid_argument,
                          what + " (" + s.describe() + ") holds " + std::to_string(n)
                            + " strings, which need at least " + std::to_string(n)
                            + " x 4 length bytes, but has " + std::to_string(s.bytes) + " bytes");
    } else {
      auto es = element_size(s.type());
      if (static_cast<uint64_t>(n) > std::numeric_limits<uint64_t>::max() / es
          || static_cast<uint64_t>(n) * es != s.bytes)
        return make_error(errc::invalid_argument, what + " (" + s.describe() + ") has "
                                                    + std::to_string(s.bytes) + " bytes, not the "
                                                    + std::to_string(n) + " x " + std::to_string(es)
                                                    + " its shape needs");
    }
    if (s.bytes > payload_bytes || sum > payload_bytes - s.bytes)
      return make_error(errc::invalid_argument,
                        what + " runs past the payload's " + std::to_string(payload_bytes)
                          + " bytes (it ends at byte " + std::to_string(sum + s.bytes) + ")");
    sum += s.bytes;
  }
  if (!specs.empty() && sum != payload_bytes)
    return make_error(errc::invalid_argument, "the task's tensors hold " + std::to_string(sum)
                                                + " bytes but its payload has "
                                                + std::to_string(payload_bytes));
  return {};
}

caf::expected<std::vector<tensor_view>> split_payload(const std::vector<tensor_spec>& specs,
                                                      const char* payload, size_t size) {
  if (auto err = check_specs(specs, size))
    return err;
  std::vector<tensor_view> out;
  out.reserve(specs.size());
  size_t at = 0;
  for (const auto& s : specs) {
    out.push_back(tensor_view{&s, payload + at, static_cast<size_t>(s.bytes)});
    at += s.bytes;
  }
  return out;
}

caf::expected<std::vector<std::string_view>> read_strings(const tensor_view& t) {
  auto name = t.spec ? t.spec->name : std::string{"?"};
  if (t.spec && t.spec->type() != tensor_dtype::str)
    return make_error(errc::invalid_argument,
                      "tensor '" + name + "' is " + to_string(t.spec->type()) + ", not str");
  std::vector<std::string_view> out;
  size_t at = 0;
  while (at < t.size) {
    if (t.size - at < 4)
      return make_error(errc::invalid_argument, "str tensor '" + name + "': string "
                                                  + std::to_string(out.size()) + " at byte "
                                                  + std::to_string(at) + " has a truncated length ("
                                                  + std::to_string(t.size - at) + " of 4 bytes)");
    uint32_t len = 0;
    std::memcpy(&len, t.data + at, 4); // little-endian hosts only, as the kernels
    at += 4;
    if (len > t.size - at)
      return make_error(errc::invalid_argument,
                        "str tensor '" + name + "': string " + std::to_string(out.size())
                          + " at byte " + std::to_string(at - 4) + " has length "
                          + std::to_string(len) + ", past the tensor's end ("
                          + std::to_string(t.size - at) + " bytes left)");
    out.emplace_back(t.data + at, len);
    at += len;
  }
  if (t.spec && static_cast<int64_t>(out.size()) != t.spec->numel())
    return make_error(errc::invalid_argument, "str tensor '" + name + "' (" + t.spec->describe()
                                                + ") holds " + std::to_string(out.size())
                                                + " strings, not "
                                                + std::to_string(t.spec->numel()));
  return out;
}

void append_string(std::vector<char>& out, std::string_view s) {
  auto len = static_cast<uint32_t>(s.size());
  char b[4];
  std::memcpy(b, &len, 4);
  out.insert(out.end(), b, b + 4);
  out.insert(out.end(), s.begin(), s.end());
}

void tensor_pack::add(std::string name, tensor_dtype t, std::vector<int64_t> shape,
                      const void* data) {
  auto s = make_spec(std::move(name), t, std::move(shape));
  auto* p = static_cast<const char*>(data);
  if (s.bytes > 0)
    bytes.insert(bytes.end(), p, p + s.bytes);
  specs.push_back(std::move(s));
}

void tensor_pack::add_strings(std::string name, const std::vector<std::string_view>& strings) {
  auto before = bytes.size();
  for (auto s : strings)
    append_string(bytes, s);
  tensor_spec s;
  s.name = std::move(name);
  s.dtype = static_cast<uint8_t>(tensor_dtype::str);
  s.shape = {static_cast<int64_t>(strings.size())};
  s.bytes = bytes.size() - before;
  specs.push_back(std::move(s));
}

nlohmann::json specs_to_json(const std::vector<tensor_spec>& specs) {
  auto out = nlohmann::json::array();
  for (const auto& s : specs)
    out.push_back({{"name", s.name},
                   {"dtype", known_dtype(s.dtype) ? nlohmann::json(to_string(s.type()))
                                                  : nlohmann::json(s.dtype)},
                   {"shape", s.shape},
                   {"bytes", s.bytes}});
  return out;
}

caf::expected<std::vector<tensor_spec>> specs_from_json(const nlohmann::json& j) {
  if (j.is_null())
    return std::vector<tensor_spec>{};
  if (!j.is_array())
    return make_error(errc::invalid_argument,
                      "tensor specs must be a JSON array, not " + std::string{j.type_name()});
  std::vector<tensor_spec> out;
  for (size_t i = 0; i < j.size(); ++i) {
    const auto& e = j[i];
    auto what = "tensor spec " + std::to_string(i);
    if (!e.is_object())
      return make_error(errc::invalid_argument, what + " is not a JSON object");
    tensor_spec s;
    auto name = e.find("name");
    if (name == e.end() || !name->is_string())
      return make_error(errc::invalid_argument, what + " has no \"name\" string");
    s.name = name->get<std::string>();
    what += " '" + s.name + "'";
    auto dtype = e.find("dtype");
    if (dtype == e.end() || !dtype->is_string())
      return make_error(errc::invalid_argument, what + " has no \"dtype\" string");
    auto t = parse_tensor_dtype(dtype->get<std::string>());
    if (!t)
      return make_error(errc::invalid_argument, what + ": " + describe(t.error()));
    s.dtype = static_cast<uint8_t>(*t);
    auto shape = e.find("shape");
    if (shape == e.end() || !shape->is_array())
      return make_error(errc::invalid_argument, what + " has no \"shape\" array");
    for (const auto& d : *shape) {
      if (!d.is_number_integer())
        return make_error(errc::invalid_argument,
                          what + ": shape holds " + d.dump() + ", not an integer");
      s.shape.push_back(d.get<int64_t>());
    }
    auto bytes = e.find("bytes");
    if (bytes == e.end() || !bytes->is_number_unsigned())
      return make_error(errc::invalid_argument,
                        what + " has no \"bytes\" count (a non-negative integer)");
    s.bytes = bytes->get<uint64_t>();
    out.push_back(std::move(s));
  }
  return out;
}

caf::expected<tensor_pack> result_tensors(const nlohmann::json& result) {
  if (!result.is_object())
    return make_error(errc::invalid_argument, "a task result must be a JSON object");
  tensor_pack out;
  auto outputs = result.find("outputs");
  if (outputs == result.end())
    return make_error(errc::invalid_argument,
                      "the task result has no \"outputs\" (it ran a model without typed tensors?)");
  auto specs = specs_from_json(*outputs);
  if (!specs)
    return make_error(errc::invalid_argument,
                      "the task result's outputs: " + describe(specs.error()));
  out.specs = std::move(*specs);
  auto output = result.find("output");
  if (output != result.end()) {
    if (!output->is_binary())
      return make_error(errc::invalid_argument, "the task result's \"output\" is not bytes");
    const auto& b = output->get_binary();
    out.bytes.assign(b.begin(), b.end());
  }
  if (auto err = check_specs(out.specs, out.bytes.size()))
    return make_error(errc::invalid_argument, "the task result's outputs: " + describe(err));
  return out;
}

} // namespace comb::runtime
