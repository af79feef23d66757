#include "runtime/provenance/spooler.hpp"

#include "base/errc.hpp"
#include "base/sync_point.hpp"
#include "runtime/procedure_registry.hpp"
#include "storage/provenance_log.hpp"
#include "storage/sql_store.hpp"

#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <iostream>
#include <optional>
#include <unistd.h>

namespace comb::runtime {

namespace {

std::string hex_of(const unsigned char* p, size_t n) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out += digits[p[i] >> 4];
    out += digits[p[i] & 15];
  }
  return out;
}

/// The key in `file`, made (32 random bytes as 64 hex digits, mode 0600) when missing.
caf::expected<std::string> spool_key(const std::string& file) {
  auto fail = [&](const std::string& what) {
    return make_error(errc::storage_error, "the SQL store's mask key " + file + ": " + what);
  };
  int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) {
    unsigned char raw[32];
    if (RAND_bytes(raw, sizeof(raw)) != 1) {
      ::close(fd);
      ::unlink(file.c_str());
      return fail("no random bytes (RAND_bytes)");
    }
    auto text = hex_of(raw, sizeof(raw)) + "\n";
    bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size())
              && ::fsync(fd) == 0;
    ::close(fd);
    if (!ok) {
      ::unlink(file.c_str());
      return fail(std::string{"cannot write it: "} + std::strerror(errno));
    }
  } else if (errno != EEXIST) {
    return fail(std::string{"cannot make it: "} + std::strerror(errno));
  }
  fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return fail(std::string{"cannot read it: "} + std::strerror(errno));
  char buf[80];
  auto n = ::read(fd, buf, sizeof(buf));
  ::close(fd);
  std::string key{buf, n > 0 ? static_cast<size_t>(n) : 0};
  while (!key.empty() && (key.back() == '\n' || key.back() == '\r'))
    key.pop_back();
  bool hex = key.size() == 64;
  for (char c : key)
    hex = hex && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
  if (!hex)
    return fail("it must hold 64 hex digits (delete it to make a new key; masks made before "
                "then no longer match new ones)");
  return key;
}

} // namespace

caf::expected<storage::spool_privacy> spool_privacy_of(const procedure_registry& procs,
                                                       const std::string& log_dir) {
  storage::spool_privacy p;
  for (auto& name : procs.names()) {
    auto* def = procs.find(name);
    if (!def->opts.private_args.empty())
      p.args[name].insert(def->opts.private_args.begin(), def->opts.private_args.end());
    if (!def->opts.private_result.empty())
      p.results[name].insert(def->opts.private_result.begin(), def->opts.private_result.end());
  }
  for (auto& t : procs.tables()) {
    if (!t.private_fields.empty())
      p.fields[t.name].insert(t.private_fields.begin(), t.private_fields.end());
    if (t.private_keys)
      p.keys.insert(t.name);
  }
  if (p.empty())
    return p;
  auto key = spool_key(log_dir + "/" + spool_key_file);
  if (!key)
    return std::move(key.error());
  p.mask = [key = std::move(*key)](std::string_view value) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(value.data()), value.size(), md, &len);
    return "[private:" + hex_of(md, 12) + "]";
  };
  return p;
}

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

spooler::spooler(std::string log_dir, std::string file, std::string node,
                 std::shared_ptr<const procedure_registry> procs)
  : node_(std::move(node)), procs_(std::move(procs)) {
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
      if (procs_) {
        // Nothing is spooled in clear that the apps mark private: no mask, no pass.
        auto privacy = spool_privacy_of(*procs_, log_dir);
        auto err = privacy ? (*opened)->set_privacy(std::move(*privacy)) : privacy.error();
        if (err) {
          std::cerr << "comb: spooler: " << describe(err) << "\n";
          note(describe(err), began, 0);
          return;
        }
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
