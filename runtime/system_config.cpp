#include "runtime/system_config.hpp"

#include "base/errc.hpp"

#include <caf/io/middleman.hpp>

#include <algorithm>
#include <thread>

namespace comb::runtime {

system_config::system_config(size_t threads) {
  load<caf::io::middleman>();
  add_error_category(errc_category, [](uint8_t code, caf::atom_value, const caf::message& ctx) {
    return describe(caf::error{code, errc_category, ctx});
  });
  // One worker per core. CAF's own default is at least 4, which on a 2-core machine lets
  // the OS preempt a worker inside a RocksDB commit (the write-group leader, or a row-lock
  // holder) while the others wait for it: perf_txn ran at about half the speed.
  if (threads == 0)
    threads = std::max(1u, std::thread::hardware_concurrency());
  set("scheduler.max-threads", threads);
}

} // namespace comb::runtime
