// comb::runtime::spooler: copies a node's provenance log into an SQL store (SQLite) on a
// thread of its own, once a second and once more when it stops, so that the log's records
// can be queried in SQL shortly after they commit. Owned by the node; the destructor stops the
// thread after a last pass. Not copyable.
#pragma once

#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace comb::runtime {

class spooler {
public:
  /// Spools `log_dir` into the SQLite file `file` once a second. Errors (the store cannot be
  /// opened, a pass fails) are written to stderr with their cause, and the spooler tries again
  /// on its next pass.
  spooler(std::string log_dir, std::string file);
  ~spooler();
  spooler(const spooler&) = delete;
  spooler& operator=(const spooler&) = delete;

private:
  void run(const std::string& log_dir, const std::string& file);

  std::mutex mtx_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

} // namespace comb::runtime
