// comb::apps::console::readonly_db: a read-only SQLite connection to the SQL store for the
// console's queries and its raw-SQL Search. Four walls: the file is opened with
// SQLITE_OPEN_READONLY and query_only; an authorizer allows only reads (SELECT, reading
// tables, functions, recursive CTEs and a list of read-only PRAGMAs), so writes, schema
// changes, ATTACH, transactions and PRAGMA writes are refused with a message that names
// them; text after the first statement is refused; a progress handler stops a query at its
// time limit. One connection per thread (the server opens one per request); not thread-safe.
#pragma once

#include <caf/expected.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

struct sqlite3;

namespace comb::apps::console {

/// Bounds on one query.
struct query_limits {
  std::chrono::milliseconds time{5000}; ///< stopped (errc::timeout) past this
  size_t max_rows = 1000;               ///< rows returned; `truncated` says there were more
};

/// Rows of one query, as JSON arrays in column order.
struct query_result {
  std::vector<std::string> columns;
  nlohmann::json rows = nlohmann::json::array();
  bool truncated = false;
  double elapsed_ms = 0;
};

class readonly_db {
public:
  /// Opens an existing SQLite file for reading only; a missing file is errc::not_found.
  static caf::expected<std::unique_ptr<readonly_db>> open(const std::string& file);
  ~readonly_db();
  readonly_db(const readonly_db&) = delete;
  readonly_db& operator=(const readonly_db&) = delete;

  /// Runs one statement with `params` bound to its `?` placeholders in order (strings,
  /// numbers, null). Refusals are errc::permission_denied, SQL errors and more than one
  /// statement errc::invalid_argument, the time limit errc::timeout; each names the problem.
  caf::expected<query_result> run(const std::string& sql,
                                  const nlohmann::json& params = nlohmann::json::array(),
                                  const query_limits& limits = {});

  /// True when `table` exists (a table or a view).
  bool has_table(const std::string& table);

  /// The column names of `table` (empty when it does not exist).
  std::vector<std::string> columns(const std::string& table);

  sqlite3* handle() { return db_; }

  /// Why the authorizer refused the last statement (empty when it did not).
  const std::string& refusal() const { return refusal_; }

private:
  explicit readonly_db(sqlite3* db) : db_(db) {}
  static int authorize(void* self, int action, const char* a, const char* b, const char* db,
                       const char* trigger);
  static int progress(void* self);

  sqlite3* db_;
  std::string refusal_;
  std::chrono::steady_clock::time_point deadline_{};
  bool timed_out_ = false;
};

/// True when `rest` holds only whitespace and SQL comments.
bool only_comments(const std::string& rest);

} // namespace comb::apps::console
