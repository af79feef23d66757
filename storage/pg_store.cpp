#include "storage/pg_store.hpp"

#include "base/errc.hpp"

#include <libpq-fe.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

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

// A value as COPY's text format writes it (tab-separated columns, \N for NULL, backslash
// escapes), converted by the column's type as literal()'s text is.
void copy_field(std::string& out, const nlohmann::json& v) {
  if (v.is_null()) {
    out += "\\N";
    return;
  }
  if (v.is_boolean()) {
    out += v.get<bool>() ? '1' : '0';
    return;
  }
  if (v.is_number_unsigned()) {
    out += std::to_string(static_cast<int64_t>(v.get<uint64_t>()));
    return;
  }
  if (v.is_number_integer()) {
    out += std::to_string(v.get<int64_t>());
    return;
  }
  if (v.is_number_float()) {
    auto d = v.get<double>();
    if (!std::isfinite(d)) {
      out += "\\N";
      return;
    }
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.17g", d);
    out += buf;
    return;
  }
  auto dumped = v.is_string() ? std::string{} : v.dump();
  const std::string& text = v.is_string() ? v.get_ref<const std::string&>() : dumped;
  for (char c : text) {
    switch (c) {
    case '\\':
      out += "\\\\";
      break;
    case '\n':
      out += "\\n";
      break;
    case '\r':
      out += "\\r";
      break;
    case '\t':
      out += "\\t";
      break;
    default:
      out += c;
    }
  }
}

// The table of an `into` ("table" or "table"(columns)) and its column list ("*" for all).
std::pair<std::string, std::string> split_into(const std::string& into) {
  size_t at = 0;
  if (!into.empty() && into[0] == '"') { // a quoted name: '(' may only follow its end
    at = 1;
    while (at < into.size() && !(into[at] == '"' && (at + 1 == into.size() || into[at + 1] != '"')))
      at += into[at] == '"' ? 2 : 1;
    ++at;
  }
  auto paren = into.find('(', at);
  if (paren == std::string::npos)
    return {into, "*"};
  auto close = into.rfind(')');
  return {into.substr(0, paren), into.substr(paren + 1, close - paren - 1)};
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
    rows.push_back(values);
    return note(values);
  }

  caf::error upsert_row(const std::string& into, const std::string& set,
                        const std::vector<nlohmann::json>& values) override {
    // One multi-row upsert may not touch a row twice: a key seen in the run starts another.
    auto key = values.empty() ? std::string{} : literal(values[0]);
    if (run_.into != into || run_.set != set || run_.keys.count(key)) {
      close_run();
      run_.into = into;
      run_.set = set;
    }
    run_.rows.push_back(values);
    run_.keys.insert(std::move(key));
    return note(values);
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

  // What waits to be sent goes when it is large, at commit, and before anything reads: the
  // statements in order, then the append-only rows by target (they depend on nothing but the
  // tables and columns the statements before them create). Consecutive upserts of one table
  // are one run, in the statements' order. Statements and small runs travel as SQL text, many
  // in one multi-statement string (one round trip). Measured: PostgreSQL's cost per statement
  // grows with the size of the string it comes in (4 MiB: 1.1k records/s; 256 KiB: 2.7k;
  // 64 KiB: 3.0k), so that text stays small. Runs of at least copy_min_rows rows go through
  // COPY instead, which PostgreSQL takes without parsing a statement per row: into a
  // temporary table made at that point of the sequence (so with the target's columns and
  // types as the statements before it left them), then INSERT ... SELECT with the same ON
  // CONFLICT clause as the text form, so a row already there is still skipped (appends) or
  // replaced (upserts), and the temporary table is dropped. COPY is off when the environment
  // sets COMB_PG_COPY=0 (to compare the two).
  static constexpr size_t batch_bytes = 64 << 10;
  static constexpr size_t copy_bytes = 4 << 20;
  static constexpr size_t copy_min_rows = 32;

  // Read when the store opens.
  static bool copy_from_env() {
    auto* v = std::getenv("COMB_PG_COPY");
    return !(v && std::string{v} == "0");
  }
  bool copy_enabled() const { return copy_; }

  static std::string tuple(const std::vector<nlohmann::json>& values) {
    std::string t = "(";
    for (size_t i = 0; i < values.size(); ++i) {
      if (i > 0)
        t += ',';
      t += literal(values[i]);
    }
    return t + ")";
  }

  // Counts a queued row's bytes (about as sent) and flushes when enough waits.
  caf::error note(const std::vector<nlohmann::json>& values) {
    size_t n = values.size() * 2 + 2;
    for (auto& v : values)
      n += v.is_string() ? v.get_ref<const std::string&>().size() : 8;
    pending_rows_ += n;
    if (pending_rows_ >= (copy_enabled() ? copy_bytes : batch_bytes))
      return flush();
    return pending_ >= batch_bytes ? send_text() : caf::error{};
  }

  caf::error add(const std::string& statement) {
    close_run();
    sql_ += statement;
    sql_ += ";\n";
    pending_ += statement.size();
    return pending_ >= batch_bytes ? send_text() : caf::error{};
  }

  // Sends the SQL text when enough waits. With COPY, the append-only rows wait on (until
  // copy_bytes or commit: each COPY step costs a temporary table and round trips, so it pays
  // only for many rows); without, everything goes, as one batch.
  caf::error send_text() {
    if (!copy_enabled())
      return flush();
    if (failed_)
      return failed_;
    return send_sql();
  }

  // Rows of one target, with the conflict clause, as SQL text or as a COPY step.
  caf::error put_rows(const std::string& into, const std::vector<std::vector<nlohmann::json>>& rows,
                      const std::string& conflict) {
    if (rows.empty())
      return {};
    if (!copy_enabled() || rows.size() < copy_min_rows) {
      std::string sql = "INSERT INTO " + into + " VALUES ";
      for (size_t i = 0; i < rows.size(); ++i) {
        if (i > 0)
          sql += ',';
        sql += tuple(rows[i]);
      }
      sql_ += sql + " " + conflict + ";\n";
      pending_ += sql.size();
      return {};
    }
    auto [table, columns] = split_into(into);
    auto stage = "comb_stage_" + std::to_string(++stages_);
    sql_ += "CREATE TEMP TABLE " + stage + " AS SELECT " + columns + " FROM " + table
            + " WITH NO DATA;\n";
    if (auto err = send_sql())
      return err;
    std::string data;
    for (auto& row : rows) {
      for (size_t i = 0; i < row.size(); ++i) {
        if (i > 0)
          data += '\t';
        copy_field(data, row[i]);
      }
      data += '\n';
    }
    if (auto err = copy_in(stage, data))
      return err;
    // Runs with what follows it, in one round trip.
    sql_ += "INSERT INTO " + into + " SELECT * FROM " + stage + " " + conflict + ";\nDROP TABLE "
            + stage + ";\n";
    return {};
  }

  void close_run() {
    if (run_.into.empty())
      return;
    auto open = std::move(run_);
    run_ = {};
    if (auto err = put_rows(open.into, open.rows, "ON CONFLICT(row_key) DO UPDATE SET " + open.set))
      if (!failed_)
        failed_ = err;
  }

  void discard() {
    sql_.clear();
    rows_.clear();
    run_ = {};
    pending_ = 0;
    pending_rows_ = 0;
    failed_ = caf::error{};
  }

  caf::error flush() {
    close_run();
    for (auto& [into, rows] : rows_)
      if (!failed_)
        if (auto err = put_rows(into, rows, "ON CONFLICT DO NOTHING"))
          failed_ = err;
    auto err = failed_ ? failed_ : send_sql();
    discard();
    return err;
  }

  // Sends the SQL text that waits (one round trip).
  caf::error send_sql() {
    if (sql_.empty())
      return {};
    auto sql = std::move(sql_);
    sql_.clear();
    pending_ = 0;
    return run(sql);
  }

  // COPY `data` (text format) into `table`.
  caf::error copy_in(const std::string& table, const std::string& data) {
    result start{PQexec(conn_, ("COPY " + table + " FROM STDIN").c_str())};
    if (PQresultStatus(start.r) != PGRES_COPY_IN)
      return make_error(PQstatus(conn_) == CONNECTION_BAD ? errc::unavailable : errc::storage_error,
                        url_ + ": COPY: " + trim(PQresultErrorMessage(start.r)));
    bool sent = true;
    for (size_t at = 0; at < data.size() && sent; at += 1 << 20) {
      auto n = std::min(data.size() - at, size_t{1} << 20);
      sent = PQputCopyData(conn_, data.data() + at, static_cast<int>(n)) == 1;
    }
    std::string why;
    if (!sent)
      why = trim(PQerrorMessage(conn_));
    if (PQputCopyEnd(conn_, sent ? nullptr : "sending the rows failed") != 1 && why.empty())
      why = trim(PQerrorMessage(conn_));
    // The COPY's outcome, then nothing (libpq's protocol: read results until null).
    while (PGresult* r = PQgetResult(conn_)) {
      result res{r};
      if (PQresultStatus(r) != PGRES_COMMAND_OK && why.empty())
        why = trim(PQresultErrorMessage(r));
    }
    if (why.empty())
      return {};
    return make_error(PQstatus(conn_) == CONNECTION_BAD ? errc::unavailable : errc::storage_error,
                      url_ + ": COPY into " + table + ": " + why);
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
  std::string sql_; // statements (and small runs) as SQL text, in order
  using row_list = std::vector<std::vector<nlohmann::json>>;
  std::map<std::string, row_list> rows_; // append-only rows by target
  struct {
    std::string into, set;
    row_list rows;
    std::set<std::string> keys;
  } run_;                   // the open run of upserts
  size_t pending_ = 0;      // bytes of SQL text waiting
  size_t pending_rows_ = 0; // bytes of rows waiting
  size_t stages_ = 0;       // temporary tables made (for their names)
  caf::error failed_;       // a COPY step that failed: the pass rolls back
  bool copy_ = copy_from_env();
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
