// Tests for kernels/image: 24-bit BMP decoding (both row orders, padding), rejection of bad
// files with clear errors, and nearest-neighbour resizing.
#include "kernels/image.hpp"
#include "tests/test_util.hpp"

#include <doctest/doctest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>

using namespace comb;
using namespace comb::kernels;

namespace {

/// Writes a 24-bit BMP with pixel (x, y) = (10x + y, 100 + x, 200 - y) (R, G, B).
std::vector<uint8_t> make_bmp(int w, int h, bool top_down) {
  size_t stride = (static_cast<size_t>(w) * 3 + 3) & ~size_t{3};
  std::vector<uint8_t> b(54 + stride * h, 0);
  auto put32 = [&](size_t pos, uint32_t v) { std::memcpy(&b[pos], &v, 4); };
  auto put16 = [&](size_t pos, uint16_t v) { std::memcpy(&b[pos], &v, 2); };
  b[0] = 'B';
  b[1] = 'M';
  put32(2, static_cast<uint32_t>(b.size()));
  put32(10, 54);
  put32(14, 40);
  put32(18, static_cast<uint32_t>(w));
  put32(22, static_cast<uint32_t>(top_down ? -h : h));
  put16(26, 1);
  put16(28, 24);
  for (int y = 0; y < h; ++y) {
    int row = top_down ? y : h - 1 - y;
    uint8_t* p = &b[54 + row * stride];
    for (int x = 0; x < w; ++x) {
      p[3 * x + 0] = static_cast<uint8_t>(200 - y);    // B
      p[3 * x + 1] = static_cast<uint8_t>(100 + x);    // G
      p[3 * x + 2] = static_cast<uint8_t>(10 * x + y); // R
    }
  }
  return b;
}

std::string error_of(const std::vector<uint8_t>& b) {
  auto r = decode_bmp(b);
  REQUIRE_FALSE(r);
  CHECK(is(r.error(), errc::corrupt_data));
  return describe(r.error());
}

} // namespace

TEST_SUITE("kernels.image") {
  TEST_CASE("24-bit BMPs decode to RGB rows top to bottom, in both row orders") {
    for (bool top_down : {false, true}) {
      auto r = decode_bmp(make_bmp(5, 3, top_down)); // width 5: rows carry padding
      REQUIRE_MESSAGE(r, comb::test::why(r));
      CHECK(r->width == 5);
      CHECK(r->height == 3);
      for (int y = 0; y < 3; ++y)
        for (int x = 0; x < 5; ++x) {
          CHECK(r->at(x, y, 0) == 10 * x + y);
          CHECK(r->at(x, y, 1) == 100 + x);
          CHECK(r->at(x, y, 2) == 200 - y);
        }
    }
  }

  TEST_CASE("bad BMPs are rejected with errors naming the problem") {
    auto good = make_bmp(4, 4, false);
    CHECK(error_of({}).find("too short") != std::string::npos);
    auto b = good;
    b[0] = 'X';
    CHECK(error_of(b).find("signature") != std::string::npos);
    b = good;
    b[28] = 8;
    CHECK(error_of(b).find("24-bit") != std::string::npos);
    b = good;
    b[30] = 1;
    CHECK(error_of(b).find("compressed") != std::string::npos);
    b = good;
    b.resize(b.size() - 5);
    CHECK(error_of(b).find("truncated") != std::string::npos);
    b = good;
    int32_t huge = 1 << 30;
    std::memcpy(&b[18], &huge, 4);
    CHECK(error_of(b).find("dimensions") != std::string::npos);
    b = good;
    uint32_t off = 0xFFFFFFF0u;
    std::memcpy(&b[10], &off, 4);
    CHECK(error_of(b).find("truncated") != std::string::npos);
    auto missing = load_bmp("/nonexistent/x.bmp");
    REQUIRE_FALSE(missing);
    CHECK(is(missing.error(), errc::not_found));
  }

  TEST_CASE("every truncation of a BMP fails cleanly") {
    auto good = make_bmp(7, 5, false);
    for (size_t n = 0; n < good.size(); ++n) {
      auto r = decode_bmp({good.data(), n});
      CHECK_FALSE(r);
    }
  }

  TEST_CASE("nearest-neighbour resize picks floor(dst * in / out)") {
    auto src = decode_bmp(make_bmp(6, 4, false));
    REQUIRE(src);
    auto up = resize_nearest(*src, 12, 8);
    for (int y = 0; y < 8; ++y)
      for (int x = 0; x < 12; ++x)
        CHECK(up.at(x, y, 0) == src->at(x / 2, y / 2, 0));
    auto down = resize_nearest(*src, 4, 3);
    CHECK(down.at(3, 2, 0) == src->at(3 * 6 / 4, 2 * 4 / 3, 0));
    std::vector<float> f(4 * 3 * 3);
    to_float_nhwc(down, 0.5f, 100.0f, f.data());
    CHECK(f[0] == doctest::Approx(0.5f * (down.rgb[0] - 100.0f)));
  }

  TEST_CASE("the shared test images decode") {
    std::string dir = std::getenv("COMB_DATA_DIR")
                        ? std::getenv("COMB_DATA_DIR")
                        : std::string(COMB_SOURCE_DIR) + "/../shared/data";
    if (!std::filesystem::exists(dir + "/models/cat.bmp")) {
      MESSAGE("test images absent under " << dir << ": skipping");
      return;
    }
    auto cat = load_bmp(dir + "/models/cat.bmp");
    REQUIRE_MESSAGE(cat, comb::test::why(cat));
    CHECK(cat->width == 512);
    CHECK(cat->height == 341);
  }

} // TEST_SUITE
