// Tests of comb::anomaly::http_request parsing and the model text form.
#include "apps/anomaly/http_request.hpp"

#include "base/errc.hpp"

#include <doctest/doctest.h>

using namespace comb;
using namespace comb::anomaly;

namespace {

// The paper's form, digits as they are.
text_options paper() {
  text_options o;
  o.zero_digits = false;
  o.fold_value_letters = false;
  return o;
}

} // namespace

TEST_SUITE("apps.anomaly.http_request") {
  TEST_CASE("a GET with CRLF line ends parses into request line and fields") {
    std::string raw = "GET http://localhost:8080/a.jsp?x=1 HTTP/1.1\r\n"
                      "User-Agent: Mozilla/5.0\r\n"
                      "Cookie: JSESSIONID=ABC\r\n"
                      "Host: localhost:8080\r\n\r\n\r\n";
    auto r = parse_http_request(raw);
    REQUIRE(r);
    CHECK(r->method == "GET");
    CHECK(r->url == "http://localhost:8080/a.jsp?x=1");
    CHECK(r->version == "HTTP/1.1");
    REQUIRE(r->headers.size() == 3);
    CHECK(r->headers[0].first == "User-Agent");
    CHECK(r->headers[0].second == "Mozilla/5.0");
    CHECK(r->body.empty());
    auto keep = paper();
    keep.cookie = text_options::cookie_mode::keep;
    CHECK(to_model_text(*r, keep)
          == "GET http://localhost:8080/a.jsp?x=1 HTTP/1.1 User-Agent: Mozilla/5.0 "
             "Cookie: JSESSIONID=ABC Host: localhost:8080");
    // Default: the Cookie value is left out; dropping removes the field.
    CHECK(to_model_text(*r, paper())
          == "GET http://localhost:8080/a.jsp?x=1 HTTP/1.1 User-Agent: "
             "Mozilla/5.0 Cookie: Host: localhost:8080");
    auto drop = paper();
    drop.cookie = text_options::cookie_mode::drop;
    drop.sort_headers = true;
    CHECK(to_model_text(*r, drop)
          == "GET http://localhost:8080/a.jsp?x=1 HTTP/1.1 Host: localhost:8080 "
             "User-Agent: Mozilla/5.0");
  }

  TEST_CASE("a POST whose body ends in LF only keeps the body") {
    std::string raw = "POST http://h/p HTTP/1.1\r\nContent-Length: 7\r\n\r\nid=2&b=\xF1\n\r\n";
    auto r = parse_http_request(raw);
    REQUIRE(r);
    CHECK(r->method == "POST");
    CHECK(r->body == "id=2&b=\xF1");
    CHECK(to_model_text(*r, paper()) == "POST http://h/p HTTP/1.1 Content-Length: 7 id=2&b=\xF1");
  }

  TEST_CASE("digits are written as 0 by default, except the hex digits of %XX escapes") {
    auto r = parse_http_request("GET /a.jsp?cp=4216A&n=%27%3C9 HTTP/1.1\nHost: h:8080\n\n");
    REQUIRE(r);
    auto digits_only = paper();
    digits_only.zero_digits = true;
    CHECK(to_model_text(*r, digits_only) == "GET /a.jsp?cp=0000A&n=%27%3C0 HTTP/0.0 Host: h:0000");
    CHECK(to_model_text(*r, paper()) == "GET /a.jsp?cp=4216A&n=%27%3C9 HTTP/1.1 Host: h:8080");
    // A '%' without two hex digits after it is no escape.
    auto s = parse_http_request("GET /p?x=%9 HTTP/1.1\n\n");
    REQUIRE(s);
    CHECK(to_model_text(*s, digits_only) == "GET /p?x=%0 HTTP/0.0");
  }

  TEST_CASE("letters of parameter values are folded to a/A by default; names and paths stay") {
    auto r = parse_http_request("POST /Tienda/pago.jsp?modo=Entrar&dni=A1A28731H HTTP/1.1\n"
                                "Host: Local\n\nlogin=Bob%27s&pwd=x%3Cy&B1=Registrar\n");
    REQUIRE(r);
    CHECK(to_model_text(*r)
          == "POST /Tienda/pago.jsp?modo=Aaaaaa&dni=A0A00000A HTTP/0.0 "
             "Host: Local login=Aaa%27a&pwd=a%3Ca&B0=Aaaaaaaaa");
    auto letters_only = paper();
    letters_only.fold_value_letters = true;
    CHECK(to_model_text(*r, letters_only)
          == "POST /Tienda/pago.jsp?modo=Aaaaaa&dni=A1A28731A "
             "HTTP/1.1 Host: Local login=Aaa%27a&pwd=a%3Ca&B1=Aaaaaaaaa");
  }

  TEST_CASE("header order changes the text unless headers are sorted") {
    auto a = parse_http_request("GET /x HTTP/1.0\nA: 1\nB: 2\n\n");
    auto b = parse_http_request("GET /x HTTP/1.0\nb: 2\nA: 1\n\n");
    REQUIRE(a);
    REQUIRE(b);
    CHECK(to_model_text(*a) != to_model_text(*b));
    auto sorted = paper();
    sorted.sort_headers = true;
    CHECK(to_model_text(*a, sorted) == "GET /x HTTP/1.0 A: 1 B: 2");
    CHECK(to_model_text(*b, sorted) == "GET /x HTTP/1.0 A: 1 b: 2");
  }

  TEST_CASE("bad input gets an error naming the problem") {
    auto empty = parse_http_request("");
    REQUIRE_FALSE(empty);
    CHECK(is(empty.error(), errc::invalid_argument));
    CHECK(describe(empty.error()).find("empty") != std::string::npos);

    auto blank = parse_http_request("\r\n\r\n  \n");
    REQUIRE_FALSE(blank);

    auto no_url = parse_http_request("hello\n");
    REQUIRE_FALSE(no_url);
    CHECK(describe(no_url.error()).find("request line") != std::string::npos);

    auto binary = parse_http_request(std::string("\x01\x02\xff GET /\n", 9));
    REQUIRE_FALSE(binary);
    CHECK(describe(binary.error()).find("method") != std::string::npos);

    auto bad_header = parse_http_request("GET / HTTP/1.1\r\nno colon here\r\n\r\n");
    REQUIRE_FALSE(bad_header);
    CHECK(describe(bad_header.error()).find("line 2") != std::string::npos);

    std::string huge(max_request_bytes + 1, 'a');
    auto too_big = parse_http_request(huge);
    REQUIRE_FALSE(too_big);
    CHECK(is(too_big.error(), errc::too_large));
  }

  TEST_CASE("lenient rendering falls back to the raw bytes") {
    bool ok = true;
    auto t = to_model_text_lenient("not http at all 42", paper(), &ok);
    CHECK_FALSE(ok);
    CHECK(t == "not http at all 42");
    CHECK(to_model_text_lenient("not http at all 42", {}, &ok) == "not http at all 00");
    t = to_model_text_lenient("GET /a HTTP/1.1\n\n", paper(), &ok);
    CHECK(ok);
    CHECK(t == "GET /a HTTP/1.1");
  }

  TEST_CASE("a request line without version and with spaces in the URL") {
    auto r = parse_http_request("GET http://h/a b c\n");
    REQUIRE(r);
    CHECK(r->url == "http://h/a b c");
    CHECK(r->version.empty());
    auto v = parse_http_request("GET /a b HTTP/1.1\n");
    REQUIRE(v);
    CHECK(v->url == "/a b");
    CHECK(v->version == "HTTP/1.1");
  }

} // TEST_SUITE

TEST_SUITE("apps.anomaly.http_request") {
  TEST_CASE("a stream of requests splits at request lines; garbage is its own unit") {
    std::string text = "garbage line\n\x01\x02\n"
                       "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
                       "POST http://h/b HTTP/1.1\r\nHost: h\r\n\r\nx=GET /nope\r\n"
                       "DELETE /c HTTP/1.1\n";
    auto units = split_http_stream(text);
    REQUIRE(units.size() == 4);
    CHECK(units[0] == "garbage line\n\x01\x02\n");
    CHECK_FALSE(parse_http_request(units[0]));
    CHECK(units[1].starts_with("GET /a"));
    CHECK(units[2].find("x=GET /nope") != std::string_view::npos);
    CHECK(units[3] == "DELETE /c HTTP/1.1\n");
    CHECK(split_http_stream("").empty());
    CHECK(split_http_stream("\r\n \n").empty());
  }

} // TEST_SUITE
