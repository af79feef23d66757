// libFuzzer target: tensor specs as JSON (what outbox calls and result procedures carry) on
// arbitrary bytes. The first byte splits the input: JSON text, then a payload. Must never
// crash, hang or read out of bounds; specs that parse and pass check_specs must split the
// payload into views inside it, survive specs_to_json unchanged, and their str tensors must
// read strings inside their tensor. result_tensors sees the same JSON as a result.
#include "runtime/pieces/tensor_spec.hpp"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

using namespace comb::runtime;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0)
    return 0;
  std::string_view in{reinterpret_cast<const char*>(data) + 1, size - 1};
  size_t cut = std::min<size_t>(data[0] * 4, in.size());
  auto text = in.substr(0, in.size() - cut);
  auto payload = in.substr(in.size() - cut);
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded())
    return 0;
  (void) result_tensors(j);
  auto specs = specs_from_json(j);
  if (!specs)
    return 0;
  auto back = specs_from_json(specs_to_json(*specs));
  if (!back || *back != *specs)
    __builtin_trap();
  auto views = split_payload(*specs, payload.data(), payload.size());
  if (!views)
    return 0;
  for (auto& v : *views) {
    if (v.data < payload.data() || v.data + v.size > payload.data() + payload.size())
      __builtin_trap();
    auto strings = read_strings(v);
    if (!strings)
      continue;
    for (auto s : *strings)
      if (s.data() < v.data || s.data() + s.size() > v.data + v.size)
        __builtin_trap();
  }
  return 0;
}
