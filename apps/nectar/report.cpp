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

double real_field(const nlohmann::json& v, const char* key) {
  if (!v.is_object() || !v.contains(key) || !v[key].is_number())
    return 0;
  return v[key].get<double>();
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

// A captured row without a trace id, as the fallback sees it.
struct untraced_row {
  int64_t ts_ns = 0;
  int status = 0;
  std::string method;
  /// Stem and query as the row holds them, without a trailing '?'.
  std::string target;
  const std::string* key = nullptr;
  const table_rows::row* row = nullptr;
  bool taken = false;
};

std::string strip_question(std::string s) {
  if (!s.empty() && s.back() == '?')
    s.pop_back();
  return s;
}

// The truth line's path (cut at 512 bytes by the generator) against a row's target.
bool same_target(const std::string& truth_path, const std::string& row_target) {
  auto t = strip_question(truth_path);
  if (truth_path.size() >= 512)
    return row_target.compare(0, t.size(), t) == 0;
  return t == row_target;
}

// Matches answered truth lines without a traced row (`lost`, indices into `truth`) to rows
// without a trace id: status, method and target must agree (a row without a method matches on
// status alone), and the row must be logged within [sent - 1 s, sent + 60 s]. Lines go in the
// order they were sent, each to the earliest row that fits; rows with a method first, so that
// a 414's bare row never takes the place of a row that names its request.
std::unordered_map<size_t, untraced_row*> match_untraced(const std::vector<truth_record>& truth,
                                                         std::vector<size_t> lost,
                                                         std::vector<untraced_row>& rows) {
  constexpr int64_t before_ns = 1'000'000'000, after_ns = 60'000'000'000;
  std::sort(lost.begin(), lost.end(),
            [&](size_t a, size_t b) { return truth[a].sent_ns < truth[b].sent_ns; });
  std::sort(rows.begin(), rows.end(),
            [](const untraced_row& a, const untraced_row& b) { return a.ts_ns < b.ts_ns; });
  std::unordered_map<size_t, untraced_row*> out;
  for (bool bare : {false, true}) {
    for (auto i : lost) {
      if (out.count(i))
        continue;
      auto& t = truth[i];
      auto from = t.sent_ns == 0 ? rows.begin()
                                 : std::lower_bound(rows.begin(), rows.end(), t.sent_ns - before_ns,
                                                    [](const untraced_row& r, int64_t ts) {
                                                      return r.ts_ns < ts;
                                                    });
      for (auto r = from; r != rows.end(); ++r) {
        if (t.sent_ns != 0 && r->ts_ns > t.sent_ns + after_ns)
          break;
        if (r->taken || r->status != t.status || r->method.empty() != bare)
          continue;
        if (!bare && (r->method != t.method || !same_target(t.path, r->target)))
          continue;
        r->taken = true;
        out[i] = &*r;
        break;
      }
    }
  }
  return out;
}

// Times of one outbox call on its way to the compute process and back (ns; 0: not seen).
struct call_times {
  uint64_t task = 0;
  int64_t sent = 0;     // dispatcher -> function actor (first)
  int64_t piece = 0;    // function actor -> compute process (first piece)
  int64_t result = 0;   // compute process -> function actor (last result)
  int64_t returned = 0; // function actor -> dispatcher (last)
};

// Start and end (ns) of the httplog.capture and httplog.labeled invocations, by execution id,
// and the times of every model call by its outbox key. Errors only when the store cannot be
// read; a store without these tables' rows gives empty maps.
caf::error read_stage_times(storage::sql_store& store,
                            std::unordered_map<int64_t, std::pair<int64_t, int64_t>>& invocations,
                            std::unordered_map<std::string, call_times>& calls) {
  auto inv = store.query("SELECT execution_id, start_ns, end_ns FROM func_invocations WHERE "
                         "procedure IN ('httplog.capture', 'httplog.labeled') AND status = 'ok'");
  if (!inv)
    return std::move(inv.error());
  for (auto& r : *inv)
    if (r["execution_id"].is_number() && r["start_ns"].is_number() && r["end_ns"].is_number())
      invocations[r["execution_id"].get<int64_t>()] = {r["start_ns"].get<int64_t>(),
                                                       r["end_ns"].get<int64_t>()};
  auto msgs = store.query("SELECT kind, ts_ns, execution_id, payload FROM messages WHERE kind IN "
                          "('function_call', 'piece', 'result', 'function_result') ORDER BY ts_ns");
  if (!msgs)
    return std::move(msgs.error());
  std::unordered_map<uint64_t, std::pair<int64_t, int64_t>> task_times; // first piece, last result
  for (auto& m : *msgs) {
    if (!m["ts_ns"].is_number() || !m["execution_id"].is_number())
      continue;
    auto ts = m["ts_ns"].get<int64_t>();
    auto task = static_cast<uint64_t>(m["execution_id"].get<int64_t>());
    auto kind = m["kind"].is_string() ? m["kind"].get<std::string>() : std::string{};
    if (kind == "piece" || kind == "result") {
      auto& tt = task_times[task];
      if (kind == "piece" && tt.first == 0)
        tt.first = ts;
      if (kind == "result")
        tt.second = ts;
      continue;
    }
    auto text = m["payload"].is_string() ? m["payload"].get<std::string>() : std::string{};
    auto payload = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    auto key = field_text(payload, "call");
    if (key.empty())
      continue;
    auto& c = calls[key];
    if (kind == "function_call" && c.sent == 0) {
      c.sent = ts;
      c.task = task;
    }
    if (kind == "function_result")
      c.returned = ts;
  }
  for (auto& [key, c] : calls) {
    auto t = task_times.find(c.task);
    if (t != task_times.end()) {
      c.piece = t->second.first;
      c.result = t->second.second;
    }
  }
  return {};
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
  std::unordered_map<int64_t, std::pair<int64_t, int64_t>> invocations;
  std::unordered_map<std::string, call_times> calls;
  if (auto err = read_stage_times(store, invocations, calls))
    return err;
  // Captured rows by trace id (and those without one); labeled rows by request id.
  using row_ref = std::pair<std::string, const table_rows::row*>;
  std::unordered_map<std::string, row_ref> by_trace;
  std::vector<untraced_row> untraced;
  for (auto& [key, row] : captured->rows) {
    auto trace = field_text(row.value, "trace_id");
    if (!trace.empty()) {
      by_trace[trace] = {key, &row};
      continue;
    }
    untraced_row u;
    u.ts_ns = int_field(row.value, "ts_ns");
    u.status = static_cast<int>(int_field(row.value, "sc_status"));
    u.method = field_text(row.value, "cs_method");
    auto stem = field_text(row.value, "cs_uri_stem");
    auto query = field_text(row.value, "cs_uri_query");
    u.target = query.empty() ? stem : stem + "?" + query;
    u.key = &key;
    u.row = &row;
    untraced.push_back(std::move(u));
  }
  std::unordered_map<std::string, const table_rows::row*> label_of;
  for (auto& [key, row] : labeled->rows) {
    auto id = field_text(row.value, "request_id");
    label_of[id.empty() ? key : id] = &row;
  }
  std::vector<size_t> lost;
  for (size_t i = 0; i < truth.size(); ++i)
    if (truth[i].status > 0 && !by_trace.count(truth[i].trace_id))
      lost.push_back(i);
  auto matched = match_untraced(truth, std::move(lost), untraced);

  // The stages of the lag, in the pipeline's order.
  static const char* stage_names[] = {
    "handler (arrival -> response written; 0 labeled from arrival)",
    "rules (-> CRS done, queued for capture)",
    "capture queue (-> httplog.capture starts)",
    "capture txn (httplog.capture runs)",
    "to dispatch (commit -> model call sent)",
    "function actor (-> first piece sent)",
    "compute (pieces -> result back)",
    "result to dispatcher",
    "to result proc (-> httplog.labeled starts)",
    "result txn (httplog.labeled runs)",
  };
  constexpr size_t n_stages = sizeof(stage_names) / sizeof(stage_names[0]);
  std::vector<std::vector<double>> stage_ms(n_stages);

  nectar_report r;
  std::vector<double> lags, after_response, lags_sent;
  std::unordered_map<std::string, bool> seen;
  for (size_t ti = 0; ti < truth.size(); ++ti) {
    auto& t = truth[ti];
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
    row_ref found;
    if (c != by_trace.end()) {
      found = c->second;
    } else if (auto m = matched.find(ti); m != matched.end()) {
      found = {*m->second->key, m->second->row};
      r.matched_without_trace += 1;
    } else {
      r.not_captured += 1;
      r.not_captured_by_status[t.status] += 1;
      if (r.missing_examples.size() < 5)
        r.missing_examples.push_back(t.trace_id + " (not captured)");
      continue;
    }
    r.captured += 1;
    auto& [request_key, crow] = found;
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
    {
      auto why = field_text(lv, "rule_ids");
      if (why.empty())
        why = field_text(crow->value, "rule_ids");
      if (why == "timed out")
        (attack ? r.rules_timed_out_attacks : r.rules_timed_out_benign) += 1;
      else if (why == "crashed")
        r.rules_crashed += 1;
      else if (why == "budget exhausted")
        (attack ? r.rules_budget_attacks : r.rules_budget_benign) += 1;
    }
    add(r.all, truth_label, rule, model);
    if (attack)
      add(r.by_family[t.family], truth_label, rule, model);
    // The lag of the timed traffic: the warm-up's registrations (a closed-loop burst before
    // the clock, each a scrypt hash) are not the rate under test.
    if (t.warmup) {
      r.lag_warmup_excluded += 1;
      continue;
    }
    auto arrival = int_field(crow->value, "ts_ns");
    double taken_ms = real_field(crow->value, "time_taken_ms");
    if (arrival > 0 && l->second->first_ts_ns > 0) {
      lags.push_back(static_cast<double>(l->second->first_ts_ns - arrival) / 1e6);
      // Captured at arrival, a request may be labeled before its response is written: 0.
      after_response.push_back(std::max(0.0, lags.back() - taken_ms));
      r.labeled_before_response += lags.back() < taken_ms ? 1 : 0;
      if (t.sent_ns > 0)
        lags_sent.push_back(static_cast<double>(l->second->first_ts_ns - t.sent_ns) / 1e6);
    }
    // The stages, when the store has every time of this request.
    auto queued = int_field(crow->value, "queued_ns");
    // Labeled from its arrival, the model call was enqueued by an earlier capture call than
    // the one that inserted its row.
    auto label_exec = int_field(crow->value, "label_execution");
    auto cap = invocations.find(label_exec > 0 ? label_exec
                                               : int_field(crow->value, "capture_execution"));
    auto lab = invocations.find(int_field(lv, "labeled_ns"));
    auto call = calls.find(field_text(lv, "call"));
    if (arrival <= 0 || queued <= 0 || cap == invocations.end() || lab == invocations.end()
        || call == calls.end() || call->second.sent == 0 || call->second.piece == 0
        || call->second.result == 0 || call->second.returned == 0)
      continue;
    auto& ct = call->second;
    // A request labeled from its arrival is queued for capture before its handler runs: the
    // handler is not on its label's path.
    bool at_arrival = field_text(crow->value, "labeled_from") == "arrival";
    const double points[] = {
      static_cast<double>(arrival) / 1e6,
      static_cast<double>(arrival) / 1e6 + (at_arrival ? 0.0 : taken_ms),
      static_cast<double>(queued) / 1e6,
      static_cast<double>(cap->second.first) / 1e6,
      static_cast<double>(cap->second.second) / 1e6,
      static_cast<double>(ct.sent) / 1e6,
      static_cast<double>(ct.piece) / 1e6,
      static_cast<double>(ct.result) / 1e6,
      static_cast<double>(ct.returned) / 1e6,
      static_cast<double>(lab->second.first) / 1e6,
      static_cast<double>(lab->second.second) / 1e6,
    };
    for (size_t s = 0; s < n_stages; ++s)
      stage_ms[s].push_back(points[s + 1] - points[s]);
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
  for (auto& u : untraced)
    if (!u.taken)
      r.untraced_unmatched += 1;
  r.lag_count = lags.size();
  if (!lags.empty()) {
    r.lag_max_ms = *std::max_element(lags.begin(), lags.end());
    r.lag_p50_ms = quantile(lags, 0.5);
    r.lag_p99_ms = quantile(lags, 0.99);
    r.after_response_p50_ms = quantile(after_response, 0.5);
    r.after_response_p99_ms = quantile(after_response, 0.99);
  }
  if (!lags_sent.empty()) {
    r.lag_sent_p50_ms = quantile(lags_sent, 0.5);
    r.lag_sent_p99_ms = quantile(lags_sent, 0.99);
  }
  if (!stage_ms[0].empty())
    for (size_t s = 0; s < n_stages; ++s) {
      auto& v = stage_ms[s];
      lag_stage st;
      st.name = stage_names[s];
      st.count = v.size();
      double sum = 0;
      for (double x : v)
        sum += x;
      st.mean_ms = sum / static_cast<double>(v.size());
      st.p50_ms = quantile(v, 0.5);
      st.p99_ms = quantile(v, 0.99);
      r.lag_stages.push_back(std::move(st));
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
  if (r.rules_timed_out_attacks + r.rules_timed_out_benign + r.rules_crashed
        + r.rules_budget_attacks + r.rules_budget_benign
      > 0) {
    std::snprintf(buf, sizeof(buf),
                  "rule label not CRS's verdict (flagged): timed out %llu (attacks %llu, benign "
                  "%llu), worker crashed %llu, client budget exhausted %llu (attacks %llu, "
                  "benign %llu)\n",
                  static_cast<unsigned long long>(r.rules_timed_out_attacks
                                                  + r.rules_timed_out_benign),
                  static_cast<unsigned long long>(r.rules_timed_out_attacks),
                  static_cast<unsigned long long>(r.rules_timed_out_benign),
                  static_cast<unsigned long long>(r.rules_crashed),
                  static_cast<unsigned long long>(r.rules_budget_attacks + r.rules_budget_benign),
                  static_cast<unsigned long long>(r.rules_budget_attacks),
                  static_cast<unsigned long long>(r.rules_budget_benign));
    out << buf;
  }
  if (r.matched_without_trace > 0) {
    std::snprintf(buf, sizeof(buf),
                  "captured without a trace id (refused by the HTTP parser), matched by status, "
                  "method, target and time: %llu\n",
                  static_cast<unsigned long long>(r.matched_without_trace));
    out << buf;
  }
  if (!r.not_captured_by_status.empty()) {
    out << "  not captured, by status:";
    for (auto& [status, n] : r.not_captured_by_status)
      out << ' ' << status << '=' << n;
    out << '\n';
  }
  for (auto& m : r.missing_examples)
    out << "  e.g. " << m << '\n';
  if (r.unanswered_captured + r.captured_without_truth + r.untraced_unmatched > 0) {
    std::snprintf(buf, sizeof(buf),
                  "not answered but captured: %llu; captured rows of other traffic: %llu; rows "
                  "without a trace id that no request took: %llu\n",
                  static_cast<unsigned long long>(r.unanswered_captured),
                  static_cast<unsigned long long>(r.captured_without_truth),
                  static_cast<unsigned long long>(r.untraced_unmatched));
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
    std::snprintf(buf, sizeof(buf),
                  "  of it after the response was written: p50 %.1f ms, p99 %.1f ms (0 for the "
                  "%llu labeled before it)%s\n",
                  r.after_response_p50_ms, r.after_response_p99_ms,
                  static_cast<unsigned long long>(r.labeled_before_response),
                  r.lag_warmup_excluded > 0 ? " (warm-up requests left out of both)" : "");
    out << buf;
    if (r.lag_sent_p99_ms > 0) {
      std::snprintf(buf, sizeof(buf),
                    "  counted from the generator's send (waiting for a server thread "
                    "included): p50 %.1f ms, p99 %.1f ms\n",
                    r.lag_sent_p50_ms, r.lag_sent_p99_ms);
      out << buf;
    }
  }
  if (!r.lag_stages.empty()) {
    std::snprintf(buf, sizeof(buf), "lag by stage, %llu requests with every time (ms):\n",
                  static_cast<unsigned long long>(r.lag_stages.front().count));
    out << buf;
    std::snprintf(buf, sizeof(buf), "  %-44s %9s %9s %9s\n", "stage", "mean", "p50", "p99");
    out << buf;
    for (auto& st : r.lag_stages) {
      std::snprintf(buf, sizeof(buf), "  %-44s %9.2f %9.2f %9.2f\n", st.name.c_str(), st.mean_ms,
                    st.p50_ms, st.p99_ms);
      out << buf;
    }
  }
  return out.str();
}

} // namespace comb::nectar
