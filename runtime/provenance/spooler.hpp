// comb::runtime::spooler: copies a node's provenance log into an SQL store (a SQLite file or
// a PostgreSQL database, storage/sql_store.hpp) on a thread of its own, once a second and once more when it stops, so that the log's records
// can be queried in SQL shortly after they commit. Owned by the node; the destructor stops the
// thread after a last pass. It checks, when it starts and every 30 s, that the log still holds
// the record the store spooled last (check_spooled) and says on stderr when it does not: a
// spooled lsn that the log lost, or that it holds another record at, is never spooled again.
// Not copyable.
#pragma once

#include "storage/sql_store.hpp"

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace comb::runtime {

class procedure_registry;

/// The file in a log folder that holds the key of the store's masks (spool_privacy_of).
inline constexpr const char* spool_key_file = "spool.key";

/// What the SQL store must show masked, from the private arguments, results, fields and keys
/// `procs` declares (procedure_options::private_args, table_decl::private_fields), and the
/// mask: "[private:" + 24 hex digits of HMAC-SHA256 under the key in `log_dir`/spool.key
/// (32 random bytes, made with mode 0600 when missing) + "]". A keyed hash rather than one
/// fixed marker: a masked row key stays the primary key of its current-state row, and equal
/// values stay equal, so the provenance questions still join a session's calls to its row;
/// keyed, so that a reader of the store cannot test guesses (a password hash, whose salt the
/// store shows, would fall to a dictionary through a plain hash). The key sits with the log,
/// which holds the values themselves: whoever may read it may read them anyway. Errors: the
/// key cannot be read or made (errc::storage_error naming the file).
caf::expected<storage::spool_privacy> spool_privacy_of(const procedure_registry& procs,
                                                       const std::string& log_dir);

/// Checks that the log in `log_dir` holds the record `store` spooled last, the same one (same
/// execution, time and kind): errc::corrupt_data naming the lsn when the log ends before it,
/// or holds another record there (an lsn handed out twice); either way the store will not
/// spool what the log gets at lsns it has passed. Nothing spooled yet is fine. `node` names
/// whose log it is (a cluster's store holds several nodes' records, each with its own lsns).
caf::error check_spooled(storage::sql_store& store, const std::string& log_dir,
                         const std::string& node = "");

class spooler {
public:
  /// Spools `log_dir`, node `node`'s log, into `target` (a SQLite file or a postgresql://
  /// URL) once a second. Errors (the store cannot be opened, a pass fails) are written to
  /// stderr with their cause, and the spooler tries again on its next pass. The nodes of a
  /// cluster each spool their own log into one store (a PostgreSQL URL across hosts, or a
  /// SQLite file on one host, whose writers take turns): rows are keyed by (node, lsn).
  /// With `procs`, the store shows what they mark private masked (spool_privacy_of); a pass
  /// that cannot make the mask spools nothing and says why.
  spooler(std::string log_dir, std::string target, std::string node = "",
          std::shared_ptr<const procedure_registry> procs = nullptr);
  ~spooler();
  spooler(const spooler&) = delete;
  spooler& operator=(const spooler&) = delete;

  /// Where the spooler stands, for `comb cluster status` (thread-safe).
  struct status {
    /// The last lsn of this node the store holds (0: none yet, or no pass has succeeded).
    uint64_t spooled_lsn = 0;
    /// When the last successful pass began (it spooled everything the log held then); the
    /// epoch when none has.
    std::chrono::system_clock::time_point last_pass{};
    /// The last pass's error ("" when it succeeded).
    std::string error;
  };
  status current() const;

private:
  void run(const std::string& log_dir, const std::string& target);

  mutable std::mutex mtx_;
  std::condition_variable cv_;
  status status_;
  bool stop_ = false;
  std::string node_;
  std::shared_ptr<const procedure_registry> procs_;
  std::thread thread_;
};

} // namespace comb::runtime
