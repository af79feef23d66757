// apps.console.auth: passwords (scrypt), accounts in the node's console.accounts table (a
// `comb node` child), sessions and CSRF, and the server's checks through real HTTP on
// loopback: nothing without a login, no login or POST without the session's CSRF token, a new
// session id at login, logout ends the session, every response carries the security headers,
// no login while the node cannot answer; and a request row over 64 KiB, which the SQL store
// keeps as a digest, shown in the popup from the Comb table.
#include "apps/console/accounts.hpp"
#include "apps/console/console_server.hpp"
#include "apps/console/sessions.hpp"
#include "base/errc.hpp"
#include "runtime/system_config.hpp"
#include "tests/apps/console/console_fixture.hpp"
#include "tests/apps/nectar/nectar_util.hpp"
#include "tests/test_util.hpp"

#include <doctest/doctest.h>
#include <httplib.h>

#include <fstream>
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

// A `comb node` child with its data in a fresh folder, an actor system, and a console link to
// the node calling as `role`.
struct with_node {
  comb::test::temp_dir dir;
  comb::test::node_child node;
  comb::runtime::system_config cfg{2};
  caf::actor_system sys{cfg};
  console_link link;
  explicit with_node(std::vector<std::string> flags, std::string role = "console")
    : node{dir, std::move(flags)}, link{sys, {"127.0.0.1", node.port()}, std::move(role)} {}
};

// A console on a free loopback port over `store`, its accounts on the node at `node_port`;
// stopped when it goes out of scope.
struct served_console {
  std::unique_ptr<console_server> server;
  int port = 0;
  std::thread thread;
  served_console(caf::actor_system& sys, const std::string& store, uint16_t node_port) {
    console_options o;
    o.sql_file = store;
    o.system = &sys;
    o.node = {"127.0.0.1", node_port};
    o.port = 0;
    server = comb::test::must(console_server::make(o));
    port = comb::test::must(server->bind());
    thread = std::thread([this] { server->run(); });
  }
  ~served_console() {
    server->stop();
    thread.join();
  }
};

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

  TEST_CASE("accounts live in the node's console.accounts table, as hashes, and survive a "
            "node restart") {
    with_node f{{"--no-provenance"}};
    auto& node = f.node;
    auto& link = f.link;
    accounts acc{link};
    REQUIRE_FALSE(acc.set_user("alice", "password1", cheap));
    CHECK(comb::test::must(acc.check("alice", "password1")));
    CHECK_FALSE(comb::test::must(acc.check("alice", "password2")));
    CHECK_FALSE(comb::test::must(acc.check("bob", "password1")));
    CHECK_FALSE(comb::test::must(acc.check("bo b<", "password1")));
    REQUIRE_FALSE(acc.set_user("alice", "password2", cheap));
    CHECK(comb::test::must(acc.check("alice", "password2")));
    CHECK_FALSE(comb::test::must(acc.check("alice", "password1")));
    auto short_pw = acc.set_user("bob", "short", cheap);
    CHECK(comb::is(short_pw, comb::errc::invalid_argument));
    CHECK(comb::describe(short_pw).find("8 to 1024") != std::string::npos);
    CHECK(comb::is(acc.set_user("bo b<", "password1", cheap), comb::errc::invalid_argument));
    CHECK(comb::test::must(acc.users()) == std::vector<std::string>{"alice"});

    // The table keeps a hash, never the password; the procedures refuse a plain password
    // and keep the hashes out of request_raw's reach.
    auto row = comb::test::must(link.call("console.account_get", {{"username", "alice"}}));
    auto hash = row.value("password_hash", "");
    CHECK(hash.rfind("scrypt$1024$8$1$", 0) == 0);
    CHECK(hash.find("password2") == std::string::npos);
    auto plain = link.call("console.account_set",
                           {{"username", "eve"}, {"password_hash", "password1"}, {"now", 1}});
    REQUIRE_FALSE(plain);
    CHECK(comb::is(plain.error(), comb::errc::invalid_argument));
    auto peek = link.call("console.request_raw", {{"table", "console.accounts"}, {"id", "alice"}});
    REQUIRE_FALSE(peek);
    CHECK(comb::is(peek.error(), comb::errc::permission_denied));
    CHECK(comb::is(link.call("console.account_get", {{"username", "bob"}}).error(),
                   comb::errc::not_found));

    // The node goes away: no one is let in, and the error says why; after its restart (same
    // data) the account is there.
    node.kill();
    auto away = acc.check("alice", "password2");
    REQUIRE_FALSE(away);
    CHECK(comb::describe(away.error()).find(node.addr()) != std::string::npos);
    node.start();
    bool back = comb::test::wait_until(
      [&] {
        auto r = acc.check("alice", "password2");
        return r && *r;
      },
      std::chrono::seconds{30}, "the restarted node to answer for alice");
    CHECK(back);
  }

  TEST_CASE("the console needs a node") {
    comb::test::temp_dir dir;
    auto store = dir.path() + "/store.sqlite";
    comb::test::console::make_store(store, 3);
    console_options o;
    o.sql_file = store;
    auto made = console_server::make(o);
    REQUIRE_FALSE(made);
    CHECK(comb::is(made.error(), comb::errc::invalid_argument));
    CHECK(comb::describe(made.error()).find("--node") != std::string::npos);
    // A PostgreSQL store is refused by name, its password not echoed.
    o.sql_file = "postgresql://u:secret@127.0.0.1/comb";
    made = console_server::make(o);
    REQUIRE_FALSE(made);
    CHECK(comb::describe(made.error()).find("PostgreSQL") != std::string::npos);
    CHECK(comb::describe(made.error()).find("secret") == std::string::npos);
    // A file that is not a database: refused at start (it served, and failed on every page).
    o.sql_file = dir.path() + "/notes.txt";
    std::ofstream{o.sql_file} << "not a database, though long enough to look like one's header\n";
    made = console_server::make(o);
    REQUIRE_FALSE(made);
    CHECK(comb::describe(made.error()).find("notes.txt is not an SQLite database")
          != std::string::npos);
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
    with_node f{{"--no-provenance"}};
    auto store = f.dir.path() + "/store.sqlite";
    comb::test::console::make_store(store, 20);
    REQUIRE_FALSE(accounts{f.link}.set_user("analyst", "s3cret-pass", cheap));
    served_console console{f.sys, store, f.node.port()};
    httplib::Client c("127.0.0.1", console.port);
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
  }

  TEST_CASE("a request over 64 KiB: the store keeps its digest, the popup shows the bytes from "
            "the Comb table, or says where they are") {
    with_node f{{}, "admin"};
    auto& node = f.node;
    auto& link = f.link;
    std::string raw = "POST /post HTTP/1.1\r\nHost: nectar\r\n\r\ntext=";
    for (int i = 0; raw.size() < 100 * 1024; ++i)
      raw += "<b>" + std::to_string(i) + "</b>";
    nlohmann::json req{{"id", "big-1"},       {"ts_ns", comb::test::console::fixture_t0_ns},
                       {"cs_method", "POST"}, {"cs_uri_stem", "/post"},
                       {"raw", raw},          {"raw_encoding", "text"},
                       {"sc_status", 200}};
    auto captured = link.call(
      "httplog.capture", {{"batch", "b1"}, {"requests", nlohmann::json::array({req})}, {"now", 1}});
    REQUIRE_MESSAGE(captured, comb::test::why(captured));
    REQUIRE_FALSE(accounts{link}.set_user("analyst", "s3cret-pass", cheap));

    // The spooler writes the row into the node's SQL store with raw as the digest marker.
    auto store = f.dir.path() + "/node/provenance.sqlite";
    std::string cell;
    comb::test::wait_until(
      [&] {
        auto db = readonly_db::open(store);
        if (!db)
          return false;
        auto r = (*db)->run("SELECT raw FROM httplog_request WHERE row_key = 'big-1'",
                            nlohmann::json::array(), {std::chrono::milliseconds(2000), 1});
        if (!r || r->rows.empty() || !r->rows[0][0].is_string())
          return false;
        cell = r->rows[0][0].get<std::string>();
        return true;
      },
      std::chrono::seconds{30}, "the spooled big-1 row");
    REQUIRE_MESSAGE(cell.find("$comb_elided") != std::string::npos, cell.substr(0, 200));

    served_console console{f.sys, store, node.port()};
    httplib::Client c("127.0.0.1", console.port);
    c.set_read_timeout(std::chrono::seconds(30));
    auto login = c.Get("/login");
    REQUIRE(login);
    httplib::Headers h = {{"Cookie", cookie_of(login)}};
    auto ok = c.Post("/login", h,
                     "username=analyst&password=s3cret-pass&csrf=" + csrf_of(login->body),
                     "application/x-www-form-urlencoded");
    REQUIRE(ok);
    REQUIRE(ok->status == 303);
    h = {{"Cookie", cookie_of(ok)}};
    auto page = c.Get("/", h);
    h.emplace("X-CSRF-Token", csrf_of(page->body));

    auto record = [&] {
      auto r = c.Post("/api/record", h, R"({"id":"big-1"})", "application/json");
      REQUIRE(r);
      REQUIRE(r->status == 200);
      return nlohmann::json::parse(r->body);
    };
    auto field = [](const nlohmann::json& rec, const std::string& name) {
      for (auto& f : rec["fields"])
        if (f[0] == name)
          return f[1];
      return nlohmann::json();
    };
    auto rec = record();
    CHECK(field(rec, "raw") == raw);
    REQUIRE(rec["elided"].size() == 1);
    CHECK(rec["elided"][0]["fetched"] == true);
    CHECK(rec["elided"][0]["digest_ok"] == true);
    CHECK(rec["elided"][0]["size"] == raw.size());
    CHECK(rec["elided"][0]["text"].get<std::string>().find("httplog_request") != std::string::npos);

    // Without the node, the popup says where the bytes are and why they are not shown.
    node.kill();
    rec = record();
    CHECK(field(rec, "raw").get<std::string>().find("$comb_elided") != std::string::npos);
    REQUIRE(rec["elided"].size() == 1);
    CHECK(rec["elided"][0]["fetched"] == false);
    auto text = rec["elided"][0]["text"].get<std::string>();
    CHECK(text.find("the Comb table httplog_request, key big-1") != std::string::npos);
    CHECK(text.find(node.addr()) != std::string::npos);
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
