// perf/txn/wal_sync_bench: do commits stall while the group committer's WAL fsync runs? One
// thread calls database::sync_group() (RocksDB SyncWAL, as actors::group_committer does) over
// and over; `--writers` threads commit small transactions without sync (begin(group_sync)'s
// write options) on a Comb database opened in sync mode, and each commit's latency is filed
// under "during an fsync" or "between fsyncs". Equal distributions: the WAL write does not
// wait for the fsync, so the committer's fsync overlaps the next group's work.
//   perf_wal_sync [--writers=N] [--syncs=N]
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
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

using namespace comb;
using clk = std::chrono::steady_clock;

namespace {

double micros(clk::duration d) {
  return std::chrono::duration<double, std::micro>(d).count();
}

void print(const char* name, std::vector<double>& v) {
  if (v.empty()) {
    std::printf("%-28s none\n", name);
    return;
  }
  std::sort(v.begin(), v.end());
  auto at = [&](double q) { return v[std::min(v.size() - 1, static_cast<size_t>(q * v.size()))]; };
  std::printf("%-28s n=%6zu  p50 %8.1f  p90 %8.1f  p99 %8.1f  max %9.1f us\n", name, v.size(),
              at(0.5), at(0.9), at(0.99), v.back());
}

} // namespace

int main(int argc, char** argv) {
  int writers = 2, syncs = 500;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--writers=", 0) == 0)
      writers = std::max(1, std::atoi(a.c_str() + 10));
    else if (a.rfind("--syncs=", 0) == 0)
      syncs = std::max(1, std::atoi(a.c_str() + 8));
    else {
      std::cerr << "usage: perf_wal_sync [--writers=N] [--syncs=N]\n";
      return 2;
    }
  }
  auto dir = std::filesystem::temp_directory_path()
             / ("comb-perf-wal-sync-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  storage::options opts;
  opts.mode = storage::durability::sync;
  auto opened = storage::database::open(dir.string(), opts);
  if (!opened) {
    std::cerr << "perf_wal_sync: cannot open " << dir << "\n";
    return 1;
  }
  auto db = std::move(*opened);
  if (db->create_table("rows")) {
    std::cerr << "perf_wal_sync: cannot create a table\n";
    return 1;
  }
  auto* raw = db->raw();
  auto* rows = db->handle("rows");

  std::atomic<bool> stop{false};
  std::atomic<int> syncing{0};
  std::vector<double> sync_us;
  std::thread syncer([&] {
    for (int i = 0; i < syncs; ++i) {
      auto t0 = clk::now();
      syncing = 1;
      if (db->sync_group())
        std::abort();
      syncing = 0;
      sync_us.push_back(micros(clk::now() - t0));
      // Room for commits between fsyncs, as the committer leaves while a group forms.
      std::this_thread::sleep_for(std::chrono::microseconds{100});
    }
    stop = true;
  });
  std::mutex mtx;
  std::vector<double> during, between;
  std::vector<std::thread> pool;
  for (int w = 0; w < writers; ++w)
    pool.emplace_back([&, w] {
      std::vector<double> d, b;
      std::string value(300, 'v'); // about a bank.transfer's rows and record
      rocksdb::WriteOptions wo;    // sync = false: database::begin(/*group_sync=*/true)
      for (uint64_t k = 0; !stop; ++k) {
        std::unique_ptr<rocksdb::Transaction> t{raw->BeginTransaction(wo)};
        auto key = std::to_string(w) + "/" + std::to_string(k);
        if (!t->Put(rows, key, value).ok()
            || !t->Put(rows, "hot" + std::to_string(k % 64), value).ok())
          std::abort();
        bool s0 = syncing;
        auto t0 = clk::now();
        if (!t->Commit().ok())
          std::abort();
        double us = micros(clk::now() - t0);
        (s0 || syncing ? d : b).push_back(us);
        std::this_thread::sleep_for(std::chrono::microseconds{20});
      }
      std::lock_guard guard{mtx};
      during.insert(during.end(), d.begin(), d.end());
      between.insert(between.end(), b.begin(), b.end());
    });
  syncer.join();
  for (auto& t : pool)
    t.join();
  std::printf("perf_wal_sync: %d writers, %d WAL fsyncs (database::sync_group), pipelined "
              "writes as Comb opens RocksDB\n",
              writers, syncs);
  print("fsync (sync_group)", sync_us);
  print("commit during an fsync", during);
  print("commit between fsyncs", between);
  db.reset();
  std::filesystem::remove_all(dir);
  return 0;
}
