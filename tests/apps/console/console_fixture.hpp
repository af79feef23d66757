// A test SQL store for the console: the current-state tables of Comb's httplog_request and
// httplog_request_labeled, with the Nectar contract's columns, filled with deterministic
// requests (some of them XSS and SQL-injection payloads). Used by the console's unit tests
// and, through make_fixture, by its browser test. Not thread-safe; one call per file.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <ctime>
#include <stdexcept>
#include <string>

namespace comb::test::console {

/// 2026-12-01 00:00:00 UTC in nanoseconds: the first fixture request.
constexpr int64_t fixture_t0_ns = int64_t{1796083200} * 1000000000;

/// Payloads that would run script or fetch a URL if the console rendered them as HTML.
inline const char* const xss_payloads[] = {
  "<script>window.__xss = 1</script>",
  "<img src=x onerror=\"window.__xss = 2\">",
  "\"><svg onload=\"window.__xss = 3\"></svg>",
  "<img src=\"http://198.51.100.7/leak.png\">",
  "<iframe src=\"http://198.51.100.7/frame\"></iframe>",
  "javascript:window.__xss = 4",
};

inline void exec(sqlite3* db, const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "?";
    sqlite3_free(err);
    throw std::runtime_error("fixture SQL failed: " + msg + " in " + sql);
  }
}

/// Writes `rows` requests (one every `step_s` seconds from fixture_t0_ns) to `file`; request
/// i has id "req-<i>", score (i % 100) / 100, label score >= 0.5, rule label every 7th;
/// every 10th carries an XSS payload in its query, agent, referer and raw bytes; request 5's
/// raw is a digest marker (as for a row over 64 KiB). Labels are written only when
/// `with_labels`.
inline void make_store(const std::string& file, int rows, bool with_labels = true,
                       int step_s = 600) {
  sqlite3* db = nullptr;
  if (sqlite3_open(file.c_str(), &db) != SQLITE_OK)
    throw std::runtime_error("cannot open fixture " + file);
  exec(db, "PRAGMA journal_mode = WAL");
  exec(db, "CREATE TABLE IF NOT EXISTS httplog_request (row_key TEXT PRIMARY KEY, ts_ns INTEGER, "
           "date TEXT, time TEXT, c_ip TEXT, cs_method TEXT, cs_uri_stem TEXT, "
           "cs_uri_query TEXT, sc_status INTEGER, cs_user_agent TEXT, cs_referer TEXT, "
           "cs_cookie TEXT, cs_bytes INTEGER, sc_bytes INTEGER, time_taken_ms REAL, raw TEXT, "
           "raw_encoding TEXT, truncated INTEGER, execution_id INTEGER, trace_id TEXT, "
           "rule_label INTEGER, rule_ids TEXT, rule_score REAL)");
  if (with_labels)
    exec(db, "CREATE TABLE IF NOT EXISTS httplog_request_labeled (row_key TEXT PRIMARY KEY, "
             "request_id TEXT, score REAL, label INTEGER, threshold REAL, model TEXT, "
             "model_version INTEGER, rule_label INTEGER, rule_ids TEXT, combined_label INTEGER)");
  exec(db, "BEGIN");
  sqlite3_stmt* req = nullptr;
  sqlite3_prepare_v2(db,
                     "INSERT INTO httplog_request VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,"
                     "?,?,?,?)",
                     -1, &req, nullptr);
  sqlite3_stmt* lab = nullptr;
  if (with_labels)
    sqlite3_prepare_v2(db, "INSERT INTO httplog_request_labeled VALUES (?,?,?,?,?,?,?,?,?,?)", -1,
                       &lab, nullptr);
  const char* methods[] = {"GET", "POST", "GET", "GET"};
  const char* paths[] = {"/feed", "/login", "/u/alice", "/search", "/post", "/static/nectar.css"};
  for (int i = 0; i < rows; ++i) {
    int64_t ts = fixture_t0_ns + int64_t{i} * step_s * 1000000000;
    int64_t secs = ts / 1000000000;
    char date[32], tod[32];
    time_t t = static_cast<time_t>(secs);
    tm g{};
    gmtime_r(&t, &g);
    strftime(date, sizeof date, "%Y-%m-%d", &g);
    strftime(tod, sizeof tod, "%H:%M:%S", &g);
    std::string id = "req-" + std::to_string(i);
    bool evil = i % 10 == 3;
    std::string payload = xss_payloads[(i / 10) % (sizeof xss_payloads / sizeof *xss_payloads)];
    std::string path = paths[i % 6];
    std::string query = evil ? "q=" + payload : "page=" + std::to_string(i % 5);
    std::string agent = evil ? payload : "Mozilla/5.0 (X11; Linux x86_64) comb-traffic/1";
    std::string referer = evil ? payload : "http://127.0.0.1:8080/";
    std::string method = methods[i % 4];
    std::string raw = method + " " + path + "?" + query + " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      + "User-Agent: " + agent + "\r\n\r\n";
    // Request 5 stands for a row over 64 KiB: provenance logged its raw bytes as their digest
    // (runtime/provenance/large_values.hpp), which is what the store then holds.
    if (i == 5)
      raw = R"({"$comb_elided":{"base64":false,"sha256":")" + std::string(64, 'a')
            + R"(","size":70000}})";
    int b = 1;
    sqlite3_bind_text(req, b++, id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(req, b++, ts);
    sqlite3_bind_text(req, b++, date, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(req, b++, tod, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(req, b++, ("10.0.0." + std::to_string(i % 17)).c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(req, b++, method.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(req, b++, path.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(req, b++, query.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(req, b++, i % 13 == 0 ? 404 : 200);
    sqlite3_bind_text(req, b++, agent.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(req, b++, referer.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(req, b++, evil ? payload.c_str() : "nectar_session=abc", -1,
                      SQLITE_TRANSIENT);
    sqlite3_bind_int(req, b++, static_cast<int>(raw.size()));
    sqlite3_bind_int(req, b++, 1000 + i % 50);
    sqlite3_bind_double(req, b++, 0.5 + i % 7);
    sqlite3_bind_text(req, b++, raw.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(req, b++, "utf8", -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(req, b++, 0);
    sqlite3_bind_int64(req, b++, 1000 + i);
    sqlite3_bind_text(req, b++, ("trace-" + std::to_string(i)).c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(req, b++, i % 7 == 0 ? 1 : 0);
    sqlite3_bind_text(req, b++, i % 7 == 0 ? "941100,942100" : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_double(req, b++, i % 7 == 0 ? 10 : 0);
    if (sqlite3_step(req) != SQLITE_DONE)
      throw std::runtime_error(std::string("fixture insert: ") + sqlite3_errmsg(db));
    sqlite3_reset(req);
    if (lab) {
      double score = (i % 100) / 100.0;
      int c = 1;
      sqlite3_bind_text(lab, c++, id.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(lab, c++, id.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_double(lab, c++, score);
      sqlite3_bind_int(lab, c++, score >= 0.5 ? 1 : 0);
      sqlite3_bind_double(lab, c++, 0.5);
      sqlite3_bind_text(lab, c++, "anomaly-detector", -1, SQLITE_TRANSIENT);
      sqlite3_bind_int(lab, c++, 1 + i % 3);
      sqlite3_bind_int(lab, c++, i % 7 == 0 ? 1 : 0);
      sqlite3_bind_text(lab, c++, i % 7 == 0 ? "941100,942100" : "", -1, SQLITE_TRANSIENT);
      sqlite3_bind_int(lab, c++, (score >= 0.5 || i % 7 == 0) ? 1 : 0);
      if (sqlite3_step(lab) != SQLITE_DONE)
        throw std::runtime_error(std::string("fixture label insert: ") + sqlite3_errmsg(db));
      sqlite3_reset(lab);
    }
  }
  sqlite3_finalize(req);
  sqlite3_finalize(lab);
  exec(db, "COMMIT");
  exec(db, "CREATE INDEX IF NOT EXISTS httplog_request_ts ON httplog_request(ts_ns)");
  sqlite3_close(db);
}

} // namespace comb::test::console
