// Running CRS over labeled requests (see crs_report.hpp).
#include "apps/anomaly/crs_report.hpp"

#include <algorithm>
#include <chrono>

namespace comb::anomaly {

std::string crs_report::top_false_positive_rules(size_t n) const {
  std::vector<std::pair<size_t, int>> v;
  for (auto& [rule, count] : false_positive_rules)
    v.emplace_back(count, rule);
  std::sort(v.begin(), v.end(), [](auto& a, auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  std::string out;
  for (size_t i = 0; i < std::min(n, v.size()); ++i) {
    if (!out.empty())
      out += ' ';
    out += std::to_string(v[i].second) + ":" + std::to_string(v[i].first);
  }
  return out.empty() ? "none" : out;
}

crs_report run_crs(const crs_engine& engine, const std::vector<labeled_request>& requests,
                   const std::vector<size_t>& indices) {
  using clock = std::chrono::steady_clock;
  crs_report rep;
  rep.engine = engine.name();
  size_t n = indices.empty() ? requests.size() : indices.size();
  std::vector<double> lat;
  lat.reserve(n);
  auto start = clock::now();
  for (size_t k = 0; k < n; ++k) {
    auto& r = requests[indices.empty() ? k : indices[k]];
    auto t0 = clock::now();
    auto v = engine.evaluate(r.request);
    lat.push_back(std::chrono::duration<double, std::milli>(clock::now() - t0).count());
    rep.metrics.add(r.label, v.flagged);
    if (v.flagged && r.label == 0) {
      std::sort(v.rules.begin(), v.rules.end());
      v.rules.erase(std::unique(v.rules.begin(), v.rules.end()), v.rules.end());
      for (int id : v.rules)
        if (id != 949110 && id != 980130)
          ++rep.false_positive_rules[id];
    }
  }
  rep.seconds = std::chrono::duration<double>(clock::now() - start).count();
  rep.requests_per_second = rep.seconds > 0 ? static_cast<double>(n) / rep.seconds : 0;
  if (!lat.empty()) {
    std::sort(lat.begin(), lat.end());
    rep.p50_ms = lat[lat.size() / 2];
    rep.p99_ms = lat[std::min(lat.size() - 1, lat.size() * 99 / 100)];
  }
  return rep;
}

caf::expected<std::vector<crs_report>> run_crs_peers(
  const std::vector<labeled_request>& requests, size_t sample,
  const std::function<void(const crs_report&)>& on_report) {
  std::vector<size_t> idx;
  size_t step = sample == 0 || sample >= requests.size() ? 1 : requests.size() / sample;
  for (size_t i = 0; i < requests.size(); i += step)
    idx.push_back(i);
  std::vector<crs_report> out;
  for (int pl : {1, 2})
    for (bool allow : {false, true}) {
      crs_options co;
      co.paranoia = pl;
      co.allow_accept_charset = allow;
      auto eng = crs_engine::create(co);
      if (!eng)
        return eng.error();
      out.push_back(run_crs(**eng, requests, idx));
      if (on_report)
        on_report(out.back());
    }
  return out;
}

} // namespace comb::anomaly
