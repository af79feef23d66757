// Nectar's live labels end to end: a `comb compute` child and a `comb node` child, the Nectar
// server in this process capturing every request with CRS rule labels and labels from a small
// anomaly detector served by the compute process. Requests that arrive before any model
// version is active wait and are labeled once one is; then, under continuous traffic, the
// compute process and the node are each killed with SIGKILL and started again: in the end
// every request the server answered has exactly one httplog_request row and one
// httplog_request_labeled row.
#include "apps/nectar/httplog.hpp"
#include "apps/nectar/server.hpp"
#include "runtime/system_config.hpp"
#include "tests/apps/anomaly/tiny_detector.hpp"
#include "tests/apps/nectar/nectar_util.hpp"
#include "tests/client_util.hpp"
#include "tests/compute_util.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <sstream>
#include <set>
#include <thread>

using namespace comb;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

/// httplog.count through a fresh connection (the node may have restarted).
json count(caf::actor_system& sys, uint16_t port) {
  auto c = test::connect_retry(sys, port);
  REQUIRE_MESSAGE(c, test::why(c));
  auto r = c->call("httplog.count", "{}", "admin");
  REQUIRE_MESSAGE(r, test::why(r));
  return *r;
}

/// Every row of one httplog table.
std::vector<json> rows_of(caf::actor_system& sys, uint16_t port, const std::string& table) {
  auto c = test::connect_retry(sys, port);
  REQUIRE(c);
  std::vector<json> out;
  std::string after;
  for (;;) {
    auto r = c->call("httplog.rows",
                     json{{"table", table}, {"after", after}, {"limit", 1000}}.dump(), "admin");
    REQUIRE_MESSAGE(r, test::why(r));
    for (auto& row : (*r)["rows"])
      out.push_back(row);
    if ((*r)["rows"].size() < 1000)
      return out;
    after = (*r)["last"];
  }
}

/// Some requests of a visitor: pages that call the node, and ones that do not. Each carries
/// the trace id `trace`; true when it was answered.
bool visit(test::browser& b, int i, const std::string& trace) {
  httplib::Headers h{{"X-Nectar-Trace", trace}};
  switch (i % 4) {
  case 0:
    return static_cast<bool>(b.get("/healthz", h));
  case 1:
    return static_cast<bool>(b.get("/search?q=honey%20" + std::to_string(i), h));
  case 2:
    return static_cast<bool>(b.get("/u/nobody_" + std::to_string(i), h));
  default:
    return static_cast<bool>(b.get("/search?q=%27%20OR%201%3D1--", h));
  }
}

/// Why the rows do not match the answered requests yet: the counts, answered requests
/// without a row, rows without a label.
std::string mismatch(caf::actor_system& sys, uint16_t port, const std::set<std::string>& answered) {
  std::ostringstream out;
  out << "counts " << count(sys, port).dump() << "; answered " << answered.size();
  std::set<std::string> traces, labeled;
  for (auto& l : rows_of(sys, port, "labeled"))
    labeled.insert(l.value("request_id", ""));
  int unlabeled = 0;
  for (auto& r : rows_of(sys, port, "request")) {
    traces.insert(r.value("trace_id", ""));
    if (!labeled.count(r["id"].get<std::string>()) && unlabeled++ < 5)
      out << "; not labeled: " << r.dump().substr(0, 300);
  }
  int lost = 0;
  for (auto& t : answered)
    if (!traces.count(t) && lost++ < 5)
      out << "; answered but no row: " << t;
  return out.str();
}

} // namespace

TEST_SUITE("apps.nectar.labels") {
  TEST_CASE("every answered request gets one row and one label, across kills") {
    test::temp_dir dir;
    auto d = anomaly::tiny::tiny_detector();
    auto model_file = dir.path() + "/detector.safetensors";
    REQUIRE_FALSE(d.save(model_file));
    test::compute_child compute;
    test::node_child node{
      dir, {"--no-provenance", "--compute", "127.0.0.1:" + std::to_string(compute.port())}};
    runtime::system_config cfg{2};
    caf::actor_system sys{cfg};

    nectar::server_options so;
    so.node = {"127.0.0.1", node.port()};
    so.port = 0;
    so.threads = 8;
    so.capture_opts.model = "waf";
    // Taken at arrival: a model call may go before its row, and neither may be lost.
    so.capture_opts.at_arrival = true;
    // CRS in worker processes, each request under a CPU budget (rules_test): the request
    // below that overruns it is labeled "timed out" in its labeled row too.
    so.capture_opts.rules_executable = test::comb_binary();
    so.capture_opts.rules_wall_budget = 30s;
    auto srv = nectar::server::start(sys, so);
    REQUIRE_MESSAGE(srv, test::why(srv));
    auto port = (*srv)->port();

    // No model yet: rows commit, labels wait.
    test::browser early{port};
    std::set<std::string> answered_traces;
    for (int i = 0; i < 12; ++i)
      if (visit(early, i, "early-" + std::to_string(i)))
        answered_traces.insert("early-" + std::to_string(i));
    REQUIRE(early.answered == 12);
    REQUIRE(test::wait_until([&] { return count(sys, node.port())["unlabeled"] == 12; }, 30s,
                             "12 requests waiting for a model"));
    auto waiting = rows_of(sys, node.port(), "unlabeled");
    REQUIRE(waiting.size() == 12);
    CHECK_MESSAGE(waiting[0].value("reason", "").find("'waf' has no active version")
                    != std::string::npos,
                  waiting[0].dump());
    CHECK(count(sys, node.port())["labeled"] == 0);

    // The model: put, activate; the waiting requests get labels.
    test::child_process put{{test::comb_binary(), "model", "put", "--node", node.addr(), "--name",
                             "waf", "--version", "1", "--file", model_file},
                            dir.path() + "/put.log"};
    REQUIRE_MESSAGE(put.wait() == 0, test::read_file(dir.path() + "/put.log"));
    {
      auto c = test::connect_retry(sys, node.port());
      REQUIRE(c);
      auto a = c->call("comb.model.activate", json{{"name", "waf"}, {"version", 1}}.dump(),
                       "admin");
      REQUIRE_MESSAGE(a, test::why(a));
    }
    REQUIRE(test::wait_until([&] { return count(sys, node.port())["labeled"] == 12; }, 45s,
                             "the 12 waiting requests labeled"));

    // A form body of 16 KiB of "%3C", on which CRS 3.3.4's rule 941160 backtracks for seconds.
    {
      std::string body = "text=";
      for (int i = 0; i < (16 << 10) / 3; ++i)
        body += "%3C";
      httplib::Client cli{"127.0.0.1", port};
      cli.set_read_timeout(60, 0);
      auto r = cli.Post("/post", httplib::Headers{{"X-Nectar-Trace", "slow"}}, body,
                        "application/x-www-form-urlencoded");
      REQUIRE(r);
      answered_traces.insert("slow");
    }

    // Continuous traffic while the compute process and then the node are killed.
    std::atomic<bool> stop{false};
    std::atomic<int> answered{13};
    std::set<std::string> traffic_traces;
    std::thread traffic{[&] {
      test::browser b{port};
      for (int i = 0; !stop; ++i) {
        auto trace = "t-" + std::to_string(i);
        if (visit(b, i, trace))
          traffic_traces.insert(trace);
        std::this_thread::sleep_for(5ms);
      }
      answered += b.answered;
    }};
    std::this_thread::sleep_for(500ms);
    compute.kill();
    std::this_thread::sleep_for(500ms);
    compute.start();
    std::this_thread::sleep_for(500ms);
    node.kill();
    std::this_thread::sleep_for(500ms);
    node.start();
    std::this_thread::sleep_for(1s);
    stop = true;
    traffic.join();
    int total = answered;
    answered_traces.insert(traffic_traces.begin(), traffic_traces.end());
    REQUIRE(answered_traces.size() == static_cast<size_t>(total));
    INFO("answered " << total);
    // Every answered request has its row, answered, and every row its label. A request the
    // client gave up on (no answer within its timeout) may have a row as well: the server did
    // answer it, late; it must be labeled too.
    auto all_there = [&] {
      auto n = count(sys, node.port());
      if (n["requests"] < total || n["labeled"] != n["requests"] || n["unlabeled"] != 0)
        return false;
      std::set<std::string> traces;
      for (auto& r : rows_of(sys, node.port(), "request"))
        traces.insert(r.value("trace_id", ""));
      for (auto& t : answered_traces)
        if (!traces.count(t))
          return false;
      return true;
    };
    bool ok = test::wait_until(all_there, 60s, "a row and a label for each answered request");
    REQUIRE_MESSAGE(ok, mismatch(sys, node.port(), answered_traces));
    auto reqs = rows_of(sys, node.port(), "request");
    auto labels = rows_of(sys, node.port(), "labeled");
    CHECK(labels.size() == reqs.size());
    std::map<std::string, int> rows_per_trace;
    for (auto& r : reqs)
      rows_per_trace[r.value("trace_id", "")] += 1;
    for (auto& t : answered_traces)
      CHECK_MESSAGE(rows_per_trace[t] == 1, t);
    if (reqs.size() != static_cast<size_t>(total))
      MESSAGE((reqs.size() - static_cast<size_t>(total))
              << " rows of requests the client gave up on (answered late)");
    std::set<std::string> ids;
    std::string slow_id;
    for (auto& r : reqs) {
      ids.insert(r["id"].get<std::string>());
      if (r.value("trace_id", "") == "slow")
        slow_id = r["id"].get<std::string>();
    }
    REQUIRE_FALSE(slow_id.empty());
    int slow_labels = 0;
    for (auto& l : labels)
      if (l.value("request_id", "") == slow_id) {
        ++slow_labels;
        CHECK(l["rule_ids"] == "timed out");
        CHECK(l["rule_label"] == 1);
        CHECK(l["combined_label"] == 1);
      }
    CHECK(slow_labels == 1);
    CHECK((*srv)->stats().rules_timed_out == 1);
    int scored = 0, rule_flagged = 0, unavailable = 0;
    for (auto& l : labels) {
      CHECK(ids.count(l.value("request_id", "")) == 1);
      CHECK(l["id"] == l["request_id"]);
      if (l["score"].is_number()) {
        ++scored;
        auto s = l["score"].get<double>();
        CHECK((s >= 0.0 && s <= 1.0));
        CHECK(l["label"] == (s >= 0.5 ? 1 : 0));
        CHECK(l["model"] == "waf");
        CHECK(l["model_version"] == 1);
        CHECK(l["threshold"] == 0.5);
        CHECK(l["combined_label"] == (l["label"].get<int>() | l["rule_label"].get<int>()));
      }
      rule_flagged += l.value("rule_label", 0);
    }
    for (auto& r : reqs)
      unavailable += r.value("sc_status", 0) == 503;
    CHECK(scored == static_cast<int>(labels.size())); // no request's scoring failed for good
    CHECK(rule_flagged >= 3); // the ' OR 1=1-- searches
    MESSAGE("answered " << total << ", 503 while the node was away: " << unavailable << ", capture "
                        << (*srv)->stats().retries << " retries");
    CHECK(count(sys, node.port())["unlabeled"] == 0);
    (*srv)->stop();
  }
}
