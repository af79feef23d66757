// `comb nectar serve` (Nectar's HTTP server in this process, calling a running node) and
// `comb nectar count` (rows captured and labeled): flags and printing over
// apps/nectar/server.hpp. They join the `nectar` command group when it exists, or make it.
#include "cli/commands.hpp"
#include "cli/tls_flags.hpp"

#include "apps/nectar/rules_worker.hpp"
#include "apps/nectar/server.hpp"
#include "base/errc.hpp"
#include "runtime/system_config.hpp"

#include <caf/actor_system.hpp>

#include <csignal>
#include <iostream>
#include <memory>

namespace comb::cli {

namespace {

struct serve_opts {
  std::string node = "127.0.0.1:4242";
  runtime::tls_config tls; // --tls-*: the cluster's CA and a client certificate
  std::string secret_file; // --secret-file: a cluster without TLS that has a shared secret
  std::string listen = "127.0.0.1:8080";
  bool no_capture = false;
  bool no_labels = false;
  bool no_rules = false;
  std::string model = "waf";
  double threshold = 0.5;
  size_t batch = 256;
  int batch_ms = 20;
  size_t senders = 2;
  size_t rules_threads = 0;
  size_t rules_batch = 32;
  int rules_batch_ms = 10;
  size_t rules_body_kib = 128;
  size_t rules_workers = 2;
  int rules_budget_ms = 250;
  int rules_wall_ms = 2000;
  int rules_client_ms_per_s = 500;
  int rules_client_burst_ms = 1000;
  bool batch_when_busy = true;
  size_t batch_busy_handlers = 4;
  bool hold_when_busy = true;
  std::string capture_at = "response";
  int early_label_ms = 5;
  size_t queue_mib = 256;
  size_t threads = 64;
  double seconds = 0;
};

std::string stats_line(const nectar::capture_stats& s) {
  return "captured " + std::to_string(s.captured) + ", duplicates " + std::to_string(s.duplicates)
         + ", queued " + std::to_string(s.queued) + ", dropped " + std::to_string(s.dropped)
         + ", rejected " + std::to_string(s.rejected) + ", retries " + std::to_string(s.retries)
         + ", labels sent before the response " + std::to_string(s.early_labels)
         + ", held for their response while saturated " + std::to_string(s.held_for_response)
         + ", model calls "
         + std::to_string(s.label_calls) + ", waited for a model " + std::to_string(s.unlabeled)
         + ", CRS " + std::to_string(s.rules_evaluated) + " requests, "
         + (s.rules_evaluated > 0
              ? std::to_string(static_cast<double>(s.rules_cpu_ns) / 1e6
                               / static_cast<double>(s.rules_evaluated))
              : std::string{"0"})
         + " ms CPU each (bodies over " + std::to_string(nectar::rules_large_body >> 10)
         + " KiB: " + std::to_string(s.rules_large) + ", "
         + std::to_string(s.rules_large > 0 ? static_cast<double>(s.rules_large_cpu_ns) / 1e6
                                                / static_cast<double>(s.rules_large)
                                            : 0.0)
         + " ms each; bodies cut for CRS " + std::to_string(s.rules_cut) + "; timed out "
         + std::to_string(s.rules_timed_out) + ", worker crashed " + std::to_string(s.rules_crashed)
         + ", client budget exhausted " + std::to_string(s.rules_budget_exhausted)
         + ", workers found dead while idle " + std::to_string(s.rules_died_idle)
         + ", workers started " + std::to_string(s.rules_worker_starts) + ")";
}

void serve(const serve_opts& o) {
  auto node = parse_endpoint(o.node);
  if (!node)
    fail("nectar serve", node.error(), 2);
  auto listen = parse_endpoint(o.listen);
  if (!listen)
    fail("nectar serve", listen.error(), 2);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  runtime::system_config cfg{2};
  // The server's actors only carry its calls to the node. CAF's work-stealing workers poll
  // for work with 50 us sleeps when idle, which took about a sixth of the CPU samples of a
  // server and node under traffic (perf record); the sharing policy waits on a condition.
  cfg.set("scheduler.policy", caf::atom("sharing"));
  use_tls("nectar serve", cfg, o.tls);
  caf::actor_system sys{cfg};
  nectar::server_options so;
  so.node = *node;
  so.tls = o.tls;
  so.secret = read_secret("nectar serve", o.secret_file);
  so.host = listen->host;
  so.port = listen->port;
  so.capture = !o.no_capture;
  so.capture_opts.label = !o.no_labels;
  so.capture_opts.rules = !o.no_rules;
  so.capture_opts.model = o.model;
  so.capture_opts.threshold = o.threshold;
  so.capture_opts.batch_requests = o.batch;
  so.capture_opts.batch_delay = std::chrono::milliseconds{o.batch_ms};
  so.capture_opts.senders = o.senders;
  so.capture_opts.rules_threads = o.rules_threads;
  so.capture_opts.rules_batch = o.rules_batch;
  so.capture_opts.rules_batch_delay = std::chrono::milliseconds{o.rules_batch_ms};
  so.capture_opts.rules_body_bytes = o.rules_body_kib << 10;
  so.capture_opts.rules_workers = o.rules_workers;
  so.capture_opts.rules_cpu_budget = std::chrono::milliseconds{o.rules_budget_ms};
  so.capture_opts.rules_wall_budget = std::chrono::milliseconds{o.rules_wall_ms};
  so.capture_opts.rules_client_budget.per_second =
    std::chrono::milliseconds{o.rules_client_ms_per_s};
  so.capture_opts.rules_client_budget.burst = std::chrono::milliseconds{o.rules_client_burst_ms};
  so.capture_opts.batch_when_busy = o.batch_when_busy;
  so.capture_opts.busy_handlers = o.batch_busy_handlers;
  so.capture_opts.hold_when_busy = o.hold_when_busy;
  so.capture_opts.at_arrival = o.capture_at == "arrival";
  so.capture_opts.early_label_delay = std::chrono::milliseconds{o.early_label_ms};
  so.capture_opts.max_queue_bytes = o.queue_mib << 20;
  so.threads = o.threads;
  auto srv = nectar::server::start(sys, so);
  if (!srv)
    fail("nectar serve", srv.error());
  auto st = (*srv)->stats();
  std::cout << "nectar: serving " << (*srv)->url() << " (node " << o.node << "; capture "
            << (so.capture ? "on" : "off");
  if (so.capture)
    std::cout << ", rules " << st.rules_engine << ", model labels "
              << (so.capture_opts.label ? "'" + o.model + "'" : std::string{"off"});
  std::cout << ")" << std::endl;
  if (o.seconds > 0) {
    timespec ts{static_cast<time_t>(o.seconds),
                static_cast<long>((o.seconds - static_cast<double>(static_cast<time_t>(o.seconds)))
                                  * 1e9)};
    sigtimedwait(&set, nullptr, &ts);
  } else {
    int sig = 0;
    sigwait(&set, &sig);
  }
  std::cout << "nectar: stopping" << std::endl;
  (*srv)->stop();
  std::cout << "nectar: " << stats_line((*srv)->stats()) << std::endl;
}

void count(const serve_opts& o) {
  auto node = parse_endpoint(o.node);
  if (!node)
    fail("nectar count", node.error(), 2);
  runtime::system_config cfg{2};
  use_tls("nectar count", cfg, o.tls);
  caf::actor_system sys{cfg};
  nectar::node_link link{sys, *node, "admin", o.tls, read_secret("nectar count", o.secret_file)};
  auto r = link.call("httplog.count", nlohmann::json::object());
  if (!r)
    fail("nectar count", r.error());
  std::cout << r->dump(2) << std::endl;
}

} // namespace

void add_nectar_commands(CLI::App& app) {
  auto* nectar = nectar_group(app);
  auto o = std::make_shared<serve_opts>();
  auto* s = nectar->add_subcommand(
    "serve", "Serve Nectar over HTTP, calling the node's procedures; capture every request "
             "into httplog_request with rule and model labels");
  s->add_option("--node", o->node, "HOST:PORT of the node's gateway")->capture_default_str();
  add_tls_flags(s, o->tls);
  add_secret_flag(s, o->secret_file);
  s->add_option("--listen", o->listen, "HOST:PORT to serve HTTP on")->capture_default_str();
  s->add_flag("--no-capture", o->no_capture, "Capture nothing (and label nothing)");
  s->add_flag("--no-labels", o->no_labels, "Capture without model labels");
  s->add_flag("--no-rules", o->no_rules, "Capture without CRS rule labels");
  s->add_option("--model", o->model, "Anomaly model that labels requests")->capture_default_str();
  s->add_option("--threshold", o->threshold, "Score at or above which a request is anomalous")
    ->check(CLI::Range(0.0, 1.0))
    ->capture_default_str();
  s->add_option("--batch", o->batch, "Capture batch size (requests)")
    ->check(CLI::Range(1, 4096))
    ->capture_default_str();
  s->add_option("--batch-ms", o->batch_ms,
                "Capture batch deadline (ms): while another batch is with the node, a free "
                "sender waits until the first request is this old for more (0: never waits)")
    ->check(CLI::Range(0, 10000))
    ->capture_default_str();
  s->add_option("--senders", o->senders, "Capture threads sending batches to the node")
    ->check(CLI::Range(1, 64))
    ->capture_default_str();
  s->add_option("--rules-threads", o->rules_threads,
                "Capture threads labeling requests by CRS rules (0: on the HTTP thread; "
                "measured faster on 2 cores)")
    ->check(CLI::Range(0, 64))
    ->capture_default_str();
  s->add_option("--rules-batch", o->rules_batch,
                "With --rules-threads: most requests a rules thread labels back to back")
    ->check(CLI::Range(1, 4096))
    ->capture_default_str();
  s->add_option("--rules-batch-ms", o->rules_batch_ms,
                "With --rules-threads: how long a rules thread waits for a full batch after "
                "its first request (0: never waits)")
    ->check(CLI::Range(0, 10000))
    ->capture_default_str();
  s->add_option("--batch-when-busy", o->batch_when_busy,
                "While requests come faster than one per --batch-ms, a free sender also waits "
                "for that deadline (or a full batch): fewer, larger capture and model calls")
    ->capture_default_str();
  s->add_option("--batch-busy-handlers", o->batch_busy_handlers,
                "--batch-when-busy waits only while at least this many requests are in their "
                "handlers (the server is saturated); below, a batch goes at once when no other "
                "is with the node (0: the arrival rate alone decides)")
    ->check(CLI::Range(0, 1 << 20))
    ->capture_default_str();
  s->add_option("--hold-when-busy", o->hold_when_busy,
                "With --capture-at arrival, while saturated (as --batch-busy-handlers says), a "
                "request whose response is still to come waits for it and goes once, its model "
                "label with its row, instead of its label going alone first")
    ->capture_default_str();
  s->add_option("--rules-body-kib", o->rules_body_kib,
                "Most KiB of a request body CRS reads (ModSecurity's advice: 128; the row keeps "
                "up to 1024)")
    ->check(CLI::Range(1, 1024))
    ->capture_default_str();
  s->add_option("--rules-workers", o->rules_workers,
                "CRS runs in this many worker processes, each request under --rules-budget-ms "
                "of CPU (past it the worker is replaced and the request labeled 'timed out'; 0: "
                "CRS in this process, without a time bound)")
    ->check(CLI::Range(0, 64))
    ->capture_default_str();
  s->add_option("--rules-budget-ms", o->rules_budget_ms,
                "Most CPU time (ms) CRS may take for one request in a worker")
    ->check(CLI::Range(1, 600000))
    ->capture_default_str();
  s->add_option("--rules-wall-ms", o->rules_wall_ms,
                "Most wall-clock time (ms) a worker may hold one request (a stopped or starved "
                "worker is killed)")
    ->check(CLI::Range(1, 600000))
    ->capture_default_str();
  s->add_option("--rules-client-ms-per-s", o->rules_client_ms_per_s,
                "With rules workers: CRS CPU time (ms) beyond 10 ms a request that one client "
                "(remote address) regains per second; past its budget its requests are labeled "
                "'budget exhausted' (flagged) without CRS (0: no per-client bound)")
    ->check(CLI::Range(0, 600000))
    ->capture_default_str();
  s->add_option("--rules-client-burst-ms", o->rules_client_burst_ms,
                "The most of that CRS CPU time (ms) one client may spend at once")
    ->check(CLI::Range(1, 600000))
    ->capture_default_str();
  s->add_option("--capture-at", o->capture_at,
                "When a request is taken for capture: 'arrival' (its rule label and model "
                "call do not wait for its handler, its row follows its response: a shorter "
                "labeling lag, fewer requests/s at saturation) or 'response' (after its "
                "response is written)")
    ->check(CLI::IsMember({"arrival", "response"}))
    ->capture_default_str();
  s->add_option("--early-label-ms", o->early_label_ms,
                "With --capture-at arrival: how long a request waits for its response before "
                "its model call goes alone (0: never waits)")
    ->check(CLI::Range(0, 10000))
    ->capture_default_str();
  s->add_option("--queue-mib", o->queue_mib,
                "Most MiB of requests held for capture while the node is away (oldest dropped, "
                "counted, beyond)")
    ->check(CLI::Range(1, 65536))
    ->capture_default_str();
  s->add_option("--threads", o->threads, "HTTP worker threads")
    ->check(CLI::Range(2, 1024))
    ->capture_default_str();
  s->add_option("--seconds", o->seconds, "Stop after this many seconds (0: at Ctrl-C)");
  s->callback([o] { serve(*o); });

  // The CRS worker that `nectar serve` starts (rules_pool): not for people to run.
  auto wo = std::make_shared<nectar::rules_worker_options>();
  auto wbudget = std::make_shared<int>(250);
  auto* w = nectar->add_subcommand("rules-worker",
                                   "CRS on the socket at fd 3, one request at a time (started "
                                   "by nectar serve)");
  w->group(""); // hidden from --help
  w->add_option("--paranoia", wo->paranoia, "CRS paranoia level")->check(CLI::Range(1, 4));
  w->add_option("--cpu-budget-ms", *wbudget, "CPU time CRS may take for one request")
    ->check(CLI::Range(0, 600000));
  w->callback([wo, wbudget] {
    wo->cpu_budget = std::chrono::milliseconds{*wbudget};
    int rc = nectar::run_rules_worker(3, *wo);
    if (rc != 0)
      throw CLI::RuntimeError(rc);
  });

  auto co = std::make_shared<serve_opts>();
  auto* c = nectar->add_subcommand("count", "Count captured, labeled and waiting requests");
  c->add_option("--node", co->node, "HOST:PORT of the node's gateway")->capture_default_str();
  add_tls_flags(c, co->tls);
  add_secret_flag(c, co->secret_file);
  c->callback([co] { count(*co); });
}

} // namespace comb::cli
