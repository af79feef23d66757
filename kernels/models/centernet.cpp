// CenterNet-style detector on Comb's NHWC ops; see centernet.hpp.
#include "kernels/models/centernet.hpp"

#include "kernels/safetensors.hpp"
#include "kernels/tensor.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

namespace comb::kernels {

namespace {

/// Nearest-neighbour 2x upsampling, NHWC.
void upsample2x(const float* in, int n, int h, int w, int c, float* out) {
  for (int b = 0; b < n; ++b)
    for (int y = 0; y < 2 * h; ++y)
      for (int x = 0; x < 2 * w; ++x)
        std::memcpy(out + ((static_cast<int64_t>(b) * 2 * h + y) * 2 * w + x) * c,
                    in + ((static_cast<int64_t>(b) * h + y / 2) * w + x / 2) * c,
                    sizeof(float) * c);
}

} // namespace

std::vector<detection> decode_centernet(const float* heat, const float* size, const float* offset,
                                        int h, int w, int classes, int k, float stride,
                                        float threshold) {
  struct peak {
    float score;
    int64_t index; // (y * w + x) * classes + cls
  };
  std::vector<peak> peaks;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < classes; ++c) {
        float v = heat[(static_cast<int64_t>(y) * w + x) * classes + c];
        if (!(v >= threshold))
          continue;
        // 3x3 max pool with padding: a peak equals the maximum of its neighbourhood.
        bool is_max = true;
        for (int dy = -1; dy <= 1 && is_max; ++dy)
          for (int dx = -1; dx <= 1; ++dx) {
            int yy = y + dy, xx = x + dx;
            if (yy < 0 || yy >= h || xx < 0 || xx >= w)
              continue;
            if (heat[(static_cast<int64_t>(yy) * w + xx) * classes + c] > v) {
              is_max = false;
              break;
            }
          }
        if (is_max)
          peaks.push_back({v, (static_cast<int64_t>(y) * w + x) * classes + c});
      }
  auto better = [](const peak& a, const peak& b) {
    return a.score != b.score ? a.score > b.score : a.index < b.index;
  };
  size_t keep = std::min(peaks.size(), static_cast<size_t>(std::max(k, 0)));
  std::partial_sort(peaks.begin(), peaks.begin() + keep, peaks.end(), better);
  std::vector<detection> out;
  for (size_t i = 0; i < keep; ++i) {
    auto cell = peaks[i].index / classes;
    int cls = static_cast<int>(peaks[i].index % classes);
    int y = static_cast<int>(cell / w), x = static_cast<int>(cell % w);
    float cx = x + offset[cell * 2 + 0], cy = y + offset[cell * 2 + 1];
    float bw = size[cell * 2 + 0], bh = size[cell * 2 + 1];
    detection d;
    d.x0 = (cx - bw / 2) * stride;
    d.y0 = (cy - bh / 2) * stride;
    d.x1 = (cx + bw / 2) * stride;
    d.y1 = (cy + bh / 2) * stride;
    d.score = peaks[i].score;
    d.cls = cls;
    out.push_back(d);
  }
  return out;
}

centernet::conv centernet::make_conv(int k, int cin, int cout, bool relu, std::mt19937_64& rng) {
  conv c;
  c.k = k;
  c.cin = cin;
  c.cout = cout;
  c.relu = relu;
  std::normal_distribution<float> dist(0.0f, std::sqrt(2.0f / (k * k * cin)));
  std::vector<float> w(static_cast<size_t>(k) * k * cin * cout);
  for (auto& x : w)
    x = dist(rng);
  c.bias.assign(cout, 0.0f);
  c.packed = pack_conv2d_nhwc(w.data(), k, k, cin, cout);
  c.weights = std::move(w);
  return c;
}

centernet centernet::random(const centernet_config& cfg, uint64_t seed) {
  mobilenet_v2_config bc;
  bc.num_classes = 1; // the classifier is not used
  bc.tf_padding = false;
  return with_backbone(mobilenet_v2::random(bc, seed), cfg, seed);
}

centernet centernet::with_backbone(mobilenet_v2 backbone, const centernet_config& cfg,
                                   uint64_t seed) {
  centernet net(std::move(backbone));
  net.cfg_ = cfg;
  net.init_head(seed);
  return net;
}

void centernet::init_head(uint64_t seed) {
  auto& cfg = cfg_;
  std::mt19937_64 rng(seed ^ 0x9e3779b97f4a7c15ull);
  reduce_ = make_conv(1, 1280, cfg.neck_channels[0], true, rng);
  int c = cfg.neck_channels[0];
  for (int i = 0; i < 3; ++i) {
    neck_[i] = make_conv(3, c, cfg.neck_channels[i], true, rng);
    c = cfg.neck_channels[i];
  }
  int hc = cfg.head_channels;
  heat_hidden_ = make_conv(3, c, hc, true, rng);
  heat_out_ = make_conv(1, hc, cfg.num_classes, false, rng);
  std::fill(heat_out_.bias.begin(), heat_out_.bias.end(), -2.19f);
  size_hidden_ = make_conv(3, c, hc, true, rng);
  size_out_ = make_conv(1, hc, 2, false, rng);
  offset_hidden_ = make_conv(3, c, hc, true, rng);
  offset_out_ = make_conv(1, hc, 2, false, rng);
}

std::vector<std::pair<std::string, centernet::conv*>> centernet::convs() {
  return {{"neck.reduce", &reduce_},
          {"neck.up0", &neck_[0]},
          {"neck.up1", &neck_[1]},
          {"neck.up2", &neck_[2]},
          {"heads.heat.hidden", &heat_hidden_},
          {"heads.heat.out", &heat_out_},
          {"heads.size.hidden", &size_hidden_},
          {"heads.size.out", &size_out_},
          {"heads.offset.hidden", &offset_hidden_},
          {"heads.offset.out", &offset_out_}};
}

caf::error centernet::collect(std::vector<tensor>& store, std::vector<std::string>& names) const {
  auto add = [&](const std::string& name, std::vector<int64_t> dims, const std::vector<float>& v) {
    auto t = tensor::from(kernels::shape(dims), v);
    if (!t)
      return t.error();
    store.push_back(std::move(*t));
    names.push_back(name);
    return caf::error{};
  };
  auto& layers = backbone_.layers();
  for (size_t i = 0; i < layers.size(); ++i) {
    auto& l = layers[i];
    std::vector<int64_t> dims = l.depthwise ? std::vector<int64_t>{l.k, l.k, l.cout}
                                            : std::vector<int64_t>{l.k, l.k, l.cin, l.cout};
    if (auto err = add("backbone." + std::to_string(i) + ".weight", dims, l.weights))
      return err;
    if (auto err = add("backbone." + std::to_string(i) + ".bias", {l.cout}, l.bias))
      return err;
  }
  for (auto& [name, c] : const_cast<centernet*>(this)->convs()) {
    if (auto err = add(name + ".weight", {c->k, c->k, c->cin, c->cout}, c->weights))
      return err;
    if (auto err = add(name + ".bias", {c->cout}, c->bias))
      return err;
  }
  return caf::none;
}

caf::error centernet::save(const std::string& path) const {
  std::vector<tensor> store;
  std::vector<std::string> names;
  if (auto err = collect(store, names))
    return err;
  std::vector<std::pair<std::string, const tensor*>> list;
  for (size_t i = 0; i < store.size(); ++i)
    list.emplace_back(names[i], &store[i]);
  return save_safetensors(path, list, {{"format", "comb.centernet"}});
}

caf::expected<std::string> centernet::encode(std::map<std::string, std::string> metadata) const {
  std::vector<tensor> store;
  std::vector<std::string> names;
  if (auto err = collect(store, names))
    return err;
  std::vector<std::pair<std::string, const tensor*>> list;
  for (size_t i = 0; i < store.size(); ++i)
    list.emplace_back(names[i], &store[i]);
  metadata.emplace("format", "comb.centernet");
  return encode_safetensors(list, metadata);
}

caf::expected<centernet> centernet::load(const std::string& path, const centernet_config& cfg,
                                         bool tf_padding) {
  auto file = load_safetensors(path);
  if (!file)
    return file.error();
  return decode(*file, cfg, tf_padding, "'" + path + "'");
}

caf::expected<centernet> centernet::decode(const safetensors_file& file,
                                           const centernet_config& cfg, bool tf_padding,
                                           const std::string& source) {
  mobilenet_v2_config bc;
  bc.num_classes = 1;
  bc.tf_padding = tf_padding;
  auto net = with_backbone(mobilenet_v2::random(bc, 0), cfg, 0);
  // The backbone's (unused) classifier keeps the width it was saved with: 1001 for a
  // backbone from the ImageNet TFLite model.
  auto cls = file.tensors.find("backbone." + std::to_string(net.backbone_.layers().size() - 1)
                               + ".bias");
  if (cls != file.tensors.end() && cls->second.rank() == 1 && cls->second.dim(0) > 1
      && cls->second.dim(0) <= 100000) {
    bc.num_classes = static_cast<int>(cls->second.dim(0));
    net = with_backbone(mobilenet_v2::random(bc, 0), cfg, 0);
  }
  auto take = [&](const std::string& name, const std::vector<int64_t>& dims,
                  std::vector<float>& out) -> caf::error {
    auto it = file.tensors.find(name);
    if (it == file.tensors.end())
      return make_error(errc::bad_model, "centernet " + source + ": tensor " + name + " missing");
    auto& t = it->second;
    if (t.dtype() != dtype::f32 || t.shape() != kernels::shape(dims))
      return make_error(errc::bad_model, "centernet " + source + ": tensor " + name + " is "
                                           + t.describe() + ", expected f32"
                                           + to_string(kernels::shape(dims)));
    out.assign(t.data<float>(), t.data<float>() + t.numel());
    return caf::none;
  };
  auto& layers = net.backbone_.layers();
  for (size_t i = 0; i < layers.size(); ++i) {
    auto& l = layers[i];
    std::vector<int64_t> dims = l.depthwise ? std::vector<int64_t>{l.k, l.k, l.cout}
                                            : std::vector<int64_t>{l.k, l.k, l.cin, l.cout};
    std::vector<float> w, b;
    if (auto err = take("backbone." + std::to_string(i) + ".weight", dims, w))
      return err;
    if (auto err = take("backbone." + std::to_string(i) + ".bias", {l.cout}, b))
      return err;
    if (auto err = net.backbone_.set_layer(i, std::move(w), std::move(b)))
      return err;
  }
  for (auto& [name, c] : net.convs()) {
    if (auto err = take(name + ".weight", {c->k, c->k, c->cin, c->cout}, c->weights))
      return err;
    if (auto err = take(name + ".bias", {c->cout}, c->bias))
      return err;
    c->packed = pack_conv2d_nhwc(c->weights.data(), c->k, c->k, c->cin, c->cout);
  }
  return net;
}

void centernet::run(const conv& c, const float* in, int n, int h, int w, float* out) const {
  conv2d_nhwc_params p;
  p.n = n;
  p.h = h;
  p.w = w;
  p.c = c.cin;
  p.kh = p.kw = c.k;
  p.pad_top = p.pad_left = c.k / 2;
  p.out_h = h;
  p.out_w = w;
  if (c.relu)
    p.lo = 0.0f;
  conv2d_nhwc(p, c.packed, in, c.bias.data(), out);
}

double centernet::flops(int h, int w) const {
  double total = backbone_.flops(h, w);
  auto conv_flops = [](const conv& c, int hh, int ww) {
    return 2.0 * hh * ww * c.k * c.k * c.cin * c.cout;
  };
  int fh = h / 32, fw = w / 32;
  total += conv_flops(reduce_, fh, fw);
  for (auto& c : neck_) {
    fh *= 2;
    fw *= 2;
    total += conv_flops(c, fh, fw);
  }
  for (auto* c :
       {&heat_hidden_, &heat_out_, &size_hidden_, &size_out_, &offset_hidden_, &offset_out_})
    total += conv_flops(*c, fh, fw);
  return total;
}

caf::expected<centernet_output> centernet::forward(const float* input, int batch, int h,
                                                   int w) const {
  centernet_output out;
  if (auto err = forward_into(input, batch, h, w, out))
    return err;
  return out;
}

caf::error centernet::forward_into(const float* input, int batch, int h, int w,
                                   centernet_output& out) const {
  if (batch <= 0 || h % 32 != 0 || w % 32 != 0 || h < 32 || w < 32)
    return make_error(errc::invalid_argument,
                      "centernet: input must be batch >= 1 with sides multiples of 32, got "
                        + std::to_string(batch) + "x" + std::to_string(h) + "x"
                        + std::to_string(w));
  // Intermediates live in thread-local buffers reused across calls.
  thread_local feature_map f;
  thread_local std::vector<float> a, b, hidden;
  if (auto err = backbone_.features_into(input, batch, h, w, f))
    return err;
  int fh = f.h, fw = f.w;
  a.resize(static_cast<size_t>(batch) * fh * fw * reduce_.cout);
  run(reduce_, f.data.data(), batch, fh, fw, a.data());
  int c = reduce_.cout;
  for (auto& n : neck_) {
    b.resize(static_cast<size_t>(batch) * 4 * fh * fw * c);
    upsample2x(a.data(), batch, fh, fw, c, b.data());
    fh *= 2;
    fw *= 2;
    a.resize(static_cast<size_t>(batch) * fh * fw * n.cout);
    run(n, b.data(), batch, fh, fw, a.data());
    c = n.cout;
  }
  out.n = batch;
  out.h = fh;
  out.w = fw;
  out.classes = cfg_.num_classes;
  size_t cells = static_cast<size_t>(batch) * fh * fw;
  hidden.resize(cells * cfg_.head_channels);
  auto head = [&](const conv& hid, const conv& last, std::vector<float>& dst) {
    run(hid, a.data(), batch, fh, fw, hidden.data());
    dst.resize(cells * last.cout);
    run(last, hidden.data(), batch, fh, fw, dst.data());
  };
  head(heat_hidden_, heat_out_, out.heat);
  for (auto& v : out.heat)
    v = 1.0f / (1.0f + std::exp(-v));
  head(size_hidden_, size_out_, out.size);
  head(offset_hidden_, offset_out_, out.offset);
  return caf::none;
}

caf::expected<std::vector<detection>> centernet::detect(const float* input, int h, int w, int k,
                                                        float threshold) const {
  thread_local centernet_output o;
  if (auto err = forward_into(input, 1, h, w, o))
    return err;
  return decode_centernet(o.heat.data(), o.size.data(), o.offset.data(), o.h, o.w, o.classes, k,
                          static_cast<float>(stride), threshold);
}

// --- through the backend interface ---------------------------------------------------------

std::vector<const centernet::conv*> centernet::conv_list() const {
  return {&reduce_,   &neck_[0],     &neck_[1],  &neck_[2],       &heat_hidden_,
          &heat_out_, &size_hidden_, &size_out_, &offset_hidden_, &offset_out_};
}

caf::expected<std::shared_ptr<const std::vector<tensor>>> centernet::weights_on(device dev) const {
  auto cache = device_weights_;
  std::lock_guard<std::mutex> g{cache->mtx};
  for (auto& [d, w] : cache->per_device)
    if (d == dev)
      return w;
  auto w = std::make_shared<std::vector<tensor>>();
  for (auto* c : conv_list()) {
    auto wt = tensor::from({c->k, c->k, c->cin, c->cout}, c->weights);
    if (!wt)
      return wt.error();
    auto bt = tensor::from({c->cout}, c->bias);
    if (!bt)
      return bt.error();
    for (auto* t : {&*wt, &*bt}) {
      auto placed = dev == device::cpu ? caf::expected<tensor>{*t} : t->to(dev);
      if (!placed)
        return placed.error();
      w->push_back(std::move(*placed));
    }
  }
  cache->per_device.emplace_back(dev, w);
  return std::shared_ptr<const std::vector<tensor>>{w};
}

namespace {

/// y = fn(x) on `be` when it runs `o`, else on the CPU backend with x copied there and y
/// copied back to be's device.
template <class Fn>
caf::error on_or_cpu(backend& be, op o, const tensor& x, tensor& y, Fn&& fn) {
  if (be.supports(o))
    return fn(be, x, y);
  auto hx = x.to(device::cpu);
  if (!hx)
    return hx.error();
  tensor hy;
  if (auto err = fn(cpu(), *hx, hy))
    return err;
  auto back = hy.to(be.device());
  if (!back)
    return back.error();
  y = std::move(*back);
  return caf::none;
}

/// A host copy of t's floats.
caf::error to_host(const tensor& t, std::vector<float>& out) {
  auto h = t.to(device::cpu);
  if (!h)
    return h.error();
  out.assign(h->data<float>(), h->data<float>() + h->numel());
  return caf::none;
}

} // namespace

caf::expected<centernet_output> centernet::forward(backend& be, const tensor& input) const {
  if (input.rank() != 4 || input.dim(1) % 32 != 0 || input.dim(2) % 32 != 0)
    return make_error(errc::invalid_argument,
                      "centernet: input must be [batch, h, w, 3] with sides multiples of 32, got "
                        + input.describe());
  auto f = backbone_.features(be, input);
  if (!f)
    return f.error();
  auto wts = weights_on(be.device());
  if (!wts)
    return wts.error();
  const auto& w = **wts;
  // Convolution i of conv_list(): "same" padding, stride 1, bias, then ReLU where it has one.
  auto run = [&](int i, const conv& c, const tensor& x) -> caf::expected<tensor> {
    conv2d_params p;
    p.pad_top = p.pad_left = p.pad_bottom = p.pad_right = c.k / 2;
    tensor y;
    if (auto err = be.conv2d(x, w[2 * i], &w[2 * i + 1], p, y))
      return err;
    if (!c.relu)
      return y;
    tensor act;
    if (auto err = be.bias_act(y, nullptr, activation::relu, act))
      return err;
    return act;
  };
  auto a = run(0, reduce_, *f);
  if (!a)
    return a.error();
  for (int i = 0; i < 3; ++i) {
    tensor up;
    upsample_params up_p;
    up_p.mode = upsample_mode::nearest;
    up_p.scale = 2;
    if (auto err = on_or_cpu(be, op::upsample, *a, up, [&](backend& b, const tensor& x, tensor& y) {
          return b.upsample(x, up_p, y);
        }))
      return err;
    a = run(1 + i, neck_[i], up);
    if (!a)
      return a.error();
  }
  centernet_output out;
  out.n = static_cast<int>(a->dim(0));
  out.h = static_cast<int>(a->dim(1));
  out.w = static_cast<int>(a->dim(2));
  out.classes = cfg_.num_classes;
  auto head = [&](int i, const conv& hid, const conv& last, bool sigmoid,
                  std::vector<float>& dst) -> caf::error {
    auto h = run(i, hid, *a);
    if (!h)
      return h.error();
    auto y = run(i + 1, last, *h);
    if (!y)
      return y.error();
    if (sigmoid) {
      tensor s;
      if (auto err = on_or_cpu(be, op::sigmoid, *y, s, [](backend& b, const tensor& x, tensor& r) {
            return b.sigmoid(x, r);
          }))
        return err;
      return to_host(s, dst);
    }
    return to_host(*y, dst);
  };
  if (auto err = head(4, heat_hidden_, heat_out_, true, out.heat))
    return err;
  if (auto err = head(6, size_hidden_, size_out_, false, out.size))
    return err;
  if (auto err = head(8, offset_hidden_, offset_out_, false, out.offset))
    return err;
  return out;
}

} // namespace comb::kernels
