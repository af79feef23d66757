// libFuzzer target: the imaging app's PNG (libpng) and JPEG (libjpeg-turbo) decoders and
// decode_image's choice by magic bytes, on arbitrary bytes. Must never crash, hang or read out
// of bounds; an image that decodes has sides within the limits and exactly w * h * 3 bytes.
#include "apps/imaging/image_codecs.hpp"

#include <cstddef>
#include <cstdint>
#include <span>

using namespace comb;

namespace {

void check(const caf::expected<kernels::image>& img) {
  if (!img)
    return;
  if (img->width <= 0 || img->height <= 0
      || static_cast<uint64_t>(img->width) * img->height > apps::imaging::max_image_pixels
      || img->rgb.size() != static_cast<size_t>(img->width) * img->height * 3)
    __builtin_trap();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> bytes{data, size};
  check(apps::imaging::decode_png(bytes));
  check(apps::imaging::decode_jpeg(bytes));
  check(apps::imaging::decode_image(bytes));
  return 0;
}
