#include "runtime/provenance/provenance_recorder.hpp"

#include "runtime/provenance/large_values.hpp"

#include "base/errc.hpp"
#include "base/sync_point.hpp"
#include "base/wall_clock.hpp"
#include "storage/database.hpp"
#include "storage/log_record.hpp"
#include "storage/provenance_log.hpp"
#include "storage/record_value.hpp"
#include "storage/transaction.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <charconv>

namespace comb::runtime {

namespace {

// Every provenance blob in the WAL starts with this tag, then the encoded record.
constexpr std::string_view wal_tag = "CPRV";

std::string checkpoint_path(const std::string& log_dir) {
  return (std::filesystem::path{log_dir} / "wal_checkpoint").string();
}

// The WAL sequence number up to which every committed invocation is in the log (0: none).
caf::expected<uint64_t> read_checkpoint(const std::string& log_dir) {
  std::ifstream in{checkpoint_path(log_dir)};
  if (!in)
    return uint64_t{0};
  std::string word;
  uint64_t seq = 0;
  if (!(in >> word >> seq) || word != "seq")
    return make_error(errc::corrupt_data,
                      checkpoint_path(log_dir) + ": not a WAL checkpoint (expected 'seq N')");
  return seq;
}

caf::error write_checkpoint(const std::string& log_dir, uint64_t seq) {
  auto path = checkpoint_path(log_dir);
  auto tmp = path + ".tmp";
  {
    std::ofstream out{tmp, std::ios::trunc};
    out << "seq " << seq << "\n";
    out.flush();
    if (!out)
      return make_error(errc::storage_error, "cannot write " + tmp);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec)
    return make_error(errc::storage_error, "cannot rename " + tmp + ": " + ec.message());
  return {};
}

// The row changes a WAL head announces (one flag byte each, see storage::encode_committed):
// its transaction's writes, which are the last ones before the head in its WAL batch.
caf::expected<std::vector<row_change>> rows_of(
  std::string_view flags, const std::vector<storage::database::wal_write>& before) {
  if (before.size() < flags.size())
    return make_error(errc::corrupt_data, "it announces " + std::to_string(flags.size())
                                            + " row change(s) but its WAL batch holds "
                                            + std::to_string(before.size()) + " write(s)");
  std::vector<row_change> out(flags.size());
  auto first = before.size() - flags.size();
  for (size_t i = 0; i < flags.size(); ++i) {
    auto& w = before[first + i];
    auto& c = out[i];
    if (!storage::from_row_flag(static_cast<uint8_t>(flags[i]), c)
        || w.del != (c.kind == row_change::op::del) || w.table.empty())
      return make_error(errc::corrupt_data, "row change " + std::to_string(i)
                                              + " does not match its write in the WAL batch");
    c.table = w.table;
    c.key = w.key;
    c.value = w.value;
  }
  return out;
}

// The log's expected end as the database records it (end_table).
struct end_marks {
  uint64_t committed = 0;
  uint64_t written = 0;
  /// The last lsn each partition committed.
  std::set<uint64_t> partition_lsns;
};

caf::expected<end_marks> read_marks(storage::database& db) {
  end_marks m;
  if (!db.has_table(provenance_recorder::end_table))
    return m;
  caf::error bad;
  // Committed rows, outside a transaction: the folder may be open read-only (verify, replay).
  auto err = db.scan(provenance_recorder::end_table, [&](auto key, auto value) {
    uint64_t n = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (ec != std::errc{} || end != value.data() + value.size()) {
      bad = make_error(errc::corrupt_data, std::string{"row '"} + std::string{key} + "' of "
                                             + provenance_recorder::end_table + " is not an lsn");
      return false;
    }
    if (key == "log")
      m.written = n;
    else if (!key.empty() && key[0] == 'p') {
      m.committed = std::max(m.committed, n);
      m.partition_lsns.insert(n);
    }
    return true;
  });
  if (err)
    return err;
  if (bad)
    return bad;
  return m;
}

// The committed invocations the WAL holds after sequence `after_seq` with an lsn above
// `after_lsn`, by lsn, as the log's bytes (their rows rebuilt from their WAL entries).
caf::error wal_records(storage::database& db, uint64_t after_seq, uint64_t after_lsn,
                       std::map<uint64_t, std::string>& out) {
  caf::error bad;
  auto scanned = db.scan_wal(after_seq, [&](std::string_view blob, const auto& before) {
    if (blob.substr(0, wal_tag.size()) != wal_tag || bad)
      return;
    blob.remove_prefix(wal_tag.size());
    auto lsn = storage::lsn_of(blob);
    if (lsn <= after_lsn)
      return; // in the log already
    auto rec = storage::decode_head(blob);
    if (!rec) {
      bad = make_error(errc::corrupt_data, "WAL provenance record " + std::to_string(lsn)
                                             + " does not decode: " + describe(rec.error()));
      return;
    }
    if (rec->row_flags.empty()) { // written before heads existed: holds its rows itself
      out[lsn] = std::string{blob};
      return;
    }
    auto changes = rows_of(rec->row_flags, before);
    if (!changes) {
      bad = make_error(errc::corrupt_data, "WAL provenance record " + std::to_string(lsn) + ": "
                                             + describe(changes.error()));
      return;
    }
    rec->changes = std::move(*changes);
    out[lsn] = storage::encode(*rec);
  });
  if (scanned)
    return scanned;
  return bad;
}

void add_lsn(std::vector<std::pair<uint64_t, uint64_t>>& ranges, uint64_t lsn) {
  if (!ranges.empty() && ranges.back().second + 1 == lsn)
    ranges.back().second = lsn;
  else
    ranges.emplace_back(lsn, lsn);
}

std::string ranges_text(const std::vector<std::pair<uint64_t, uint64_t>>& ranges) {
  constexpr size_t shown = 8;
  std::string out;
  for (size_t i = 0; i < ranges.size() && i < shown; ++i) {
    if (i > 0)
      out += ", ";
    out += std::to_string(ranges[i].first);
    if (ranges[i].second != ranges[i].first)
      out += ".." + std::to_string(ranges[i].second);
  }
  if (ranges.size() > shown)
    out += " and " + std::to_string(ranges.size() - shown) + " more range(s)";
  return out;
}

uint64_t count_of(const std::vector<std::pair<uint64_t, uint64_t>>& ranges) {
  uint64_t n = 0;
  for (auto& [a, b] : ranges)
    n += b - a + 1;
  return n;
}

// Compares the log's end with the database's marks; `rebuilt` gets the WAL's records.
caf::expected<provenance_recorder::log_end> plan_end(storage::database& db,
                                                     const std::string& log_dir, uint64_t log_last,
                                                     std::map<uint64_t, std::string>& rebuilt) {
  auto marks = read_marks(db);
  if (!marks)
    return std::move(marks.error());
  auto ckpt = read_checkpoint(log_dir);
  if (!ckpt)
    return std::move(ckpt.error());
  provenance_recorder::log_end e;
  e.log_last = log_last;
  e.committed_lsn = marks->committed;
  e.written_lsn = marks->written;
  // A log shorter than the database says lost records the checkpoint counts as written:
  // read the whole WAL kept for them.
  bool short_log = log_last < std::max(marks->committed, marks->written);
  if (auto err = wal_records(db, short_log ? 0 : *ckpt, log_last, rebuilt))
    return err;
  e.end = std::max(
    {log_last, marks->committed, marks->written, rebuilt.empty() ? 0 : rebuilt.rbegin()->first});
  for (uint64_t lsn = log_last + 1; lsn <= e.end; ++lsn) {
    add_lsn(e.missing, lsn);
    if (rebuilt.count(lsn) > 0)
      ++e.in_wal;
    else if (lsn <= marks->written || marks->partition_lsns.count(lsn) > 0)
      add_lsn(e.lost, lsn);
    else
      add_lsn(e.unwritten, lsn);
  }
  return e;
}

// A record filling a missing lsn: `what` is "loss" or "unwritten".
std::string filler(uint64_t lsn, const std::string& what, const std::string& lsns,
                   const std::string& reason) {
  storage::message_record m;
  m.kind = "log_" + what;
  m.sender = "provenance";
  m.procedure = "provenance." + what;
  m.status = "lost";
  m.timestamp_ns = comb::wall_clock_ns();
  m.payload = nlohmann::json{{"lsns", lsns}, {"reason", reason}}.dump();
  auto r = storage::to_log_record(m);
  r.lsn = lsn;
  return storage::encode(r);
}

} // namespace

std::string provenance_recorder::log_end::describe() const {
  std::string marks = "the database committed up to lsn " + std::to_string(committed_lsn)
                      + " and the log was written up to lsn " + std::to_string(written_lsn);
  if (missing.empty())
    return "the log ends at lsn " + std::to_string(log_last) + ", where it must (" + marks + ")";
  std::string out = "the log ends at lsn " + std::to_string(log_last) + ", but " + marks + ": lsns "
                    + ranges_text(missing) + " (" + std::to_string(count_of(missing))
                    + " record(s)) are missing from the log";
  if (in_wal > 0)
    out += "; " + std::to_string(in_wal) + " of them are committed invocations the WAL still "
           + "holds (rebuilt when the node starts)";
  if (!unwritten.empty())
    out += "; lsns " + ranges_text(unwritten) + " were never written before a crash (no "
           + "committed transaction took them)";
  if (!lost.empty())
    out += "; lsns " + ranges_text(lost) + " (" + std::to_string(count_of(lost))
           + " record(s)) are lost: neither the log nor the WAL holds them";
  return out;
}

caf::expected<provenance_recorder::log_end> provenance_recorder::check_log_end(
  storage::database& db, const std::string& log_dir, uint64_t log_last) {
  std::map<uint64_t, std::string> rebuilt;
  return plan_end(db, log_dir, log_last, rebuilt);
}

caf::expected<std::shared_ptr<provenance_recorder>> provenance_recorder::open(storage::database& db,
                                                                              options opts) {
  if (db.keep_wal_seconds() == 0)
    return make_error(errc::bad_config, "provenance needs a database that keeps its WAL "
                                        "(storage::options::keep_wal_seconds)");
  if (auto err = db.create_table(end_table))
    return err;
  std::shared_ptr<provenance_recorder> self{new provenance_recorder(db, std::move(opts))};
  storage::log_options lo{self->opts_.segment_bytes};
  if (self->opts_.accept_log_loss) // lsns that no segment holds (segments deleted) are a loss
    lo.gap_filler = [](uint64_t lsn, const std::string& lsns) {
      return filler(lsn, "loss", lsns, "in no segment of the log; accepted at start");
    };
  auto log = storage::log_writer::open(self->opts_.log_dir, std::move(lo));
  if (!log)
    return std::move(log.error());
  self->log_ = std::move(*log);
  if (!self->log_->recovery_note().empty())
    self->note_ = "provenance log: " + self->log_->recovery_note() + ". ";
  // Every committed invocation's record is in the WAL entry of its transaction: its head, and
  // its rows as the entry's writes. Those the log lacks (the process died before the append,
  // a torn tail was cut, segments were lost) are appended with the lsns they took. The
  // database says where the log must end; lsns up to there that nothing can rebuild are
  // filled: unwritten ones (messages a crash kept from the log) always, lost ones only when
  // the loss is accepted.
  std::map<uint64_t, std::string> rebuilt;
  auto plan = plan_end(db, self->opts_.log_dir, self->log_->next_lsn() - 1, rebuilt);
  if (!plan)
    return std::move(plan.error());
  if (!plan->lost.empty() && !self->opts_.accept_log_loss)
    return make_error(errc::corrupt_data,
                      "provenance log " + self->opts_.log_dir + ": " + plan->describe()
                        + ". Restore the missing segments, or start with --accept-log-loss to "
                          "record the loss in the log and go on");
  auto lost_text = ranges_text(plan->lost);
  auto unwritten_text = ranges_text(plan->unwritten);
  for (uint64_t lsn = plan->log_last + 1; lsn <= plan->end; ++lsn) {
    auto at = rebuilt.find(lsn);
    std::string bytes;
    if (at != rebuilt.end()) {
      bytes = std::move(at->second);
      storage::set_lsn(bytes, lsn);
    } else {
      bool lost = std::any_of(plan->lost.begin(), plan->lost.end(),
                              [&](const auto& r) { return r.first <= lsn && lsn <= r.second; });
      bytes = lost ? filler(lsn, "loss", lost_text,
                            "lost from the log and not in the WAL; accepted at start")
                   : filler(lsn, "unwritten", unwritten_text,
                            "taken by a message or failed invocation that a crash kept from "
                            "the log");
    }
    if (auto err = self->log_->append(lsn, bytes))
      return err;
  }
  if (auto err = self->log_->sync())
    return err;
  if (auto err = write_checkpoint(self->opts_.log_dir, db.latest_sequence()))
    return err;
  if (auto err = self->mark_written(self->log_->next_lsn() - 1))
    return err;
  if (plan->in_wal > 0 && plan->lost.empty() && plan->log_last >= plan->written_lsn)
    self->note_ += "provenance log: appended " + std::to_string(plan->in_wal)
                   + " committed invocation(s) that a crash kept out of the log.";
  else if (!plan->complete())
    self->note_ += "provenance log: " + plan->describe()
                   + (plan->lost.empty() ? std::string{"; the log is whole again."}
                                         : "; the loss is accepted and recorded in the log.");
  self->next_lsn_ = self->log_->next_lsn();
  self->written_lsn_ = self->next_lsn_ - 1;
  self->writer_ = std::thread{[p = self.get()] { p->run(); }};
  return self;
}

caf::error provenance_recorder::mark_written(
  uint64_t lsn, const std::vector<std::pair<uint32_t, uint64_t>>& partitions) {
  auto txn = db_.begin(/*group_sync=*/true); // the mark need not be synced before the log
  // The recorder is end_table's one writer (open() before the writer thread starts, then that
  // thread): its rows need no lock, no read to tell an insert from an update, and no row
  // change, which provenance does not log. perf_txn --provenance under callgrind: the marks
  // cost 7.6k instructions a transfer through put (a locked read of each row first).
  if (auto err = txn->put_untracked(end_table, "log", std::to_string(lsn)))
    return err;
  for (auto& [p, committed] : partitions)
    if (auto err =
          txn->put_untracked(end_table, "p" + std::to_string(p), std::to_string(committed)))
      return err;
  return txn->commit();
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
  // Everything committed is in the log now: recovery need not look at the WAL before here.
  std::lock_guard guard{q_mtx_};
  if (error_.empty())
    if (auto err = write_checkpoint(opts_.log_dir, db_.latest_sequence()))
      error_ = describe(err);
}

namespace {

// The record held between before_commit and after_commit; both run on the state actor's
// thread within one message handler, so thread-local slots carry it across.
// held_buf: [wal_tag][record]; its first held_head_size bytes are the WAL head.
thread_local std::string held_buf;
thread_local size_t held_head_size = 0;
thread_local uint64_t held_lsn = 0;
// Buffers larger than this are released after use instead of kept for the next record.
constexpr size_t max_kept_bytes = 1 << 20;

} // namespace

uint64_t provenance_recorder::take_lsn() {
  return next_lsn_.fetch_add(1);
}

void provenance_recorder::before_commit(storage::transaction& txn, invocation_record& rec) {
  // Large arguments this transaction stores in a blobs table (model chunks) are logged as
  // digests: replay finds the bytes in the source database.
  // Elision reads JSON text: MessagePack arguments that may hold a string it would elide
  // are turned into their text first (the same text the log's reader would get).
  if (opts_.elide_above > 0 && storage::is_msgpack_value(rec.args)
      && rec.args.size() > elide_min_string)
    if (auto text = storage::record_value_text(rec.args))
      rec.args = std::move(*text);
  if (opts_.elide_above > 0 && rec.args.size() > opts_.elide_above) {
    auto stored = [&](std::string_view bytes) {
      return std::any_of(rec.changes.begin(), rec.changes.end(), [&](const row_change& c) {
        return !c.is_row && c.kind != row_change::op::del
               && storage::transaction::stored_blob_holds(c.value, bytes);
      });
    };
    if (auto small = elide_large_values(rec.args, opts_.elide_above, stored))
      rec.args = std::move(*small);
  }
  // Large row values are logged as digests too: replay re-executes the transaction and
  // compares what it writes by digest (same_elided_value). rec.changes is provenance's own
  // copy: the transaction commits its write batch, not these.
  if (opts_.elide_above > 0)
    for (auto& c : rec.changes)
      if (c.kind != row_change::op::del && c.value.size() > opts_.elide_above)
        if (auto small = elide_row_value(c.value, c.is_row, opts_.elide_above))
          c.value = std::move(*small);
  // One encoding, one buffer: [tag][record]. The log gets the record; the WAL gets
  // [tag][record head], the record without its rows, which the transaction's WAL entry holds
  // already (recovery takes them from there). The buffer keeps its capacity from one
  // transaction to the next.
  held_head_size = storage::encode_committed(held_buf, rec, wal_tag.size());
  held_lsn = take_lsn();
  std::memcpy(held_buf.data(), wal_tag.data(), wal_tag.size());
  std::memcpy(held_buf.data() + wal_tag.size(), &held_lsn, 8); // the record's lsn
  // The head rides in the transaction's WAL entry: durable exactly when the commit is (no
  // table write, nothing to delete later).
  txn.put_log_data(std::string_view{held_buf}.substr(0, held_head_size));
  // The lsn this transaction took reaches its partition's row of end_table through the writer
  // (with its batch mark, see mark_written), not through this transaction: a row write in
  // every transaction cost about 10% of the CPU per transfer (perf_txn, a memtable insert of
  // its own). Until the writer's mark is written, the WAL holds this record (its head).
}

void provenance_recorder::after_commit(const invocation_record& rec, bool committed) {
  if (committed) {
    // The transaction (and its record, in its WAL entry) is committed; the log lacks it yet.
    COMB_SYNC_POINT("provenance.after_commit");
    enqueue(held_lsn, std::string_view{held_buf}.substr(wal_tag.size()), rec.partition);
  } else {
    // The lsn was taken: fill it with a record saying the commit failed (replay skips it).
    auto r = storage::to_log_record(rec);
    r.status = "commit_failed";
    r.changes.clear();
    r.reads.clear();
    r.lsn = held_lsn;
    enqueue(held_lsn, storage::encode(r));
  }
  if (held_buf.capacity() > max_kept_bytes)
    std::string{}.swap(held_buf); // a huge record's buffer is not kept
}

void provenance_recorder::on_failed(const invocation_record& rec) {
  // A failed call's large arguments are in no table: only their digest is kept.
  std::optional<std::string> small;
  if (opts_.elide_above > 0 && rec.args.size() > elide_min_string)
    if (auto text = storage::record_value_text(rec.args))
      small = elide_large_values(*text, opts_.elide_above);
  std::string bytes;
  if (small) {
    auto copy = rec;
    copy.args = std::move(*small);
    bytes = storage::encode(copy);
  } else {
    bytes = storage::encode(rec);
  }
  auto lsn = take_lsn();
  storage::set_lsn(bytes, lsn);
  enqueue(lsn, bytes);
}

void provenance_recorder::on_message(const message_record& msg) {
  // A message is never replayed: its large strings are logged as digest and size only.
  std::optional<std::string> small;
  if (opts_.elide_above > 0)
    small = elide_large_values(msg.payload, opts_.elide_above);
  message_record copy;
  const message_record* m = &msg;
  if (small) {
    copy = msg;
    copy.payload = std::move(*small);
    m = &copy;
  }
  auto bytes = storage::encode(*m);
  auto lsn = take_lsn();
  storage::set_lsn(bytes, lsn);
  enqueue(lsn, bytes);
}

void provenance_recorder::enqueue(uint64_t lsn, std::string_view bytes,
                                  std::optional<uint32_t> partition) {
  uint64_t size = bytes.size();
  bool wake;
  {
    std::lock_guard guard{q_mtx_};
    if (partition) {
      auto& mark = committed_[*partition];
      mark = std::max(mark, lsn);
    }
    queue_.append(reinterpret_cast<const char*>(&lsn), 8);
    queue_.append(reinterpret_cast<const char*>(&size), 8);
    queue_.append(bytes);
    ++queued_;
    // A busy writer collects records on its own clock: waking it for every record would
    // cost a futex call and a context switch per transaction.
    wake = writer_idle_ || queued_ == wake_batch;
  }
  if (wake)
    q_cv_.notify_one();
}

void provenance_recorder::flush() {
  uint64_t target = next_lsn_.load() - 1;
  std::unique_lock guard{q_mtx_};
  ++flush_waiters_;
  q_cv_.notify_one();
  done_cv_.wait(guard, [&] { return written_lsn_ >= target || stop_; });
  --flush_waiters_;
}

std::string provenance_recorder::last_error() const {
  std::lock_guard guard{q_mtx_};
  return error_;
}

uint64_t provenance_recorder::written_lsn() const {
  std::lock_guard guard{q_mtx_};
  return written_lsn_;
}

void provenance_recorder::run() {
  std::string batch; // swapped with queue_, so both keep their capacity
  struct entry {
    uint64_t lsn;
    std::string_view bytes;
  };
  std::vector<entry> entries;
  // Records that arrived ahead of a smaller lsn, by lsn.
  std::map<uint64_t, std::string> waiting;
  uint64_t next = written_lsn_ + 1;
  // The last lsn each partition committed, as written to end_table, and those of this batch.
  std::map<uint32_t, uint64_t> marked;
  std::vector<std::pair<uint32_t, uint64_t>> marks;
  for (;;) {
    {
      std::unique_lock guard{q_mtx_};
      if (queued_ == 0 && !stop_) {
        // Idle: sleep until the next record (enqueue wakes an idle writer).
        writer_idle_ = true;
        q_cv_.wait(guard, [&] { return stop_ || queued_ > 0; });
        writer_idle_ = false;
      }
      // Busy: let records gather for up to one batch interval, or until a batch is full,
      // someone waits in flush(), or the recorder closes.
      q_cv_.wait_for(guard, batch_interval,
                     [&] { return stop_ || flush_waiters_ > 0 || queued_ >= wake_batch; });
      if (queued_ == 0 && stop_)
        break;
      batch.clear();
      batch.swap(queue_);
      queued_ = 0;
      marks.clear();
      for (auto& [p, lsn] : committed_)
        if (lsn > marked[p])
          marks.emplace_back(p, marked[p] = lsn);
    }
    entries.clear();
    for (size_t at = 0; at + 16 <= batch.size();) {
      uint64_t lsn, size;
      std::memcpy(&lsn, batch.data() + at, 8);
      std::memcpy(&size, batch.data() + at + 8, 8);
      entries.push_back({lsn, std::string_view{batch}.substr(at + 16, size)});
      at += 16 + size;
    }
    // Records arrive nearly in lsn order: sort the batch, append its run that continues the
    // log, and hold back the rest until the lsns before them arrive.
    auto by_lsn = [](const entry& a, const entry& b) { return a.lsn < b.lsn; };
    if (!std::is_sorted(entries.begin(), entries.end(), by_lsn))
      std::sort(entries.begin(), entries.end(), by_lsn);
    caf::error err;
    bool wrote = false;
    auto append = [&](std::string_view bytes) {
      if (!err)
        err = log_->append(next, bytes);
      ++next;
      wrote = true;
    };
    auto drain = [&] { // held-back records that now continue the log
      for (; !waiting.empty() && waiting.begin()->first == next; waiting.erase(waiting.begin()))
        append(waiting.begin()->second);
    };
    for (auto& e : entries) {
      drain();
      if (e.lsn == next)
        append(e.bytes);
      else
        waiting.emplace(e.lsn, std::string{e.bytes});
    }
    drain();
    if (batch.capacity() > 16 * max_kept_bytes)
      std::string{}.swap(batch); // nor a burst's
    if (!wrote)
      continue;
    if (!err)
      err = db_.syncs_commits() ? log_->sync() : log_->flush(); // the log is as durable as a commit
    if (!err)
      err = mark_written(next - 1, marks);
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
  // Closing: what was written is made durable before close() writes its checkpoint, which
  // it skips when this failed (recovery then reads the WAL for the records instead).
  if (auto err = log_->sync()) {
    std::lock_guard guard{q_mtx_};
    if (error_.empty()) {
      error_ = describe(err);
      std::cerr << "comb: provenance log: " << error_ << "\n";
    }
  }
  done_cv_.notify_all();
}

} // namespace comb::runtime
