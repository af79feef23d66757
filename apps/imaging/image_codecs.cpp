// PNG and JPEG decoding through libpng and libjpeg-turbo (see image_codecs.hpp). Both
// libraries report errors by longjmp out of a callback; the decoders set that up so that a
// bad file becomes an error value, and keep every object they own outside the jumped-over
// frames (no C++ destructors are skipped).
#include "apps/imaging/image_codecs.hpp"

#include "base/errc.hpp"

#include <jpeglib.h>
#include <png.h>

#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

namespace comb::apps::imaging {

namespace {

caf::error check_size(const char* fmt, uint64_t w, uint64_t h, size_t file_bytes) {
  if (w == 0 || h == 0)
    return make_error(errc::corrupt_data, std::string{fmt} + ": image of " + std::to_string(w) + "x"
                                            + std::to_string(h) + " pixels");
  if (w > uint64_t(kernels::max_image_side) || h > uint64_t(kernels::max_image_side)
      || w * h > max_image_pixels)
    return make_error(errc::too_large, std::string{fmt} + ": image of " + std::to_string(w) + "x"
                                         + std::to_string(h) + " pixels (at most "
                                         + std::to_string(kernels::max_image_side) + " a side and "
                                         + std::to_string(max_image_pixels) + " pixels)");
  // A decompression bomb: a file of a few bytes that makes the decoder allocate and fill
  // hundreds of megabytes (a progressive JPEG's end-of-band runs cover millions of blocks in
  // a byte; fuzzing found a 126-byte file claiming 7176x8193 pixels).
  if (w * h > bomb_min_pixels && w * h > max_pixels_per_byte * file_bytes)
    return make_error(errc::too_large,
                      std::string{fmt} + ": image of " + std::to_string(w) + "x" + std::to_string(h)
                        + " pixels from a file of " + std::to_string(file_bytes)
                        + " bytes: refused as a decompression bomb (above "
                        + std::to_string(bomb_min_pixels) + " pixels, at most "
                        + std::to_string(max_pixels_per_byte) + " pixels per byte of file)");
  return {};
}

// ---- PNG --------------------------------------------------------------------------------

struct png_reader {
  std::span<const uint8_t> in;
  size_t pos = 0;
  char message[256] = "";
};

void png_read(png_structp png, png_bytep out, png_size_t n) {
  auto* r = static_cast<png_reader*>(png_get_io_ptr(png));
  if (n > r->in.size() - r->pos) {
    std::snprintf(r->message, sizeof(r->message), "the file is cut short at byte %zu",
                  r->in.size());
    png_longjmp(png, 1);
  }
  std::memcpy(out, r->in.data() + r->pos, n);
  r->pos += n;
}

void png_error_fn(png_structp png, png_const_charp msg) {
  auto* r = static_cast<png_reader*>(png_get_error_ptr(png));
  if (r->message[0] == 0)
    std::snprintf(r->message, sizeof(r->message), "%s", msg);
  png_longjmp(png, 1);
}

void png_warning_fn(png_structp, png_const_charp) {
}

// The part that may longjmp: only plain data lives in its frame. Fills `rows` (RGB, 3 bytes a
// pixel) once the size is known and accepted by `accept`.
bool png_decode_raw(png_reader& r, png_structp png, png_infop info, kernels::image& img,
                    caf::error& size_err) {
  if (setjmp(png_jmpbuf(png)))
    return false;
  png_set_read_fn(png, &r, png_read);
  png_read_info(png, info);
  png_uint_32 w = 0, h = 0;
  int depth = 0, color = 0;
  png_get_IHDR(png, info, &w, &h, &depth, &color, nullptr, nullptr, nullptr);
  if (auto e = check_size("PNG", w, h, r.in.size())) {
    size_err = std::move(e);
    return false;
  }
  if (color == PNG_COLOR_TYPE_PALETTE)
    png_set_palette_to_rgb(png);
  if (color == PNG_COLOR_TYPE_GRAY && depth < 8)
    png_set_expand_gray_1_2_4_to_8(png);
  if (png_get_valid(png, info, PNG_INFO_tRNS))
    png_set_tRNS_to_alpha(png);
  if (depth == 16)
    png_set_strip_16(png);
  if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA)
    png_set_gray_to_rgb(png);
  png_set_strip_alpha(png);
  int passes = png_set_interlace_handling(png);
  png_read_update_info(png, info);
  if (png_get_rowbytes(png, info) != size_t{w} * 3) {
    std::snprintf(r.message, sizeof(r.message), "unexpected row size after conversion");
    return false;
  }
  img.width = static_cast<int>(w);
  img.height = static_cast<int>(h);
  img.rgb.resize(size_t{w} * h * 3);
  // Rows one at a time; an interlaced image is read once per pass over the same rows.
  for (int p = 0; p < passes; ++p)
    for (png_uint_32 y = 0; y < h; ++y)
      png_read_row(png, img.rgb.data() + size_t{y} * w * 3, nullptr);
  png_read_end(png, nullptr);
  return true;
}

// ---- JPEG -------------------------------------------------------------------------------

struct jpeg_error {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX] = "";
};

void jpeg_error_exit(j_common_ptr cinfo) {
  auto* e = reinterpret_cast<jpeg_error*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, e->message);
  std::longjmp(e->jump, 1);
}

// Counts warnings (level -1: corrupt or missing data) without printing them.
void jpeg_quiet(j_common_ptr cinfo, int level) {
  if (level < 0)
    ++cinfo->err->num_warnings;
}

bool jpeg_decode_raw(jpeg_decompress_struct& cinfo, jpeg_error& err, std::span<const uint8_t> bytes,
                     kernels::image& img, caf::error& size_err) {
  if (setjmp(err.jump))
    return false;
  jpeg_mem_src(&cinfo, bytes.data(), static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&cinfo, TRUE);
  if (auto e = check_size("JPEG", cinfo.image_width, cinfo.image_height, bytes.size())) {
    size_err = std::move(e);
    return false;
  }
  if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
    std::snprintf(err.message, sizeof(err.message), "CMYK JPEG images are not supported");
    return false;
  }
  cinfo.out_color_space = JCS_RGB;
  jpeg_start_decompress(&cinfo);
  if (cinfo.output_components != 3) {
    std::snprintf(err.message, sizeof(err.message), "%d output components (expected 3)",
                  cinfo.output_components);
    return false;
  }
  img.width = static_cast<int>(cinfo.output_width);
  img.height = static_cast<int>(cinfo.output_height);
  img.rgb.resize(size_t(img.width) * img.height * 3);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = img.rgb.data() + size_t(cinfo.output_scanline) * img.width * 3;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  return true;
}

} // namespace

caf::expected<kernels::image> decode_png(std::span<const uint8_t> bytes) {
  if (bytes.size() < 8 || png_sig_cmp(bytes.data(), 0, 8) != 0)
    return make_error(errc::corrupt_data, "PNG: not a PNG file (bad signature)");
  png_reader r{bytes, 0};
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &r, png_error_fn, png_warning_fn);
  if (!png)
    return make_error(errc::storage_error, "PNG: png_create_read_struct failed");
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    return make_error(errc::storage_error, "PNG: png_create_info_struct failed");
  }
  kernels::image img;
  caf::error size_err;
  bool ok = png_decode_raw(r, png, info, img, size_err);
  png_destroy_read_struct(&png, &info, nullptr);
  if (size_err)
    return size_err;
  if (!ok)
    return make_error(errc::corrupt_data,
                      std::string{"PNG: "} + (r.message[0] ? r.message : "cannot decode"));
  return img;
}

caf::expected<kernels::image> decode_jpeg(std::span<const uint8_t> bytes) {
  if (bytes.size() < 3 || bytes[0] != 0xFF || bytes[1] != 0xD8 || bytes[2] != 0xFF)
    return make_error(errc::corrupt_data, "JPEG: not a JPEG file (no SOI marker)");
  jpeg_decompress_struct cinfo{};
  jpeg_error err{};
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = jpeg_error_exit;
  err.mgr.emit_message = jpeg_quiet;
  jpeg_create_decompress(&cinfo);
  kernels::image img;
  caf::error size_err;
  bool ok = jpeg_decode_raw(cinfo, err, bytes, img, size_err);
  jpeg_destroy_decompress(&cinfo);
  if (size_err)
    return size_err;
  if (!ok)
    return make_error(errc::corrupt_data,
                      std::string{"JPEG: "} + (err.message[0] ? err.message : "cannot decode"));
  // A truncated file decodes with libjpeg's warning "premature end of data" and filler.
  if (err.mgr.num_warnings > 0)
    return make_error(errc::corrupt_data, "JPEG: the data is damaged or cut short");
  return img;
}

caf::expected<kernels::image> decode_image(std::span<const uint8_t> bytes) {
  if (bytes.size() >= 2 && bytes[0] == 'B' && bytes[1] == 'M')
    return kernels::decode_bmp(bytes);
  if (bytes.size() >= 8 && bytes[0] == 0x89 && bytes[1] == 'P' && bytes[2] == 'N')
    return decode_png(bytes);
  if (bytes.size() >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8)
    return decode_jpeg(bytes);
  if (bytes.empty())
    return make_error(errc::corrupt_data, "not an image: it is empty (0 bytes)");
  char head[32];
  std::snprintf(head, sizeof(head), "%02x %02x %02x %02x", bytes.size() > 0 ? bytes[0] : 0,
                bytes.size() > 1 ? bytes[1] : 0, bytes.size() > 2 ? bytes[2] : 0,
                bytes.size() > 3 ? bytes[3] : 0);
  return make_error(errc::unsupported,
                    std::string{"not a BMP, PNG or JPEG image (first bytes "} + head + ")");
}

caf::expected<kernels::image> load_image(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  if (!in)
    return make_error(errc::not_found, "cannot open image '" + path + "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  auto s = std::move(ss).str();
  auto img = decode_image({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
  if (!img) {
    const auto& e = img.error();
    auto code = e.category() == errc_category ? static_cast<errc>(e.code()) : errc::corrupt_data;
    std::string what = describe(e);
    if (e.context().match_element<std::string>(0))
      what = e.context().get_as<std::string>(0);
    return make_error(code, path + ": " + what);
  }
  return img;
}

} // namespace comb::apps::imaging
