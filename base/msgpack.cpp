#include "base/msgpack.hpp"

#include <cstdint>
#include <cstring>
#include <limits>

namespace comb {

namespace {

using json = nlohmann::json;
constexpr uint64_t u32_max = 0xffffffffu;

// Appends `tag` then the low `bytes` bytes of `v`, big-endian (one byte swap, one append).
inline void put_be(std::string& out, uint8_t tag, uint64_t v, int bytes) {
  char buf[9];
  buf[0] = static_cast<char>(tag);
  uint64_t be = __builtin_bswap64(v << (64 - 8 * bytes));
  std::memcpy(buf + 1, &be, 8);
  out.append(buf, 1 + bytes);
}

void put_uint(std::string& out, uint64_t v) {
  if (v < 0x80)
    out.push_back(static_cast<char>(v));
  else if (v <= 0xff)
    put_be(out, 0xcc, v, 1);
  else if (v <= 0xffff)
    put_be(out, 0xcd, v, 2);
  else if (v <= u32_max)
    put_be(out, 0xce, v, 4);
  else
    put_be(out, 0xcf, v, 8);
}

void put_int(std::string& out, int64_t v) {
  if (v >= 0)
    put_uint(out, static_cast<uint64_t>(v));
  else if (v >= -32)
    out.push_back(static_cast<char>(static_cast<uint8_t>(v)));
  else if (v >= INT8_MIN)
    put_be(out, 0xd0, static_cast<uint64_t>(v), 1);
  else if (v >= INT16_MIN)
    put_be(out, 0xd1, static_cast<uint64_t>(v), 2);
  else if (v >= INT32_MIN)
    put_be(out, 0xd2, static_cast<uint64_t>(v), 4);
  else
    put_be(out, 0xd3, static_cast<uint64_t>(v), 8);
}

// As nlohmann's write_compact_float: a float32 (0xca) where the double is one exactly.
void put_float(std::string& out, double d) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wfloat-equal"
  if (d >= static_cast<double>(std::numeric_limits<float>::lowest())
      && d <= static_cast<double>(std::numeric_limits<float>::max())
      && static_cast<double>(static_cast<float>(d)) == d) {
#pragma GCC diagnostic pop
    float f = static_cast<float>(d);
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    put_be(out, 0xca, bits, 4);
  } else {
    uint64_t bits;
    std::memcpy(&bits, &d, 8);
    put_be(out, 0xcb, bits, 8);
  }
}

// A header: the fix form (fix | n) up to fix_max, else the 8-bit one (strings only: tag8 != 0),
// the 16-bit or the 32-bit one. n < 2^32.
void put_length(std::string& out, uint64_t n, uint8_t fix, uint64_t fix_max, uint8_t tag8,
                uint8_t tag16, uint8_t tag32) {
  if (n <= fix_max)
    out.push_back(static_cast<char>(fix | n));
  else if (tag8 != 0 && n <= 0xff)
    put_be(out, tag8, n, 1);
  else if (n <= 0xffff)
    put_be(out, tag16, n, 2);
  else
    put_be(out, tag32, n, 4);
}

bool is_ascii(const std::string& s) {
  uint64_t high = 0;
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    high |= w;
  }
  for (; i < s.size(); ++i)
    high |= static_cast<uint8_t>(s[i]);
  return (high & 0x8080808080808080ull) == 0;
}

// A string of fewer than 2^32 bytes (and, with ascii_only, ASCII only); false where refused.
bool put_str(std::string& out, const std::string& s, bool ascii_only) {
  if (ascii_only && !is_ascii(s))
    return false;
  if (s.size() <= 31) {
    out.push_back(static_cast<char>(0xa0 | s.size()));
  } else if (s.size() <= u32_max) {
    put_length(out, s.size(), 0xa0, 31, 0xd9, 0xda, 0xdb);
  } else if (ascii_only) {
    return false;
  } else {
    json::to_msgpack(json(s), out); // as nlohmann writes it (no header): left to it
    return true;
  }
  out.append(s);
  return true;
}

} // namespace

bool append_msgpack(std::string& out, const json& v, bool ascii_only) {
  switch (v.type()) {
  case json::value_t::object: {
    const auto& o = *v.get_ptr<const json::object_t*>();
    if (o.size() > u32_max)
      break;
    put_length(out, o.size(), 0x80, 15, 0, 0xde, 0xdf);
    for (const auto& [key, x] : o)
      if (!put_str(out, key, ascii_only) || !append_msgpack(out, x, ascii_only))
        return false;
    return true;
  }
  case json::value_t::array: {
    const auto& a = *v.get_ptr<const json::array_t*>();
    if (a.size() > u32_max)
      break;
    put_length(out, a.size(), 0x90, 15, 0, 0xdc, 0xdd);
    for (const auto& x : a)
      if (!append_msgpack(out, x, ascii_only))
        return false;
    return true;
  }
  case json::value_t::string:
    return put_str(out, *v.get_ptr<const std::string*>(), ascii_only);
  case json::value_t::boolean:
    out.push_back(*v.get_ptr<const bool*>() ? '\xc3' : '\xc2');
    return true;
  case json::value_t::null:
    out.push_back('\xc0');
    return true;
  case json::value_t::number_integer:
    put_int(out, *v.get_ptr<const json::number_integer_t*>());
    return true;
  case json::value_t::number_unsigned:
    put_uint(out, *v.get_ptr<const json::number_unsigned_t*>());
    return true;
  case json::value_t::number_float:
    put_float(out, *v.get_ptr<const json::number_float_t*>());
    return true;
  default: // binary, discarded
    break;
  }
  if (ascii_only)
    return false;
  json::to_msgpack(v, out); // binary, discarded, and containers of 2^32 or more
  return true;
}

} // namespace comb
