#include "storage/sqlite_store.hpp"

#include "base/errc.hpp"

#include <sqlite3.h>

#include <unordered_map>

namespace comb::storage {

namespace {

std::string quote(const std::string& ident) {
  std::string q = "\"";
  for (char c : ident) {
    if (c == '"')
      q += '"';
    q += c;
  }
  return q + "\"";
}

void bind_text(sqlite3_stmt* s, int i, const std::string& v) {
  sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
}

void bind_json(sqlite3_stmt* s, int i, const nlohmann::json& v) {
  if (v.is_null())
    sqlite3_bind_null(s, i);
  else if (v.is_boolean())
    sqlite3_bind_int(s, i, v.get<bool>() ? 1 : 0);
  else if (v.is_number_unsigned())
    sqlite3_bind_int64(s, i, static_cast<sqlite3_int64>(v.get<uint64_t>()));
  else if (v.is_number_integer())
    sqlite3_bind_int64(s, i, v.get<int64_t>());
  else if (v.is_number_float())
    sqlite3_bind_double(s, i, v.get<double>());
  else if (v.is_string())
    bind_text(s, i, v.get_ref<const std::string&>());
  else
    bind_text(s, i, v.dump());
}

class sqlite_store final : public sql_store {
public:
  sqlite_store(sqlite3* db, std::string file) : db_(db), file_(std::move(file)) {}
  ~sqlite_store() override {
    for (auto& [sql, s] : cache_)
      sqlite3_finalize(s);
    sqlite3_close(db_);
  }

  const char* backend() const override { return "sqlite"; }

  caf::error init() { return create_schema(); }

  caf::expected<nlohmann::json> query(const std::string& sql,
                                      const std::vector<std::string>& params) override {
    sqlite3_stmt* s = nullptr;
    const char* tail = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, &tail) != SQLITE_OK)
      return error("invalid SQL");
    struct finalize {
      sqlite3_stmt* s;
      ~finalize() { sqlite3_finalize(s); }
    } guard{s};
    if (!s) // only blanks or comments: SQLite prepares nothing and stepping it fails
      return make_error(errc::invalid_argument, "invalid SQL: the query holds no statement");
    // One statement: SQLite would silently ignore what follows the first.
    if (tail && *tail) {
      sqlite3_stmt* next = nullptr;
      if (sqlite3_prepare_v2(db_, tail, -1, &next, nullptr) != SQLITE_OK || next) {
        sqlite3_finalize(next);
        return make_error(errc::invalid_argument,
                          "invalid SQL: one statement at a time; more SQL follows the first: '"
                            + std::string{tail}.substr(0, 60) + "'");
      }
    }
    for (size_t i = 0; i < params.size(); ++i)
      bind_text(s, static_cast<int>(i + 1), params[i]);
    auto rows = nlohmann::json::array();
    for (;;) {
      int rc = sqlite3_step(s);
      if (rc == SQLITE_DONE)
        break;
      if (rc != SQLITE_ROW)
        return error("query failed");
      nlohmann::json row = nlohmann::json::object();
      for (int c = 0; c < sqlite3_column_count(s); ++c) {
        std::string name = sqlite3_column_name(s, c);
        switch (sqlite3_column_type(s, c)) {
        case SQLITE_INTEGER:
          row[name] = sqlite3_column_int64(s, c);
          break;
        case SQLITE_FLOAT:
          row[name] = sqlite3_column_double(s, c);
          break;
        case SQLITE_NULL:
          row[name] = nullptr;
          break;
        default:
          row[name] = std::string{reinterpret_cast<const char*>(sqlite3_column_text(s, c)),
                                  static_cast<size_t>(sqlite3_column_bytes(s, c))};
        }
      }
      rows.push_back(std::move(row));
    }
    return rows;
  }

protected:
  caf::error exec(const std::string& sql) override {
    char* msg = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &msg) != SQLITE_OK) {
      std::string m = msg ? msg : "?";
      sqlite3_free(msg);
      return make_error(errc::invalid_argument, file_ + ": SQL error: " + m);
    }
    return {};
  }

  caf::error write(const std::string& sql, const std::vector<nlohmann::json>& params) override {
    // The spool writes a handful of statement shapes many times: each is prepared once.
    auto& s = cache_[sql];
    if (!s && sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) {
      cache_.erase(sql);
      return error("spool");
    }
    for (size_t i = 0; i < params.size(); ++i)
      bind_json(s, static_cast<int>(i + 1), params[i]);
    caf::error err;
    if (sqlite3_step(s) != SQLITE_DONE)
      err = error("spool");
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return err;
  }

  caf::error append_row(const std::string& into,
                        const std::vector<nlohmann::json>& values) override {
    return write("INSERT INTO " + into + " VALUES (" + placeholders(values.size())
                   + ") ON CONFLICT DO NOTHING",
                 values);
  }

  caf::error upsert_row(const std::string& into, const std::string& set,
                        const std::vector<nlohmann::json>& values) override {
    return write("INSERT INTO " + into + " VALUES (" + placeholders(values.size())
                   + ") ON CONFLICT(row_key) DO UPDATE SET " + set,
                 values);
  }

  caf::error begin() override { return exec("BEGIN IMMEDIATE"); }

  caf::error commit() override {
    if (auto err = exec("COMMIT"))
      return rollback(err);
    return {};
  }

  caf::error rollback(const caf::error& cause) override {
    // Some failures (SQLITE_FULL, SQLITE_IOERR) roll the transaction back by themselves; a
    // ROLLBACK then fails for want of a transaction, which means nothing. One that fails with
    // the transaction still open leaves the store stuck in it: the caller hears of both.
    if (auto rb = exec("ROLLBACK"); rb && !sqlite3_get_autocommit(db_))
      return make_error(errc::storage_error, "spool failed (" + describe(cause)
                                               + "), then ROLLBACK failed with the "
                                                 "transaction open ("
                                               + describe(rb) + ")");
    return cause;
  }

  caf::expected<std::set<std::string>> columns_of(const std::string& table) override {
    auto rows = query("SELECT name FROM pragma_table_info(?1)", {table});
    if (!rows)
      return std::move(rows.error());
    std::set<std::string> out;
    for (auto& r : *rows)
      out.insert(r["name"].get<std::string>());
    return out;
  }

  caf::error retype_column(const std::string& table, const std::string& column,
                           const std::string& type, const std::string& index) override {
    // SQLite keeps any value in any column, but a column's declared type still converts what
    // it receives (text '5' in an INTEGER column is 5), so the column is rebuilt with the new
    // type, its values cast, as PostgreSQL's ALTER COLUMN ... TYPE does.
    auto t = quote(table), c = quote(column), tmp = quote(column + "__comb_retype");
    std::string sql;
    if (!index.empty())
      sql += "DROP INDEX IF EXISTS " + quote(index) + ";";
    sql += "ALTER TABLE " + t + " ADD COLUMN " + tmp + " " + type + ";";
    sql += "UPDATE " + t + " SET " + tmp + " = CAST(" + c + " AS " + type + ");";
    sql += "ALTER TABLE " + t + " DROP COLUMN " + c + ";";
    sql += "ALTER TABLE " + t + " RENAME COLUMN " + tmp + " TO " + c + ";";
    if (!index.empty())
      sql += "CREATE INDEX IF NOT EXISTS " + quote(index) + " ON " + t + "(" + c + ");";
    // Statements prepared against the old column are prepared again when next used.
    return exec(sql);
  }

private:
  static std::string placeholders(size_t n) {
    std::string qs;
    for (size_t i = 1; i <= n; ++i)
      qs += (i > 1 ? ",?" : "?") + std::to_string(i);
    return qs;
  }

  caf::error error(const std::string& what) {
    return make_error(errc::invalid_argument, what + ": " + sqlite3_errmsg(db_));
  }

  sqlite3* db_;
  std::string file_;
  std::unordered_map<std::string, sqlite3_stmt*> cache_;
};

} // namespace

caf::expected<std::unique_ptr<sql_store>> open_sqlite_store(const std::string& file,
                                                            bool read_only) {
  sqlite3* db = nullptr;
  int flags = read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  if (sqlite3_open_v2(file.c_str(), &db, flags, nullptr) != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return make_error(errc::storage_error, file + ": cannot open SQL store: " + msg);
  }
  // Several nodes of a cluster on one host spool into one file: a writer waits its turn.
  sqlite3_busy_timeout(db, 15000);
  auto self = std::make_unique<sqlite_store>(db, file);
  // SQLite opens any file lazily: one that is not a database fails at the first statement,
  // which would read as "invalid SQL: file is not a database".
  if (sqlite3_exec(db, "SELECT 1 FROM sqlite_master LIMIT 1", nullptr, nullptr, nullptr)
      == SQLITE_NOTADB)
    return make_error(errc::storage_error,
                      file + ": not an SQLite database (" + sqlite3_errmsg(db) + ")");
  if (!read_only) {
    if (auto err = self->query("PRAGMA journal_mode=WAL", {}); !err)
      return std::move(err.error());
    if (auto err = self->query("PRAGMA synchronous=NORMAL", {}); !err)
      return std::move(err.error());
    if (auto err = self->init())
      return err;
  }
  return std::unique_ptr<sql_store>{std::move(self)};
}

} // namespace comb::storage
