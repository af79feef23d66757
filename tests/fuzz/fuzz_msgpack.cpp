// libFuzzer target: comb::msgpack_cursor (base/msgpack) on arbitrary bytes must never crash,
// hang or read out of bounds, and must accept exactly what nlohmann::json::from_msgpack
// accepts (within its depth limit), reading the same value: the cursor builds a JSON document
// and both are compared as MessagePack.
#include "base/msgpack.hpp"

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

using comb::msgpack_cursor;
using comb::msgpack_value;
using nlohmann::json;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in{reinterpret_cast<const char*>(data), size};
  msgpack_cursor s{in};
  bool skipped = s.skip();
  if (skipped == s.failed() || (!skipped && (s.offset() != 0 || s.error().empty())))
    std::abort();
  bool too_deep = !skipped && s.error().find("nesting deeper") != std::string::npos;

  msgpack_cursor r{in};
  json mine;
  bool read = comb::read_msgpack_json(r, mine, msgpack_cursor::max_depth, /*allow_binary=*/true);
  if (read && (!skipped || r.offset() != s.offset()))
    std::abort(); // whatever reads as a document, skip() steps over, as far

  if (too_deep)
    return 0; // nlohmann recurses without a limit
  // from_msgpack on the value the cursor read (or on everything, where it found none).
  auto theirs = json::from_msgpack(skipped ? in.substr(0, s.offset()) : in, /*strict=*/true,
                                   /*allow_exceptions=*/false);
  if (read != !theirs.is_discarded())
    std::abort();
  if (read && json::to_msgpack(mine) != json::to_msgpack(theirs))
    std::abort();

  // Every header read in a row stays inside the input.
  msgpack_cursor w{in};
  msgpack_value v;
  while (w.next(v))
    if (v.bytes.data() != nullptr
        && (v.bytes.data() < in.data() || v.bytes.data() + v.bytes.size() > in.data() + in.size()))
      std::abort();
  if (w.offset() > in.size())
    std::abort();
  return 0;
}
