// 24-bit BMP decoding and nearest-neighbour resizing; see image.hpp.
#include "kernels/image.hpp"

#include <cstring>
#include <fstream>
#include <iterator>

namespace comb::kernels {

namespace {

template <class T>
T get(std::span<const uint8_t> b, size_t pos) {
  T x;
  std::memcpy(&x, b.data() + pos, sizeof(T));
  return x;
}

caf::error bad(const std::string& what) {
  return make_error(errc::corrupt_data, "bmp: " + what);
}

} // namespace

caf::expected<image> decode_bmp(std::span<const uint8_t> b) {
  if (b.size() < 14 + 40)
    return bad("file too short for a BMP header (" + std::to_string(b.size()) + " bytes)");
  if (b[0] != 'B' || b[1] != 'M')
    return bad("missing \"BM\" signature");
  auto pixel_offset = get<uint32_t>(b, 10);
  auto dib_size = get<uint32_t>(b, 14);
  if (dib_size < 40 || dib_size > 1024 || 14ull + dib_size > b.size())
    return bad("unsupported or truncated info header (size " + std::to_string(dib_size) + ")");
  auto width = get<int32_t>(b, 18);
  auto height = get<int32_t>(b, 22);
  auto planes = get<uint16_t>(b, 26);
  auto bpp = get<uint16_t>(b, 28);
  auto compression = get<uint32_t>(b, 30);
  if (planes != 1)
    return bad("planes must be 1, got " + std::to_string(planes));
  if (bpp != 24)
    return bad("only 24-bit BMPs are supported, got " + std::to_string(bpp) + " bits per pixel");
  if (compression != 0)
    return bad("compressed BMPs are not supported (compression " + std::to_string(compression)
               + ")");
  bool top_down = height < 0;
  int64_t h = top_down ? -static_cast<int64_t>(height) : height;
  if (width <= 0 || h <= 0 || width > max_image_side || h > max_image_side)
    return bad("bad dimensions " + std::to_string(width) + "x" + std::to_string(height));
  size_t stride = (static_cast<size_t>(width) * 3 + 3) & ~size_t{3};
  if (pixel_offset < 14 + dib_size || pixel_offset > b.size()
      || (b.size() - pixel_offset) / stride < static_cast<size_t>(h))
    return bad("pixel data truncated: " + std::to_string(width) + "x" + std::to_string(h)
               + " needs " + std::to_string(stride * h) + " bytes at offset "
               + std::to_string(pixel_offset) + ", file has " + std::to_string(b.size()));
  image img;
  img.width = width;
  img.height = static_cast<int>(h);
  img.rgb.resize(static_cast<size_t>(width) * h * 3);
  for (int64_t y = 0; y < h; ++y) {
    auto src_row = top_down ? y : h - 1 - y;
    const uint8_t* src = b.data() + pixel_offset + src_row * stride;
    uint8_t* dst = img.rgb.data() + static_cast<size_t>(y) * width * 3;
    for (int x = 0; x < width; ++x) {
      dst[3 * x + 0] = src[3 * x + 2];
      dst[3 * x + 1] = src[3 * x + 1];
      dst[3 * x + 2] = src[3 * x + 0];
    }
  }
  return img;
}

caf::expected<image> load_bmp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return make_error(errc::not_found, "bmp: cannot open '" + path + "'");
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
  auto img = decode_bmp(bytes);
  if (!img)
    return make_error(errc::corrupt_data, "'" + path + "': " + describe(img.error()));
  return img;
}

image resize_nearest(const image& in, int width, int height) {
  image out;
  out.width = width;
  out.height = height;
  out.rgb.resize(static_cast<size_t>(width) * height * 3);
  for (int y = 0; y < height; ++y) {
    int sy = std::min(static_cast<int>(static_cast<int64_t>(y) * in.height / height),
                      in.height - 1);
    for (int x = 0; x < width; ++x) {
      int sx = std::min(static_cast<int>(static_cast<int64_t>(x) * in.width / width), in.width - 1);
      std::memcpy(&out.rgb[(static_cast<size_t>(y) * width + x) * 3],
                  &in.rgb[(static_cast<size_t>(sy) * in.width + sx) * 3], 3);
    }
  }
  return out;
}

void to_float_nhwc(const image& img, float scale, float zero_point, float* out) {
  for (size_t i = 0; i < img.rgb.size(); ++i)
    out[i] = scale * (static_cast<float>(img.rgb[i]) - zero_point);
}

} // namespace comb::kernels
