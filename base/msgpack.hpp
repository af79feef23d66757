// comb::append_msgpack and comb::msgpack_cursor: the one MessagePack writer and the one
// MessagePack reader. append_msgpack writes rows (storage/transaction.cpp) and provenance
// records' arguments and results (storage/log_record.cpp) byte for byte as
// nlohmann::json::to_msgpack does, without its allocations (to_msgpack copies every object key
// into a JSON string and allocates an output adapter per call). msgpack_cursor reads
// MessagePack in place (a string_view, nothing copied or allocated): each value's header, its
// scalar or the bytes of its string, and steps over whole values; every read is checked
// against the end, so truncated or hostile bytes give an error, never a read out of bounds.
// append_msgpack is stateless and thread-safe; a cursor belongs to one thread.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace comb {

/// Appends `value` to `out` as MessagePack: the same bytes as nlohmann::json::to_msgpack.
///
/// With `ascii_only`, refuses a value holding a string or object key with a byte outside
/// ASCII, a binary or discarded value, or a string or container of 2^32 or more bytes or
/// elements: it returns false, and `out` then ends with part of the value (the caller cuts it
/// back and writes the value another way, e.g. as JSON text, which checks UTF-8). Without it,
/// every value is written (the rare forms through nlohmann itself) and it returns true.
bool append_msgpack(std::string& out, const nlohmann::json& value, bool ascii_only = false);

/// The kind of a MessagePack value, from its first byte.
enum class msgpack_type : uint8_t {
  nil,
  boolean,
  /// Positive fixint, uint 8/16/32/64 (what nlohmann reads as number_unsigned).
  unsigned_int,
  /// Negative fixint, int 8/16/32/64 (nlohmann's number_integer), whatever its sign.
  signed_int,
  float32,
  float64,
  str,
  bin,
  /// ext 8/16/32 and fixext 1/2/4/8/16.
  ext,
  array,
  map,
};

/// "nil", "boolean", "unsigned integer", ..., "map".
const char* to_string(msgpack_type t) noexcept;

/// One value's header, as msgpack_cursor::next reads it.
struct msgpack_value {
  msgpack_type type = msgpack_type::nil;
  /// ext: its type byte.
  int8_t ext_type = 0;
  /// array: its elements; map: its key/value pairs; str, bin, ext: the size of `bytes`.
  uint64_t count = 0;
  /// boolean: 0 or 1; unsigned_int: the value; signed_int: the value's two's complement bits
  /// (as_int); float32 / float64: the IEEE bits (as_double).
  uint64_t bits = 0;
  /// str, bin, ext: the value's bytes, inside the cursor's input.
  std::string_view bytes;

  int64_t as_int() const noexcept { return static_cast<int64_t>(bits); }
  /// A float32 or float64 as a double (0 for other types).
  double as_double() const noexcept;
};

/// Reads MessagePack from a string_view, one value's header at a time, without copying. Every
/// read is checked against the end: a truncated value, a string or container that announces
/// more than the bytes left can hold, the unused byte 0xc1 or nesting deeper than max_depth
/// makes the read return false; the cursor then stays where it was and error() says what is
/// wrong and at which byte. Nested values are stepped over without recursion.
class msgpack_cursor {
public:
  /// How deep skip() follows nested arrays and maps: a value inside more than this many
  /// containers is refused (as storage/log_record.cpp's record values always were).
  static constexpr size_t max_depth = 256;

  explicit msgpack_cursor(std::string_view in) noexcept : in_(in) {}

  /// Reads the next value's header. For a str, bin or ext it also reads the value's bytes
  /// (v.bytes) and moves past them; for an array or a map only the header (its elements
  /// follow, the next values read). False at the end of the input or on a damaged value.
  bool next(msgpack_value& v) noexcept;
  /// next() without moving.
  bool peek(msgpack_value& v) noexcept;

  /// Steps over the next value and everything it holds.
  bool skip() noexcept;
  /// Steps over the elements of an array or the pairs of a map whose header next() has just
  /// read (nothing for another type).
  bool skip_items(const msgpack_value& v) noexcept;

  /// Typed reads: the next value when it has that type, else false (an error naming the type
  /// found, the cursor not moved). read_int takes an unsigned_int up to INT64_MAX as well,
  /// read_uint a signed_int of zero or more, read_double a float32, float64 or integer.
  bool read_nil() noexcept;
  bool read_bool(bool& b) noexcept;
  bool read_int(int64_t& i) noexcept;
  bool read_uint(uint64_t& u) noexcept;
  bool read_double(double& d) noexcept;
  bool read_str(std::string_view& s) noexcept;
  bool read_bin(std::string_view& b) noexcept;
  /// An array's header: `n` its elements, which follow.
  bool read_array(uint64_t& n) noexcept;
  /// A map's header: `n` its pairs (key, value, key, value...), which follow.
  bool read_map(uint64_t& n) noexcept;

  /// Bytes read so far.
  size_t offset() const noexcept { return at_; }
  size_t remaining() const noexcept { return in_.size() - at_; }
  bool at_end() const noexcept { return at_ == in_.size(); }
  /// The bytes not read yet.
  std::string_view rest() const noexcept { return in_.substr(at_); }

  /// Whether a read has failed (the last failure stays until clear_error).
  bool failed() const noexcept { return what_ != nullptr; }
  /// What was wrong and where, e.g. "MessagePack value longer than the bytes left (header
  /// 0xda: needs 303 bytes, 12 left) at byte 4 of 16"; empty when nothing failed.
  std::string error() const;
  void clear_error() noexcept { what_ = nullptr; }

private:
  bool fail(const char* what, size_t at, uint64_t need = 0) noexcept {
    what_ = what;
    error_at_ = at;
    error_need_ = need;
    wrong_type_ = false;
    return false;
  }
  // next() for the forms it does not read inline: all of them, in one switch.
  bool next_slow(msgpack_value& v) noexcept;
  // A typed read found `found`: the cursor goes back to `at`, the error names both types.
  bool wrong_type(size_t at, const char* expected, msgpack_type found) noexcept;
  // Fills `v` and moves past the value's `size` bytes (its header, and for a str, bin or ext
  // its data); the caller has checked that they are there.
  bool set(msgpack_value& v, msgpack_type t, uint64_t bits, uint64_t count, std::string_view bytes,
           size_t size) noexcept;
  bool scalar(msgpack_value& v, msgpack_type t, uint64_t bits, size_t size) noexcept {
    return set(v, t, bits, 0, {}, size);
  }
  bool data(msgpack_value& v, msgpack_type t, size_t header, uint64_t n) noexcept;
  bool container(msgpack_value& v, msgpack_type t, size_t header, uint64_t n) noexcept;
  // The next value when accept(v) holds, else an error naming `expected` and the type found.
  template <class Accept>
  bool next_if(msgpack_value& v, const char* expected, Accept accept) noexcept;
  bool next_of(msgpack_type t, msgpack_value& v) noexcept;
  bool bytes_of(msgpack_type t, std::string_view& bytes) noexcept;
  bool count_of(msgpack_type t, uint64_t& n) noexcept;
  bool skip_values(uint64_t n, size_t depth) noexcept;

  std::string_view in_;
  size_t at_ = 0;
  const char* what_ = nullptr;
  size_t error_at_ = 0;
  uint64_t error_need_ = 0;
  // A typed read found another type: what_ names the type expected, error_type_ the one found.
  bool wrong_type_ = false;
  msgpack_type error_type_ = msgpack_type::nil;
};

// -- inline: the header reads are on hot paths (row scans of result procedures, image rows) --

namespace detail {
/// The big-endian unsigned integer of `n` (1, 2, 4 or 8) bytes at `p`.
inline uint64_t msgpack_be(const uint8_t* p, size_t n) noexcept {
  switch (n) {
  case 1:
    return p[0];
  case 2: {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return __builtin_bswap16(v);
  }
  case 4: {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return __builtin_bswap32(v);
  }
  default: {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return __builtin_bswap64(v);
  }
  }
}
} // namespace detail

inline bool msgpack_cursor::set(msgpack_value& v, msgpack_type t, uint64_t bits, uint64_t count,
                                std::string_view bytes, size_t size) noexcept {
  v.type = t;
  v.bits = bits;
  v.count = count;
  v.bytes = bytes;
  at_ += size;
  return true;
}

inline bool msgpack_cursor::data(msgpack_value& v, msgpack_type t, size_t header,
                                 uint64_t n) noexcept {
  // The header's bytes are there (checked by next); its data must be.
  if (n > in_.size() - at_ - header)
    return fail("value longer than the bytes left", at_, header + n);
  return set(v, t, 0, n, in_.substr(at_ + header, n), header + n);
}

inline bool msgpack_cursor::container(msgpack_value& v, msgpack_type t, size_t header,
                                      uint64_t n) noexcept {
  // Each element takes a byte at least: a count the bytes left cannot hold is damage (and
  // bounds what a reader may reserve for it).
  uint64_t values = t == msgpack_type::map ? 2 * n : n;
  if (values > in_.size() - at_ - header)
    return fail("container with more elements than bytes left", at_, header + values);
  return set(v, t, 0, n, {}, header);
}

inline bool msgpack_cursor::next(msgpack_value& v) noexcept {
  // Inline: the forms rows are mostly made of (positive fixint, fixstr, fixmap, fixarray).
  if (at_ < in_.size()) {
    const auto b = static_cast<uint8_t>(in_[at_]);
    if (b <= 0x7f)
      return scalar(v, msgpack_type::unsigned_int, b, 1);
    if ((b & 0xe0) == 0xa0)
      return data(v, msgpack_type::str, 1, b & 0x1fu);
    if ((b & 0xe0) == 0x80) // fixmap, fixarray
      return container(v, b < 0x90 ? msgpack_type::map : msgpack_type::array, 1, b & 0x0fu);
  }
  return next_slow(v);
}

inline bool msgpack_cursor::peek(msgpack_value& v) noexcept {
  size_t at = at_;
  bool ok = next(v);
  at_ = at;
  return ok;
}

inline bool msgpack_cursor::skip() noexcept {
  return skip_values(1, 0);
}

inline bool msgpack_cursor::skip_items(const msgpack_value& v) noexcept {
  if (v.type == msgpack_type::array)
    return skip_values(v.count, 1);
  if (v.type == msgpack_type::map)
    return skip_values(2 * v.count, 1);
  return true;
}

template <class Accept>
inline bool msgpack_cursor::next_if(msgpack_value& v, const char* expected,
                                    Accept accept) noexcept {
  size_t at = at_;
  if (!next(v))
    return false;
  return accept(v) || wrong_type(at, expected, v.type);
}

inline bool msgpack_cursor::next_of(msgpack_type t, msgpack_value& v) noexcept {
  size_t at = at_;
  if (!next(v))
    return false;
  return v.type == t || wrong_type(at, to_string(t), v.type);
}

inline bool msgpack_cursor::bytes_of(msgpack_type t, std::string_view& bytes) noexcept {
  msgpack_value v;
  bool ok = next_of(t, v);
  bytes = ok ? v.bytes : bytes;
  return ok;
}

inline bool msgpack_cursor::count_of(msgpack_type t, uint64_t& n) noexcept {
  msgpack_value v;
  bool ok = next_of(t, v);
  n = ok ? v.count : n;
  return ok;
}

inline bool msgpack_cursor::read_nil() noexcept {
  msgpack_value v;
  return next_of(msgpack_type::nil, v);
}

inline bool msgpack_cursor::read_bool(bool& b) noexcept {
  msgpack_value v;
  bool ok = next_of(msgpack_type::boolean, v);
  b = ok ? v.bits != 0 : b;
  return ok;
}

inline bool msgpack_cursor::read_int(int64_t& i) noexcept {
  msgpack_value v;
  bool ok = next_if(v, "integer up to 2^63 - 1", [](const msgpack_value& x) {
    return x.type == msgpack_type::signed_int
           || (x.type == msgpack_type::unsigned_int && x.bits <= uint64_t{INT64_MAX});
  });
  i = ok ? v.as_int() : i;
  return ok;
}

inline bool msgpack_cursor::read_uint(uint64_t& u) noexcept {
  msgpack_value v;
  bool ok = next_if(v, "integer of 0 or more", [](const msgpack_value& x) {
    return x.type == msgpack_type::unsigned_int
           || (x.type == msgpack_type::signed_int && x.as_int() >= 0);
  });
  u = ok ? v.bits : u;
  return ok;
}

inline bool msgpack_cursor::read_double(double& d) noexcept {
  msgpack_value v;
  bool ok = next_if(v, "number", [](const msgpack_value& x) {
    return x.type == msgpack_type::float32 || x.type == msgpack_type::float64
           || x.type == msgpack_type::unsigned_int || x.type == msgpack_type::signed_int;
  });
  if (ok)
    d = v.type == msgpack_type::unsigned_int ? static_cast<double>(v.bits)
        : v.type == msgpack_type::signed_int ? static_cast<double>(v.as_int())
                                             : v.as_double();
  return ok;
}

inline bool msgpack_cursor::read_str(std::string_view& s) noexcept {
  return bytes_of(msgpack_type::str, s);
}

inline bool msgpack_cursor::read_bin(std::string_view& b) noexcept {
  return bytes_of(msgpack_type::bin, b);
}

inline bool msgpack_cursor::read_array(uint64_t& n) noexcept {
  return count_of(msgpack_type::array, n);
}

inline bool msgpack_cursor::read_map(uint64_t& n) noexcept {
  return count_of(msgpack_type::map, n);
}

/// Reads the next value of `in` into `out` (recursively) as nlohmann::json::from_msgpack
/// builds it: map keys must be strings (a repeated key keeps its last value), bin is binary and
/// ext binary with a subtype. A non-empty array or map at nesting `max_depth` or deeper is
/// refused (rows: a small limit, their caller then parses with nlohmann; tests: max_depth, as
/// skip() allows). With allow_binary false, bin and ext are refused too. False where the
/// cursor fails or a value is refused; `out` then holds a partial value.
bool read_msgpack_json(msgpack_cursor& in, nlohmann::json& out, size_t max_depth,
                       bool allow_binary);

} // namespace comb
