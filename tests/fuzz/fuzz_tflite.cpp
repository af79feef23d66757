// libFuzzer target: the TFLite reader, dequantization and the MobileNetV2 graph check on
// arbitrary bytes. Must never crash, hang or read out of bounds; errors are fine.
#include "kernels/models/mobilenet_v2.hpp"
#include "kernels/tflite_reader.hpp"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto m = comb::kernels::read_tflite({data, size});
  if (!m)
    return 0;
  for (size_t t = 0; t < m->tensors.size() && t < 64; ++t)
    (void) m->dequantize(t); // errors are expected; only crashes matter
  (void) comb::kernels::mobilenet_v2::from_tflite(*m);
  return 0;
}
