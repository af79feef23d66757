#include "storage/sql_store.hpp"

#include "base/errc.hpp"
#include "storage/provenance_log.hpp"

#include <sqlite3.h>

namespace comb::storage {

namespace prov_sql {

const char* last_writer = R"(
SELECT e.execution_id, f.procedure, f.role, e.ts_ns, e.row_key, e.op
FROM row_events e JOIN func_invocations f ON f.lsn = e.lsn
WHERE e.table_name = ?1 ORDER BY e.lsn DESC, e.seq DESC LIMIT 1)";

const char* most_updated_table = R"(
SELECT table_name, COUNT(*) AS changes FROM row_events
WHERE ts_ns BETWEEN CAST(?1 AS INTEGER) AND CAST(?2 AS INTEGER)
GROUP BY table_name ORDER BY changes DESC, table_name LIMIT 1)";

const char* rows_of_user = R"(
SELECT 'write' AS access, table_name, row_key, lsn FROM row_events
WHERE role = ?1 AND ts_ns BETWEEN CAST(?2 AS INTEGER) AND CAST(?3 AS INTEGER)
UNION ALL
SELECT 'read' AS access, table_name, row_key, lsn FROM row_reads
WHERE role = ?1 AND ts_ns BETWEEN CAST(?2 AS INTEGER) AND CAST(?3 AS INTEGER)
ORDER BY lsn, access)";

const char* readers_of_row = R"(
SELECT DISTINCT role FROM row_reads WHERE table_name = ?1 AND row_key = ?2 ORDER BY role)";

const char* downstream = R"(
WITH RECURSIVE down(table_name, row_key, depth) AS (
  SELECT ?1, ?2, 0
  UNION
  SELECT w.table_name, w.row_key, d.depth + 1 FROM down d
  JOIN row_reads r ON r.table_name = d.table_name AND r.row_key = d.row_key
  JOIN row_events w ON w.execution_id = r.execution_id
  WHERE d.depth < 16)
SELECT table_name, row_key, MIN(depth) AS hops FROM down WHERE depth > 0
  AND NOT (table_name = ?1 AND row_key = ?2)
GROUP BY table_name, row_key ORDER BY hops, table_name, row_key)";

const char* upstream = R"(
WITH RECURSIVE up(table_name, row_key, depth) AS (
  SELECT ?1, ?2, 0
  UNION
  SELECT r.table_name, r.row_key, u.depth + 1 FROM up u
  JOIN row_events w ON w.table_name = u.table_name AND w.row_key = u.row_key
  JOIN row_reads r ON r.execution_id = w.execution_id
  WHERE u.depth < 16)
SELECT table_name, row_key, MIN(depth) AS hops FROM up WHERE depth > 0
  AND NOT (table_name = ?1 AND row_key = ?2)
GROUP BY table_name, row_key ORDER BY hops, table_name, row_key)";

} // namespace prov_sql

namespace {

constexpr const char* schema = R"(
CREATE TABLE IF NOT EXISTS func_invocations(
  lsn INTEGER PRIMARY KEY, txn_id INTEGER, execution_id INTEGER, parent_id INTEGER,
  procedure TEXT, role TEXT, status TEXT, read_only INTEGER, start_ns INTEGER, end_ns INTEGER,
  partition INTEGER, args TEXT, result TEXT);
CREATE TABLE IF NOT EXISTS messages(
  lsn INTEGER, seq INTEGER, ts_ns INTEGER, kind TEXT, sender TEXT, receiver TEXT,
  execution_id INTEGER, parent_id INTEGER, procedure TEXT, role TEXT, status TEXT, payload TEXT,
  PRIMARY KEY(lsn, seq));
CREATE TABLE IF NOT EXISTS row_events(
  lsn INTEGER, seq INTEGER, table_name TEXT, row_key TEXT, op TEXT, execution_id INTEGER,
  role TEXT, ts_ns INTEGER, value TEXT, PRIMARY KEY(lsn, seq));
CREATE TABLE IF NOT EXISTS row_reads(
  lsn INTEGER, seq INTEGER, table_name TEXT, row_key TEXT, execution_id INTEGER, role TEXT,
  ts_ns INTEGER, PRIMARY KEY(lsn, seq));
CREATE INDEX IF NOT EXISTS row_events_row ON row_events(table_name, row_key);
CREATE INDEX IF NOT EXISTS row_events_exec ON row_events(execution_id);
CREATE INDEX IF NOT EXISTS row_reads_row ON row_reads(table_name, row_key);
CREATE INDEX IF NOT EXISTS row_reads_exec ON row_reads(execution_id);
CREATE TABLE IF NOT EXISTS spool_state(id INTEGER PRIMARY KEY CHECK (id = 1), last_lsn INTEGER);
INSERT OR IGNORE INTO spool_state VALUES (1, 0);
)";

std::string quote(const std::string& ident) {
  std::string q = "\"";
  for (char c : ident) {
    if (c == '"')
      q += '"';
    q += c;
  }
  return q + "\"";
}

// A prepared statement, finalized on scope exit.
struct stmt {
  sqlite3_stmt* s = nullptr;
  ~stmt() { sqlite3_finalize(s); }
};

caf::error sql_error(sqlite3* db, const std::string& what) {
  return make_error(errc::invalid_argument, what + ": " + sqlite3_errmsg(db));
}

void bind_text(sqlite3_stmt* s, int i, const std::string& v) {
  sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
}

void bind_json(sqlite3_stmt* s, int i, const nlohmann::json& v) {
  if (v.is_null())
    sqlite3_bind_null(s, i);
  else if (v.is_boolean())
    sqlite3_bind_int(s, i, v.get<bool>() ? 1 : 0);
  else if (v.is_number_integer())
    sqlite3_bind_int64(s, i, v.get<int64_t>());
  else if (v.is_number_float())
    sqlite3_bind_double(s, i, v.get<double>());
  else if (v.is_string())
    bind_text(s, i, v.get_ref<const std::string&>());
  else
    bind_text(s, i, v.dump());
}

const char* op_name(row_change::op k) {
  switch (k) {
  case row_change::op::insert:
    return "insert";
  case row_change::op::update:
    return "update";
  case row_change::op::del:
    return "delete";
  }
  return "?";
}

nlohmann::json row_json(const row_change& c) {
  if (c.kind == row_change::op::del)
    return nullptr;
  if (!c.is_row)
    return nlohmann::json{{"bytes", c.value.size()}};
  auto j = nlohmann::json::from_msgpack(c.value, true, false);
  return j.is_discarded() ? nlohmann::json{{"bytes", c.value.size()}} : j;
}

} // namespace

std::string sql_store::events_table(const std::string& table) {
  std::string out;
  for (char c : table)
    out += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return out + "_events";
}

caf::expected<std::unique_ptr<sql_store>> sql_store::open(const std::string& file, bool read_only) {
  sqlite3* db = nullptr;
  int flags = read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  if (sqlite3_open_v2(file.c_str(), &db, flags, nullptr) != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return make_error(errc::storage_error, file + ": cannot open SQL store: " + msg);
  }
  sqlite3_busy_timeout(db, 5000);
  std::unique_ptr<sql_store> self{new sql_store(db)};
  if (!read_only) {
    if (auto err = self->exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"))
      return err;
    if (auto err = self->exec(schema))
      return err;
  }
  return self;
}

sql_store::~sql_store() {
  sqlite3_close(db_);
}

caf::error sql_store::exec(const std::string& sql) {
  char* msg = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &msg) != SQLITE_OK) {
    std::string m = msg ? msg : "?";
    sqlite3_free(msg);
    return make_error(errc::invalid_argument, "SQL error: " + m);
  }
  return {};
}

uint64_t sql_store::last_lsn() {
  auto r = query("SELECT last_lsn FROM spool_state WHERE id = 1");
  if (!r || r->empty())
    return 0;
  return (*r)[0]["last_lsn"].get<uint64_t>();
}

caf::error sql_store::ensure_events_table(const std::string& table, const nlohmann::json& row) {
  auto name = events_table(table);
  if (!known_tables_.count(name)) {
    if (auto err = exec("CREATE TABLE IF NOT EXISTS " + quote(name)
                        + "(lsn INTEGER, seq INTEGER, op TEXT, row_key TEXT, execution_id "
                          "INTEGER, role TEXT, ts_ns INTEGER, PRIMARY KEY(lsn, seq))"))
      return err;
    known_tables_.insert(name);
    auto cols = query("SELECT name FROM pragma_table_info(?1)", {name});
    if (cols)
      for (auto& c : *cols)
        known_columns_.insert(name + "." + c["name"].get<std::string>());
  }
  if (row.is_object())
    for (auto& [k, v] : row.items()) {
      auto key = name + "." + k;
      if (known_columns_.count(key))
        continue;
      if (auto err = exec("ALTER TABLE " + quote(name) + " ADD COLUMN " + quote(k)))
        return err;
      known_columns_.insert(key);
    }
  return {};
}

caf::expected<uint64_t> sql_store::spool(const std::string& log_dir) {
  auto reader = log_reader::open(log_dir);
  if (!reader)
    return std::move(reader.error());
  auto from = last_lsn() + 1;
  uint64_t n = 0, last = from - 1;
  if (auto err = exec("BEGIN IMMEDIATE"))
    return err;
  stmt inv, msg, ev, rd, st;
  sqlite3_prepare_v2(db_,
                     "INSERT OR IGNORE INTO func_invocations VALUES "
                     "(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13)",
                     -1, &inv.s, nullptr);
  sqlite3_prepare_v2(
    db_, "INSERT OR IGNORE INTO messages VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12)", -1,
    &msg.s, nullptr);
  sqlite3_prepare_v2(db_, "INSERT OR IGNORE INTO row_events VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)",
                     -1, &ev.s, nullptr);
  sqlite3_prepare_v2(db_, "INSERT OR IGNORE INTO row_reads VALUES (?1,?2,?3,?4,?5,?6,?7)", -1,
                     &rd.s, nullptr);
  caf::error failure;
  auto step = [&](sqlite3_stmt* s) {
    if (sqlite3_step(s) != SQLITE_DONE && !failure)
      failure = sql_error(db_, "spool");
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
  };
  auto message = [&](sqlite3_int64 lsn, int seq, int64_t ts, const std::string& kind,
                     const std::string& from, const std::string& to, const log_record& r,
                     const std::string& payload) {
    sqlite3_bind_int64(msg.s, 1, lsn);
    sqlite3_bind_int(msg.s, 2, seq);
    sqlite3_bind_int64(msg.s, 3, ts);
    bind_text(msg.s, 4, kind);
    bind_text(msg.s, 5, from);
    bind_text(msg.s, 6, to);
    sqlite3_bind_int64(msg.s, 7, static_cast<sqlite3_int64>(r.execution_id));
    sqlite3_bind_int64(msg.s, 8, static_cast<sqlite3_int64>(r.parent_id));
    bind_text(msg.s, 9, r.procedure);
    bind_text(msg.s, 10, r.role);
    bind_text(msg.s, 11, r.status);
    bind_text(msg.s, 12, payload);
    step(msg.s);
  };
  auto err = reader->for_each(from, [&](log_record&& r) {
    auto lsn = static_cast<sqlite3_int64>(r.lsn);
    if (r.kind == log_record::kind_t::invocation) {
      // An invocation record stands for the call and its reply.
      message(lsn, 0, r.start_ns, "invoke", r.sender, r.receiver, r, r.payload);
      message(lsn, 1, r.end_ns, "reply", r.receiver, r.sender, r, r.result);
      sqlite3_bind_int64(inv.s, 1, lsn);
      sqlite3_bind_int64(inv.s, 2, static_cast<sqlite3_int64>(r.execution_id));
      sqlite3_bind_int64(inv.s, 3, static_cast<sqlite3_int64>(r.execution_id));
      sqlite3_bind_int64(inv.s, 4, static_cast<sqlite3_int64>(r.parent_id));
      bind_text(inv.s, 5, r.procedure);
      bind_text(inv.s, 6, r.role);
      bind_text(inv.s, 7, r.status);
      sqlite3_bind_int(inv.s, 8, r.read_only ? 1 : 0);
      sqlite3_bind_int64(inv.s, 9, r.start_ns);
      sqlite3_bind_int64(inv.s, 10, r.end_ns);
      sqlite3_bind_int64(inv.s, 11, r.partition);
      bind_text(inv.s, 12, r.payload);
      bind_text(inv.s, 13, r.result);
      step(inv.s);
      for (size_t i = 0; i < r.changes.size(); ++i) {
        auto& c = r.changes[i];
        auto row = row_json(c);
        sqlite3_bind_int64(ev.s, 1, lsn);
        sqlite3_bind_int64(ev.s, 2, static_cast<sqlite3_int64>(i));
        bind_text(ev.s, 3, c.table);
        bind_text(ev.s, 4, c.key);
        bind_text(ev.s, 5, op_name(c.kind));
        sqlite3_bind_int64(ev.s, 6, static_cast<sqlite3_int64>(r.execution_id));
        bind_text(ev.s, 7, r.role);
        sqlite3_bind_int64(ev.s, 8, r.timestamp_ns);
        if (row.is_null())
          sqlite3_bind_null(ev.s, 9);
        else
          bind_text(ev.s, 9, row.dump());
        step(ev.s);
        if (c.table.rfind("__", 0) == 0)
          continue;
        if (auto e = ensure_events_table(c.table, row)) {
          failure = e;
          return false;
        }
        // The per-table events row, with the row's fields as columns.
        std::string cols = "lsn, seq, op, row_key, execution_id, role, ts_ns", qs = "?,?,?,?,?,?,?";
        std::vector<const nlohmann::json*> vals;
        if (row.is_object())
          for (auto& [k, v] : row.items()) {
            cols += ", " + quote(k);
            qs += ",?";
            vals.push_back(&v);
          }
        stmt t;
        if (sqlite3_prepare_v2(db_,
                               ("INSERT OR IGNORE INTO " + quote(events_table(c.table)) + "(" + cols
                                + ") VALUES (" + qs + ")")
                                 .c_str(),
                               -1, &t.s, nullptr)
            != SQLITE_OK) {
          failure = sql_error(db_, "spool " + c.table);
          return false;
        }
        sqlite3_bind_int64(t.s, 1, lsn);
        sqlite3_bind_int64(t.s, 2, static_cast<sqlite3_int64>(i));
        bind_text(t.s, 3, op_name(c.kind));
        bind_text(t.s, 4, c.key);
        sqlite3_bind_int64(t.s, 5, static_cast<sqlite3_int64>(r.execution_id));
        bind_text(t.s, 6, r.role);
        sqlite3_bind_int64(t.s, 7, r.timestamp_ns);
        for (size_t k = 0; k < vals.size(); ++k)
          bind_json(t.s, static_cast<int>(8 + k), *vals[k]);
        step(t.s);
      }
      for (size_t i = 0; i < r.reads.size(); ++i) {
        sqlite3_bind_int64(rd.s, 1, lsn);
        sqlite3_bind_int64(rd.s, 2, static_cast<sqlite3_int64>(i));
        bind_text(rd.s, 3, r.reads[i].table);
        bind_text(rd.s, 4, r.reads[i].key);
        sqlite3_bind_int64(rd.s, 5, static_cast<sqlite3_int64>(r.execution_id));
        bind_text(rd.s, 6, r.role);
        sqlite3_bind_int64(rd.s, 7, r.timestamp_ns);
        step(rd.s);
      }
    } else {
      auto sp = r.payload.find(' ');
      message(lsn, 0, r.timestamp_ns, r.payload.substr(0, sp), r.sender, r.receiver, r,
              sp == std::string::npos ? "" : r.payload.substr(sp + 1));
    }
    ++n;
    last = r.lsn;
    return !failure;
  });
  if (!err)
    err = failure;
  if (!err) {
    sqlite3_prepare_v2(db_, "UPDATE spool_state SET last_lsn = ?1 WHERE id = 1", -1, &st.s,
                       nullptr);
    sqlite3_bind_int64(st.s, 1, static_cast<sqlite3_int64>(last));
    step(st.s);
    err = failure;
  }
  if (err) {
    // Some failures (SQLITE_FULL, SQLITE_IOERR) roll the transaction back by themselves; a
    // ROLLBACK then fails for want of a transaction, which means nothing. One that fails with
    // the transaction still open leaves the store stuck in it: the caller hears of both.
    if (auto rb = exec("ROLLBACK"); rb && !sqlite3_get_autocommit(db_))
      return make_error(errc::storage_error, "spool failed (" + describe(err)
                                               + "), then ROLLBACK failed with the "
                                                 "transaction open ("
                                               + describe(rb) + ")");
    return err;
  }
  if (auto e = exec("COMMIT"))
    return e;
  return n;
}

caf::expected<nlohmann::json> sql_store::query(const std::string& sql,
                                               const std::vector<std::string>& params) {
  stmt s;
  if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &s.s, nullptr) != SQLITE_OK)
    return sql_error(db_, "invalid SQL");
  for (size_t i = 0; i < params.size(); ++i)
    bind_text(s.s, static_cast<int>(i + 1), params[i]);
  auto rows = nlohmann::json::array();
  for (;;) {
    int rc = sqlite3_step(s.s);
    if (rc == SQLITE_DONE)
      break;
    if (rc != SQLITE_ROW)
      return sql_error(db_, "query failed");
    nlohmann::json row = nlohmann::json::object();
    for (int c = 0; c < sqlite3_column_count(s.s); ++c) {
      std::string name = sqlite3_column_name(s.s, c);
      switch (sqlite3_column_type(s.s, c)) {
      case SQLITE_INTEGER:
        row[name] = sqlite3_column_int64(s.s, c);
        break;
      case SQLITE_FLOAT:
        row[name] = sqlite3_column_double(s.s, c);
        break;
      case SQLITE_NULL:
        row[name] = nullptr;
        break;
      default:
        row[name] = std::string{reinterpret_cast<const char*>(sqlite3_column_text(s.s, c)),
                                static_cast<size_t>(sqlite3_column_bytes(s.s, c))};
      }
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

} // namespace comb::storage
