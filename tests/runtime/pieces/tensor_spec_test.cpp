// Unit tests of runtime::tensor_spec: packing and splitting tensors, str tensors, every error
// of check_specs, truncated string lengths, and the JSON forms.
#include "runtime/pieces/tensor_spec.hpp"

#include "base/errc.hpp"
#include "tests/test_util.hpp"

#include <doctest/doctest.h>

#include <cstring>

using namespace comb;
using namespace comb::runtime;
using comb::test::why;

namespace {

// The error text of `e` ("ok" when there is none).
std::string text(const caf::error& e) {
  return e ? describe(e) : std::string{"ok"};
}

// True when `e` is invalid_argument and its text holds `part`.
bool names(const caf::error& e, const std::string& part) {
  return is(e, errc::invalid_argument) && describe(e).find(part) != std::string::npos;
}

} // namespace

TEST_SUITE("runtime.pieces.tensor_spec") {
  TEST_CASE("dtype names and sizes round trip") {
    for (auto t : {tensor_dtype::f32, tensor_dtype::u8, tensor_dtype::i8, tensor_dtype::i32,
                   tensor_dtype::str}) {
      auto p = parse_tensor_dtype(to_string(t));
      REQUIRE_MESSAGE(p, why(p));
      CHECK(*p == t);
    }
    CHECK(element_size(tensor_dtype::f32) == 4);
    CHECK(element_size(tensor_dtype::i32) == 4);
    CHECK(element_size(tensor_dtype::u8) == 1);
    CHECK(element_size(tensor_dtype::i8) == 1);
    CHECK(element_size(tensor_dtype::str) == 0);
    auto bad = parse_tensor_dtype("f64");
    REQUIRE(!bad);
    CHECK(names(bad.error(), "f64"));
    CHECK(make_spec("x", tensor_dtype::f32, {2, 3}).bytes == 24);
    CHECK(make_spec("s", tensor_dtype::u8, {}).numel() == 1);
    CHECK(make_spec("images", tensor_dtype::u8, {1200, 28, 28, 1}).describe()
          == "images u8 [1200, 28, 28, 1]");
  }

  TEST_CASE("a pack of fixed-size and str tensors splits back byte for byte") {
    tensor_pack pack;
    float x[6] = {1, 2, 3, 4, 5, 6.5f};
    int32_t y[2] = {7, -8};
    uint8_t z[3] = {0, 128, 255};
    pack.add("x", tensor_dtype::f32, {2, 3}, x);
    pack.add_strings("requests", {"GET / HTTP/1.1", "", std::string_view{"a\0b", 3}});
    pack.add("y", tensor_dtype::i32, {2}, y);
    pack.add("z", tensor_dtype::u8, {3}, z);
    pack.add("empty", tensor_dtype::f32, {0, 4}, nullptr);
    CHECK(pack.bytes.size() == 24 + (4 + 14) + 4 + (4 + 3) + 8 + 3);
    CHECK(!check_specs(pack.specs, pack.bytes.size()));
    auto views = pack.views();
    REQUIRE_MESSAGE(views, why(views));
    REQUIRE(views->size() == 5);
    CHECK(std::memcmp((*views)[0].data, x, sizeof(x)) == 0);
    CHECK((*views)[0].size == sizeof(x));
    CHECK((*views)[0].spec->name == "x");
    auto strings = read_strings((*views)[1]);
    REQUIRE_MESSAGE(strings, why(strings));
    REQUIRE(strings->size() == 3);
    CHECK((*strings)[0] == "GET / HTTP/1.1");
    CHECK((*strings)[1].empty());
    CHECK((*strings)[2] == std::string_view{"a\0b", 3});
    CHECK(std::memcmp((*views)[2].data, y, sizeof(y)) == 0);
    CHECK(std::memcmp((*views)[3].data, z, sizeof(z)) == 0);
    CHECK((*views)[4].size == 0);
    // Reading a fixed-size tensor as strings is refused.
    auto wrong = read_strings((*views)[0]);
    REQUIRE(!wrong);
    CHECK(names(wrong.error(), "not str"));
  }

  TEST_CASE("no specs: the payload is opaque bytes") {
    CHECK(!check_specs({}, 0));
    CHECK(!check_specs({}, 12345));
    auto v = split_payload({}, "abc", 3);
    REQUIRE(v);
    CHECK(v->empty());
  }

  TEST_CASE("check_specs names every malformed spec") {
    auto good = [] {
      return std::vector<tensor_spec>{make_spec("a", tensor_dtype::f32, {2, 2}),
                                      make_spec("b", tensor_dtype::u8, {5})};
    };
    CHECK(!check_specs(good(), 21));

    auto s = good();
    s[1].dtype = 9;
    auto e = check_specs(s, 21);
    CHECK_MESSAGE(names(e, "'b' has unknown dtype 9"), text(e));

    s = good();
    s[0].shape = {2, -2};
    e = check_specs(s, 21);
    CHECK_MESSAGE(names(e, "'a' has negative dimension 1"), text(e));

    s = good();
    s[0].bytes = 15;
    e = check_specs(s, 20);
    CHECK_MESSAGE(names(e, "has 15 bytes, not the 4 x 4 its shape needs"), text(e));

    s = good();
    s[1].name = "a";
    e = check_specs(s, 21);
    CHECK_MESSAGE(names(e, "used by an earlier tensor"), text(e));

    s = good();
    s[1].name = "";
    e = check_specs(s, 21);
    CHECK_MESSAGE(names(e, "has no name"), text(e));

    e = check_specs(good(), 22);
    CHECK_MESSAGE(names(e, "hold 21 bytes but its payload has 22"), text(e));
    e = check_specs(good(), 20);
    CHECK_MESSAGE(names(e, "runs past the payload's 20 bytes"), text(e));

    s = good();
    s[0].shape = {1, 1, 1, 1, 1, 1, 1, 1, 4};
    e = check_specs(s, 21);
    CHECK_MESSAGE(names(e, "9 dimensions, more than 8"), text(e));

    s = good();
    s[0].shape = {int64_t{1} << 40, int64_t{1} << 40};
    e = check_specs(s, 21);
    CHECK_MESSAGE(names(e, "too many elements"), text(e));

    std::vector<tensor_spec> many;
    for (int i = 0; i < 65; ++i)
      many.push_back(make_spec("t" + std::to_string(i), tensor_dtype::u8, {0}));
    e = check_specs(many, 0);
    CHECK_MESSAGE(names(e, "65 tensors"), text(e));

    // A str tensor of n strings needs at least 4n bytes.
    tensor_spec str{"s", static_cast<uint8_t>(tensor_dtype::str), {3}, 8};
    e = check_specs({str}, 8);
    CHECK_MESSAGE(names(e, "holds 3 strings"), text(e));

    // split_payload checks first.
    auto v = split_payload(good(), "x", 1);
    REQUIRE(!v);
    CHECK(is(v.error(), errc::invalid_argument));
  }

  TEST_CASE("truncated str lengths and counts are named") {
    tensor_spec s{"req", static_cast<uint8_t>(tensor_dtype::str), {2}, 0};
    std::vector<char> bytes;
    append_string(bytes, "hello");
    append_string(bytes, "world");
    s.bytes = bytes.size();
    auto ok = read_strings({&s, bytes.data(), bytes.size()});
    REQUIRE_MESSAGE(ok, why(ok));
    CHECK(ok->size() == 2);

    // The second length claims more bytes than are left.
    auto cut = bytes;
    cut.resize(cut.size() - 1);
    auto r = read_strings({&s, cut.data(), cut.size()});
    REQUIRE(!r);
    CHECK_MESSAGE(names(r.error(), "string 1 at byte 9 has length 5, past the tensor's end"),
                  why(r));

    // Only part of a length is there.
    std::vector<char> part(bytes.begin(), bytes.begin() + 11);
    r = read_strings({&s, part.data(), part.size()});
    REQUIRE(!r);
    CHECK_MESSAGE(names(r.error(), "truncated length (2 of 4 bytes)"), why(r));

    // Whole strings, but not as many as the shape says.
    tensor_spec three = s;
    three.shape = {3};
    r = read_strings({&three, bytes.data(), bytes.size()});
    REQUIRE(!r);
    CHECK_MESSAGE(names(r.error(), "holds 2 strings, not 3"), why(r));
  }

  TEST_CASE("specs survive JSON, and malformed JSON is named") {
    tensor_pack pack;
    uint8_t img[2 * 4 * 4 * 3] = {};
    pack.add("images", tensor_dtype::u8, {2, 4, 4, 3}, img);
    pack.add_strings("requests", {"a", "bc"});
    auto j = specs_to_json(pack.specs);
    CHECK(j[0]["dtype"] == "u8");
    CHECK(j[0]["shape"] == nlohmann::json::array({2, 4, 4, 3}));
    CHECK(j[1]["bytes"] == 11);
    // Through text, as a row or an argument would carry it.
    auto back = specs_from_json(nlohmann::json::parse(j.dump()));
    REQUIRE_MESSAGE(back, why(back));
    CHECK(*back == pack.specs);
    CHECK(specs_from_json(nlohmann::json{})->empty());

    auto bad = [](nlohmann::json x) {
      auto r = specs_from_json(x);
      return r ? std::string{"ok"} : describe(r.error());
    };
    CHECK(bad(nlohmann::json::object()).find("must be a JSON array") != std::string::npos);
    CHECK(bad(nlohmann::json::array({1})).find("not a JSON object") != std::string::npos);
    CHECK(bad(nlohmann::json::parse(R"([{"dtype":"u8","shape":[],"bytes":1}])")).find("no \"name\"")
          != std::string::npos);
    CHECK(bad(nlohmann::json::parse(R"([{"name":"x","dtype":"f16","shape":[],"bytes":2}])"))
            .find("unknown tensor dtype 'f16'")
          != std::string::npos);
    CHECK(bad(nlohmann::json::parse(R"([{"name":"x","dtype":"u8","shape":[1.5],"bytes":2}])"))
            .find("not an integer")
          != std::string::npos);
    CHECK(bad(nlohmann::json::parse(R"([{"name":"x","dtype":"u8","shape":[1],"bytes":-1}])"))
            .find("no \"bytes\"")
          != std::string::npos);
  }

  TEST_CASE("result_tensors reads a result procedure's outputs and output bytes") {
    tensor_pack pack;
    int32_t label[3] = {1, 2, 3};
    float score[3] = {0.5f, 0.25f, 1};
    pack.add("label", tensor_dtype::i32, {3}, label);
    pack.add("score", tensor_dtype::f32, {3}, score);
    nlohmann::json result{{"model", "m"},
                          {"outputs", specs_to_json(pack.specs)},
                          {"output", nlohmann::json::binary_t{std::vector<uint8_t>(
                                       pack.bytes.begin(), pack.bytes.end())}}};
    // As the result procedure receives it: through MessagePack (binary survives).
    auto r = result_tensors(nlohmann::json::from_msgpack(nlohmann::json::to_msgpack(result)));
    REQUIRE_MESSAGE(r, why(r));
    CHECK(r->specs == pack.specs);
    CHECK(r->bytes == pack.bytes);

    auto short_result = result;
    short_result["output"] = nlohmann::json::binary_t{std::vector<uint8_t>(20)};
    auto s = result_tensors(short_result);
    REQUIRE(!s);
    CHECK_MESSAGE(names(s.error(), "outputs"), why(s));
    auto none = result;
    none.erase("outputs");
    auto n = result_tensors(none);
    REQUIRE(!n);
    CHECK_MESSAGE(names(n.error(), "no \"outputs\""), why(n));
  }
}
