// comb::kernels::mobilenet_v2: MobileNetV2 (width 1.0) on NHWC floats, built from Comb's
// vision ops: a 3x3 stem, 17 inverted-residual blocks (1x1 expand + ReLU6, 3x3 depthwise +
// ReLU6, 1x1 linear project, residual add where shapes allow), a 1x1 conv to 1280 + ReLU6,
// global average pooling and a 1x1 classifier. Batch-norm is folded into the convolutions
// (fold_batch_norm) and bias + ReLU6 (+ residual) are fused into each convolution's store.
// Weights come from a TFLite file (the uint8 model is dequantized to f32; optionally the
// activations are re-quantized on each layer's output grid, "fake quant", to follow the
// integer interpreter closely) or are random (benchmarks, detector backbones). A built
// model is immutable; forward() is const and may run from several threads (scratch buffers
// are thread-local), though the ops share one worker pool.
#pragma once

#include "kernels/backend.hpp"
#include "kernels/ops/conv2d_nhwc.hpp"
#include "kernels/tflite_reader.hpp"
#include "base/errc.hpp"

#include <caf/expected.hpp>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace comb::kernels {

/// Folds batch-norm (gamma, beta, running mean, var, eps) into a convolution's weights and
/// bias in place. `weights` holds `channels` output channels, the output channel being the
/// fastest-varying index (HWIO, or [kh][kw][c] for depthwise); `bias` has `channels` floats.
void fold_batch_norm(std::vector<float>& weights, std::vector<float>& bias, int channels,
                     const float* gamma, const float* beta, const float* mean, const float* var,
                     float eps);

/// How a model was configured.
struct mobilenet_v2_config {
  /// Classes of the classifier (1001 for the TFLite ImageNet model, 1000 for torchvision).
  int num_classes = 1001;
  /// TensorFlow "same" padding (extra pad after) when true; PyTorch symmetric padding k/2
  /// when false. Both give the same output sizes.
  bool tf_padding = true;
};

/// A feature map: NHWC floats.
struct feature_map {
  int n = 0, h = 0, w = 0, c = 0;
  std::vector<float> data;
};

class mobilenet_v2 {
public:
  /// One convolution with its folded weights.
  struct layer {
    bool depthwise = false;
    int k = 1, stride = 1, cin = 0, cout = 0;
    bool relu6 = true;
    /// HWIO for dense convolutions, [kh][kw][c] for depthwise.
    std::vector<float> weights;
    std::vector<float> bias;
    conv2d_nhwc_weights packed;
    /// Output quantization grid (scale 0: none).
    float out_scale = 0, out_zero = 0;
  };

  /// An inverted-residual block: indices into layers(); expand is -1 when absent.
  struct block {
    int expand = -1, depthwise = 0, project = 0;
    bool residual = false;
    float add_scale = 0, add_zero = 0;
  };

  /// A model with random (He-normal) weights, as torchvision initialises before training.
  static mobilenet_v2 random(const mobilenet_v2_config& cfg, uint64_t seed);

  /// Builds the model from a TFLite MobileNetV2 1.0 graph, checking every operator, shape,
  /// stride, activation and tensor link; errc::bad_model names the first mismatch.
  static caf::expected<mobilenet_v2> from_tflite(const tflite_model& m);

  /// Reads a .tflite file and builds the model from it.
  static caf::expected<mobilenet_v2> load(const std::string& path);

  /// Classifier scores (pre-softmax), batch x num_classes, for NHWC input batch x h x w x 3
  /// (real-valued: for the TFLite model, scale * (pixel - zero point), see input_scale()).
  caf::expected<std::vector<float>> logits(const float* input, int batch, int h = 224,
                                           int w = 224) const;

  /// The backbone's last feature map (after the 1x1 conv to 1280 + ReLU6), stride 32.
  caf::expected<feature_map> features(const float* input, int batch, int h, int w) const;

  /// The backbone's last feature map computed through the ops of `be` (conv2d, add,
  /// bias_act), so that any registered backend (CUDA included) can run the model. `input`
  /// is f32 NHWC [batch, h, w, 3] on be.device(); the result lies there too. The weights
  /// are copied to each device once, on first use. The float-pointer functions above and
  /// below run the CPU's fused NHWC ops directly (packed weights, fused epilogues) and stay
  /// the fast path on the CPU. Errors: errc::unsupported with fake quantization on, or
  /// when `be` lacks an op or a shape (cuDNN: symmetric padding only, so tf_padding = false).
  caf::expected<tensor> features(backend& be, const tensor& input) const;

  /// Classifier scores [batch, num_classes] through `be`: features, global average pooling
  /// (on the CPU backend when `be` has none) and the classifier as a dense layer.
  caf::expected<tensor> logits(backend& be, const tensor& input) const;

  /// Same, into `out`, reusing its storage (fresh allocations cost page faults each call).
  caf::error features_into(const float* input, int batch, int h, int w, feature_map& out) const {
    return run_backbone(input, batch, h, w, out);
  }

  /// Re-quantize activations on each layer's TFLite output grid (only for TFLite models).
  void set_fake_quant(bool on) { fake_quant_ = on && quantized_; }

  /// The input quantization of the source model: real = scale * (pixel - zero point).
  float input_scale() const { return input_scale_; }
  float input_zero_point() const { return input_zero_; }

  const mobilenet_v2_config& config() const { return cfg_; }
  const std::vector<layer>& layers() const { return layers_; }
  const std::vector<block>& blocks() const { return blocks_; }

  /// Floating-point operations (2 per multiply-add) of one image at h x w, classifier included.
  double flops(int h = 224, int w = 224) const;

  /// Replaces layer `i`'s weights (HWIO, or [kh][kw][c] for depthwise) and bias, e.g. from a
  /// checkpoint; errc::bad_model when the sizes do not match the layer.
  caf::error set_layer(size_t i, std::vector<float> weights, std::vector<float> bias);

private:
  mobilenet_v2() = default;
  void build_shape(const mobilenet_v2_config& cfg);
  caf::error run_backbone(const float* input, int batch, int h, int w, feature_map& out) const;
  /// Each layer's weights [k, k, cin / groups, cout] and bias [cout] on `dev` (2 tensors per
  /// layer), made on first use.
  caf::expected<std::shared_ptr<const std::vector<tensor>>> weights_on(device dev) const;
  /// conv2d parameters of layer l on an ih x iw input.
  conv2d_params conv_params(const layer& l, int ih, int iw) const;

  /// Per-device copies of the weights; replaced (not cleared) by set_layer, so copies of a
  /// model never see another's weights.
  struct device_weights {
    std::mutex mtx;
    std::vector<std::pair<device, std::shared_ptr<const std::vector<tensor>>>> per_device;
  };
  std::shared_ptr<device_weights> device_weights_ = std::make_shared<device_weights>();

  mobilenet_v2_config cfg_;
  std::vector<layer> layers_;
  std::vector<block> blocks_;
  int stem_ = 0, head_ = 0, classifier_ = 0;
  bool quantized_ = false;
  bool fake_quant_ = false;
  float input_scale_ = 1.0f / 127.5f, input_zero_ = 127.5f;
  float pool_scale_ = 0, pool_zero_ = 0;
};

} // namespace comb::kernels
