#include "runtime/provenance_recorder.hpp"

#include "runtime/errc.hpp"
#include "runtime/sync_point.hpp"
#include "storage/database.hpp"
#include "storage/log_record.hpp"
#include "storage/provenance_log.hpp"
#include "storage/transaction.hpp"

#include <rocksdb/utilities/transaction_db.h>
#include <rocksdb/write_batch.h>

#include <iostream>
#include <map>

namespace comb::runtime {

namespace {

std::string pending_key(uint64_t lsn) {
  std::string k(8, '\0');
  for (int i = 7; i >= 0; --i, lsn >>= 8)
    k[static_cast<size_t>(i)] = static_cast<char>(lsn & 0xff);
  return k;
}

uint64_t pending_lsn(std::string_view k) {
  uint64_t v = 0;
  for (unsigned char c : k.substr(0, 8))
    v = (v << 8) | c;
  return v;
}

} // namespace

caf::expected<std::shared_ptr<provenance_recorder>>
provenance_recorder::open(storage::database& db, options opts) {
  std::shared_ptr<provenance_recorder> self{new provenance_recorder(db, std::move(opts))};
  if (auto err = db.create_table(pending_table))
    return err;
  auto log = storage::log_writer::open(self->opts_.log_dir, {self->opts_.segment_bytes});
  if (!log)
    return std::move(log.error());
  self->log_ = std::move(*log);
  if (self->log_->bytes_dropped() > 0)
    self->note_ = "provenance log: " + self->log_->recovery_note() + ". ";
  // Append the committed invocations the log lacks, in commit order, renumbered after the
  // log's end (messages lost in the crash leave no gap).
  auto* cf = db.handle(pending_table);
  std::unique_ptr<rocksdb::Iterator> it{db.raw()->NewIterator(rocksdb::ReadOptions{}, cf)};
  rocksdb::WriteBatch done;
  uint64_t recovered = 0, already = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    std::string_view key{it->key().data(), it->key().size()};
    std::string_view val{it->value().data(), it->value().size()};
    done.Delete(cf, it->key()).PermitUncheckedError();
    auto rec = storage::decode(val);
    if (!rec)
      return make_error(errc::corrupt_data, std::string{pending_table}
                                              + ": pending record " + std::to_string(pending_lsn(key))
                                              + " does not decode: " + describe(rec.error()));
    // A pending row whose record reached the log is identified by its execution id, which
    // the log's last records carry; lsns below next_lsn were all written before the crash
    // only if the writer got that far, so compare against what the log holds.
    if (pending_lsn(key) < self->log_->next_lsn()) {
      // The record's lsn was taken; it is in the log only if the log reached that lsn
      // and holds this execution there.
      bool in_log = false;
      auto reader = storage::log_reader::open(self->opts_.log_dir);
      if (reader)
        (void) reader->for_each(pending_lsn(key), [&](storage::log_record&& r) {
          in_log = r.lsn == pending_lsn(key) && r.execution_id == rec->execution_id;
          return false;
        });
      if (in_log) {
        ++already;
        continue;
      }
    }
    std::string bytes{val};
    storage::set_lsn(bytes, self->log_->next_lsn());
    if (auto err = self->log_->append(self->log_->next_lsn(), bytes))
      return err;
    ++recovered;
  }
  if (auto err = self->log_->sync())
    return err;
  rocksdb::WriteOptions wo;
  wo.sync = true;
  auto s = db.raw()->Write(wo, &done);
  if (!s.ok())
    return storage::to_error(s, "clear pending provenance records");
  if (recovered > 0)
    self->note_ += "provenance log: appended " + std::to_string(recovered)
                   + " committed invocation(s) that a crash kept out of the log.";
  self->next_lsn_ = self->log_->next_lsn();
  self->written_lsn_ = self->next_lsn_ - 1;
  self->writer_ = std::thread{[p = self.get()] { p->run(); }};
  return self;
}

provenance_recorder::~provenance_recorder() {
  close();
}

void provenance_recorder::close() {
  {
    std::lock_guard guard{q_mtx_};
    if (stop_)
      return;
    stop_ = true;
  }
  q_cv_.notify_all();
  if (writer_.joinable())
    writer_.join();
}

namespace {

// The record held between before_commit and after_commit; both run on the state actor's
// thread within one message handler, so a thread-local slot carries it across.
thread_local std::string held_bytes;
thread_local uint64_t held_lsn = 0;

} // namespace

uint64_t provenance_recorder::take_lsn() {
  std::lock_guard guard{seq_mtx_};
  return next_lsn_++;
}

void provenance_recorder::before_commit(storage::transaction& txn, invocation_record& rec) {
  held_bytes = storage::encode(storage::to_log_record(rec));
  held_lsn = take_lsn();
  storage::set_lsn(held_bytes, held_lsn);
  if (auto err = txn.put_untracked(pending_table, pending_key(held_lsn), held_bytes)) {
    std::lock_guard guard{q_mtx_};
    if (error_.empty())
      error_ = describe(err);
  }
}

void provenance_recorder::after_commit(const invocation_record& rec, bool committed) {
  if (committed) {
    // The transaction (and its pending record) is committed; the log does not have it yet.
    COMB_SYNC_POINT("provenance.after_commit");
    enqueue(held_lsn, std::move(held_bytes), /*pending=*/true);
  } else {
    // The lsn was taken: fill it with a record saying the commit failed (replay skips it).
    auto r = storage::to_log_record(rec);
    r.status = "commit_failed";
    r.changes.clear();
    r.reads.clear();
    r.lsn = held_lsn;
    enqueue(held_lsn, storage::encode(r), /*pending=*/false);
  }
  held_bytes.clear();
}

void provenance_recorder::on_failed(const invocation_record& rec) {
  auto bytes = storage::encode(storage::to_log_record(rec));
  auto lsn = take_lsn();
  storage::set_lsn(bytes, lsn);
  enqueue(lsn, std::move(bytes), /*pending=*/false);
}

void provenance_recorder::on_message(const message_record& msg) {
  auto bytes = storage::encode(storage::to_log_record(msg));
  auto lsn = take_lsn();
  storage::set_lsn(bytes, lsn);
  enqueue(lsn, std::move(bytes), /*pending=*/false);
}

void provenance_recorder::enqueue(uint64_t lsn, std::string bytes, bool pending) {
  {
    std::lock_guard guard{q_mtx_};
    queue_.push_back({lsn, std::move(bytes), pending});
  }
  q_cv_.notify_one();
}

void provenance_recorder::flush() {
  uint64_t target;
  {
    std::lock_guard seq{seq_mtx_};
    target = next_lsn_ - 1;
  }
  std::unique_lock guard{q_mtx_};
  done_cv_.wait(guard, [&] { return written_lsn_ >= target || stop_; });
}

std::string provenance_recorder::last_error() const {
  std::lock_guard guard{q_mtx_};
  return error_;
}

void provenance_recorder::run() {
  auto* cf = db_.handle(pending_table);
  std::vector<queued> batch;
  // Records that arrived ahead of a smaller lsn, by lsn.
  std::map<uint64_t, queued> waiting;
  uint64_t next = written_lsn_ + 1;
  for (;;) {
    {
      std::unique_lock guard{q_mtx_};
      q_cv_.wait(guard, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty() && stop_)
        break;
      batch.swap(queue_);
    }
    for (auto& q : batch)
      waiting.emplace(q.lsn, std::move(q));
    batch.clear();
    caf::error err;
    uint64_t lo = 0, hi = 0;
    bool wrote = false;
    while (!waiting.empty() && waiting.begin()->first == next) {
      auto& q = waiting.begin()->second;
      if (!err)
        err = log_->append(q.lsn, q.bytes);
      if (q.pending) {
        lo = lo == 0 ? q.lsn : lo;
        hi = q.lsn;
      }
      waiting.erase(waiting.begin());
      ++next;
      wrote = true;
    }
    if (!wrote)
      continue;
    if (!err)
      err = opts_.sync ? log_->sync() : log_->flush();
    if (!err && hi != 0) {
      // One range tombstone for the whole batch: every lsn in [lo, hi] was just written, in
      // order. Pending keys are never locked (put_untracked), so the base DB may delete them.
      auto s = db_.raw()->GetBaseDB()->DeleteRange(rocksdb::WriteOptions{}, cf, pending_key(lo),
                                                   pending_key(hi + 1));
      if (!s.ok())
        err = storage::to_error(s, "trim pending provenance records");
    }
    {
      std::lock_guard guard{q_mtx_};
      if (err && error_.empty()) {
        error_ = describe(err);
        std::cerr << "comb: provenance log: " << error_ << "\n";
      }
      written_lsn_ = next - 1;
    }
    done_cv_.notify_all();
  }
  (void) log_->sync();
  done_cv_.notify_all();
}

} // namespace comb::runtime
