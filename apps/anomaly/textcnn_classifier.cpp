// textcnn_classifier over comb::kernels::textcnn and its fused scoring engine (see
// textcnn_classifier.hpp).
#include "apps/anomaly/textcnn_classifier.hpp"

#include "base/errc.hpp"
#include "kernels/backend.hpp"
#include "kernels/models/textcnn.hpp"
#include "kernels/models/textcnn_fused.hpp"
#include "kernels/safetensors.hpp"

#include <algorithm>

namespace comb::anomaly {

struct textcnn_classifier::impl {
  textcnn_options opts;
  kernels::textcnn model;
  /// Scores with the "fused" engine.
  kernels::textcnn_fused fused;
  std::vector<float> probs;

  impl(textcnn_options o, kernels::textcnn m) : opts(std::move(o)), model(std::move(m)) {}

  bool use_fused() const { return opts.engine == "fused"; }
};

namespace {

kernels::textcnn_config kernels_config(const textcnn_options& o) {
  kernels::textcnn_config c;
  c.vocab = o.vocab;
  c.embed = o.embed;
  c.seq_len = o.seq_len;
  c.filters = o.filters;
  c.kernel_sizes.assign(o.kernel_sizes.begin(), o.kernel_sizes.end());
  c.classes = 2;
  c.dropout = o.dropout;
  c.seed = o.seed;
  c.adam.lr = o.learning_rate;
  return c;
}

/// The "fused" engine runs on the CPU backend; "kernels" on the registry's choice.
caf::expected<std::shared_ptr<kernels::backend>> pick_backend(const textcnn_options& o) {
  if (o.engine == "fused")
    return kernels::default_backend(/*prefer_gpu=*/false);
  if (o.engine == "kernels")
    return kernels::default_backend(o.prefer_gpu);
  return make_error(errc::invalid_argument,
                    "TextCNN engine '" + o.engine + "' is neither 'fused' nor 'kernels'");
}

caf::error check_batch(const std::vector<int32_t>& tokens, int batch, int len, int vocab,
                       int min_len) {
  if (batch < 1 || len < 1)
    return make_error(errc::invalid_argument,
                      "empty batch (" + std::to_string(batch) + " x " + std::to_string(len) + ")");
  if (len < min_len)
    return make_error(errc::invalid_argument, "sequence length " + std::to_string(len)
                                                + " is shorter than the widest kernel ("
                                                + std::to_string(min_len) + "); pad it");
  if (tokens.size() != static_cast<size_t>(batch) * static_cast<size_t>(len))
    return make_error(errc::invalid_argument, "token buffer has " + std::to_string(tokens.size())
                                                + " ids, expected " + std::to_string(batch) + " x "
                                                + std::to_string(len));
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] < 0 || tokens[i] >= vocab)
      return make_error(errc::invalid_argument, "token id " + std::to_string(tokens[i])
                                                  + " at position " + std::to_string(i)
                                                  + " is outside the vocabulary 0.."
                                                  + std::to_string(vocab - 1));
  return {};
}

int widest(const textcnn_options& o) {
  return *std::max_element(o.kernel_sizes.begin(), o.kernel_sizes.end());
}

} // namespace

textcnn_classifier::textcnn_classifier() = default;
textcnn_classifier::~textcnn_classifier() = default;
textcnn_classifier::textcnn_classifier(textcnn_classifier&&) noexcept = default;
textcnn_classifier& textcnn_classifier::operator=(textcnn_classifier&&) noexcept = default;

caf::expected<textcnn_classifier> textcnn_classifier::create(const textcnn_options& opts) {
  auto be = pick_backend(opts);
  if (!be)
    return be.error();
  if (opts.kernel_sizes.empty())
    return make_error(errc::invalid_argument, "TextCNN needs at least one kernel size");
  auto m = kernels::textcnn::create(kernels_config(opts), std::move(*be));
  if (!m)
    return m.error();
  textcnn_classifier c;
  c.impl_ = std::make_unique<impl>(opts, std::move(*m));
  return c;
}

caf::expected<float> textcnn_classifier::train_step(const std::vector<int32_t>& tokens, int batch,
                                                    int len, const std::vector<int32_t>& labels,
                                                    const std::vector<float>* weights,
                                                    const std::vector<int64_t>* lengths) {
  if (auto err = check_batch(tokens, batch, len, impl_->opts.vocab, widest(impl_->opts)))
    return err;
  if (labels.size() != static_cast<size_t>(batch))
    return make_error(errc::invalid_argument, "batch of " + std::to_string(batch) + " has "
                                                + std::to_string(labels.size()) + " labels");
  for (auto l : labels)
    if (l != 0 && l != 1)
      return make_error(errc::invalid_argument,
                        "label " + std::to_string(l) + " is neither 0 nor 1");
  return impl_->model.train_step(tokens, labels, weights, lengths);
}

caf::expected<std::vector<float>> textcnn_classifier::predict(const std::vector<int32_t>& tokens,
                                                              int batch, int len) {
  if (auto err = check_batch(tokens, batch, len, impl_->opts.vocab, widest(impl_->opts)))
    return err;
  if (impl_->use_fused()) {
    if (auto err = impl_->fused.forward(impl_->model, tokens.data(), batch, len, impl_->probs))
      return err;
  } else {
    auto p = impl_->model.predict(tokens, batch);
    if (!p)
      return p.error();
    impl_->probs = std::move(*p);
  }
  std::vector<float> out(static_cast<size_t>(batch));
  for (int b = 0; b < batch; ++b)
    out[static_cast<size_t>(b)] = impl_->probs[static_cast<size_t>(b) * 2 + 1];
  return out;
}

caf::expected<std::vector<float>> textcnn_classifier::predict(const std::vector<int32_t>& tokens,
                                                              int batch, int len,
                                                              const std::vector<int64_t>& lengths) {
  if (lengths.size() != static_cast<size_t>(std::max(batch, 0)))
    return make_error(errc::invalid_argument, "batch of " + std::to_string(batch) + " rows has "
                                                + std::to_string(lengths.size()) + " lengths");
  if (auto err = check_batch(tokens, batch, len, impl_->opts.vocab, widest(impl_->opts)))
    return err;
  if (!impl_->use_fused()) {
    auto p = impl_->model.predict(tokens, batch, &lengths);
    if (!p)
      return p.error();
    std::vector<float> out(static_cast<size_t>(batch));
    for (int b = 0; b < batch; ++b)
      out[static_cast<size_t>(b)] = (*p)[static_cast<size_t>(b) * 2 + 1];
    return out;
  }
  if (auto err = impl_->fused.forward(impl_->model, tokens.data(), batch, len, lengths.data(),
                                      impl_->probs))
    return err;
  std::vector<float> out(static_cast<size_t>(batch));
  for (int b = 0; b < batch; ++b)
    out[static_cast<size_t>(b)] = impl_->probs[static_cast<size_t>(b) * 2 + 1];
  return out;
}

const textcnn_options& textcnn_classifier::options() const {
  return impl_->opts;
}

int textcnn_classifier::seq_len() const {
  return static_cast<int>(impl_->model.config().seq_len);
}

caf::error textcnn_classifier::set_seq_len(int seq_len) {
  if (auto err = impl_->model.set_seq_len(seq_len))
    return err;
  impl_->opts.seq_len = seq_len;
  return {};
}

caf::error textcnn_classifier::set_learning_rate(float lr) {
  if (auto err = impl_->model.set_learning_rate(lr))
    return err;
  impl_->opts.learning_rate = lr;
  return {};
}

std::string textcnn_classifier::backend() const {
  if (impl_->use_fused())
    return "fused/cpu";
  return "kernels/" + impl_->model.backend_used().name();
}

caf::error textcnn_classifier::copy_weights_from(const textcnn_classifier& other) {
  return impl_->model.copy_weights_from(other.impl_->model);
}

caf::expected<std::string> textcnn_classifier::save(
  const std::map<std::string, std::string>& metadata) const {
  auto meta = metadata;
  meta["anomaly.engine"] = impl_->opts.engine;
  return impl_->model.to_bytes(meta);
}

caf::expected<textcnn_classifier> textcnn_classifier::load(
  const std::string& bytes, std::map<std::string, std::string>* metadata,
  std::shared_ptr<kernels::backend> on) {
  auto file = kernels::decode_safetensors(bytes);
  if (!file)
    return file.error();
  auto stored = file->metadata;
  // Files from before one TextCNN: the fused engine's lacked these keys; the kernels
  // engine's kept the learning rate apart.
  auto& m = file->metadata;
  auto engine = m.count("anomaly.engine") ? m["anomaly.engine"] : "fused";
  m.try_emplace("textcnn.classes", "2");
  m.try_emplace("textcnn.seq_len", std::to_string(default_seq_len));
  if (auto lr = m.find("anomaly.learning_rate"); lr != m.end())
    m.try_emplace("textcnn.learning_rate", lr->second);
  textcnn_options o;
  o.engine = engine;
  caf::expected<std::shared_ptr<kernels::backend>> be = on;
  if (on) // the caller's backend decides the engine, whatever the file was trained with
    o.engine = on->device() == kernels::device::cpu ? "fused" : "kernels";
  else
    be = pick_backend(o);
  if (!be)
    return make_error(errc::bad_model, "anomaly.engine: " + describe(be.error()));
  auto km = kernels::textcnn::from_safetensors(std::move(*file), std::move(*be));
  if (!km)
    return km.error();
  auto& kc = km->config();
  if (kc.classes != 2)
    return make_error(errc::bad_model, "the model has " + std::to_string(kc.classes)
                                         + " classes, the detector needs 2");
  o.vocab = static_cast<int>(kc.vocab);
  o.embed = static_cast<int>(kc.embed);
  o.filters = static_cast<int>(kc.filters);
  o.kernel_sizes.assign(kc.kernel_sizes.begin(), kc.kernel_sizes.end());
  o.dropout = kc.dropout;
  o.seed = kc.seed;
  o.seq_len = static_cast<int>(kc.seq_len);
  o.learning_rate = kc.adam.lr;
  textcnn_classifier c;
  c.impl_ = std::make_unique<impl>(o, std::move(*km));
  if (metadata)
    *metadata = std::move(stored);
  return c;
}

} // namespace comb::anomaly
