// comb::kernels::centernet: a CenterNet-style object detector ("Objects as Points") on NHWC
// floats: the MobileNetV2 backbone (stride 32, 1280 channels), a neck of a 1x1 reduction and
// three nearest-neighbour 2x upsamplings each followed by a 3x3 conv + ReLU (stride 4), and
// three heads (3x3 conv + ReLU, then 1x1): a per-class centre heatmap (sigmoid), box size
// and centre offset. decode_centernet turns the maps into boxes: 3x3 max-pool peak finding,
// top-k over classes and positions. Weights are random (He-normal), or the backbone comes
// from the ImageNet TFLite model (with_backbone), or everything is read from a safetensors
// file written by save(). A built model is immutable and forward() is const (see
// mobilenet_v2 for threads).
#pragma once

#include "kernels/models/mobilenet_v2.hpp"
#include "kernels/safetensors.hpp"
#include "base/errc.hpp"

#include <caf/expected.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace comb::kernels {

/// One detected object, in input-image pixels.
struct detection {
  float x0 = 0, y0 = 0, x1 = 0, y1 = 0;
  float score = 0;
  int cls = 0;
};

/// Decodes one image's head outputs (NHWC, h x w at `stride` input pixels per cell):
/// heat h*w*classes (probabilities), size h*w*2 (width, height in cells), offset h*w*2
/// (x, y sub-cell offsets). Keeps cells that equal their 3x3 neighbourhood's maximum,
/// returns the best k with score >= threshold, highest first (ties: lower index first).
std::vector<detection> decode_centernet(const float* heat, const float* size, const float* offset,
                                        int h, int w, int classes, int k, float stride,
                                        float threshold = 0.0f);

struct centernet_config {
  int num_classes = 80;
  /// Channels of the three upsampling stages and of the heads' hidden conv.
  int neck_channels[3] = {128, 64, 64};
  int head_channels = 64;
};

/// Head outputs for a batch, NHWC at stride 4.
struct centernet_output {
  int n = 0, h = 0, w = 0, classes = 0;
  std::vector<float> heat;   // n*h*w*classes, after the sigmoid
  std::vector<float> size;   // n*h*w*2
  std::vector<float> offset; // n*h*w*2
};

class centernet {
public:
  /// Output stride of the heads relative to the input.
  static constexpr int stride = 4;

  /// A detector with random weights (heatmap bias -2.19, i.e. prior 0.1, as CenterNet does).
  static centernet random(const centernet_config& cfg, uint64_t seed);

  /// A detector on a given backbone (e.g. MobileNetV2 from the ImageNet TFLite model, its
  /// classifier unused) with random neck and heads.
  static centernet with_backbone(mobilenet_v2 backbone, const centernet_config& cfg, uint64_t seed);

  /// Writes every parameter to a safetensors file ("backbone.<i>.weight", "neck.reduce.bias",
  /// "heads.heat.hidden.weight", ...; convolution weights HWIO, depthwise [kh, kw, c]).
  caf::error save(const std::string& path) const;

  /// The same file as save() writes, as bytes, with `metadata` added to its header's
  /// __metadata__ (e.g. "comb.kind" for the model store). Errors as encode_safetensors.
  caf::expected<std::string> encode(std::map<std::string, std::string> metadata = {}) const;

  /// Reads a detector written by save(): the structure comes from `cfg` and `tf_padding`,
  /// every tensor must be there with its shape (errc::bad_model names the first that is not).
  static caf::expected<centernet> load(const std::string& path, const centernet_config& cfg,
                                       bool tf_padding = false);

  /// Builds a detector from a decoded file (see load); `source` names it in errors.
  static caf::expected<centernet> decode(const safetensors_file& file, const centernet_config& cfg,
                                         bool tf_padding, const std::string& source);

  /// Runs backbone, neck and heads. Input h and w must be multiples of 32.
  caf::expected<centernet_output> forward(const float* input, int batch, int h, int w) const;

  /// Same, into `out`, reusing its storage and thread-local scratch.
  caf::error forward_into(const float* input, int batch, int h, int w, centernet_output& out) const;

  /// Runs backbone, neck and heads through the ops of `be` (conv2d, add, bias_act,
  /// upsample, sigmoid; an op `be` lacks runs on the CPU backend, the tensors copied there
  /// and back), so that any registered backend can run the detector. `input` is f32 NHWC
  /// [batch, h, w, 3] on be.device() with h and w multiples of 32; the maps come back to
  /// host memory for decoding. The weights are copied to each device once, on first use.
  caf::expected<centernet_output> forward(backend& be, const tensor& input) const;

  /// forward + decode_centernet for a single image.
  caf::expected<std::vector<detection>> detect(const float* input, int h, int w, int k,
                                               float threshold = 0.0f) const;

  /// Floating-point operations of one image at h x w.
  double flops(int h, int w) const;

  const centernet_config& config() const { return cfg_; }

private:
  struct conv {
    int k = 1, cin = 0, cout = 0;
    bool relu = true;
    std::vector<float> bias;
    std::vector<float> weights; // HWIO
    conv2d_nhwc_weights packed;
  };
  centernet(mobilenet_v2 backbone) : backbone_(std::move(backbone)) {}
  /// Every parameter as a CPU tensor with its file name, in save()'s order.
  caf::error collect(std::vector<tensor>& store, std::vector<std::string>& names) const;
  static conv make_conv(int k, int cin, int cout, bool relu, std::mt19937_64& rng);
  std::vector<std::pair<std::string, conv*>> convs();
  void init_head(uint64_t seed);
  void run(const conv& c, const float* in, int n, int h, int w, float* out) const;

  /// The ten convolutions in a fixed order (reduce, neck, heads).
  std::vector<const conv*> conv_list() const;
  /// Their weights [k, k, cin, cout] and biases [cout] on `dev` (2 tensors per conv).
  caf::expected<std::shared_ptr<const std::vector<tensor>>> weights_on(device dev) const;
  struct device_weights {
    std::mutex mtx;
    std::vector<std::pair<device, std::shared_ptr<const std::vector<tensor>>>> per_device;
  };

  centernet_config cfg_;
  std::shared_ptr<device_weights> device_weights_ = std::make_shared<device_weights>();
  mobilenet_v2 backbone_;
  conv reduce_;
  conv neck_[3];
  conv heat_hidden_, heat_out_, size_hidden_, size_out_, offset_hidden_, offset_out_;
};

} // namespace comb::kernels
