// libFuzzer target: the safetensors decoder on arbitrary bytes. Must never crash, hang, read
// out of bounds or allocate what the file merely claims; a decoded file must re-encode, and
// the re-encoding must decode to the same tensors and metadata.
#include "kernels/safetensors.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

using namespace comb::kernels;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto f = decode_safetensors({reinterpret_cast<const char*>(data), size});
  if (!f)
    return 0;
  std::vector<std::pair<std::string, const tensor*>> ts;
  for (auto& [name, t] : f->tensors)
    if (t.numel() > 0)
      ts.emplace_back(name, &t);
  auto bytes = encode_safetensors(ts, f->metadata);
  if (!bytes)
    return 0; // e.g. a dtype the encoder does not write
  auto g = decode_safetensors(*bytes);
  if (!g || g->metadata != f->metadata || g->tensors.size() != ts.size())
    __builtin_trap();
  for (auto& [name, t] : ts) {
    auto& u = g->tensors.at(name);
    if (u.numel() != t->numel() || u.bytes() != t->bytes()
        || std::memcmp(u.raw(), t->raw(), t->bytes()) != 0)
      __builtin_trap();
  }
  return 0;
}
