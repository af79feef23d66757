// Training loop with early stopping and progress (see trainer.hpp).
#include "apps/anomaly/trainer.hpp"

#include "apps/anomaly/splits.hpp"
#include "base/errc.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <random>
#include <string_view>

namespace comb::anomaly {

namespace {

using clock_type = std::chrono::steady_clock;

std::string hms(double s) {
  if (!(s >= 0) || s > 1e7)
    s = 0;
  auto t = static_cast<long>(s + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
  return buf;
}

bool on_terminal(std::ostream* os) {
  return (os == &std::cerr && isatty(2)) || (os == &std::cout && isatty(1));
}

double validation_loss(detector& d, const std::vector<std::vector<int32_t>>& seqs,
                       const std::vector<int>& labels, const std::vector<size_t>& val,
                       caf::error& err) {
  std::vector<std::vector<int32_t>> sub;
  sub.reserve(val.size());
  for (auto i : val)
    sub.push_back(seqs[i]);
  auto p = d.score_encoded(sub);
  if (!p) {
    err = p.error();
    return 0;
  }
  double loss = 0;
  for (size_t k = 0; k < val.size(); ++k) {
    double q = labels[val[k]] == 1 ? (*p)[k] : 1.0 - (*p)[k];
    loss -= std::log(std::max(q, 1e-7));
  }
  return loss / static_cast<double>(std::max<size_t>(val.size(), 1));
}

} // namespace

std::vector<float> augmented_weights(size_t n, size_t n_own, float augmented_weight) {
  if (augmented_weight == 1.0f || n <= n_own)
    return {};
  std::vector<float> w(n, 1.0f);
  std::fill(w.begin() + static_cast<std::ptrdiff_t>(n_own), w.end(), augmented_weight);
  return w;
}

std::vector<std::vector<size_t>> epoch_batches(const std::vector<std::vector<int32_t>>& seqs,
                                               const std::vector<size_t>& train, int batch,
                                               uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<size_t> order = train;
  std::shuffle(order.begin(), order.end(), rng);
  auto b = static_cast<size_t>(std::max(batch, 1));
  size_t window = b * 32;
  for (size_t s = 0; s < order.size(); s += window) {
    auto e = std::min(order.size(), s + window);
    std::stable_sort(order.begin() + static_cast<std::ptrdiff_t>(s),
                     order.begin() + static_cast<std::ptrdiff_t>(e),
                     [&](size_t x, size_t y) { return seqs[x].size() < seqs[y].size(); });
  }
  std::vector<std::vector<size_t>> out;
  for (size_t s = 0; s < order.size(); s += b)
    out.emplace_back(order.begin() + static_cast<std::ptrdiff_t>(s),
                     order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), s + b)));
  std::shuffle(out.begin(), out.end(), rng);
  return out;
}

caf::expected<train_result> train_model(detector& d, const std::vector<std::vector<int32_t>>& seqs,
                                        const std::vector<int>& labels,
                                        const std::vector<size_t>& train,
                                        const std::vector<size_t>& validation,
                                        const train_options& opts,
                                        const std::vector<float>& weights) {
  if (train.empty())
    return make_error(errc::invalid_argument, "no training examples");
  if (opts.batch < 1 || opts.max_epochs < 1)
    return make_error(errc::invalid_argument, "batch size and epochs must be at least 1");
  if (opts.lr_drops < 0 || (opts.lr_drops > 0 && !(opts.lr_decay > 0 && opts.lr_decay < 1)))
    return make_error(errc::invalid_argument,
                      "learning-rate drops must be at least 0 and the decay in (0, 1), got "
                        + std::to_string(opts.lr_drops) + " drops of "
                        + std::to_string(opts.lr_decay));
  if (opts.patience < 1 || opts.patience_after_drop < 0)
    return make_error(errc::invalid_argument,
                      "patience must be at least 1 (after a drop at least 0, 0 = the same), got "
                        + std::to_string(opts.patience) + " and "
                        + std::to_string(opts.patience_after_drop));
  if (!weights.empty() && weights.size() != seqs.size())
    return make_error(errc::invalid_argument, std::to_string(weights.size()) + " loss weights for "
                                                + std::to_string(seqs.size()) + " sequences");
  train_result res;
  res.best_validation_loss = INFINITY;
  std::string best_weights;
  int min_len = *std::max_element(d.config().model.kernel_sizes.begin(),
                                  d.config().model.kernel_sizes.end());
  bool tty = on_terminal(opts.progress);
  std::vector<int32_t> tokens;
  std::vector<int32_t> y;
  std::vector<float> w;
  std::vector<int64_t> row_len;
  int since_best = 0;
  const float base_lr = d.model().options().learning_rate;
  float lr = base_lr;
  // Back to the best epoch's weights (a fresh optimiser), at learning rate `rate`.
  auto restore_best = [&](float rate) -> caf::error {
    auto best = textcnn_classifier::load(best_weights, nullptr);
    if (!best)
      return best.error();
    if (auto err = best->set_learning_rate(rate))
      return err;
    d.model() = std::move(*best);
    return {};
  };
  int steps_per_epoch = static_cast<int>((train.size() + static_cast<size_t>(opts.batch) - 1)
                                         / static_cast<size_t>(opts.batch));
  int max_epochs = std::max(opts.max_epochs,
                            (opts.min_steps + steps_per_epoch - 1) / steps_per_epoch);
  for (int epoch = 1; epoch <= max_epochs; ++epoch) {
    auto batches = epoch_batches(seqs, train, opts.batch,
                                 opts.seed * 1000003u + static_cast<uint64_t>(epoch));
    auto t0 = clock_type::now();
    auto last_print = t0;
    double loss_sum = 0;
    for (size_t bi = 0; bi < batches.size(); ++bi) {
      auto& b = batches[bi];
      std::vector<size_t> idx(b.begin(), b.end());
      int len = pad_batch(seqs, idx, 0, idx.size(), min_len, tokens);
      y.clear();
      w.clear();
      row_len.clear();
      for (auto i : idx) {
        y.push_back(labels[i]);
        if (!weights.empty())
          w.push_back(weights[i]);
        // As score_encoded: a row shorter than the widest kernel is padded to it.
        row_len.push_back(
          static_cast<int64_t>(std::max(seqs[i].size(), static_cast<size_t>(min_len))));
      }
      auto loss = d.model().train_step(tokens, static_cast<int>(idx.size()), len, y,
                                       weights.empty() ? nullptr : &w,
                                       opts.row_lengths ? &row_len : nullptr);
      if (!loss)
        return loss.error();
      loss_sum += *loss;
      auto now = clock_type::now();
      if (opts.progress != nullptr
          && (bi + 1 == batches.size()
              || (tty && now - last_print > std::chrono::milliseconds(250)))) {
        last_print = now;
        double el = std::chrono::duration<double>(now - t0).count();
        double eta = el / static_cast<double>(bi + 1)
                     * static_cast<double>(batches.size() - bi - 1);
        char buf[256];
        std::snprintf(buf, sizeof(buf), "%s%sepoch %d/%d batch %zu/%zu loss %.4f ETA %s",
                      opts.label.c_str(), opts.label.empty() ? "" : " ", epoch, max_epochs, bi + 1,
                      batches.size(), loss_sum / static_cast<double>(bi + 1), hms(eta).c_str());
        if (tty)
          *opts.progress << "\r" << buf << "\033[K" << std::flush;
        else if (bi + 1 == batches.size())
          *opts.progress << buf;
      }
    }
    double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
    res.epoch_seconds.push_back(secs);
    res.train_loss.push_back(loss_sum / static_cast<double>(batches.size()));
    res.epochs_run = epoch;
    res.learning_rate.push_back(lr);
    if (validation.empty()) {
      res.best_epoch = epoch;
      if (opts.progress)
        *opts.progress << " (" << hms(secs) << ")\n" << std::flush;
      continue;
    }
    caf::error err;
    double vl = validation_loss(d, seqs, labels, validation, err);
    if (err)
      return err;
    res.validation_loss.push_back(vl);
    if (opts.progress) {
      char buf[128];
      std::snprintf(buf, sizeof(buf), " val_loss %.5f (%s)\n", vl, hms(secs).c_str());
      *opts.progress << buf << std::flush;
    }
    if (vl < res.best_validation_loss) {
      res.best_validation_loss = vl;
      res.best_epoch = epoch;
      since_best = 0;
      auto w = d.model().save({});
      if (!w)
        return w.error();
      best_weights = std::move(*w);
    } else if (++since_best >= (res.lr_drops > 0 && opts.patience_after_drop > 0
                                  ? opts.patience_after_drop
                                  : opts.patience)) {
      if (res.lr_drops >= opts.lr_drops)
        break;
      lr *= opts.lr_decay;
      if (auto err = restore_best(lr))
        return err;
      if (opts.on_plateau)
        if (auto err = opts.on_plateau(res.lr_drops))
          return err;
      ++res.lr_drops;
      since_best = 0;
      if (opts.progress) {
        char buf[128];
        std::snprintf(buf, sizeof(buf), "%s%sback to epoch %d, learning rate %.3g\n",
                      opts.label.c_str(), opts.label.empty() ? "" : " ", res.best_epoch,
                      static_cast<double>(lr));
        *opts.progress << buf << std::flush;
      }
    }
  }
  if (!best_weights.empty() && res.best_epoch != res.epochs_run) {
    if (auto err = restore_best(base_lr))
      return err;
  } else if (lr != base_lr) {
    if (auto err = d.model().set_learning_rate(base_lr))
      return err;
  }
  return res;
}

caf::expected<trained_detector> train_detector(const csic_dataset& ds, const detector_config& cfg,
                                               double validation_share, const train_options& opts,
                                               const augment_options& aug, double target_fp,
                                               const std::vector<const http_request*>& site) {
  std::vector<std::string> texts;
  std::vector<int> labels;
  for (auto& r : ds.requests) {
    texts.push_back(to_model_text(r.request, cfg.text));
    labels.push_back(r.label);
  }
  const size_t n_csic = texts.size();
  std::vector<size_t> all(n_csic);
  for (size_t i = 0; i < all.size(); ++i)
    all[i] = i;
  auto tv = validation_split(all, labels, validation_share, opts.seed + 17);
  // Payload sets go into the training part's normal requests; calibration uses the
  // validation part's, which training never sees.
  std::vector<const http_request*> train_normal, held_normal;
  for (auto i : tv.train)
    if (labels[i] == 0)
      train_normal.push_back(&ds.requests[i].request);
  for (auto i : tv.test)
    if (labels[i] == 0)
      held_normal.push_back(&ds.requests[i].request);
  size_t augmented = 0;
  if (aug.payloads) {
    auto extra = augmentation(train_normal, aug);
    if (!extra)
      return extra.error();
    for (auto& r : *extra) {
      tv.train.push_back(texts.size());
      texts.push_back(to_model_text(r.request, cfg.text));
      labels.push_back(r.label);
    }
    augmented = extra->size();
    if (opts.progress)
      *opts.progress << "payload sets: " << augmented << " requests added to training\n";
  }
  std::vector<std::string_view> corpus(texts.begin(), texts.end());
  auto t0 = clock_type::now();
  auto tok = bbpe_tokenizer::train(corpus, cfg.vocab_size);
  if (!tok)
    return tok.error();
  double tok_secs = std::chrono::duration<double>(clock_type::now() - t0).count();
  if (opts.progress)
    *opts.progress << "tokenizer: " << tok->vocab_size() << " ids in " << tok_secs << " s\n";
  auto model = textcnn_classifier::create(cfg.model);
  if (!model)
    return model.error();
  auto saved_cfg = cfg;
  saved_cfg.held_out = aug.payloads ? aug.holdout : std::vector<std::string>{};
  trained_detector out{
    detector{std::move(*tok), std::move(*model), saved_cfg}, {}, tok_secs, {}, 0};
  auto& d = out.model;
  std::vector<std::vector<int32_t>> seqs;
  seqs.reserve(texts.size());
  for (auto& t : texts)
    seqs.push_back(d.encode_text(t));
  auto res = train_model(d, seqs, labels, tv.train, tv.test, opts,
                         augmented_weights(texts.size(), n_csic, opts.augmented_weight));
  if (!res)
    return res.error();
  out.training = std::move(*res);
  // Validation figures of the kept weights.
  std::vector<std::vector<int32_t>> vs;
  vs.reserve(tv.test.size());
  for (auto i : tv.test)
    vs.push_back(seqs[i]);
  auto p = d.score_encoded(vs);
  if (!p)
    return p.error();
  for (size_t k = 0; k < tv.test.size(); ++k)
    out.validation.add(labels[tv.test[k]], (*p)[k] >= 0.5f);
  out.validation_size = tv.test.size();
  out.augmented = augmented;
  if (aug.payloads) {
    auto c = calibrate(d, held_normal, *aug.payloads, target_fp, opts.seed + 29, site);
    if (!c)
      return c.error();
    d.set_threshold(c->threshold, c->describe());
    out.calibration = *c;
  }
  return out;
}

std::vector<const http_request*> held_out_normal(const csic_dataset& ds, double validation_share,
                                                 uint64_t seed) {
  // The same split as train_detector's.
  std::vector<int> labels;
  labels.reserve(ds.requests.size());
  for (auto& r : ds.requests)
    labels.push_back(r.label);
  std::vector<size_t> all(ds.requests.size());
  for (size_t i = 0; i < all.size(); ++i)
    all[i] = i;
  auto tv = validation_split(all, labels, validation_share, seed + 17);
  std::vector<const http_request*> out;
  for (auto i : tv.test)
    if (labels[i] == 0)
      out.push_back(&ds.requests[i].request);
  return out;
}

} // namespace comb::anomaly
