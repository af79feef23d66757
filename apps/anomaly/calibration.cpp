// Augmentation and calibration (see calibration.hpp).
#include "apps/anomaly/calibration.hpp"

#include "base/errc.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>

namespace comb::anomaly {

caf::expected<std::vector<labeled_request>> augmentation(
  const std::vector<const http_request*>& bases, const augment_options& opts) {
  std::vector<labeled_request> out;
  if (!opts.payloads)
    return out;
  for (auto& h : opts.holdout) {
    bool found = false;
    for (auto& s : opts.payloads->attacks)
      found = found || s.name == h;
    if (!found)
      return make_error(errc::invalid_argument,
                        "held-out family '" + h + "' is not among the attack payload sets");
  }
  std::vector<payload_set> attacks;
  for (auto& s : opts.payloads->attacks)
    if (std::find(opts.holdout.begin(), opts.holdout.end(), s.name) == opts.holdout.end())
      attacks.push_back(s);
  auto inject = [&](const std::vector<const http_request*>& into, int attack_copies,
                    int benign_copies, uint64_t seed) -> caf::error {
    injection_options io;
    io.uses = {line_use::train};
    io.seed = seed;
    io.copies = attack_copies;
    auto a = inject_sets(into, attacks, io);
    if (!a)
      return a.error();
    io.copies = benign_copies;
    io.seed = seed + 1;
    auto b = inject_sets(into, opts.payloads->benign, io);
    if (!b)
      return b.error();
    out.reserve(out.size() + a->size() + b->size());
    for (auto& r : *a)
      out.push_back(std::move(r.request));
    for (auto& r : *b)
      out.push_back(std::move(r.request));
    return {};
  };
  if (auto err = inject(bases, opts.attack_copies, opts.benign_copies, opts.seed))
    return err;
  if (!opts.site.empty()) {
    for (auto* r : opts.site)
      out.push_back(labeled_request{{}, *r, 0, 0});
    if (auto err = inject(opts.site, opts.site_copies, opts.site_copies, opts.seed + 7))
      return err;
  }
  return out;
}

float threshold_for(std::vector<float> scores, double target_fp) {
  if (scores.empty())
    return 0.0f;
  std::sort(scores.begin(), scores.end(), std::greater<>());
  auto allowed = static_cast<size_t>(std::floor(target_fp * static_cast<double>(scores.size())));
  if (allowed >= scores.size())
    return 0.0f;
  // Flag at most `allowed`: the threshold lies just above the (allowed+1)-th highest score.
  float t = std::nextafter(scores[allowed], 2.0f);
  return std::min(t, 1.0f);
}

float threshold_for_weighted(const std::vector<float>& scores, const std::vector<double>& weights,
                             double target_fp) {
  double total = 0;
  for (size_t i = 0; i < scores.size() && i < weights.size(); ++i)
    total += weights[i];
  if (scores.empty() || !(total > 0))
    return 0.0f;
  std::vector<size_t> order(std::min(scores.size(), weights.size()));
  for (size_t i = 0; i < order.size(); ++i)
    order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  // A relative slack so that equal weights summing to exactly the allowance are not refused
  // by rounding.
  const double allowed = target_fp * total * (1 + 1e-9);
  double flagged = 0;
  for (size_t k = 0; k < order.size();) {
    // Scores that tie are flagged together or not at all.
    size_t end = k;
    double group = 0;
    while (end < order.size() && scores[order[end]] == scores[order[k]])
      group += weights[order[end++]];
    if (flagged + group > allowed)
      return std::min(std::nextafter(scores[order[k]], 2.0f), 1.0f);
    flagged += group;
    k = end;
  }
  return 0.0f;
}

std::string calibration_result::describe() const {
  char site_part[160] = "";
  if (site_requests > 0)
    std::snprintf(site_part, sizeof site_part,
                  ", %zu benign requests of another site (Nectar sessions, FP %.4f)", site_requests,
                  fp_site);
  char buf[700];
  std::snprintf(buf, sizeof buf,
                "threshold %.6f chosen for <= %.2f%% false positives on each of: %zu benign "
                "values of %zu sets, each set weighing the same, put into CSIC normal requests "
                "(FP %.4f; worst set %s %.4f), the %zu of them in non-Latin scripts (FP %.4f), "
                "%zu CSIC normal requests (FP %.4f)%s; none trained on",
                static_cast<double>(threshold), target_fp * 100, benign_values, benign_sets, fp_all,
                worst_set.c_str(), fp_worst_set, non_latin_values, fp_non_latin, csic_normal,
                fp_csic, site_part);
  return buf;
}

caf::expected<calibration_result> calibrate(detector& d,
                                            const std::vector<const http_request*>& bases,
                                            const payload_dir& payloads, double target_fp,
                                            uint64_t seed,
                                            const std::vector<const http_request*>& site) {
  injection_options io;
  io.uses = {line_use::calibration};
  io.seed = seed;
  auto inj = inject_sets(bases, payloads.benign, io);
  if (!inj)
    return inj.error();
  std::vector<std::vector<int32_t>> seqs;
  std::vector<char> non_latin;
  std::vector<size_t> per_set(payloads.benign.size(), 0);
  for (auto& r : *inj)
    ++per_set[r.set];
  for (auto& r : *inj) {
    seqs.push_back(d.encode_text(to_model_text(r.request.request, d.config().text)));
    non_latin.push_back(has_non_latin(r.line) ? 1 : 0);
  }
  for (auto* b : bases) {
    seqs.push_back(d.encode_text(to_model_text(*b, d.config().text)));
    non_latin.push_back(0);
  }
  for (auto* b : site) {
    seqs.push_back(d.encode_text(to_model_text(*b, d.config().text)));
    non_latin.push_back(0);
  }
  auto p = d.score_encoded(seqs);
  if (!p)
    return p.error();
  // Each group on its own (benign values, those in non-Latin scripts, CSIC's normal
  // requests, the other site's): pooled, CSIC's near-zero scores would dilute the values'
  // false positives. Each benign set weighs the same: by line count, the large sets (country
  // names in 150 locales) set the threshold and the small hard ones (JSON, search queries)
  // went over the target on lines calibration did not see.
  std::vector<float> values, nl, csic, other;
  std::vector<double> weights;
  const size_t n_inj = inj->size(), n_bases = bases.size();
  for (size_t i = 0; i < p->size(); ++i) {
    float x = (*p)[i];
    if (i < n_inj) {
      values.push_back(x);
      weights.push_back(1.0 / static_cast<double>(per_set[(*inj)[i].set]));
    } else if (i < n_inj + n_bases) {
      csic.push_back(x);
    } else {
      other.push_back(x);
    }
    if (non_latin[i])
      nl.push_back(x);
  }
  calibration_result c;
  c.target_fp = target_fp;
  c.benign_values = n_inj;
  for (auto n : per_set)
    c.benign_sets += n > 0 ? 1 : 0;
  c.non_latin_values = nl.size();
  c.csic_normal = n_bases;
  c.site_requests = other.size();
  c.threshold = std::max({threshold_for_weighted(values, weights, target_fp),
                          threshold_for(nl, target_fp), threshold_for(csic, target_fp),
                          threshold_for(other, target_fp)});
  auto rate = [&](const std::vector<float>& xs) {
    size_t fp = 0;
    for (auto x : xs)
      fp += x >= c.threshold ? 1 : 0;
    return xs.empty() ? 0.0 : static_cast<double>(fp) / static_cast<double>(xs.size());
  };
  std::vector<size_t> set_fp(per_set.size(), 0);
  double w_fp = 0, w_all = 0;
  for (size_t i = 0; i < n_inj; ++i) {
    bool f = values[i] >= c.threshold;
    set_fp[(*inj)[i].set] += f ? 1 : 0;
    w_fp += f ? weights[i] : 0;
    w_all += weights[i];
  }
  c.fp_all = w_all > 0 ? w_fp / w_all : 0.0;
  for (size_t s = 0; s < per_set.size(); ++s) {
    if (per_set[s] == 0)
      continue;
    double r = static_cast<double>(set_fp[s]) / static_cast<double>(per_set[s]);
    if (c.worst_set.empty() || r > c.fp_worst_set) {
      c.fp_worst_set = r;
      c.worst_set = payloads.benign[s].name;
    }
  }
  c.fp_non_latin = rate(nl);
  c.fp_csic = rate(csic);
  c.fp_site = rate(other);
  return c;
}

} // namespace comb::anomaly
