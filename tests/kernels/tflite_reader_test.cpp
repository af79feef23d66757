// Tests for kernels/tflite_reader: the MobileNetV2 file parses with the expected graph, and
// corrupt, truncated or mismatched files give clear errors, never a crash.
#include "kernels/tflite_reader.hpp"
#include "tests/test_util.hpp"

#include <doctest/doctest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>

using namespace comb;
using namespace comb::kernels;

namespace {

std::string data_dir() {
  if (auto env = std::getenv("COMB_DATA_DIR"))
    return env;
  return std::string(COMB_SOURCE_DIR) + "/../shared/data";
}

std::string model_path() {
  return data_dir() + "/models/mobilenet_v2_1.0_224_quant.tflite";
}

std::vector<uint8_t> read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

} // namespace

TEST_SUITE("kernels.tflite") {
  TEST_CASE("the MobileNetV2 quant model parses into the expected graph") {
    if (!std::filesystem::exists(model_path())) {
      MESSAGE("model absent at " << model_path() << ": skipping (see shared/data/README.md)");
      return;
    }
    auto m = load_tflite(model_path());
    REQUIRE_MESSAGE(m, comb::test::why(m));
    CHECK(m->version == 3);
    REQUIRE(m->inputs.size() == 1);
    auto& in = m->tensors[m->inputs[0]];
    CHECK(in.shape == std::vector<int32_t>{1, 224, 224, 3});
    CHECK(in.type == tflite_type::uint8);
    REQUIRE(in.quant.present());
    CHECK(in.quant.scale[0] == doctest::Approx(1.0 / 128));
    CHECK(in.quant.zero_point[0] == 128);
    auto& out = m->tensors[m->outputs.at(0)];
    CHECK(out.shape == std::vector<int32_t>{1, 1001});
    int convs = 0, dws = 0, adds = 0;
    for (auto& op : m->operators) {
      convs += op.builtin_code == tflite_op::conv_2d;
      dws += op.builtin_code == tflite_op::depthwise_conv_2d;
      adds += op.builtin_code == tflite_op::add;
    }
    CHECK(convs == 36); // stem + 16 expands + 17 projects + head + classifier
    CHECK(dws == 17);
    CHECK(adds == 10);
    auto& first = m->operators[0];
    CHECK(first.builtin_code == tflite_op::conv_2d);
    CHECK(first.options.stride_h == 2);
    CHECK(first.options.padding == tflite_padding::same);
    CHECK(first.options.activation == tflite_activation::relu6);
    // Dequantizing the stem filter gives real values on its grid.
    auto w = m->dequantize(first.inputs[1]);
    REQUIRE_MESSAGE(w, comb::test::why(w));
    CHECK(w->size() == 32 * 3 * 3 * 3);
    auto& wt = m->tensors[first.inputs[1]];
    auto raw = m->data(wt);
    CHECK((*w)[5] == doctest::Approx(wt.quant.scale[0] * (raw[5] - wt.quant.zero_point[0])));
    // Activations have no data to dequantize.
    auto act = m->dequantize(first.outputs[0]);
    REQUIRE_FALSE(act);
    CHECK(is(act.error(), errc::bad_model));
  }

  TEST_CASE("missing, empty and foreign files are rejected with clear errors") {
    auto missing = load_tflite("/nonexistent/model.tflite");
    REQUIRE_FALSE(missing);
    CHECK(is(missing.error(), errc::not_found));
    std::vector<uint8_t> empty;
    auto e = read_tflite(empty);
    REQUIRE_FALSE(e);
    CHECK(is(e.error(), errc::corrupt_data));
    CHECK(describe(e.error()).find("too short") != std::string::npos);
    std::string text = "this is not a flatbuffer at all, just some text that is long enough";
    auto t = read_tflite({reinterpret_cast<const uint8_t*>(text.data()), text.size()});
    REQUIRE_FALSE(t);
    CHECK(is(t.error(), errc::corrupt_data));
  }

  TEST_CASE("corrupt and truncated copies of the model never crash the reader") {
    if (!std::filesystem::exists(model_path())) {
      MESSAGE("model absent at " << model_path() << ": skipping");
      return;
    }
    auto bytes = read_all(model_path());
    REQUIRE(bytes.size() > 1000);
    // A wrong file identifier.
    {
      auto b = bytes;
      std::memcpy(b.data() + 4, "XXXX", 4);
      auto r = read_tflite(b);
      REQUIRE_FALSE(r);
      CHECK(describe(r.error()).find("TFL3") != std::string::npos);
    }
    // A root offset past the end.
    {
      auto b = bytes;
      uint32_t huge = 0xFFFFFF00u;
      std::memcpy(b.data(), &huge, 4);
      auto r = read_tflite(b);
      REQUIRE_FALSE(r);
      CHECK(describe(r.error()).find("past end") != std::string::npos);
    }
    // Truncations at many points: every one must fail cleanly (the tables sit at both ends).
    int failures = 0, cuts = 0;
    for (size_t cut = 0; cut < bytes.size(); cut += bytes.size() / 97 + 1) {
      ++cuts;
      auto r = read_tflite({bytes.data(), cut});
      if (!r) {
        ++failures;
        CHECK(is(r.error(), errc::corrupt_data));
      }
    }
    CHECK(failures == cuts);
    // Random byte corruption: parse or fail, never crash; dequantize every tensor that parsed.
    std::mt19937 rng(7);
    int parsed = 0;
    for (int round = 0; round < 300; ++round) {
      auto b = bytes;
      // Bias corruption towards the front, where the flatbuffer tables live.
      for (int i = 0; i < 4; ++i) {
        size_t pos = round % 2 ? rng() % 4096 : rng() % b.size();
        b[pos] = static_cast<uint8_t>(rng());
      }
      auto r = read_tflite(b);
      if (r) {
        ++parsed;
        for (size_t t = 0; t < r->tensors.size(); ++t)
          (void) r->dequantize(t); // result deliberately ignored: only must not crash
      }
    }
    MESSAGE(parsed << " of 300 corrupted copies still parsed (the rest were rejected)");
  }

} // TEST_SUITE
