// comb::runtime kernel runners: the model runners of the kernels' own models ("mlp",
// "mobilenet_v2", "centernet"), registered in the model-runner registry on its first use, and
// the helpers that make model files of those kinds (random MLPs, detectors on the TFLite
// MobileNetV2 backbone) for apps and tests. Tensor names follow the serving conventions:
//   mlp:          in "x" u8 [n,784] | [n,28,28] | [n,28,28,1] (pixel/255) or f32 [n,784];
//                 optional "with_probs" u8 [1] (nonzero: also "probs");
//                 out "label" i32 [n], "score" f32 [n] (the label's probability), "probs" f32
//                 [n,classes] when asked; train in "x", "y" u8|i32 [n],
//                 optional "config" str [1] {"epochs","batch","lr","seed"}; train out
//                 "model" u8 [bytes] (kind mlp), "loss" f32 [epochs].
//   mobilenet_v2: in "images" u8 [n,224,224,3]; out "label" i32 [n], "score" f32 [n],
//                 "top5" i32 [n,5].
//   centernet:    in "images" u8 [n,h,w,3] (h, w multiples of 32); out "boxes" f32
//                 [n,100,6] (x0,y0,x1,y1,score,class), "count" i32 [n].
// Stateless functions; thread-safe.
#pragma once

#include "runtime/pieces/model_runner.hpp"

#include <caf/expected.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace comb::runtime {

/// Registers the kernels' runners (called by the registry once; idempotent).
void register_kernel_runners();

/// A randomly initialised MLP of layer widths `sizes` (input first) as a safetensors file of
/// kind mlp (comb.sizes "784,512,10"). Errors: errc::invalid_argument for bad sizes.
caf::expected<std::string> make_mlp_file(const std::vector<int64_t>& sizes, uint64_t seed);

/// A CenterNet detector of `num_classes` classes as a safetensors file of kind centernet: the
/// backbone from the TFLite MobileNetV2 at `tflite_path`, the neck and heads randomly
/// initialised (comb.note says so: its outputs are for timing only). Errors: errc::not_found
/// or errc::bad_model for the TFLite file, errc::invalid_argument for num_classes outside
/// 1..1000.
caf::expected<std::string> make_centernet_file(const std::string& tflite_path, int num_classes,
                                               uint64_t seed);

} // namespace comb::runtime
