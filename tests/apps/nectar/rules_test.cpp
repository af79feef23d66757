// CRS with a bounded time per request (apps/nectar/rules_pool.hpp): CRS 3.3.4's rule 941160
// backtracks for seconds on a form body of 16 KiB of "%3C"; in a worker process under a CPU
// budget that request is labeled "timed out" (flagged) and its worker replaced, while ordinary
// requests before, during and after it get CRS's own labels; a worker killed with SIGKILL
// while it holds a request makes that request "crashed", one killed while idle costs nothing,
// and both are replaced. End to end, the Nectar server's rows say the same.
#include "apps/nectar/capture_worker.hpp"
#include "apps/nectar/client_budget.hpp"
#include "apps/nectar/node_link.hpp"
#include "apps/nectar/rules_pool.hpp"
#include "apps/nectar/rules_worker.hpp"
#include "apps/nectar/server.hpp"
#include "base/errc.hpp"
#include "runtime/system_config.hpp"
#include "tests/apps/nectar/nectar_util.hpp"
#include "tests/client_util.hpp"

#include <doctest/doctest.h>

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

using namespace comb;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

bool has(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

anomaly::http_request get(const std::string& target) {
  return {"GET", target, "HTTP/1.1", {{"Host", "localhost"}, {"User-Agent", "Mozilla/5.0"},
                                      {"Accept", "text/html"}}, ""};
}

/// The request that makes rule 941160 backtrack: a form body of 16 KiB of "%3C" ('<').
std::string slow_body() {
  std::string body = "text=";
  for (int i = 0; i < (16 << 10) / 3; ++i)
    body += "%3C";
  return body;
}

anomaly::http_request slow_post() {
  auto body = slow_body();
  return {"POST", "/post", "HTTP/1.1",
          {{"Host", "localhost"}, {"User-Agent", "Mozilla/5.0"},
           {"Content-Type", "application/x-www-form-urlencoded"},
           {"Content-Length", std::to_string(body.size())}},
          body};
}

const auto sqli = get("/search?q=1%27%20UNION%20SELECT%20password%20FROM%20users--");
const auto benign = get("/search?q=alice");

/// CPU ticks (user + system) of a process so far, from /proc/PID/stat.
long cpu_ticks(pid_t pid) {
  std::ifstream f{"/proc/" + std::to_string(pid) + "/stat"};
  std::string s{std::istreambuf_iterator<char>{f}, {}};
  auto close = s.rfind(')');
  if (close == std::string::npos)
    return -1;
  std::istringstream in{s.substr(close + 2)};
  std::string field;
  long utime = 0, stime = 0;
  for (int i = 3; in >> field; ++i) {
    if (i == 14)
      utime = std::stol(field);
    if (i == 15) {
      stime = std::stol(field);
      break;
    }
  }
  return utime + stime;
}

/// The processes whose parent is `pid` (a worker's CRS process is its child).
std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    auto name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos)
      continue;
    std::ifstream f{e.path().string() + "/stat"};
    std::string st{std::istreambuf_iterator<char>{f}, {}};
    auto close = st.rfind(')');
    if (close == std::string::npos)
      continue;
    std::istringstream in{st.substr(close + 2)};
    std::string state;
    pid_t ppid = 0;
    if (in >> state >> ppid && ppid == pid)
      out.push_back(static_cast<pid_t>(std::stol(name)));
  }
  return out;
}

void check_ordinary(nectar::rules_pool& pool) {
  auto a = pool.evaluate(sqli);
  REQUIRE(a.what == nectar::rules_result::outcome::ok);
  CHECK(a.flagged);
  CHECK(std::count(a.rules.begin(), a.rules.end(), 949110) == 1);
  CHECK(a.score >= 5);
  auto b = pool.evaluate(benign);
  REQUIRE(b.what == nectar::rules_result::outcome::ok);
  CHECK_FALSE(b.flagged);
  CHECK(b.score == 0);
}

nectar::rules_pool_options pool_options() {
  nectar::rules_pool_options o;
  o.executable = test::comb_binary();
  o.workers = 2;
  o.cpu_budget = 250ms;
  o.wall_budget = 30s; // a loaded machine must not turn CPU overruns into wall ones
  return o;
}

/// A captured GET /search?q=`i` from loopback; `status` 0 while its response is to come.
nectar::exchange search_exchange(int i, int status = 0) {
  nectar::exchange x;
  x.method = "GET";
  x.target = "/search?q=" + std::to_string(i);
  x.version = "HTTP/1.1";
  x.headers = {{"Host", "127.0.0.1"}};
  x.remote_addr = "127.0.0.1";
  x.status = status;
  x.ts_ns = 1;
  return x;
}

} // namespace

TEST_SUITE("apps.nectar.rules") {
  TEST_CASE("frames round-trip and damaged ones are refused") {
    auto r = slow_post();
    auto back = nectar::decode_request(nectar::encode_request(r));
    REQUIRE(back);
    CHECK(back->method == r.method);
    CHECK(back->url == r.url);
    CHECK(back->headers == r.headers);
    CHECK(back->body == r.body);
    auto enc = nectar::encode_request(r);
    CHECK_FALSE(nectar::decode_request(enc.substr(0, enc.size() - 1)));
    CHECK_FALSE(nectar::decode_request(enc + "x"));
    nectar::rules_reply v;
    v.flagged = true;
    v.score = 13;
    v.cpu_ns = 123456789;
    v.rules = {942100, 949110};
    auto rv = nectar::decode_reply(nectar::encode_reply(v));
    REQUIRE(rv);
    CHECK(rv->flagged);
    CHECK(rv->score == 13);
    CHECK(rv->cpu_ns == 123456789);
    CHECK(rv->rules == v.rules);
    auto e = nectar::encode_reply(v);
    e[0] = 7;
    CHECK_FALSE(nectar::decode_reply(e));
  }

  TEST_CASE("a request past the CPU budget is 'timed out' while others keep their labels") {
    auto pool = nectar::rules_pool::start(pool_options());
    REQUIRE_MESSAGE(pool, test::why(pool));
    auto& p = **pool;
    CHECK(has(p.name(), "CRS 3.3.4"));
    check_ordinary(p);
    // The slow request on one worker, ordinary ones on the other meanwhile.
    auto slow = std::async(std::launch::async, [&] { return p.evaluate(slow_post()); });
    for (int i = 0; i < 3; ++i)
      check_ordinary(p);
    auto s = slow.get();
    CHECK(s.what == nectar::rules_result::outcome::timed_out);
    CHECK(s.flagged);
    CHECK(has(s.why, "250 ms of CPU"));
    CHECK(nectar::rules_failure_label(s.what) == "timed out");
    // Replaced: ordinary requests go on, and a second slow one is bounded the same way.
    check_ordinary(p);
    CHECK(p.evaluate(slow_post()).what == nectar::rules_result::outcome::timed_out);
    check_ordinary(p);
    auto st = p.stats();
    CHECK(st.timed_out == 2);
    CHECK(st.crashed == 0);
    CHECK(st.evaluated == 12); // the ordinary ones: six rounds of two
    // Without the bound (the worker's own budget off) the same request takes far longer than
    // the budget: a control, so that the bound is what made it end. Wall budget 1 s here.
    auto o = pool_options();
    o.workers = 1;
    o.cpu_budget = 0ms;
    o.wall_budget = 1s;
    auto unbounded = nectar::rules_pool::start(o);
    REQUIRE_MESSAGE(unbounded, test::why(unbounded));
    auto u = (*unbounded)->evaluate(slow_post());
    CHECK(u.what == nectar::rules_result::outcome::timed_out);
    CHECK(has(u.why, "wall-clock"));
  }

  TEST_CASE("a client's budget of slow CRS time: charged beyond the free part, refilled, "
            "bounded in debt and in clients") {
    nectar::client_budget_options o;
    o.per_second = 100ms; // 100 ms of CRS a second
    o.burst = 300ms;
    o.free = 10ms;
    o.max_clients = 3;
    nectar::client_budget b{o};
    auto t0 = nectar::client_budget::clock::time_point{} + std::chrono::hours{1};
    CHECK(b.allow("a", t0));
    // Ordinary requests (under `free`) cost nothing, however many.
    for (int i = 0; i < 1000; ++i)
      b.charge("a", 9ms, t0);
    CHECK(b.allow("a", t0));
    // Slow ones: 250 ms charges 240; the second puts the bucket in debt.
    b.charge("a", 250ms, t0);
    CHECK(b.allow("a", t0)); // 60 ms left
    b.charge("a", 250ms, t0);
    CHECK_FALSE(b.allow("a", t0)); // -180
    CHECK(b.allow("b", t0));       // another client is not touched
    CHECK(b.refused() == 1);
    // Refilled at 100 ms a second: -180 + 150 still in debt after 1.5 s, over 0 after 2 s.
    CHECK_FALSE(b.allow("a", t0 + 1500ms));
    CHECK(b.allow("a", t0 + 2000ms));
    // Debt is bounded by the burst: a flood of charges owes at most 300 ms, i.e. 3 s.
    for (int i = 0; i < 100; ++i)
      b.charge("a", 250ms, t0 + 2000ms);
    CHECK_FALSE(b.allow("a", t0 + 4900ms));
    CHECK(b.allow("a", t0 + 5100ms));
    // The bucket never holds more than the burst: after an idle hour, three slow requests
    // (720 ms) spend it.
    auto t1 = t0 + std::chrono::hours{1};
    for (int i = 0; i < 2; ++i)
      b.charge("a", 250ms, t1);
    CHECK_FALSE(b.allow("a", t1));
    // At most max_clients are tracked: full buckets go first, then any.
    CHECK(b.allow("c", t1));
    CHECK(b.clients() == 3);
    CHECK(b.allow("d", t1));
    CHECK(b.clients() <= 3);
    CHECK_FALSE(b.allow("a", t1)); // "a" owes: its bucket was kept
    // Off: everything allowed.
    o.per_second = 0ms;
    nectar::client_budget off{o};
    off.charge("a", 10s, t0);
    CHECK(off.allow("a", t0));
  }

  TEST_CASE("a client flooding slow bodies spends its budget; others keep CRS's labels") {
    auto o = pool_options();
    o.budget.per_second = 1ms; // about no refill within the test
    o.budget.burst = 300ms;
    auto pool = nectar::rules_pool::start(o);
    REQUIRE_MESSAGE(pool, test::why(pool));
    auto& p = **pool;
    for (int i = 0; i < 600 && p.pids().size() < 2; ++i) // the second worker starts later
      std::this_thread::sleep_for(100ms);
    REQUIRE(p.pids().size() == 2);
    // Four slow bodies at once from one client: large bodies take one worker at a time (the
    // other stays for ordinary requests), and the budget is checked when a worker is free, so
    // the first two run (240 ms charged each: 300 -> 60 -> -180) and the other two are
    // refused without CRS.
    std::vector<std::future<nectar::rules_result>> flood;
    for (int i = 0; i < 4; ++i)
      flood.push_back(std::async(std::launch::async, [&] {
        return p.evaluate(slow_post(), "10.0.0.1");
      }));
    auto a = p.evaluate(sqli, "10.0.0.2");
    CHECK(a.what == nectar::rules_result::outcome::ok);
    CHECK(std::count(a.rules.begin(), a.rules.end(), 949110) == 1);
    int timed_out = 0, exhausted = 0;
    for (auto& f : flood) {
      auto r = f.get();
      CHECK(r.flagged);
      timed_out += r.what == nectar::rules_result::outcome::timed_out ? 1 : 0;
      exhausted += r.what == nectar::rules_result::outcome::budget_exhausted ? 1 : 0;
    }
    CHECK(timed_out == 2);
    CHECK(exhausted == 2);
    // The flooding client's next requests, slow or not, are refused; the others' are labeled.
    auto refused = p.evaluate(benign, "10.0.0.1");
    CHECK(refused.what == nectar::rules_result::outcome::budget_exhausted);
    CHECK(refused.flagged);
    CHECK(nectar::rules_failure_label(refused.what) == "budget exhausted");
    auto b = p.evaluate(benign, "10.0.0.2");
    CHECK(b.what == nectar::rules_result::outcome::ok);
    CHECK_FALSE(b.flagged);
    check_ordinary(p); // no client given: no budget
    auto st = p.stats();
    CHECK(st.budget_exhausted == 3);
    CHECK(st.timed_out == 2);
    // The flood's large bodies waited for the one large worker while the other was idle.
    CHECK(st.large_waits >= 1);
  }

  TEST_CASE("callers take a worker in the order they came") {
    auto o = pool_options();
    o.workers = 1;
    auto pool = nectar::rules_pool::start(o);
    REQUIRE_MESSAGE(pool, test::why(pool));
    auto& p = **pool;
    // The slow body holds the one worker (250 ms of CPU) while five callers line up, one
    // after another; they are served in that order.
    REQUIRE(p.pids().size() == 1);
    std::vector<pid_t> crs;
    test::wait_until([&] { return (crs = children_of(p.pids()[0])).size() == 1; }, 30s,
                     "the worker's CRS process");
    REQUIRE(crs.size() == 1);
    auto ticks = cpu_ticks(crs[0]);
    auto slow = std::async(std::launch::async, [&] { return p.evaluate(slow_post()); });
    // The slow body holds the worker (its CRS process's CPU time grows) before anyone lines up.
    REQUIRE(test::wait_until([&] { return cpu_ticks(crs[0]) - ticks >= 5; }, 30s,
                             "the slow body in the worker"));
    std::mutex mu;
    std::map<uint64_t, int> served; // the turn each caller took the worker in -> the caller
    std::vector<std::future<void>> callers;
    for (int i = 0; i < 5; ++i) {
      // Caller i comes once the i before it wait in line.
      for (int k = 0; k < 3000 && p.waiting() < static_cast<size_t>(i); ++k)
        std::this_thread::sleep_for(1ms);
      callers.push_back(std::async(std::launch::async, [&, i] {
        auto r = p.evaluate(i % 2 ? sqli : benign);
        CHECK(r.what == nectar::rules_result::outcome::ok);
        std::lock_guard<std::mutex> guard{mu};
        served[r.turn] = i;
      }));
    }
    for (auto& c : callers)
      c.get();
    auto s = slow.get();
    CHECK(s.what == nectar::rules_result::outcome::timed_out);
    // The order of the turns they took, not of their returns: a caller whose thread the OS
    // held after its answer could otherwise be overtaken by the next one's whole request.
    std::vector<int> order;
    for (auto& [turn, i] : served) {
      CHECK(turn > s.turn);
      order.push_back(i);
    }
    CHECK(order == std::vector<int>{0, 1, 2, 3, 4});
  }

  TEST_CASE("a worker killed with SIGKILL is survived and named") {
    auto o = pool_options();
    o.cpu_budget = 600000ms; // the slow request stays in its worker until killed
    auto pool = nectar::rules_pool::start(o);
    REQUIRE_MESSAGE(pool, test::why(pool));
    auto& p = **pool;
    check_ordinary(p); // both workers running (the second one starts in the background)
    for (int i = 0; i < 600 && p.pids().size() < 2; ++i)
      std::this_thread::sleep_for(100ms);
    auto pids = p.pids();
    REQUIRE(pids.size() == 2);
    // Each worker runs CRS in a child forked with CRS loaded.
    std::vector<pid_t> crs;
    for (auto pid : pids) {
      // A worker forks its CRS process just after it said it is ready.
      std::vector<pid_t> c;
      test::wait_until([&] { return (c = children_of(pid)).size() == 1; }, 30s,
                       "the worker's CRS process");
      REQUIRE(c.size() == 1);
      crs.push_back(c[0]);
    }
    std::vector<long> before;
    for (auto pid : crs)
      before.push_back(cpu_ticks(pid));
    auto slow = std::async(std::launch::async, [&] { return p.evaluate(slow_post()); });
    // The CRS process that took it is the one whose CPU time grows (200 ms of it).
    size_t busy = crs.size();
    for (int i = 0; i < 3000 && busy == crs.size(); ++i) {
      for (size_t k = 0; k < crs.size(); ++k)
        if (cpu_ticks(crs[k]) - before[k] >= 20)
          busy = k;
      std::this_thread::sleep_for(10ms);
    }
    REQUIRE(busy < crs.size());
    REQUIRE(::kill(crs[busy], SIGKILL) == 0);
    auto s = slow.get();
    CHECK(s.what == nectar::rules_result::outcome::crashed);
    CHECK(s.flagged);
    CHECK(has(s.why, std::to_string(crs[busy])));
    CHECK(has(s.why, "signal 9"));
    CHECK(nectar::rules_failure_label(s.what) == "crashed");
    // Its worker forked another CRS process and goes on; the other worker killed with SIGKILL
    // while idle: the next requests find it dead, go to a replacement, and get CRS's labels.
    pid_t idle = pids[1 - busy];
    REQUIRE(::kill(idle, SIGKILL) == 0);
    check_ordinary(p);
    // The supervisor finds it dead (or a request did) and starts another.
    REQUIRE(test::wait_until(
      [&] {
        auto now = p.pids();
        return now.size() == 2 && std::find(now.begin(), now.end(), idle) == now.end();
      },
      60s, "the idle worker killed and replaced"));
    check_ordinary(p);
    auto st = p.stats();
    CHECK(st.crashed == 1);
    CHECK(st.died_idle == 1);
    CHECK(st.started == 3); // the killed idle worker's replacement only
    auto now = p.pids();
    CHECK(std::find(now.begin(), now.end(), pids[busy]) != now.end());
    CHECK(std::find(now.begin(), now.end(), idle) == now.end());
  }

  TEST_CASE("a worker holds none of the server's descriptors") {
    // A pipe that is not close-on-exec, as some of a server's sockets are.
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    auto target = [](const std::string& link) {
      char buf[256];
      auto n = ::readlink(link.c_str(), buf, sizeof(buf) - 1);
      return n > 0 ? std::string{buf, static_cast<size_t>(n)} : std::string{};
    };
    auto pipe_name = target("/proc/self/fd/" + std::to_string(fds[0]));
    REQUIRE_FALSE(pipe_name.empty());
    auto o = pool_options();
    o.workers = 1;
    auto pool = nectar::rules_pool::start(o);
    REQUIRE_MESSAGE(pool, test::why(pool));
    auto pids = (*pool)->pids();
    REQUIRE(pids.size() == 1);
    std::vector<std::string> held;
    std::error_code ec;
    for (auto& e : std::filesystem::directory_iterator(
           "/proc/" + std::to_string(pids[0]) + "/fd", ec))
      held.push_back(target(e.path().string()));
    CHECK_FALSE(held.empty());
    CHECK(std::find(held.begin(), held.end(), pipe_name) == held.end());
    ::close(fds[0]);
    ::close(fds[1]);
    check_ordinary(**pool);
  }

  TEST_CASE("a worker that cannot start is named, not waited for") {
    auto o = pool_options();
    o.executable = "/nonexistent/comb";
    auto pool = nectar::rules_pool::start(o);
    REQUIRE_FALSE(pool);
    CHECK(has(test::why(pool), "/nonexistent/comb"));
  }

  TEST_CASE("the server labels the slow request 'timed out' and the rest as CRS does") {
    test::temp_dir dir;
    test::node_child node{dir, {"--no-provenance"}};
    runtime::system_config cfg{2};
    caf::actor_system sys{cfg};
    auto c = test::connect_retry(sys, node.port());
    REQUIRE_MESSAGE(c, test::why(c));
    nectar::server_options so;
    so.node = {"127.0.0.1", node.port()};
    so.port = 0;
    so.threads = 8;
    so.kdf.log2_n = 10;
    so.capture_opts.label = false;
    so.capture_opts.rules_executable = test::comb_binary();
    so.capture_opts.rules_wall_budget = 30s;
    auto srv = nectar::server::start(sys, so);
    REQUIRE_MESSAGE(srv, test::why(srv));
    CHECK(has((*srv)->stats().rules_engine, "worker processes"));
    auto port = (*srv)->port();
    httplib::Client cli{"127.0.0.1", port};
    cli.set_read_timeout(60, 0);
    auto send = [&](const std::string& trace, bool slow) {
      httplib::Headers h{{"X-Nectar-Trace", trace}};
      auto r = slow ? cli.Post("/post", h, slow_body(), "application/x-www-form-urlencoded")
                    : cli.Get(trace == "sqli" ? "/search?q=1%27%20UNION%20SELECT%20password"
                                                "%20FROM%20users--"
                                              : "/search?q=alice",
                              h);
      REQUIRE(r);
    };
    send("before", false);
    send("sqli", false);
    send("slow", true);
    send("after", false);
    (*srv)->stop();
    auto st = (*srv)->stats();
    CHECK(st.rules_timed_out == 1);
    CHECK(st.captured == 4);
    auto r = c->call("httplog.rows", json{{"table", "request"}, {"limit", 100}}.dump(), "admin");
    REQUIRE_MESSAGE(r, test::why(r));
    std::map<std::string, json> by_trace;
    for (auto& row : (*r)["rows"])
      by_trace[row.value("trace_id", "")] = row;
    REQUIRE(by_trace.size() == 4);
    CHECK(by_trace["slow"]["rule_label"] == 1);
    CHECK(by_trace["slow"]["rule_ids"] == "timed out");
    CHECK(by_trace["sqli"]["rule_label"] == 1);
    CHECK(has(by_trace["sqli"]["rule_ids"].get<std::string>(), "949110"));
    for (auto t : {"before", "after"}) {
      CHECK(by_trace[t]["rule_label"] == 0);
      CHECK_FALSE(has(by_trace[t]["rule_ids"].get<std::string>(), "timed out"));
    }

    // With a client budget smaller than one slow request, that client's next request is
    // labeled "budget exhausted" without CRS, and still captured.
    so.capture_opts.rules_client_budget.burst = 100ms;
    so.capture_opts.rules_client_budget.per_second = 1ms;
    auto tight = nectar::server::start(sys, so);
    REQUIRE_MESSAGE(tight, test::why(tight));
    httplib::Client cli2{"127.0.0.1", (*tight)->port()};
    cli2.set_read_timeout(60, 0);
    for (auto trace : {"slow2", "after2"}) {
      httplib::Headers h{{"X-Nectar-Trace", trace}};
      auto r2 = std::string{trace} == "slow2"
                  ? cli2.Post("/post", h, slow_body(), "application/x-www-form-urlencoded")
                  : cli2.Get("/search?q=alice", h);
      REQUIRE(r2);
      if (std::string{trace} == "slow2") {
        // The response comes before CRS is done with the request (rules run after it); the
        // client's budget is charged once its CRS time is known, so wait for that.
        auto until = std::chrono::steady_clock::now() + 30s;
        while ((*tight)->stats().rules_timed_out < 1 && std::chrono::steady_clock::now() < until)
          std::this_thread::sleep_for(10ms);
        REQUIRE((*tight)->stats().rules_timed_out == 1);
      }
    }
    (*tight)->stop();
    auto st2 = (*tight)->stats();
    CHECK(st2.rules_timed_out == 1);
    CHECK(st2.rules_budget_exhausted == 1);
    CHECK(st2.captured == 2);
    r = c->call("httplog.rows", json{{"table", "request"}, {"limit", 100}}.dump(), "admin");
    REQUIRE_MESSAGE(r, test::why(r));
    by_trace.clear();
    for (auto& row : (*r)["rows"])
      by_trace[row.value("trace_id", "")] = row;
    CHECK(by_trace["slow2"]["rule_ids"] == "timed out");
    CHECK(by_trace["after2"]["rule_label"] == 1);
    CHECK(by_trace["after2"]["rule_ids"] == "budget exhausted");
  }

  TEST_CASE("the capture waits for its batch deadline only while the server is saturated") {
    // A deadline far beyond the test's waits, requests faster than one per deadline (the
    // worker starts counting gaps of a second): with fewer handlers running than
    // busy_handlers, each request goes at once; with that many, they are held for the
    // deadline (or stop()), none lost.
    test::temp_dir dir;
    test::node_child node{dir, {"--no-provenance"}};
    runtime::system_config cfg{2};
    caf::actor_system sys{cfg};
    nectar::capture_options co;
    co.rules = false;
    co.label = false;
    co.senders = 1;
    co.batch_delay = 60s;
    co.batch_when_busy = true;
    co.busy_handlers = 2;
    auto link = std::make_shared<nectar::node_link>(sys, endpoint{"127.0.0.1", node.port()},
                                                    "nectar");
    nectar::capture_worker w{link, co};
    auto request = [](int i) { return search_exchange(i, 200); };
    w.handler_started(); // one handler: below busy_handlers
    for (int i = 0; i < 3; ++i)
      w.push(request(i));
    REQUIRE_MESSAGE(test::wait_until([&] { return w.stats().captured == 3; }, 30s,
                                     "3 requests captured before the deadline"),
                    w.stats().last_error);
    w.handler_started(); // two: saturated
    for (int i = 3; i < 6; ++i)
      w.push(request(i));
    std::this_thread::sleep_for(1s);
    CHECK(w.stats().captured == 3);
    CHECK(w.stats().queued == 3);
    w.handler_ended();
    w.handler_ended();
    w.stop(30s);
    CHECK(w.stats().captured == 6);
    CHECK(w.stats().dropped == 0);
  }

  TEST_CASE("while saturated, a request taken at arrival goes once, after its response") {
    // Three handlers in progress of busy_handlers 2, batches of 3: the senders take the three
    // requests at once. Held, none goes before its response (no capture call for their labels
    // alone); answered, all three go in one call. Without the hold their labels go first.
    test::temp_dir dir;
    test::node_child node{dir, {"--no-provenance"}};
    runtime::system_config cfg{2};
    caf::actor_system sys{cfg};
    auto link = std::make_shared<nectar::node_link>(sys, endpoint{"127.0.0.1", node.port()},
                                                    "nectar");
    auto request = [](int i) { return search_exchange(i); };
    for (bool hold : {true, false}) {
      CAPTURE(hold);
      nectar::capture_options co;
      co.rules = false;
      co.label = false;
      co.at_arrival = true;
      co.senders = 1;
      co.batch_delay = 60s;
      co.batch_requests = 3;
      co.busy_handlers = 2;
      co.hold_when_busy = hold;
      nectar::capture_worker w{link, co};
      w.handler_started();
      w.handler_started();
      std::vector<std::string> ids;
      for (int i = 0; i < 3; ++i)
        ids.push_back(w.begin(request(i)));
      if (hold) {
        REQUIRE(test::wait_until([&] { return w.stats().held_for_response == 3; }, 30s,
                                 "3 requests held"));
        std::this_thread::sleep_for(500ms);
        CHECK(w.stats().batches == 0);
      } else {
        REQUIRE_MESSAGE(test::wait_until([&] { return w.stats().batches == 1; }, 30s,
                                         "the labels of 3 requests sent"),
                        w.stats().last_error);
        CHECK(w.stats().held_for_response == 0);
      }
      CHECK(w.stats().captured == 0);
      for (auto& id : ids)
        w.complete(id, 200, 100, 1.0, 0);
      REQUIRE_MESSAGE(test::wait_until([&] { return w.stats().captured == 3; }, 30s,
                                       "3 rows captured"),
                      w.stats().last_error);
      CHECK(w.stats().batches == (hold ? 1 : 2));
      if (!hold)
        continue;
      // Held at stop(): one answered (queued, short of a batch), two not; stop() sends the
      // answered one's row and the others' labels, and returns.
      ids.clear();
      for (int i = 3; i < 6; ++i)
        ids.push_back(w.begin(request(i)));
      REQUIRE(test::wait_until([&] { return w.stats().held_for_response == 6; }, 30s,
                               "3 more requests held"));
      w.complete(ids[0], 200, 100, 1.0, 0);
      std::this_thread::sleep_for(500ms);
      CHECK(w.stats().captured == 3);
      w.handler_ended();
      w.handler_ended();
      w.stop(30s);
      CHECK(w.stats().captured == 4);
      CHECK(w.stats().batches == 2);
      CHECK(w.stats().dropped == 0);
    }
  }

  TEST_CASE("node_link: threads share one caller; a killed node fails calls at once, a restarted "
            "one is connected again") {
    test::temp_dir dir;
    test::node_child node{dir, {"--no-provenance"}};
    runtime::system_config cfg{2};
    caf::actor_system sys{cfg};
    nectar::node_link link{sys, endpoint{"127.0.0.1", node.port()}, "nectar"};
    std::atomic<int> answered{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t)
      ts.emplace_back([&] {
        for (int i = 0; i < 25; ++i) {
          auto r = link.call("httplog.count", json::object());
          answered += r && r->contains("requests") ? 1 : 0;
        }
      });
    for (auto& t : ts)
      t.join();
    CHECK(answered == 100);
    // A procedure's own error comes back as the node's error, the link still up.
    auto bad = link.call("httplog.rows", json{{"table", "nope"}});
    REQUIRE_FALSE(bad);
    CHECK(is(bad.error(), errc::invalid_argument));
    CHECK(link.call("httplog.count", json::object()));
    node.kill();
    // The lost connection is the error, not the call's 60 s timeout.
    auto r = link.call("httplog.count", json::object(), 60s);
    REQUIRE_FALSE(r);
    CHECK_MESSAGE((is(r.error(), errc::unavailable) || is(r.error(), errc::network_error)),
                  describe(r.error()));
    CHECK(nectar::is_transient(r.error()));
    node.start();
    caf::expected<json> again = make_error(errc::unavailable, "not tried");
    REQUIRE(test::wait_until(
      [&] { return static_cast<bool>(again = link.call("httplog.count", json::object(), 5s)); },
      60s, "a call after the node's restart"));
    CHECK(again->contains("requests"));
  }
}
