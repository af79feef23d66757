// json_text writes the same bytes as nlohmann::json::dump() for every kind of value: the fast
// path (objects, arrays, integers, plain ASCII strings) and the values it hands to dump().
#include "base/json_text.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <string>

using comb::json_text;
using nlohmann::json;

TEST_SUITE("base.json_text") {
  TEST_CASE("fixed values match dump()") {
    std::vector<json> values = {
      json{},
      json::object(),
      json::array(),
      true,
      false,
      0,
      -1,
      std::numeric_limits<int64_t>::min(),
      std::numeric_limits<int64_t>::max(),
      std::numeric_limits<uint64_t>::max(),
      0.0,
      -0.0,
      1.0,
      0.1,
      1e300,
      std::numeric_limits<double>::quiet_NaN(),
      std::numeric_limits<double>::infinity(),
      "",
      "plain text",
      "quote \" and backslash \\",
      "tab\there\nnewline \x01 \x1f \x7f",
      "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
      json::binary({1, 2, 3}),
      json{{"id", "t1"}, {"from", "acct-1"}, {"to", "acct-2"}, {"amount", 57}},
      json{{"nested", {{"a", json::array({1, "two", 3.5, nullptr, json::object()})}}},
           {"k\"ey", "v"}},
    };
    for (const auto& v : values) {
      CAPTURE(v.dump());
      CHECK(json_text(v) == v.dump());
    }
  }

  TEST_CASE("a string that is not UTF-8 throws as dump() does") {
    json bad = std::string{"\xff\xfe"};
    CHECK_THROWS_AS(bad.dump(), json::type_error);
    CHECK_THROWS_AS(json_text(bad), json::type_error);
  }

  TEST_CASE("append_json_text appends") {
    std::string out = "x=";
    comb::append_json_text(out, json{{"a", 1}});
    CHECK(out == "x={\"a\":1}");
  }

  TEST_CASE("random values match dump()") {
    std::mt19937_64 rng{7};
    const std::string alphabet = "abcXYZ019 _-\"\\/\n\t\x01\x7f\xc3\xa9";
    auto random_string = [&] {
      std::string s;
      auto n = rng() % 12;
      for (size_t i = 0; i < n; ++i) {
        auto c = alphabet[rng() % alphabet.size()];
        if (static_cast<unsigned char>(c) == 0xc3) // keep UTF-8 whole: é
          s += "\xc3\xa9";
        else if (static_cast<unsigned char>(c) != 0xa9)
          s += c;
      }
      return s;
    };
    std::function<json(int)> random_value = [&](int depth) -> json {
      switch (rng() % (depth > 3 ? 6 : 8)) {
      case 0:
        return nullptr;
      case 1:
        return rng() % 2 == 0;
      case 2:
        return static_cast<int64_t>(rng());
      case 3:
        return static_cast<uint64_t>(rng());
      case 4:
        return static_cast<double>(static_cast<int64_t>(rng() % 2000000) - 1000000) / 64;
      case 5:
        return random_string();
      case 6: {
        json a = json::array();
        for (auto n = rng() % 5; n > 0; --n)
          a.push_back(random_value(depth + 1));
        return a;
      }
      default: {
        json o = json::object();
        for (auto n = rng() % 5; n > 0; --n)
          o[random_string()] = random_value(depth + 1);
        return o;
      }
      }
    };
    for (int i = 0; i < 2000; ++i) {
      auto v = random_value(0);
      CAPTURE(v.dump());
      REQUIRE(json_text(v) == v.dump());
    }
  }

} // TEST_SUITE
