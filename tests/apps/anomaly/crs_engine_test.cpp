// Tests of comb::anomaly::crs_engine: libmodsecurity3 with OWASP CRS 3.3.4 flags a SQL
// injection, passes a plain request once Accept-Charset is allowed, and blocks on
// Accept-Charset (rule 920450) in the stock set-up.
#include "apps/anomaly/crs_engine.hpp"

#include "apps/anomaly/crs_report.hpp"
#include "base/errc.hpp"
#include "tests/apps/anomaly/test_data.hpp"
#include "tests/test_util.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>

using namespace comb;
using namespace comb::anomaly;

namespace {

http_request make(const std::string& raw) {
  auto r = parse_http_request(raw);
  REQUIRE(r);
  return *r;
}

bool fired(const crs_verdict& v, int id) {
  return std::find(v.rules.begin(), v.rules.end(), id) != v.rules.end();
}

const char* headers = "User-Agent: Mozilla/5.0 (compatible; Konqueror/3.5; Linux)\r\n"
                      "Accept: text/html\r\n"
                      "Accept-Charset: utf-8, utf-8;q=0.5, *;q=0.5\r\n"
                      "Host: localhost:8080\r\n";

} // namespace

TEST_SUITE("apps.anomaly.crs") {
  TEST_CASE("CRS flags SQL injection and passes a plain request") {
    if (!std::filesystem::exists("/usr/share/modsecurity-crs/rules")) {
      MESSAGE("modsecurity-crs not installed: skipped");
      return;
    }
    crs_options opts;
    opts.allow_accept_charset = true;
    auto engine = crs_engine::create(opts);
    REQUIRE_MESSAGE(engine, comb::test::why(engine));
    auto plain = make(std::string{"GET http://localhost:8080/tienda1/index.jsp?id=2 HTTP/1.1\r\n"}
                      + headers + "\r\n");
    auto v = (*engine)->evaluate(plain);
    CHECK_FALSE(v.flagged);
    auto sqli = make(std::string{"GET http://localhost:8080/tienda1/a.jsp?id=2%27+OR+%271%27%3D%271"
                                 "+UNION+SELECT+password+FROM+users-- HTTP/1.1\r\n"}
                     + headers + "\r\n");
    v = (*engine)->evaluate(sqli);
    CHECK(v.flagged);
    CHECK(fired(v, 949110));
    auto post = make(std::string{"POST http://localhost:8080/tienda1/a.jsp HTTP/1.1\r\n"} + headers
                     + "Content-Type: application/x-www-form-urlencoded\r\n\r\n"
                       "id=<script>alert(document.cookie)</script>\r\n");
    v = (*engine)->evaluate(post);
    CHECK(v.flagged); // XSS in the body: the body is inspected
  }

  TEST_CASE("stock CRS blocks on Accept-Charset (rule 920450)") {
    if (!std::filesystem::exists("/usr/share/modsecurity-crs/rules")) {
      MESSAGE("modsecurity-crs not installed: skipped");
      return;
    }
    auto engine = crs_engine::create({});
    REQUIRE(engine);
    auto plain = make(std::string{"GET http://localhost:8080/tienda1/index.jsp HTTP/1.1\r\n"}
                      + headers + "\r\n");
    auto v = (*engine)->evaluate(plain);
    CHECK(v.flagged);
    CHECK(fired(v, 920450));
    CHECK((*engine)->name() == "CRS 3.3.4 PL1 (stock)");
  }

  TEST_CASE("bad set-up is an error, not a crash") {
    crs_options opts;
    opts.paranoia = 7;
    auto e = crs_engine::create(opts);
    REQUIRE_FALSE(e);
    CHECK(is(e.error(), errc::invalid_argument));
    opts.paranoia = 1;
    opts.rules_dir = "/nonexistent/rules";
    e = crs_engine::create(opts);
    REQUIRE_FALSE(e);
    CHECK(is(e.error(), errc::not_found));
  }

  TEST_CASE("CRS on a small CSIC subset: report counts add up") {
    if (!anomaly::test::have_csic()
        || !std::filesystem::exists("/usr/share/modsecurity-crs/rules")) {
      MESSAGE("CSIC 2010 or CRS not found: skipped");
      return;
    }
    auto ds = load_csic(anomaly::test::csic_dir(), 40);
    REQUIRE(ds);
    crs_options opts;
    opts.allow_accept_charset = true;
    auto engine = crs_engine::create(opts);
    REQUIRE(engine);
    auto rep = run_crs(**engine, ds->requests);
    CHECK(rep.metrics.total() == ds->requests.size());
    CHECK(rep.metrics.tp + rep.metrics.fn == ds->counts[1]);
    CHECK(rep.metrics.tp > 0);
    MESSAGE(rep.engine << ": " << rep.metrics.to_string());
  }

} // TEST_SUITE
