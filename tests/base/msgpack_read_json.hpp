// comb::testing::read_json: a JSON document from a msgpack_cursor, built the way
// nlohmann::json::from_msgpack builds it (map keys must be strings, ext is binary with a
// subtype), nesting up to msgpack_cursor::max_depth as skip() allows: what the msgpack test
// and the fuzz target compare with from_msgpack. Recursive; for tests only.
#pragma once

#include "base/msgpack.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace comb::testing {

/// Reads the next value into `out`; false where the cursor fails or a key is not a string.
inline bool read_json(msgpack_cursor& c, nlohmann::json& out, size_t depth) {
  using nlohmann::json;
  msgpack_value v;
  if (!c.next(v))
    return false;
  switch (v.type) {
  case msgpack_type::nil: out = nullptr; return true;
  case msgpack_type::boolean: out = v.bits != 0; return true;
  case msgpack_type::unsigned_int: out = v.bits; return true;
  case msgpack_type::signed_int: out = v.as_int(); return true;
  case msgpack_type::float32:
  case msgpack_type::float64: out = v.as_double(); return true;
  case msgpack_type::str: out = std::string{v.bytes}; return true;
  case msgpack_type::bin:
  case msgpack_type::ext: {
    std::vector<uint8_t> b(v.bytes.begin(), v.bytes.end());
    out = v.type == msgpack_type::bin
            ? json::binary(std::move(b))
            : json::binary(std::move(b), static_cast<uint8_t>(v.ext_type));
    return true;
  }
  case msgpack_type::array:
  case msgpack_type::map:
    if (v.count != 0 && depth + 1 > msgpack_cursor::max_depth)
      return false;
    out = v.type == msgpack_type::array ? json::array() : json::object();
    for (uint64_t i = 0; i < v.count; ++i) {
      std::string_view key;
      json x;
      if (v.type == msgpack_type::map && !c.read_str(key))
        return false;
      if (!read_json(c, x, depth + 1))
        return false;
      if (v.type == msgpack_type::array)
        out.push_back(std::move(x));
      else
        out[std::string{key}] = std::move(x);
    }
    return true;
  }
  return false;
}

} // namespace comb::testing
