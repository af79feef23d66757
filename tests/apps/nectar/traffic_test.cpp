// Tests of Nectar's traffic generator and report: the generator against an HTTP server on
// loopback that counts what reaches it (every request traced, one truth line each, classes
// mixed as asked, sessions that log in and post with their csrf token); the report's
// arithmetic on a small store made by hand, against figures worked out by hand below; and the
// whole run against Nectar itself (compute process, node, `comb nectar serve`): every request
// answered is captured and labeled, and the report joins them all.
#include "apps/nectar/report.hpp"
#include "apps/nectar/traffic.hpp"
#include "base/wall_clock.hpp"
#include "runtime/system_config.hpp"
#include "storage/sql_store.hpp"
#include "tests/apps/anomaly/tiny_detector.hpp"
#include "perf/nectar/nectar_stack.hpp"
#include "tests/test_util.hpp"

#include <doctest/doctest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <mutex>
#include <set>
#include <thread>

using namespace comb;
using namespace comb::nectar;

namespace {

std::string payload_dir() {
  return std::string{COMB_SOURCE_DIR} + "/apps/anomaly/payloads";
}

// An HTTP server shaped like Nectar's forms (csrf in a hidden input, a session cookie on
// login) that records the trace id and shape of every request it gets.
struct recording_server {
  httplib::Server srv;
  std::thread thread;
  int port = 0;
  std::mutex mu;
  std::multiset<std::string> traces;
  int logins_with_csrf = 0;
  int posts_logged_in = 0;
  int with_session_cookie = 0;

  static constexpr const char* form =
    R"(<form method="post"><input type="hidden" name="csrf" value="tok-42"></form>)";

  recording_server() {
    auto page = [](const httplib::Request&, httplib::Response& res) {
      res.set_header("Set-Cookie", "nectar_pre=p1; HttpOnly; SameSite=Lax");
      res.set_content(std::string{"<html>"} + form + "</html>", "text/html");
    };
    auto redirect = [](httplib::Response& res, const char* to) {
      res.status = 303;
      res.set_header("Location", to);
    };
    for (auto* p :
         {"/", "/register", "/login", "/feed", R"(/u/(.*))", "/search", R"(/static/(.*))"})
      srv.Get(p, page);
    srv.Post("/register",
             [=](const httplib::Request&, httplib::Response& res) { redirect(res, "/login"); });
    srv.Post("/login", [=, this](const httplib::Request& req, httplib::Response& res) {
      if (req.get_param_value("csrf") != "tok-42") {
        res.status = 403;
        return;
      }
      {
        std::lock_guard<std::mutex> g{mu};
        logins_with_csrf += 1;
      }
      res.set_header("Set-Cookie", "nectar_session=s-1; HttpOnly; SameSite=Lax");
      redirect(res, "/");
    });
    for (auto* p : {"/post", "/follow", "/unfollow", "/logout"})
      srv.Post(p, [=, this](const httplib::Request& req, httplib::Response& res) {
        if (req.get_param_value("csrf") != "tok-42") {
          res.status = 403;
          return;
        }
        if (req.path == "/post"
            && req.get_header_value("Cookie").find("nectar_session=s-1") != std::string::npos) {
          std::lock_guard<std::mutex> g{mu};
          posts_logged_in += 1;
        }
        redirect(res, "/feed");
      });
    srv.set_logger([this](const httplib::Request& req, const httplib::Response&) {
      std::lock_guard<std::mutex> g{mu};
      traces.insert(req.get_header_value("X-Nectar-Trace"));
      if (req.get_header_value("Cookie").find("nectar_session=s-1") != std::string::npos)
        with_session_cookie += 1;
    });
    port = srv.bind_to_any_port("127.0.0.1");
    thread = std::thread{[this] { srv.listen_after_bind(); }};
    test::wait_until([&] { return srv.is_running(); }, std::chrono::seconds{10},
                     "the recording server to listen");
  }
  ~recording_server() {
    srv.stop();
    thread.join();
  }
};

std::vector<std::string> lines_of(const std::string& file) {
  std::ifstream in{file};
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line))
    out.push_back(line);
  return out;
}

} // namespace

TEST_SUITE("apps.nectar.traffic") {
  TEST_CASE("url_encode keeps an attacker's escapes only when asked; find_csrf reads the form") {
    CHECK(url_encode("a b&c=d/é") == "a%20b%26c%3Dd%2F%C3%A9");
    CHECK(url_encode("..%2f..%2fetc") == "..%252f..%252fetc");
    CHECK(url_encode("..%2f..%2fetc", /*keep_escapes=*/true) == "..%2f..%2fetc");
    CHECK(url_encode("100%", /*keep_escapes=*/true) == "100%25");
    CHECK(find_csrf(R"(<p>csrf</p><input type="hidden" name="csrf" value="abc123">)") == "abc123");
    CHECK(find_csrf(R"(<input value='x-1' name='csrf'/>)") == "x-1");
    CHECK(find_csrf(R"(<input name="other" value="no">)").empty());
  }

  TEST_CASE("truth records round-trip; a bad line is refused") {
    truth_record t;
    t.trace_id = "t1-7";
    t.cls = "attack";
    t.family = "sqli";
    t.placement = "query";
    t.method = "GET";
    t.path = "/search?q=%27";
    t.status = 200;
    t.sent_ns = 123;
    auto back = truth_record::parse(t.to_json_line());
    REQUIRE_MESSAGE(back, test::why(back));
    CHECK(back->trace_id == "t1-7");
    CHECK(back->family == "sqli");
    CHECK(back->status == 200);
    CHECK(back->sent_ns == 123);
    CHECK_FALSE(back->warmup);
    t.warmup = true;
    back = truth_record::parse(t.to_json_line());
    REQUIRE(back);
    CHECK(back->warmup);
    CHECK_FALSE(truth_record::parse("not json"));
    CHECK_FALSE(truth_record::parse(R"({"trace_id":"x","class":"maybe"})"));
  }

  TEST_CASE("payload lists: the project's folder loads; a missing one is named") {
    auto p = payload_lists::load(payload_dir());
    REQUIRE_MESSAGE(p, test::why(p));
    CHECK(p->attacks.count("sqli") == 1);
    CHECK(!p->attacks.at("sqli").empty());
    auto missing = payload_lists::load("/nonexistent/payloads");
    REQUIRE_FALSE(missing);
    CHECK(describe(missing.error()).find("/nonexistent/payloads/attacks") != std::string::npos);
  }

  TEST_CASE("bad options are refused before anything is sent") {
    auto p = payload_lists::load(payload_dir());
    REQUIRE(p);
    traffic_options o;
    o.target = "192.0.2.1:80"; // TEST-NET-1: not loopback
    auto r = run_traffic(o, *p);
    REQUIRE_FALSE(r);
    CHECK(describe(r.error()).find("--allow-remote") != std::string::npos);
    o.target = "127.0.0.1:1";
    o.attack_share = 1.5;
    CHECK_FALSE(run_traffic(o, *p));
    o.attack_share = 0.2;
    o.rate = 0;
    CHECK_FALSE(run_traffic(o, *p));
  }

  TEST_CASE("against a server: one truth line per request sent, every request traced, "
            "classes mixed as asked, sessions log in and post") {
    auto p = payload_lists::load(payload_dir());
    REQUIRE(p);
    recording_server server;
    REQUIRE(server.port > 0);
    test::temp_dir dir;
    traffic_options o;
    o.target = "127.0.0.1:" + std::to_string(server.port);
    o.rate = 60;
    o.duration_s = 2;
    o.attack_share = 0.3;
    o.seed = 7;
    o.connections = 3;
    o.truth_file = dir.path() + "/truth.jsonl";
    std::mutex mu;
    uint64_t observed = 0;
    auto stats = run_traffic(o, *p, [&](const truth_record&) {
      std::lock_guard<std::mutex> g{mu};
      observed += 1;
    });
    REQUIRE_MESSAGE(stats, test::why(stats));
    CHECK(stats->scheduled == 120);
    CHECK(stats->sent + stats->dropped == stats->scheduled);
    CHECK(stats->sent == 120);
    CHECK(observed == stats->sent);
    auto lines = lines_of(o.truth_file);
    CHECK(lines.size() == stats->sent);
    // cpp-httplib runs the server's logger after it has written the response, so the client
    // may have the last answers before the server has recorded their requests: wait for the
    // records of every answered request (those refused before their headers were read aside).
    size_t expect_logged = 0;
    for (auto& l : lines)
      if (auto t = truth_record::parse(l))
        expect_logged += t->status > 0 && t->status != 400 && t->status != 413 && t->status != 414;
    test::wait_until(
      [&] {
        std::lock_guard<std::mutex> g{server.mu};
        return server.traces.size() >= expect_logged;
      },
      std::chrono::seconds{10}, "the recording server to log every answered request");
    std::set<std::string> ids;
    uint64_t attacks = 0, answered = 0;
    std::set<std::string> families, placements;
    for (auto& l : lines) {
      auto t = truth_record::parse(l);
      REQUIRE_MESSAGE(t, test::why(t));
      ids.insert(t->trace_id);
      if (t->cls == "attack") {
        attacks += 1;
        families.insert(t->family);
        placements.insert(t->placement);
        CHECK(!t->family.empty());
      }
      if (t->status > 0) {
        answered += 1;
        // Every answered request reached the server with its trace id, once (but those the
        // server refused before reading headers: an over-long request line or header).
        bool refused_early = t->status == 400 || t->status == 413 || t->status == 414;
        std::lock_guard<std::mutex> g{server.mu};
        if (!refused_early)
          CHECK_MESSAGE(server.traces.count(t->trace_id) == 1, t->trace_id, " ", t->path);
      }
    }
    CHECK(ids.size() == lines.size()); // trace ids are unique
    CHECK(attacks == stats->attacks);
    // 30% asked: 120 slots drawn with p = 0.3 land well inside [15, 60].
    CHECK(attacks >= 15);
    CHECK(attacks <= 60);
    CHECK(families.size() >= 3);
    CHECK(placements.size() >= 3);
    CHECK(answered == stats->answered);
    CHECK(answered >= 100);
    std::lock_guard<std::mutex> g{server.mu};
    // What the server logged carries trace ids of the truth file, each once.
    size_t traced = 0;
    for (auto& t : server.traces) {
      if (t.empty())
        continue; // refused before its headers were read
      CHECK_MESSAGE(ids.count(t) == 1, "unknown trace id: '" << t << "'");
      traced += 1;
    }
    CHECK(traced + 10 >= answered);
    CHECK(server.logins_with_csrf > 0);
    CHECK(server.with_session_cookie > 0);
    CHECK(server.posts_logged_in > 0);
  }

  TEST_CASE("log_in_first: every session registers before the clock, outside the counts") {
    auto p = payload_lists::load(payload_dir());
    REQUIRE(p);
    recording_server server;
    REQUIRE(server.port > 0);
    test::temp_dir dir;
    traffic_options o;
    o.target = "127.0.0.1:" + std::to_string(server.port);
    o.rate = 40;
    o.duration_s = 1;
    o.attack_share = 0;
    o.seed = 3;
    o.connections = 2; // 2 * 4 + 4 = 12 simulated browsers
    o.truth_file = dir.path() + "/truth.jsonl";
    o.log_in_first = true;
    auto stats = run_traffic(o, *p);
    REQUIRE_MESSAGE(stats, test::why(stats));
    CHECK(stats->sent == 40);
    CHECK(stats->answered == 40);
    CHECK(stats->warmup > 0);
    auto lines = lines_of(o.truth_file);
    CHECK(lines.size() == stats->sent + stats->warmup);
    uint64_t warm = 0, warm_registers = 0, timed_registers = 0;
    for (auto& l : lines) {
      auto t = truth_record::parse(l);
      REQUIRE_MESSAGE(t, test::why(t));
      bool is_warm = t->trace_id.find("-w") != std::string::npos;
      CHECK(t->warmup == is_warm); // the truth line says so itself
      bool registers = t->placement == "register" || t->placement == "register_form";
      warm += is_warm ? 1 : 0;
      warm_registers += is_warm && t->placement == "register" ? 1 : 0;
      timed_registers += !is_warm && registers ? 1 : 0;
    }
    CHECK(warm == stats->warmup);
    CHECK(warm_registers == 12); // each browser once, before the clock
    CHECK(timed_registers == 0); // so the timed traffic is that of users already in
    std::lock_guard<std::mutex> g{server.mu};
    CHECK(server.logins_with_csrf >= 12);
  }

  TEST_CASE("report arithmetic on a hand-made store") {
    test::temp_dir dir;
    auto sql = dir.path() + "/store.sqlite";
    auto truth_file = dir.path() + "/truth.jsonl";
    {
      auto store = storage::sql_store::open(sql);
      REQUIRE_MESSAGE(store, test::why(store));
      int lsn = 0;
      auto put = [&](const std::string& table, const std::string& key, const std::string& op,
                     int64_t ts, const nlohmann::json& value) {
        auto r = (*store)->query("INSERT INTO row_events(lsn, seq, table_name, row_key, op, "
                                 "execution_id, role, ts_ns, value) VALUES (?1, 0, ?2, ?3, ?4, "
                                 "0, 'nectar', ?5, ?6)",
                                 {std::to_string(++lsn), table, key, op, std::to_string(ts),
                                  value.dump()});
        REQUIRE_MESSAGE(r, test::why(r));
      };
      // Requests r0..r9 (r8 never captured), arriving at 1 s + i ms; labels (rule, model):
      const int rule[] = {0, 1, 0, 0, 1, 0, 1, 0};
      const int model[] = {0, 0, 1, 0, 1, 1, 0, 0};
      for (int i = 0; i < 10; ++i) {
        if (i == 8)
          continue;
        int64_t arrival = 1'000'000'000 + i * 1'000'000;
        auto key = "r" + std::to_string(i);
        put("httplog_request", key, "insert", arrival + 100,
            {{"trace_id", "T" + std::to_string(i)}, {"ts_ns", arrival}, {"sc_status", 200}});
        if (i >= 8)
          continue; // r9 captured, never labeled
        // Labeled (i + 1) ms after arrival; r1 first with other labels, then changed.
        int64_t labeled_at = arrival + (i + 1) * 1'000'000;
        if (i == 1)
          put("httplog_request_labeled", key, "insert", labeled_at,
              {{"request_id", key}, {"label", 1}, {"rule_label", 0}});
        // T6's CRS ran past its time budget, T1's worker crashed: flagged, named in rule_ids.
        put("httplog_request_labeled", key, i == 1 ? "update" : "insert",
            i == 1 ? labeled_at + 50'000'000 : labeled_at,
            {{"request_id", key}, {"label", model[i] == 1}, {"rule_label", rule[i]},
             {"rule_ids", i == 6 ? "timed out" : (i == 1 ? "crashed" : "942100,949110")}});
      }
      // A captured request of other traffic, and a row deleted again.
      put("httplog_request", "x1", "insert", 5, {{"trace_id", "other"}, {"ts_ns", 1}});
      put("httplog_request", "x2", "insert", 5, {{"trace_id", "gone"}, {"ts_ns", 1}});
      put("httplog_request", "x2", "delete", 6, nullptr);
    }
    {
      std::ofstream out{truth_file};
      // T0-T3 benign, T4 T5 sqli, T6 T7 xss, T8 benign (not captured), T9 sqli (not labeled),
      // T10 xss never answered.
      const char* cls[] = {"benign", "benign", "benign", "benign", "attack", "attack",
                           "attack", "attack", "benign", "attack", "attack"};
      const char* fam[] = {"", "", "", "", "sqli", "sqli", "xss", "xss", "", "sqli", "xss"};
      for (int i = 0; i <= 10; ++i) {
        truth_record t;
        t.trace_id = "T" + std::to_string(i);
        t.cls = cls[i];
        t.family = fam[i];
        t.status = i == 10 ? 0 : (i == 5 ? 400 : 200);
        out << t.to_json_line() << "\n";
      }
    }
    auto r = make_report(sql, truth_file);
    REQUIRE_MESSAGE(r, test::why(r));
    CHECK(r->requests == 11);
    CHECK(r->answered == 10);
    CHECK(r->captured == 9);
    CHECK(r->labeled == 8);
    CHECK(r->not_captured == 1);
    CHECK(r->not_labeled == 1);
    CHECK(r->captured_without_truth == 1); // "other"; "gone" was deleted
    CHECK(r->rules_timed_out_attacks == 1);
    CHECK(r->rules_timed_out_benign == 0);
    CHECK(r->rules_crashed == 1);
    CHECK(to_string(*r).find("timed out 1 (attacks 1, benign 0), worker crashed 1")
          != std::string::npos);
    // Rule: tp T4 T6, fp T1, tn T0 T2 T3, fn T5 T7.
    auto& rule_m = r->all.rule;
    CHECK(rule_m.tp == 2);
    CHECK(rule_m.fp == 1);
    CHECK(rule_m.tn == 3);
    CHECK(rule_m.fn == 2);
    CHECK(rule_m.precision() == doctest::Approx(2.0 / 3));
    CHECK(rule_m.recall() == doctest::Approx(0.5));
    CHECK(rule_m.f1() == doctest::Approx(4.0 / 7));
    CHECK(fp_rate(rule_m) == doctest::Approx(0.25));
    // Model (r1's last labels count: model 0): tp T4 T5, fp T2, tn T0 T1 T3, fn T6 T7.
    auto& model_m = r->all.model;
    CHECK(model_m.tp == 2);
    CHECK(model_m.fp == 1);
    CHECK(model_m.tn == 3);
    CHECK(model_m.fn == 2);
    // OR: tp T4 T5 T6, fp T1 T2, tn T0 T3, fn T7.
    auto& either = r->all.either;
    CHECK(either.tp == 3);
    CHECK(either.fp == 2);
    CHECK(either.tn == 2);
    CHECK(either.fn == 1);
    CHECK(either.precision() == doctest::Approx(0.6));
    CHECK(either.recall() == doctest::Approx(0.75));
    CHECK(either.f1() == doctest::Approx(2 * 0.6 * 0.75 / 1.35));
    CHECK(fp_rate(either) == doctest::Approx(0.5));
    // Per family, against all benign requests.
    REQUIRE(r->by_family.size() == 2);
    auto& sqli = r->by_family.at("sqli");
    CHECK(sqli.rule.tp == 1);
    CHECK(sqli.rule.fn == 1);
    CHECK(sqli.model.tp == 2);
    CHECK(sqli.model.fn == 0);
    CHECK(sqli.rule.fp == 1);
    CHECK(sqli.rule.tn == 3);
    auto& xss = r->by_family.at("xss");
    CHECK(xss.model.tp == 0);
    CHECK(xss.model.fn == 2);
    CHECK(xss.either.tp == 1);
    CHECK(xss.either.fp == 2);
    // Lag from arrival to the first labeled commit: 1..8 ms.
    CHECK(r->lag_count == 8);
    CHECK(r->lag_p50_ms == doctest::Approx(5.0));
    CHECK(r->lag_p99_ms == doctest::Approx(8.0));
    CHECK(r->lag_max_ms == doctest::Approx(8.0));
    auto text = to_string(*r);
    CHECK(text.find("answered but not captured: 1") != std::string::npos);
    // A store without captured rows is named as such; a bad truth line names its line.
    test::temp_dir empty;
    {
      auto s = storage::sql_store::open(empty.path() + "/e.sqlite");
      REQUIRE(s);
    }
    auto none = make_report(empty.path() + "/e.sqlite", truth_file);
    REQUIRE_FALSE(none);
    CHECK(describe(none.error()).find("httplog_request") != std::string::npos);
    {
      std::ofstream out{truth_file, std::ios::app};
      out << "{broken\n";
    }
    auto bad = make_report(sql, truth_file);
    REQUIRE_FALSE(bad);
    CHECK(describe(bad.error()).find("truth.jsonl:12") != std::string::npos);
  }

  TEST_CASE("report: rows the HTTP parser left without a trace id are matched by status, "
            "method, target and time") {
    test::temp_dir dir;
    auto sql = dir.path() + "/store.sqlite";
    auto truth_file = dir.path() + "/truth.jsonl";
    constexpr int64_t s = 1'000'000'000, ms = 1'000'000;
    {
      auto store = storage::sql_store::open(sql);
      REQUIRE_MESSAGE(store, test::why(store));
      int lsn = 0;
      auto put = [&](const std::string& table, const std::string& key, const nlohmann::json& v) {
        auto r = (*store)->query("INSERT INTO row_events(lsn, seq, table_name, row_key, op, "
                                 "execution_id, role, ts_ns, value) VALUES (?1, 0, ?2, ?3, "
                                 "'insert', 0, 'nectar', ?4, ?5)",
                                 {std::to_string(++lsn), table, key, std::to_string(100 * s),
                                  v.dump()});
        REQUIRE_MESSAGE(r, test::why(r));
      };
      // A row (id, trace, status, method, stem, query, logged at) and its labels.
      auto row = [&](const std::string& id, const std::string& trace, int status,
                     const std::string& method, const std::string& stem, const std::string& query,
                     int64_t ts, int rule) {
        put("httplog_request", id,
            {{"trace_id", trace},
             {"ts_ns", ts},
             {"sc_status", status},
             {"cs_method", method},
             {"cs_uri_stem", stem},
             {"cs_uri_query", query}});
        put("httplog_request_labeled", id,
            {{"request_id", id}, {"label", 0}, {"rule_label", rule}});
      };
      row("ra", "A", 200, "GET", "/feed", "", 10 * s + 2 * ms, 0);
      // B's 414: the parser kept nothing of the request, not even its method.
      row("rb", "", 414, "", "", "", 11 * s + 2 * ms, 1);
      // C and D: two 400s for GET /feed half a millisecond apart; C is the attack (flagged).
      row("rc", "", 400, "GET", "/feed", "", 12 * s + 1 * ms, 1);
      row("rd", "", 400, "GET", "/feed", "", 12 * s + 3 * ms, 0);
      // Rows nothing should take: another status, E's shape 100 s too late, G's other method.
      row("x404", "", 404, "", "", "", 11 * s + 1 * ms, 0);
      row("xlate", "", 400, "GET", "/feed", "", 200 * s, 0);
      row("xget", "", 400, "GET", "/login", "", 13 * s + 1 * ms, 0);
      // A long target the generator cut at 512 bytes.
      row("rh", "", 414, "GET", "/search", "q=" + std::string(600, 'A'), 14 * s + 1 * ms, 1);
    }
    {
      std::ofstream out{truth_file};
      auto line = [&](const std::string& trace, const std::string& cls, int status,
                      const std::string& method, const std::string& path, int64_t sent) {
        truth_record t;
        t.trace_id = trace;
        t.cls = cls;
        t.family = cls == "attack" ? "oversized" : "";
        t.status = status;
        t.method = method;
        t.path = path.substr(0, 512);
        t.sent_ns = sent;
        out << t.to_json_line() << "\n";
      };
      line("A", "benign", 200, "GET", "/feed", 10 * s);
      line("B", "attack", 414, "GET", "/search?q=" + std::string(9000, 'B'), 11 * s);
      line("C", "attack", 400, "GET", "/feed", 12 * s);
      line("D", "benign", 400, "GET", "/feed", 12 * s + ms / 2);
      line("E", "attack", 400, "GET", "/feed", 100 * s);
      line("G", "attack", 400, "POST", "/login", 13 * s);
      line("H", "attack", 414, "GET", "/search?q=" + std::string(600, 'A'), 14 * s);
    }
    auto r = make_report(sql, truth_file);
    REQUIRE_MESSAGE(r, test::why(r));
    INFO(to_string(*r));
    CHECK(r->answered == 7);
    CHECK(r->captured == 5); // A by trace; B, C, D, H by shape and time
    CHECK(r->matched_without_trace == 4);
    CHECK(r->not_captured == 2); // E (no row near its time), G (no POST row)
    CHECK(r->not_captured_by_status == std::map<int, uint64_t>{{400, 2}});
    CHECK(r->untraced_unmatched == 3);
    CHECK(r->labeled == 5);
    // C (attack, flagged) took the first 400 and D (benign, not flagged) the second: the rule
    // label has tp B C H, tn A D; swapped it would count a false positive and a miss.
    CHECK(r->all.rule.tp == 3);
    CHECK(r->all.rule.tn == 2);
    CHECK(r->all.rule.fp == 0);
    CHECK(r->all.rule.fn == 0);
    CHECK(to_string(*r).find("matched by status, method, target and time: 4") != std::string::npos);
  }

  TEST_CASE("against Nectar: every answered request is captured and labeled; the report joins "
            "them all") {
    test::temp_dir dir;
    auto model_file = dir.path() + "/waf.safetensors";
    auto d = anomaly::tiny::tiny_detector();
    auto saved = d.save(model_file);
    REQUIRE_MESSAGE(!saved, describe(saved));
    runtime::system_config cfg{2};
    caf::actor_system sys{cfg};
    test::nectar_stack stack{dir.path()};
    auto err = stack.start_backend(model_file);
    REQUIRE_MESSAGE(!err, describe(err));
    err = stack.start_server();
    REQUIRE_MESSAGE(!err, describe(err));
    auto p = payload_lists::load(payload_dir());
    REQUIRE(p);
    traffic_options o;
    o.target = stack.http_addr();
    o.rate = 15;
    o.duration_s = 3;
    o.attack_share = 0.3;
    o.seed = 11;
    o.connections = 2;
    o.truth_file = dir.path() + "/truth.jsonl";
    auto stats = run_traffic(o, *p);
    REQUIRE_MESSAGE(stats, test::why(stats));
    INFO(to_string(*stats));
    CHECK(stats->sent == 45);
    CHECK(stats->answered == stats->sent);
    CHECK(stats->attacks > 0);
    CHECK(stats->benign > 0);
    // Requests the HTTP parser refuses before it reads their headers, so before it sees their
    // trace id: a request line over 8 KiB (414) and a cookie over 8 KiB (400), each on its
    // own connection, with truth lines as the generator writes them.
    {
      std::ofstream out{o.truth_file, std::ios::app};
      int n = 0;
      for (auto& [path, cookie] :
           {std::pair<std::string, std::string>{"/search?q=" + std::string(9000, 'A'), ""},
            std::pair<std::string, std::string>{"/feed", std::string(9000, 'C')}}) {
        truth_record t;
        t.trace_id = "refused-" + std::to_string(n++);
        t.cls = "attack";
        t.family = "oversized";
        t.method = "GET";
        t.path = path.substr(0, 512);
        httplib::Headers h{{"X-Nectar-Trace", t.trace_id}};
        if (!cookie.empty())
          h.emplace("Cookie", "nectar_session=" + cookie);
        httplib::Client cli{stack.http_addr()};
        t.sent_ns = wall_clock_ns();
        auto res = cli.Get(path, h);
        REQUIRE(res);
        t.status = res->status;
        CHECK((t.status == 400 || t.status == 414));
        out << t.to_json_line() << "\n";
      }
    }
    // Capture and labels run behind the responses: wait until the node has them all.
    auto truth = read_truth(o.truth_file);
    REQUIRE_MESSAGE(truth, test::why(truth));
    uint64_t answered = 0;
    for (auto& t : *truth)
      answered += t.status > 0 ? 1 : 0;
    nlohmann::json counts;
    bool all = test::wait_until(
      [&] {
        auto c = stack.count(sys);
        if (!c)
          return false;
        counts = *c;
        return counts.value("requests", 0u) >= answered
               && counts.value("labeled", 0u) >= counts.value("requests", 0u);
      },
      std::chrono::seconds{60}, "every request captured and labeled");
    CHECK_MESSAGE(all, counts.dump() << "\n" << test::read_file(stack.log_of("serve-1")));
    // Stopping hands the node what the server still held (rows that the count above may have
    // run ahead of, when leftover lines of a refused header block were captured as requests
    // of their own); their labels follow.
    stack.stop_server();
    test::wait_until(
      [&] {
        auto c = stack.count(sys);
        return c && c->value("labeled", 0u) >= c->value("requests", 0u);
      },
      std::chrono::seconds{30}, "the last captured requests to be labeled");
    auto sql = dir.path() + "/store.sqlite";
    err = stack.spool(sql);
    REQUIRE_MESSAGE(!err, describe(err));
    auto r = make_report(sql, o.truth_file);
    REQUIRE_MESSAGE(r, test::why(r));
    INFO(to_string(*r));
    CHECK(r->requests == stats->sent + 2);
    CHECK(r->answered == stats->answered + 2);
    // Every answered request is captured and labeled, the two refused ones (and any the
    // generator's oversized attacks got refused) through the fallback.
    CHECK(r->not_captured == 0);
    CHECK(r->matched_without_trace >= 2);
    CHECK(r->not_labeled == 0);
    CHECK(r->captured == r->answered);
    CHECK(r->labeled == r->captured);
    CHECK(r->all.rule.total() == r->labeled);
    CHECK(r->all.rule.tp + r->all.rule.fn == stats->attacks + 2);
    CHECK(r->lag_count == r->labeled);
    // The lag's stages come from the node's own records of every request.
    REQUIRE(r->lag_stages.size() == 10);
    CHECK(r->lag_stages.front().count == r->labeled);
  }
}
