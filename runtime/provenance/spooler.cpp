#include "runtime/provenance/spooler.hpp"

#include "base/errc.hpp"
#include "base/sync_point.hpp"
#include "storage/provenance_log.hpp"
#include "storage/sql_store.hpp"

#include <chrono>
#include <iostream>
#include <optional>

namespace comb::runtime {

caf::error check_spooled(storage::sql_store& store, const std::string& log_dir,
                         const std::string& node) {
  auto last = store.last_lsn(node);
  if (last == 0)
    return {};
  auto reader = storage::log_reader::open(log_dir);
  if (!reader)
    return std::move(reader.error());
  std::optional<storage::log_record> rec;
  storage::log_stats st;
  if (auto err = reader->for_each(
        last,
        [&](storage::log_record&& r) {
          if (r.lsn == last)
            rec = std::move(r);
          return false;
        },
        &st))
    return err;
  auto passed = "the SQL store has spooled up to lsn " + std::to_string(last);
  if (!rec)
    return make_error(errc::corrupt_data,
                      passed + ", but the log " + log_dir + " ends at lsn "
                        + std::to_string(st.records == 0 ? 0 : st.last_lsn)
                        + ": it lost records the store holds, and records it gets at lsns up to "
                        + std::to_string(last) + " will not be spooled");
  // The store's row at that lsn, and what the log holds there.
  auto inv = store.query("SELECT execution_id, start_ns FROM func_invocations WHERE lsn = CAST(?1 "
                         "AS BIGINT) AND node = ?2",
                         {std::to_string(last), node});
  auto msg = store.query(
    "SELECT ts_ns, kind FROM messages WHERE lsn = CAST(?1 AS BIGINT) AND seq = 0 AND node = ?2",
    {std::to_string(last), node});
  if (!inv)
    return std::move(inv.error());
  if (!msg)
    return std::move(msg.error());
  bool same = false;
  std::string had;
  if (!inv->empty()) {
    auto& row = (*inv)[0];
    same = rec->kind == storage::log_record::kind_t::invocation
           && row["execution_id"].get<uint64_t>() == rec->execution_id
           && row["start_ns"].get<int64_t>() == rec->start_ns;
    had = "invocation " + std::to_string(row["execution_id"].get<uint64_t>());
  } else if (!msg->empty()) {
    auto& row = (*msg)[0];
    same = rec->kind == storage::log_record::kind_t::message
           && row["ts_ns"].get<int64_t>() == rec->timestamp_ns;
    had = "a message at " + std::to_string(row["ts_ns"].get<int64_t>()) + " ns";
  } else {
    return {}; // the store keeps no row for that record: nothing to compare
  }
  if (same)
    return {};
  std::string now = rec->kind == storage::log_record::kind_t::invocation
                      ? "invocation " + std::to_string(rec->execution_id)
                      : "a message at " + std::to_string(rec->timestamp_ns) + " ns ("
                          + rec->procedure + ")";
  return make_error(errc::corrupt_data,
                    passed + ", but lsn " + std::to_string(last) + " in the log " + log_dir
                      + " is another record (" + now + "; the store holds " + had
                      + "): the lsn was handed out twice, and records the log holds at lsns up "
                        "to "
                      + std::to_string(last) + " will not be spooled");
}

spooler::spooler(std::string log_dir, std::string file, std::string node) : node_(std::move(node)) {
  thread_ = std::thread{
    [this, log_dir = std::move(log_dir), file = std::move(file)] { run(log_dir, file); }};
}

spooler::status spooler::current() const {
  std::lock_guard guard{mtx_};
  return status_;
}

spooler::~spooler() {
  {
    std::lock_guard guard{mtx_};
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void spooler::run(const std::string& log_dir, const std::string& target) {
  auto file = storage::sql_store::display(target); // a URL's password stays out of messages
  std::unique_ptr<storage::sql_store> store;
  std::string said; // the last problem check_spooled reported, said once
  auto checked = std::chrono::steady_clock::time_point{};
  auto note = [this](std::string error, std::chrono::system_clock::time_point began,
                     uint64_t spooled) {
    std::lock_guard guard{mtx_};
    status_.error = std::move(error);
    if (status_.error.empty()) {
      status_.last_pass = began;
      status_.spooled_lsn = spooled;
    }
  };
  auto pass = [&] {
    auto began = std::chrono::system_clock::now();
    if (!store) {
      auto opened = storage::sql_store::open(target);
      if (!opened) {
        std::cerr << "comb: spooler: " << describe(opened.error()) << "\n";
        note(describe(opened.error()), began, 0);
        return;
      }
      store = std::move(*opened);
    }
    if (auto now = std::chrono::steady_clock::now(); now - checked >= std::chrono::seconds{30}) {
      checked = now;
      auto err = check_spooled(*store, log_dir, node_);
      auto text = err ? describe(err) : std::string{};
      if (!text.empty() && text != said)
        std::cerr << "comb: spooler: " << file << ": " << text << "\n";
      said = text;
    }
    auto n = store->spool(log_dir, /*max_records=*/0, node_);
    if (!n) {
      std::cerr << "comb: spooler: " << file << ": " << describe(n.error()) << "\n";
      note(describe(n.error()), began, 0);
      return;
    }
    note("", began, store->last_lsn(node_));
    if (*n > 0)
      COMB_SYNC_POINT("spool.after_pass");
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
