// Out-of-distribution evaluation (see ood_eval.hpp).
#include "apps/anomaly/ood_eval.hpp"

#include "apps/anomaly/calibration.hpp"

#include <algorithm>
#include <cstdio>

namespace comb::anomaly {

caf::expected<ood_suite> make_ood_suite(const std::vector<const http_request*>& bases,
                                        const payload_dir& dir, const ood_options& opts) {
  ood_suite s;
  s.sets = dir.attacks;
  s.sets.insert(s.sets.end(), dir.benign.begin(), dir.benign.end());
  injection_options io;
  io.uses = opts.uses;
  io.per_set = opts.per_set;
  io.seed = opts.seed;
  auto inj = inject_sets(bases, s.sets, io);
  if (!inj)
    return inj.error();
  s.cases.reserve(inj->size());
  for (auto& r : *inj)
    s.cases.push_back(
      {r.set, r.request.label == 1, has_non_latin(r.line), std::move(r.request.request)});
  return s;
}

ood_column model_column(const std::vector<float>& scores, float threshold, std::string name) {
  ood_column c{std::move(name), {}};
  c.flagged.reserve(scores.size());
  for (auto s : scores)
    c.flagged.push_back(s >= threshold);
  return c;
}

ood_column or_column(const ood_column& a, const ood_column& b, std::string name) {
  ood_column c{std::move(name), {}};
  for (size_t i = 0; i < a.flagged.size() && i < b.flagged.size(); ++i)
    c.flagged.push_back(a.flagged[i] || b.flagged[i]);
  return c;
}

float ood_threshold(const ood_suite& suite, const std::vector<float>& scores, double target_fp) {
  std::vector<float> benign;
  for (size_t i = 0; i < suite.cases.size() && i < scores.size(); ++i)
    if (!suite.cases[i].attack)
      benign.push_back(scores[i]);
  return threshold_for(std::move(benign), target_fp);
}

std::string ood_table(const ood_suite& suite, const std::vector<ood_column>& columns,
                      const std::vector<std::string>& held_out) {
  std::vector<bool> held(suite.sets.size(), false);
  bool any_held = false;
  for (size_t si = 0; si < suite.sets.size(); ++si) {
    held[si] = suite.sets[si].attack
               && std::find(held_out.begin(), held_out.end(), suite.sets[si].name)
                    != held_out.end();
    any_held = any_held || held[si];
  }
  std::string out;
  char buf[64];
  auto header = [&](const char* first) {
    std::snprintf(buf, sizeof buf, "  %-22s %6s", first, "n");
    out += buf;
    for (auto& c : columns) {
      out += "  ";
      out += c.name;
    }
    out += "\n";
  };
  auto row = [&](const std::string& name, auto&& pick) {
    size_t n = 0;
    std::vector<size_t> hits(columns.size(), 0);
    for (size_t i = 0; i < suite.cases.size(); ++i) {
      if (!pick(suite.cases[i]))
        continue;
      ++n;
      for (size_t c = 0; c < columns.size(); ++c)
        hits[c] += columns[c].flagged[i] ? 1 : 0;
    }
    if (n == 0)
      return;
    std::snprintf(buf, sizeof buf, "  %-22s %6zu", name.c_str(), n);
    out += buf;
    for (size_t c = 0; c < columns.size(); ++c) {
      auto width = static_cast<int>(columns[c].name.size());
      std::snprintf(buf, sizeof buf, "  %*.4f", width,
                    static_cast<double>(hits[c]) / static_cast<double>(n));
      out += buf;
    }
    out += "\n";
  };
  header("attack family (recall)");
  for (size_t si = 0; si < suite.sets.size(); ++si)
    if (suite.sets[si].attack)
      row(suite.sets[si].name + (held[si] ? " (held out)" : ""),
          [&](const ood_case& c) { return c.set == si; });
  row("all attacks", [](const ood_case& c) { return c.attack; });
  if (any_held) {
    row("held-out families", [&](const ood_case& c) { return c.attack && held[c.set]; });
    row("trained families", [&](const ood_case& c) { return c.attack && !held[c.set]; });
  }
  header("benign set (FP rate)");
  for (size_t si = 0; si < suite.sets.size(); ++si)
    if (!suite.sets[si].attack)
      row(suite.sets[si].name, [&](const ood_case& c) { return c.set == si; });
  row("all benign", [](const ood_case& c) { return !c.attack; });
  row("benign, non-Latin", [](const ood_case& c) { return !c.attack && c.non_latin; });
  return out;
}

} // namespace comb::anomaly
