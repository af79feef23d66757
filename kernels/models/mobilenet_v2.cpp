// MobileNetV2 from Comb's NHWC vision ops; see mobilenet_v2.hpp.
#include "kernels/models/mobilenet_v2.hpp"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <random>
#include <utility>

namespace comb::kernels {

namespace {

/// MobileNetV2's inverted-residual settings: expansion t, channels c, repeats n, stride s.
struct stage {
  int t, c, n, s;
};
constexpr stage stages[] = {{1, 16, 1, 1}, {6, 24, 2, 2},  {6, 32, 3, 2}, {6, 64, 4, 2},
                            {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
constexpr int stem_channels = 32;
constexpr int head_channels = 1280;

/// Re-quantizes x on the uint8 grid (scale, zero) in place.
void fake_quantize(float* x, int64_t n, float scale, float zero) {
  if (scale <= 0)
    return;
  float inv = 1.0f / scale;
  for (int64_t i = 0; i < n; ++i) {
    float q = std::nearbyint(x[i] * inv) + zero;
    q = std::min(255.0f, std::max(0.0f, q));
    x[i] = (q - zero) * scale;
  }
}

/// Thread-local scratch buffers reused across forward passes.
std::vector<float>& scratch(int i) {
  thread_local std::vector<float> bufs[4];
  return bufs[i];
}

float* ensure(std::vector<float>& v, size_t n) {
  if (v.size() < n)
    v.resize(n);
  return v.data();
}

} // namespace

void fold_batch_norm(std::vector<float>& weights, std::vector<float>& bias, int channels,
                     const float* gamma, const float* beta, const float* mean, const float* var,
                     float eps) {
  bias.resize(channels, 0.0f);
  std::vector<float> f(channels);
  for (int c = 0; c < channels; ++c) {
    f[c] = gamma[c] / std::sqrt(var[c] + eps);
    bias[c] = beta[c] + (bias[c] - mean[c]) * f[c];
  }
  for (size_t i = 0; i < weights.size(); ++i)
    weights[i] *= f[i % channels];
}

void mobilenet_v2::build_shape(const mobilenet_v2_config& cfg) {
  cfg_ = cfg;
  layers_.clear();
  blocks_.clear();
  auto add = [&](bool dw, int k, int stride, int cin, int cout, bool relu6) {
    layer l;
    l.depthwise = dw;
    l.k = k;
    l.stride = stride;
    l.cin = cin;
    l.cout = cout;
    l.relu6 = relu6;
    layers_.push_back(std::move(l));
    return static_cast<int>(layers_.size()) - 1;
  };
  stem_ = add(false, 3, 2, 3, stem_channels, true);
  int cin = stem_channels;
  for (auto& st : stages)
    for (int i = 0; i < st.n; ++i) {
      block b;
      int stride = i == 0 ? st.s : 1;
      int hidden = cin * st.t;
      if (st.t != 1)
        b.expand = add(false, 1, 1, cin, hidden, true);
      b.depthwise = add(true, 3, stride, hidden, hidden, true);
      b.project = add(false, 1, 1, hidden, st.c, false);
      b.residual = stride == 1 && cin == st.c;
      blocks_.push_back(b);
      cin = st.c;
    }
  head_ = add(false, 1, 1, cin, head_channels, true);
  classifier_ = add(false, 1, 1, head_channels, cfg.num_classes, false);
}

mobilenet_v2 mobilenet_v2::random(const mobilenet_v2_config& cfg, uint64_t seed) {
  mobilenet_v2 m;
  m.build_shape(cfg);
  std::mt19937_64 rng(seed);
  for (auto& l : m.layers_) {
    int fan_in = l.depthwise ? l.k * l.k : l.k * l.k * l.cin;
    std::normal_distribution<float> dist(0.0f, std::sqrt(2.0f / fan_in));
    size_t n = l.depthwise ? static_cast<size_t>(l.k) * l.k * l.cout
                           : static_cast<size_t>(l.k) * l.k * l.cin * l.cout;
    l.weights.resize(n);
    for (auto& x : l.weights)
      x = dist(rng);
    l.bias.assign(l.cout, 0.0f);
    // Batch-norm as torchvision initialises it (gamma 1, beta 0, mean 0, var 1), folded.
    std::vector<float> one(l.cout, 1.0f), zero(l.cout, 0.0f);
    fold_batch_norm(l.weights, l.bias, l.cout, one.data(), zero.data(), zero.data(), one.data(),
                    1e-5f);
    if (!l.depthwise)
      l.packed = pack_conv2d_nhwc(l.weights.data(), l.k, l.k, l.cin, l.cout);
  }
  return m;
}

caf::expected<mobilenet_v2> mobilenet_v2::from_tflite(const tflite_model& tf) {
  auto bad = [](const std::string& what) {
    return make_error(errc::bad_model, "mobilenet_v2: " + what);
  };
  if (tf.inputs.size() != 1)
    return bad("expected one graph input, found " + std::to_string(tf.inputs.size()));
  auto& in = tf.tensors[tf.inputs[0]];
  if (in.shape.size() != 4 || in.shape[3] != 3)
    return bad("graph input '" + in.name + "' is not N x H x W x 3");
  // The classifier's width comes from the file (1001 for the ImageNet model).
  int num_classes = 0;
  for (auto& op : tf.operators)
    if (op.builtin_code == tflite_op::conv_2d && op.inputs.size() >= 2)
      num_classes = tf.tensors[op.inputs[1]].shape.empty() ? 0 : tf.tensors[op.inputs[1]].shape[0];
  if (num_classes <= 0)
    return bad("no convolution found to serve as the classifier");
  mobilenet_v2 m;
  mobilenet_v2_config cfg;
  cfg.num_classes = num_classes;
  cfg.tf_padding = true;
  m.build_shape(cfg);
  m.quantized_ = in.type == tflite_type::uint8 && in.quant.present();
  if (m.quantized_) {
    m.input_scale_ = in.quant.scale[0];
    m.input_zero_ = in.quant.zero_point.empty() ? 0.0f : static_cast<float>(in.quant.zero_point[0]);
  } else {
    m.input_scale_ = 1.0f;
    m.input_zero_ = 0.0f;
  }

  size_t next = 0;
  int current = tf.inputs[0];
  auto where = [&](size_t i) {
    return "operator " + std::to_string(i) + " ("
           + (i < tf.operators.size() ? tflite_op_name(tf.operators[i].builtin_code)
                                      : "end of graph")
           + ")";
  };
  auto out_grid = [&](int tensor, float& scale, float& zero) {
    auto& q = tf.tensors[tensor].quant;
    scale = q.present() ? q.scale[0] : 0.0f;
    zero = q.zero_point.empty() ? 0.0f : static_cast<float>(q.zero_point[0]);
  };
  // Consumes the next operator as layer `li`.
  auto take_conv = [&](int li) -> caf::error {
    auto& l = m.layers_[li];
    if (next >= tf.operators.size())
      return bad("graph ends where layer " + std::to_string(li) + " was expected");
    auto& op = tf.operators[next];
    auto at = where(next);
    int want = l.depthwise ? tflite_op::depthwise_conv_2d : tflite_op::conv_2d;
    if (op.builtin_code != want)
      return bad(at + ": expected " + tflite_op_name(want) + " for layer " + std::to_string(li));
    if (op.inputs.size() < 3 || op.outputs.size() != 1 || op.inputs[1] < 0 || op.inputs[2] < 0)
      return bad(at + ": expected input, filter, bias and one output");
    if (op.inputs[0] != current)
      return bad(at + ": does not read the previous layer's output");
    auto& o = op.options;
    if (o.stride_h != l.stride || o.stride_w != l.stride)
      return bad(at + ": stride " + std::to_string(o.stride_h) + " where "
                 + std::to_string(l.stride) + " was expected");
    if (o.dilation_h != 1 || o.dilation_w != 1 || o.padding != tflite_padding::same)
      return bad(at + ": expected SAME padding without dilation");
    auto want_act = l.relu6 ? tflite_activation::relu6 : tflite_activation::none;
    if (o.activation != want_act)
      return bad(at + ": unexpected fused activation");
    auto& f = tf.tensors[op.inputs[1]];
    std::vector<int32_t> want_shape = l.depthwise ? std::vector<int32_t>{1, l.k, l.k, l.cout}
                                                  : std::vector<int32_t>{l.cout, l.k, l.k, l.cin};
    if (f.shape != want_shape)
      return bad(at + ": filter '" + f.name + "' has the wrong shape for layer "
                 + std::to_string(li));
    if (l.depthwise && o.depth_multiplier != 1)
      return bad(at + ": depth multiplier must be 1");
    auto w = tf.dequantize(op.inputs[1]);
    if (!w)
      return w.error();
    auto b = tf.dequantize(op.inputs[2]);
    if (!b)
      return b.error();
    if (b->size() != static_cast<size_t>(l.cout))
      return bad(at + ": bias has " + std::to_string(b->size()) + " values, expected "
                 + std::to_string(l.cout));
    if (l.depthwise) {
      l.weights = std::move(*w);
    } else {
      // OHWI -> HWIO.
      l.weights.resize(w->size());
      int khw = l.k * l.k;
      for (int co = 0; co < l.cout; ++co)
        for (int s = 0; s < khw; ++s)
          for (int ci = 0; ci < l.cin; ++ci)
            l.weights[(static_cast<size_t>(s) * l.cin + ci) * l.cout + co] =
              (*w)[(static_cast<size_t>(co) * khw + s) * l.cin + ci];
      l.packed = pack_conv2d_nhwc(l.weights.data(), l.k, l.k, l.cin, l.cout);
    }
    l.bias = std::move(*b);
    out_grid(op.outputs[0], l.out_scale, l.out_zero);
    current = op.outputs[0];
    ++next;
    return caf::none;
  };

  if (auto err = take_conv(m.stem_))
    return err;
  for (auto& b : m.blocks_) {
    int block_in = current;
    if (b.expand >= 0)
      if (auto err = take_conv(b.expand))
        return err;
    if (auto err = take_conv(b.depthwise))
      return err;
    if (auto err = take_conv(b.project))
      return err;
    if (b.residual) {
      if (next >= tf.operators.size() || tf.operators[next].builtin_code != tflite_op::add)
        return bad(where(next) + ": expected the residual ADD");
      auto& op = tf.operators[next];
      if (op.inputs.size() != 2 || op.outputs.size() != 1
          || !((op.inputs[0] == current && op.inputs[1] == block_in)
               || (op.inputs[1] == current && op.inputs[0] == block_in)))
        return bad(where(next) + ": residual ADD does not join the block's input and output");
      if (op.options.activation != tflite_activation::none)
        return bad(where(next) + ": residual ADD with a fused activation");
      out_grid(op.outputs[0], b.add_scale, b.add_zero);
      current = op.outputs[0];
      ++next;
    }
  }
  if (auto err = take_conv(m.head_))
    return err;
  if (next >= tf.operators.size() || tf.operators[next].builtin_code != tflite_op::average_pool_2d)
    return bad(where(next) + ": expected AVERAGE_POOL_2D");
  {
    auto& op = tf.operators[next];
    if (op.inputs.empty() || op.inputs[0] != current || op.outputs.size() != 1)
      return bad(where(next) + ": pooling does not read the head's output");
    out_grid(op.outputs[0], m.pool_scale_, m.pool_zero_);
    current = op.outputs[0];
    ++next;
  }
  if (auto err = take_conv(m.classifier_))
    return err;
  // What follows (RESHAPE, SOFTMAX) does not change the arg-max; only check the kinds.
  for (; next < tf.operators.size(); ++next) {
    auto c = tf.operators[next].builtin_code;
    if (c != tflite_op::reshape && c != tflite_op::softmax && c != tflite_op::squeeze
        && c != tflite_op::dequantize)
      return bad(where(next) + ": unexpected operator after the classifier");
  }
  return m;
}

caf::expected<mobilenet_v2> mobilenet_v2::load(const std::string& path) {
  auto tf = load_tflite(path);
  if (!tf)
    return tf.error();
  auto m = from_tflite(*tf);
  if (!m)
    return make_error(errc::bad_model, "'" + path + "': " + describe(m.error()));
  return m;
}

double mobilenet_v2::flops(int h, int w) const {
  double total = 0;
  for (auto& l : layers_) {
    if (&l == &layers_[classifier_]) {
      total += 2.0 * l.cin * l.cout;
      break;
    }
    int oh = (h + l.stride - 1) / l.stride, ow = (w + l.stride - 1) / l.stride;
    double macs = l.depthwise ? 1.0 * l.k * l.k * l.cout : 1.0 * l.k * l.k * l.cin * l.cout;
    total += 2.0 * macs * oh * ow;
    h = oh;
    w = ow;
  }
  return total;
}

caf::error mobilenet_v2::set_layer(size_t i, std::vector<float> weights, std::vector<float> bias) {
  if (i >= layers_.size())
    return make_error(errc::bad_model, "mobilenet_v2: no layer " + std::to_string(i));
  auto& l = layers_[i];
  size_t want = l.depthwise ? static_cast<size_t>(l.k) * l.k * l.cout
                            : static_cast<size_t>(l.k) * l.k * l.cin * l.cout;
  if (weights.size() != want || bias.size() != static_cast<size_t>(l.cout))
    return make_error(errc::bad_model, "mobilenet_v2 layer " + std::to_string(i) + ": expected "
                                         + std::to_string(want) + " weights and "
                                         + std::to_string(l.cout) + " biases, got "
                                         + std::to_string(weights.size()) + " and "
                                         + std::to_string(bias.size()));
  l.weights = std::move(weights);
  l.bias = std::move(bias);
  if (!l.depthwise)
    l.packed = pack_conv2d_nhwc(l.weights.data(), l.k, l.k, l.cin, l.cout);
  device_weights_ = std::make_shared<device_weights>();
  return caf::none;
}

caf::error mobilenet_v2::run_backbone(const float* input, int batch, int h, int w,
                                      feature_map& out) const {
  if (batch <= 0 || h < 32 || w < 32 || h > 8192 || w > 8192)
    return make_error(errc::invalid_argument,
                      "mobilenet_v2: input must be batch >= 1 of at least 32x32 pixels, got "
                        + std::to_string(batch) + "x" + std::to_string(h) + "x"
                        + std::to_string(w));
  // Largest activation: the first expanded layer at stride 2 (96 ch) or the stem.
  size_t cap = static_cast<size_t>(batch) * ((h + 1) / 2) * ((w + 1) / 2) * 96 + 64;
  float* buf[3] = {ensure(scratch(0), cap), ensure(scratch(1), cap), ensure(scratch(2), cap)};
  auto params = [&](const layer& l, int ih, int iw) {
    conv2d_nhwc_params p;
    p.n = batch;
    p.h = ih;
    p.w = iw;
    p.c = l.cin;
    p.kh = p.kw = l.k;
    p.stride_h = p.stride_w = l.stride;
    if (cfg_.tf_padding) {
      p.out_h = same_padding(ih, l.k, l.stride, p.pad_top);
      p.out_w = same_padding(iw, l.k, l.stride, p.pad_left);
    } else {
      p.pad_top = p.pad_left = l.k / 2;
      p.out_h = (ih + 2 * p.pad_top - l.k) / l.stride + 1;
      p.out_w = (iw + 2 * p.pad_left - l.k) / l.stride + 1;
    }
    if (l.relu6) {
      p.lo = 0.0f;
      p.hi = 6.0f;
    }
    return p;
  };
  // Runs layer l from `src` into `dst`; returns the output size.
  auto run = [&](const layer& l, const float* src, int& ih, int& iw, float* dst,
                 const float* residual) {
    auto p = params(l, ih, iw);
    if (l.depthwise)
      depthwise_conv_nhwc(p, src, l.weights.data(), l.bias.data(), dst);
    else
      conv2d_nhwc(p, l.packed, src, l.bias.data(), dst, residual);
    ih = p.out_h;
    iw = p.out_w;
    int64_t n = static_cast<int64_t>(batch) * ih * iw * l.cout;
    if (fake_quant_ && !residual)
      fake_quantize(dst, n, l.out_scale, l.out_zero);
  };
  int ch = h, cw = w;
  run(layers_[stem_], input, ch, cw, buf[0], nullptr);
  int x = 0; // buffer holding the block input
  for (auto& b : blocks_) {
    int t1 = (x + 1) % 3, t2 = (x + 2) % 3;
    int bh = ch, bw = cw;
    const float* src = buf[x];
    int hidden = t1;
    if (b.expand >= 0) {
      run(layers_[b.expand], src, bh, bw, buf[t1], nullptr);
      src = buf[t1];
      hidden = t2;
    }
    run(layers_[b.depthwise], src, bh, bw, buf[hidden], nullptr);
    int dst = hidden == t1 ? t2 : t1;
    auto& pl = layers_[b.project];
    if (b.residual && !fake_quant_) {
      run(pl, buf[hidden], bh, bw, buf[dst], buf[x]);
    } else {
      run(pl, buf[hidden], bh, bw, buf[dst], nullptr);
      if (b.residual) {
        int64_t n = static_cast<int64_t>(batch) * bh * bw * pl.cout;
        for (int64_t i = 0; i < n; ++i)
          buf[dst][i] += buf[x][i];
        fake_quantize(buf[dst], n, b.add_scale, b.add_zero);
      }
    }
    x = dst;
    ch = bh;
    cw = bw;
  }
  auto& hl = layers_[head_];
  out.n = batch;
  out.c = hl.cout;
  out.h = ch;
  out.w = cw;
  out.data.resize(static_cast<size_t>(batch) * ch * cw * hl.cout);
  run(hl, buf[x], ch, cw, out.data.data(), nullptr);
  return caf::none;
}

caf::expected<feature_map> mobilenet_v2::features(const float* input, int batch, int h,
                                                  int w) const {
  feature_map f;
  if (auto err = run_backbone(input, batch, h, w, f))
    return err;
  return f;
}

caf::expected<std::vector<float>> mobilenet_v2::logits(const float* input, int batch, int h,
                                                       int w) const {
  thread_local feature_map f;
  if (auto err = run_backbone(input, batch, h, w, f))
    return err;
  // Global average pool, then the 1x1 classifier as a GEMM with one row per image.
  std::vector<float> pooled(static_cast<size_t>(batch) * f.c, 0.0f);
  int64_t hw = static_cast<int64_t>(f.h) * f.w;
  for (int b = 0; b < batch; ++b) {
    float* pb = pooled.data() + static_cast<size_t>(b) * f.c;
    const float* src = f.data.data() + static_cast<size_t>(b) * hw * f.c;
    for (int64_t q = 0; q < hw; ++q)
      for (int c = 0; c < f.c; ++c)
        pb[c] += src[q * f.c + c];
    for (int c = 0; c < f.c; ++c)
      pb[c] /= static_cast<float>(hw);
  }
  if (fake_quant_)
    fake_quantize(pooled.data(), static_cast<int64_t>(pooled.size()), pool_scale_, pool_zero_);
  auto& cl = layers_[classifier_];
  std::vector<float> out(static_cast<size_t>(batch) * cl.cout);
  gemm_epilogue ep;
  ep.bias = cl.bias.data();
  fused_gemm(pooled.data(), batch, f.c, cl.packed.packed, ep, out.data(), cl.cout);
  return out;
}

// --- through the backend interface ---------------------------------------------------------

caf::expected<std::shared_ptr<const std::vector<tensor>>> mobilenet_v2::weights_on(
  device dev) const {
  auto cache = device_weights_;
  std::lock_guard<std::mutex> g{cache->mtx};
  for (auto& [d, w] : cache->per_device)
    if (d == dev)
      return w;
  auto w = std::make_shared<std::vector<tensor>>();
  for (auto& l : layers_) {
    int64_t cin_g = l.depthwise ? 1 : l.cin;
    auto wt = tensor::from({l.k, l.k, cin_g, l.cout}, l.weights);
    if (!wt)
      return wt.error();
    auto bt = tensor::from({l.cout}, l.bias);
    if (!bt)
      return bt.error();
    for (auto* t : {&*wt, &*bt}) {
      if (dev == device::cpu) {
        w->push_back(std::move(*t));
      } else {
        auto moved = t->to(dev);
        if (!moved)
          return moved.error();
        w->push_back(std::move(*moved));
      }
    }
  }
  cache->per_device.emplace_back(dev, w);
  return std::shared_ptr<const std::vector<tensor>>{w};
}

conv2d_params mobilenet_v2::conv_params(const layer& l, int ih, int iw) const {
  conv2d_params p;
  p.stride_h = p.stride_w = l.stride;
  p.groups = l.depthwise ? l.cin : 1;
  if (cfg_.tf_padding) {
    // TensorFlow "same": out = ceil(in / stride), the odd pixel of padding at the end.
    auto pads = [&](int in, int& before, int& after) {
      int out = same_padding(in, l.k, l.stride, before);
      after = std::max((out - 1) * l.stride + l.k - in, 0) - before;
    };
    pads(ih, p.pad_top, p.pad_bottom);
    pads(iw, p.pad_left, p.pad_right);
  } else {
    p.pad_top = p.pad_left = p.pad_bottom = p.pad_right = l.k / 2;
  }
  return p;
}

caf::expected<tensor> mobilenet_v2::features(backend& be, const tensor& input) const {
  if (fake_quant_)
    return make_error(errc::unsupported,
                      "mobilenet_v2: fake quantization runs on the CPU path only");
  if (input.rank() != 4 || input.dtype() != dtype::f32 || input.dim(3) != 3
      || input.device() != be.device() || input.dim(0) < 1 || input.dim(1) < 32 || input.dim(2) < 32
      || input.dim(1) > 8192 || input.dim(2) > 8192)
    return make_error(errc::invalid_argument,
                      "mobilenet_v2: input must be f32 [batch, h >= 32, w >= 32, 3] on " + be.name()
                        + "'s device, got " + input.describe());
  auto wts = weights_on(be.device());
  if (!wts)
    return wts.error();
  const auto& w = **wts;
  // Layer li from x into y: convolution (bias included), residual add, then ReLU6.
  auto run = [&](int li, const tensor& x, const tensor* residual) -> caf::expected<tensor> {
    auto& l = layers_[li];
    auto p = conv_params(l, static_cast<int>(x.dim(1)), static_cast<int>(x.dim(2)));
    tensor y;
    if (auto err = be.conv2d(x, w[2 * li], &w[2 * li + 1], p, y))
      return err;
    if (residual) {
      tensor sum;
      if (auto err = be.add(y, *residual, sum))
        return err;
      y = std::move(sum);
    }
    if (l.relu6) {
      tensor act;
      if (auto err = be.bias_act(y, nullptr, activation::relu6, act))
        return err;
      y = std::move(act);
    }
    return y;
  };
  auto x = run(stem_, input, nullptr);
  if (!x)
    return x;
  for (auto& b : blocks_) {
    tensor h = *x;
    if (b.expand >= 0) {
      auto e = run(b.expand, h, nullptr);
      if (!e)
        return e;
      h = std::move(*e);
    }
    auto d = run(b.depthwise, h, nullptr);
    if (!d)
      return d;
    auto pr = run(b.project, *d, b.residual ? &*x : nullptr);
    if (!pr)
      return pr;
    x = std::move(pr);
  }
  return run(head_, *x, nullptr);
}

caf::expected<tensor> mobilenet_v2::logits(backend& be, const tensor& input) const {
  auto f = features(be, input);
  if (!f)
    return f;
  tensor pooled;
  if (be.supports(op::global_avg_pool)) {
    if (auto err = be.global_avg_pool(*f, pooled))
      return err;
  } else {
    auto host = f->to(device::cpu);
    if (!host)
      return host.error();
    tensor p;
    if (auto err = cpu().global_avg_pool(*host, p))
      return err;
    auto back = p.to(be.device());
    if (!back)
      return back.error();
    pooled = std::move(*back);
  }
  auto wts = weights_on(be.device());
  if (!wts)
    return wts.error();
  auto& cl = layers_[classifier_];
  // The 1x1 classifier's HWIO weights [1, 1, cin, cout] are dense weights [cin, cout].
  auto wc = (**wts)[2 * classifier_].reshape({cl.cin, cl.cout});
  if (!wc)
    return wc.error();
  tensor out;
  if (auto err = be.dense(pooled, *wc, &(**wts)[2 * classifier_ + 1], out))
    return err;
  return out;
}

} // namespace comb::kernels
