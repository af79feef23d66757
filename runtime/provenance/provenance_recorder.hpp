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
// (those not yet written); their lsns are filled with "provenance.unwritten" records, so lsns
// stay dense and are never handed out twice.
// The log's expected end is known outside the log: after each batch the writer records in the
// internal table `__provenance` the last lsn it wrote ("log") and the last lsn each partition's
// committed invocations took ("p<N>"; a record held back for a smaller lsn counts), in one
// transaction. (A committed invocation the writer has not marked yet is in the WAL, as its
// head; the WAL is kept for keep_wal_seconds.) At open, a log that ends
// before either is short: the records it lacks are rebuilt from the WAL where it holds them;
// lsns that the log once held (or a transaction committed) and the WAL cannot give back are a
// loss, and open refuses, naming them, unless options::accept_log_loss, which fills them with
// "provenance.loss" records. check_log_end tells the same without changing anything (for
// `comb log verify --data` and replay). Thread-safe. Close it before the database.
#pragma once

#include "runtime/provenance/provenance_hook.hpp"
#include "storage/provenance_log.hpp"

#include <caf/expected.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <map>
#include <mutex>
#include <optional>
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
    /// Start although records the log must hold are lost (neither in the log nor in the
    /// WAL): their lsns get "provenance.loss" records saying so. Off: open refuses.
    bool accept_log_loss = false;
    /// Arguments longer than this are logged with their long strings as digest and size
    /// (runtime/provenance/large_values.hpp): a model chunk is kept once, in the model
    /// store, not in the WAL entry, the log and the SQL store too. 0: always log the bytes.
    size_t elide_above = size_t{64} << 10;
  };

  /// The internal table holding the log's expected end.
  static constexpr const char* end_table = "__provenance";

  /// What the database says about the log's end, and what the log lacks.
  struct log_end {
    /// The last lsn in the log (0 when empty).
    uint64_t log_last = 0;
    /// The largest lsn a committed transaction took (its partition's row).
    uint64_t committed_lsn = 0;
    /// The largest lsn the log was known to hold (the writer's mark).
    uint64_t written_lsn = 0;
    /// Where the log must end: the largest of the above and of the WAL's records.
    uint64_t end = 0;
    /// lsns in (log_last, end], as ranges [first, last].
    std::vector<std::pair<uint64_t, uint64_t>> missing;
    /// Of those, how many the WAL still holds (rebuilt at open).
    uint64_t in_wal = 0;
    /// Of those, lsns never written before a crash (not committed transactions): filled with
    /// "provenance.unwritten" records at open.
    std::vector<std::pair<uint64_t, uint64_t>> unwritten;
    /// Of those, lsns the log held or a transaction committed and nothing can rebuild.
    std::vector<std::pair<uint64_t, uint64_t>> lost;

    bool complete() const { return missing.empty(); }
    /// One line: "the log ends at lsn 250, but ... lsns 251..500 are missing; ...".
    std::string describe() const;
  };

  /// Compares the end of the log in `log_dir` (ending at `log_last`) with what `db` says,
  /// reading the WAL for missing records. Changes nothing.
  static caf::expected<log_end> check_log_end(storage::database& db, const std::string& log_dir,
                                              uint64_t log_last);

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
  /// The last lsn the log file holds (every lsn up to it is written; `comb cluster status`
  /// compares it with what the spooler has spooled).
  uint64_t written_lsn() const;
  const std::string& log_dir() const { return opts_.log_dir; }

private:
  provenance_recorder(storage::database& db, options opts) : db_(db), opts_(std::move(opts)) {}
  /// Queues a record's log bytes (copied) for the writer; `partition`: a committed
  /// invocation's, whose lsn the writer records as that partition's end mark.
  void enqueue(uint64_t lsn, std::string_view bytes, std::optional<uint32_t> partition = {});
  void run();

  storage::database& db_;
  options opts_;
  std::unique_ptr<storage::log_writer> log_;
  std::string note_;

  /// Takes the next lsn.
  uint64_t take_lsn();
  /// Records in the database that the log holds every lsn up to `lsn`, and the last lsn each
  /// of `partitions` committed.
  caf::error mark_written(uint64_t lsn,
                          const std::vector<std::pair<uint32_t, uint64_t>>& partitions = {});

  std::atomic<uint64_t> next_lsn_{1};

  // Queue to the writer thread.
  mutable std::mutex q_mtx_;
  std::condition_variable q_cv_;
  std::condition_variable done_cv_;
  /// Queued records, each as its lsn and size (8 bytes each) and then its bytes: one buffer
  /// that the writer swaps for its own, so that queueing a record allocates nothing.
  std::string queue_;
  size_t queued_ = 0;
  /// The largest lsn each partition's committed invocations took (handed to end_table by the
  /// writer with its next batch mark).
  std::map<uint32_t, uint64_t> committed_;
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
