// The anomaly detector's model runner: checks and loads detector files, scores the
// "requests" of a batch of tasks in one pass (see anomaly_runner.hpp).
#include "apps/anomaly/anomaly_runner.hpp"

#include "apps/anomaly/detector.hpp"
#include "base/errc.hpp"

#include <numeric>
#include <sstream>

namespace comb::anomaly {

namespace {

using runtime::tensor_dtype;
using runtime::tensor_pack;

/// Number of weights of a TextCNN of options `o` (two classes).
size_t parameter_count(const textcnn_options& o) {
  size_t v = static_cast<size_t>(o.vocab), e = static_cast<size_t>(o.embed),
         f = static_cast<size_t>(o.filters), n = 0;
  for (int k : o.kernel_sizes)
    n += static_cast<size_t>(k) * e * f + f;
  return v * e + n + o.kernel_sizes.size() * f * 2 + 2;
}

std::string summary(const detector& d) {
  const auto& o = d.config().model;
  std::ostringstream os;
  os << "anomaly detector: TextCNN vocab " << o.vocab << ", embed " << o.embed << ", kernels ";
  for (size_t i = 0; i < o.kernel_sizes.size(); ++i)
    os << (i ? "," : "") << o.kernel_sizes[i];
  os << " x " << o.filters << " filters, " << d.config().max_tokens << " tokens, "
     << parameter_count(o) << " parameters";
  return os.str();
}

/// The requests of one task: its str tensor "requests", or an error naming what is wrong.
caf::expected<std::vector<std::string_view>> task_requests(const runtime::task_tensors& t) {
  auto views = t.views();
  if (!views)
    return views.error();
  std::string have;
  for (const auto& v : *views) {
    if (v.spec->name != "requests") {
      have += (have.empty() ? "" : ", ") + v.spec->describe();
      continue;
    }
    if (v.spec->type() != tensor_dtype::str)
      return make_error(errc::invalid_argument,
                        "task " + std::to_string(t.task_id) + ": tensor 'requests' is "
                          + to_string(v.spec->type())
                          + "; the anomaly detector takes str [n] (raw HTTP requests)");
    return runtime::read_strings(v);
  }
  return make_error(errc::invalid_argument,
                    "task " + std::to_string(t.task_id)
                      + " has no tensor 'requests' (str [n]) for the anomaly detector"
                      + (have.empty() ? std::string{} : "; it has " + have));
}

class loaded_detector : public runtime::loaded_model {
public:
  loaded_detector(detector d, bool fused) : d_(std::move(d)), fused_(fused) {}

  size_t memory_bytes() const override {
    const auto& o = d_.config().model;
    size_t bytes = parameter_count(o) * sizeof(float);
    if (fused_) { // the fused engine's table: every token through every tap
      size_t taps = std::accumulate(o.kernel_sizes.begin(), o.kernel_sizes.end(), size_t{0});
      bytes += static_cast<size_t>(o.vocab) * taps * static_cast<size_t>(o.filters) * sizeof(float);
    }
    return bytes;
  }

  std::vector<caf::expected<tensor_pack>> infer(
    const std::vector<const runtime::task_tensors*>& batch) override {
    std::vector<caf::expected<tensor_pack>> out;
    out.reserve(batch.size());
    // All tasks' requests in one pass (a request's score does not depend on its batch
    // mates, see detector::score_encoded); begin[i] is task i's first request.
    std::vector<std::string_view> all;
    std::vector<size_t> begin;
    for (const auto* t : batch) {
      begin.push_back(all.size());
      auto reqs = task_requests(*t);
      if (!reqs) {
        out.emplace_back(reqs.error());
        continue;
      }
      all.insert(all.end(), reqs->begin(), reqs->end());
      out.emplace_back(tensor_pack{});
    }
    begin.push_back(all.size());
    std::vector<bool> parsed;
    auto scores = d_.score_raw(all, &parsed);
    for (size_t i = 0; i < batch.size(); ++i) {
      if (!out[i])
        continue;
      if (!scores) {
        out[i] = scores.error();
        continue;
      }
      auto b = begin[i], e = begin[i + 1];
      auto n = static_cast<int64_t>(e - b);
      std::vector<uint8_t> p(e - b);
      for (size_t j = b; j < e; ++j)
        p[j - b] = parsed[j] ? 1 : 0;
      out[i]->add("score", tensor_dtype::f32, {n}, scores->data() + b);
      out[i]->add("parsed", tensor_dtype::u8, {n}, p.data());
      // The model's saved (calibrated) threshold, for callers that did not choose one.
      float t = d_.config().threshold;
      out[i]->add("threshold", tensor_dtype::f32, {1}, &t);
    }
    return out;
  }

private:
  detector d_;
  bool fused_;
};

} // namespace

caf::expected<std::string> anomaly_runner::check(std::string_view bytes) const {
  auto d = detector::deserialize(std::string{bytes}, kernels::default_backend(false));
  if (!d)
    return make_error(errc::bad_model, "anomaly detector: " + describe(d.error()));
  return summary(*d);
}

caf::expected<std::unique_ptr<runtime::loaded_model>> anomaly_runner::load(
  std::string_view bytes, kernels::backend& be) const {
  // The executor owns its backend and outlives the models it loads: a non-owning pointer.
  std::shared_ptr<kernels::backend> on{std::shared_ptr<void>{}, &be};
  auto d = detector::deserialize(std::string{bytes}, on);
  if (!d)
    return make_error(errc::bad_model, "anomaly detector: " + describe(d.error()));
  bool fused = be.device() == kernels::device::cpu;
  if (!fused) {
    // Score one tiny request there now, so a backend that cannot run the TextCNN is
    // refused at load, not at the first task.
    auto probe = d->score_raw({std::string_view{"GET / HTTP/1.1\r\n\r\n"}});
    if (!probe)
      return make_error(errc::unsupported,
                        "anomaly detector: backend " + be.name()
                          + " cannot run the TextCNN: " + describe(probe.error()));
  }
  return std::unique_ptr<runtime::loaded_model>{
    std::make_unique<loaded_detector>(std::move(*d), fused)};
}

void register_anomaly_runner() {
  runtime::register_runner(std::make_shared<anomaly_runner>());
}

} // namespace comb::anomaly
