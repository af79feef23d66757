// textcnn_classifier over the CPU TextCNN (detail/textcnn_cpu) and its safetensors form.
#include "apps/anomaly/textcnn_classifier.hpp"

#include "apps/anomaly/detail/textcnn_cpu.hpp"
#include "kernels/backend.hpp"
#include "kernels/models/textcnn.hpp"
#include "base/errc.hpp"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>

namespace comb::anomaly {

struct textcnn_classifier::impl {
  textcnn_options opts;
  detail::textcnn_cpu net;
  detail::textcnn_params grad;
  std::vector<float> probs;
  /// Set for the "kernels" engine; `net` is then unused (built at size 1).
  std::unique_ptr<kernels::textcnn> k;

  impl(const textcnn_options& o, detail::textcnn_shape s)
    : opts(o), net(std::move(s), o.seed) {
  }
};

namespace {

kernels::textcnn_config kernels_config(const textcnn_options& o) {
  kernels::textcnn_config c;
  c.vocab = o.vocab;
  c.embed = o.embed;
  c.filters = o.filters;
  c.kernel_sizes.assign(o.kernel_sizes.begin(), o.kernel_sizes.end());
  c.classes = 2;
  c.dropout = o.dropout;
  c.seed = o.seed;
  c.adam.lr = o.learning_rate;
  return c;
}

std::shared_ptr<kernels::backend> pick_backend(const textcnn_options& o) {
  if (o.prefer_gpu)
    if (auto b = kernels::find_backend("cuda"))
      return b;
  return nullptr; // the CPU backend
}

detail::textcnn_shape tiny_shape() {
  detail::textcnn_shape s;
  s.vocab = 1;
  s.embed = 1;
  s.kernels = {1};
  s.filters = 1;
  return s;
}

} // namespace

namespace {

detail::textcnn_shape to_shape(const textcnn_options& o) {
  detail::textcnn_shape s;
  s.vocab = o.vocab;
  s.embed = o.embed;
  s.kernels = o.kernel_sizes;
  s.filters = o.filters;
  s.dropout = o.dropout;
  return s;
}

caf::error check_options(const textcnn_options& o) {
  if (o.vocab < 2 || o.vocab > (1 << 22) || o.embed < 1 || o.embed > 4096 || o.filters < 1
      || o.filters > 4096 || o.kernel_sizes.empty() || !(o.dropout >= 0 && o.dropout < 1)
      || !(o.learning_rate > 0))
    return make_error(errc::invalid_argument,
                      "TextCNN shape out of range (vocab " + std::to_string(o.vocab)
                        + ", embed " + std::to_string(o.embed) + ", filters "
                        + std::to_string(o.filters) + ")");
  for (int k : o.kernel_sizes)
    if (k < 1 || k > 64)
      return make_error(errc::invalid_argument,
                        "TextCNN kernel size " + std::to_string(k) + " is outside 1..64");
  return {};
}

caf::error check_batch(const std::vector<int32_t>& tokens, int batch, int len, int vocab,
                       int min_len) {
  if (batch < 1 || len < 1)
    return make_error(errc::invalid_argument, "empty batch (" + std::to_string(batch) + " x "
                                                + std::to_string(len) + ")");
  if (len < min_len)
    return make_error(errc::invalid_argument,
                      "sequence length " + std::to_string(len)
                        + " is shorter than the widest kernel (" + std::to_string(min_len)
                        + "); pad it");
  if (tokens.size() != static_cast<size_t>(batch) * static_cast<size_t>(len))
    return make_error(errc::invalid_argument,
                      "token buffer has " + std::to_string(tokens.size()) + " ids, expected "
                        + std::to_string(batch) + " x " + std::to_string(len));
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] < 0 || tokens[i] >= vocab)
      return make_error(errc::invalid_argument,
                        "token id " + std::to_string(tokens[i]) + " at position "
                          + std::to_string(i) + " is outside the vocabulary 0.."
                          + std::to_string(vocab - 1));
  return {};
}

int widest(const textcnn_options& o) {
  int m = 1;
  for (int k : o.kernel_sizes)
    m = std::max(m, k);
  return m;
}

} // namespace

textcnn_classifier::textcnn_classifier() = default;
textcnn_classifier::~textcnn_classifier() = default;
textcnn_classifier::textcnn_classifier(textcnn_classifier&&) noexcept = default;
textcnn_classifier& textcnn_classifier::operator=(textcnn_classifier&&) noexcept = default;

caf::expected<textcnn_classifier> textcnn_classifier::create(const textcnn_options& opts) {
  if (auto err = check_options(opts))
    return err;
  textcnn_classifier c;
  if (opts.engine == "kernels") {
    c.impl_ = std::make_unique<impl>(opts, tiny_shape());
    auto m = kernels::textcnn::create(kernels_config(opts), pick_backend(opts));
    if (!m)
      return m.error();
    c.impl_->k = std::make_unique<kernels::textcnn>(std::move(*m));
    return c;
  }
  if (opts.engine != "fused")
    return make_error(errc::invalid_argument,
                      "TextCNN engine '" + opts.engine + "' is neither 'fused' nor 'kernels'");
  c.impl_ = std::make_unique<impl>(opts, to_shape(opts));
  return c;
}

caf::expected<float> textcnn_classifier::train_step(const std::vector<int32_t>& tokens,
                                                    int batch, int len,
                                                    const std::vector<int32_t>& labels) {
  if (auto err = check_batch(tokens, batch, len, impl_->opts.vocab, widest(impl_->opts)))
    return err;
  if (labels.size() != static_cast<size_t>(batch))
    return make_error(errc::invalid_argument, "batch of " + std::to_string(batch) + " has "
                                                + std::to_string(labels.size()) + " labels");
  for (auto l : labels)
    if (l != 0 && l != 1)
      return make_error(errc::invalid_argument,
                        "label " + std::to_string(l) + " is neither 0 nor 1");
  if (impl_->k)
    return impl_->k->train_step(tokens, labels);
  float loss = impl_->net.forward(tokens.data(), batch, len, labels.data(), true, impl_->probs);
  impl_->net.backward(tokens.data(), batch, len, labels.data(), impl_->grad);
  impl_->net.adam_step(impl_->grad, impl_->opts.learning_rate);
  return loss;
}

caf::expected<std::vector<float>>
textcnn_classifier::predict(const std::vector<int32_t>& tokens, int batch, int len) {
  if (auto err = check_batch(tokens, batch, len, impl_->opts.vocab, widest(impl_->opts)))
    return err;
  if (impl_->k) {
    auto p = impl_->k->predict(tokens, batch);
    if (!p)
      return p.error();
    impl_->probs = std::move(*p);
  } else {
    impl_->net.forward(tokens.data(), batch, len, nullptr, false, impl_->probs);
  }
  std::vector<float> out(static_cast<size_t>(batch));
  for (int b = 0; b < batch; ++b)
    out[static_cast<size_t>(b)] = impl_->probs[static_cast<size_t>(b) * 2 + 1];
  return out;
}

const textcnn_options& textcnn_classifier::options() const {
  return impl_->opts;
}

std::string textcnn_classifier::backend() const {
  if (impl_->k)
    return "kernels/" + impl_->k->backend_used().name();
  return "fused/cpu";
}

caf::error textcnn_classifier::copy_weights_from(const textcnn_classifier& other) {
  if (other.impl_->opts.vocab != impl_->opts.vocab || other.impl_->opts.embed != impl_->opts.embed
      || other.impl_->opts.filters != impl_->opts.filters
      || other.impl_->opts.kernel_sizes != impl_->opts.kernel_sizes)
    return make_error(errc::invalid_argument, "copy_weights_from: models differ in shape");
  if (impl_->k && other.impl_->k)
    return impl_->k->copy_weights_from(*other.impl_->k);
  if (impl_->k || other.impl_->k)
    return make_error(errc::invalid_argument, "copy_weights_from: models use other engines");
  impl_->net.params() = other.impl_->net.params();
  return {};
}

// --- safetensors --------------------------------------------------------------------------

namespace {

struct named_tensor {
  std::string name;
  std::vector<int64_t> shape;
  float* data;
  size_t count;
};

std::vector<named_tensor> tensors_of(detail::textcnn_params& p, const textcnn_options& o) {
  std::vector<named_tensor> t;
  t.push_back({"embedding.weight", {o.vocab, o.embed}, p.emb.data(), p.emb.size()});
  for (size_t c = 0; c < o.kernel_sizes.size(); ++c) {
    auto k = std::to_string(o.kernel_sizes[c]);
    t.push_back({"conv" + k + ".weight", {o.kernel_sizes[c], o.embed, o.filters},
                 p.conv_w[c].data(), p.conv_w[c].size()});
    t.push_back({"conv" + k + ".bias", {o.filters}, p.conv_b[c].data(), p.conv_b[c].size()});
  }
  t.push_back({"dense.weight",
               {static_cast<int64_t>(o.kernel_sizes.size()) * o.filters, 2},
               p.dense_w.data(), p.dense_w.size()});
  t.push_back({"dense.bias", {2}, p.dense_b.data(), p.dense_b.size()});
  return t;
}

} // namespace

caf::expected<std::string>
textcnn_classifier::save(const std::map<std::string, std::string>& metadata) const {
  auto& o = impl_->opts;
  if (impl_->k) {
    auto meta = metadata;
    meta["anomaly.engine"] = "kernels";
    meta["anomaly.learning_rate"] = std::to_string(o.learning_rate);
    return impl_->k->to_bytes(meta);
  }
  nlohmann::json header;
  nlohmann::json meta = nlohmann::json::object();
  for (auto& [k, v] : metadata)
    meta[k] = v;
  meta["textcnn.vocab"] = std::to_string(o.vocab);
  meta["textcnn.embed"] = std::to_string(o.embed);
  meta["textcnn.filters"] = std::to_string(o.filters);
  std::string ks;
  for (size_t i = 0; i < o.kernel_sizes.size(); ++i)
    ks += (i ? "," : "") + std::to_string(o.kernel_sizes[i]);
  meta["textcnn.kernel_sizes"] = ks;
  meta["textcnn.dropout"] = std::to_string(o.dropout);
  meta["textcnn.learning_rate"] = std::to_string(o.learning_rate);
  meta["textcnn.seed"] = std::to_string(o.seed);
  header["__metadata__"] = meta;
  auto params = impl_->net.params(); // copy: tensors_of needs mutable pointers
  auto ts = tensors_of(params, o);
  size_t off = 0;
  for (auto& t : ts) {
    header[t.name] = {{"dtype", "F32"},
                      {"shape", t.shape},
                      {"data_offsets", {off, off + t.count * sizeof(float)}}};
    off += t.count * sizeof(float);
  }
  std::string h;
  try {
    h = header.dump(-1, ' ', /*ensure_ascii=*/false,
                    nlohmann::json::error_handler_t::replace);
  } catch (const std::exception& e) {
    return make_error(errc::invalid_argument, std::string{"model metadata: "} + e.what());
  }
  while (h.size() % 8 != 0)
    h += ' ';
  std::string out;
  out.resize(8 + h.size() + off);
  uint64_t n = h.size();
  for (int i = 0; i < 8; ++i)
    out[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  std::memcpy(out.data() + 8, h.data(), h.size());
  size_t pos = 8 + h.size();
  for (auto& t : ts) {
    std::memcpy(out.data() + pos, t.data, t.count * sizeof(float));
    pos += t.count * sizeof(float);
  }
  return out;
}

caf::expected<textcnn_classifier>
textcnn_classifier::load(const std::string& bytes, std::map<std::string, std::string>* metadata) {
  auto bad = [](const std::string& what) {
    return make_error(errc::bad_model, "safetensors: " + what);
  };
  if (bytes.size() < 8)
    return bad("file of " + std::to_string(bytes.size()) + " bytes has no header length");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i)
    n |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[static_cast<size_t>(i)]))
         << (8 * i);
  if (n > bytes.size() - 8 || n > (uint64_t{100} << 20))
    return bad("header length " + std::to_string(n) + " exceeds the file");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.begin() + 8,
                                   bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n));
  } catch (const std::exception& e) {
    return bad(std::string{"header is not JSON: "} + e.what());
  }
  if (!header.is_object() || !header.contains("__metadata__")
      || !header["__metadata__"].is_object())
    return bad("header has no __metadata__ object");
  std::map<std::string, std::string> meta;
  for (auto& [k, v] : header["__metadata__"].items()) {
    if (!v.is_string())
      return bad("metadata value of '" + k + "' is not a string");
    meta[k] = v.get<std::string>();
  }
  if (meta["anomaly.engine"] == "kernels") {
    textcnn_options probe;
    auto km = kernels::textcnn::from_bytes(bytes, pick_backend(probe), nullptr);
    if (!km)
      return km.error();
    auto& kc = km->config();
    textcnn_options o;
    o.engine = "kernels";
    o.vocab = static_cast<int>(kc.vocab);
    o.embed = static_cast<int>(kc.embed);
    o.filters = static_cast<int>(kc.filters);
    o.kernel_sizes.assign(kc.kernel_sizes.begin(), kc.kernel_sizes.end());
    o.dropout = kc.dropout;
    o.seed = kc.seed;
    o.learning_rate = kc.adam.lr;
    textcnn_classifier c;
    c.impl_ = std::make_unique<impl>(o, tiny_shape());
    c.impl_->k = std::make_unique<kernels::textcnn>(std::move(*km));
    if (metadata)
      *metadata = std::move(meta);
    return c;
  }
  textcnn_options o;
  try {
    o.vocab = std::stoi(meta.at("textcnn.vocab"));
    o.embed = std::stoi(meta.at("textcnn.embed"));
    o.filters = std::stoi(meta.at("textcnn.filters"));
    o.dropout = std::stof(meta.at("textcnn.dropout"));
    o.learning_rate = std::stof(meta.at("textcnn.learning_rate"));
    o.seed = std::stoull(meta.at("textcnn.seed"));
    o.kernel_sizes.clear();
    std::string ks = meta.at("textcnn.kernel_sizes");
    size_t p = 0;
    while (p < ks.size()) {
      auto c = ks.find(',', p);
      o.kernel_sizes.push_back(std::stoi(ks.substr(p, c - p)));
      p = c == std::string::npos ? ks.size() : c + 1;
    }
  } catch (const std::exception&) {
    return bad("TextCNN shape (textcnn.* metadata) missing or not numbers");
  }
  auto c = create(o);
  if (!c)
    return bad("TextCNN shape: " + describe(c.error()));
  auto ts = tensors_of(c->impl_->net.params(), o);
  size_t data_start = 8 + n;
  size_t data_size = bytes.size() - data_start;
  for (auto& t : ts) {
    if (!header.contains(t.name))
      return bad("tensor '" + t.name + "' is missing");
    auto& e = header[t.name];
    try {
      if (e.at("dtype").get<std::string>() != "F32")
        return bad("tensor '" + t.name + "' is not F32");
      if (e.at("shape").get<std::vector<int64_t>>() != t.shape)
        return bad("tensor '" + t.name + "' has the wrong shape");
      auto offs = e.at("data_offsets").get<std::vector<uint64_t>>();
      if (offs.size() != 2 || offs[1] < offs[0] || offs[1] > data_size
          || offs[1] - offs[0] != t.count * sizeof(float))
        return bad("tensor '" + t.name + "' has bad data offsets");
      std::memcpy(t.data, bytes.data() + data_start + offs[0], t.count * sizeof(float));
    } catch (const std::exception& ex) {
      return bad("tensor '" + t.name + "': " + ex.what());
    }
  }
  for (auto& t : ts)
    for (size_t i = 0; i < t.count; ++i)
      if (!std::isfinite(t.data[i]))
        return bad("tensor '" + t.name + "' holds a non-finite value");
  if (metadata)
    *metadata = std::move(meta);
  return c;
}

} // namespace comb::anomaly
