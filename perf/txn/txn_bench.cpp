// perf/txn: bank.transfer throughput through Comb's state actors (1, 8, 64 concurrent
// clients; async and sync durability) against the same transfers done with direct RocksDB
// TransactionDB calls on one thread, measured in the same run. Prints ratios.
// With --benchmarks=provenance: async transfers from 64 clients into two nodes side by side,
// one with the provenance log on and one with it off, in turns of --slice transfers
// (2 x --transfers in all, each node).
//   perf_txn [--benchmarks=async,sync,provenance] [--transfers=N] [--partitions=N]
//            [--clients=1,8,64] [--threads=N] [--slice=N] [--provenance] [--no-direct]
//            [--quick]
#include "apps/bank/bank.hpp"
#include "base/errc.hpp"
#include "node/load_driver.hpp"
#include "node/node.hpp"
#include "runtime/system_config.hpp"
#include "storage/database.hpp"

#include <rocksdb/utilities/transaction.h>
#include <rocksdb/utilities/transaction_db.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <set>
#include <sstream>
#include <string>
#include <thread>

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

// The baseline: the same transfer (two locked reads, a transfer row, two updates, MessagePack
// rows) with direct TransactionDB calls on one thread, committing with sync = (mode == sync).
double direct_rate(storage::durability mode, const std::vector<plan_item>& plan) {
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
  auto t0 = std::chrono::steady_clock::now();
  size_t i = 0;
  for (auto& p : plan) {
    std::unique_ptr<rocksdb::Transaction> txn{raw->BeginTransaction(wo, to)};
    std::string va, vb;
    auto fa = acct(p.from), fb = acct(p.to);
    if (!txn->GetForUpdate({}, accts, fa, &va).ok() || !txn->GetForUpdate({}, accts, fb, &vb).ok())
      std::abort();
    auto a = json::from_msgpack(va), b = json::from_msgpack(vb);
    auto ba = a["balance"].get<int64_t>(), bb = b["balance"].get<int64_t>();
    std::string xrow, ra, rb;
    json::to_msgpack(json{{"from", fa}, {"to", fb}, {"amount", p.amount}, {"exec", i}}, xrow);
    json::to_msgpack(json{{"balance", ba - p.amount}}, ra);
    json::to_msgpack(json{{"balance", bb + p.amount}}, rb);
    std::string id = "t" + std::to_string(i++), ignored;
    if (!txn->GetForUpdate({}, xfers, id, &ignored).IsNotFound())
      std::abort();
    if (!txn->Put(xfers, id, xrow).ok() || !txn->Put(accts, fa, ra).ok()
        || !txn->Put(accts, fb, rb).ok() || !txn->Commit().ok())
      std::abort();
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
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
      inv.args = {{"id", "t" + std::to_string(i)},
                  {"from", acct(plan[i].from)},
                  {"to", acct(plan[i].to)},
                  {"amount", plan[i].amount}};
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
  return static_cast<double>(plan.size()) / n.transfer(sys, clients, plan, 0, plan.size());
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
  double secs_off = 0, secs_on = 0;
  std::vector<double> ratios;
  size_t turns = 0;
  for (size_t begin = 0; begin < plan.size(); begin += slice, ++turns) {
    auto end = std::min(plan.size(), begin + slice);
    double t_off, t_on;
    if (turns % 2 == 0) {
      t_off = off.transfer(sys, 64, plan, begin, end);
      t_on = on.transfer(sys, 64, plan, begin, end);
    } else {
      t_on = on.transfer(sys, 64, plan, begin, end);
      t_off = off.transfer(sys, 64, plan, begin, end);
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
    } else if (a == "--provenance") {
      with_provenance = true;
    } else if (a == "--no-direct") {
      no_direct = true; // for profiling the actor path alone: ratios are then meaningless
    } else if (a == "--quick") {
      transfers = 10000;
      sync_single = 500;
      slice = 2000;
    } else {
      std::cerr << "usage: perf_txn [--benchmarks=async,sync,provenance] [--transfers=N] "
                   "[--partitions=N] [--clients=1,8,64] [--threads=N] [--slice=N] [--provenance] "
                   "[--no-direct] [--quick]\n";
      return 2;
    }
  }
  std::printf("perf_txn: bank.transfer, %d accounts, %u partitions, %u cores\n", accounts,
              partitions, std::thread::hardware_concurrency());
  if (benches.count("async")) {
    auto plan = make_plan(transfers, 1);
    double direct = no_direct ? 1.0 : direct_rate(storage::durability::async, plan);
    for (uint32_t c : client_counts)
      row("async actors, " + std::to_string(c) + " clients",
          actor_rate(storage::durability::async, c, plan, partitions, with_provenance), direct,
          "direct 1 thread");
  }
  if (benches.count("sync")) {
    auto small = make_plan(sync_single, 2);
    double direct = direct_rate(storage::durability::sync, small);
    double one = actor_rate(storage::durability::sync, 1, small, partitions);
    row("sync actors, 1 client", one, direct, "direct 1 thread");
    auto plan = make_plan(transfers / 2, 3);
    for (uint32_t c : {8u, 64u}) {
      double r = actor_rate(storage::durability::sync, c, plan, partitions);
      row("sync actors, " + std::to_string(c) + " clients", r, direct, "direct 1 thread");
      row("sync group commit, " + std::to_string(c) + " vs 1 client", r, one, "actors 1 client");
    }
  }
  if (benches.count("provenance"))
    provenance_rates(make_plan(2 * transfers, 4), partitions, slice);
  return 0;
}
