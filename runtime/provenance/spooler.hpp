// comb::runtime::spooler: copies a node's provenance log into an SQL store (SQLite) on a
// thread of its own, once a second and once more when it stops, so that the log's records
// can be queried in SQL shortly after they commit. Owned by the node; the destructor stops the
// thread after a last pass. Not copyable; its member functions are thread-safe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

namespace comb::runtime {

class spooler {
public:
  /// Spools `log_dir` into the SQLite file `file` every `period_ms` milliseconds. Does
  /// nothing when `file` is "none" or empty, or `log_dir` is empty. Errors (the store cannot
  /// be opened, a pass fails) are written to stderr with their cause and the spooler tries
  /// again on its next pass.
  spooler(std::string log_dir, std::string file, uint32_t period_ms = 1000);
  ~spooler();
  spooler(const spooler&) = delete;
  spooler& operator=(const spooler&) = delete;

  /// True when the spooler thread runs.
  bool active() const { return thread_.joinable(); }

  /// Passes finished so far (for tests and status lines).
  uint64_t passes() const;

  /// Blocks until a pass that started after this call has finished (or the spooler stops).
  void wait_for_pass();

private:
  void run(std::string log_dir, std::string file, uint32_t period_ms);

  mutable std::mutex mtx_;
  std::condition_variable cv_;
  std::condition_variable pass_cv_;
  bool stop_ = false;
  bool poke_ = false;
  uint64_t passes_ = 0;
  std::thread thread_;
};

} // namespace comb::runtime
