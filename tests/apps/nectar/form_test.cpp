// Nectar's pure parts: strict form parsing and field checks, HTML escaping, credentials
// (scrypt, tokens, HMAC, constant-time compare) and the httplog_request row of a request
// (W3C fields, base64 for bytes that are not UTF-8, the 1 MiB cut).
#include "apps/nectar/capture_record.hpp"
#include "apps/nectar/credentials.hpp"
#include "apps/nectar/form.hpp"
#include "apps/nectar/httplog.hpp"
#include "apps/nectar/pages.hpp"
#include "apps/nectar/traffic.hpp"
#include "base/base64.hpp"
#include "base/errc.hpp"

#include <doctest/doctest.h>

using namespace comb;
using namespace comb::nectar;
using nlohmann::json;

TEST_SUITE("apps.nectar.form") {
  TEST_CASE("forms decode strictly and name what is wrong") {
    auto f = parse_form("username=al+ice&text=%3Cb%3E%20x&empty=&flag");
    REQUIRE(f);
    CHECK(field(*f, "username") == "al ice");
    CHECK(field(*f, "text") == "<b> x");
    CHECK(field(*f, "empty").empty());
    CHECK(f->count("flag") == 1);
    CHECK(field(*f, "absent").empty());
    auto bad = parse_form("a=1&b=%zz");
    REQUIRE_FALSE(bad);
    CHECK(is(bad.error(), errc::invalid_argument));
    CHECK(describe(bad.error()).find("invalid percent escape at byte 6") != std::string::npos);
    CHECK_FALSE(parse_form("a=%4"));
    CHECK_FALSE(parse_form("a=1&a=2"));
    CHECK_FALSE(parse_form("a=%ff%fe")); // not UTF-8 once decoded
    CHECK(is(parse_form(std::string(max_form_bytes + 1, 'a')).error(), errc::too_large));
    std::string many;
    for (int i = 0; i < 65; ++i)
      many += "f" + std::to_string(i) + "=1&";
    CHECK_FALSE(parse_form(many));
    CHECK(parse_form(""));
  }

  TEST_CASE("field checks") {
    CHECK_FALSE(check_username("alice_01.b-c"));
    CHECK(check_username("al"));
    CHECK(check_username(std::string(33, 'a')));
    CHECK(check_username("al ice"));
    CHECK(check_username("<script>"));
    CHECK_FALSE(check_password("12345678"));
    CHECK(check_password("1234567"));
    CHECK(check_password(std::string(129, 'x')));
    CHECK_FALSE(check_post_text("h\xc3\xa9llo"));
    CHECK(check_post_text(""));
    CHECK(check_post_text(" \n\t"));
    CHECK(check_post_text("\xff"));
    CHECK(check_post_text(std::string(2001, 'x')));
    CHECK(check_display_name("a\x01"));
    CHECK_FALSE(check_search_text(""));
    CHECK(lower_ascii("AbC.d") == "abc.d");
  }

  TEST_CASE("html escaping covers text and attributes") {
    CHECK(html_escape("<a href=\"x\" onclick='y'>&</a>")
          == "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;");
    auto page = search_page({}, {{"q", "\"><script>alert(1)</script>"},
                                 {"users", nlohmann::json::array()},
                                 {"posts", {{{"user", "u"}, {"text", "<img src=x>"}}}}});
    CHECK(page.find("<script>alert") == std::string::npos);
    CHECK(page.find("<img src=x>") == std::string::npos);
    CHECK(page.find("&lt;img src=x&gt;") != std::string::npos);
  }

  TEST_CASE("every page escapes every user-written text: each attack payload of the project's "
            "lists, in every field a page shows") {
    // Each page is rendered with a marker in every user-written field, then with a payload
    // there: the page must be the marker's page with each marker replaced by the escaped
    // payload, so no payload character ever became markup (an unescaped field fails).
    auto render = [](const std::string& v) {
      json user{{"username", v}, {"display_name", v}};
      json post{{"username", v}, {"display_name", v}, {"text", v}, {"ts_ns", 0}};
      page_context c{user, v};
      page_context other{json{{"username", "someone_else"}}, "token"};
      return std::vector<std::string>{
        register_page(c, v, v),
        login_page(c, v, v),
        feed_page(c, json{{"posts", json::array({post})}, {"following", json::array({user})}}),
        profile_page(other, json{{"user", user}, {"posts", json::array({post})}, {"following", 1}}),
        search_page(c, json{{"q", v}, {"users", json::array({user})}, {"posts", json::array({post})}}),
        error_page(c, 400, v)};
    };
    const std::string marker = "Qz7MARKERq";
    auto base = render(marker);
    auto payloads = payload_lists::load(default_payload_dir());
    REQUIRE_MESSAGE(payloads, describe(payloads.error()));
    size_t checked = 0, mismatched = 0;
    for (auto& [family, list] : payloads->attacks)
      for (auto& p : list) {
        if (p.find(marker) != std::string::npos)
          continue;
        auto got = render(p);
        auto escaped = html_escape(p);
        for (size_t i = 0; i < base.size(); ++i) {
          std::string want;
          size_t from = 0;
          for (auto at = base[i].find(marker); at != std::string::npos;
               from = at + marker.size(), at = base[i].find(marker, from))
            want.append(base[i], from, at - from).append(escaped);
          want.append(base[i], from);
          ++checked;
          if (got[i] != want && ++mismatched <= 5)
            FAIL_CHECK("page " << i << " shows a " << family << " payload unescaped: " << p);
        }
      }
    CHECK(mismatched == 0);
    CHECK(checked > 5000);
    // The marker reached every field (the pages show each at least once).
    for (auto& page : base)
      CHECK(page.find(marker) != std::string::npos);
  }

  TEST_CASE("credentials") {
    kdf_params p;
    p.log2_n = 10;
    auto a = hash_password("correct horse", "00112233445566778899aabbccddeeff", p);
    auto b = hash_password("correct horse", "00112233445566778899aabbccddeeff", p);
    auto c = hash_password("correct horsf", "00112233445566778899aabbccddeeff", p);
    REQUIRE(a);
    REQUIRE(b);
    REQUIRE(c);
    CHECK(a->size() == 64);
    CHECK(*a == *b);
    CHECK(*a != *c);
    p.log2_n = 40;
    CHECK_FALSE(hash_password("x", "00", p));
    auto t1 = random_hex(32), t2 = random_hex(32);
    REQUIRE(t1);
    REQUIRE(t2);
    CHECK(t1->size() == 64);
    CHECK(*t1 != *t2);
    CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(hmac_hex("k", "a") != hmac_hex("k", "b"));
    CHECK(equal_constant_time("abc", "abc"));
    CHECK_FALSE(equal_constant_time("abc", "abd"));
    CHECK_FALSE(equal_constant_time("abc", "abcd"));
  }

  TEST_CASE("a request's row") {
    exchange x;
    x.method = "POST";
    x.target = "/search?q=%27%20OR%201%3D1";
    x.version = "HTTP/1.1";
    x.headers = {{"Host", "nectar"},
                 {"User-Agent", "curl/8"},
                 {"Referer", "http://nectar/"},
                 {"Cookie", "nectar_session=abc"},
                 {"X-Nectar-Trace", "t-1"}};
    x.body = "a=b";
    x.remote_addr = "127.0.0.1";
    x.status = 200;
    x.response_bytes = 321;
    x.ts_ns = 1'764'806'400'123'000'000; // 2025-12-04 00:00:00.123 UTC
    x.time_taken_ms = 1.5;
    x.execution_id = 42;
    auto row = capture_row(x);
    CHECK(row["date"] == "2025-12-04");
    CHECK(row["time"] == "00:00:00");
    CHECK(row["cs_method"] == "POST");
    CHECK(row["cs_uri_stem"] == "/search");
    CHECK(row["cs_uri_query"] == "q=%27%20OR%201%3D1");
    CHECK(row["cs_user_agent"] == "curl/8");
    CHECK(row["cs_referer"] == "http://nectar/");
    CHECK(row["cs_cookie"] == "nectar_session=[masked]");
    CHECK(row["masked"] == "cookie");
    CHECK(row["trace_id"] == "t-1");
    CHECK(row["c_ip"] == "127.0.0.1");
    CHECK(row["sc_status"] == 200);
    CHECK(row["sc_bytes"] == 321);
    CHECK(row["execution_id"] == 42);
    CHECK(row["raw_encoding"] == "text");
    CHECK(row["truncated"] == false);
    auto raw = raw_request(x);
    CHECK(row["raw"] == raw_request(mask_credentials(x)));
    CHECK(row["cs_bytes"] == raw.size());
    CHECK(row["raw"].get<std::string>().find("abc") == std::string::npos);
    CHECK(raw.rfind("POST /search?q=%27%20OR%201%3D1 HTTP/1.1\r\nHost: nectar\r\n", 0) == 0);

    x.body = std::string("\xff\xfe", 2) + std::string(max_raw_bytes, 'z');
    row = capture_row(x);
    CHECK(row["raw_encoding"] == "base64");
    CHECK(row["truncated"] == true);
    auto back = base64_decode(row["raw"].get<std::string>());
    REQUIRE(back);
    CHECK(back->size() == max_raw_bytes);
    CHECK(*back == raw_request(mask_credentials(x)).substr(0, max_raw_bytes));
    CHECK(row["cs_bytes"] == raw_request(x).size());

    // A body the server kept only the start of, or none of (a 413 for its Content-Length):
    // marked truncated, and cs_bytes counts it as it was sent.
    x.body = std::string(max_raw_bytes + 1, 'y');
    x.body_bytes = 3 * max_raw_bytes;
    row = capture_row(x);
    CHECK(row["truncated"] == true);
    CHECK(row["cs_bytes"] == raw_request(x).size() - x.body.size() + x.body_bytes);
    x.body.clear();
    x.body_bytes = 99999999;
    row = capture_row(x);
    CHECK(row["truncated"] == true);
    CHECK(row["raw"] == raw_request(mask_credentials(x)));
    CHECK(row["cs_bytes"] == raw_request(x).size() + 99999999);
    x.body = "short";
    x.body_bytes = 0;
    CHECK(capture_row(x)["truncated"] == false);
  }

  TEST_CASE("credentials are masked in the row: cookie values, Authorization, password fields") {
    exchange x;
    x.method = "POST";
    x.target = "/login?next=%2F&PassWord=q-secret&pwd2=q2";
    x.version = "HTTP/1.1";
    x.headers = {{"Authorization", "Basic YWxpY2U6c2VjcmV0"},
                 {"Content-Type", "application/x-www-form-urlencoded"},
                 {"Cookie", "nectar_session=0123abcd; theme=dark;flag"},
                 {"cookie", "other=tok-9"},
                 {"Proxy-Authorization", "opaque-credential"},
                 {"User-Agent", "agent"}};
    x.body = "username=alice&password=correct+horse&csrf=c1&new_passwd=n3w&text=pass";
    x.status = 303;
    std::vector<std::string> what;
    auto m = mask_credentials(x, &what);
    CHECK(m.target == "/login?next=%2F&PassWord=masked&pwd2=masked");
    CHECK(m.body == "username=alice&password=masked&csrf=c1&new_passwd=masked&text=pass");
    CHECK(header_value(m, "Authorization") == "Basic [masked]");
    CHECK(header_value(m, "Proxy-Authorization") == "[masked]");
    CHECK(m.headers[2].second == "nectar_session=[masked]; theme=[masked];[masked]");
    CHECK(m.headers[3].second == "other=[masked]");
    CHECK(header_value(m, "User-Agent") == "agent");
    CHECK(what
          == std::vector<std::string>{"cookie", "authorization", "query:PassWord", "query:pwd2",
                                      "form:password", "form:new_passwd"});
    auto row = capture_row(x);
    CHECK(row["masked"] == "cookie,authorization,query:PassWord,query:pwd2,form:password,"
                           "form:new_passwd");
    CHECK(row["cs_cookie"] == "nectar_session=[masked]; theme=[masked];[masked]");
    CHECK(row["cs_uri_query"] == "next=%2F&PassWord=masked&pwd2=masked");
    CHECK(row["cs_bytes"] == raw_request(x).size());
    auto text = row.dump();
    for (auto* secret : {"0123abcd", "dark", "tok-9", "YWxpY2U6c2VjcmV0", "opaque-credential",
                         "correct", "q-secret", "n3w"})
      CHECK_MESSAGE(text.find(secret) == std::string::npos, secret << " is in the row");
    // A masked field whose name is not UTF-8 is named printably: the row stays valid JSON.
    exchange y;
    y.method = "GET";
    y.target = "/x?pass\xff=1";
    y.version = "HTTP/1.1";
    auto yrow = capture_row(y);
    CHECK(yrow["masked"] == "query:pass\\xff");
    CHECK_NOTHROW(yrow.dump());
    // A body that is not a form keeps its bytes (only forms have fields to mask).
    x.headers[1].second = "application/json";
    x.body = "password=raw";
    CHECK(mask_credentials(x).body == "password=raw");
  }

  TEST_CASE("the model's input has no Host and no trace id; the row keeps them") {
    exchange x;
    x.method = "GET";
    x.target = "/search?q=x";
    x.version = "HTTP/1.1";
    x.headers = {{"Host", "nectar"},
                 {"User-Agent", "curl/8"},
                 {"x-nectar-TRACE", "t-1"},
                 {"Referer", "http://nectar/host: x"}};
    x.body = "Host: body\r\nX-Nectar-Trace: stays in the body";
    auto raw = raw_request(x);
    CHECK(raw.find("t-1") != std::string::npos);
    auto in = model_input(raw);
    CHECK(in
          == "GET /search?q=x HTTP/1.1\r\nUser-Agent: curl/8\r\n"
             "Referer: http://nectar/host: x\r\n\r\n"
             "Host: body\r\nX-Nectar-Trace: stays in the body");
    // A header block cut short (a 1 MiB cut) or a lone request line is kept as it is.
    CHECK(model_input("GET / HTTP/1.1") == "GET / HTTP/1.1");
    CHECK(model_input("GET / HTTP/1.1\r\nHost: a\r\nX-Nect") == "GET / HTTP/1.1\r\nX-Nect");
  }
}
