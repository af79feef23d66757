// Nectar end to end over real HTTP on loopback: a `comb node` child, the Nectar server in this
// process (capture on, rules on). Register, log in, post, follow, feed, search, profile, log
// out, with the session cookie and form tokens as a browser keeps them; forms without a valid
// token are refused; an XSS payload comes back escaped and SQL-looking text is just text;
// malformed HTTP (bad request line, bad percent escapes, binary body, a 10 MB header) gets a
// 4xx and the server keeps serving; and every request the server answered becomes exactly one
// httplog_request row with the spec's fields.
#include "apps/nectar/server.hpp"
#include "runtime/system_config.hpp"
#include "tests/apps/nectar/nectar_util.hpp"
#include "tests/client_util.hpp"

#include <doctest/doctest.h>

using namespace comb;
using nlohmann::json;

namespace {

bool has(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

/// Every row of httplog_request.
json all_rows(runtime::client& c) {
  json rows = json::array();
  std::string after;
  for (;;) {
    auto r = c.call("httplog.rows",
                    json{{"table", "request"}, {"after", after}, {"limit", 1000}}.dump(), "admin");
    REQUIRE_MESSAGE(r, test::why(r));
    for (auto& row : (*r)["rows"])
      rows.push_back(row);
    if ((*r)["rows"].size() < 1000)
      return rows;
    after = (*r)["last"];
  }
}

} // namespace

TEST_SUITE("apps.nectar.site") {
  TEST_CASE("the site works, escapes what users write, refuses bad input and captures it all") {
    test::temp_dir dir;
    test::node_child node{dir, {"--no-provenance"}};
    runtime::system_config cfg{2};
    caf::actor_system sys{cfg};
    auto c = test::connect_retry(sys, node.port());
    REQUIRE_MESSAGE(c, test::why(c));

    nectar::server_options so;
    so.node = {"127.0.0.1", node.port()};
    so.port = 0;
    so.threads = 8;
    so.kdf.log2_n = 10; // fast hashes for the test; the default is 14
    so.capture_opts.label = false;
    so.capture_opts.rules_threads = 2; // CRS off the HTTP threads (labels_test: on them)
    so.capture_opts.rules_executable = test::comb_binary(); // CRS in worker processes
    so.capture_opts.at_arrival = true;  // rows follow their responses (traffic_test: after)
    auto srv = nectar::server::start(sys, so);
    REQUIRE_MESSAGE(srv, test::why(srv));
    auto port = (*srv)->port();

    test::browser alice{port};
    auto r = alice.get("/register");
    REQUIRE(r);
    CHECK(r->status == 200);
    auto set_cookie = r->get_header_value("Set-Cookie");
    CHECK(has(set_cookie, "HttpOnly"));
    CHECK(has(set_cookie, "SameSite=Lax"));
    CHECK(has(r->get_header_value("Content-Security-Policy"), "default-src 'none'"));
    CHECK(r->get_header_value("X-Content-Type-Options") == "nosniff");
    CHECK_FALSE(has(r->body, "<script"));
    REQUIRE(alice.csrf.size() == 64);

    // No token, a wrong token: 403, nothing registered.
    r = alice.post("/register", {{"username", "alice"}, {"password", "correct horse"}}, false);
    REQUIRE(r);
    CHECK(r->status == 403);
    auto good_csrf = alice.csrf;
    alice.csrf = std::string(64, 'a');
    r = alice.post("/register", {{"username", "alice"}, {"password", "correct horse"}});
    CHECK(r->status == 403);
    alice.csrf = good_csrf;
    // Invalid input: 400 naming the problem.
    r = alice.post("/register", {{"username", "a!"}, {"password", "correct horse"}});
    CHECK(r->status == 400);
    CHECK_MESSAGE(has(r->body, "username must be 3 to 32 characters"), r->body);
    r = alice.post("/register", {{"username", "alice"}, {"password", "short"}});
    CHECK(r->status == 400);
    CHECK(has(r->body, "password must be 8 to 128 bytes"));
    // Registered and logged in.
    auto anon_cookie = alice.cookie;
    r = alice.post("/register", {{"username", "alice"},
                                 {"password", "correct horse"},
                                 {"display_name", "Alice <b>A</b>"}});
    REQUIRE(r);
    CHECK(r->status == 303);
    CHECK(r->get_header_value("Location") == "/");
    CHECK(alice.cookie != anon_cookie); // a fresh session token at login
    r = alice.get("/");
    CHECK(r->status == 200);
    CHECK(has(r->body, "Your feed"));
    CHECK(has(r->body, "Alice &lt;b&gt;A&lt;/b&gt;"));
    CHECK_FALSE(has(r->body, "<b>A</b>"));

    // A taken name: 409.
    test::browser mallory{port};
    mallory.get("/register");
    r = mallory.post("/register", {{"username", "ALICE"}, {"password", "another pass"}});
    CHECK(r->status == 409);
    CHECK(has(r->body, "is taken"));

    // Posts: an XSS payload and SQL-looking text come back as text.
    std::string xss = "<script>alert('x')</script><img src=x onerror=alert(1)>";
    std::string sql = "'; DROP TABLE nectar.users; -- \" OR 1=1";
    r = alice.post("/post", {{"text", xss}});
    CHECK(r->status == 303);
    CHECK(r->get_header_value("Location") == "/feed");
    r = alice.post("/post", {{"text", sql}}, true, {{"X-Nectar-Trace", "trace-sql"}});
    CHECK(r->status == 303);
    r = alice.post("/post", {{"text", ""}});
    CHECK(r->status == 400);
    CHECK(has(r->body, "post text must be 1 to 2000 bytes"));
    r = alice.get("/feed");
    REQUIRE(r->status == 200);
    CHECK_FALSE(has(r->body, "<script>alert"));
    CHECK_FALSE(has(r->body, "<img src=x"));
    CHECK(has(r->body, "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&lt;img src=x "
                       "onerror=alert(1)&gt;"));
    CHECK(has(r->body, "&#39;; DROP TABLE nectar.users; -- &quot; OR 1=1"));

    // Bob follows alice and sees her posts; profile and search.
    test::browser bob{port};
    bob.get("/register");
    r = bob.post("/register", {{"username", "bob.b"}, {"password", "bob's password"}});
    CHECK(r->status == 303);
    r = bob.get("/feed");
    CHECK_FALSE(has(r->body, "DROP TABLE"));
    r = bob.get("/u/alice");
    REQUIRE(r->status == 200);
    CHECK(has(r->body, "action=\"/follow\""));
    r = bob.post("/follow", {{"username", "alice"}});
    CHECK(r->status == 303);
    CHECK(r->get_header_value("Location") == "/u/alice");
    r = bob.get("/feed");
    CHECK(has(r->body, "DROP TABLE"));
    r = bob.get("/u/alice");
    CHECK(has(r->body, "action=\"/unfollow\""));
    r = bob.post("/follow", {{"username", "nobody_here"}});
    CHECK(r->status == 404);
    r = bob.get("/search?q=drop%20table");
    REQUIRE(r->status == 200);
    CHECK(has(r->body, "DROP TABLE"));
    r = bob.get("/search?q=ALI");
    CHECK(has(r->body, "href=\"/u/alice\""));
    r = bob.get("/u/nobody_here");
    CHECK(r->status == 404);
    r = bob.post("/unfollow", {{"username", "alice"}});
    CHECK(r->status == 303);
    r = bob.get("/feed");
    CHECK_FALSE(has(r->body, "DROP TABLE"));

    // Log out; then log in again (wrong password first).
    r = bob.post("/logout", {});
    CHECK(r->status == 303);
    r = bob.get("/feed");
    CHECK(r->status == 303);
    CHECK(r->get_header_value("Location") == "/login");
    bob.get("/login");
    r = bob.post("/login", {{"username", "bob.b"}, {"password", "wrong password"}});
    CHECK(r->status == 403);
    CHECK(has(r->body, "wrong username or password"));
    r = bob.post("/login", {{"username", "nobody_here"}, {"password", "wrong password"}});
    CHECK(r->status == 403);
    r = bob.post("/login", {{"username", "BOB.B"}, {"password", "bob's password"}});
    CHECK(r->status == 303);
    r = bob.get("/");
    CHECK(has(r->body, "Your feed"));

    r = bob.get("/static/nectar.css");
    CHECK(r->status == 200);
    CHECK(has(r->get_header_value("Content-Type"), "text/css"));
    r = bob.get("/healthz");
    CHECK(r->body == "ok");
    r = bob.get("/no/such/page");
    CHECK(r->status == 404);
    int answered = alice.answered + bob.answered + mallory.answered;

    // Malformed HTTP: a 4xx each, and the server keeps serving.
    CHECK(test::raw_request(port, "GARBAGE\r\n\r\n") == 400);
    CHECK(test::raw_request(port, "GET /search?q=%zz HTTP/1.1\r\nHost: x\r\n\r\n") == 400);
    CHECK(test::raw_request(port, "GET /u/%41%4 HTTP/1.1\r\nHost: x\r\n\r\n") == 400);
    std::string binary = "\x00\xff\xfe\x01\x80 binary";
    binary.append(300, '\xc3');
    CHECK(test::raw_request(port,
                            "POST /post HTTP/1.1\r\nHost: x\r\nCookie: nectar_session=" + bob.cookie
                              + "\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                                "Content-Length: "
                              + std::to_string(binary.size()) + "\r\n\r\n" + binary)
          == 400);
    CHECK(test::raw_request(port,
                            "POST /post HTTP/1.1\r\nHost: x\r\nContent-Type: "
                            "application/octet-stream\r\nContent-Length: 4\r\n\r\n\x01\x02\x03\x04")
          == 415);
    CHECK(test::raw_request(port, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: "
                                    + std::string(10 << 20, 'a') + "\r\n\r\n")
          == 400);
    CHECK(
      test::raw_request(port, "POST /post HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n")
      == 413);
    // A body over 1 MiB (within the 2 MiB the server reads): 415, its row cut at 1 MiB. (A
    // form body over 8 KiB gets 413 from httplib before any handler.)
    std::string big_body = std::string(1536 * 1024, 'b');
    CHECK(test::raw_request(port, "POST /post HTTP/1.1\r\nHost: x\r\nContent-Type: "
                                  "text/plain\r\nContent-Length: "
                                    + std::to_string(big_body.size()) + "\r\n\r\n" + big_body)
          == 415);
    answered += 8;
    // A blank line after an answered request is no request of its own (httplib answers it
    // with a 400; it gets no row): one row here, not two.
    auto two = test::raw_requests(port, {"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", "\r\n"});
    CHECK(two == std::vector<int>{200, 400});
    answered += 1;
    r = bob.get("/healthz", {{"X-Nectar-Trace", "trace-after"}});
    REQUIRE(r);
    CHECK(r->status == 200);
    ++answered;

    // Capture: exactly one row per answered request, with the spec's fields.
    json rows;
    REQUIRE(test::wait_until(
      [&] {
        rows = all_rows(*c);
        return rows.size() >= static_cast<size_t>(answered);
      },
      std::chrono::seconds{30}, "a captured row for each request"));
    CHECK(rows.size() == static_cast<size_t>(answered));
    auto st = (*srv)->stats();
    CHECK(st.captured == static_cast<uint64_t>(answered));
    CHECK(st.dropped == 0);
    std::map<std::string, json> by_trace;
    int with_exec = 0, flagged = 0, garbage = 0;
    for (auto& row : rows) {
      for (auto* f : {"date",         "time",         "ts_ns",        "c_ip",          "cs_method",
                      "cs_uri_stem",  "cs_uri_query", "sc_status",    "cs_user_agent", "cs_referer",
                      "cs_cookie",    "cs_bytes",     "sc_bytes",     "time_taken_ms", "raw",
                      "raw_encoding", "truncated",    "execution_id", "rule_label",    "rule_ids",
                      "rule_score",   "trace_id",     "labeled_from"})
        CHECK_MESSAGE(row.contains(f), f << " missing in " << row.dump().substr(0, 300));
      if (row.value("trace_id", "") != "")
        by_trace[row["trace_id"]] = row;
      with_exec += row.value("execution_id", uint64_t{0}) != 0;
      flagged += row.value("rule_label", 0);
      garbage += row.value("sc_status", 0) == 400 && row.value("raw", "").rfind("GARBAGE", 0) == 0;
    }
    REQUIRE(by_trace.count("trace-sql"));
    auto& sq = by_trace["trace-sql"];
    CHECK(sq["cs_method"] == "POST");
    CHECK(sq["cs_uri_stem"] == "/post");
    CHECK(sq["sc_status"] == 303);
    CHECK(sq["c_ip"] == "127.0.0.1");
    CHECK(sq["execution_id"].get<uint64_t>() != 0);
    CHECK(has(sq["raw"].get<std::string>(), "DROP%20TABLE"));
    CHECK(has(sq["cs_cookie"].get<std::string>(), "nectar_session="));
    CHECK(sq["rule_label"] == 1); // CRS flags the SQL injection
    CHECK(sq["rule_score"].get<int>() >= 5);
    CHECK(has(sq["rule_ids"].get<std::string>(), "949110"));
    REQUIRE(by_trace.count("trace-after"));
    CHECK(by_trace["trace-after"]["cs_uri_stem"] == "/healthz");
    CHECK(by_trace["trace-after"]["execution_id"] == 0);
    CHECK(with_exec > 20);
    CHECK(flagged >= 2);
    CHECK(garbage >= 1);
    // The binary body is kept as base64; the 1.5 MiB body is cut at 1 MiB and marked; the
    // body refused for its Content-Length (413, never read) is marked too: both rows count
    // the bytes as they were sent.
    int b64 = 0, cut = 0, cut_1536k = 0, cut_413 = 0;
    for (auto& row : rows) {
      b64 += row.value("raw_encoding", "") == "base64";
      if (!row.value("truncated", false))
        continue;
      ++cut;
      auto bytes = row.value("cs_bytes", uint64_t{0});
      if (row.value("sc_status", 0) == 415) {
        cut_1536k += bytes > 1536 * 1024 && bytes < 1536 * 1024 + 1024;
        CHECK(row.value("raw", "").size() == nectar::max_raw_bytes);
      }
      if (row.value("sc_status", 0) == 413)
        cut_413 += bytes > 99999999 && bytes < 99999999 + 1024;
    }
    CHECK(b64 >= 1);
    CHECK(cut == 2);
    CHECK(cut_1536k == 1);
    CHECK(cut_413 == 1);
    (*srv)->stop();
  }
}
