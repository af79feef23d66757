// `comb node` (serve one node), `comb call` (invoke a procedure on a running node) and
// `comb demo` (a single-node Comb with the example apps and a short workload).
#include "cli/commands.hpp"
#include "cli/tls_flags.hpp"

#include "apps/apps.hpp"
#include "apps/bank/bank_demo.hpp"
#include "apps/imaging/imaging_demo.hpp"
#ifdef COMB_HAVE_NECTAR_SERVER
#  include "apps/nectar/server.hpp"
#endif
#ifdef COMB_HAVE_NECTAR_TRAFFIC
#  include "apps/nectar/traffic.hpp"
#endif
#include "apps/console/accounts.hpp"
#include "apps/console/console_demo.hpp"
#include "apps/console/console_server.hpp"
#include "node/client.hpp"
#include "runtime/pieces/compute_types.hpp"
#include "node/cluster_config.hpp"
#include "base/cpu_set.hpp"
#include "base/errc.hpp"
#include "base/stop_signals.hpp"
#include "base/sync_point.hpp"
#include "node/compute_process.hpp"
#include "node/node.hpp"
#include "runtime/system_config.hpp"
#include "storage/database.hpp"
#include "storage/sql_store.hpp"

#include <caf/actor_system.hpp>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <random>
#include <thread>

#include <unistd.h>

namespace comb::cli {

namespace {

// SIGINT/SIGTERM, blocked in this thread (main() has already blocked them before anything
// else ran, so every thread has them blocked), for wait_for_signal() to take synchronously.
sigset_t block_stop_signals() {
  auto set = stop_signal_set();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

// Waits for SIGINT/SIGTERM (one that came during start-up is pending and taken at once), or
// until `seconds` pass when seconds > 0. Says why it returned: "SIGTERM", "SIGINT" or
// "--seconds passed".
std::string wait_for_signal(const sigset_t& set, double seconds) {
  int sig = 0;
  if (seconds > 0) {
    timespec ts;
    ts.tv_sec = static_cast<time_t>(seconds);
    ts.tv_nsec = static_cast<long>((seconds - static_cast<double>(ts.tv_sec)) * 1e9);
    sig = sigtimedwait(&set, nullptr, &ts);
  } else if (sigwait(&set, &sig) != 0) {
    sig = -1;
  }
  if (sig == SIGTERM)
    return "SIGTERM";
  if (sig == SIGINT)
    return "SIGINT";
  return "--seconds passed";
}

struct node_opts {
  std::string data;
  std::string listen = "127.0.0.1:4242";
  std::string durability = "sync";
  uint32_t partitions = 4;
  std::string name = "n1";
  std::string config;
  double seconds = 0;
  std::string provenance;
  bool no_provenance = false;
  bool record_reads = false;
  bool accept_log_loss = false;
  std::string spool;
  std::string compute;
  /// --cpus: the CPUs this process runs on ("": the config's `cpus`, else wherever it may).
  std::string cpus;
  double compute_give_up = 60;
  // `comb demo` only: the traffic generator's rate against Nectar (0: off), the console's port.
  double traffic_rate = 2;
  int console_port = 8090;
  // --tls-*: override the cluster config's TLS files (or give them without a config).
  runtime::tls_config tls;
};

// Fills a node_config from flags or from a cluster config file (then `member` is the node's
// entry in it, with its roles).
runtime::node_config resolve(const node_opts& o, const std::string& cmd,
                             std::optional<runtime::cluster_node>* member = nullptr) {
  runtime::node_config nc;
  bool spool_role = true;
  if (!o.config.empty()) {
    auto cc = runtime::load_cluster_config(o.config);
    if (!cc)
      fail(cmd, cc.error(), 2);
    auto n = cc->node_config_for(o.name);
    if (!n)
      fail(cmd, n.error(), 2);
    nc = std::move(*n);
    // A node without a gateway address serves no client and no other node; the parser
    // accepts a one-node file without 'listen' (for embedding), `comb node` does not.
    if (!nc.listen)
      fail(cmd,
           make_error(errc::bad_config,
                      o.config + ": node '" + o.name
                        + "': missing 'listen' (HOST:PORT of its gateway; clients reach it there)"),
           2);
    spool_role = cc->find(o.name)->has_role("spooler");
    if (member)
      *member = *cc->find(o.name);
    if (!o.data.empty())
      nc.data_dir = o.data;
  } else {
    if (o.data.empty())
      fail(cmd, make_error(errc::bad_config, "--data DIR (or --config FILE) is required"), 2);
    nc.name = o.name;
    nc.data_dir = o.data;
    nc.partitions = o.partitions;
    if (!storage::parse_durability(o.durability, nc.durability))
      fail(cmd, make_error(errc::bad_config, "--durability must be sync or async"), 2);
    auto ep = comb::parse_endpoint(o.listen);
    if (!ep)
      fail(cmd, ep.error(), 2);
    nc.listen = true;
    nc.host = ep->host;
    nc.port = ep->port;
  }
  if (o.tls.enabled())
    nc.tls = o.tls;
  if (!o.no_provenance)
    nc.provenance_dir = o.provenance.empty() ? nc.data_dir + "/provenance" : o.provenance;
  nc.record_reads = o.record_reads;
  nc.accept_log_loss = o.accept_log_loss;
  if (!nc.provenance_dir.empty() && o.spool != "none" && (spool_role || !o.spool.empty()))
    nc.spool_file = o.spool.empty() ? nc.data_dir + "/provenance.sqlite" : o.spool;
  // A SQLite file that can never open (its folder is missing, or it is a folder) is a wrong
  // flag, refused here: the spooler retries a store it cannot open once a second (a
  // PostgreSQL server may come up later), so the node would run, logging the error forever.
  if (!o.spool.empty() && nc.spool_file == o.spool && !storage::sql_store::is_postgresql(o.spool)) {
    namespace fs = std::filesystem;
    std::error_code ec;
    auto parent = fs::path{o.spool}.parent_path();
    if (fs::is_directory(o.spool, ec))
      fail(cmd,
           make_error(errc::bad_config, "--spool " + o.spool + " is a folder, not an SQLite file"),
           2);
    // The node creates its data and provenance folders: a file in one of them is fine.
    auto made = [&](const std::string& dir) {
      return !dir.empty() && parent.lexically_normal() == fs::path{dir}.lexically_normal();
    };
    if (!parent.empty() && !fs::is_directory(parent, ec) && !made(nc.data_dir)
        && !made(nc.provenance_dir))
      fail(cmd,
           make_error(errc::bad_config,
                      "--spool " + o.spool + ": folder " + parent.string() + " does not exist"),
           2);
  }
  if (!o.compute.empty()) {
    auto ep = comb::parse_endpoint(o.compute);
    if (!ep)
      fail(cmd, ep.error(), 2);
    nc.compute = *ep;
  }
  // Without a compute process, calls fail visibly (log, status, their result) instead of
  // waiting in the outbox in silence.
  nc.dispatch_without_compute = true;
  if (o.compute_give_up < 0)
    fail(cmd, make_error(errc::bad_config, "--compute-give-up must be >= 0 seconds"), 2);
  nc.compute_give_up = std::chrono::milliseconds{static_cast<int64_t>(o.compute_give_up * 1000)};
  return nc;
}

void add_node_flags(CLI::App* sub, node_opts& o) {
  sub->add_option("--data", o.data, "Data folder (created when missing)");
  sub->add_option("--cpus", o.cpus,
                  "Run on these CPUs only, as taskset's list (0, 0-3, 0,4-5; default: the "
                  "config's 'cpus', else every CPU): the scheduler takes one thread per CPU");
  sub->add_option("--listen", o.listen, "HOST:PORT for the gateway")->capture_default_str();
  sub->add_option("--durability", o.durability, "sync (fsync before ack) or async")
    ->check(CLI::IsMember({"sync", "async"}))
    ->capture_default_str();
  sub->add_option("--partitions", o.partitions, "Number of state actors (hash partitions)")
    ->check(CLI::Range(1, 1024))
    ->capture_default_str();
  sub->add_option("--name", o.name, "Node name (with --config: which node to run)")
    ->capture_default_str();
  sub->add_option("--config", o.config, "Cluster config file (cluster_configs/*.toml)");
  add_tls_flags(sub, o.tls);
  sub->add_option("--seconds", o.seconds, "Stop after this many seconds (0: at Ctrl-C)");
  sub->add_option("--provenance", o.provenance, "Provenance log folder (default DATA/provenance)");
  sub->add_option("--compute", o.compute,
                  "HOST:PORT of a `comb compute` process: start the outbox dispatcher that "
                  "sends committed function calls there");
  sub
    ->add_option("--compute-give-up", o.compute_give_up,
                 "Seconds a function call may fail to reach the compute process (down, or "
                 "no --compute) before that error is its result (0: retry forever)")
    ->capture_default_str();
  sub->add_flag("--no-provenance", o.no_provenance, "Record no provenance");
  sub->add_flag("--record-reads", o.record_reads, "Record the rows transactions read, too");
  sub->add_flag("--accept-log-loss", o.accept_log_loss,
                "Start although the provenance log lost records that the WAL cannot rebuild; "
                "the loss is recorded in the log (without it the node refuses to start)");
  sub->add_option("--spool,--sql", o.spool,
                  "SQLite file, or postgresql://user@host:port/db, the log is spooled into "
                  "continuously (default DATA/provenance.sqlite; 'none' to turn off)");
}

std::shared_ptr<runtime::procedure_registry> all_apps() {
  auto procs = std::make_shared<runtime::procedure_registry>();
  apps::register_all(*procs);
  return procs;
}

/// --cpus (or the config's `cpus`), before any thread starts: every thread inherits the set,
/// and the scheduler and the kernels' pool size themselves to it.
void place_on_cpus(const node_opts& o, const runtime::cluster_node* member, const std::string& cmd,
                   const std::string& name) {
  std::vector<int> cpus = member ? member->cpus : std::vector<int>{};
  if (!o.cpus.empty()) {
    auto parsed = parse_cpu_list(o.cpus);
    if (!parsed)
      fail(cmd, parsed.error(), 2);
    cpus = std::move(*parsed);
  }
  if (cpus.empty())
    return;
  if (auto err = run_on_cpus(cpus))
    fail(cmd, err, 2);
  std::cout << "comb " << cmd << " " << name << ": on CPUs " << cpu_list_text(allowed_cpus())
            << std::endl;
}

void run_node(const node_opts& o) {
  // The first line, before anything can fail: a node that ends before it listens has at least
  // said it started, and every way out after this line prints why (fail(), a fatal signal in
  // main.cpp) or ends with "stopped".
  std::cout << "comb node " << o.name << ": starting (pid " << ::getpid() << ")" << std::endl;
  COMB_SYNC_POINT("node.start.begin");
  auto signals = block_stop_signals();
  std::optional<runtime::cluster_node> member;
  auto nc = resolve(o, "node", &member);
  place_on_cpus(o, member ? &*member : nullptr, "node", nc.name);
  runtime::system_config cfg;
  if (auto err = cfg.set_tls(nc.tls)) // the cluster's TLS files, from its config
    fail("node", err, 2);
  bool compute_role = member && member->has_role("compute");
  if (compute_role)
    runtime::compute_process::configure(cfg);
  else
    runtime::add_compute_types(cfg);
  caf::actor_system sys{cfg};
  // A compute node runs the compute process in its own process, on its compute_listen address.
  std::unique_ptr<runtime::compute_process> compute;
  if (compute_role) {
    actors::compute_config cc;
    auto choice = runtime::compute_process::choose_backends(member->backend);
    if (!choice)
      fail("node", choice.error(), 2);
    cc.backend = choice->name;
    cc.backend_note = choice->note;
    cc.backends = choice->backends;
    auto cp = runtime::compute_process::start(sys, cc, *member->compute_listen, nc.tls);
    if (!cp)
      fail("node", cp.error());
    compute = std::move(*cp);
    std::cout << "comb node " << nc.name << ": compute process on " << member->compute_listen->host
              << ":" << compute->port() << " (" << cc.backend
              << (cc.backend_note.empty() ? "" : ", " + cc.backend_note) << ")" << std::endl;
  }
  auto n = runtime::node::start(sys, nc, all_apps());
  if (!n)
    fail("node", n.error());
  std::cout << "comb node " << nc.name << ": listening on " << nc.host << ":" << (*n)->port()
            << " (data " << nc.data_dir << ", partitions "
            << runtime::describe_partitions((*n)->config().owned) << " of " << nc.partitions << ", "
            << storage::to_string(nc.durability) << ", provenance "
            << (nc.provenance_dir.empty() ? "off" : nc.provenance_dir) << ")" << std::endl;
  for (auto& p : nc.peers)
    std::cout << "comb node " << nc.name << ": peer " << p.name << " at " << p.address.to_string()
              << " runs partitions " << runtime::describe_partitions(p.partitions) << std::endl;
  if (auto* r = (*n)->recorder(); r && !r->recovery_note().empty())
    std::cout << "comb node " << nc.name << ": " << r->recovery_note() << std::endl;
  // The apps' HTTP servers of the node's roles, reaching this node like any client would.
  auto self_ep = endpoint{nc.host, (*n)->port()};
#ifdef COMB_HAVE_NECTAR_SERVER
  caf::expected<std::unique_ptr<nectar::server>> nectar_srv{nullptr};
  if (member && member->has_role("nectar")) {
    nectar::server_options nso;
    nso.node = self_ep;
    nso.host = member->nectar_listen->host;
    nso.port = member->nectar_listen->port;
    nso.tls = nc.tls;
    nso.secret = nc.secret;
    nectar_srv = nectar::server::start(sys, nso);
    if (!nectar_srv)
      fail("node", make_error(errc::network_error, "node " + nc.name + ": role \"nectar\": "
                                                     + describe(nectar_srv.error())));
    std::cout << "comb node " << nc.name << ": nectar serving " << (*nectar_srv)->url()
              << " (every request captured into httplog_request)" << std::endl;
  }
#endif
  std::unique_ptr<apps::console::console_server> console;
  std::thread console_thread;
  if (member && member->has_role("console")) {
    apps::console::console_options co;
    co.sql_file = nc.spool_file;
    co.system = &sys;
    co.node = self_ep;
    co.node_tls = nc.tls;
    co.node_secret = nc.secret;
    co.host = member->console_listen->host;
    co.port = member->console_listen->port;
    auto made = apps::console::console_server::make(co);
    caf::expected<int> port = made ? (*made)->bind() : caf::expected<int>{made.error()};
    if (!made || !port)
      fail("node", make_error(errc::bad_config, "node " + nc.name + ": role \"console\": "
                                                  + describe(made ? port.error() : made.error())));
    console = std::move(*made);
    console_thread = std::thread{[c = console.get()] { c->run(); }};
    std::cout << "comb node " << nc.name << ": console on http://" << co.host << ":" << *port
              << "/ (accounts: comb console add-user --node " << self_ep.to_string() << ")"
              << std::endl;
  }
  auto why = wait_for_signal(signals, o.seconds);
  std::cout << "comb node " << nc.name << ": stopping (" << why << ")" << std::endl;
  if (console) {
    console->stop();
    console_thread.join();
  }
#ifdef COMB_HAVE_NECTAR_SERVER
  if (nectar_srv && *nectar_srv)
    (*nectar_srv)->stop();
#endif
  (*n)->stop();
  compute.reset();
}

struct call_opts {
  std::string node = "127.0.0.1:4242";
  std::string role = "admin";
  std::string proc;
  std::string args = "{}";
  double timeout = 60;
  runtime::tls_config tls;
  std::string secret_file;
};

void run_call(const call_opts& o) {
  auto ep = comb::parse_endpoint(o.node);
  if (!ep)
    fail("call", ep.error(), 2);
  runtime::system_config cfg{2};
  if (auto err = cfg.set_tls(o.tls))
    fail("call", err, 2);
  caf::actor_system sys{cfg};
  // --timeout bounds every step: connecting, then the call itself.
  auto deadline = std::chrono::steady_clock::now()
                  + std::chrono::milliseconds{static_cast<long>(o.timeout * 1000)};
  auto left = [&] {
    return std::max(std::chrono::milliseconds{1},
                    std::chrono::duration_cast<std::chrono::milliseconds>(
                      deadline - std::chrono::steady_clock::now()));
  };
  auto c = runtime::client::connect(sys, *ep, left(), o.tls, read_secret("call", o.secret_file));
  if (!c)
    fail("call", c.error());
  auto r = c->call(o.proc, o.args, o.role, left());
  if (!r)
    fail("call", r.error());
  std::cout << r->dump(2) << std::endl;
}

struct status_opts {
  std::string node = "127.0.0.1:4242";
  double timeout = 10;
  bool json = false;
  runtime::tls_config tls;
  std::string secret_file;
};

// `comb node status`: the node's description and its outbox dispatcher's view of the compute
// connection (the gateway's info), with the calls that cannot reach it.
void run_status(const status_opts& o) {
  auto ep = comb::parse_endpoint(o.node);
  if (!ep)
    fail("node status", ep.error(), 2);
  runtime::system_config cfg{2};
  if (auto err = cfg.set_tls(o.tls))
    fail("node status", err, 2);
  caf::actor_system sys{cfg};
  auto c = runtime::client::connect(sys, *ep,
                                    std::chrono::milliseconds{static_cast<long>(o.timeout * 1000)},
                                    o.tls, read_secret("node status", o.secret_file));
  if (!c)
    fail("node status", c.error(), 3);
  auto text = c->info();
  if (!text)
    fail("node status", text.error(), 3);
  auto info = nlohmann::json::parse(*text, nullptr, false);
  if (info.is_discarded())
    fail("node status", make_error(errc::protocol_error, "the node's info is not JSON"));
  info.erase("procedures"); // long, and `comb --help-all` lists what a build registers
  info.erase("tables");
  if (o.json) {
    std::cout << info.dump(2) << std::endl;
    return;
  }
  std::cout << "node " << info.value("name", "?") << ": partitions "
            << info.value("owned", std::string{"?"}) << " of " << info.value("partitions", 0)
            << ", " << info.value("durability", "?") << ", data " << info.value("data_dir", "?")
            << "\n";
  auto ob = info.value("outbox", nlohmann::json::object());
  if (!ob.contains("compute")) {
    std::cout << "compute: no outbox dispatcher on this node"
              << (ob.contains("error") ? " (" + ob.value("error", "") + ")" : std::string{})
              << "\n";
    return;
  }
  auto cp = ob["compute"];
  std::cout << "compute: " << cp.value("state", "?") << " (" << cp.value("endpoint", "?") << ")";
  if (cp.contains("last_error"))
    std::cout << "; last error " << cp.value("last_error_ago_s", 0.0)
              << " s ago: " << cp.value("last_error", "");
  std::cout << "\n";
  std::cout << "outbox: " << ob.value("sent", 0) << " sent, " << ob.value("applied", 0)
            << " applied, " << ob.value("in_flight", 0) << " in flight, "
            << ob.value("unreachable_errors", 0) << " unreachable error(s), "
            << ob.value("given_up", 0) << " given up\n";
  auto failing = ob.value("failing", nlohmann::json::array());
  std::cout << "failing calls: " << failing.size() << "\n";
  for (const auto& f : failing) {
    std::cout << "  call " << f.value("call", "?");
    if (!f.value("model", "").empty())
      std::cout << " (model '" << f.value("model", "") << "' version "
                << f.value("model_version", 0) << ")";
    std::cout << ": " << f.value("attempts", 0) << " attempt(s), failing for "
              << f.value("failing_for_s", 0.0) << " s";
    if (f.contains("gives_up_in_s"))
      std::cout << ", gives up in " << f.value("gives_up_in_s", 0.0) << " s";
    std::cout << ": " << f.value("last_error", "") << "\n";
  }
  std::cout << std::flush;
}

// The imaging part of the demo (apps/imaging/imaging_demo.hpp), when the shared data is
// there; it says what is missing otherwise.
void run_imaging_demo(runtime::node& node) {
  auto dir = apps::imaging::default_data_dir(COMB_SOURCE_DIR);
  if (!dir) {
    std::cout << "  imaging: skipped: " << describe(dir.error()) << "\n";
    return;
  }
  apps::imaging::demo_options d;
  d.data_dir = *dir;
  auto r = apps::imaging::run_imaging_demo(apps::imaging::caller_for(node), d,
                                           [](const std::string& line) {
                                             std::cout << "  imaging: " << line << std::endl;
                                           });
  if (!r)
    fail("demo", r.error());
  apps::imaging::print_demo_report(std::cout, *r, d);
}

// The demo: a single node with the apps, some accounts, a burst of concurrent transfers,
// then it serves until Ctrl-C (or --seconds).
void run_demo(node_opts o) {
  if (o.data.empty())
    o.data = "data/demo";
  auto nc = resolve(o, "demo");
  place_on_cpus(o, nullptr, "demo", nc.name);
  auto signals = block_stop_signals();
  runtime::system_config cfg;
  runtime::compute_process::configure(cfg);
  caf::actor_system sys{cfg};
  // The imaging demo runs models: without --compute, a compute actor in this process.
  std::unique_ptr<runtime::compute_process> compute;
  if (!nc.compute) {
    auto cp = runtime::compute_process::start(sys, {}, endpoint{"127.0.0.1", 0});
    if (!cp)
      fail("demo", cp.error());
    compute = std::move(*cp);
    nc.compute = endpoint{"127.0.0.1", compute->port()};
  }
  auto n = runtime::node::start(sys, nc, all_apps());
  if (!n)
    fail("demo", n.error());
  auto& node = **n;
  std::cout << "Comb demo: node " << nc.name << " on " << nc.host << ":" << node.port()
            << ", data in " << std::filesystem::absolute(nc.data_dir).string() << " ("
            << nc.partitions << " partitions, " << storage::to_string(nc.durability) << ")\n";
  auto demo = apps::bank::run_demo(node);
  if (!demo)
    fail("demo", demo.error());
  std::cout << "  bank: " << demo->accounts << " accounts (" << demo->opened << " new)\n"
            << "  bank: " << demo->committed << " transfers committed, " << demo->refused
            << " refused, in " << demo->seconds << " s from " << demo->clients
            << " concurrent clients\n"
            << "  bank: total " << demo->total["total"] << " over " << demo->total["accounts"]
            << " accounts (conserved: " << (demo->conserved ? "yes" : "NO") << ")\n"
            << std::flush;
  run_imaging_demo(node);
#ifdef COMB_HAVE_NECTAR_SERVER
  // Nectar on 127.0.0.1:8080 (or a free port), capturing into this node.
  nectar::server_options nso;
  nso.node = endpoint{nc.host, node.port()};
  auto nectar_srv = nectar::server::start(sys, nso);
  if (!nectar_srv) {
    nso.port = 0;
    nectar_srv = nectar::server::start(sys, nso);
  }
  if (nectar_srv)
    std::cout << "  nectar: serving " << (*nectar_srv)->url()
              << " (every request captured into httplog_request; rule labels "
              << (*nectar_srv)->stats().rules_engine << "; model labels from 'waf' once a "
              << "version is active)\n";
  else
    std::cout << "  nectar: not started: " << describe(nectar_srv.error()) << "\n";
#endif
#ifdef COMB_HAVE_NECTAR_TRAFFIC
  // Nectar's traffic generator at a modest rate (benign sessions and attacks), in slices of
  // 5 s so that Ctrl-C stops it promptly.
  std::atomic<bool> stopping{false};
  std::thread traffic;
  if (nectar_srv && o.traffic_rate > 0) {
    auto payloads = nectar::payload_lists::load(nectar::default_payload_dir());
    if (!payloads) {
      std::cout << "  traffic: not started: " << describe(payloads.error()) << "\n";
    } else {
      nectar::traffic_options to;
      auto url = (*nectar_srv)->url();
      auto hp = url.substr(url.find("//") + 2);
      to.target = hp.substr(0, hp.find('/'));
      to.rate = o.traffic_rate;
      to.duration_s = 5;
      to.drain_s = 2;
      to.timeout_s = 5;
      to.connections = 2;
      std::cout << "  traffic: " << o.traffic_rate << " requests/s against " << to.target
                << " (20% attacks; --traffic-rate 0 turns it off)\n";
      traffic = std::thread{[to, pl = std::move(*payloads), &stopping]() mutable {
        while (!stopping.load()) {
          auto r = nectar::run_traffic(to, pl);
          if (!r) {
            std::cerr << "comb demo: traffic: " << describe(r.error()) << "\n";
            return;
          }
          ++to.seed;
        }
      }};
    }
  }
#endif
  // The anomaly model that gives Nectar's requests model labels, when a trained file exists.
  apps::console::demo_anomaly_model(sys, endpoint{nc.host, node.port()}, COMB_SOURCE_DIR,
                                    [](const std::string& line) {
                                      std::cout << "  " << line << std::endl;
                                    });
  // The console over the spooled SQL store (SQLite), with a login kept in the data folder and
  // its account in the node's console.accounts table.
  std::unique_ptr<apps::console::console_server> console;
  std::thread console_thread;
  if (!nc.spool_file.empty() && nc.spool_file.rfind("postgres", 0) != 0 && o.console_port >= 0) {
    apps::console::console_link console_node{sys, endpoint{nc.host, node.port()}};
    apps::console::accounts console_users{console_node};
    auto password = apps::console::demo_login(console_users, nc.data_dir);
    apps::console::console_options co;
    co.sql_file = nc.spool_file;
    co.system = &sys;
    co.node = endpoint{nc.host, node.port()};
    co.host = "127.0.0.1";
    co.port = o.console_port;
    auto made = password
                  ? apps::console::console_server::make(co)
                  : caf::expected<std::unique_ptr<apps::console::console_server>>{password.error()};
    caf::expected<int> port = made ? (*made)->bind() : caf::expected<int>{made.error()};
    if (made && !port && co.port != 0) {
      co.port = 0;
      made = apps::console::console_server::make(co);
      port = made ? (*made)->bind() : caf::expected<int>{made.error()};
    }
    if (made && port) {
      console = std::move(*made);
      console_thread = std::thread{[c = console.get()] { c->run(); }};
      std::cout << "  console: http://127.0.0.1:" << *port << "/  login analyst / " << *password
                << " (kept in " << nc.data_dir << "/console-login.txt)\n";
      if (!console->warnings().empty())
        std::cout << "  console: " << console->warnings() << "\n";
    } else {
      std::cout << "  console: not started: "
                << describe(!password ? password.error()
                            : !made   ? made.error()
                                      : port.error())
                << "\n";
    }
  }
  std::cout << "\n"
            << "Where to look next (in another terminal):\n"
            << "  ./dev comb call --node " << nc.host << ":" << node.port()
            << " --role auditor bank.total '{}'\n"
            << "  ./dev comb call --node " << nc.host << ":" << node.port()
            << " bank.balance '{\"account\":\"acct-1\"}' --role guest\n"
            << "  ./dev comb log tail --log " << nc.provenance_dir << "\n"
            << "  ./dev comb prov last-writer --sqlite "
            << (nc.spool_file.empty() ? std::string{"none"} : nc.spool_file) << " bank.accounts\n"
            << "  ./dev comb imaging results --node " << nc.host << ":" << node.port()
            << " --dataset mnist-test --model mnist-mlp\n"
            << "  ./dev comb --help-all\n"
            << (o.seconds > 0 ? "Serving for " + std::to_string(o.seconds) + " s.\n"
                              : "Serving until Ctrl-C.\n")
            << std::flush;
  wait_for_signal(signals, o.seconds);
#ifdef COMB_HAVE_NECTAR_TRAFFIC
  stopping = true;
  if (traffic.joinable())
    traffic.join();
#endif
  if (console) {
    console->stop();
    console_thread.join();
  }
#ifdef COMB_HAVE_NECTAR_SERVER
  if (nectar_srv)
    (*nectar_srv)->stop();
#endif
  node.stop();
}

} // namespace

void add_node_commands(CLI::App& app) {
  auto no = std::make_shared<node_opts>();
  auto* node = app.add_subcommand("node", "Serve one Comb node (state actors and gateway)");
  add_node_flags(node, *no);
  auto so = std::make_shared<status_opts>();
  auto* status = node->add_subcommand(
    "status", "Show a running node's state: the compute connection and failing calls");
  status->add_option("--node", so->node, "HOST:PORT of the node's gateway")->capture_default_str();
  status->add_option("--timeout", so->timeout, "Seconds to wait for the connection")
    ->capture_default_str()
    ->check(CLI::PositiveNumber);
  status->add_flag("--json", so->json, "Print the node's info as JSON");
  add_tls_flags(status, so->tls);
  add_secret_flag(status, so->secret_file);
  status->callback([so] { run_status(*so); });
  node->callback([no, status] {
    if (status->parsed()) // `comb node status` asks a node; it does not start one
      return;
    run_node(*no);
    // The last line, once the node and its actor system are gone.
    std::cout << "comb node " << no->name << ": stopped" << std::endl;
  });

  auto co = std::make_shared<call_opts>();
  auto* call = app.add_subcommand("call", "Invoke a stored procedure on a running node");
  call->add_option("--node", co->node, "HOST:PORT of the node's gateway")->capture_default_str();
  call->add_option("--role", co->role, "The caller's role")->capture_default_str();
  call->add_option("--timeout", co->timeout, "Seconds to wait in all: connecting and the reply")
    ->capture_default_str()
    ->check(CLI::PositiveNumber);
  call->add_option("procedure", co->proc, "Procedure name, e.g. bank.transfer")->required();
  call->add_option("args", co->args, "Arguments as a JSON object")->capture_default_str();
  add_tls_flags(call, co->tls);
  add_secret_flag(call, co->secret_file);
  call->callback([co] { run_call(*co); });

  auto dopts = std::make_shared<node_opts>();
  auto* demo = app.add_subcommand("demo", "Run a single-node Comb with the example apps");
  add_node_flags(demo, *dopts);
  demo
    ->add_option(
      "--traffic-rate", dopts->traffic_rate,
      "Requests/s of Nectar traffic (benign sessions and attacks) the demo sends; 0: none")
    ->capture_default_str();
  demo
    ->add_option("--console-port", dopts->console_port,
                 "Port of the console on 127.0.0.1 (a free one if taken; -1: no console)")
    ->capture_default_str();
  demo->callback([dopts] { run_demo(*dopts); });
}

} // namespace comb::cli
