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
  injection_options io;
  io.uses = {line_use::train};
  io.seed = opts.seed;
  io.copies = opts.attack_copies;
  auto a = inject_sets(bases, attacks, io);
  if (!a)
    return a.error();
  io.copies = opts.benign_copies;
  io.seed = opts.seed + 1;
  auto b = inject_sets(bases, opts.payloads->benign, io);
  if (!b)
    return b.error();
  out.reserve(a->size() + b->size());
  for (auto& r : *a)
    out.push_back(std::move(r.request));
  for (auto& r : *b)
    out.push_back(std::move(r.request));
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

std::string calibration_result::describe() const {
  char buf[400];
  std::snprintf(buf, sizeof buf,
                "threshold %.6f chosen for <= %.2f%% false positives on each of: %zu benign "
                "values put into CSIC normal requests (FP %.4f), the %zu of them in non-Latin "
                "scripts (FP %.4f), %zu CSIC normal requests (FP %.4f); none trained on",
                static_cast<double>(threshold), target_fp * 100, benign_values, fp_all,
                non_latin_values, fp_non_latin, csic_normal, fp_csic);
  return buf;
}

caf::expected<calibration_result> calibrate(detector& d,
                                            const std::vector<const http_request*>& bases,
                                            const payload_dir& payloads, double target_fp,
                                            uint64_t seed) {
  injection_options io;
  io.uses = {line_use::calibration};
  io.seed = seed;
  auto inj = inject_sets(bases, payloads.benign, io);
  if (!inj)
    return inj.error();
  std::vector<std::vector<int32_t>> seqs;
  std::vector<char> non_latin;
  for (auto& r : *inj) {
    seqs.push_back(d.encode_text(to_model_text(r.request.request, d.config().text)));
    non_latin.push_back(has_non_latin(r.line) ? 1 : 0);
  }
  for (auto* b : bases) {
    seqs.push_back(d.encode_text(to_model_text(*b, d.config().text)));
    non_latin.push_back(0);
  }
  auto p = d.score_encoded(seqs);
  if (!p)
    return p.error();
  // Each group on its own (benign values, those in non-Latin scripts, CSIC's normal
  // requests): pooled, CSIC's near-zero scores would dilute the values' false positives.
  std::vector<float> values, nl, csic;
  for (size_t i = 0; i < p->size(); ++i) {
    if (i >= inj->size())
      csic.push_back((*p)[i]);
    else
      values.push_back((*p)[i]);
    if (non_latin[i])
      nl.push_back((*p)[i]);
  }
  calibration_result c;
  c.target_fp = target_fp;
  c.benign_values = inj->size();
  c.non_latin_values = nl.size();
  c.csic_normal = bases.size();
  c.threshold = std::max({threshold_for(values, target_fp), threshold_for(nl, target_fp),
                          threshold_for(csic, target_fp)});
  auto rate = [&](const std::vector<float>& xs) {
    size_t fp = 0;
    for (auto x : xs)
      fp += x >= c.threshold ? 1 : 0;
    return xs.empty() ? 0.0 : static_cast<double>(fp) / static_cast<double>(xs.size());
  };
  c.fp_all = rate(values);
  c.fp_non_latin = rate(nl);
  c.fp_csic = rate(csic);
  return c;
}

} // namespace comb::anomaly
