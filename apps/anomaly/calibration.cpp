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
  char buf[320];
  std::snprintf(buf, sizeof buf,
                "threshold %.6f chosen for <= 1%% false positives on %zu benign values (%zu in "
                "non-Latin scripts) put into CSIC normal requests and %zu CSIC normal requests, "
                "none trained on: FP %.4f (non-Latin %.4f)",
                static_cast<double>(threshold), benign_values, non_latin_values, csic_normal,
                fp_all, fp_non_latin);
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
  std::vector<float> nl;
  for (size_t i = 0; i < p->size(); ++i)
    if (non_latin[i])
      nl.push_back((*p)[i]);
  calibration_result c;
  c.benign_values = inj->size();
  c.non_latin_values = nl.size();
  c.csic_normal = bases.size();
  c.threshold = std::max(threshold_for(*p, target_fp), threshold_for(nl, target_fp));
  size_t fp = 0, fp_nl = 0;
  for (size_t i = 0; i < p->size(); ++i)
    if ((*p)[i] >= c.threshold) {
      ++fp;
      fp_nl += non_latin[i];
    }
  c.fp_all = p->empty() ? 0 : static_cast<double>(fp) / static_cast<double>(p->size());
  c.fp_non_latin = nl.empty() ? 0 : static_cast<double>(fp_nl) / static_cast<double>(nl.size());
  return c;
}

} // namespace comb::anomaly
