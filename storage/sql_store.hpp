// comb::storage::sql_store: the SQL analytics store the provenance log is spooled into
// (SQLite). Tables: func_invocations (one row per invocation: execution/transaction id, start
// and end, procedure, role, status, read-only flag, arguments, result), messages, row_events
// (every row change), row_reads (every row read, when the node records reads), one
// `<table>_events` per user table with the row's JSON fields as columns, and spool_state.
// Spooling resumes after the last spooled lsn and inserts with OR IGNORE on the lsn keys, so
// running it again never duplicates rows. One store per thread; not thread-safe.
#pragma once

#include <caf/expected.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

struct sqlite3;

namespace comb::storage {

class sql_store {
public:
  /// Opens (creating) the SQLite file; read_only opens an existing file for queries only.
  static caf::expected<std::unique_ptr<sql_store>> open(const std::string& file,
                                                        bool read_only = false);
  ~sql_store();
  sql_store(const sql_store&) = delete;
  sql_store& operator=(const sql_store&) = delete;

  /// Copies every log record after the last spooled lsn into the tables; returns how many.
  caf::expected<uint64_t> spool(const std::string& log_dir);

  /// Runs one SQL statement with text parameters (?1, ?2, ...); rows as a JSON array of
  /// objects. Invalid SQL gets errc::invalid_argument with SQLite's message.
  caf::expected<nlohmann::json> query(const std::string& sql,
                                      const std::vector<std::string>& params = {});

  /// The last lsn spooled (0 when none).
  uint64_t last_lsn();

  /// The SQLite name of the events table of a Comb table ("bank.accounts" ->
  /// "bank_accounts_events").
  static std::string events_table(const std::string& table);

private:
  explicit sql_store(sqlite3* db) : db_(db) {}
  caf::error exec(const std::string& sql);
  caf::error ensure_events_table(const std::string& table, const nlohmann::json& row);

  sqlite3* db_;
  std::set<std::string> known_tables_;
  std::set<std::string> known_columns_;
};

/// The provenance questions of the paper, as SQL over the store (parameters ?1, ?2, ...).
namespace prov_sql {

/// Q1a. The last writer of table ?1: execution, procedure, role, time.
extern const char* last_writer;
/// Q1b. The table with the most row changes between times ?1 and ?2 (ns).
extern const char* most_updated_table;
/// Q2a. Every row read or written by role ?1 between ?2 and ?3 (ns).
extern const char* rows_of_user;
/// Q2b. Every role that read row ?2 of table ?1.
extern const char* readers_of_row;
/// Q3a. Rows downstream of row ?2 of table ?1: written by transactions that read it, and so on.
extern const char* downstream;
/// Q3b. Rows upstream of row ?2 of table ?1: read by transactions that wrote it, and so on.
extern const char* upstream;

} // namespace prov_sql

} // namespace comb::storage
