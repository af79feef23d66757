// comb::kernels::mlp: dense + bias/ReLU layers as backend ops, activations kept for the
// backward pass, Adam state per parameter.
#include "kernels/models/mlp.hpp"

#include "kernels/cpu_backend.hpp"
#include "kernels/detail/param_init.hpp"
#include "kernels/detail/try.hpp"
#include "kernels/ops/dense.hpp"
#include "kernels/ops/softmax.hpp"
#include "kernels/safetensors.hpp"

#include <cmath>

namespace comb::kernels {

struct mlp::impl {
  mlp_config cfg;
  std::shared_ptr<backend> be;
  int64_t step = 0;
  std::vector<tensor> w, b; // per layer
  std::vector<tensor> gw, gb, mw, vw, mb, vb;
  std::vector<tensor> pre, post; // per layer: x W (no bias) and act(x W + b)
  /// The backend is the CPU one: hidden layers run as one fused op (dense_relu_cpu), the
  /// bias and ReLU applied in the GEMM's store instead of a second pass over x W.
  bool fused_cpu = false;
  tensor probs, d_logits;
  std::vector<tensor> d_post, d_pre;
  tensor input;

  size_t layers() const { return w.size(); }

  /// The forward pass into post; with probs, also the last layer's softmax into *probs.
  /// On the CPU backend hidden layers run fused (dense_relu_cpu), and when the last layer
  /// is narrow (a classifier head, <= 16 outputs) it runs with its softmax on each block of
  /// the last hidden layer's rows as soon as they are final (dense_relu_then_cpu).
  caf::error forward(const tensor& x, tensor* probs = nullptr) {
    auto& be_ = *be;
    input = x;
    pre.resize(layers()), post.resize(layers());
    const tensor* h = &x;
    for (size_t l = 0; l < layers(); ++l) {
      bool last = l + 1 == layers();
      if (last) {
        COMB_TRY(be_.dense(*h, w[l], &b[l], post[l]));
        if (probs)
          COMB_TRY(be_.softmax(post[l], *probs));
      } else if (fused_cpu && h->dtype() == dtype::f32 && h->device() == device::cpu
                 && h->rank() == 2 && h->dim(1) == w[l].dim(0)) {
        const int64_t rows = h->dim(0), in = h->dim(1), out = w[l].dim(1);
        COMB_TRY(post[l].ensure({rows, out}, dtype::f32, device::cpu));
        float* y = post[l].data<float>();
        if (l + 2 == layers() && w[l + 1].dim(1) <= 16) {
          const int64_t classes = w[l + 1].dim(1);
          COMB_TRY(post[l + 1].ensure({rows, classes}, dtype::f32, device::cpu));
          if (probs)
            COMB_TRY(probs->ensure({rows, classes}, dtype::f32, device::cpu));
          float* logits = post[l + 1].data<float>();
          float* p = probs ? probs->data<float>() : nullptr;
          const float *w2 = w[l + 1].data<float>(), *b2 = b[l + 1].data<float>();
          dense_relu_then_cpu(h->data<float>(), rows, in, w[l].data<float>(), out,
                              b[l].data<float>(), y, [&](int64_t r0, int64_t r1) {
                                dense_cpu(y + r0 * out, r1 - r0, out, w2, classes, b2,
                                          logits + r0 * classes);
                                if (p)
                                  softmax_cpu(logits + r0 * classes, r1 - r0, classes,
                                              p + r0 * classes);
                              });
          return {};
        }
        dense_relu_cpu(h->data<float>(), rows, in, w[l].data<float>(), out, b[l].data<float>(),
                       y);
      } else {
        COMB_TRY(be_.dense(*h, w[l], nullptr, pre[l]));
        COMB_TRY(be_.bias_act(pre[l], &b[l], activation::relu, post[l]));
      }
      h = &post[l];
    }
    return {};
  }
};

mlp::mlp() = default;
mlp::mlp(mlp&&) noexcept = default;
mlp& mlp::operator=(mlp&&) noexcept = default;
mlp::~mlp() = default;

caf::expected<mlp> mlp::create(const mlp_config& cfg, std::shared_ptr<backend> be) {
  if (cfg.sizes.size() < 2)
    return make_error(errc::invalid_argument, "mlp config: needs at least 2 sizes");
  for (auto s : cfg.sizes)
    if (s < 1 || s > 65536)
      return make_error(errc::invalid_argument,
                        "mlp config: size " + std::to_string(s) + " outside 1..65536");
  if (!(cfg.adam.lr > 0))
    return make_error(errc::invalid_argument, "mlp config: Adam learning rate must be positive");
  if (!be)
    be = backends().front();
  mlp m;
  m.impl_ = std::make_unique<impl>();
  auto& im = *m.impl_;
  im.cfg = cfg;
  im.be = be;
  im.fused_cpu = dynamic_cast<cpu_backend*>(be.get()) != nullptr;
  auto dev = be->device();
  uint64_t state = cfg.seed;
  for (size_t l = 0; l + 1 < cfg.sizes.size(); ++l) {
    auto in = cfg.sizes[l], out = cfg.sizes[l + 1];
    float bound = 1.0f / std::sqrt(static_cast<float>(in));
    auto w = tensor::make({in, out});
    auto b = tensor::make({out});
    if (!w || !b)
      return w ? b.error() : w.error();
    detail::fill_uniform(*w, bound, state);
    detail::fill_uniform(*b, bound, state);
    if (dev != device::cpu) {
      w = w->to(dev);
      b = b->to(dev);
      if (!w || !b)
        return w ? b.error() : w.error();
    }
    im.w.push_back(std::move(*w));
    im.b.push_back(std::move(*b));
    for (auto* list : {&im.gw, &im.mw, &im.vw}) {
      auto z = tensor::make({in, out}, dtype::f32, dev);
      if (!z)
        return z.error();
      list->push_back(std::move(*z));
    }
    for (auto* list : {&im.gb, &im.mb, &im.vb}) {
      auto z = tensor::make({out}, dtype::f32, dev);
      if (!z)
        return z.error();
      list->push_back(std::move(*z));
    }
  }
  return m;
}

caf::expected<tensor> mlp::forward(const tensor& x) {
  auto xd = x.device() == impl_->be->device() ? caf::expected<tensor>{x}
                                              : x.to(impl_->be->device());
  if (!xd)
    return xd.error();
  COMB_TRY(impl_->forward(*xd, &impl_->probs));
  return impl_->probs.clone();
}

caf::expected<float> mlp::loss_and_gradients(const tensor& x, const tensor& labels) {
  auto& im = *impl_;
  auto dev = im.be->device();
  auto xd = x.device() == dev ? caf::expected<tensor>{x} : x.to(dev);
  auto ld = labels.device() == dev ? caf::expected<tensor>{labels} : labels.to(dev);
  if (!xd || !ld)
    return xd ? ld.error() : xd.error();
  COMB_TRY(im.forward(*xd));
  auto& be = *im.be;
  auto loss = be.softmax_cross_entropy(im.post.back(), *ld, im.probs);
  if (!loss)
    return loss;
  COMB_TRY(be.softmax_cross_entropy_backward(im.probs, *ld, im.d_logits));
  size_t n = im.layers();
  im.d_post.resize(n), im.d_pre.resize(n);
  const tensor* g = &im.d_logits;
  size_t l = n;
  // On the CPU backend a narrow head (<= 16 outputs, a classifier) over a ReLU layer runs its
  // backward and that ReLU's as one op (dense_relu_narrow_backward_cpu): its two products by
  // register tiles, not sgemms of inner or outer size <= 16.
  if (im.fused_cpu && n >= 2 && im.w[n - 1].dim(1) <= 16) {
    const tensor& h = im.post[n - 2];
    const tensor& w = im.w[n - 1];
    if (h.dtype() == dtype::f32 && h.device() == device::cpu && h.rank() == 2
        && g->rank() == 2 && g->dim(0) == h.dim(0) && g->dim(1) == w.dim(1)
        && h.dim(1) == w.dim(0)) {
      const int64_t rows = h.dim(0), width = h.dim(1), classes = w.dim(1);
      COMB_TRY(im.d_pre[n - 2].ensure({rows, width}, dtype::f32, device::cpu));
      dense_relu_narrow_backward_cpu(h.data<float>(), rows, width, w.data<float>(), classes,
                                     g->data<float>(), im.d_pre[n - 2].data<float>(),
                                     im.gw[n - 1].data<float>(), im.gb[n - 1].data<float>(),
                                     im.gb[n - 2].data<float>());
      COMB_TRY(
        be.dense_backward(n >= 3 ? im.post[n - 3] : im.input, im.w[n - 2], im.d_pre[n - 2],
                          n >= 3 ? &im.d_post[n - 3] : nullptr, im.gw[n - 2], nullptr));
      if (n == 2)
        return loss;
      g = &im.d_post[n - 3];
      l = n - 2;
    }
  }
  while (l-- > 0) {
    const tensor& in = l == 0 ? im.input : im.post[l - 1];
    if (l + 1 != n) {
      // g is d post[l]; through ReLU and bias.
      COMB_TRY(be.bias_act_backward(im.post[l], *g, activation::relu, im.d_pre[l], &im.gb[l]));
      g = &im.d_pre[l];
      COMB_TRY(
        be.dense_backward(in, im.w[l], *g, l ? &im.d_post[l - 1] : nullptr, im.gw[l], nullptr));
    } else {
      COMB_TRY(
        be.dense_backward(in, im.w[l], *g, l ? &im.d_post[l - 1] : nullptr, im.gw[l], &im.gb[l]));
    }
    if (l)
      g = &im.d_post[l - 1];
  }
  return loss;
}

caf::expected<float> mlp::train_step(const tensor& x, const tensor& labels) {
  auto loss = loss_and_gradients(x, labels);
  if (!loss)
    return loss;
  auto& im = *impl_;
  ++im.step;
  for (size_t l = 0; l < im.layers(); ++l) {
    COMB_TRY(im.be->adam_step(im.w[l], im.gw[l], im.mw[l], im.vw[l], im.step, im.cfg.adam));
    COMB_TRY(im.be->adam_step(im.b[l], im.gb[l], im.mb[l], im.vb[l], im.step, im.cfg.adam));
  }
  return loss;
}

std::vector<std::pair<std::string, tensor*>> mlp::parameters() {
  std::vector<std::pair<std::string, tensor*>> r;
  for (size_t l = 0; l < impl_->layers(); ++l) {
    r.emplace_back("fc" + std::to_string(l) + ".weight", &impl_->w[l]);
    r.emplace_back("fc" + std::to_string(l) + ".bias", &impl_->b[l]);
  }
  return r;
}

std::vector<std::pair<std::string, tensor*>> mlp::gradients() {
  std::vector<std::pair<std::string, tensor*>> r;
  for (size_t l = 0; l < impl_->layers(); ++l) {
    r.emplace_back("fc" + std::to_string(l) + ".weight", &impl_->gw[l]);
    r.emplace_back("fc" + std::to_string(l) + ".bias", &impl_->gb[l]);
  }
  return r;
}

caf::error mlp::save(const std::string& path, const std::map<std::string, std::string>& metadata) {
  std::vector<tensor> host;
  auto ps = parameters();
  for (auto& [n, t] : ps) {
    auto h = t->to(device::cpu);
    if (!h)
      return h.error();
    host.push_back(std::move(*h));
  }
  std::vector<std::pair<std::string, const tensor*>> list;
  for (size_t i = 0; i < ps.size(); ++i)
    list.emplace_back(ps[i].first, &host[i]);
  return save_safetensors(path, list, metadata);
}

caf::error mlp::load_weights(const std::string& path) {
  auto file = load_safetensors(path);
  if (!file)
    return file.error();
  return assign_parameters(*file, parameters());
}

const mlp_config& mlp::config() const {
  return impl_->cfg;
}

double mlp::forward_flops(int64_t batch) const {
  double f = 0;
  for (size_t l = 0; l + 1 < impl_->cfg.sizes.size(); ++l)
    f += 2.0 * batch * static_cast<double>(impl_->cfg.sizes[l]) * impl_->cfg.sizes[l + 1];
  return f;
}

double mlp::train_flops(int64_t batch) const {
  const auto& sizes = impl_->cfg.sizes;
  double first = 2.0 * batch * static_cast<double>(sizes[0]) * sizes[1];
  return 3 * forward_flops(batch) - first;
}

} // namespace comb::kernels
