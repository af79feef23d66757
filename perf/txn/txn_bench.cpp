// perf/txn: bank.transfer throughput through Comb's state actors (1, 8, 64 concurrent
// clients; async and sync durability) against the same transfers done with direct RocksDB
// TransactionDB calls on as many threads as there are cores (the baseline that counts) and on
// one thread, measured in the same run, in alternating turns. Prints medians, ranges, ratios.
// With --benchmarks=provenance: async transfers from 64 clients into two nodes side by side,
// one with the provenance log on and one with it off, in turns of --slice transfers
// (2 x --transfers in all, each node).
//   perf_txn [--benchmarks=async,sync,provenance] [--transfers=N] [--partitions=N]
//            [--clients=1,8,64] [--threads=N] [--slice=N] [--provenance] [--no-direct]
//            [--turns=N] [--quick] [--sync-only=CLIENTS] [--direct-only]
#include "perf/bench_env.hpp"
#include "apps/bank/bank.hpp"
#include "base/errc.hpp"
#include "node/load_driver.hpp"
#include "node/node.hpp"
#include "runtime/system_config.hpp"
#include "storage/database.hpp"

#include <rocksdb/utilities/transaction.h>
#include <rocksdb/utilities/transaction_db.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include <sys/resource.h>
#include <time.h>

using namespace comb;
using nlohmann::json;

namespace {

constexpr int accounts = 1000;
size_t worker_threads = 0;    // 0: the system_config default (one per core)
bool with_provenance = false; // --provenance: the async rows with the log on (profiling)
constexpr int64_t initial = 1'000'000'000;

struct plan_item {
  int from, to;
  int64_t amount;
};

std::vector<plan_item> make_plan(size_t n, uint64_t seed) {
  std::vector<plan_item> plan;
  plan.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    int from = static_cast<int>((seed >> 33) % accounts);
    int to = static_cast<int>((from + 1 + (seed >> 13) % (accounts - 1)) % accounts);
    plan.push_back({from, to, static_cast<int64_t>(1 + (seed >> 40) % 100)});
  }
  return plan;
}

std::string acct(int i) {
  return "acct-" + std::to_string(i);
}

std::string fresh_dir(const std::string& name) {
  auto d = std::filesystem::temp_directory_path()
           / ("comb-perf-txn-" + name + "-" + std::to_string(getpid()));
  std::filesystem::remove_all(d);
  return d.string();
}

// CPU seconds the whole process has used so far (every thread).
double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// What one actor_rate or direct_rate run cost while its transfers ran: CPU seconds of the whole process and
// context switches (voluntary: a thread blocked or slept; involuntary: preempted), per
// transfer. On a shared machine these move less than the rates do, so a change in how commits
// are handed over (wake-ups, sleeps, fsyncs) shows in them when the rates are noise.
struct phase_cost {
  double cpu_s = 0;
  long vcsw = 0, ivcsw = 0;
  static phase_cost now() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return {process_cpu_seconds(), ru.ru_nvcsw, ru.ru_nivcsw};
  }
};
struct cost_turns {
  comb::perf::turns cpu_us, vcsw, ivcsw;
  void add(const phase_cost& a, const phase_cost& b, size_t n) {
    auto per = [n](double x) { return x / static_cast<double>(n); };
    cpu_us.add(per(1e6 * (b.cpu_s - a.cpu_s)));
    vcsw.add(per(static_cast<double>(b.vcsw - a.vcsw)));
    ivcsw.add(per(static_cast<double>(b.ivcsw - a.ivcsw)));
  }
  std::string str() const {
    return "CPU " + cpu_us.str("%.1f") + " us, context switches voluntary " + vcsw.str("%.2f")
           + ", involuntary " + ivcsw.str("%.2f");
  }
};
cost_turns* cost_sink = nullptr; // where actor_rate adds its transfers' cost, when set
cost_turns* direct_cost_sink = nullptr; // where direct_rate adds its transfers' cost, when set

// The baseline: the same transfer (two locked reads, a transfer row, two updates, MessagePack
// rows) with direct TransactionDB calls, committing with sync = (mode == sync), on `threads`
// threads, each taking a contiguous share of the plan. Each transaction locks its two
// accounts in key order, as a careful RocksDB user would, so that two threads never deadlock;
// a transaction that still fails to lock (timeout) is rolled back and retried, so every
// transfer commits exactly once. Concurrent committers share RocksDB's write groups (and,
// with sync, its WAL fsyncs), which is RocksDB at its best on this many cores.
double direct_rate(storage::durability mode, const std::vector<plan_item>& plan,
                   unsigned threads = 1) {
  auto dir = fresh_dir("direct");
  storage::options opts;
  opts.mode = mode;
  auto db = std::move(*storage::database::open(dir, opts));
  for (auto* table : {"bank.accounts", "bank.transfers"})
    if (auto err = db->create_table(table)) {
      std::cerr << "perf_txn: " << table << ": " << describe(err) << "\n";
      std::abort();
    }
  auto* raw = db->raw();
  auto* accts = db->handle("bank.accounts");
  auto* xfers = db->handle("bank.transfers");
  rocksdb::WriteOptions wo;
  wo.sync = mode == storage::durability::sync;
  {
    std::string bytes;
    json::to_msgpack(json{{"balance", initial}}, bytes);
    for (int i = 0; i < accounts; ++i)
      raw->Put(wo, accts, acct(i), bytes).PermitUncheckedError();
  }
  rocksdb::TransactionOptions to;
  to.deadlock_detect = true;
  std::atomic<size_t> retries{0};
  // One transfer; false when a lock could not be taken (the caller retries).
  auto transfer = [&](size_t i) {
    auto& p = plan[i];
    std::unique_ptr<rocksdb::Transaction> txn{raw->BeginTransaction(wo, to)};
    auto fa = acct(p.from), fb = acct(p.to);
    std::string va, vb;
    bool a_first = fa < fb;
    auto s1 = txn->GetForUpdate({}, accts, a_first ? fa : fb, a_first ? &va : &vb);
    auto s2 = s1.ok() ? txn->GetForUpdate({}, accts, a_first ? fb : fa, a_first ? &vb : &va) : s1;
    if (!s2.ok()) {
      if (!s2.IsBusy() && !s2.IsTimedOut() && !s2.IsDeadlock())
        std::abort();
      txn->Rollback().PermitUncheckedError();
      return false;
    }
    auto a = json::from_msgpack(va), b = json::from_msgpack(vb);
    auto ba = a["balance"].get<int64_t>(), bb = b["balance"].get<int64_t>();
    std::string xrow, ra, rb;
    json::to_msgpack(json{{"from", fa}, {"to", fb}, {"amount", p.amount}, {"exec", i}}, xrow);
    json::to_msgpack(json{{"balance", ba - p.amount}}, ra);
    json::to_msgpack(json{{"balance", bb + p.amount}}, rb);
    std::string id = "t" + std::to_string(i), ignored;
    if (!txn->GetForUpdate({}, xfers, id, &ignored).IsNotFound())
      std::abort();
    if (!txn->Put(xfers, id, xrow).ok() || !txn->Put(accts, fa, ra).ok()
        || !txn->Put(accts, fb, rb).ok() || !txn->Commit().ok())
      std::abort();
    return true;
  };
  threads = std::max(1u, threads);
  auto c0 = phase_cost::now();
  auto t0 = std::chrono::steady_clock::now();
  {
    std::vector<std::jthread> pool;
    for (unsigned t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        size_t begin = plan.size() * t / threads, end = plan.size() * (t + 1) / threads;
        for (size_t i = begin; i < end; ++i)
          while (!transfer(i))
            ++retries;
      });
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (direct_cost_sink)
    direct_cost_sink->add(c0, phase_cost::now(), plan.size());
  // The same check as the actor path's: money is conserved.
  int64_t total = 0;
  for (int i = 0; i < accounts; ++i) {
    std::string v;
    if (!raw->Get({}, accts, acct(i), &v).ok())
      std::abort();
    total += json::from_msgpack(v)["balance"].get<int64_t>();
  }
  if (total != accounts * initial) {
    std::cerr << "perf_txn: direct baseline did not conserve the total\n";
    std::exit(1);
  }
  if (retries > 0)
    std::printf("  (direct %u threads: %zu lock retries)\n", threads, retries.load());
  db.reset();
  std::filesystem::remove_all(dir);
  return static_cast<double>(plan.size()) / secs;
}


void row(const std::string& name, double comb, double base, const std::string& base_name) {
  std::printf("%-34s comb %10.0f  %-22s %10.0f  ratio %6.2f  txn/s\n", name.c_str(), comb,
              base_name.c_str(), base, comb / base);
  std::fflush(stdout);
}

// A node with the bank app and `accounts` opened, in its own fresh folder (removed when the
// bank_node goes).
struct bank_node {
  std::string dir;
  std::unique_ptr<runtime::node> node;

  bank_node(caf::actor_system& sys, const std::string& name, storage::durability mode,
            uint32_t partitions, bool provenance) {
    dir = fresh_dir(name);
    auto procs = std::make_shared<runtime::procedure_registry>();
    apps::bank::register_bank(*procs);
    runtime::node_config nc;
    nc.data_dir = dir;
    nc.durability = mode;
    nc.partitions = partitions;
    if (provenance)
      nc.provenance_dir = dir + "/provenance";
    auto started = runtime::node::start(sys, nc, procs);
    if (!started) {
      std::cerr << "perf_txn: " << describe(started.error()) << "\n";
      std::exit(1);
    }
    node = std::move(*started);
    auto opened = runtime::drive(sys, node->route(), 16, accounts, [](uint64_t i) {
      runtime::invocation inv;
      inv.procedure = "bank.open";
      inv.role = "admin";
      inv.args = {{"account", acct(static_cast<int>(i))}, {"balance", initial}};
      return inv;
    });
    if (opened.ok != accounts)
      std::abort();
  }

  // Runs transfers plan[begin, end) from `clients` concurrent clients; returns the seconds,
  // counting until every record of them is in the provenance log (when the node keeps one),
  // so that no turn leaves log writing behind for the next.
  double transfer(caf::actor_system& sys, uint32_t clients, const std::vector<plan_item>& plan,
                  size_t begin, size_t end) {
    auto t0 = std::chrono::steady_clock::now();
    auto res = runtime::drive(sys, node->route(), clients, end - begin, [&](uint64_t i) {
      i += begin;
      runtime::invocation inv;
      inv.procedure = "bank.transfer";
      inv.role = "teller";
      // The same arguments, built by key: a braced list makes nlohmann build a temporary
      // array per pair and copy it, client work that is no part of Comb's path.
      auto& args = inv.args = json::object();
      args["id"] = "t" + std::to_string(i);
      args["from"] = acct(plan[i].from);
      args["to"] = acct(plan[i].to);
      args["amount"] = plan[i].amount;
      return inv;
    });
    if (res.failed != 0) {
      std::cerr << "perf_txn: " << res.failed << " transfers failed, e.g. "
                << (res.errors.empty() ? "?" : res.errors[0]) << "\n";
      std::exit(1);
    }
    if (auto* rec = node->recorder())
      rec->flush();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

  ~bank_node() {
    auto total = node->call("bank.total", json::object(), "admin");
    if (!total || (*total)["total"] != accounts * initial) {
      std::cerr << "perf_txn: total not conserved\n";
      std::exit(1);
    }
    node.reset();
    std::filesystem::remove_all(dir);
  }
};

// Through Comb: node with state actors, `clients` concurrent client actors.
double actor_rate(storage::durability mode, uint32_t clients, const std::vector<plan_item>& plan,
                  uint32_t partitions, bool provenance = false) {
  runtime::system_config cfg{worker_threads};
  caf::actor_system sys{cfg};
  bank_node n{sys, "actors", mode, partitions, provenance};
  auto c0 = phase_cost::now();
  double secs = n.transfer(sys, clients, plan, 0, plan.size());
  if (cost_sink)
    cost_sink->add(c0, phase_cost::now(), plan.size());
  return static_cast<double>(plan.size()) / secs;
}

// Provenance on against off: both nodes run side by side in one actor system, and the same
// transfers go to each in turns of `slice` transfers (off, on, on, off, off, on, ...), so
// that the machine's slow and fast spells fall on both alike. Prints the median of the
// per-turn ratios too.
void provenance_rates(const std::vector<plan_item>& plan, uint32_t partitions, size_t slice) {
  runtime::system_config cfg{worker_threads};
  caf::actor_system sys{cfg};
  bank_node off{sys, "prov-off", storage::durability::async, partitions, false};
  bank_node on{sys, "prov-on", storage::durability::async, partitions, true};
  double secs_off = 0, secs_on = 0, cpu_off = 0, cpu_on = 0;
  std::vector<double> ratios;
  size_t turns = 0;
  // One side's turn: its seconds, and the process's CPU seconds meanwhile (the other node is
  // idle then: the provenance writer has flushed at the end of the on-node's turns).
  auto run = [&](bank_node& n, size_t begin, size_t end, double& cpu) {
    double c0 = process_cpu_seconds();
    double t = n.transfer(sys, 64, plan, begin, end);
    cpu += process_cpu_seconds() - c0;
    return t;
  };
  for (size_t begin = 0; begin < plan.size(); begin += slice, ++turns) {
    auto end = std::min(plan.size(), begin + slice);
    double t_off, t_on;
    if (turns % 2 == 0) {
      t_off = run(off, begin, end, cpu_off);
      t_on = run(on, begin, end, cpu_on);
    } else {
      t_on = run(on, begin, end, cpu_on);
      t_off = run(off, begin, end, cpu_off);
    }
    secs_off += t_off;
    secs_on += t_on;
    ratios.push_back(t_off / t_on);
  }
  std::sort(ratios.begin(), ratios.end());
  auto n = static_cast<double>(plan.size());
  std::printf("  %zu turns of %zu transfers each; per-turn on/off: min %.2f, median %.2f, "
              "max %.2f\n",
              turns, slice, ratios.front(), ratios[ratios.size() / 2], ratios.back());
  std::printf("  CPU per transfer (all threads): provenance off %.1f us, on %.1f us (%+.1f%%); "
              "cores busy: off %.2f, on %.2f\n",
              1e6 * cpu_off / n, 1e6 * cpu_on / n, 100 * (cpu_on / cpu_off - 1), cpu_off / secs_off,
              cpu_on / secs_on);
  row("async 64 clients, provenance on", n / secs_on, n / secs_off, "provenance off");
}

} // namespace

int main(int argc, char** argv) {
  std::set<std::string> benches{"async", "sync", "provenance"};
  size_t transfers = 50000;
  size_t sync_single = 2000;
  size_t slice = 5000;
  uint32_t partitions = 4;
  std::vector<uint32_t> client_counts{1, 8, 64};
  bool no_direct = false;
  int turns_n = 3;
  uint32_t sync_only = 0; // --sync-only=N: only sync transfers from N clients (for profiling)
  bool direct_only = false; // --direct-only: only the async direct baseline (for profiling)
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--benchmarks=", 0) == 0) {
      benches.clear();
      std::stringstream ss{a.substr(13)};
      for (std::string b; std::getline(ss, b, ',');)
        benches.insert(b);
    } else if (a.rfind("--transfers=", 0) == 0) {
      transfers = std::stoul(a.substr(12));
    } else if (a.rfind("--partitions=", 0) == 0) {
      partitions = static_cast<uint32_t>(std::stoul(a.substr(13)));
    } else if (a.rfind("--clients=", 0) == 0) {
      client_counts.clear();
      std::stringstream ss{a.substr(10)};
      for (std::string c; std::getline(ss, c, ',');)
        client_counts.push_back(static_cast<uint32_t>(std::stoul(c)));
    } else if (a.rfind("--threads=", 0) == 0) {
      worker_threads = std::stoul(a.substr(10));
    } else if (a.rfind("--slice=", 0) == 0) {
      slice = std::max<size_t>(1, std::stoul(a.substr(8)));
    } else if (a.rfind("--turns=", 0) == 0) {
      turns_n = std::max(1, std::stoi(a.substr(8)));
    } else if (a.rfind("--sync-only=", 0) == 0) {
      sync_only = static_cast<uint32_t>(std::stoul(a.substr(12)));
    } else if (a == "--direct-only") {
      direct_only = true;
    } else if (a == "--provenance") {
      with_provenance = true;
    } else if (a == "--no-direct") {
      no_direct = true; // for profiling the actor path alone: ratios are then meaningless
    } else if (a == "--quick") {
      transfers = 10000;
      sync_single = 500;
      slice = 2000;
      turns_n = 2;
    } else {
      std::cerr << "usage: perf_txn [--benchmarks=async,sync,provenance] [--transfers=N] "
                   "[--partitions=N] [--clients=1,8,64] [--threads=N] [--slice=N] [--provenance] "
                   "[--no-direct] [--turns=N] [--quick] [--sync-only=CLIENTS] [--direct-only]\n";
      return 2;
    }
  }
  comb::perf::print_machine("perf_txn");
  unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  std::printf("perf_txn: bank.transfer, %d accounts, %u partitions, %u cores; medians [ranges] "
              "of %d turns where a row says so, the sides alternating within each turn\n",
              accounts, partitions, cores, turns_n);
  auto core_name = "direct " + std::to_string(cores) + " threads";
  if (sync_only > 0) { // profiling the sync actor path alone: no baseline, no ratio
    auto plan = make_plan(transfers / 2, 3);
    cost_turns cost;
    cost_sink = &cost;
    for (int t = 0; t < turns_n; ++t)
      std::printf("sync actors, %u clients: %.0f txn/s\n", sync_only,
                  actor_rate(storage::durability::sync, sync_only, plan, partitions));
    cost_sink = nullptr;
    std::printf("  per transfer: %s\n", cost.str().c_str());
    return 0;
  }
  if (direct_only) { // profiling the async direct baseline alone, on --threads threads (1)
    auto plan = make_plan(transfers, 1);
    unsigned threads = worker_threads > 0 ? static_cast<unsigned>(worker_threads) : 1;
    cost_turns cost;
    direct_cost_sink = &cost;
    for (int t = 0; t < turns_n; ++t)
      std::printf("direct RocksDB, %u threads: %.0f txn/s\n", threads,
                  direct_rate(storage::durability::async, plan, threads));
    direct_cost_sink = nullptr;
    std::printf("  per transfer: %s\n", cost.str().c_str());
    return 0;
  }
  if (benches.count("async")) {
    auto plan = make_plan(transfers, 1);
    std::printf("\n== async durability, %zu transfers a run; the baseline that counts: the same "
                "transfers with direct TransactionDB calls on %u threads (one per core)\n",
                plan.size(), cores);
    comb::perf::turns d1, dn, a64, ratio;
    cost_turns a64_cost, dn_cost;
    for (int t = 0; t < turns_n; ++t) {
      double d = 0, a = 0;
      direct_cost_sink = &dn_cost;
      if (t % 2 == 0 && !no_direct)
        d = direct_rate(storage::durability::async, plan, cores);
      cost_sink = &a64_cost;
      a = actor_rate(storage::durability::async, 64, plan, partitions, with_provenance);
      cost_sink = nullptr;
      if (t % 2 == 1 && !no_direct)
        d = direct_rate(storage::durability::async, plan, cores);
      direct_cost_sink = nullptr;
      if (!no_direct) {
        dn.add(d);
        ratio.add(a / d);
      }
      a64.add(a);
    }
    if (!no_direct)
      d1.add(direct_rate(storage::durability::async, plan, 1));
    std::printf("%-34s %s txn/s\n", "direct RocksDB, 1 thread", d1.str("%.0f").c_str());
    std::printf("%-34s %s txn/s\n",
                ("direct RocksDB, " + std::to_string(cores) + " threads").c_str(),
                dn.str("%.0f").c_str());
    if (no_direct) // profiling the actor path alone: no baseline, no ratio
      std::printf("%-34s %s txn/s\n", "async actors, 64 clients", a64.str("%.0f").c_str());
    else
      std::printf("%-34s %s txn/s; per-turn ratio to %s %s (goal >= 0.9); to direct 1 thread "
                  "%.2f\n",
                  "async actors, 64 clients", a64.str("%.0f").c_str(), core_name.c_str(),
                  ratio.str("%.2f").c_str(), a64.median() / d1.median());
    std::printf("  per transfer, 64 clients: %s\n", a64_cost.str().c_str());
    if (!no_direct)
      std::printf("  per transfer, %s: %s\n", core_name.c_str(), dn_cost.str().c_str());
    for (uint32_t c : client_counts)
      if (c != 64) {
        double r = actor_rate(storage::durability::async, c, plan, partitions, with_provenance);
        if (no_direct)
          std::printf("%-34s %.0f txn/s\n",
                      ("async actors, " + std::to_string(c) + " clients").c_str(), r);
        else
          row("async actors, " + std::to_string(c) + " clients", r, dn.median(), core_name);
      }
  }
  if (benches.count("sync")) {
    auto small = make_plan(sync_single, 2);
    auto plan = make_plan(transfers / 2, 3);
    std::printf("\n== sync durability (each commit on disk before it is acknowledged); one "
                "client: %zu transfers, 8 and 64 clients: %zu\n",
                small.size(), plan.size());
    comb::perf::turns d1, dn, one, many, group, many_nowait, group_nowait;
    cost_turns one_cost, many_cost, nowait_cost;
    for (int t = 0; t < turns_n; ++t) {
      d1.add(direct_rate(storage::durability::sync, small, 1));
      dn.add(direct_rate(storage::durability::sync, small, cores));
      cost_sink = &one_cost;
      double o = actor_rate(storage::durability::sync, 1, small, partitions);
      cost_sink = &many_cost;
      double m = actor_rate(storage::durability::sync, 64, plan, partitions);
      // The group committer without its wait for the rest of a group (each fsync takes
      // whatever is pending when the last one ended).
      setenv("COMB_GROUP_COMMIT_WAIT", "off", 1);
      cost_sink = &nowait_cost;
      double m2 = actor_rate(storage::durability::sync, 64, plan, partitions);
      cost_sink = nullptr;
      unsetenv("COMB_GROUP_COMMIT_WAIT");
      one.add(o);
      many.add(m);
      group.add(m / o);
      many_nowait.add(m2);
      group_nowait.add(m2 / o);
    }
    std::printf("%-34s %s txn/s\n", "direct RocksDB sync, 1 thread", d1.str("%.0f").c_str());
    std::printf("%-34s %s txn/s\n",
                ("direct RocksDB sync, " + std::to_string(cores) + " threads").c_str(),
                dn.str("%.0f").c_str());
    std::printf("%-34s %s txn/s; to direct 1 thread %.2f\n", "sync actors, 1 client",
                one.str("%.0f").c_str(), one.median() / d1.median());
    std::printf("%-34s %s txn/s; to %s %.2f\n", "sync actors, 64 clients", many.str("%.0f").c_str(),
                core_name.c_str(), many.median() / dn.median());
    std::printf("%-34s per-turn 64 clients / 1 client %s (goal >= 15)\n", "sync group commit",
                group.str("%.2f").c_str());
    std::printf("  per transfer, 1 client: %s\n", one_cost.str().c_str());
    std::printf("  per transfer, 64 clients: %s\n", many_cost.str().c_str());
    std::printf("%-34s %s txn/s; per-turn 64 clients / 1 client %s\n",
                "  64 clients, no wait for groups", many_nowait.str("%.0f").c_str(),
                group_nowait.str("%.2f").c_str());
    std::printf("  per transfer, 64 clients, no wait: %s\n", nowait_cost.str().c_str());
    double eight = actor_rate(storage::durability::sync, 8, plan, partitions);
    row("sync actors, 8 clients", eight, dn.median(), core_name + " sync");
  }
  if (benches.count("provenance"))
    provenance_rates(make_plan(2 * transfers, 4), partitions, slice);
  return 0;
}
