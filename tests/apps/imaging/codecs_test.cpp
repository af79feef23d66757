// apps.imaging.codecs: the IDX reader (MNIST) and the PNG and JPEG decoders, on files made
// here and on bad inputs (truncated, wrong magic, huge dimensions, damaged bytes): each is
// refused with an error naming the problem, never a crash. Reads ../shared/data/mnist when
// present.
#include "apps/imaging/idx.hpp"
#include "apps/imaging/image_codecs.hpp"
#include "tests/test_util.hpp"

#include <doctest/doctest.h>
#include <jpeglib.h>
#include <png.h>
#include <zlib.h>

#include <filesystem>
#include <random>

using namespace comb;
using namespace comb::apps::imaging;

namespace {

std::string be32(uint32_t v) {
  return {char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
}

std::string idx_bytes(std::vector<uint32_t> dims, size_t body) {
  std::string s{0, 0, 8, char(dims.size())};
  for (auto d : dims)
    s += be32(d);
  s += std::string(body, '\x07');
  return s;
}

std::string gzip(const std::string& raw) {
  z_stream zs{};
  REQUIRE(deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string out(deflateBound(&zs, raw.size()) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
  zs.avail_in = static_cast<uInt>(raw.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&zs, Z_FINISH) == Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

std::vector<uint8_t> test_pixels(int w, int h, int c) {
  std::vector<uint8_t> px(size_t(w) * h * c);
  for (size_t i = 0; i < px.size(); ++i)
    px[i] = static_cast<uint8_t>((i * 37) ^ (i >> 5));
  return px;
}

void png_write(png_structp png, png_bytep data, png_size_t n) {
  auto* out = static_cast<std::vector<uint8_t>*>(png_get_io_ptr(png));
  out->insert(out->end(), data, data + n);
}

std::vector<uint8_t> encode_png(int w, int h, int color, int depth,
                                const std::vector<uint8_t>& px) {
  std::vector<uint8_t> out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  png_set_write_fn(png, &out, png_write, nullptr);
  png_set_IHDR(png, info, w, h, depth, color, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  size_t stride = px.size() / h;
  for (int y = 0; y < h; ++y)
    png_write_row(png, const_cast<uint8_t*>(px.data() + y * stride));
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

std::vector<uint8_t> encode_jpeg(int w, int h, const std::vector<uint8_t>& rgb) {
  jpeg_compress_struct c{};
  jpeg_error_mgr err{};
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&c, &buf, &size);
  c.image_width = w;
  c.image_height = h;
  c.input_components = 3;
  c.in_color_space = JCS_RGB;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, 95, TRUE);
  jpeg_start_compress(&c, TRUE);
  while (c.next_scanline < c.image_height) {
    JSAMPROW row = const_cast<uint8_t*>(rgb.data() + size_t(c.next_scanline) * w * 3);
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  std::vector<uint8_t> out(buf, buf + size);
  jpeg_destroy_compress(&c);
  free(buf);
  return out;
}

std::string error_text(const caf::error& e) {
  return describe(e);
}

/// `jpg` with its baseline frame header (SOF0) claiming `w` x `h` pixels; the data stays.
std::vector<uint8_t> with_frame_size(std::vector<uint8_t> jpg, int w, int h) {
  for (size_t i = 2; i + 9 < jpg.size(); ++i)
    if (jpg[i] == 0xFF && jpg[i + 1] == 0xC0) {
      jpg[i + 5] = uint8_t(h >> 8), jpg[i + 6] = uint8_t(h);
      jpg[i + 7] = uint8_t(w >> 8), jpg[i + 8] = uint8_t(w);
      break;
    }
  return jpg;
}

} // namespace

TEST_SUITE("apps.imaging.codecs") {
  TEST_CASE("IDX: a well-formed file reads back, gzip or not") {
    auto raw = idx_bytes({3, 2, 2}, 12);
    auto a = parse_idx(raw, "t");
    REQUIRE_MESSAGE(a, test::why(a));
    CHECK(a->count() == 3);
    CHECK(a->item_size() == 4);
    CHECK(a->data.size() == 12);
    auto z = gunzip(gzip(raw), "t.gz");
    REQUIRE_MESSAGE(z, test::why(z));
    CHECK(*z == raw);
  }

  TEST_CASE("IDX: bad inputs are refused with named errors") {
    auto bad = [](const std::string& bytes, const std::string& needle) {
      auto a = parse_idx(bytes, "in.idx");
      REQUIRE_FALSE(a);
      CHECK(is(a.error(), errc::corrupt_data));
      INFO(error_text(a.error()));
      CHECK(error_text(a.error()).find(needle) != std::string::npos);
      CHECK(error_text(a.error()).find("in.idx") != std::string::npos);
    };
    bad("", "too short");
    bad(std::string{1, 0, 8, 1} + be32(1) + "x", "magic");
    bad(std::string{0, 0, 0x0D, 1} + be32(1) + "xxxx", "unsigned byte");
    bad(std::string{0, 0, 8, 3} + be32(10), "cut short");
    bad(idx_bytes({10, 28, 28}, 10 * 784 - 1), "body holds");
    bad(idx_bytes({10, 28, 28}, 10 * 784 + 1), "body holds");
    bad(idx_bytes({0xFFFFFFFF, 0xFFFF, 28}, 0), "more than");
    bad(idx_bytes({4, 0}, 0), "is 0");
    bad(std::string{0, 0, 8, 9}, "dimensions");
    // A cut gzip stream and bytes that are not gzip.
    auto gz = gzip(idx_bytes({100, 28, 28}, 100 * 784));
    auto cut = gunzip(gz.substr(0, gz.size() / 2), "cut.gz");
    REQUIRE_FALSE(cut);
    CHECK(error_text(cut.error()).find("cut short") != std::string::npos);
    auto junk = gunzip(std::string("\x1f\x8bnot really gzip at all"), "junk.gz");
    REQUIRE_FALSE(junk);
    CHECK(is(junk.error(), errc::corrupt_data));
    auto big = gunzip(gz, "big.gz", /*max_bytes=*/1000);
    REQUIRE_FALSE(big);
    CHECK(is(big.error(), errc::too_large));
  }

  TEST_CASE("IDX: MNIST from ../shared/data, when present") {
    auto dir = std::string{COMB_SOURCE_DIR} + "/../shared/data/mnist";
    std::error_code ec;
    if (!std::filesystem::exists(dir + "/t10k-images-idx3-ubyte.gz", ec)) {
      MESSAGE("MNIST absent at " << dir << ": skipping (see ../shared/data/README.md)");
      return;
    }
    auto s = read_mnist(dir, "t10k");
    REQUIRE_MESSAGE(s, test::why(s));
    CHECK(s->count == 10000);
    CHECK(s->pixels.size() == 10000u * 784);
    CHECK(s->labels.size() == 10000);
    CHECK(s->labels[0] == 7); // the first test digit is a 7
    test::temp_dir empty;
    auto missing = read_mnist(empty.path(), "train");
    REQUIRE_FALSE(missing);
    CHECK(is(missing.error(), errc::not_found));
    CHECK(error_text(missing.error()).find("train-images-idx3-ubyte") != std::string::npos);
  }

  TEST_CASE("PNG: RGB, grey, palette-free RGBA and 16-bit decode to the same RGB") {
    int w = 13, h = 7;
    auto rgb = test_pixels(w, h, 3);
    auto img = decode_image(encode_png(w, h, PNG_COLOR_TYPE_RGB, 8, rgb));
    REQUIRE_MESSAGE(img, test::why(img));
    CHECK(img->width == w);
    CHECK(img->height == h);
    CHECK(img->rgb == rgb);

    auto grey = test_pixels(w, h, 1);
    auto g = decode_png(encode_png(w, h, PNG_COLOR_TYPE_GRAY, 8, grey));
    REQUIRE_MESSAGE(g, test::why(g));
    for (int i = 0; i < w * h; ++i)
      REQUIRE((g->rgb[i * 3] == grey[i] && g->rgb[i * 3 + 2] == grey[i]));

    auto rgba = test_pixels(w, h, 4);
    auto a = decode_png(encode_png(w, h, PNG_COLOR_TYPE_RGBA, 8, rgba));
    REQUIRE_MESSAGE(a, test::why(a));
    for (int i = 0; i < w * h; ++i)
      REQUIRE((a->rgb[i * 3 + 1] == rgba[i * 4 + 1]));

    std::vector<uint8_t> wide(size_t(w) * h * 6); // 16-bit big-endian: high byte first
    for (size_t i = 0; i < rgb.size(); ++i)
      wide[2 * i] = rgb[i], wide[2 * i + 1] = 0x80;
    auto d = decode_png(encode_png(w, h, PNG_COLOR_TYPE_RGB, 16, wide));
    REQUIRE_MESSAGE(d, test::why(d));
    CHECK(d->rgb.size() == rgb.size());
  }

  TEST_CASE("PNG: truncated, wrong magic, damaged and huge inputs are refused") {
    int w = 32, h = 32;
    auto png = encode_png(w, h, PNG_COLOR_TYPE_RGB, 8, test_pixels(w, h, 3));
    for (size_t n :
         {size_t{0}, size_t{7}, size_t{20}, size_t{40}, png.size() / 2, png.size() - 13}) {
      CAPTURE(n);
      auto r = decode_png({png.data(), n});
      REQUIRE_FALSE(r);
      CHECK(is(r.error(), errc::corrupt_data));
      CHECK(error_text(r.error()).find("PNG") != std::string::npos);
    }
    auto wrong = png;
    wrong[1] = 'Q';
    auto r = decode_png(wrong);
    REQUIRE_FALSE(r);
    CHECK(error_text(r.error()).find("signature") != std::string::npos);
    auto any = decode_image(wrong);
    REQUIRE_FALSE(any);
    CHECK(is(any.error(), errc::unsupported));

    // Flipped bytes in the compressed data: a CRC or zlib error, never a crash.
    std::mt19937 rng{7};
    for (int t = 0; t < 50; ++t) {
      auto damaged = png;
      for (int k = 0; k < 4; ++k)
        damaged[8 + rng() % (damaged.size() - 8)] ^= uint8_t(1 + rng() % 255);
      auto x = decode_png(damaged);
      if (x) // a flip in an ancillary place may still decode; the size must hold
        CHECK(x->rgb.size() == size_t(x->width) * x->height * 3);
    }

    // IHDR claiming 100000 x 100000 pixels (with a valid CRC): too_large before allocating.
    auto huge = png;
    auto put32 = [&](size_t at, uint32_t v) {
      for (int i = 0; i < 4; ++i)
        huge[at + i] = uint8_t(v >> (24 - 8 * i));
    };
    put32(16, 100000);
    put32(20, 100000);
    put32(29, uint32_t(crc32(0, huge.data() + 12, 17))); // CRC over "IHDR" + 13 bytes of data
    auto hr = decode_png(huge);
    REQUIRE_FALSE(hr);
    INFO(error_text(hr.error()));
    CHECK(is(hr.error(), errc::too_large));
  }

  TEST_CASE("decode_image names an empty input as empty") {
    auto r = decode_image({});
    REQUIRE_FALSE(r);
    CHECK(is(r.error(), errc::corrupt_data));
    CHECK(error_text(r.error()).find("empty (0 bytes)") != std::string::npos);
  }

  TEST_CASE("JPEG: decodes close to its source; bad inputs are refused") {
    int w = 48, h = 40;
    std::vector<uint8_t> rgb(size_t(w) * h * 3);
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) {
        auto* p = &rgb[(size_t(y) * w + x) * 3];
        p[0] = uint8_t(x * 5), p[1] = uint8_t(y * 6), p[2] = 128;
      }
    auto jpg = encode_jpeg(w, h, rgb);
    auto img = decode_image(jpg);
    REQUIRE_MESSAGE(img, test::why(img));
    CHECK(img->width == w);
    CHECK(img->height == h);
    double err = 0;
    for (size_t i = 0; i < rgb.size(); ++i)
      err += std::abs(int(img->rgb[i]) - int(rgb[i]));
    CHECK(err / double(rgb.size()) < 4.0); // quality 95 on a smooth gradient

    for (size_t n :
         {size_t{0}, size_t{2}, size_t{10}, size_t{200}, jpg.size() / 2, jpg.size() - 2}) {
      CAPTURE(n);
      auto r = decode_jpeg({jpg.data(), n});
      REQUIRE_FALSE(r);
      CHECK(is(r.error(), errc::corrupt_data));
      CHECK(error_text(r.error()).find("JPEG") != std::string::npos);
    }
    auto wrong = jpg;
    wrong[0] = 0x00;
    auto r = decode_jpeg(wrong);
    REQUIRE_FALSE(r);
    CHECK(error_text(r.error()).find("SOI") != std::string::npos);

    // The SOF0 frame header claiming 60000 x 60000: too_large, nothing allocated.
    auto huge = with_frame_size(jpg, 60000, 60000);
    auto hr = decode_jpeg(huge);
    REQUIRE_FALSE(hr);
    INFO(error_text(hr.error()));
    CHECK(is(hr.error(), errc::too_large));
    // Within the pixel bound (7176 x 8193) but from a file of a few hundred bytes: a
    // decompression bomb (fuzzing found one of 126 bytes), refused before any pixel.
    auto bomb = with_frame_size(jpg, 7176, 8193);
    auto br = decode_jpeg(bomb);
    REQUIRE_FALSE(br);
    INFO(error_text(br.error()));
    CHECK(is(br.error(), errc::too_large));
    CHECK(error_text(br.error()).find("decompression bomb") != std::string::npos);

    std::mt19937 rng{11};
    for (int t = 0; t < 50; ++t) {
      auto damaged = jpg;
      for (int k = 0; k < 4; ++k)
        damaged[2 + rng() % (damaged.size() - 2)] ^= uint8_t(1 + rng() % 255);
      auto x = decode_jpeg(damaged);
      if (x)
        CHECK(x->rgb.size() == size_t(x->width) * x->height * 3);
    }
  }

  TEST_CASE("load_image names the file; BMPs from ../shared/data decode") {
    auto missing = load_image("/nonexistent/cat.png");
    REQUIRE_FALSE(missing);
    CHECK(is(missing.error(), errc::not_found));
    test::temp_dir dir;
    auto path = dir.path() + "/bad.png";
    {
      std::ofstream out{path, std::ios::binary};
      out << "\x89PNG\r\n\x1a\n garbage";
    }
    auto bad = load_image(path);
    REQUIRE_FALSE(bad);
    CHECK(error_text(bad.error()).find(path) != std::string::npos);
    auto cat = std::string{COMB_SOURCE_DIR} + "/../shared/data/models/cat.bmp";
    std::error_code ec;
    if (!std::filesystem::exists(cat, ec)) {
      MESSAGE("cat.bmp absent: skipping its decode");
      return;
    }
    auto img = load_image(cat);
    REQUIRE_MESSAGE(img, test::why(img));
    CHECK(img->width > 0);
  }

} // TEST_SUITE
