// comb::kernels::textcnn: layers as a sequence of backend ops, activations kept for the
// backward pass, Adam state per parameter. Where the backend has the fused conv1d_max op
// (the CPU backend), each branch is one conv1d + max + bias + ReLU pass and its gradient
// follows only the arg-max windows; elsewhere conv1d, max_over_time and bias_act run apart.
#include "kernels/models/textcnn.hpp"

#include "kernels/detail/param_init.hpp"
#include "kernels/detail/try.hpp"
#include "kernels/safetensors.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <charconv>
#include <limits>

namespace comb::kernels {

namespace {

/// Weights versions, unique over all models of the process.
uint64_t next_weights_version() {
  static std::atomic<uint64_t> counter{0};
  return ++counter;
}

} // namespace

struct textcnn::impl {
  textcnn_config cfg;
  std::shared_ptr<backend> be;
  int64_t step = 0;
  uint64_t version = next_weights_version();
  // Parameters, gradients and Adam moments, in parameter order.
  tensor emb;
  std::vector<tensor> conv_w, conv_b;
  tensor dense_w, dense_b;
  std::vector<tensor> grads, adam_m, adam_v;
  // Activations.
  tensor x;                                          // [B, L, E]
  std::vector<tensor> conv_out, pooled, argmax, act; // per kernel size
  tensor features, dropped, mask, logits, probs;
  // Backward scratch.
  tensor d_logits, d_dropped, d_features, d_embedded, d_tmp;
  /// Per-sample loss weights of the step being taken (train_step), else null.
  const std::vector<float>* weights = nullptr;
  /// Each row's own length (i32 [B] on the host) for the pass being run, when given.
  tensor lengths_t;
  bool use_lengths = false;
  std::vector<tensor> d_act, d_pooled, d_conv, d_x;

  /// Whether the backend runs the fused conv1d + max-over-time ops (else three ops each).
  bool fused() const {
    return be->supports(op::conv1d_max) && be->supports(op::conv1d_max_backward);
  }

  std::vector<tensor*> params() {
    std::vector<tensor*> p{&emb};
    for (size_t i = 0; i < conv_w.size(); ++i) {
      p.push_back(&conv_w[i]);
      p.push_back(&conv_b[i]);
    }
    p.push_back(&dense_w);
    p.push_back(&dense_b);
    return p;
  }

  std::vector<std::string> names() const {
    std::vector<std::string> n{"embedding.weight"};
    for (auto k : cfg.kernel_sizes) {
      n.push_back("conv" + std::to_string(k) + ".weight");
      n.push_back("conv" + std::to_string(k) + ".bias");
    }
    n.push_back("dense.weight");
    n.push_back("dense.bias");
    return n;
  }

  /// Sets lengths_t / use_lengths for a pass over `tokens` (null: every row is whole).
  /// Lengths equal to the padded length change nothing and are dropped.
  caf::error set_lengths(const tensor& tokens, const std::vector<int64_t>* lengths) {
    use_lengths = false;
    if (!lengths)
      return {};
    const int64_t rows = tokens.dim(0), len = tokens.dim(1);
    if (static_cast<int64_t>(lengths->size()) != rows)
      return make_error(errc::invalid_argument, "textcnn: " + std::to_string(lengths->size())
                                                  + " lengths for a batch of "
                                                  + std::to_string(rows));
    const int64_t widest = *std::max_element(cfg.kernel_sizes.begin(), cfg.kernel_sizes.end());
    std::vector<int32_t> l(static_cast<size_t>(rows));
    bool all_whole = true;
    for (int64_t r = 0; r < rows; ++r) {
      auto n = (*lengths)[static_cast<size_t>(r)];
      if (n < widest || n > len)
        return make_error(errc::invalid_argument,
                          "textcnn: length " + std::to_string(n) + " of row " + std::to_string(r)
                            + " outside " + std::to_string(widest) + ".." + std::to_string(len)
                            + " (the widest kernel to the padded length)");
      l[static_cast<size_t>(r)] = static_cast<int32_t>(n);
      all_whole = all_whole && n == len;
    }
    if (all_whole)
      return {};
    auto t = tensor::from({rows}, l);
    if (!t)
      return t.error();
    lengths_t = std::move(*t);
    use_lengths = true;
    return {};
  }

  /// Unfused branches with lengths: the windows of conv_out [B, T', F] past each row's
  /// length become -inf, so that the max over time (and, through its argmax, the backward
  /// pass) never takes them. Runs on the host (a device's output is copied there and back).
  caf::error mask_windows(tensor& conv, int64_t k) {
    const bool on_cpu = conv.device() == device::cpu;
    auto host = on_cpu ? caf::expected<tensor>{conv} : conv.to(device::cpu);
    if (!host)
      return host.error();
    const int64_t rows = conv.dim(0), t_out = conv.dim(1), f = conv.dim(2);
    const int32_t* l = lengths_t.data<int32_t>();
    float* c = host->data<float>();
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t t = std::max<int64_t>(l[r] - k + 1, 0); t < t_out; ++t)
        std::fill(c + (r * t_out + t) * f, c + (r * t_out + t + 1) * f,
                  -std::numeric_limits<float>::infinity());
    if (!on_cpu) {
      auto back = host->to(conv.device());
      if (!back)
        return back.error();
      conv = std::move(*back);
    }
    return {};
  }

  caf::error forward(const tensor& tokens, bool train) {
    auto& b = *be;
    COMB_TRY(b.embedding(tokens, emb, x));
    size_t nk = conv_w.size();
    conv_out.resize(nk), pooled.resize(nk), argmax.resize(nk), act.resize(nk);
    std::vector<const tensor*> parts;
    for (size_t i = 0; i < nk; ++i) {
      if (fused()) {
        // One pass: the [B, T', F] convolution output never reaches memory.
        COMB_TRY(b.conv1d_max(x, conv_w[i], &conv_b[i], activation::relu, act[i], argmax[i],
                              use_lengths ? &lengths_t : nullptr));
        parts.push_back(&act[i]);
        continue;
      }
      // Bias and ReLU commute with the max over time, so they run on [B, F] only.
      COMB_TRY(b.conv1d(x, conv_w[i], nullptr, conv1d_params{}, conv_out[i]));
      if (use_lengths)
        COMB_TRY(mask_windows(conv_out[i], cfg.kernel_sizes[i]));
      COMB_TRY(b.max_over_time(conv_out[i], 0, pooled[i], argmax[i]));
      COMB_TRY(b.bias_act(pooled[i], &conv_b[i], activation::relu, act[i]));
      parts.push_back(&act[i]);
    }
    COMB_TRY(b.concat(parts, features));
    const tensor* h = &features;
    if (train && cfg.dropout > 0) {
      COMB_TRY(b.dropout(features, cfg.dropout, cfg.seed * 1000003u + static_cast<uint64_t>(step),
                         dropped, mask));
      h = &dropped;
    }
    COMB_TRY(b.dense(*h, dense_w, &dense_b, logits));
    return {};
  }

  /// Per-sample loss weights: the mean loss's logit gradient (p - y) / B, row b scaled by
  /// w_b * B / sum(w), is the gradient of sum(w_b * loss_b) / sum(w). The rows are few
  /// (batch x classes), so a device's are weighed on the host and copied back.
  caf::error weigh_rows(const std::vector<float>& w) {
    const int64_t rows = d_logits.dim(0);
    if (static_cast<int64_t>(w.size()) != rows)
      return make_error(errc::invalid_argument, "textcnn: " + std::to_string(w.size())
                                                  + " sample weights for a batch of "
                                                  + std::to_string(rows));
    double sum = 0;
    for (float x : w) {
      if (!(x >= 0.0f) || !std::isfinite(x))
        return make_error(errc::invalid_argument, "textcnn: sample weight " + std::to_string(x)
                                                    + " is not finite and >= 0");
      sum += x;
    }
    if (!(sum > 0))
      return make_error(errc::invalid_argument, "textcnn: sample weights sum to 0");
    const bool on_cpu = d_logits.device() == device::cpu;
    auto host = on_cpu ? caf::expected<tensor>{d_logits} : d_logits.to(device::cpu);
    if (!host)
      return host.error();
    float* g = host->data<float>();
    const int64_t cols = d_logits.numel() / std::max<int64_t>(rows, 1);
    for (int64_t r = 0; r < rows; ++r) {
      auto f = static_cast<float>(w[static_cast<size_t>(r)] * static_cast<double>(rows) / sum);
      for (int64_t c = 0; c < cols; ++c)
        g[r * cols + c] *= f;
    }
    if (!on_cpu) {
      auto back = host->to(d_logits.device());
      if (!back)
        return back.error();
      d_logits = std::move(*back);
    }
    return {};
  }

  caf::expected<float> loss_and_gradients(const tensor& tokens, const tensor& labels, bool train) {
    auto& b = *be;
    COMB_TRY(forward(tokens, train));
    auto loss = b.softmax_cross_entropy(logits, labels, probs);
    if (!loss)
      return loss.error();
    bool dropped_used = train && cfg.dropout > 0;
    const tensor& h = dropped_used ? dropped : features;
    size_t nk = conv_w.size();
    // grads order: emb, (conv_w, conv_b) per k, dense_w, dense_b.
    tensor& g_dense_w = grads[1 + 2 * nk];
    tensor& g_dense_b = grads[2 + 2 * nk];
    COMB_TRY(b.softmax_cross_entropy_backward(probs, labels, d_logits));
    if (weights)
      COMB_TRY(weigh_rows(*weights));
    COMB_TRY(b.dense_backward(h, dense_w, d_logits, &d_dropped, g_dense_w, &g_dense_b));
    if (dropped_used)
      COMB_TRY(b.dropout_backward(d_dropped, mask, cfg.dropout, d_features));
    const tensor& df = dropped_used ? d_features : d_dropped;
    d_act.resize(nk), d_pooled.resize(nk), d_conv.resize(nk), d_x.resize(nk);
    std::vector<int64_t> widths(nk, cfg.filters);
    std::vector<tensor*> parts;
    for (auto& t : d_act)
      parts.push_back(&t);
    COMB_TRY(b.concat_backward(df, widths, parts));
    if (fused()) {
      // Each branch adds its input gradient (only its arg-max windows) into d_embedded.
      COMB_TRY(d_embedded.ensure(x.shape(), dtype::f32, b.device()));
      COMB_TRY(d_embedded.zero());
      for (size_t i = 0; i < nk; ++i)
        COMB_TRY(b.conv1d_max_backward(x, conv_w[i], act[i], argmax[i], d_act[i], activation::relu,
                                       &d_embedded, grads[1 + 2 * i], &grads[2 + 2 * i]));
      COMB_TRY(b.embedding_backward(tokens, d_embedded, cfg.vocab, grads[0]));
      return *loss;
    }
    for (size_t i = 0; i < nk; ++i) {
      COMB_TRY(
        b.bias_act_backward(act[i], d_act[i], activation::relu, d_pooled[i], &grads[2 + 2 * i]));
      COMB_TRY(b.max_over_time_backward(d_pooled[i], argmax[i], conv_out[i].dim(1), d_conv[i]));
      COMB_TRY(b.conv1d_backward(x, conv_w[i], d_conv[i], conv1d_params{}, &d_x[i],
                                 grads[1 + 2 * i], nullptr));
    }
    const tensor* dx = &d_x[0];
    for (size_t i = 1; i < nk; ++i) {
      COMB_TRY(b.add(*dx, d_x[i], i % 2 ? d_embedded : d_tmp));
      dx = i % 2 ? &d_embedded : &d_tmp;
    }
    COMB_TRY(b.embedding_backward(tokens, *dx, cfg.vocab, grads[0]));
    return *loss;
  }
};

textcnn::textcnn() = default;
textcnn::textcnn(textcnn&&) noexcept = default;
textcnn& textcnn::operator=(textcnn&&) noexcept = default;
textcnn::~textcnn() = default;

namespace {

caf::error check_config(const textcnn_config& c) {
  auto bad = [](const std::string& what) {
    return make_error(errc::invalid_argument, "textcnn config: " + what);
  };
  if (c.vocab < 2 || c.vocab > (int64_t{1} << 24))
    return bad("vocab " + std::to_string(c.vocab) + " outside 2..2^24");
  if (c.embed < 1 || c.embed > 4096)
    return bad("embed " + std::to_string(c.embed) + " outside 1..4096");
  if (c.filters < 1 || c.filters > 4096)
    return bad("filters " + std::to_string(c.filters) + " outside 1..4096");
  if (c.classes < 2 || c.classes > 65536)
    return bad("classes " + std::to_string(c.classes) + " outside 2..65536");
  if (c.seq_len < 1 || c.seq_len > (int64_t{1} << 20))
    return bad("seq_len " + std::to_string(c.seq_len) + " outside 1..2^20");
  if (c.kernel_sizes.empty() || c.kernel_sizes.size() > 16)
    return bad("needs 1..16 kernel sizes");
  for (size_t i = 0; i < c.kernel_sizes.size(); ++i) {
    auto k = c.kernel_sizes[i];
    if (k < 1 || k > c.seq_len || k > 64)
      return bad("kernel size " + std::to_string(k) + " outside 1..min(64, seq_len)");
    for (size_t j = 0; j < i; ++j)
      if (c.kernel_sizes[j] == k)
        return bad("kernel size " + std::to_string(k) + " repeated");
  }
  if (!(c.dropout >= 0 && c.dropout < 1))
    return bad("dropout " + std::to_string(c.dropout) + " outside [0, 1)");
  if (!(c.adam.lr > 0))
    return bad("Adam learning rate must be positive");
  return {};
}

/// Allocates a CPU tensor, fills it, moves it to the backend's device.
caf::expected<tensor> init_param(const shape& s, float bound, uint64_t& state, device dev) {
  auto t = tensor::make(s);
  if (!t)
    return t;
  if (bound > 0)
    detail::fill_uniform(*t, bound, state);
  if (dev == device::cpu)
    return t;
  return t->to(dev);
}

} // namespace

caf::expected<textcnn> textcnn::create(const textcnn_config& cfg, std::shared_ptr<backend> be) {
  COMB_TRY(check_config(cfg));
  if (!be)
    be = backends().front();
  textcnn m;
  m.impl_ = std::make_unique<impl>();
  auto& im = *m.impl_;
  im.cfg = cfg;
  im.be = be;
  auto dev = be->device();
  uint64_t state = cfg.seed;
  auto emb = init_param({cfg.vocab, cfg.embed}, 1.0f, state, dev);
  if (!emb)
    return emb.error();
  im.emb = std::move(*emb);
  for (auto k : cfg.kernel_sizes) {
    float bound = 1.0f / std::sqrt(static_cast<float>(k * cfg.embed));
    auto w = init_param({k, cfg.embed, cfg.filters}, bound, state, dev);
    auto b = init_param({cfg.filters}, bound, state, dev);
    if (!w || !b)
      return w ? b.error() : w.error();
    im.conv_w.push_back(std::move(*w));
    im.conv_b.push_back(std::move(*b));
  }
  int64_t feat = static_cast<int64_t>(cfg.kernel_sizes.size()) * cfg.filters;
  float bound = 1.0f / std::sqrt(static_cast<float>(feat));
  auto w = init_param({feat, cfg.classes}, bound, state, dev);
  auto b = init_param({cfg.classes}, bound, state, dev);
  if (!w || !b)
    return w ? b.error() : w.error();
  im.dense_w = std::move(*w);
  im.dense_b = std::move(*b);
  for (auto* p : im.params()) {
    for (auto* list : {&im.grads, &im.adam_m, &im.adam_v}) {
      auto z = tensor::make(p->shape(), dtype::f32, dev);
      if (!z)
        return z.error();
      list->push_back(std::move(*z));
    }
  }
  return m;
}

namespace {

caf::expected<tensor> on_device(const tensor& t, device dev) {
  if (t.device() == dev)
    return t;
  return t.to(dev);
}

} // namespace

caf::expected<tensor> textcnn::forward(const tensor& tokens) {
  return forward(tokens, nullptr);
}

caf::expected<tensor> textcnn::forward(const tensor& tokens, const std::vector<int64_t>* lengths) {
  auto dev = impl_->be->device();
  auto tk = on_device(tokens, dev);
  if (!tk)
    return tk.error();
  if (tk->rank() != 2)
    return make_error(errc::invalid_argument,
                      "textcnn: tokens " + tk->describe() + " are not [batch, len]");
  COMB_TRY(impl_->set_lengths(*tk, lengths));
  COMB_TRY(impl_->forward(*tk, /*train=*/false));
  COMB_TRY(impl_->be->softmax(impl_->logits, impl_->probs));
  return impl_->probs.clone();
}

caf::expected<std::vector<float>> textcnn::predict(const std::vector<int32_t>& tokens,
                                                   int64_t batch,
                                                   const std::vector<int64_t>* lengths) {
  if (batch < 1 || tokens.size() % static_cast<size_t>(batch) != 0)
    return make_error(errc::invalid_argument, "textcnn::predict: " + std::to_string(tokens.size())
                                                + " token ids do not split into "
                                                + std::to_string(batch) + " rows");
  auto t = tensor::from({batch, static_cast<int64_t>(tokens.size()) / batch}, tokens);
  if (!t)
    return t.error();
  auto p = forward(*t, lengths);
  if (!p)
    return p.error();
  auto host = p->device() == device::cpu ? caf::expected<tensor>{*p} : p->to(device::cpu);
  if (!host)
    return host.error();
  auto* d = host->data<float>();
  return std::vector<float>(d, d + host->numel());
}

caf::expected<float> textcnn::loss_and_gradients(const tensor& tokens, const tensor& labels,
                                                 bool train, const std::vector<int64_t>* lengths) {
  auto dev = impl_->be->device();
  auto tk = on_device(tokens, dev);
  auto lb = on_device(labels, dev);
  if (!tk || !lb)
    return tk ? lb.error() : tk.error();
  if (lb->rank() != 1 || tk->rank() != 2 || lb->dim(0) != tk->dim(0))
    return make_error(errc::invalid_argument, "textcnn: labels " + lb->describe()
                                                + " do not match tokens " + tk->describe());
  COMB_TRY(impl_->set_lengths(*tk, lengths));
  return impl_->loss_and_gradients(*tk, *lb, train);
}

caf::expected<float> textcnn::train_step(const tensor& tokens, const tensor& labels) {
  return train_step(tokens, labels, nullptr);
}

caf::expected<float> textcnn::train_step(const tensor& tokens, const tensor& labels,
                                         const std::vector<float>* weights,
                                         const std::vector<int64_t>* lengths) {
  // The weights reach the backward pass through the model for this one step.
  impl_->weights = weights;
  auto loss = loss_and_gradients(tokens, labels, /*train=*/true, lengths);
  impl_->weights = nullptr;
  if (!loss)
    return loss;
  auto& im = *impl_;
  ++im.step;
  auto ps = im.params();
  for (size_t i = 0; i < ps.size(); ++i)
    COMB_TRY(
      im.be->adam_step(*ps[i], im.grads[i], im.adam_m[i], im.adam_v[i], im.step, im.cfg.adam));
  im.version = next_weights_version();
  return loss;
}

caf::expected<float> textcnn::train_step(const std::vector<int32_t>& tokens,
                                         const std::vector<int32_t>& labels,
                                         const std::vector<float>* weights,
                                         const std::vector<int64_t>* lengths) {
  auto batch = static_cast<int64_t>(labels.size());
  if (batch < 1 || tokens.size() % labels.size() != 0)
    return make_error(errc::invalid_argument,
                      "textcnn::train_step: " + std::to_string(tokens.size())
                        + " token ids do not split into " + std::to_string(batch) + " rows");
  auto t = tensor::from({batch, static_cast<int64_t>(tokens.size()) / batch}, tokens);
  auto l = tensor::from({batch}, labels);
  if (!t || !l)
    return t ? l.error() : t.error();
  return train_step(*t, *l, weights, lengths);
}

std::vector<std::pair<std::string, tensor*>> textcnn::parameters() {
  weights_changed();
  std::vector<std::pair<std::string, tensor*>> r;
  auto n = impl_->names();
  auto p = impl_->params();
  for (size_t i = 0; i < p.size(); ++i)
    r.emplace_back(n[i], p[i]);
  return r;
}

std::vector<std::pair<std::string, const tensor*>> textcnn::parameters() const {
  std::vector<std::pair<std::string, const tensor*>> r;
  auto n = impl_->names();
  auto p = impl_->params();
  for (size_t i = 0; i < p.size(); ++i)
    r.emplace_back(n[i], p[i]);
  return r;
}

uint64_t textcnn::weights_version() const {
  return impl_->version;
}

void textcnn::weights_changed() {
  impl_->version = next_weights_version();
}

caf::error textcnn::set_seq_len(int64_t seq_len) {
  auto cfg = impl_->cfg;
  cfg.seq_len = seq_len;
  COMB_TRY(check_config(cfg));
  impl_->cfg.seq_len = seq_len;
  return {};
}

caf::error textcnn::set_learning_rate(float lr) {
  auto cfg = impl_->cfg;
  cfg.adam.lr = lr;
  COMB_TRY(check_config(cfg));
  impl_->cfg.adam.lr = lr;
  return {};
}

std::vector<std::pair<std::string, tensor*>> textcnn::gradients() {
  std::vector<std::pair<std::string, tensor*>> r;
  auto n = impl_->names();
  for (size_t i = 0; i < impl_->grads.size(); ++i)
    r.emplace_back(n[i], &impl_->grads[i]);
  return r;
}

namespace {

std::map<std::string, std::string> config_metadata(const textcnn_config& c) {
  std::string ks;
  for (size_t i = 0; i < c.kernel_sizes.size(); ++i)
    ks += (i ? "," : "") + std::to_string(c.kernel_sizes[i]);
  char lr[32]; // the shortest text that reads back as the same float
  auto lr_end = std::to_chars(lr, lr + sizeof(lr), c.adam.lr).ptr;
  return {{"textcnn.vocab", std::to_string(c.vocab)},
          {"textcnn.embed", std::to_string(c.embed)},
          {"textcnn.seq_len", std::to_string(c.seq_len)},
          {"textcnn.filters", std::to_string(c.filters)},
          {"textcnn.kernel_sizes", ks},
          {"textcnn.classes", std::to_string(c.classes)},
          {"textcnn.dropout", std::to_string(c.dropout)},
          {"textcnn.seed", std::to_string(c.seed)},
          {"textcnn.learning_rate", std::string(lr, lr_end)}};
}

caf::expected<textcnn_config> config_from(const std::map<std::string, std::string>& m) {
  textcnn_config c;
  try {
    c.vocab = std::stoll(m.at("textcnn.vocab"));
    c.embed = std::stoll(m.at("textcnn.embed"));
    c.seq_len = std::stoll(m.at("textcnn.seq_len"));
    c.filters = std::stoll(m.at("textcnn.filters"));
    c.classes = std::stoll(m.at("textcnn.classes"));
    c.dropout = std::stof(m.at("textcnn.dropout"));
    c.seed = std::stoull(m.at("textcnn.seed"));
    if (auto lr = m.find("textcnn.learning_rate"); lr != m.end())
      c.adam.lr = std::stof(lr->second);
    c.kernel_sizes.clear();
    std::string ks = m.at("textcnn.kernel_sizes");
    for (size_t p = 0; p < ks.size();) {
      auto comma = ks.find(',', p);
      c.kernel_sizes.push_back(std::stoll(ks.substr(p, comma - p)));
      p = comma == std::string::npos ? ks.size() : comma + 1;
    }
  } catch (const std::exception&) {
    return make_error(errc::bad_model,
                      "textcnn weights: the textcnn.* metadata is missing or not numbers");
  }
  return c;
}

} // namespace

caf::expected<std::string> textcnn::to_bytes(const std::map<std::string, std::string>& metadata) {
  auto meta = metadata;
  for (auto& [k, v] : config_metadata(impl_->cfg))
    meta[k] = v;
  std::vector<tensor> host;
  auto ps = parameters();
  for (auto& [n, t] : ps) {
    auto h = t->device() == device::cpu ? caf::expected<tensor>{*t} : t->to(device::cpu);
    if (!h)
      return h.error();
    host.push_back(std::move(*h));
  }
  std::vector<std::pair<std::string, const tensor*>> list;
  for (size_t i = 0; i < ps.size(); ++i)
    list.emplace_back(ps[i].first, &host[i]);
  return encode_safetensors(list, meta);
}

caf::error textcnn::save(const std::string& path,
                         const std::map<std::string, std::string>& metadata) {
  auto bytes = to_bytes(metadata);
  if (!bytes)
    return bytes.error();
  auto file = decode_safetensors(*bytes);
  if (!file)
    return file.error();
  std::vector<std::pair<std::string, const tensor*>> list;
  for (auto& [n, t] : parameters())
    list.emplace_back(n, &file->tensors.at(n));
  return save_safetensors(path, list, file->metadata);
}

namespace {

caf::expected<textcnn> from_file(safetensors_file file, std::shared_ptr<backend> be,
                                 std::map<std::string, std::string>* metadata) {
  auto cfg = config_from(file.metadata);
  if (!cfg)
    return cfg.error();
  auto m = textcnn::create(*cfg, std::move(be));
  if (!m)
    return make_error(errc::bad_model, "textcnn weights: " + describe(m.error()));
  COMB_TRY(assign_parameters(file, m->parameters()));
  for (auto& [name, t] : file.tensors) { // all f32 and the model's: assign_parameters checked
    auto* d = t.data<float>();
    if (!std::all_of(d, d + t.numel(), [](float x) { return std::isfinite(x); }))
      return make_error(errc::bad_model,
                        "textcnn weights: tensor '" + name + "' holds a non-finite value");
  }
  if (metadata)
    *metadata = std::move(file.metadata);
  return m;
}

} // namespace

caf::expected<textcnn> textcnn::from_bytes(std::string_view bytes, std::shared_ptr<backend> be,
                                           std::map<std::string, std::string>* metadata) {
  auto file = decode_safetensors(bytes);
  if (!file)
    return file.error();
  return from_file(std::move(*file), std::move(be), metadata);
}

caf::expected<textcnn> textcnn::from_safetensors(safetensors_file file, std::shared_ptr<backend> be,
                                                 std::map<std::string, std::string>* metadata) {
  return from_file(std::move(file), std::move(be), metadata);
}

caf::expected<textcnn> textcnn::load(const std::string& path, std::shared_ptr<backend> be,
                                     std::map<std::string, std::string>* metadata) {
  auto file = load_safetensors(path);
  if (!file)
    return file.error();
  return from_file(std::move(*file), std::move(be), metadata);
}

caf::error textcnn::copy_weights_from(textcnn& other) {
  auto& a = impl_->cfg;
  auto& b = other.impl_->cfg;
  if (a.vocab != b.vocab || a.embed != b.embed || a.filters != b.filters
      || a.kernel_sizes != b.kernel_sizes || a.classes != b.classes)
    return make_error(errc::invalid_argument, "textcnn::copy_weights_from: shapes differ");
  auto mine = impl_->params();
  auto theirs = other.impl_->params();
  for (size_t i = 0; i < mine.size(); ++i) {
    auto c = theirs[i]->to(mine[i]->device());
    if (!c)
      return c.error();
    *mine[i] = std::move(*c);
  }
  weights_changed();
  return {};
}

const textcnn_config& textcnn::config() const {
  return impl_->cfg;
}

backend& textcnn::backend_used() {
  return *impl_->be;
}

int64_t textcnn::steps() const {
  return impl_->step;
}

double textcnn::forward_flops(int64_t batch, int64_t len) const {
  auto& c = impl_->cfg;
  double f = 0;
  for (auto k : c.kernel_sizes)
    f += 2.0 * batch * static_cast<double>(len - k + 1) * k * c.embed * c.filters;
  f += 2.0 * batch * static_cast<double>(c.kernel_sizes.size()) * c.filters * c.classes;
  return f;
}

} // namespace comb::kernels
