#include "runtime/provenance/spooler.hpp"

#include "base/errc.hpp"
#include "storage/sql_store.hpp"

#include <chrono>
#include <iostream>

namespace comb::runtime {

spooler::spooler(std::string log_dir, std::string file, uint32_t period_ms) {
  if (file.empty() || file == "none" || log_dir.empty())
    return;
  thread_ = std::thread{[this, log_dir = std::move(log_dir), file = std::move(file), period_ms] {
    run(log_dir, file, period_ms);
  }};
}

spooler::~spooler() {
  {
    std::lock_guard guard{mtx_};
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable())
    thread_.join();
}

uint64_t spooler::passes() const {
  std::lock_guard guard{mtx_};
  return passes_;
}

void spooler::wait_for_pass() {
  std::unique_lock guard{mtx_};
  if (!thread_.joinable())
    return;
  // A pass that started after this call: wait for the next two counts when one may be under
  // way already.
  auto target = passes_ + 2;
  poke_ = true;
  cv_.notify_all();
  pass_cv_.wait(guard, [&] { return passes_ >= target || stop_; });
}

void spooler::run(std::string log_dir, std::string file, uint32_t period_ms) {
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
  // The pass after the stop is the last, so that what was logged before it is in the store.
  for (bool last = false;;) {
    guard.unlock();
    pass();
    guard.lock();
    ++passes_;
    pass_cv_.notify_all();
    if (last)
      break;
    cv_.wait_for(guard, std::chrono::milliseconds{period_ms}, [this] { return stop_ || poke_; });
    poke_ = false;
    last = stop_;
  }
}

} // namespace comb::runtime
