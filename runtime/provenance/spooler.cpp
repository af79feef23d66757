#include "runtime/provenance/spooler.hpp"

#include "base/errc.hpp"
#include "storage/sql_store.hpp"

#include <chrono>
#include <iostream>

namespace comb::runtime {

spooler::spooler(std::string log_dir, std::string file) {
  thread_ = std::thread{
    [this, log_dir = std::move(log_dir), file = std::move(file)] { run(log_dir, file); }};
}

spooler::~spooler() {
  {
    std::lock_guard guard{mtx_};
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void spooler::run(const std::string& log_dir, const std::string& file) {
  std::unique_ptr<storage::sql_store> store;
  auto pass = [&] {
    if (!store) {
      auto opened = storage::sql_store::open(file);
      if (!opened) {
        std::cerr << "comb: spooler: " << describe(opened.error()) << "\n";
        return;
      }
      store = std::move(*opened);
    }
    auto n = store->spool(log_dir);
    if (!n)
      std::cerr << "comb: spooler: " << file << ": " << describe(n.error()) << "\n";
  };
  std::unique_lock guard{mtx_};
  while (!stop_) {
    guard.unlock();
    pass();
    guard.lock();
    cv_.wait_for(guard, std::chrono::seconds{1}, [this] { return stop_; });
  }
  guard.unlock();
  pass(); // the last, so that what was logged before the stop is in the store
}

} // namespace comb::runtime
