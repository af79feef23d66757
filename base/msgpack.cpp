#include "base/msgpack.hpp"

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

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

// -- msgpack_cursor -------------------------------------------------------------------------

namespace comb {

using detail::msgpack_be;

const char* to_string(msgpack_type t) noexcept {
  switch (t) {
  case msgpack_type::nil: return "nil";
  case msgpack_type::boolean: return "boolean";
  case msgpack_type::unsigned_int: return "unsigned integer";
  case msgpack_type::signed_int: return "signed integer";
  case msgpack_type::float32: return "float32";
  case msgpack_type::float64: return "float64";
  case msgpack_type::str: return "string";
  case msgpack_type::bin: return "binary";
  case msgpack_type::ext: return "extension";
  case msgpack_type::array: return "array";
  case msgpack_type::map: return "map";
  }
  return "unknown";
}

double msgpack_value::as_double() const noexcept {
  if (type == msgpack_type::float64) {
    double d;
    std::memcpy(&d, &bits, 8);
    return d;
  }
  if (type == msgpack_type::float32) {
    auto b = static_cast<uint32_t>(bits);
    float f;
    std::memcpy(&f, &b, 4);
    return static_cast<double>(f);
  }
  return 0;
}

std::string msgpack_cursor::error() const {
  if (what_ == nullptr)
    return {};
  std::string e = "MessagePack ";
  if (wrong_type_) {
    e.append(what_).append(" expected, found ").append(to_string(error_type_));
  } else {
    e.append(what_);
    if (error_at_ < in_.size()) {
      char tag[8];
      std::snprintf(tag, sizeof(tag), "0x%02x", static_cast<uint8_t>(in_[error_at_]));
      e.append(" (header ").append(tag);
      if (error_need_ != 0)
        e.append(": needs ").append(std::to_string(error_need_)).append(" bytes, ")
          .append(std::to_string(in_.size() - error_at_)).append(" left");
      e.append(")");
    }
  }
  return e + " at byte " + std::to_string(error_at_) + " of " + std::to_string(in_.size());
}

bool msgpack_cursor::next_slow(msgpack_value& v) noexcept {
  size_t left = in_.size() - at_;
  if (left == 0)
    return fail("value expected, the input ends", at_);
  const auto* p = reinterpret_cast<const uint8_t*>(in_.data()) + at_;
  const uint8_t b = p[0];
  if (b <= 0x7f)
    return scalar(v, msgpack_type::unsigned_int, b, 1);
  if (b >= 0xe0)
    return scalar(v, msgpack_type::signed_int,
                  static_cast<uint64_t>(static_cast<int64_t>(static_cast<int8_t>(b))), 1);
  if (b <= 0x8f)
    return container(v, msgpack_type::map, 1, b & 0x0fu);
  if (b <= 0x9f)
    return container(v, msgpack_type::array, 1, b & 0x0fu);
  if (b <= 0xbf)
    return data(v, msgpack_type::str, 1, b & 0x1fu);
  // The forms with a size or value after the first byte: 1 + `n` bytes at least.
  auto need = [&](size_t n) { return left >= n || fail("truncated value", at_, n); };
  switch (b) {
  case 0xc0:
    return scalar(v, msgpack_type::nil, 0, 1);
  case 0xc2:
  case 0xc3:
    return scalar(v, msgpack_type::boolean, b - 0xc2u, 1);
  case 0xc4:
  case 0xc5:
  case 0xc6: { // bin 8/16/32
    size_t n = size_t{1} << (b - 0xc4);
    return need(1 + n) && data(v, msgpack_type::bin, 1 + n, msgpack_be(p + 1, n));
  }
  case 0xc7:
  case 0xc8:
  case 0xc9: { // ext 8/16/32: size, type, data
    size_t n = size_t{1} << (b - 0xc7);
    if (!need(2 + n))
      return false;
    v.ext_type = static_cast<int8_t>(p[1 + n]);
    return data(v, msgpack_type::ext, 2 + n, msgpack_be(p + 1, n));
  }
  case 0xca:
    return need(5) && scalar(v, msgpack_type::float32, msgpack_be(p + 1, 4), 5);
  case 0xcb:
    return need(9) && scalar(v, msgpack_type::float64, msgpack_be(p + 1, 8), 9);
  case 0xcc:
  case 0xcd:
  case 0xce:
  case 0xcf: {
    size_t n = size_t{1} << (b - 0xcc);
    return need(1 + n) && scalar(v, msgpack_type::unsigned_int, msgpack_be(p + 1, n), 1 + n);
  }
  case 0xd0:
  case 0xd1:
  case 0xd2:
  case 0xd3: {
    size_t n = size_t{1} << (b - 0xd0);
    if (!need(1 + n))
      return false;
    unsigned shift = static_cast<unsigned>(64 - 8 * n);
    auto i = static_cast<int64_t>(msgpack_be(p + 1, n) << shift) >> shift;
    return scalar(v, msgpack_type::signed_int, static_cast<uint64_t>(i), 1 + n);
  }
  case 0xd4:
  case 0xd5:
  case 0xd6:
  case 0xd7:
  case 0xd8: // fixext 1/2/4/8/16: type, data
    if (!need(2))
      return false;
    v.ext_type = static_cast<int8_t>(p[1]);
    return data(v, msgpack_type::ext, 2, uint64_t{1} << (b - 0xd4));
  case 0xd9:
  case 0xda:
  case 0xdb: { // str 8/16/32
    size_t n = size_t{1} << (b - 0xd9);
    return need(1 + n) && data(v, msgpack_type::str, 1 + n, msgpack_be(p + 1, n));
  }
  case 0xdc:
  case 0xdd: { // array 16/32
    size_t n = b == 0xdc ? 2 : 4;
    return need(1 + n) && container(v, msgpack_type::array, 1 + n, msgpack_be(p + 1, n));
  }
  case 0xde:
  case 0xdf: { // map 16/32
    size_t n = b == 0xde ? 2 : 4;
    return need(1 + n) && container(v, msgpack_type::map, 1 + n, msgpack_be(p + 1, n));
  }
  default: // 0xc1
    return fail("the unused byte 0xc1", at_);
  }
}

bool msgpack_cursor::wrong_type(size_t at, const char* expected, msgpack_type found) noexcept {
  at_ = at;
  fail(expected, at);
  wrong_type_ = true;
  error_type_ = found;
  return false;
}

bool msgpack_cursor::skip_values(uint64_t n, size_t depth) noexcept {
  size_t start = at_;
  // pending[k]: the values still to step over inside the k-th open container (0: the `n`
  // values asked for, at `depth`). Each value takes a byte at least, and next() refuses a
  // container that announces more elements than bytes left, so the counts stay small.
  uint64_t pending[max_depth + 1];
  size_t top = 0;
  pending[0] = n;
  msgpack_value v;
  for (;;) {
    while (pending[top] == 0) {
      if (top == 0)
        return true;
      --top;
    }
    --pending[top];
    size_t at = at_;
    if (!next(v)) {
      at_ = start;
      return false;
    }
    if ((v.type == msgpack_type::array || v.type == msgpack_type::map) && v.count != 0) {
      if (depth + top + 1 > max_depth) {
        at_ = start;
        return fail("nesting deeper than 256 levels", at);
      }
      pending[++top] = v.type == msgpack_type::map ? 2 * v.count : v.count;
    }
  }
}

namespace {

bool read_json_at(msgpack_cursor& in, nlohmann::json& out, size_t depth, size_t max_depth,
                  bool allow_binary) {
  msgpack_value v;
  if (!in.next(v))
    return false;
  switch (v.type) {
  case msgpack_type::nil: out = nullptr; return true;
  case msgpack_type::boolean: out = v.bits != 0; return true;
  case msgpack_type::unsigned_int:
    out = static_cast<nlohmann::json::number_unsigned_t>(v.bits);
    return true;
  case msgpack_type::signed_int:
    out = static_cast<nlohmann::json::number_integer_t>(v.as_int());
    return true;
  case msgpack_type::float32:
  case msgpack_type::float64: out = v.as_double(); return true;
  case msgpack_type::str: out = std::string{v.bytes}; return true;
  case msgpack_type::bin:
  case msgpack_type::ext: {
    if (!allow_binary)
      return false;
    std::vector<uint8_t> b(v.bytes.begin(), v.bytes.end());
    out = v.type == msgpack_type::bin
            ? nlohmann::json::binary(std::move(b))
            : nlohmann::json::binary(std::move(b), static_cast<uint8_t>(v.ext_type));
    return true;
  }
  case msgpack_type::array: {
    if (v.count != 0 && depth >= max_depth)
      return false;
    out = nlohmann::json::array();
    auto& a = out.get_ref<nlohmann::json::array_t&>();
    a.reserve(v.count); // the cursor checked that the bytes left can hold them
    for (uint64_t i = 0; i < v.count; ++i)
      if (!read_json_at(in, a.emplace_back(), depth + 1, max_depth, allow_binary))
        return false;
    return true;
  }
  case msgpack_type::map: {
    if (v.count != 0 && depth >= max_depth)
      return false;
    out = nlohmann::json::object();
    auto& o = out.get_ref<nlohmann::json::object_t&>();
    for (uint64_t i = 0; i < v.count; ++i) {
      std::string_view key;
      if (!in.read_str(key))
        return false;
      if (!read_json_at(in, o[std::string{key}], depth + 1, max_depth, allow_binary))
        return false;
    }
    return true;
  }
  }
  return false;
}

} // namespace

bool read_msgpack_json(msgpack_cursor& in, nlohmann::json& out, size_t max_depth,
                       bool allow_binary) {
  return read_json_at(in, out, 0, max_depth, allow_binary);
}

} // namespace comb
