// apps.console.filter: the Overview's filter tree becomes parameterised SQL: values are only
// ever bound, field names must be whitelisted, and the SQL runs on a real store giving the
// rows the filter describes.
#include "apps/console/console_queries.hpp"
#include "apps/console/filter_sql.hpp"
#include "base/errc.hpp"
#include "tests/apps/console/console_fixture.hpp"
#include "tests/test_util.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

using namespace comb::apps::console;
using nlohmann::json;

namespace {

store_columns all_columns() {
  store_columns c;
  c.has_requests = c.has_labels = true;
  for (auto& f : console_schema::defaults().fields())
    (f.source == field_source::request ? c.request : c.label).insert(f.column);
  c.label.insert("request_id");
  return c;
}

} // namespace

TEST_SUITE("apps.console.filter") {
  TEST_CASE("conditions compose with AND and OR into bound parameters") {
    auto& s = console_schema::defaults();
    auto f = build_filter(json::parse(R"({"op":"or","items":[
      {"op":"and","items":[{"field":"cs_method","cmp":"=","value":"POST"},
                           {"field":"sc_status","cmp":">=","value":"400"}]},
      {"field":"cs_uri_query","cmp":"contains","value":"50%_off"}]})"),
                          s, all_columns());
    REQUIRE(f);
    CHECK(
      f->sql
      == R"(((r."cs_method" = ? AND r."sc_status" >= ?) OR r."cs_uri_query" LIKE ? ESCAPE '\'))");
    CHECK(f->params == json::array({"POST", 400, "%50\\%\\_off%"}));
  }

  TEST_CASE("no text of a value reaches the SQL") {
    auto& s = console_schema::defaults();
    std::string evil = "x' OR 1=1; DROP TABLE httplog_request; --";
    for (auto cmp : {"=", "!=", "contains", "not_contains", "starts_with", "ends_with"}) {
      auto f = build_filter({{"field", "cs_uri_query"}, {"cmp", cmp}, {"value", evil}}, s,
                            all_columns());
      REQUIRE(f);
      CHECK(f->sql.find("DROP") == std::string::npos);
      CHECK(f->sql.find("1=1") == std::string::npos);
      CHECK(f->params.size() == 1);
    }
  }

  TEST_CASE("field names are checked against the whitelist") {
    auto& s = console_schema::defaults();
    for (auto name : {"nope", "cs_method; DROP TABLE x", "r.cs_method", "\"cs_method\"", ""}) {
      auto f = build_filter({{"field", name}, {"cmp", "="}, {"value", "a"}}, s, all_columns());
      REQUIRE_FALSE(f);
      CHECK(comb::is(f.error(), comb::errc::invalid_argument));
      CHECK(comb::describe(f.error()).find("field") != std::string::npos);
    }
    auto bad_cmp = build_filter({{"field", "cs_method"}, {"cmp", "LIKE 1 OR"}, {"value", "a"}}, s,
                                all_columns());
    REQUIRE_FALSE(bad_cmp);
    CHECK(comb::describe(bad_cmp.error()).find("unknown comparison") != std::string::npos);
    auto bad_op = build_filter(json::parse(R"({"op":"xor","items":[]})"), s, all_columns());
    REQUIRE_FALSE(bad_op);
    auto not_num = build_filter({{"field", "sc_status"}, {"cmp", ">"}, {"value", "1 OR 1"}}, s,
                                all_columns());
    REQUIRE_FALSE(not_num);
    CHECK(comb::describe(not_num.error()).find("takes a number") != std::string::npos);
  }

  TEST_CASE("limits: depth and number of conditions") {
    auto& s = console_schema::defaults();
    json deep = {{"field", "cs_method"}, {"cmp", "="}, {"value", "GET"}};
    for (int i = 0; i < max_filter_depth + 2; ++i)
      deep = {{"op", "and"}, {"items", json::array({deep})}};
    CHECK_FALSE(build_filter(deep, s, all_columns()));
    json many = {{"op", "or"}, {"items", json::array()}};
    for (int i = 0; i < max_filter_conditions + 1; ++i)
      many["items"].push_back({{"field", "cs_method"}, {"cmp", "="}, {"value", "GET"}});
    CHECK_FALSE(build_filter(many, s, all_columns()));
    CHECK(build_filter(json(), s, all_columns())->sql.empty());
    CHECK(build_filter(json::parse(R"({"op":"and","items":[]})"), s, all_columns())->sql.empty());
  }

  TEST_CASE("a column the store lacks reads as NULL") {
    auto& s = console_schema::defaults();
    store_columns c;
    c.has_requests = true;
    c.request = {"row_key", "cs_method"};
    auto f = build_filter({{"field", "cs_user_agent"}, {"cmp", "contains"}, {"value", "x"}}, s, c);
    REQUIRE(f);
    CHECK(f->sql.rfind("NULL LIKE", 0) == 0);
  }

  TEST_CASE("the built SQL selects the right rows of a real store") {
    comb::test::temp_dir dir;
    auto file = dir.path() + "/store.sqlite";
    comb::test::console::make_store(file, 200);
    auto db = comb::test::must(readonly_db::open(file));
    overview_request q;
    q.threshold = 0;
    q.limit = 500;
    q.filter = json::parse(R"({"op":"and","items":[{"field":"cs_method","cmp":"=","value":"POST"},
                                                {"field":"score","cmp":">=","value":0.9}]})");
    auto r = run_overview(*db, console_schema::defaults(), q);
    REQUIRE(r);
    // POST is every 4th request (i % 4 == 1); score (i % 100) / 100 >= 0.9 means i % 100 >= 90.
    int want = 0;
    for (int i = 0; i < 200; ++i)
      want += (i % 4 == 1 && i % 100 >= 90) ? 1 : 0;
    CHECK((*r)["total"] == want);
    CHECK((*r)["rows"].size() == static_cast<size_t>(want));
    CHECK((*r)["sql"].get<std::string>().find("POST") == std::string::npos);
    // Threshold, search and paging with a sort on another column.
    overview_request p;
    p.threshold = 0.5;
    p.search = "/login";
    p.sort = "score";
    p.desc = false;
    p.limit = 5;
    p.offset = 5;
    auto page = run_overview(*db, console_schema::defaults(), p);
    REQUIRE(page);
    auto& rows = (*page)["rows"];
    REQUIRE(rows.size() == 5);
    auto cols = (*page)["columns"];
    size_t score_at = std::find(cols.begin(), cols.end(), "score") - cols.begin();
    for (size_t i = 0; i < rows.size(); ++i) {
      CHECK(rows[i][score_at].get<double>() >= 0.5);
      if (i)
        CHECK(rows[i][score_at].get<double>() >= rows[i - 1][score_at].get<double>());
    }
    auto bad_sort = p;
    bad_sort.sort = "score; DROP TABLE x";
    CHECK_FALSE(run_overview(*db, console_schema::defaults(), bad_sort));
  }

  TEST_CASE("keyset pages walk the same rows as offset pages, both ways, NULLs included") {
    comb::test::temp_dir dir;
    auto file = dir.path() + "/store.sqlite";
    comb::test::console::make_store(file, 200);
    {
      // Requests with no label row yet: their score is NULL. Two share one timestamp.
      sqlite3* raw = nullptr;
      REQUIRE(sqlite3_open(file.c_str(), &raw) == SQLITE_OK);
      for (int i = 0; i < 23; ++i)
        comb::test::console::exec(
          raw, "INSERT INTO httplog_request (row_key, ts_ns, cs_method) VALUES ('zz-"
                 + std::to_string(i) + "', "
                 + std::to_string(comb::test::console::fixture_t0_ns + (i / 2) * 1000)
                 + ", 'GET')");
      sqlite3_close(raw);
    }
    auto db = comb::test::must(readonly_db::open(file));
    auto ids = [](const json& page) {
      std::vector<std::string> out;
      size_t at = std::find(page["columns"].begin(), page["columns"].end(), "request_id")
                  - page["columns"].begin();
      for (auto& row : page["rows"])
        out.push_back(row[at].get<std::string>());
      return out;
    };
    for (auto* sort : {"ts_ns", "score", "label"}) {
      for (bool desc : {true, false}) {
        CAPTURE(sort);
        CAPTURE(desc);
        overview_request q;
        q.threshold = 0;
        q.sort = sort;
        q.desc = desc;
        q.limit = 500;
        auto all = run_overview(*db, console_schema::defaults(), q);
        REQUIRE(all);
        auto want = ids(*all);
        REQUIRE(want.size() == 223);
        // Forward: each page after the last row of the one before.
        q.limit = 7;
        std::vector<std::string> got;
        auto page = run_overview(*db, console_schema::defaults(), q);
        REQUIRE(page);
        std::vector<json> pages{*page};
        for (int n = 0; n < 100 && !(*page)["rows"].empty(); ++n) {
          for (auto& id : ids(*page))
            got.push_back(id);
          overview_request next = q;
          next.after = (*page)["last"];
          page = run_overview(*db, console_schema::defaults(), next);
          REQUIRE(page);
          pages.push_back(*page);
        }
        CHECK(got == want);
        // Backward from the last full page: each page before the first row of the one after.
        std::vector<std::string> back;
        json at = pages[pages.size() - 2];
        for (int n = 0; n < 100 && !at["rows"].empty(); ++n) {
          auto page_ids = ids(at);
          back.insert(back.begin(), page_ids.begin(), page_ids.end());
          overview_request prev = q;
          prev.before = at["first"];
          auto p = run_overview(*db, console_schema::defaults(), prev);
          REQUIRE(p);
          at = *p;
        }
        CHECK(back == want);
      }
    }
    // A cursor that is not one is refused by name.
    CHECK_FALSE(parse_overview_request(json{{"after", "[1, 2, 3]"}}));
    CHECK_FALSE(parse_overview_request(json{{"after", "not json"}}));
    CHECK_FALSE(parse_overview_request(json{{"after", "[1, \"a\"]"}, {"before", "[1, \"a\"]"}}));
    CHECK(parse_overview_request(json{{"after", "[null, \"req-1\"]"}}));
  }

  TEST_CASE("the Overview waits for tables that are not there yet") {
    comb::test::temp_dir dir;
    auto file = dir.path() + "/empty.sqlite";
    comb::test::console::make_store(file, 0, /*with_labels=*/false);
    auto db = comb::test::must(readonly_db::open(file));
    overview_request q;
    q.threshold = 0;
    auto r = run_overview(*db, console_schema::defaults(), q);
    REQUIRE(r);
    CHECK((*r)["ready"] == true);
    CHECK((*r)["labels_ready"] == false);
    auto none = dir.path() + "/none.sqlite";
    sqlite3* raw = nullptr;
    REQUIRE(sqlite3_open(none.c_str(), &raw) == SQLITE_OK);
    comb::test::console::exec(raw, "CREATE TABLE other (x)");
    sqlite3_close(raw);
    auto db2 = comb::test::must(readonly_db::open(none));
    auto r2 = run_overview(*db2, console_schema::defaults(), q);
    REQUIRE(r2);
    CHECK((*r2)["ready"] == false);
    CHECK((*r2)["message"].get<std::string>().find("httplog_request") != std::string::npos);
  }

} // TEST_SUITE
