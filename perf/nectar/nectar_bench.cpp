// perf_nectar: Nectar's cost of capture and labels, in one run. A compute process, a node and
// `comb nectar serve` run as child processes (perf/nectar/nectar_stack.hpp); the traffic
// generator (apps/nectar/traffic.hpp) drives the server. Prints:
//   throughput  requests/s answered with capture and model labels on against off (same
//               traffic, open loop above what the server can answer; goal on/off >= 0.8),
//               on with the capture taken at arrival and after the response (the default;
//               `comb nectar serve --capture-at`). With each: the CPU each process (server, its CRS
//               worker processes, node, compute, this generator)
//               spent per answered request, and CRS's own CPU per request (the server's
//               capture counters).
//   lag         request arrival to its labeled row committed, p50/p99, at 1,000 requests/s
//               (goal p99 <= 50 ms), from the spooled store by `comb nectar report`'s join,
//               with the report's figures for the labels and the lag split by stage, once
//               with the capture at arrival and once after the response. A run whose server
//               did not keep up with the offered rate (requests sent late or not at all) is
//               marked NOT SUSTAINED: its lag measures a queue, not the pipeline. Then the
//               lag is measured again at the highest rate this machine sustains (searched
//               downwards from what the saturated run answered, or --sustained-rate=R), in
//               both modes.
//   link        the node's CPU per call of a cheap procedure (httplog.count on empty tables)
//               from 8 threads of this process through nectar::node_link (runtime::client: one
//               long-lived actor sends every call) against a helper actor per call (how
//               runtime::client::call worked before: the node builds and kills a proxy of each
//               helper), alternating rounds in one run; ratio node_link / helper per call.
//               Only this benchmark: no detector is trained.
//   pg_spool    the node's log (after the runs above) spooled into PostgreSQL (a server of
//               its own, tests/pg_server.hpp) with rows as SQL text (COMB_PG_COPY=0) and
//               through COPY, in alternating turns, each into a fresh database: rows/s
// Flags: --benchmarks=throughput,lag,pg_spool --quick --model=FILE (an anomaly detector; default: one
// trained here on a sample of CSIC 2010) --rate=R --seconds=S --lag-rate=R --lag-seconds=S
// --connections=N --attack-share=X --data=DIR (../shared/data) --serve-flag=FLAG (repeatable:
// passed to `comb nectar serve`, e.g. --serve-flag=--batch-ms --serve-flag=5)
// --sustained-rate=R (skip the search: the rate to measure the sustained lag at; 0: no
// sustained run). --rules-in-process-too (throughput: a fourth run after the response with CRS
// in the server's process, unbounded, `--rules-workers 0`: the rules workers' baseline).
#include "apps/nectar/node_link.hpp"
#include "apps/nectar/report.hpp"
#include "apps/nectar/traffic.hpp"
#include "perf/bench_env.hpp"
#include "runtime/system_config.hpp"
#include "perf/nectar/nectar_stack.hpp"
#include "storage/sql_store.hpp"
#include "tests/pg_server.hpp"
#include "tests/test_util.hpp"

#include <caf/all.hpp>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <functional>
#include <sys/resource.h>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace comb;

namespace {

// Thrown on a failure, so that the child processes' destructors stop them on the way out.
struct failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] void die(const std::string& what) {
  throw failure{what};
}

void check(const caf::error& err, const std::string& what) {
  if (err)
    die(what + ": " + describe(err));
}

/// Requests of a truth file that the server must capture: answered, less those the HTTP
/// parser may have refused before any handler (400, 414: over-long headers or request line).
/// The baseline of the link benchmark: one call through a helper actor made for it (it
/// requests from the gateway, passes the reply on and ends), as runtime::client::call did
/// before it kept one caller per connection; the node builds and tears down a proxy of each
/// helper. True when the node answered.
bool helper_per_call(caf::actor_system& sys, const actors::gateway_actor& gw,
                     const std::string& proc, const std::string& args, const std::string& role) {
  caf::scoped_actor self{sys};
  auto reply_to = caf::actor_cast<caf::actor>(self);
  sys.spawn([=](caf::event_based_actor* helper) {
    helper->monitor(gw);
    helper->set_down_handler([=](caf::down_msg&) {
      helper->send(reply_to, false);
      helper->quit();
    });
    helper->request(gw, std::chrono::seconds{30}, call_atom::value, proc, args, role)
      .then(
        [=](std::string&) {
          helper->send(reply_to, true);
          helper->quit();
        },
        [=](caf::error&) {
          helper->send(reply_to, false);
          helper->quit();
        });
  });
  bool ok = false;
  self->receive([&](bool b) { ok = b; },
                caf::after(std::chrono::seconds{40}) >> [&] { ok = false; });
  return ok;
}

uint64_t to_capture(const std::string& truth_file) {
  auto truth = nectar::read_truth(truth_file);
  if (!truth)
    throw failure{describe(truth.error())};
  uint64_t n = 0;
  for (auto& t : *truth)
    n += t.status > 0 && t.status != 400 && t.status != 414 ? 1 : 0;
  return n;
}

/// Waits until the node has captured at least `at_least` requests, labeled every one it
/// captured, and its count stopped growing for 3 s (handler 400s are captured too, so
/// `at_least` is a floor, not the goal).
bool drained(test::nectar_stack& stack, caf::actor_system& sys, uint64_t at_least,
             std::chrono::seconds timeout, nlohmann::json& counts) {
  uint64_t last = 0;
  auto since = std::chrono::steady_clock::now();
  return test::wait_until(
    [&] {
      auto c = stack.count(sys);
      if (!c)
        return false;
      counts = *c;
      auto requests = counts.value("requests", uint64_t{0});
      auto now = std::chrono::steady_clock::now();
      if (requests != last) {
        last = requests;
        since = now;
      }
      return requests >= at_least && counts.value("labeled", uint64_t{0}) >= requests
             && now - since >= std::chrono::seconds{3};
    },
    timeout, "the node to capture and label every request");
}

/// The capture worker's last line in a server log ("nectar: captured ...").
std::string capture_line(const std::string& log) {
  auto at = log.rfind("nectar: captured");
  return at == std::string::npos ? "(no capture line)" : log.substr(at, log.find('\n', at) - at);
}

/// "load average 1.23 (1 min)": others' work on the machine while a figure was measured.
std::string load_now() {
  double load[3] = {-1, -1, -1};
  if (getloadavg(load, 3) < 0)
    load[0] = -1;
  char buf[64];
  std::snprintf(buf, sizeof buf, "load average %.2f (1 min)", load[0]);
  return buf;
}

/// Rows in every table of a store (the fixed tables and each spooled Comb table's).
uint64_t rows_in(storage::sql_store& s) {
  uint64_t n = 0;
  auto tables = s.query("SELECT sql_table FROM sql_tables");
  if (!tables)
    die(describe(tables.error()));
  std::vector<std::string> names{"func_invocations", "messages", "row_events", "row_reads"};
  for (auto& t : *tables)
    names.push_back("\"" + t["sql_table"].get<std::string>() + "\"");
  for (auto& name : names) {
    auto c = s.query("SELECT COUNT(*) AS n FROM " + name);
    if (!c)
      die(describe(c.error()));
    n += (*c)[0]["n"].get<uint64_t>();
  }
  return n;
}

/// CPU seconds (user + system) this process used so far.
double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec)
         + static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

/// One spool of `log` into `store`: records, rows in the store afterwards, wall and CPU
/// seconds (this process: the spooler's own share).
struct spool_run {
  uint64_t records = 0, rows = 0;
  double seconds = 0, cpu = 0;
  double rate() const { return seconds > 0 ? static_cast<double>(rows) / seconds : 0; }
};

spool_run timed_spool(storage::sql_store& store, const std::string& log) {
  spool_run r;
  auto t0 = std::chrono::steady_clock::now();
  auto c0 = cpu_seconds();
  auto n = store.spool(log);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.cpu = cpu_seconds() - c0;
  if (!n)
    die(describe(n.error()));
  r.records = *n;
  r.rows = rows_in(store);
  return r;
}

/// Spools `log` into PostgreSQL, rows as SQL text and through COPY, `turns` times each, and
/// once into SQLite (the spooler's own cost, for comparison).
void pg_spool(const std::string& log, int turns, const std::string& dir) {
  {
    auto lite = storage::sql_store::open(dir + "/pg_spool_baseline.sqlite");
    if (!lite)
      die(describe(lite.error()));
    auto r = timed_spool(**lite, log);
    std::printf("  pg_spool baseline, SQLite: %llu records, %llu rows in %.2f s (%.2f s CPU here): "
                "%.0f rows/s\n",
                static_cast<unsigned long long>(r.records), static_cast<unsigned long long>(r.rows),
                r.seconds, r.cpu, r.rate());
  }
  test::pg_server pg;
  if (!pg.available() || !pg.running()) {
    std::printf("pg_spool: skipped: %s\n", pg.why().c_str());
    return;
  }
  comb::perf::turns rates[2]; // rows/s: SQL text, COPY
  uint64_t records = 0;
  for (int turn = 0; turn < turns; ++turn)
    for (int copy = 0; copy < 2; ++copy) {
      auto url = pg.create_database("spool_" + std::to_string(turn) + "_" + std::to_string(copy));
      if (url.empty())
        die("createdb failed");
      setenv("COMB_PG_COPY", copy ? "1" : "0", 1);
      auto store = storage::sql_store::open(url);
      unsetenv("COMB_PG_COPY");
      if (!store)
        die(describe(store.error()));
      auto r = timed_spool(**store, log);
      records = r.records;
      rates[copy].add(r.rate());
      std::printf("  pg_spool turn %d, %-8s: %llu records, %llu rows in %.2f s (%.2f s CPU in "
                  "the spooler): %.0f rows/s\n",
                  turn + 1, copy ? "COPY" : "SQL text", static_cast<unsigned long long>(r.records),
                  static_cast<unsigned long long>(r.rows), r.seconds, r.cpu, r.rate());
    }
  std::printf("pg_spool: COPY / SQL text = %.2f (medians of turns, rows/s: COPY %s, SQL text %s; "
              "%llu records; %s)\n",
              rates[0].median() > 0 ? rates[1].median() / rates[0].median() : 0.0,
              rates[1].str("%.0f").c_str(), rates[0].str("%.0f").c_str(),
              static_cast<unsigned long long>(records), load_now().c_str());
}

} // namespace

int bench_main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0); // lines as they come, also into a pipe
  std::string benchmarks = "throughput,lag,pg_spool";
  bool quick = false;
  // Throughput also with CRS in the server's process, without a time bound (--rules-workers
  // 0), after the response: the baseline of the rules workers, in the same run.
  bool rules_in_process_too = false;
  std::string model_file;
  double rate = 800, seconds = 10, lag_rate = 1000, lag_seconds = 10, share = 0.2;
  uint32_t connections = 16;
  std::vector<std::string> serve_flags; // extra `comb nectar serve` flags (--serve-flag=...)
  std::string data_dir = std::string{COMB_SOURCE_DIR} + "/../shared/data";
  if (auto env = std::getenv("COMB_DATA_DIR"))
    data_dir = env;
  bool rate_set = false, seconds_set = false, lag_seconds_set = false;
  double sustained_rate = -1; // < 0: search for it
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&](const char* flag) { return a.substr(std::string{flag}.size()); };
    if (a.rfind("--benchmarks=", 0) == 0)
      benchmarks = val("--benchmarks=");
    else if (a == "--quick")
      quick = true;
    else if (a == "--rules-in-process-too")
      rules_in_process_too = true;
    else if (a.rfind("--model=", 0) == 0)
      model_file = val("--model=");
    else if (a.rfind("--rate=", 0) == 0)
      rate = std::stod(val("--rate=")), rate_set = true;
    else if (a.rfind("--seconds=", 0) == 0)
      seconds = std::stod(val("--seconds=")), seconds_set = true;
    else if (a.rfind("--lag-rate=", 0) == 0)
      lag_rate = std::stod(val("--lag-rate="));
    else if (a.rfind("--lag-seconds=", 0) == 0)
      lag_seconds = std::stod(val("--lag-seconds=")), lag_seconds_set = true;
    else if (a.rfind("--connections=", 0) == 0)
      connections = static_cast<uint32_t>(std::stoul(val("--connections=")));
    else if (a.rfind("--attack-share=", 0) == 0)
      share = std::stod(val("--attack-share="));
    else if (a.rfind("--data=", 0) == 0)
      data_dir = val("--data=");
    else if (a.rfind("--sustained-rate=", 0) == 0)
      sustained_rate = std::stod(val("--sustained-rate="));
    else if (a.rfind("--serve-flag=", 0) == 0)
      serve_flags.push_back(val("--serve-flag="));
    else
      die("unknown argument '" + a
          + "' (see the comment at the top of perf/nectar/nectar_bench.cpp)");
  }
  if (quick) {
    seconds = seconds_set ? seconds : 3;
    lag_seconds = lag_seconds_set ? lag_seconds : 3;
    rate = rate_set ? rate : 500;
  }
  auto payloads = nectar::payload_lists::load(nectar::default_payload_dir());
  if (!payloads)
    die(describe(payloads.error()));

  runtime::system_config cfg{2};
  caf::actor_system sys{cfg};
  test::temp_dir dir;
  test::nectar_stack stack{dir.path()};
  bool needs_model = benchmarks.find("throughput") != std::string::npos
                     || benchmarks.find("lag") != std::string::npos
                     || benchmarks.find("pg_spool") != std::string::npos;
  if (model_file.empty() && needs_model) {
    // A small detector trained here: enough to cost what a real one costs per request.
    model_file = dir.path() + "/waf.safetensors";
    std::printf("training a small detector on %s (CSIC 2010 sample)...\n", data_dir.c_str());
    std::fflush(stdout);
    check(stack.run("train", {"anomaly", "train", "--data", data_dir + "/csic2010", "--limit",
                              quick ? "500" : "2000", "--epochs", "1", "--vocab", "500",
                              "--max-tokens", "256", "--quiet", "-o", model_file}),
          "training the detector");
  }
  check(stack.start_backend(model_file), "starting the node");

  std::printf("perf_nectar: %u client connections, %.0f%% attacks, machine: %u cores%s\n",
              connections, share * 100, std::thread::hardware_concurrency(),
              quick ? " (quick)" : "");
  if (benchmarks.find("link") != std::string::npos) {
    // The same calls through both paths, in alternating rounds; the node's CPU per call.
    endpoint ep{"127.0.0.1", static_cast<uint16_t>(std::stoi(
                               stack.node_addr().substr(stack.node_addr().rfind(':') + 1)))};
    auto c = runtime::client::connect(sys, ep);
    check(c ? caf::error{} : c.error(), "connecting to the node");
    nectar::node_link link{sys, ep, "admin"};
    constexpr int threads = 8;
    const int per_thread = quick ? 150 : 500;
    double node_s[2] = {0, 0}, self_s[2] = {0, 0};
    uint64_t calls[2] = {0, 0};
    for (int round = 0; round < 6; ++round) {
      int way = round % 2; // 0: a helper actor per call, 1: node_link
      auto cpu0 = stack.cpu();
      std::vector<std::thread> ts;
      std::atomic<int> failed{0};
      for (int t = 0; t < threads; ++t)
        ts.emplace_back([&] {
          for (int i = 0; i < per_thread; ++i) {
            bool ok = way == 0 ? helper_per_call(sys, c->gateway(), "httplog.count", "{}", "admin")
                               : static_cast<bool>(link.call("httplog.count", nlohmann::json::object()));
            failed += ok ? 0 : 1;
          }
        });
      for (auto& t : ts)
        t.join();
      if (failed > 0)
        die("link: " + std::to_string(failed.load()) + " calls failed");
      auto cpu = stack.cpu() - cpu0;
      node_s[way] += cpu.node;
      self_s[way] += cpu.self;
      calls[way] += static_cast<uint64_t>(threads) * per_thread;
    }
    auto us = [&](double s, int way) { return s * 1e6 / static_cast<double>(calls[way]); };
    std::printf("  link: node CPU per call, us: helper per call %.1f, node_link (runtime::client) %.1f; "
                "caller CPU per call %.1f / %.1f (%llu calls each, %d threads)\n",
                us(node_s[0], 0), us(node_s[1], 1), us(self_s[0], 0), us(self_s[1], 1),
                static_cast<unsigned long long>(calls[0]), threads);
    std::printf("link: node CPU per call, node_link / helper per call = %.3f (%s)\n",
                node_s[0] > 0 ? (node_s[1] / calls[1]) / (node_s[0] / calls[0]) : 0.0,
                load_now().c_str());
  }

  // Throughput runs offer more than the server answers and drop what is still queued 5 s
  // after the last scheduled send; the lag run sends everything.
  auto traffic = [&](double r, double s, const std::string& truth, double drain_s,
                     std::function<void()> on_clock_start = {}) {
    nectar::traffic_options o;
    o.target = stack.http_addr();
    o.rate = r;
    o.duration_s = s;
    o.attack_share = share;
    o.connections = connections;
    o.truth_file = truth;
    o.drain_s = drain_s;
    // Users log in before the clock (a site's traffic comes mostly from logged-in users), so
    // the rates measure pages, not a burst of registrations (scrypt) at the start.
    o.log_in_first = true;
    o.on_clock_start = std::move(on_clock_start);
    auto st = nectar::run_traffic(o, *payloads);
    if (!st)
      die(describe(st.error()));
    return *st;
  };
  uint64_t captured_before = 0;

  if (benchmarks.find("throughput") != std::string::npos) {
    // Off, then on with the capture taken at arrival and after the response (the default;
    // --capture-at): taking a request at arrival may send its model call ahead of its row.
    const char* modes[] = {"off", "arrival", "response", "response, CRS in process"};
    double answered_rate[4] = {0, 0, 0, 0};
    for (int m = 0; m < (rules_in_process_too ? 4 : 3); ++m) {
      bool on = m > 0;
      auto flags = serve_flags;
      if (!on)
        flags.push_back("--no-capture");
      else
        flags.insert(flags.end(), {"--capture-at", m == 1 ? "arrival" : "response"});
      if (m == 3)
        flags.insert(flags.end(), {"--rules-workers", "0"});
      check(stack.start_server(flags), "starting nectar serve");
      auto truth = dir.path() + "/throughput-" + std::to_string(m) + ".jsonl";
      test::stack_cpu cpu0;
      auto st = traffic(rate, seconds, truth, 5, [&] { cpu0 = stack.cpu(); });
      auto cpu = stack.cpu() - cpu0;
      auto ended = std::chrono::steady_clock::now();
      answered_rate[m] = st.seconds > 0 ? static_cast<double>(st.answered) / st.seconds : 0;
      std::printf("  capture+labels %-11s: %7.1f requests/s answered (%llu of %llu, offered "
                  "%.0f/s; latency p50 %.1f ms p99 %.1f ms)\n",
                  on ? (std::string{"on, "} + modes[m]).c_str() : "off", answered_rate[m],
                  static_cast<unsigned long long>(st.answered),
                  static_cast<unsigned long long>(st.scheduled), rate, st.latency_p50_ms,
                  st.latency_p99_ms);
      auto per = [&](double s) {
        return st.answered > 0 ? s * 1e3 / static_cast<double>(st.answered) : 0.0;
      };
      std::printf("    CPU per answered request, ms (from the clock's start to the last answer): "
                  "server %.2f, its CRS workers %.2f, node %.2f, compute %.2f, generator %.2f; "
                  "total %.2f\n",
                  per(cpu.server), per(cpu.rules), per(cpu.node), per(cpu.compute),
                  per(cpu.self), per(cpu.total()));
      if (on) {
        nlohmann::json counts;
        bool ok = drained(stack, sys, captured_before + to_capture(truth),
                          std::chrono::seconds{180}, counts);
        // drained() waits 3 s after the last new row.
        auto behind = std::chrono::duration<double>(std::chrono::steady_clock::now() - ended)
                        .count()
                      - 3;
        std::printf("    then captured and labeled: %s (%s; the last about %.1f s after the "
                    "traffic ended)\n",
                    counts.dump().c_str(), ok ? "all" : "NOT ALL within 180 s",
                    std::max(0.0, behind));
        captured_before = counts.value("requests", uint64_t{0});
      }
      auto log = stack.stop_server();
      if (on)
        std::printf("    %s\n", capture_line(log).c_str());
    }
    for (int m = 1; m < 3; ++m)
      std::printf("throughput: capture+labels on (%s) / off = %.3f (goal >= 0.8; %s)\n",
                  modes[m], answered_rate[0] > 0 ? answered_rate[m] / answered_rate[0] : 0.0,
                  load_now().c_str());
    if (rules_in_process_too)
      std::printf("throughput: CRS in worker processes (time-bounded) / in the server's process "
                  "(unbounded), after the response = %.3f (%s)\n",
                  answered_rate[3] > 0 ? answered_rate[2] / answered_rate[3] : 0.0,
                  load_now().c_str());
  }

  // The lag at the offered rate (--lag-rate, 1,000/s), with the capture taken at arrival and
  // after the response; then, when the machine did not keep up, at the highest rate it
  // sustains.
  struct lag_result {
    bool sustained = false;
    double answered_rate = 0;
  };
  auto lag_run = [&](const std::string& mode, double offered) {
    auto flags = serve_flags;
    flags.insert(flags.end(), {"--capture-at", mode});
    check(stack.start_server(flags), "starting nectar serve");
    auto tag = mode + "-" + std::to_string(static_cast<int>(offered));
    auto truth = dir.path() + "/lag-truth-" + tag + ".jsonl";
    auto st = traffic(offered, lag_seconds, truth, 60);
    lag_result res;
    res.answered_rate = st.seconds > 0 ? static_cast<double>(st.answered) / st.seconds : 0;
    // Sustained: the requests went out at nine tenths of the offered rate or more (the
    // generator's connections did not wait for the server long enough to fall behind), none
    // was dropped, and all but 1% were answered.
    res.sustained = st.achieved_rate >= 0.9 * offered && st.dropped == 0
                    && static_cast<double>(st.answered) >= 0.99 * static_cast<double>(st.scheduled);
    std::printf("  lag run, capture at %s: %.1f requests/s offered, %.1f sent, %.1f answered "
                "(%llu of %llu; latency from the schedule p50 %.1f ms, p99 %.1f ms)%s\n",
                mode.c_str(), offered, st.achieved_rate, res.answered_rate,
                static_cast<unsigned long long>(st.answered),
                static_cast<unsigned long long>(st.scheduled), st.latency_p50_ms,
                st.latency_p99_ms,
                res.sustained ? ""
                              : ": NOT SUSTAINED, the server did not keep up with the offered "
                                "rate; the lag below is that of a queue");
    nlohmann::json counts;
    bool ok = drained(stack, sys, captured_before + to_capture(truth), std::chrono::seconds{180},
                      counts);
    if (!ok)
      std::printf("    not all captured and labeled within 180 s: %s\n", counts.dump().c_str());
    auto log = stack.stop_server();
    std::printf("    %s\n", capture_line(log).c_str());
    captured_before = counts.value("requests", captured_before);
    auto sql = dir.path() + "/store-" + tag + ".sqlite";
    check(stack.spool(sql), "spooling the log");
    auto rep = nectar::make_report(sql, truth);
    if (!rep)
      die(describe(rep.error()));
    std::printf("%s", nectar::to_string(*rep).c_str());
    std::printf("lag at %.0f requests/s offered (%.1f answered%s), capture at %s: p50 %.1f ms, "
                "p99 %.1f ms (from the generator's send: p50 %.1f ms, p99 %.1f ms; goal p99 <= "
                "50 ms; %s)\n",
                offered, res.answered_rate, res.sustained ? ", sustained" : ", NOT SUSTAINED",
                mode.c_str(), rep->lag_p50_ms, rep->lag_p99_ms, rep->lag_sent_p50_ms,
                rep->lag_sent_p99_ms, load_now().c_str());
    return res;
  };
  if (benchmarks.find("lag") != std::string::npos) {
    lag_result at_offered[2];
    const char* lag_modes[] = {"arrival", "response"};
    for (int m = 0; m < 2; ++m)
      at_offered[m] = lag_run(lag_modes[m], lag_rate);
    if (!at_offered[0].sustained || !at_offered[1].sustained) {
      // The highest rate sustained after the response (the default mode): from four fifths
      // of what the saturated run answered (its most, not a rate it keeps up with), down by a
      // quarter a try, at most three tries.
      double found = sustained_rate;
      if (found < 0) {
        double r = std::floor(0.8 * std::min(at_offered[1].answered_rate, lag_rate));
        for (int tries = 0; tries < 3 && r >= 5; ++tries, r = std::floor(r * 0.75)) {
          std::printf("  searching the highest sustained rate: %.0f requests/s\n", r);
          if (lag_run("response", r).sustained) {
            found = r;
            break;
          }
        }
        if (found < 0)
          std::printf("lag: no rate tried was sustained (load too high?)\n");
        else
          lag_run("arrival", found);
      } else if (found > 0) {
        lag_run("response", found);
        lag_run("arrival", found);
      }
      if (found > 0)
        std::printf("lag: the machine sustains about %.0f requests/s (%u cores; %s); the lines "
                    "above at %.0f/s give the lag there\n",
                    found, std::thread::hardware_concurrency(), load_now().c_str(), found);
    }
  }
  if (benchmarks.find("pg_spool") != std::string::npos)
    pg_spool(stack.data_dir() + "/provenance", quick ? 1 : 2, dir.path());
  return 0;
}

int main(int argc, char** argv) {
  perf::clean_blas_env(argv);
  try {
    return bench_main(argc, argv);
  } catch (const failure& f) {
    std::fprintf(stderr, "perf_nectar: %s\n", f.what());
    return 1;
  }
}
