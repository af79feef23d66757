#include "storage/pg_store.hpp"

#include "base/errc.hpp"

#include <libpq-fe.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <set>

namespace comb::storage {

namespace {

// Type oids (PostgreSQL's catalog/pg_type.h; stable across versions).
constexpr Oid bool_oid = 16, int8_oid = 20, int2_oid = 21, int4_oid = 23, oid_oid = 26,
              float4_oid = 700, float8_oid = 701, numeric_oid = 1700;

// The shared dialect's types in PostgreSQL: INTEGER and REAL are 32 bits there.
std::string pg_types(const std::string& sql) {
  std::string out;
  bool in_quote = false, in_ident = false;
  for (size_t i = 0; i < sql.size();) {
    char c = sql[i];
    if (!in_ident && c == '\'')
      in_quote = !in_quote;
    if (!in_quote && c == '"')
      in_ident = !in_ident;
    auto word = [&](const char* w) {
      size_t n = std::char_traits<char>::length(w);
      return !in_quote && !in_ident && sql.compare(i, n, w) == 0
             && (i == 0 || !std::isalnum(static_cast<unsigned char>(sql[i - 1])))
             && (i + n == sql.size() || !std::isalnum(static_cast<unsigned char>(sql[i + n])));
    };
    if (word("INTEGER")) {
      out += "BIGINT";
      i += 7;
    } else if (word("REAL")) {
      out += "DOUBLE PRECISION";
      i += 4;
    } else {
      out += c;
      ++i;
    }
  }
  return out;
}

std::string literal(const nlohmann::json& v) {
  if (v.is_null())
    return "NULL";
  if (v.is_boolean())
    return v.get<bool>() ? "1" : "0";
  if (v.is_number_unsigned())
    return std::to_string(static_cast<int64_t>(v.get<uint64_t>()));
  if (v.is_number_integer())
    return std::to_string(v.get<int64_t>());
  if (v.is_number_float()) {
    auto d = v.get<double>();
    if (!std::isfinite(d))
      return "NULL";
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.17g", d);
    return std::string{"CAST('"} + buf + "' AS DOUBLE PRECISION)";
  }
  // Text (valid UTF-8 without NUL: sql_store cleans it): with standard_conforming_strings
  // on, only the quote needs doubling.
  const std::string& s = v.is_string() ? v.get_ref<const std::string&>() : v.dump();
  std::string out = "'";
  out.reserve(s.size() + 2);
  for (char c : s) {
    if (c == '\'')
      out += '\'';
    out += c;
  }
  return out + "'";
}

// Replaces ?N outside quotes with what `param(N)` gives.
template <class F>
std::string placeholders(const std::string& sql, F&& param) {
  std::string out;
  out.reserve(sql.size() + 64);
  bool in_quote = false, in_ident = false;
  for (size_t i = 0; i < sql.size(); ++i) {
    char c = sql[i];
    if (!in_ident && c == '\'')
      in_quote = !in_quote;
    if (!in_quote && c == '"')
      in_ident = !in_ident;
    if (c == '?' && !in_quote && !in_ident && i + 1 < sql.size()
        && std::isdigit(static_cast<unsigned char>(sql[i + 1]))) {
      size_t n = 0;
      while (i + 1 < sql.size() && std::isdigit(static_cast<unsigned char>(sql[i + 1])))
        n = n * 10 + static_cast<size_t>(sql[++i] - '0');
      out += param(n);
    } else {
      out += c;
    }
  }
  return out;
}

nlohmann::json cell(const PGresult* res, int row, int col) {
  if (PQgetisnull(res, row, col))
    return nullptr;
  const char* v = PQgetvalue(res, row, col);
  switch (PQftype(res, col)) {
  case int2_oid:
  case int4_oid:
  case int8_oid:
  case oid_oid:
    return static_cast<int64_t>(std::strtoll(v, nullptr, 10));
  case bool_oid: // SQLite has no booleans: 1 and 0 there
    return v[0] == 't' ? 1 : 0;
  case float4_oid:
  case float8_oid:
    return std::strtod(v, nullptr);
  case numeric_oid: {
    // SUM and AVG give numeric: an integer when it is one, as SQLite would.
    std::string s = v;
    if (s.find_first_of(".eEN") == std::string::npos) {
      errno = 0;
      auto n = std::strtoll(v, nullptr, 10);
      if (errno == 0)
        return static_cast<int64_t>(n);
    }
    return std::strtod(v, nullptr);
  }
  default:
    return std::string{v, static_cast<size_t>(PQgetlength(res, row, col))};
  }
}

struct result {
  PGresult* r;
  ~result() { PQclear(r); }
};

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
    s.pop_back();
  return s;
}

class pg_store final : public sql_store {
public:
  pg_store(PGconn* conn, std::string url, bool read_only)
    : conn_(conn), url_(display(url)), read_only_(read_only) {}
  ~pg_store() override { PQfinish(conn_); }

  const char* backend() const override { return "postgresql"; }

  caf::error init() {
    if (auto err = settings())
      return err;
    if (read_only_)
      return {};
    if (auto err = create_schema())
      return err;
    return flush();
  }

  caf::expected<nlohmann::json> query(const std::string& sql,
                                      const std::vector<std::string>& params) override {
    if (!in_txn_)
      if (auto err = reconnect_if_lost())
        return err;
    if (auto err = flush())
      return err;
    auto text = placeholders(sql, [](size_t n) { return "$" + std::to_string(n); });
    std::vector<const char*> values;
    for (auto& p : params)
      values.push_back(p.c_str());
    // A read-only store's query cannot write: it runs in a READ ONLY transaction that is
    // rolled back, whatever the statement tried.
    bool wrap = read_only_ && !in_txn_;
    if (wrap)
      if (auto err = run("BEGIN READ ONLY"))
        return err;
    result res{PQexecParams(conn_, text.c_str(), static_cast<int>(values.size()), nullptr,
                            values.data(), nullptr, nullptr, 0)};
    auto st = PQresultStatus(res.r);
    caf::error err;
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
      const char* state = PQresultErrorField(res.r, PG_DIAG_SQLSTATE);
      bool syntax = state && std::string{state}.rfind("42", 0) == 0;
      err = make_error(errc::invalid_argument, std::string{syntax ? "invalid SQL" : "query failed"}
                                                 + ": " + trim(PQresultErrorMessage(res.r)));
    }
    if (wrap)
      if (auto e = run("ROLLBACK"); e && !err)
        err = e;
    if (err)
      return err;
    auto rows = nlohmann::json::array();
    for (int r = 0; r < PQntuples(res.r); ++r) {
      nlohmann::json row = nlohmann::json::object();
      for (int c = 0; c < PQnfields(res.r); ++c)
        row[PQfname(res.r, c)] = cell(res.r, r, c);
      rows.push_back(std::move(row));
    }
    return rows;
  }

protected:
  caf::error exec(const std::string& sql) override { return add(pg_types(sql)); }

  caf::error write(const std::string& sql, const std::vector<nlohmann::json>& params) override {
    return add(placeholders(sql, [&](size_t n) {
      return n >= 1 && n <= params.size() ? literal(params[n - 1]) : std::string{"NULL"};
    }));
  }

  caf::error append_row(const std::string& into,
                        const std::vector<nlohmann::json>& values) override {
    auto& rows = rows_[into];
    if (!rows.empty())
      rows += ',';
    auto t = tuple(values);
    rows += t;
    pending_ += t.size();
    return pending_ >= batch_bytes ? flush() : caf::error{};
  }

  caf::error upsert_row(const std::string& into, const std::string& set,
                        const std::vector<nlohmann::json>& values) override {
    // One multi-row upsert may not touch a row twice: a key seen in the run starts another.
    auto key = values.empty() ? std::string{} : literal(values[0]);
    if (run_.into != into || run_.set != set || run_.keys.count(key)) {
      close_run();
      run_.into = into;
      run_.set = set;
    } else {
      run_.rows += ',';
    }
    auto t = tuple(values);
    run_.rows += t;
    run_.keys.insert(std::move(key));
    pending_ += t.size();
    return pending_ >= batch_bytes ? flush() : caf::error{};
  }

  caf::error begin() override {
    if (auto err = reconnect_if_lost())
      return err;
    if (auto err = run("BEGIN"))
      return err;
    in_txn_ = true;
    // Another spooler of this database waits here until this pass commits.
    if (auto err = run("SELECT last_lsn FROM spool_state WHERE id = 1 FOR UPDATE"))
      return rollback(err);
    return {};
  }

  caf::error commit() override {
    if (auto err = flush())
      return rollback(err);
    if (auto err = run("COMMIT")) {
      in_txn_ = false;
      return err;
    }
    in_txn_ = false;
    return {};
  }

  caf::error rollback(const caf::error& cause) override {
    discard();
    in_txn_ = false;
    if (auto rb = run("ROLLBACK"))
      return make_error(errc::storage_error, "spool failed (" + describe(cause)
                                               + "), then ROLLBACK failed (" + describe(rb) + ")");
    return cause;
  }

  caf::expected<std::set<std::string>> columns_of(const std::string& table) override {
    auto rows = query("SELECT column_name FROM information_schema.columns "
                      "WHERE table_schema = current_schema() AND table_name = ?1",
                      {table});
    if (!rows)
      return std::move(rows.error());
    std::set<std::string> out;
    for (auto& r : *rows)
      out.insert(r["column_name"].get<std::string>());
    return out;
  }

  caf::error retype_column(const std::string& table, const std::string& column,
                           const std::string& type, const std::string&) override {
    auto quote = [](const std::string& ident) {
      std::string q = "\"";
      for (char c : ident) {
        if (c == '"')
          q += '"';
        q += c;
      }
      return q + "\"";
    };
    // PostgreSQL rebuilds the column's index itself.
    return exec("ALTER TABLE " + quote(table) + " ALTER COLUMN " + quote(column) + " TYPE " + type
                + " USING CAST(" + quote(column) + " AS " + type + ")");
  }

private:
  caf::error settings() {
    std::string sql = "SET client_encoding = 'UTF8'; SET standard_conforming_strings = on; "
                      "SET client_min_messages = warning";
    if (read_only_)
      sql += "; SET default_transaction_read_only = on";
    return run(sql);
  }

  // A server restart or a network cut breaks the connection: the next pass or query
  // connects again (a long-running spooler or console keeps working).
  caf::error reconnect_if_lost() {
    if (PQstatus(conn_) == CONNECTION_OK)
      return {};
    PQreset(conn_);
    if (PQstatus(conn_) != CONNECTION_OK)
      return make_error(errc::unavailable, url_ + ": connection lost; connecting again failed: "
                                             + trim(PQerrorMessage(conn_)));
    discard();
    in_txn_ = false;
    return settings();
  }

  // What waits to be sent, as one multi-statement string (one round trip) when it is large,
  // at commit, and before anything reads: the statements in order, then the append-only
  // rows, one multi-row INSERT per target (they depend on nothing but the tables and columns
  // the statements before them create). Consecutive upserts of one table are one multi-row
  // INSERT in the statements' order. A multi-row INSERT's values are each converted to
  // their column's type, so a column widened after a row was queued still takes it.
  // Measured: PostgreSQL's cost per statement grows with the size of the string it comes in
  // (4 MiB: 1.1k records/s; 256 KiB: 2.7k; 64 KiB: 3.0k), so batches stay small.
  static constexpr size_t batch_bytes = 64 << 10;

  static std::string tuple(const std::vector<nlohmann::json>& values) {
    std::string t = "(";
    for (size_t i = 0; i < values.size(); ++i) {
      if (i > 0)
        t += ',';
      t += literal(values[i]);
    }
    return t + ")";
  }

  caf::error add(const std::string& statement) {
    close_run();
    seq_ += statement;
    seq_ += ";\n";
    pending_ += statement.size();
    return pending_ >= batch_bytes ? flush() : caf::error{};
  }

  void close_run() {
    if (run_.into.empty())
      return;
    seq_ += "INSERT INTO " + run_.into + " VALUES " + run_.rows
            + " ON CONFLICT(row_key) DO UPDATE SET " + run_.set + ";\n";
    run_ = {};
  }

  void discard() {
    seq_.clear();
    rows_.clear();
    run_ = {};
    pending_ = 0;
  }

  caf::error flush() {
    close_run();
    auto sql = std::move(seq_);
    for (auto& [into, rows] : rows_)
      sql += "INSERT INTO " + into + " VALUES " + rows + " ON CONFLICT DO NOTHING;\n";
    discard();
    if (sql.empty())
      return {};
    return run(sql);
  }

  caf::error run(const std::string& sql) {
    result res{PQexec(conn_, sql.c_str())};
    auto st = PQresultStatus(res.r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
      return {};
    auto code = PQstatus(conn_) == CONNECTION_BAD ? errc::unavailable : errc::storage_error;
    return make_error(code, url_ + ": " + trim(PQresultErrorMessage(res.r)));
  }

  PGconn* conn_;
  std::string url_;
  bool read_only_;
  bool in_txn_ = false;
  std::string seq_;                         // statements, in order
  std::map<std::string, std::string> rows_; // append-only rows by target: "(...),(...)"
  struct {
    std::string into, set, rows;
    std::set<std::string> keys;
  } run_;              // the open run of upserts
  size_t pending_ = 0; // bytes waiting
};

} // namespace

caf::expected<std::unique_ptr<sql_store>> open_pg_store(const std::string& url, bool read_only) {
  // connect_timeout first: the URL's own setting, expanded from dbname, wins over it.
  const char* keys[] = {"connect_timeout", "dbname", nullptr};
  const char* values[] = {"10", url.c_str(), nullptr};
  PGconn* conn = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (!conn)
    return make_error(errc::unavailable, sql_store::display(url) + ": out of memory");
  if (PQstatus(conn) != CONNECTION_OK) {
    auto msg = trim(PQerrorMessage(conn));
    PQfinish(conn);
    return make_error(errc::unavailable,
                      sql_store::display(url) + ": cannot connect to PostgreSQL: " + msg);
  }
  // Notices ("relation ... already exists, skipping") would go to stderr.
  PQsetNoticeProcessor(
    conn, [](void*, const char*) {}, nullptr);
  auto self = std::make_unique<pg_store>(conn, url, read_only);
  if (auto err = self->init())
    return err;
  return std::unique_ptr<sql_store>{std::move(self)};
}

} // namespace comb::storage
