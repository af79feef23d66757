// perf_cluster: bank transfer throughput of one `comb node` against three, each in a network
// namespace of its own on this machine (tests/support/netns.hpp; needs root), with the same
// clients in total and the same durability. Transfers run where their `from` account lives
// and read `to` there, so a transfer whose accounts live on different nodes is not applied
// (this benchmark counts them as cross-node, with the error they get). Prints per-node and
// total committed transfers per second and the ratio against the one-node run measured
// first, in the same run.
//   perf_cluster [--seconds=5] [--clients=6] [--durability=sync|async] [--benchmarks=local,random]
#include "apps/bank/bank.hpp"
#include "base/errc.hpp"
#include "node/client.hpp"
#include "runtime/procedure_registry.hpp"
#include "runtime/system_config.hpp"
#include "tests/support/netns.hpp"
#include "tests/test_util.hpp"

#include <atomic>
#include <cstdio>
#include <fstream>
#include <map>
#include <random>
#include <thread>

#include <csignal>

using namespace comb;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

constexpr uint32_t partitions = 6;
constexpr int accounts = 60;

struct opts {
  int seconds = 5;
  int clients = 6;
  std::string durability = "sync";
  std::string benchmarks = "local,random";
};

// The node (of `nodes`, partitions split evenly) that runs each account.
std::vector<int> placement(int nodes) {
  runtime::procedure_registry procs;
  apps::bank::register_bank(procs);
  auto* def = procs.find("bank.open");
  std::vector<int> out;
  for (int k = 0; k < accounts; ++k) {
    auto p = procs.partition_of(*def, json{{"account", "a" + std::to_string(k)}}, partitions);
    out.push_back(static_cast<int>(*p) / static_cast<int>(partitions / nodes));
  }
  return out;
}

struct run_result {
  std::vector<uint64_t> committed; // per node (the node the client is connected to)
  uint64_t cross = 0;              // transfers whose accounts live on different nodes
  std::string cross_error;         // what one of them got
  double seconds = 0;
};

// Starts `nodes` state nodes in hosts 0..nodes-1, opens the accounts, runs the clients from
// the last host for o.seconds, stops the nodes.
run_result run(test::netns_hosts& hosts, int nodes, bool random_pairs, const opts& o,
               const std::string& dir) {
  auto config = dir + "/cluster" + std::to_string(nodes) + ".toml";
  {
    std::ofstream f{config};
    f << "[cluster]\nname = \"perf\"\npartitions = " << partitions << "\n";
    for (int i = 0; i < nodes; ++i) {
      f << "\n[[node]]\nname = \"n" << i + 1 << "\"\nlisten = \"" << hosts.address(i)
        << ":4301\"\ndata = \"" << dir << "/d" << nodes << (random_pairs ? "r" : "l") << "-" << i
        << "\"\npartitions = [";
      for (uint32_t p = 0; p < partitions / nodes; ++p)
        f << (p ? ", " : "") << i * (partitions / nodes) + p;
      f << "]\ndurability = \"" << o.durability << "\"\nroles = [\"state\"]\n";
    }
  }
  std::vector<std::unique_ptr<test::netns_process>> procs;
  for (int i = 0; i < nodes; ++i)
    procs.push_back(hosts.spawn(i,
                                {test::comb_binary(), "node", "--config", config, "--name",
                                 "n" + std::to_string(i + 1), "--no-provenance"},
                                dir + "/n" + std::to_string(i + 1) + ".log"));
  auto owner = placement(nodes);
  run_result res;
  res.committed.assign(nodes, 0);
  {
    auto inside = hosts.enter(hosts.size() - 1);
    runtime::system_config sc{2};
    caf::actor_system sys{sc};
    std::vector<runtime::client> clients;
    for (int c = 0; c < o.clients; ++c) {
      int node = c % nodes;
      caf::expected<runtime::client> cl = make_error(errc::unavailable, "not tried");
      test::wait_until(
        [&] {
          cl = runtime::client::connect(sys, {hosts.address(node), 4301}, 5s);
          return static_cast<bool>(cl);
        },
        60s, "node n" + std::to_string(node + 1));
      if (!cl) {
        std::fprintf(stderr, "perf_cluster: %s\n", describe(cl.error()).c_str());
        std::exit(1);
      }
      clients.push_back(*cl);
    }
    for (int k = 0; k < accounts; ++k) {
      auto a = "a" + std::to_string(k);
      auto r = clients[0].call("bank.open", json{{"account", a}, {"balance", 1000000}}.dump(),
                               "admin", 30s);
      if (!r) {
        std::fprintf(stderr, "perf_cluster: open %s: %s\n", a.c_str(), describe(r.error()).c_str());
        std::exit(1);
      }
    }
    std::atomic<bool> stop{false};
    std::vector<std::thread> ts;
    std::vector<uint64_t> done(o.clients, 0), cross(o.clients, 0);
    std::mutex mtx;
    auto start = std::chrono::steady_clock::now();
    for (int c = 0; c < o.clients; ++c)
      ts.emplace_back([&, c] {
        int node = c % nodes;
        std::vector<int> mine; // the accounts of the client's node
        for (int k = 0; k < accounts; ++k)
          if (owner[k] == node)
            mine.push_back(k);
        std::mt19937 rng(static_cast<unsigned>(c));
        for (uint64_t n = 0; !stop; ++n) {
          int from = mine[rng() % mine.size()];
          int to = random_pairs ? static_cast<int>(rng() % accounts) : mine[rng() % mine.size()];
          if (from == to)
            continue;
          json args{{"id", "c" + std::to_string(c) + "-" + std::to_string(n)},
                    {"from", "a" + std::to_string(from)},
                    {"to", "a" + std::to_string(to)},
                    {"amount", 1}};
          auto r = clients[c].call("bank.transfer", args.dump(), "teller", 30s);
          if (r) {
            ++done[c];
          } else if (owner[from] != owner[to]) {
            ++cross[c];
            std::lock_guard g{mtx};
            if (res.cross_error.empty())
              res.cross_error = describe(r.error());
          } else {
            std::fprintf(stderr, "perf_cluster: transfer: %s\n", describe(r.error()).c_str());
          }
        }
      });
    std::this_thread::sleep_for(std::chrono::seconds{o.seconds});
    stop = true;
    for (auto& t : ts)
      t.join();
    res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    for (int c = 0; c < o.clients; ++c) {
      res.committed[c % nodes] += done[c];
      res.cross += cross[c];
    }
  }
  for (auto& p : procs)
    p->kill(SIGTERM);
  return res;
}

double total_rate(const run_result& r) {
  uint64_t n = 0;
  for (auto c : r.committed)
    n += c;
  return static_cast<double>(n) / r.seconds;
}

void print(const char* name, const run_result& r, double baseline) {
  std::printf("%-28s", name);
  for (size_t i = 0; i < r.committed.size(); ++i)
    std::printf(" n%zu %8.0f/s", i + 1, static_cast<double>(r.committed[i]) / r.seconds);
  std::printf(" | total %8.0f/s  ratio %.2fx vs 1 node\n", total_rate(r),
              baseline > 0 ? total_rate(r) / baseline : 0.0);
}

} // namespace

int main(int argc, char** argv) {
  opts o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&](const char* key) {
      auto k = std::string{key} + "=";
      return a.rfind(k, 0) == 0 ? a.substr(k.size()) : std::string{};
    };
    if (auto v = val("--seconds"); !v.empty())
      o.seconds = std::stoi(v);
    else if (auto v = val("--clients"); !v.empty())
      o.clients = std::stoi(v);
    else if (auto v = val("--durability"); !v.empty())
      o.durability = v;
    else if (auto v = val("--benchmarks"); !v.empty())
      o.benchmarks = v;
    else {
      std::fprintf(stderr, "perf_cluster: unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  if (auto why = test::netns_hosts::unavailable(); !why.empty()) {
    std::fprintf(stderr, "perf_cluster: %s\n", why.c_str());
    return 1;
  }
  test::temp_dir dir;
  test::netns_hosts hosts{4};
  if (!hosts.error().empty()) {
    std::fprintf(stderr, "perf_cluster: %s\n", hosts.error().c_str());
    return 1;
  }
  std::printf("bank transfers, %d clients in total, durability %s, %d s per run, %u partitions, "
              "%d accounts; machine: %u cores\n",
              o.clients, o.durability.c_str(), o.seconds, partitions, accounts,
              std::thread::hardware_concurrency());
  auto one = run(hosts, 1, false, o, dir.path());
  double base = total_rate(one);
  print("1 node (baseline)", one, base);
  if (o.benchmarks.find("local") != std::string::npos) {
    auto three = run(hosts, 3, false, o, dir.path());
    print("3 nodes, transfers in-node", three, base);
  }
  if (o.benchmarks.find("random") != std::string::npos) {
    auto mixed = run(hosts, 3, true, o, dir.path());
    print("3 nodes, random pairs", mixed, base);
    auto all = mixed.cross + static_cast<uint64_t>(total_rate(mixed) * mixed.seconds);
    std::printf("  cross-node transfers: %llu of %llu (%.0f%%), not applied: %s\n",
                static_cast<unsigned long long>(mixed.cross), static_cast<unsigned long long>(all),
                all ? 100.0 * static_cast<double>(mixed.cross) / static_cast<double>(all) : 0.0,
                mixed.cross_error.c_str());
  }
  return 0;
}
