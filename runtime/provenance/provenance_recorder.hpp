// comb::runtime::provenance_recorder: the provenance_hook that writes a node's provenance log.
// Records get their lsn in before_commit, while the transaction still holds its row locks: a
// transaction that conflicts with it (touches one of its rows) can only take its lsn after
// this one committed, so lsns follow commit order for every pair of transactions whose order
// matters; transactions that do not conflict commute. The writer thread appends records in
// lsn order (it holds back a record until every smaller lsn has arrived), in batches.
// Each committed invocation's record also rides in its transaction's WAL entry (RocksDB log
// data: in no table), so it is durable exactly when the commit is: as its head, the record
// without the rows, which the entry holds already as the transaction's writes (the log gets
// the whole record; storage::encode_committed gives both). The database keeps WAL files
// for a while after their data is flushed (storage::options::keep_wal_seconds). If the process
// dies between a commit and the log append, recovery (at open) reads the WAL written since the
// last checkpoint (`wal_checkpoint` in the log folder, written at close and after recovery) and
// appends the records the log lacks, their rows rebuilt from the writes in the same WAL
// entry, so no committed transaction is missing from the log.
// Messages and failed invocations are not in the WAL: a crash may lose the last few of them
// (those not yet written). Thread-safe. Close it before the database.
#pragma once

#include "runtime/provenance/provenance_hook.hpp"
#include "storage/provenance_log.hpp"

#include <caf/expected.hpp>

#include <atomic>
#include <chrono>
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

class provenance_recorder : public provenance_hook {
public:
  /// How long the database should keep flushed WAL files (see storage::options): far longer
  /// than the writer ever lags behind the commits.
  static constexpr unsigned keep_wal_seconds = 600;

  struct options {
    std::string log_dir;
    /// Record the rows each transaction reads, too.
    bool record_reads = false;
    uint64_t segment_bytes = 64ull << 20;
  };

  /// Opens the log (recovering its tail) and appends the committed records it lacks. The
  /// database must keep its WAL (storage::options::keep_wal_seconds > 0).
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
  /// Queues a record's log bytes (copied) for the writer.
  void enqueue(uint64_t lsn, std::string_view bytes);
  void run();

  storage::database& db_;
  options opts_;
  std::unique_ptr<storage::log_writer> log_;
  std::string note_;

  /// Takes the next lsn.
  uint64_t take_lsn();

  std::atomic<uint64_t> next_lsn_{1};

  // Queue to the writer thread.
  mutable std::mutex q_mtx_;
  std::condition_variable q_cv_;
  std::condition_variable done_cv_;
  /// Queued records, each as its lsn and size (8 bytes each) and then its bytes: one buffer
  /// that the writer swaps for its own, so that queueing a record allocates nothing.
  std::string queue_;
  size_t queued_ = 0;
  /// The writer sleeps until woken only when it has nothing to do; while records arrive it
  /// collects them for up to batch_interval, or until wake_batch are queued.
  static constexpr auto batch_interval = std::chrono::milliseconds{20};
  static constexpr size_t wake_batch = 16384;
  bool writer_idle_ = false;
  int flush_waiters_ = 0;
  uint64_t written_lsn_ = 0;
  bool stop_ = false;
  std::string error_;
  std::thread writer_;
};

} // namespace comb::runtime
