// comb::apps::imaging image codecs: PNG (libpng) and JPEG (libjpeg-turbo) decoders that make
// a kernels::image (8-bit RGB), beside the kernels' BMP decoder, and decode_image, which picks
// the decoder by the file's magic bytes. Each decoder checks its input and returns
// errc::corrupt_data naming the problem (the library's own message included), never
// crashing or reading past the bytes given; images wider or taller than
// kernels::max_image_side, or of more than max_image_pixels, or far more pixels than their
// bytes can hold (a decompression bomb), are refused with errc::too_large before any pixel is
// allocated. Stateless functions; thread-safe.
#pragma once

#include "kernels/image.hpp"

#include <caf/expected.hpp>

#include <cstdint>
#include <span>
#include <string>

namespace comb::apps::imaging {

/// The most pixels (width * height) a decoder accepts.
constexpr uint64_t max_image_pixels = uint64_t{64} << 20;
/// Above this many pixels, an image must come from at least one byte of file per
/// max_pixels_per_byte pixels (real photos take far more: about 1 byte per 2-10 pixels);
/// fewer is a decompression bomb, refused with errc::too_large.
constexpr uint64_t bomb_min_pixels = uint64_t{4} << 20;
constexpr uint64_t max_pixels_per_byte = 4096;

/// Decodes a PNG of any bit depth and colour type (palette, grey, alpha are converted; alpha
/// is dropped, 16-bit is reduced to 8).
caf::expected<kernels::image> decode_png(std::span<const uint8_t> bytes);

/// Decodes a baseline or progressive JPEG (greyscale, YCbCr or CMYK-free RGB) to RGB.
caf::expected<kernels::image> decode_jpeg(std::span<const uint8_t> bytes);

/// Decodes BMP, PNG or JPEG by the magic bytes; errc::unsupported naming the first bytes for
/// anything else.
caf::expected<kernels::image> decode_image(std::span<const uint8_t> bytes);

/// Reads and decodes an image file; errc::not_found when it cannot be opened. Errors name
/// the file.
caf::expected<kernels::image> load_image(const std::string& path);

} // namespace comb::apps::imaging
