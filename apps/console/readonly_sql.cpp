// Read-only SQL for the console: authorizer, statement check, time limit.
#include "apps/console/readonly_sql.hpp"

#include "base/errc.hpp"

#include <sqlite3.h>

#include <cctype>
#include <cmath>
#include <cstring>
#include <set>

namespace comb::apps::console {

namespace {

// PRAGMAs that only read, with or without an argument (the argument names a table or index).
const std::set<std::string> read_pragmas_with_arg = {
  "table_info",       "table_xinfo", "index_list",    "index_info",     "index_xinfo",
  "foreign_key_list", "table_list",  "function_list", "collation_list", "compile_options",
  "database_list",    "pragma_list", "module_list"};
// PRAGMAs that read without an argument and write with one (user_version = 3).
const std::set<std::string> read_pragmas_no_arg = {
  "user_version",   "schema_version", "application_id", "page_size",   "page_count",
  "freelist_count", "encoding",       "journal_mode",   "auto_vacuum", "data_version"};

const char* action_name(int action) {
  switch (action) {
  case SQLITE_INSERT:
    return "INSERT";
  case SQLITE_UPDATE:
    return "UPDATE";
  case SQLITE_DELETE:
    return "DELETE";
  case SQLITE_CREATE_INDEX:
  case SQLITE_CREATE_TEMP_INDEX:
    return "CREATE INDEX";
  case SQLITE_CREATE_TABLE:
  case SQLITE_CREATE_TEMP_TABLE:
    return "CREATE TABLE";
  case SQLITE_CREATE_TRIGGER:
  case SQLITE_CREATE_TEMP_TRIGGER:
    return "CREATE TRIGGER";
  case SQLITE_CREATE_VIEW:
  case SQLITE_CREATE_TEMP_VIEW:
    return "CREATE VIEW";
  case SQLITE_CREATE_VTABLE:
    return "CREATE VIRTUAL TABLE";
  case SQLITE_DROP_INDEX:
  case SQLITE_DROP_TEMP_INDEX:
    return "DROP INDEX";
  case SQLITE_DROP_TABLE:
  case SQLITE_DROP_TEMP_TABLE:
    return "DROP TABLE";
  case SQLITE_DROP_TRIGGER:
  case SQLITE_DROP_TEMP_TRIGGER:
    return "DROP TRIGGER";
  case SQLITE_DROP_VIEW:
  case SQLITE_DROP_TEMP_VIEW:
    return "DROP VIEW";
  case SQLITE_DROP_VTABLE:
    return "DROP VIRTUAL TABLE";
  case SQLITE_ALTER_TABLE:
    return "ALTER TABLE";
  case SQLITE_ATTACH:
    return "ATTACH";
  case SQLITE_DETACH:
    return "DETACH";
  case SQLITE_TRANSACTION:
    return "a transaction statement (BEGIN/COMMIT/ROLLBACK)";
  case SQLITE_SAVEPOINT:
    return "SAVEPOINT";
  case SQLITE_REINDEX:
    return "REINDEX";
  case SQLITE_ANALYZE:
    return "ANALYZE";
  case SQLITE_PRAGMA:
    return "PRAGMA";
  default:
    return "this statement";
  }
}

nlohmann::json column_value(sqlite3_stmt* st, int i) {
  switch (sqlite3_column_type(st, i)) {
  case SQLITE_INTEGER: {
    auto v = sqlite3_column_int64(st, i);
    // Past 2^53 a browser's number loses digits (ts_ns, ids): send those as text.
    if (v > (int64_t{1} << 53) || v < -(int64_t{1} << 53))
      return std::to_string(v);
    return v;
  }
  case SQLITE_FLOAT: {
    auto v = sqlite3_column_double(st, i);
    if (!std::isfinite(v))
      return std::to_string(v);
    return v;
  }
  case SQLITE_TEXT:
    return std::string(reinterpret_cast<const char*>(sqlite3_column_text(st, i)),
                       static_cast<size_t>(sqlite3_column_bytes(st, i)));
  case SQLITE_BLOB: {
    auto n = sqlite3_column_bytes(st, i);
    auto p = static_cast<const unsigned char*>(sqlite3_column_blob(st, i));
    static const char* hex = "0123456789abcdef";
    std::string out = "[blob " + std::to_string(n) + " bytes] ";
    for (int k = 0; k < n && k < 64; ++k) {
      out += hex[p[k] >> 4];
      out += hex[p[k] & 15];
    }
    return out;
  }
  default:
    return nullptr;
  }
}

caf::error bind(sqlite3_stmt* st, const nlohmann::json& params) {
  int n = sqlite3_bind_parameter_count(st);
  if (!params.is_array() || static_cast<int>(params.size()) != n)
    return make_error(errc::invalid_argument,
                      "query takes " + std::to_string(n) + " parameters, got "
                        + std::to_string(params.is_array() ? params.size() : 0));
  for (int i = 0; i < n; ++i) {
    auto& p = params[static_cast<size_t>(i)];
    int rc = SQLITE_OK;
    if (p.is_string()) {
      auto& s = p.get_ref<const std::string&>();
      rc = sqlite3_bind_text(st, i + 1, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
    } else if (p.is_number_integer()) {
      rc = sqlite3_bind_int64(st, i + 1, p.get<int64_t>());
    } else if (p.is_number()) {
      rc = sqlite3_bind_double(st, i + 1, p.get<double>());
    } else if (p.is_boolean()) {
      rc = sqlite3_bind_int(st, i + 1, p.get<bool>() ? 1 : 0);
    } else if (p.is_null()) {
      rc = sqlite3_bind_null(st, i + 1);
    } else {
      return make_error(errc::invalid_argument,
                        "parameter " + std::to_string(i + 1) + " is neither text nor a number");
    }
    if (rc != SQLITE_OK)
      return make_error(errc::invalid_argument, "cannot bind parameter " + std::to_string(i + 1));
  }
  return {};
}

bool is_schema_table(const char* name) {
  return std::strcmp(name, "sqlite_master") == 0 || std::strcmp(name, "sqlite_schema") == 0
         || std::strcmp(name, "sqlite_temp_master") == 0
         || std::strcmp(name, "sqlite_temp_schema") == 0;
}

} // namespace

bool only_comments(const std::string& rest) {
  size_t i = 0, n = rest.size();
  while (i < n) {
    char c = rest[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' || c == ';') {
      ++i;
    } else if (c == '-' && i + 1 < n && rest[i + 1] == '-') {
      while (i < n && rest[i] != '\n')
        ++i;
    } else if (c == '/' && i + 1 < n && rest[i + 1] == '*') {
      auto end = rest.find("*/", i + 2);
      if (end == std::string::npos)
        return true; // an unterminated comment runs to the end: SQLite ignores it too
      i = end + 2;
    } else {
      return false;
    }
  }
  return true;
}

caf::expected<std::unique_ptr<readonly_db>> readonly_db::open(const std::string& file) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return make_error(rc == SQLITE_CANTOPEN ? errc::not_found : errc::storage_error,
                      "cannot open the SQL store " + file + " read-only: " + msg);
  }
  std::unique_ptr<readonly_db> self(new readonly_db(db));
  sqlite3_busy_timeout(db, 2000);
  // Belt and braces beside the authorizer: no attached files, bounded values and SQL text,
  // no extension loading, no trust in functions named by the schema.
  sqlite3_limit(db, SQLITE_LIMIT_ATTACHED, 0);
  sqlite3_limit(db, SQLITE_LIMIT_LENGTH, 16 << 20);
  sqlite3_limit(db, SQLITE_LIMIT_SQL_LENGTH, 100000);
  sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
  sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, nullptr);
  sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, nullptr);
  if (sqlite3_exec(db, "PRAGMA query_only = 1", nullptr, nullptr, nullptr) != SQLITE_OK)
    return make_error(errc::storage_error, "cannot make the connection to " + file
                                             + " query-only: " + sqlite3_errmsg(db));
  sqlite3_set_authorizer(db, &readonly_db::authorize, self.get());
  sqlite3_progress_handler(db, 1000, &readonly_db::progress, self.get());
  return self;
}

readonly_db::~readonly_db() {
  sqlite3_close(db_);
}

int readonly_db::authorize(void* p, int action, const char* a, const char* b, const char*,
                           const char*) {
  auto* self = static_cast<readonly_db*>(p);
  switch (action) {
  case SQLITE_SELECT:
  case SQLITE_READ:
  case SQLITE_FUNCTION:
  case SQLITE_RECURSIVE:
    return SQLITE_OK;
  case SQLITE_PRAGMA: {
    std::string name = a ? a : "";
    for (auto& c : name)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (read_pragmas_with_arg.count(name) || (read_pragmas_no_arg.count(name) && !b))
      return SQLITE_OK;
    self->refusal_ = "the console's SQL is read-only: PRAGMA " + name
                     + (b ? " = " + std::string(b) : std::string()) + " is refused";
    return SQLITE_DENY;
  }
  case SQLITE_INSERT:
  case SQLITE_UPDATE:
  case SQLITE_DELETE:
    // SQLite itself asks for these on the schema table while it declares a table-valued
    // PRAGMA or prepares DDL; the DDL's own action is refused below, and the file is
    // read-only and query_only besides.
    if (a && is_schema_table(a))
      return SQLITE_OK;
    [[fallthrough]];
  default: {
    std::string what = action_name(action);
    std::string target;
    if ((action == SQLITE_INSERT || action == SQLITE_UPDATE || action == SQLITE_DELETE
         || action == SQLITE_DROP_TABLE || action == SQLITE_ALTER_TABLE)
        && a)
      target = std::string(" on ") + (action == SQLITE_ALTER_TABLE && b ? b : a);
    else if (action == SQLITE_ATTACH && a)
      target = std::string(" of '") + a + "'";
    self->refusal_ = "the console's SQL is read-only: " + what + target
                     + " is refused (only SELECT, WITH and read-only PRAGMAs run here)";
    return SQLITE_DENY;
  }
  }
}

int readonly_db::progress(void* p) {
  auto* self = static_cast<readonly_db*>(p);
  if (self->deadline_ != std::chrono::steady_clock::time_point{}
      && std::chrono::steady_clock::now() > self->deadline_) {
    self->timed_out_ = true;
    return 1;
  }
  return 0;
}

caf::expected<query_result> readonly_db::run(const std::string& sql, const nlohmann::json& params,
                                             const query_limits& limits) {
  refusal_.clear();
  timed_out_ = false;
  auto start = std::chrono::steady_clock::now();
  deadline_ = start + limits.time;
  auto limit_text = [&] {
    return "the query was stopped: it ran past the time limit of "
           + std::to_string(limits.time.count()) + " ms";
  };
  sqlite3_stmt* st = nullptr;
  const char* tail = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql.c_str(), static_cast<int>(sql.size()), &st, &tail);
  std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> guard(st, &sqlite3_finalize);
  if (rc != SQLITE_OK) {
    if (!refusal_.empty())
      return make_error(errc::permission_denied, refusal_);
    if (timed_out_)
      return make_error(errc::timeout, limit_text());
    return make_error(errc::invalid_argument, sqlite3_errmsg(db_));
  }
  if (!st)
    return make_error(errc::invalid_argument, "no SQL statement to run");
  std::string rest = tail ? std::string(tail) : std::string();
  if (!only_comments(rest))
    return make_error(errc::invalid_argument,
                      "one statement at a time: there is more SQL after the first statement ('"
                        + rest.substr(0, 80) + "')");
  if (!sqlite3_stmt_readonly(st))
    return make_error(errc::permission_denied,
                      "the console's SQL is read-only: this statement would write");
  if (auto err = bind(st, params))
    return err;
  query_result out;
  int n = sqlite3_column_count(st);
  for (int i = 0; i < n; ++i)
    out.columns.emplace_back(sqlite3_column_name(st, i));
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (out.rows.size() >= limits.max_rows) {
      out.truncated = true;
      break;
    }
    auto row = nlohmann::json::array();
    for (int i = 0; i < n; ++i)
      row.push_back(column_value(st, i));
    out.rows.push_back(std::move(row));
  }
  deadline_ = {};
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
    if (timed_out_ || rc == SQLITE_INTERRUPT)
      return make_error(errc::timeout, limit_text());
    if (!refusal_.empty())
      return make_error(errc::permission_denied, refusal_);
    return make_error(errc::invalid_argument, sqlite3_errmsg(db_));
  }
  out.elapsed_ms =
    std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return out;
}

bool readonly_db::has_table(const std::string& table) {
  auto r = run("SELECT 1 FROM sqlite_master WHERE type IN ('table','view') AND name = ?",
               nlohmann::json::array({table}));
  return r && !r->rows.empty();
}

std::vector<std::string> readonly_db::columns(const std::string& table) {
  std::vector<std::string> out;
  auto r = run("SELECT name FROM pragma_table_info(?)", nlohmann::json::array({table}));
  if (r)
    for (auto& row : r->rows)
      out.push_back(row[0].get<std::string>());
  return out;
}

} // namespace comb::apps::console
