// comb::runtime::provenance_recorder: the provenance_hook that writes a node's provenance log.
// Records get their lsn in before_commit, while the transaction still holds its row locks: a
// transaction that conflicts with it (touches one of its rows) can only take its lsn after
// this one committed, so lsns follow commit order for every pair of transactions whose order
// matters; transactions that do not conflict commute. The writer thread appends records in
// lsn order (it holds back a record until every smaller lsn has arrived). Each committed
// invocation's record is also written into the "__prov_pending" table inside its own
// transaction; a writer thread appends queued records to the log and then deletes their pending
// rows. If the process dies between a commit and the log append, recovery (at open) appends
// the pending records the log lacks, so no committed transaction is missing from the log.
// Messages and failed invocations are not in the pending table: a crash may lose the last few
// of them (those not yet written). Thread-safe. Close it before the database.
#pragma once

#include "runtime/provenance_hook.hpp"
#include "storage/provenance_log.hpp"

#include <caf/expected.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace comb::storage {
class database;
} // namespace comb::storage

namespace comb::runtime {

/// The table holding records of committed invocations not yet in the log.
constexpr const char* pending_table = "__prov_pending";

class provenance_recorder : public provenance_hook {
public:
  struct options {
    std::string log_dir;
    /// Record the rows each transaction reads, too.
    bool record_reads = false;
    /// fdatasync the log before dropping pending rows (for sync-durability nodes).
    bool sync = false;
    uint64_t segment_bytes = 64ull << 20;
  };

  /// Opens the log (recovering its tail) and appends pending records it lacks.
  static caf::expected<std::shared_ptr<provenance_recorder>> open(storage::database& db,
                                                                   options opts);
  ~provenance_recorder() override;

  void before_commit(storage::transaction& txn, invocation_record& rec) override;
  void after_commit(const invocation_record& rec, bool committed) override;
  void on_failed(const invocation_record& rec) override;
  void on_message(const message_record& msg) override;
  bool record_reads() const override { return opts_.record_reads; }

  /// Blocks until every record handed over so far is in the log file.
  void flush();
  /// Writes everything still queued and stops the writer thread.
  void close();

  /// What recovery did at open, for the node's start-up message.
  const std::string& recovery_note() const { return note_; }
  /// The first error the writer thread met (empty when none).
  std::string last_error() const;
  const std::string& log_dir() const { return opts_.log_dir; }

private:
  provenance_recorder(storage::database& db, options opts) : db_(db), opts_(std::move(opts)) {}
  void enqueue(uint64_t lsn, std::string bytes, bool pending);
  void run();

  storage::database& db_;
  options opts_;
  std::unique_ptr<storage::log_writer> log_;
  std::string note_;

  /// Takes the next lsn.
  uint64_t take_lsn();

  std::mutex seq_mtx_;
  uint64_t next_lsn_ = 1;

  // Queue to the writer thread.
  mutable std::mutex q_mtx_;
  std::condition_variable q_cv_;
  std::condition_variable done_cv_;
  struct queued {
    uint64_t lsn;
    std::string bytes;
    /// Has a row in the pending table to delete once written.
    bool pending;
  };
  std::vector<queued> queue_;
  uint64_t written_lsn_ = 0;
  bool stop_ = false;
  std::string error_;
  std::thread writer_;
};

} // namespace comb::runtime
