// comb::kernels::image: an 8-bit RGB image in memory, the 24-bit BMP decoder that makes one
// and the nearest-neighbour resize that feeds image models (MobileNetV2 at 224x224, the
// detector at 512x512). Decoding checks every header field and size against the bytes it
// was given and returns errc::corrupt_data naming the problem; it never reads past the
// input. Values are plain data: thread-safe to share once built.
#pragma once

#include "base/errc.hpp"

#include <caf/expected.hpp>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace comb::kernels {

/// An interleaved 8-bit RGB image, rows top to bottom.
struct image {
  int width = 0;
  int height = 0;
  /// width * height * 3 bytes, R G B per pixel.
  std::vector<uint8_t> rgb;

  /// The channel `c` (0 = R) of pixel (x, y).
  uint8_t at(int x, int y, int c) const {
    return rgb[(static_cast<size_t>(y) * width + x) * 3 + c];
  }
};

/// The largest width or height decode_bmp accepts.
constexpr int max_image_side = 16384;

/// Decodes an uncompressed 24-bit BMP (BITMAPINFOHEADER or later, bottom-up or top-down).
caf::expected<image> decode_bmp(std::span<const uint8_t> bytes);

/// Reads and decodes a BMP file; errc::not_found when it cannot be opened.
caf::expected<image> load_bmp(const std::string& path);

/// Resizes by nearest neighbour, the way TFLite's reference does it
/// (src = floor(dst * in / out), align_corners = false).
image resize_nearest(const image& in, int width, int height);

/// Writes `img` as NHWC floats real = scale * (q - zero_point) into `out`
/// (width * height * 3 floats), e.g. scale 1/128, zero point 128 gives [-1, 1).
void to_float_nhwc(const image& img, float scale, float zero_point, float* out);

} // namespace comb::kernels
