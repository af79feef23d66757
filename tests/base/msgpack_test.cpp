// append_msgpack writes the same bytes as nlohmann::json::to_msgpack for every kind of value
// and every width of header, with and without ascii_only; with ascii_only it refuses (false)
// exactly the values holding a byte outside ASCII or a binary value.
#include "base/msgpack.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

using comb::append_msgpack;
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
    std::function<json(int)> make = [&](int depth) -> json {
      switch (rng() % (depth > 3 ? 6 : 8)) {
      case 0: return json{};
      case 1: return rng() % 2 == 0;
      case 2: return static_cast<int64_t>(rng()) >> (rng() % 64);
      case 3: return rng() >> (rng() % 64);
      case 4: return (rng() % 2 == 0) ? static_cast<double>(static_cast<float>(rng() % 1000) / 8)
                                      : static_cast<double>(rng()) / 7.0;
      case 5: {
        std::string s(rng() % 40, 'a');
        for (auto& c : s)
          c = static_cast<char>(rng() % (rng() % 16 == 0 ? 256 : 128));
        return s;
      }
      case 6: {
        json a = json::array();
        for (size_t i = rng() % 20; i > 0; --i)
          a.push_back(make(depth + 1));
        return a;
      }
      default: {
        json o = json::object();
        for (size_t i = rng() % 20; i > 0; --i)
          o["k" + std::to_string(rng() % 50)] = make(depth + 1);
        return o;
      }
      }
    };
    for (int i = 0; i < 500; ++i)
      check(make(0));
  }
}
