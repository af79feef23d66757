// append_msgpack writes the same bytes as nlohmann::json::to_msgpack for every kind of value
// and every width of header, with and without ascii_only; with ascii_only it refuses (false)
// exactly the values holding a byte outside ASCII or a binary value. msgpack_cursor reads
// what to_msgpack writes (every width of every type) as nlohmann::json::from_msgpack does, and
// refuses truncated values, sizes beyond the input, 0xc1 and nesting deeper than its limit
// without reading past the end, the cursor left where it was.
#include "base/msgpack.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

using comb::append_msgpack;
using comb::msgpack_cursor;
using comb::msgpack_type;
using comb::msgpack_value;
using nlohmann::json;

namespace {

std::vector<uint8_t> reference(const json& v) {
  return json::to_msgpack(v);
}

std::vector<uint8_t> written(const json& v, bool ascii_only, bool& ok) {
  std::string out = "prefix";
  ok = append_msgpack(out, v, ascii_only);
  REQUIRE(out.compare(0, 6, "prefix") == 0); // appends, keeps what was there
  return {out.begin() + 6, out.end()};
}

// Whether a value holds a string or key with a byte outside ASCII, or a binary value.
bool refused(const json& v) {
  if (v.is_binary())
    return true;
  if (v.is_string()) {
    for (unsigned char c : v.get_ref<const std::string&>())
      if (c >= 0x80)
        return true;
    return false;
  }
  if (v.is_object())
    for (const auto& [k, x] : v.items())
      if (refused(json(k)) || refused(x))
        return true;
  if (v.is_array())
    for (const auto& x : v)
      if (refused(x))
        return true;
  return false;
}

void check(const json& v) {
  CAPTURE(v.is_binary() ? std::string{"<binary>"} : v.dump(-1, ' ', false,
                                                            json::error_handler_t::replace));
  bool ok = false;
  CHECK(written(v, false, ok) == reference(v));
  CHECK(ok);
  auto ascii = written(v, true, ok);
  CHECK(ok == !refused(v));
  if (ok)
    CHECK(ascii == reference(v));
}

std::string sized(size_t n, char c = 'x') {
  return std::string(n, c);
}

json sized_array(size_t n) {
  json a = json::array();
  for (size_t i = 0; i < n; ++i)
    a.push_back(static_cast<int64_t>(i));
  return a;
}

json sized_object(size_t n) {
  json o = json::object();
  for (size_t i = 0; i < n; ++i)
    o["k" + std::to_string(i)] = i;
  return o;
}


json binary_of(size_t n, int subtype = -1) {
  std::vector<uint8_t> b(n);
  for (size_t i = 0; i < n; ++i)
    b[i] = static_cast<uint8_t>(i * 7);
  return subtype < 0 ? json::binary(std::move(b))
                     : json::binary(std::move(b), static_cast<uint8_t>(subtype));
}

// A random value: scalars, strings (some bytes outside ASCII), with `binaries` bin and ext
// values, arrays and objects, a few levels deep.
json random_tree(std::mt19937_64& rng, int depth, bool binaries) {
  int kinds = binaries ? 9 : 8;
  int kind = static_cast<int>(rng() % static_cast<uint64_t>(depth > 3 ? kinds - 2 : kinds));
  if (!binaries && kind >= 6)
    ++kind; // no case 6
  switch (kind) {
  case 0: return json{};
  case 1: return rng() % 2 == 0;
  case 2: return static_cast<int64_t>(rng()) >> (rng() % 64);
  case 3: return rng() >> (rng() % 64);
  case 4: return (rng() % 2 == 0) ? static_cast<double>(static_cast<float>(rng() % 1000) / 8)
                                  : static_cast<double>(rng()) / 7.0;
  case 5: {
    std::string s(rng() % (binaries ? 300 : 40), 'a');
    for (auto& c : s)
      c = static_cast<char>(rng() % (rng() % 16 == 0 ? 256 : 128));
    return s;
  }
  case 6: return binary_of(rng() % 300, rng() % 2 == 0 ? -1 : static_cast<int>(rng() % 128));
  case 7: {
    json a = json::array();
    for (size_t i = rng() % 20; i > 0; --i)
      a.push_back(random_tree(rng, depth + 1, binaries));
    return a;
  }
  default: {
    json o = json::object();
    for (size_t i = rng() % 20; i > 0; --i)
      o["k" + std::to_string(rng() % 50)] = random_tree(rng, depth + 1, binaries);
    return o;
  }
  }
}

} // namespace

TEST_SUITE("base.msgpack") {
  TEST_CASE("scalars of every width match to_msgpack") {
    std::vector<json> values = {json{}, true, false};
    for (int64_t edge : {int64_t{0}, int64_t{1}, int64_t{127}, int64_t{128}, int64_t{255},
                         int64_t{256}, int64_t{65535}, int64_t{65536}, int64_t{4294967295},
                         int64_t{4294967296}, std::numeric_limits<int64_t>::max()}) {
      values.emplace_back(edge);
      values.emplace_back(-edge);
      values.emplace_back(static_cast<uint64_t>(edge));
    }
    for (int64_t edge : {int64_t{-31}, int64_t{-32}, int64_t{-33}, int64_t{-128}, int64_t{-129},
                         int64_t{-32768}, int64_t{-32769}, int64_t{-2147483648LL},
                         int64_t{-2147483649LL}, std::numeric_limits<int64_t>::min()})
      values.emplace_back(edge);
    values.emplace_back(std::numeric_limits<uint64_t>::max());
    // floats: exactly a float32 (0xca) or not (0xcb), the limits, NaN, infinities
    for (double d : {0.0, -0.0, 1.0, 1.5, -2.25, 0.1, 1e300, 3.4028234663852886e38, 1e39,
                     -3.4028234663852886e38, 1.401298464324817e-45, 1e-46,
                     std::numeric_limits<double>::quiet_NaN(),
                     std::numeric_limits<double>::infinity(),
                     -std::numeric_limits<double>::infinity()})
      values.emplace_back(d);
    for (const auto& v : values)
      check(v);
  }

  TEST_CASE("strings, arrays and objects of every header width match to_msgpack") {
    for (size_t n : {0, 1, 31, 32, 255, 256, 65535, 65536, 70000}) {
      check(json(sized(n)));
      check(json::array({sized(n)}));
      check(json::object({{sized(n), n}}));
    }
    for (size_t n : {0, 1, 15, 16, 65535, 65536}) {
      check(sized_array(n));
      check(sized_object(n));
    }
  }

  TEST_CASE("ascii_only refuses a byte outside ASCII in a string or key, and binary values") {
    std::vector<json> refusals = {
      json("caf\xc3\xa9"),
      json(sized(40) + "\xe2\x82\xac"),         // past the first 8-byte word
      json("\xff not UTF-8"),                   // to_msgpack writes it; JSON text would throw
      json::array({1, "ok", "\x80"}),
      json::object({{"ok", 1}, {"k\xc3\xa9y", 2}}),
      json::object({{"outer", json::object({{"inner", "\xf0\x9f\x98\x80"}})}}),
      json::binary({1, 2, 3}),
      json::object({{"bin", json::binary({0xff})}}),
    };
    for (const auto& v : refusals) {
      bool ok = true;
      written(v, true, ok);
      CHECK_FALSE(ok);
      check(v); // and without ascii_only: as to_msgpack
    }
    check(json("\x7f control \x01 and \"quotes\""));
  }

  TEST_CASE("random trees match to_msgpack in both modes") {
    std::mt19937_64 rng{21};
    for (int i = 0; i < 500; ++i)
      check(random_tree(rng, 0, /*binaries=*/false));
  }
}

namespace {

std::string as_string(const std::vector<uint8_t>& b) {
  return {b.begin(), b.end()};
}

// comb::read_msgpack_json as the tests and the fuzz target use it: binary allowed, nesting
// as deep as skip() follows.
bool read_msgpack_json(msgpack_cursor& c, json& out) {
  return comb::read_msgpack_json(c, out, msgpack_cursor::max_depth, /*allow_binary=*/true);
}

// Reads `v`'s to_msgpack bytes with the cursor: the same value as from_msgpack, the whole
// input; skip() steps over exactly as much.
void check_read(const json& v) {
  auto bytes = as_string(json::to_msgpack(v));
  CAPTURE(bytes.size());
  CAPTURE(static_cast<int>(static_cast<uint8_t>(bytes[0])));
  msgpack_cursor c{bytes};
  json got;
  REQUIRE(read_msgpack_json(c, got));
  CHECK(c.at_end());
  CHECK_FALSE(c.failed());
  CHECK(json::to_msgpack(got) == json::to_msgpack(json::from_msgpack(bytes)));
  msgpack_cursor s{bytes};
  CHECK(s.skip());
  CHECK(s.at_end());
  // A second value after it: skip stops where the first ends.
  std::string twice = bytes + bytes;
  msgpack_cursor two{twice};
  CHECK(two.skip());
  CHECK(two.offset() == bytes.size());
}

// One value of each kind and width, nested.
json every_kind() {
  json o = json::object();
  o["nil"] = nullptr;
  o["t"] = true;
  o["f"] = false;
  o["ints"] = json::array({0, 127, 128, 255, 256, 65535, 65536, 4294967295LL, 4294967296LL,
                           -1, -32, -33, -128, -129, -32768, -32769, -2147483648LL,
                           -2147483649LL, std::numeric_limits<int64_t>::min()});
  o["u64"] = std::numeric_limits<uint64_t>::max();
  o["floats"] = json::array({1.5, 0.1});
  o["s"] = json::array({sized(3), sized(40), sized(300), sized(70000)});
  o["bin"] = json::array({binary_of(3), binary_of(300), binary_of(70000)});
  o["ext"] = json::array({binary_of(1, 1), binary_of(16, 2), binary_of(3, 3), binary_of(300, 4),
                          binary_of(70000, 5)});
  o["nested"] = json::object({{"a", json::array({json::object({{"b", json::array()}})})}});
  o["wide"] = sized_array(20);
  return o;
}

// `n` nested arrays of one element, then nil.
std::string nested_arrays(size_t n) {
  return std::string(n, '\x91') + '\xc0';
}

} // namespace

TEST_SUITE("base.msgpack") {
  TEST_CASE("the cursor reads scalars of every width as from_msgpack does") {
    std::vector<json> values = {json{}, true, false, std::numeric_limits<uint64_t>::max()};
    for (int64_t edge : {int64_t{0}, int64_t{1}, int64_t{127}, int64_t{128}, int64_t{255},
                         int64_t{256}, int64_t{65535}, int64_t{65536}, int64_t{4294967295},
                         int64_t{4294967296}, std::numeric_limits<int64_t>::max()}) {
      values.emplace_back(edge);
      values.emplace_back(-edge);
    }
    for (int64_t edge : {int64_t{-31}, int64_t{-32}, int64_t{-33}, int64_t{-128}, int64_t{-129},
                         int64_t{-32768}, int64_t{-32769}, int64_t{-2147483648LL},
                         int64_t{-2147483649LL}, std::numeric_limits<int64_t>::min()})
      values.emplace_back(edge);
    for (double d : {0.0, -0.0, 1.5, 0.1, 1e300, 3.4028234663852886e38, 1.401298464324817e-45,
                     std::numeric_limits<double>::infinity()})
      values.emplace_back(d);
    for (const auto& v : values)
      check_read(v);

    // The header's fields for each width.
    auto first = [](const json& v) {
      static std::string bytes;
      bytes = as_string(json::to_msgpack(v));
      msgpack_cursor c{bytes};
      msgpack_value h;
      REQUIRE(c.next(h));
      CHECK(c.at_end());
      return h;
    };
    for (uint64_t u : {uint64_t{5}, uint64_t{200}, uint64_t{60000}, uint64_t{4000000000},
                       uint64_t{1} << 40, std::numeric_limits<uint64_t>::max()}) {
      auto h = first(json(u));
      CHECK(h.type == msgpack_type::unsigned_int);
      CHECK(h.bits == u);
    }
    for (int64_t i : {int64_t{-5}, int64_t{-100}, int64_t{-30000}, int64_t{-2000000000},
                      -(int64_t{1} << 40), std::numeric_limits<int64_t>::min()}) {
      auto h = first(json(i));
      CHECK(h.type == msgpack_type::signed_int);
      CHECK(h.as_int() == i);
    }
    auto f32 = first(json(1.5));
    CHECK(f32.type == msgpack_type::float32);
    CHECK(f32.as_double() == doctest::Approx(1.5));
    auto f64 = first(json(0.1));
    CHECK(f64.type == msgpack_type::float64);
    CHECK(f64.as_double() == doctest::Approx(0.1));
    CHECK(first(json(true)).bits == 1);
    CHECK(first(json(false)).type == msgpack_type::boolean);
    CHECK(first(json{}).type == msgpack_type::nil);
  }

  TEST_CASE("the cursor reads strings, binaries, extensions, arrays and maps of every width") {
    for (size_t n : {0, 1, 31, 32, 255, 256, 65535, 65536, 70000}) {
      check_read(json(sized(n)));
      check_read(binary_of(n));
      check_read(json::array({sized(n)}));
      check_read(json::object({{sized(n), n}}));
      auto bytes = as_string(json::to_msgpack(json(sized(n, 'q'))));
      msgpack_cursor c{bytes};
      std::string_view s;
      REQUIRE(c.read_str(s));
      CHECK(s == sized(n, 'q'));
      CHECK(c.at_end());
    }
    for (size_t n : {0, 1, 2, 3, 4, 8, 16, 17, 255, 256, 65535, 65536}) // fixext and ext 8/16/32
      check_read(binary_of(n, static_cast<int>(n % 100)));
    for (size_t n : {0, 1, 15, 16, 65535, 65536}) {
      check_read(sized_array(n));
      check_read(sized_object(n));
    }
    check_read(every_kind());
    auto ext = as_string(json::to_msgpack(binary_of(4, 0x7f)));
    msgpack_cursor c{ext};
    msgpack_value v;
    REQUIRE(c.next(v));
    CHECK(v.type == msgpack_type::ext);
    CHECK(v.ext_type == 0x7f);
    CHECK(v.bytes.size() == 4);
  }

  TEST_CASE("the cursor reads random trees as from_msgpack does") {
    std::mt19937_64 rng{7};
    for (int i = 0; i < 300; ++i)
      check_read(random_tree(rng, 0, /*binaries=*/true));
  }

  TEST_CASE("a value cut at any byte is refused, the cursor not moved") {
    auto whole = as_string(json::to_msgpack(every_kind()));
    // Every cut inside the small members, and a spread of cuts inside the large ones.
    for (size_t cut = 0; cut < whole.size(); cut += cut < 2000 ? 1 : 997) {
      CAPTURE(cut);
      std::string part = whole.substr(0, cut); // its own allocation: nothing after it
      msgpack_cursor s{part};
      CHECK_FALSE(s.skip());
      CHECK(s.offset() == 0);
      CHECK(s.failed());
      CHECK(s.error().find("MessagePack") == 0);
      msgpack_cursor r{part};
      json got;
      CHECK_FALSE(read_msgpack_json(r, got));
      CHECK(r.failed());
      CHECK(r.offset() <= cut);
    }
    // Each scalar and header form cut short on its own.
    for (const json& v : {json(200), json(60000), json(4000000000), json(uint64_t{1} << 40),
                          json(-100), json(-30000), json(-2000000000), json(-(int64_t{1} << 40)),
                          json(1.5), json(0.1), json(sized(40)), json(sized(300)),
                          json(sized(70000)), binary_of(3), binary_of(300), binary_of(70000),
                          binary_of(1, 1), binary_of(3, 1), binary_of(300, 1),
                          binary_of(70000, 1), sized_array(16), sized_array(70000),
                          sized_object(16), sized_object(70000)}) {
      auto bytes = as_string(json::to_msgpack(v));
      for (size_t cut : {size_t{0}, size_t{1}, size_t{2}, size_t{3}, size_t{4}, size_t{5},
                         bytes.size() - 1}) {
        if (cut >= bytes.size())
          continue;
        std::string part = bytes.substr(0, cut);
        msgpack_cursor c{part};
        msgpack_value h;
        bool header = c.next(h);
        msgpack_cursor s{part};
        CHECK_FALSE(s.skip());
        CHECK(s.offset() == 0);
        if (!header)
          CHECK(c.offset() == 0);
      }
    }
  }

  TEST_CASE("sizes and counts larger than the input are refused") {
    struct bad {
      std::string bytes;
      std::string says;
    };
    std::vector<bad> cases = {
      {std::string{"\xdb\xff\xff\xff\xff" "abc", 8}, "value longer than the bytes left"},
      {std::string{"\xda\x01\x00" "abc", 6}, "value longer than the bytes left"},
      {std::string{"\xd9\x05" "abc", 5}, "value longer than the bytes left"},
      {std::string{"\xa5" "abc", 4}, "value longer than the bytes left"},
      {std::string{"\xc6\x7f\xff\xff\xff\x00", 6}, "value longer than the bytes left"},
      {std::string{"\xc9\x00\x01\x00\x00\x05\x00", 7}, "value longer than the bytes left"},
      {std::string{"\xd8\x05" "abc", 5}, "value longer than the bytes left"},
      {std::string{"\xdd\xff\xff\xff\xff\xc0\xc0", 7}, "more elements than bytes left"},
      {std::string{"\xdc\x00\x03\xc0\xc0", 5}, "more elements than bytes left"},
      {std::string{"\xdf\x80\x00\x00\x00\xa0\xc0", 7}, "more elements than bytes left"},
      {std::string{"\x82\xa0\xc0\xa0", 4}, "more elements than bytes left"},
      {std::string{"\xc1", 1}, "the unused byte 0xc1"},
      {std::string{}, "the input ends"},
      {std::string{"\xcf\x00", 2}, "truncated value"},
    };
    for (const auto& b : cases) {
      CAPTURE(b.says);
      msgpack_cursor c{b.bytes};
      msgpack_value v;
      CHECK_FALSE(c.next(v));
      CHECK(c.offset() == 0);
      CHECK(c.error().find(b.says) != std::string::npos);
      CHECK(c.error().find("at byte 0 of " + std::to_string(b.bytes.size())) != std::string::npos);
      msgpack_cursor s{b.bytes};
      CHECK_FALSE(s.skip());
      json ignored;
      CHECK(json::from_msgpack(b.bytes, true, false).is_discarded()); // nlohmann refuses too
    }
    // Inside a container: the error names the inner value's byte.
    std::string inner{"\x92\x01\xa5" "ab", 5};
    msgpack_cursor c{inner};
    CHECK_FALSE(c.skip());
    CHECK(c.offset() == 0);
    CHECK(c.error().find("at byte 2 of 5") != std::string::npos);
  }

  TEST_CASE("nesting deeper than max_depth is refused without recursion") {
    constexpr size_t limit = msgpack_cursor::max_depth;
    for (size_t n : {limit - 1, limit}) {
      auto bytes = nested_arrays(n);
      msgpack_cursor c{bytes};
      CHECK(c.skip());
      CHECK(c.at_end());
    }
    // An empty container inside the deepest level holds nothing deeper.
    auto empty_inside = std::string(limit, '\x91') + '\x90';
    msgpack_cursor e{empty_inside};
    CHECK(e.skip());
    for (size_t n : {limit + 1, size_t{100000}, size_t{4000000}}) {
      auto bytes = nested_arrays(n);
      msgpack_cursor c{bytes};
      CHECK_FALSE(c.skip());
      CHECK(c.offset() == 0);
      CHECK(c.error().find("nesting deeper than 256 levels") != std::string::npos);
      CHECK(c.error().find("at byte " + std::to_string(limit)) != std::string::npos);
    }
    // Maps: {"": {"": ...}}.
    std::string maps;
    for (size_t i = 0; i < 100000; ++i)
      maps += std::string{"\x81\xa0", 2};
    maps += '\xc0';
    msgpack_cursor m{maps};
    CHECK_FALSE(m.skip());
    // skip_items counts the container whose header was read as one level.
    auto deepest = nested_arrays(limit);
    msgpack_cursor d{deepest};
    msgpack_value v;
    REQUIRE(d.next(v));
    CHECK(d.skip_items(v));
    CHECK(d.at_end());
    auto deeper = nested_arrays(limit + 1);
    msgpack_cursor d2{deeper};
    REQUIRE(d2.next(v));
    CHECK_FALSE(d2.skip_items(v));
    CHECK(d2.offset() == 1);
  }

  TEST_CASE("typed reads take their type and leave the cursor on another") {
    json row = {{"k", "v"}, {"n", -3}, {"u", 7}, {"big", std::numeric_limits<uint64_t>::max()},
                {"b", true}, {"z", nullptr}, {"f", 2.5}, {"bin", binary_of(3)},
                {"a", json::array({1, 2})}};
    auto bytes = as_string(json::to_msgpack(row));
    msgpack_cursor c{bytes};
    uint64_t pairs = 0;
    REQUIRE(c.read_map(pairs));
    CHECK(pairs == row.size());
    std::map<std::string, bool> seen;
    for (uint64_t i = 0; i < pairs; ++i) {
      std::string_view key;
      REQUIRE(c.read_str(key));
      size_t at = c.offset();
      std::string_view s;
      if (key != "k") {
        CHECK_FALSE(c.read_str(s));
        CHECK(c.offset() == at);
        CHECK(c.error().find("string expected, found") != std::string::npos);
        c.clear_error();
      }
      int64_t i64 = 0;
      uint64_t u64 = 0;
      double d = 0;
      bool b = false;
      uint64_t n = 0;
      if (key == "k") {
        CHECK(c.read_str(s));
        CHECK(s == "v");
      } else if (key == "n") {
        CHECK_FALSE(c.read_uint(u64));
        CHECK(c.read_int(i64));
        CHECK(i64 == -3);
      } else if (key == "u") {
        CHECK(c.read_int(i64));
        CHECK(i64 == 7);
      } else if (key == "big") {
        CHECK_FALSE(c.read_int(i64));
        CHECK(c.offset() == at);
        CHECK(c.read_uint(u64));
        CHECK(u64 == std::numeric_limits<uint64_t>::max());
      } else if (key == "b") {
        CHECK(c.read_bool(b));
        CHECK(b);
      } else if (key == "z") {
        CHECK_FALSE(c.read_bool(b));
        CHECK(c.read_nil());
      } else if (key == "f") {
        CHECK(c.read_double(d));
        CHECK(d == doctest::Approx(2.5));
      } else if (key == "bin") {
        CHECK(c.read_bin(s));
        CHECK(s.size() == 3);
      } else if (key == "a") {
        CHECK_FALSE(c.read_map(n));
        CHECK(c.read_array(n));
        CHECK(n == 2);
        CHECK(c.read_double(d)); // integers read as doubles
        CHECK(d == doctest::Approx(1));
        CHECK(c.skip());
      }
      seen[std::string{key}] = true;
    }
    CHECK(seen.size() == row.size());
    CHECK(c.at_end());
    // A signed form of a value of 0 or more reads as unsigned.
    std::string d0{"\xd0\x05", 2};
    msgpack_cursor s{d0};
    uint64_t u = 0;
    CHECK(s.read_uint(u));
    CHECK(u == 5);
  }
}

TEST_CASE("read_msgpack_json refuses binary and deep nesting where asked") {
  auto bin = as_string(json::to_msgpack(json{{"a", json::binary({1, 2, 3}, 7)}}));
  {
    msgpack_cursor c{bin};
    json got;
    CHECK_FALSE(comb::read_msgpack_json(c, got, 8, /*allow_binary=*/false));
  }
  {
    msgpack_cursor c{bin};
    json got;
    REQUIRE(comb::read_msgpack_json(c, got, 8, /*allow_binary=*/true));
    CHECK(got["a"].get_binary().subtype() == 7);
  }
  // [[[1]]]: three containers; a limit of 2 refuses the innermost, 3 reads it all. An empty
  // container is read at any depth (nothing inside it to refuse).
  auto deep = as_string(json::to_msgpack(json::parse("[[[1]]]")));
  auto deep_empty = as_string(json::to_msgpack(json::parse("[[[]]]")));
  for (size_t limit : {2, 3}) {
    msgpack_cursor c{deep};
    json got;
    CHECK(comb::read_msgpack_json(c, got, limit, false) == (limit == 3));
    msgpack_cursor e{deep_empty};
    CHECK(comb::read_msgpack_json(e, got, limit, false));
    CHECK(got == json::parse("[[[]]]"));
  }
  // A repeated key keeps its last value, as from_msgpack does.
  std::string twice = "\x82\xa1k\x01\xa1k\x02";
  msgpack_cursor c{twice};
  json got;
  REQUIRE(comb::read_msgpack_json(c, got, 4, false));
  CHECK(got == json{{"k", 2}});
}
