// libFuzzer target: the 24-bit BMP decoder and nearest-neighbour resize on arbitrary bytes.
#include "kernels/image.hpp"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto img = comb::kernels::decode_bmp({data, size});
  if (img && static_cast<int64_t>(img->width) * img->height <= (1 << 20))
    (void) comb::kernels::resize_nearest(*img, 17, 13);
  return 0;
}
