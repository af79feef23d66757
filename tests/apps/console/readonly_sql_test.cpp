// apps.console.readonly: the Search tab's connection reads and refuses everything else:
// writes, schema changes, ATTACH, PRAGMA writes, transactions and more than one statement,
// each with a message naming it; a runaway query is stopped at its time limit.
#include "apps/console/readonly_sql.hpp"
#include "base/errc.hpp"
#include "tests/apps/console/console_fixture.hpp"
#include "tests/test_util.hpp"

#include <doctest/doctest.h>

using namespace comb::apps::console;
using comb::errc;

namespace {

int64_t count_rows(const std::string& file) {
  sqlite3* db = nullptr;
  sqlite3_open(file.c_str(), &db);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM httplog_request", -1, &st, nullptr);
  sqlite3_step(st);
  auto n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return n;
}

} // namespace

TEST_SUITE("apps.console.readonly") {
  TEST_CASE("reads run; writes and schema changes are refused, naming what was refused") {
    comb::test::temp_dir dir;
    auto file = dir.path() + "/store.sqlite";
    comb::test::console::make_store(file, 50);
    auto db = comb::test::must(readonly_db::open(file));
    auto ok = db->run("SELECT cs_method, COUNT(*) FROM httplog_request GROUP BY 1 ORDER BY 1");
    REQUIRE(ok);
    CHECK(ok->columns == std::vector<std::string>{"cs_method", "COUNT(*)"});
    CHECK(ok->rows.size() == 2);
    CHECK(db->run("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5) "
                  "SELECT SUM(i) FROM n")
            ->rows[0][0]
          == 15);
    CHECK(db->run("PRAGMA table_info(httplog_request)"));
    CHECK(db->run("SELECT * FROM pragma_table_info('httplog_request')"));
    CHECK(db->run("PRAGMA user_version"));
    struct refused {
      std::string sql;
      std::string says;
    };
    for (auto& [sql, says] : std::vector<refused>{
           refused{"DELETE FROM httplog_request", "DELETE on httplog_request"},
           refused{"UPDATE httplog_request SET c_ip = 'x'", "UPDATE on httplog_request"},
           refused{"INSERT INTO httplog_request(row_key) VALUES ('x')", "INSERT"},
           refused{"DROP TABLE httplog_request", "DROP TABLE"},
           refused{"CREATE TABLE t (x)", "CREATE TABLE"},
           refused{"CREATE TEMP TABLE t (x)", "CREATE TABLE"},
           refused{"CREATE INDEX i ON httplog_request(c_ip)", "CREATE INDEX"},
           refused{"ALTER TABLE httplog_request ADD COLUMN y", "ALTER TABLE"},
           refused{"ATTACH DATABASE '" + dir.path() + "/other.sqlite' AS o", "ATTACH"},
           refused{"PRAGMA user_version = 7", "PRAGMA user_version"},
           refused{"PRAGMA journal_mode = DELETE", "PRAGMA journal_mode"},
           refused{"PRAGMA writable_schema = ON", "PRAGMA writable_schema"},
           refused{"BEGIN", "transaction"},
           refused{"VACUUM", ""},
           refused{"REINDEX", "REINDEX"},
           refused{"ANALYZE", "ANALYZE"},
           refused{"WITH x AS (SELECT 1) DELETE FROM httplog_request", "DELETE"},
         }) {
      CAPTURE(sql);
      auto r = db->run(sql);
      REQUIRE_FALSE(r);
      CHECK(comb::is(r.error(), errc::permission_denied));
      auto text = comb::describe(r.error());
      CHECK(text.find("read-only") != std::string::npos);
      CHECK(text.find(says) != std::string::npos);
    }
    CHECK(count_rows(file) == 50);
    CHECK_FALSE(std::filesystem::exists(dir.path() + "/other.sqlite"));
  }

  TEST_CASE("more than one statement is refused, comments after one are not") {
    comb::test::temp_dir dir;
    auto file = dir.path() + "/store.sqlite";
    comb::test::console::make_store(file, 5);
    auto db = comb::test::must(readonly_db::open(file));
    for (auto sql : {"SELECT 1; DELETE FROM httplog_request", "SELECT 1; SELECT 2",
                     "SELECT 1;\n-- c\n ATTACH 'x' AS y"}) {
      CAPTURE(sql);
      auto r = db->run(sql);
      REQUIRE_FALSE(r);
      CHECK(comb::describe(r.error()).find("one statement at a time") != std::string::npos);
    }
    CHECK(db->run("SELECT 1; -- done"));
    CHECK(db->run("SELECT 1 /* a */ ; /* b */ ;"));
    CHECK(only_comments("  ;\n-- x\n/* y */"));
    CHECK_FALSE(only_comments(" ; x"));
    CHECK(count_rows(file) == 5);
  }

  TEST_CASE("invalid SQL is an error with SQLite's message") {
    comb::test::temp_dir dir;
    auto file = dir.path() + "/store.sqlite";
    comb::test::console::make_store(file, 1);
    auto db = comb::test::must(readonly_db::open(file));
    auto r = db->run("SELEC * FROM httplog_request");
    REQUIRE_FALSE(r);
    CHECK(comb::is(r.error(), errc::invalid_argument));
    CHECK(comb::describe(r.error()).find("syntax error") != std::string::npos);
    auto missing = db->run("SELECT * FROM nope");
    REQUIRE_FALSE(missing);
    CHECK(comb::describe(missing.error()).find("no such table") != std::string::npos);
  }

  TEST_CASE("a query past its time limit is stopped and says so") {
    comb::test::temp_dir dir;
    auto file = dir.path() + "/store.sqlite";
    comb::test::console::make_store(file, 1);
    auto db = comb::test::must(readonly_db::open(file));
    auto start = std::chrono::steady_clock::now();
    auto r = db->run("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
                     "SELECT COUNT(*) FROM n",
                     nlohmann::json::array(), {std::chrono::milliseconds(300), 10});
    REQUIRE_FALSE(r);
    CHECK(comb::is(r.error(), errc::timeout));
    CHECK(comb::describe(r.error()).find("time limit") != std::string::npos);
    // Stopped, not run to completion (an endless query): well under the test's own bound.
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(20));
    // The connection serves the next query.
    CHECK(db->run("SELECT 1"));
  }

  TEST_CASE("rows past the limit are cut and flagged; big integers keep their digits") {
    comb::test::temp_dir dir;
    auto file = dir.path() + "/store.sqlite";
    comb::test::console::make_store(file, 30);
    auto db = comb::test::must(readonly_db::open(file));
    auto r = db->run("SELECT ts_ns FROM httplog_request ORDER BY ts_ns", nlohmann::json::array(),
                     {std::chrono::milliseconds(5000), 10});
    REQUIRE(r);
    CHECK(r->rows.size() == 10);
    CHECK(r->truncated);
    CHECK(r->rows[0][0] == std::to_string(comb::test::console::fixture_t0_ns));
  }

  TEST_CASE("a missing store is named") {
    auto r = readonly_db::open("/nonexistent/dir/store.sqlite");
    REQUIRE_FALSE(r);
    CHECK(comb::describe(r.error()).find("/nonexistent/dir/store.sqlite") != std::string::npos);
  }

} // TEST_SUITE
