// apps.console.auth: passwords (scrypt), sessions and CSRF, and the server's checks through
// real HTTP on loopback: nothing without a login, no login or POST without the session's
// CSRF token, a new session id at login, logout ends the session, and every response carries
// the security headers.
#include "apps/console/accounts.hpp"
#include "apps/console/console_server.hpp"
#include "apps/console/sessions.hpp"
#include "base/errc.hpp"
#include "tests/apps/console/console_fixture.hpp"
#include "tests/test_util.hpp"

#include <doctest/doctest.h>
#include <httplib.h>

#include <regex>
#include <thread>

using namespace comb::apps::console;

namespace {

const scrypt_params cheap{1 << 10, 8, 1}; // fast hashes for tests; the default is 2^15

std::string cookie_of(const httplib::Result& r) {
  auto set = r->get_header_value("Set-Cookie");
  return set.substr(0, set.find(';'));
}

std::string csrf_of(const std::string& page) {
  std::smatch m;
  if (std::regex_search(page, m, std::regex(R"re(name="csrf" value="([0-9a-f]+)")re"))
      || std::regex_search(page, m, std::regex(R"re(name="csrf-token" content="([0-9a-f]+)")re")))
    return m[1];
  return {};
}

} // namespace

TEST_SUITE("apps.console.auth") {
  TEST_CASE("scrypt hashes verify only their password and carry their parameters") {
    auto h = comb::test::must(hash_password("correct horse", cheap));
    CHECK(h.rfind("scrypt$1024$8$1$", 0) == 0);
    CHECK(verify_password("correct horse", h));
    CHECK_FALSE(verify_password("correct horsE", h));
    CHECK_FALSE(verify_password("correct horse", h.substr(0, h.size() - 2)));
    CHECK_FALSE(verify_password("correct horse", "plain"));
    auto h2 = comb::test::must(hash_password("correct horse", cheap));
    CHECK(h != h2);                                // a fresh salt each time
    CHECK_FALSE(hash_password("x", {1000, 8, 1})); // N must be a power of two
  }

  TEST_CASE("accounts: users are added, passwords changed, bad names and short passwords refused") {
    comb::test::temp_dir dir;
    auto acc = comb::test::must(accounts::open(dir.path() + "/users"));
    REQUIRE_FALSE(acc->set_user("alice", "password1", cheap));
    CHECK(acc->check("alice", "password1"));
    CHECK_FALSE(acc->check("alice", "password2"));
    CHECK_FALSE(acc->check("bob", "password1"));
    REQUIRE_FALSE(acc->set_user("alice", "password2", cheap));
    CHECK(acc->check("alice", "password2"));
    CHECK_FALSE(acc->check("alice", "password1"));
    auto short_pw = acc->set_user("bob", "short", cheap);
    CHECK(comb::is(short_pw, comb::errc::invalid_argument));
    CHECK(comb::describe(short_pw).find("8 to 1024") != std::string::npos);
    CHECK(comb::is(acc->set_user("bo b<", "password1", cheap), comb::errc::invalid_argument));
    CHECK(acc->users() == std::vector<std::string>{"alice"});
    // The file keeps hashes, never the password.
    CHECK(comb::test::read_file(dir.path() + "/users").find("password2") == std::string::npos);
  }

  TEST_CASE("sessions expire, tokens compare exactly, cookies parse") {
    session_limits lim;
    lim.max_sessions = 3;
    session_store s(lim);
    auto anon = s.create("", 0);
    auto a = s.create("alice", 0);
    CHECK(anon.id.size() == 64);
    CHECK(anon.id != a.id);
    CHECK(anon.csrf != a.csrf);
    CHECK(s.find(a.id, lim.idle_ns - 1));
    CHECK_FALSE(s.find(anon.id, lim.anonymous_ns + 1)); // an unused login page expires
    CHECK_FALSE(s.find(a.id, 2 * lim.idle_ns + 1));     // idle too long
    CHECK_FALSE(s.find("nope", 0));
    for (int i = 0; i < 10; ++i)
      s.create("", 1);
    CHECK(s.size() <= 3);
    CHECK(same_token(a.csrf, a.csrf));
    CHECK_FALSE(same_token("", ""));
    CHECK_FALSE(same_token(a.csrf, anon.csrf));
    CHECK(cookie_value("a=1; comb_console=xyz; b=2", "comb_console") == "xyz");
    CHECK(cookie_value("xcomb_console=1", "comb_console").empty());
  }

  TEST_CASE("the server: login required, CSRF on forms and POSTs, security headers") {
    comb::test::temp_dir dir;
    auto store = dir.path() + "/store.sqlite";
    comb::test::console::make_store(store, 20);
    {
      auto acc = comb::test::must(accounts::open(accounts_file_for(store)));
      REQUIRE_FALSE(acc->set_user("analyst", "s3cret-pass", cheap));
    }
    console_options o;
    o.sql_file = store;
    o.port = 0;
    auto server = comb::test::must(console_server::make(o));
    auto port = comb::test::must(server->bind());
    std::thread t([&] { server->run(); });
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(std::chrono::seconds(20));

    // Nothing without a login.
    auto home = c.Get("/");
    REQUIRE(home);
    CHECK(home->status == 303);
    CHECK(home->get_header_value("Location") == "/login");
    auto api = c.Post("/api/sql", R"({"sql":"SELECT 1"})", "application/json");
    REQUIRE(api);
    CHECK(api->status == 401);

    // The login page: an anonymous session with its CSRF token, and the headers.
    auto login = c.Get("/login");
    REQUIRE(login);
    CHECK(login->status == 200);
    auto set_cookie = login->get_header_value("Set-Cookie");
    CHECK(set_cookie.find("HttpOnly") != std::string::npos);
    CHECK(set_cookie.find("SameSite=Strict") != std::string::npos);
    auto csp = login->get_header_value("Content-Security-Policy");
    CHECK(csp.find("script-src 'self';") != std::string::npos);
    CHECK(csp.find("frame-ancestors 'none'") != std::string::npos);
    CHECK(login->get_header_value("X-Content-Type-Options") == "nosniff");
    auto anon_cookie = cookie_of(login);
    auto csrf = csrf_of(login->body);
    REQUIRE(csrf.size() == 64);
    httplib::Headers with_anon = {{"Cookie", anon_cookie}};

    // Login without the token, with a wrong one, from another origin, or a wrong password.
    auto no_token = c.Post("/login", with_anon, "username=analyst&password=s3cret-pass",
                           "application/x-www-form-urlencoded");
    CHECK(no_token->status == 403);
    auto login2 = c.Get("/login", with_anon);
    csrf = csrf_of(login2->body);
    auto wrong_token = c.Post("/login", with_anon,
                              "username=analyst&password=s3cret-pass&csrf=" + std::string(64, 'a'),
                              "application/x-www-form-urlencoded");
    CHECK(wrong_token->status == 403);
    // A refused form gets a fresh anonymous session; take its token.
    with_anon = {{"Cookie", cookie_of(wrong_token)}};
    csrf = csrf_of(wrong_token->body);
    auto wrong_pw = c.Post("/login", with_anon, "username=analyst&password=nope-nope&csrf=" + csrf,
                           "application/x-www-form-urlencoded");
    CHECK(wrong_pw->status == 401);
    CHECK(wrong_pw->body.find("Wrong username or password") != std::string::npos);
    httplib::Headers evil_origin = with_anon;
    evil_origin.emplace("Origin", "http://evil.example");
    auto cross = c.Post("/login", evil_origin, "username=analyst&password=s3cret-pass&csrf=" + csrf,
                        "application/x-www-form-urlencoded");
    CHECK(cross->status == 403);
    with_anon = {{"Cookie", cookie_of(cross)}};
    csrf = csrf_of(cross->body);

    // A good login gets a new session id.
    auto ok = c.Post("/login", with_anon, "username=analyst&password=s3cret-pass&csrf=" + csrf,
                     "application/x-www-form-urlencoded");
    // ... (it clears the one failure counted for 'analyst' above.)
    REQUIRE(ok);
    CHECK(ok->status == 303);
    auto cookie = cookie_of(ok);
    CHECK(cookie != with_anon.begin()->second);
    httplib::Headers h = {{"Cookie", cookie}};
    auto page = c.Get("/", h);
    REQUIRE(page);
    CHECK(page->status == 200);
    CHECK(page->body.find("<script>") == std::string::npos); // scripts only from files
    auto token = csrf_of(page->body);
    REQUIRE(token.size() == 64);
    // The anonymous session is gone.
    CHECK(c.Get("/", with_anon)->status == 303);

    // POSTs need the session's token in X-CSRF-Token.
    CHECK(c.Post("/api/sql", h, R"({"sql":"SELECT 1"})", "application/json")->status == 403);
    auto bad = h;
    bad.emplace("X-CSRF-Token", std::string(64, 'b'));
    CHECK(c.Post("/api/sql", bad, R"({"sql":"SELECT 1"})", "application/json")->status == 403);
    auto good = h;
    good.emplace("X-CSRF-Token", token);
    auto q = c.Post("/api/sql", good, R"({"sql":"SELECT COUNT(*) AS n FROM httplog_request"})",
                    "application/json");
    REQUIRE(q);
    CHECK(q->status == 200);
    CHECK(nlohmann::json::parse(q->body)["rows"][0][0] == 20);
    auto cross_api = good;
    cross_api.emplace("Origin", "http://evil.example");
    CHECK(c.Post("/api/sql", cross_api, R"({"sql":"SELECT 1"})", "application/json")->status
          == 403);
    // Writes through the API are refused and say so; the data stays.
    auto w = c.Post("/api/sql", good, R"({"sql":"DELETE FROM httplog_request"})",
                    "application/json");
    CHECK(w->status == 403);
    CHECK(nlohmann::json::parse(w->body)["error"].get<std::string>().find("read-only")
          != std::string::npos);
    CHECK(c.Post("/api/overview", good, "not json", "application/json")->status == 400);
    auto ov = c.Post("/api/overview", good, R"({"threshold":0,"limit":5})", "application/json");
    REQUIRE(ov);
    CHECK(nlohmann::json::parse(ov->body)["total"] == 20);

    // Static files: served, no traversal, no templates.
    CHECK(c.Get("/static/console.js")->status == 200);
    CHECK(c.Get("/static/..%2Fconsole_server.cpp")->status == 404);
    CHECK(c.Get("/static/console.html")->status == 404);

    // Logout needs the token too, and ends the session.
    CHECK(c.Post("/logout", h, "", "application/x-www-form-urlencoded")->status == 403);
    auto out = c.Post("/logout", h, "csrf=" + token, "application/x-www-form-urlencoded");
    CHECK(out->status == 303);
    CHECK(c.Get("/", h)->status == 303);
    CHECK(c.Post("/api/sql", good, R"({"sql":"SELECT 1"})", "application/json")->status == 401);

    // Guessing: after 5 wrong passwords for one account, even the right one is refused for
    // a while (429, Retry-After), without a word on whether it was right. (A fresh anonymous
    // session: the one above became the login's.)
    auto again = c.Get("/login");
    REQUIRE(again);
    with_anon = {{"Cookie", cookie_of(again)}};
    csrf = csrf_of(again->body);
    for (int i = 0; i < 5; ++i) {
      auto bad_pw = c.Post("/login", with_anon,
                           "username=analyst&password=guess-" + std::to_string(i) + "&csrf=" + csrf,
                           "application/x-www-form-urlencoded");
      REQUIRE(bad_pw);
      CHECK(bad_pw->status == 401);
    }
    auto blocked = c.Post("/login", with_anon, "username=analyst&password=s3cret-pass&csrf=" + csrf,
                          "application/x-www-form-urlencoded");
    REQUIRE(blocked);
    CHECK(blocked->status == 429);
    CHECK(std::stoi(blocked->get_header_value("Retry-After")) > 800);
    CHECK(blocked->body.find("Too many failed logins") != std::string::npos);
    CHECK(blocked->get_header_value("Set-Cookie").empty()); // no session came of it

    server->stop();
    t.join();
  }

  TEST_CASE("the login throttle: per account and per address, in windows that end") {
    throttle_limits l;
    l.per_user = 3;
    l.per_address = 5;
    l.window_ns = 60'000'000'000;
    login_throttle t{l};
    int64_t now = 1'000'000'000'000;
    for (int i = 0; i < 3; ++i) {
      CHECK(t.wait_s("alice", "10.0.0.1", now) == 0);
      t.failed("alice", "10.0.0.1", now);
    }
    CHECK(t.wait_s("alice", "10.0.0.1", now) == 60);
    CHECK(t.wait_s("alice", "10.0.0.9", now + 30'000'000'000) == 30); // any address
    CHECK(t.wait_s("bob", "10.0.0.1", now) == 0);                     // another account
    t.failed("bob", "10.0.0.1", now);
    t.failed("carol", "10.0.0.1", now);
    CHECK(t.wait_s("dave", "10.0.0.1", now) == 60); // 5 failures from this address
    CHECK(t.wait_s("dave", "10.0.0.2", now) == 0);
    CHECK(t.wait_s("alice", "10.0.0.2", now + 60'000'000'000) == 0); // the window ended
    t.failed("erin", "10.0.0.3", now);
    t.succeeded("erin");
    t.failed("erin", "10.0.0.3", now);
    t.failed("erin", "10.0.0.3", now);
    CHECK(t.wait_s("erin", "10.0.0.4", now) == 0); // the good login cleared the count
  }

} // TEST_SUITE
