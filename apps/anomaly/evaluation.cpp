// Experiments on CSIC 2010 (see evaluation.hpp).
#include "apps/anomaly/evaluation.hpp"
#include "base/ascii.hpp"

#include "base/errc.hpp"

#include <algorithm>
#include <chrono>
#include <ostream>
#include <random>

namespace comb::anomaly {

namespace {

using clock_type = std::chrono::steady_clock;

double since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

std::vector<int> labels_of(const csic_dataset& ds) {
  std::vector<int> labels;
  labels.reserve(ds.requests.size());
  for (auto& r : ds.requests)
    labels.push_back(r.label);
  return labels;
}

} // namespace

std::string to_string(tokenizer_protocol p) {
  return p == tokenizer_protocol::training_part
           ? "protocol 1 (tokenizer trained on the training part only)"
           : "protocol 2 (paper's: tokenizer trained on all data)";
}

http_request perturb_request(const http_request& r, test_perturbation p, uint64_t seed) {
  http_request out = r;
  std::mt19937_64 rng(seed);
  if (p == test_perturbation::shuffle_headers) {
    std::shuffle(out.headers.begin(), out.headers.end(), rng);
  } else if (p == test_perturbation::random_cookies) {
    static const char hex[] = "0123456789ABCDEF";
    for (auto& [k, v] : out.headers)
      if (iequals(k, "cookie")) {
        std::string id(32, '0');
        for (auto& c : id)
          c = hex[rng() % 16];
        v = "JSESSIONID=" + id;
      }
  }
  return out;
}

caf::expected<experiment_result> run_experiment(const csic_dataset& ds, const split& s,
                                                tokenizer_protocol protocol,
                                                const eval_options& opts) {
  if (s.train.empty() || s.test.empty())
    return make_error(errc::invalid_argument, "experiment needs training and test requests");
  experiment_result res;
  res.train_size = s.train.size();
  res.test_size = s.test.size();
  const auto n = ds.requests.size();
  std::vector<int> labels(n);
  std::vector<std::string> texts(n);
  std::vector<char> is_test(n, 0);
  for (auto i : s.test)
    is_test[i] = 1;
  for (size_t i = 0; i < n; ++i) {
    labels[i] = ds.requests[i].label;
    if (is_test[i] && opts.perturb != test_perturbation::none)
      texts[i] = to_model_text(perturb_request(ds.requests[i].request, opts.perturb,
                                               opts.seed * 7919 + i),
                               opts.config.text);
    else
      texts[i] = to_model_text(ds.requests[i].request, opts.config.text);
  }
  // Validation lines (early stopping and learning-rate drops): with validation_lines::own a
  // share of the data set's own training requests, split off before augmentation, so that
  // the added sets do not decide the schedule and no validation request is a base of an
  // added one; with ::all a share of everything trained on (the earlier behaviour).
  const bool own_validation = opts.validation == validation_lines::own;
  split tv;
  if (own_validation)
    tv = validation_split(s.train, labels, opts.validation_share, opts.seed + 17);
  auto train = s.train;
  if (opts.augment) {
    std::vector<const http_request*> bases;
    for (auto i : own_validation ? tv.train : s.train)
      if (labels[i] == 0)
        bases.push_back(&ds.requests[i].request);
    auto extra = augmentation(bases, *opts.augment);
    if (!extra)
      return extra.error();
    for (auto& r : *extra) {
      train.push_back(texts.size());
      if (own_validation)
        tv.train.push_back(texts.size());
      texts.push_back(to_model_text(r.request, opts.config.text));
      labels.push_back(r.label);
    }
    res.augmented = extra->size();
  }
  const size_t n_all = texts.size();
  // Tokenizer.
  auto t0 = clock_type::now();
  std::vector<std::string_view> corpus;
  if (protocol == tokenizer_protocol::training_part) {
    for (auto i : train)
      corpus.emplace_back(texts[i]);
  } else {
    for (auto& t : texts)
      corpus.emplace_back(t);
  }
  auto tok = bbpe_tokenizer::train(corpus, opts.config.vocab_size);
  if (!tok)
    return tok.error();
  res.tokenizer_seconds = since(t0);
  auto cfg = opts.config;
  cfg.model.vocab = static_cast<int>(cfg.vocab_size);
  cfg.model.seed = opts.seed;
  auto model = textcnn_classifier::create(cfg.model);
  if (!model)
    return model.error();
  detector d{std::move(*tok), std::move(*model), cfg};
  std::vector<std::vector<int32_t>> seqs(n_all);
  for (size_t i = 0; i < n_all; ++i)
    seqs[i] = d.encode_text(texts[i]);
  // Training with early stopping on the validation lines.
  if (!own_validation)
    tv = validation_split(train, labels, opts.validation_share, opts.seed + 17);
  res.validation = tv.test;
  std::vector<std::vector<int32_t>> test_seqs;
  test_seqs.reserve(s.test.size());
  for (auto i : s.test)
    test_seqs.push_back(seqs[i]);
  auto topts = opts.train;
  topts.seed = opts.seed;
  if (opts.plateau_metrics)
    topts.on_plateau = [&](int) -> caf::error {
      auto p = d.score_encoded(test_seqs);
      if (!p)
        return p.error();
      binary_metrics m;
      for (size_t k = 0; k < s.test.size(); ++k)
        m.add(labels[s.test[k]], (*p)[k] >= 0.5f);
      if (opts.log)
        *opts.log << "  " << opts.train.label << (opts.train.label.empty() ? "" : " ")
                  << "kept with " << res.at_plateau.size() << " learning-rate drop"
                  << (res.at_plateau.size() == 1 ? "" : "s") << ": " << m.to_string() << "\n"
                  << std::flush;
      res.at_plateau.push_back(m);
      return {};
    };
  auto tr = train_model(d, seqs, labels, tv.train, tv.test, topts,
                        augmented_weights(n_all, n, topts.augmented_weight));
  if (!tr)
    return tr.error();
  res.training = *tr;
  // Test.
  t0 = clock_type::now();
  auto p = d.score_encoded(test_seqs);
  if (!p)
    return p.error();
  res.test_seconds = since(t0);
  for (size_t k = 0; k < s.test.size(); ++k)
    res.metrics.add(labels[s.test[k]], (*p)[k] >= 0.5f);
  if (opts.errors)
    for (size_t k = 0; k < s.test.size(); ++k)
      if ((labels[s.test[k]] == 1) != ((*p)[k] >= 0.5f))
        *opts.errors << "label " << labels[s.test[k]] << " score " << (*p)[k] << "\n"
                     << texts[s.test[k]] << "\n\n";
  return res;
}

caf::expected<std::vector<experiment_result>> run_kfold(const csic_dataset& ds, int k,
                                                        tokenizer_protocol protocol,
                                                        const eval_options& opts, int only_folds,
                                                        int first_fold) {
  auto folds = stratified_kfold(labels_of(ds), k, opts.seed);
  if (!folds)
    return folds.error();
  if (first_fold < 1 || first_fold > k)
    return make_error(errc::invalid_argument, "first fold " + std::to_string(first_fold)
                                                + " is not one of the " + std::to_string(k)
                                                + " folds");
  std::vector<experiment_result> out;
  int end = only_folds > 0 ? std::min(first_fold - 1 + only_folds, k) : k;
  for (int f = first_fold - 1; f < end; ++f) {
    auto o = opts;
    o.train.label = "fold " + std::to_string(f + 1) + "/" + std::to_string(k);
    auto r = run_experiment(ds, (*folds)[static_cast<size_t>(f)], protocol, o);
    if (!r)
      return r.error();
    if (opts.log)
      *opts.log << "  fold " << f + 1 << "/" << k << ": " << r->metrics.to_string() << "  epochs "
                << r->training.epochs_run << " (best " << r->training.best_epoch << ", "
                << r->training.lr_drops << " learning-rate drops; " << r->validation.size()
                << " validation lines)\n"
                << std::flush;
    out.push_back(std::move(*r));
  }
  return out;
}

caf::expected<std::vector<share_result>> run_share_sweep(
  const csic_dataset& ds, const std::vector<double>& shares, tokenizer_protocol protocol,
  const eval_options& opts, const std::function<void(const share_result&)>& on_row) {
  auto labels = labels_of(ds);
  std::vector<share_result> out;
  for (double sh : shares) {
    auto sp = stratified_share(labels, sh, opts.seed);
    if (!sp)
      return sp.error();
    auto o = opts;
    o.train.label = "share " + std::to_string(static_cast<int>(sh * 100 + 0.5)) + "%";
    auto r = run_experiment(ds, *sp, protocol, o);
    if (!r)
      return r.error();
    out.push_back({sh, std::move(*r)});
    if (on_row)
      on_row(out.back());
  }
  return out;
}

const std::vector<ablation>& ablations() {
  using cm = text_options::cookie_mode;
  static const std::vector<ablation> all = {
    {"cookie value kept", cm::keep, false, false, test_perturbation::none},
    {"cookie value kept, test cookies randomised", cm::keep, false, false,
     test_perturbation::random_cookies},
    {"cookie value dropped (default)", cm::name_only, false, false, test_perturbation::none},
    {"cookie value dropped, test headers shuffled", cm::name_only, false, false,
     test_perturbation::shuffle_headers},
    {"cookie dropped, headers sorted, test headers shuffled", cm::name_only, true, false,
     test_perturbation::shuffle_headers},
    {"no header fields at all (method, URL, body)", cm::name_only, false, true,
     test_perturbation::none},
  };
  return all;
}

caf::expected<std::vector<ablation_result>> run_ablations(
  const csic_dataset& ds, const eval_options& opts,
  const std::function<void(const ablation_result&)>& on_row) {
  auto sp = stratified_share(labels_of(ds), 0.8, opts.seed);
  if (!sp)
    return sp.error();
  std::vector<ablation_result> out;
  for (auto& v : ablations()) {
    auto o = opts;
    o.config.text.cookie = v.cookie;
    o.config.text.sort_headers = v.sort_headers;
    o.config.text.drop_headers = v.drop_headers;
    o.perturb = v.perturb;
    o.train.label = v.name;
    auto r = run_experiment(ds, *sp, tokenizer_protocol::training_part, o);
    if (!r)
      return r.error();
    out.push_back({&v, std::move(*r)});
    if (on_row)
      on_row(out.back());
  }
  return out;
}

} // namespace comb::anomaly
