// The Nectar report (see report.hpp): truth lines joined with the captured and labeled rows
// of a spooled store.
#include "apps/nectar/report.hpp"

#include "base/errc.hpp"
#include "storage/sql_store.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <unordered_map>

namespace comb::nectar {

namespace {

// The latest value of each row of one Comb table, with the commit time of its first change.
struct table_rows {
  struct row {
    nlohmann::json value;
    int64_t first_ts_ns = 0;
  };
  std::unordered_map<std::string, row> rows;
};

// A JSON field as text: strings as they are, numbers printed ("" when absent or null).
std::string field_text(const nlohmann::json& v, const char* key) {
  if (!v.is_object() || !v.contains(key))
    return {};
  auto& f = v[key];
  if (f.is_string())
    return f.get<std::string>();
  if (f.is_null())
    return {};
  return f.dump();
}

// A 0/1 label field (bool or number); -1 when absent.
int label_field(const nlohmann::json& v, const char* key) {
  if (!v.is_object() || !v.contains(key))
    return -1;
  auto& f = v[key];
  if (f.is_boolean())
    return f.get<bool>() ? 1 : 0;
  if (f.is_number())
    return f.get<double>() != 0 ? 1 : 0;
  if (f.is_string())
    return f.get<std::string>() == "1" || f.get<std::string>() == "true" ? 1 : 0;
  return -1;
}

int64_t int_field(const nlohmann::json& v, const char* key) {
  if (!v.is_object() || !v.contains(key) || !v[key].is_number())
    return 0;
  return v[key].get<int64_t>();
}

// Reads the rows of every Comb table whose name ends in `suffix` ("httplog_request" matches
// "httplog_request" and "nectar.httplog_request"), from the store's row_events.
caf::expected<table_rows> read_rows(storage::sql_store& store, const std::string& suffix) {
  auto names = store.query("SELECT DISTINCT table_name FROM row_events");
  if (!names)
    return std::move(names.error());
  table_rows out;
  for (auto& n : *names) {
    auto name = n["table_name"].get<std::string>();
    bool match = name == suffix
                 || (name.size() > suffix.size()
                     && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0
                     && (name[name.size() - suffix.size() - 1] == '.'
                         || name[name.size() - suffix.size() - 1] == '_'));
    if (!match)
      continue;
    auto rows = store.query("SELECT row_key, op, ts_ns, value FROM row_events WHERE table_name = "
                            "?1 ORDER BY lsn, seq",
                            {name});
    if (!rows)
      return std::move(rows.error());
    for (auto& r : *rows) {
      auto key = r["row_key"].is_string() ? r["row_key"].get<std::string>() : r["row_key"].dump();
      if (r["op"] == "delete") {
        out.rows.erase(key);
        continue;
      }
      auto text = r["value"].is_string() ? r["value"].get<std::string>() : std::string{};
      auto value = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
      auto& row = out.rows[key];
      if (row.first_ts_ns == 0 && r["ts_ns"].is_number())
        row.first_ts_ns = r["ts_ns"].get<int64_t>();
      row.value = std::move(value);
    }
  }
  return out;
}

double quantile(std::vector<double>& v, double q) {
  if (v.empty())
    return 0;
  auto i = std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(i), v.end());
  return v[i];
}

void add(label_scores& s, int truth, int rule, int model) {
  s.rule.add(truth, rule == 1);
  s.model.add(truth, model == 1);
  s.either.add(truth, rule == 1 || model == 1);
}

} // namespace

double fp_rate(const anomaly::binary_metrics& m) {
  return m.fp + m.tn == 0 ? 0.0 : static_cast<double>(m.fp) / static_cast<double>(m.fp + m.tn);
}

caf::expected<std::vector<truth_record>> read_truth(const std::string& file) {
  std::ifstream in{file, std::ios::binary};
  if (!in)
    return make_error(errc::invalid_argument, file + ": cannot read the truth file");
  std::vector<truth_record> out;
  std::string line;
  for (size_t n = 1; std::getline(in, line); ++n) {
    if (line.empty())
      continue;
    auto t = truth_record::parse(line);
    if (!t)
      return make_error(errc::invalid_argument,
                        file + ":" + std::to_string(n) + ": " + describe(t.error()));
    out.push_back(std::move(*t));
  }
  return out;
}

caf::expected<nectar_report> make_report(const std::vector<truth_record>& truth,
                                         storage::sql_store& store) {
  auto captured = read_rows(store, "httplog_request");
  if (!captured)
    return std::move(captured.error());
  auto labeled = read_rows(store, "httplog_request_labeled");
  if (!labeled)
    return std::move(labeled.error());
  if (captured->rows.empty())
    return make_error(errc::not_found,
                      "the store has no httplog_request rows (spool the node's log first: "
                      "comb log spool)");
  // Captured rows by trace id; labeled rows by request id.
  std::unordered_map<std::string, std::pair<std::string, const table_rows::row*>> by_trace;
  for (auto& [key, row] : captured->rows) {
    auto trace = field_text(row.value, "trace_id");
    if (!trace.empty())
      by_trace[trace] = {key, &row};
  }
  std::unordered_map<std::string, const table_rows::row*> label_of;
  for (auto& [key, row] : labeled->rows) {
    auto id = field_text(row.value, "request_id");
    label_of[id.empty() ? key : id] = &row;
  }
  nectar_report r;
  std::vector<double> lags;
  std::unordered_map<std::string, bool> seen;
  for (auto& t : truth) {
    r.requests += 1;
    bool attack = t.cls == "attack";
    (attack ? r.attacks : r.benign) += 1;
    auto c = by_trace.find(t.trace_id);
    bool answered = t.status > 0;
    if (c != by_trace.end())
      seen[t.trace_id] = true;
    if (!answered) {
      if (c != by_trace.end())
        r.unanswered_captured += 1;
      continue;
    }
    r.answered += 1;
    if (c == by_trace.end()) {
      r.not_captured += 1;
      r.not_captured_by_status[t.status] += 1;
      if (r.missing_examples.size() < 5)
        r.missing_examples.push_back(t.trace_id + " (not captured)");
      continue;
    }
    r.captured += 1;
    auto& [request_key, crow] = c->second;
    auto id = field_text(crow->value, "request_id");
    auto l = label_of.find(request_key);
    if (l == label_of.end() && !id.empty())
      l = label_of.find(id);
    if (l == label_of.end()) {
      r.not_labeled += 1;
      if (r.missing_examples.size() < 5)
        r.missing_examples.push_back(t.trace_id + " (not labeled)");
      continue;
    }
    r.labeled += 1;
    auto& lv = l->second->value;
    int model = label_field(lv, "label");
    int rule = label_field(lv, "rule_label");
    if (rule < 0)
      rule = label_field(crow->value, "rule_label");
    int truth_label = attack ? 1 : 0;
    add(r.all, truth_label, rule, model);
    if (attack)
      add(r.by_family[t.family], truth_label, rule, model);
    auto arrival = int_field(crow->value, "ts_ns");
    if (arrival > 0 && l->second->first_ts_ns > 0)
      lags.push_back(static_cast<double>(l->second->first_ts_ns - arrival) / 1e6);
  }
  // Each family is scored against all the benign requests: its negatives are the run's.
  for (auto& [family, s] : r.by_family) {
    for (auto [f, a] : {std::pair{&s.rule, &r.all.rule}, std::pair{&s.model, &r.all.model},
                        std::pair{&s.either, &r.all.either}}) {
      f->fp = a->fp;
      f->tn = a->tn;
    }
  }
  for (auto& [trace, _] : by_trace)
    if (!seen.count(trace))
      r.captured_without_truth += 1;
  r.lag_count = lags.size();
  if (!lags.empty()) {
    r.lag_max_ms = *std::max_element(lags.begin(), lags.end());
    r.lag_p50_ms = quantile(lags, 0.5);
    r.lag_p99_ms = quantile(lags, 0.99);
  }
  return r;
}

caf::expected<nectar_report> make_report(const std::string& sql, const std::string& truth_file) {
  auto truth = read_truth(truth_file);
  if (!truth)
    return std::move(truth.error());
  auto store = storage::sql_store::open(sql, /*read_only=*/true);
  if (!store)
    return std::move(store.error());
  return make_report(*truth, **store);
}

std::string to_string(const nectar_report& r) {
  std::ostringstream out;
  char buf[256];
  std::snprintf(
    buf, sizeof(buf),
    "requests %llu (benign %llu, attacks %llu), answered %llu, captured %llu, "
    "labeled %llu\n",
    static_cast<unsigned long long>(r.requests), static_cast<unsigned long long>(r.benign),
    static_cast<unsigned long long>(r.attacks), static_cast<unsigned long long>(r.answered),
    static_cast<unsigned long long>(r.captured), static_cast<unsigned long long>(r.labeled));
  out << buf;
  std::snprintf(buf, sizeof(buf),
                "answered but not captured: %llu; captured but not labeled: %llu%s\n",
                static_cast<unsigned long long>(r.not_captured),
                static_cast<unsigned long long>(r.not_labeled),
                r.not_captured + r.not_labeled == 0 ? " (none lost)" : "  <-- LOST");
  out << buf;
  if (!r.not_captured_by_status.empty()) {
    out << "  not captured, by status:";
    for (auto& [status, n] : r.not_captured_by_status)
      out << ' ' << status << '=' << n;
    out << '\n';
  }
  for (auto& m : r.missing_examples)
    out << "  e.g. " << m << '\n';
  if (r.unanswered_captured + r.captured_without_truth > 0) {
    std::snprintf(buf, sizeof(buf),
                  "not answered but captured: %llu; captured rows of other traffic: %llu\n",
                  static_cast<unsigned long long>(r.unanswered_captured),
                  static_cast<unsigned long long>(r.captured_without_truth));
    out << buf;
  }
  auto line = [&](const std::string& who, const char* label, const anomaly::binary_metrics& m) {
    std::snprintf(buf, sizeof(buf), "%-22s %-6s %9.4f %9.4f %9.4f %9.4f   %6zu %6zu %6zu %6zu\n",
                  who.c_str(), label, m.precision(), m.recall(), m.f1(), fp_rate(m), m.tp, m.fp,
                  m.tn, m.fn);
    out << buf;
  };
  std::snprintf(buf, sizeof(buf), "%-22s %-6s %9s %9s %9s %9s   %6s %6s %6s %6s\n", "requests",
                "label", "precision", "recall", "F1", "FP rate", "tp", "fp", "tn", "fn");
  out << buf;
  auto block = [&](const std::string& who, const label_scores& s) {
    line(who, "rule", s.rule);
    line(who, "model", s.model);
    line(who, "either", s.either);
  };
  block("all", r.all);
  for (auto& [family, s] : r.by_family)
    block("benign+" + family, s);
  if (r.lag_count > 0) {
    std::snprintf(buf, sizeof(buf),
                  "labeling lag (arrival to labeled row committed), %llu requests: p50 %.1f ms, "
                  "p99 %.1f ms, max %.1f ms\n",
                  static_cast<unsigned long long>(r.lag_count), r.lag_p50_ms, r.lag_p99_ms,
                  r.lag_max_ms);
    out << buf;
  }
  return out.str();
}

} // namespace comb::nectar
