// Tests of the detector's decoding and keyword-preserving folding (text_options::decode and
// keywords), and of the payload sets: loading, encoding, splitting, injection.
#include "apps/anomaly/http_request.hpp"
#include "apps/anomaly/keywords.hpp"
#include "apps/anomaly/payload_sets.hpp"

#include "base/errc.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

using namespace comb;
using namespace comb::anomaly;

namespace {

text_options v2() {
  text_options o;
  o.decode = true;
  o.keywords = keyword_list_version;
  return o;
}

std::string text_of(const std::string& url, const text_options& o) {
  auto r = parse_http_request("GET " + url + " HTTP/1.1\r\nHost: h\r\n\r\n");
  REQUIRE(r);
  return to_model_text(*r, o);
}

} // namespace

TEST_SUITE("apps.anomaly.payloads") {
  TEST_CASE("keywords survive the fold; ordinary letters do not") {
    auto o = v2();
    CHECK(fold_value("<script>alert(1)</script>", o) == "<script>alert(0)</script>");
    CHECK(fold_value("<ScRiPt>", o) == "<script>");
    CHECK(fold_value("system('whoami')", o) == "system('whoami')");
    CHECK(fold_value("& pwd", o) == "& pwd");
    CHECK(fold_value("&& sleep 10", o) == "&& sleep 00");
    CHECK(fold_value("1 AND current_setting('x')", o) == "0 and current_setting('a')");
    CHECK(fold_value("Maria Lopez 42", o) == "Aaaaa Aaaaa 00");
    // The old fold erases the words: the examples.
    text_options old;
    CHECK(fold_value("<script>", old) == "<aaaaaa>");
    CHECK(fold_value("system('whoami')", old) == "aaaaaa('aaaaaa')");
  }

  TEST_CASE("what attackers encode is decoded before the fold") {
    auto o = v2();
    CHECK(fold_value("&#x3C;script&#x3E;", o) == "<script>");
    CHECK(fold_value("&#60;img src=x onerror=alert(1)&#62;", o) == "<img src=a onerror=alert(0)>");
    CHECK(fold_value("&lt;svg onload=alert(1)&gt;", o) == "<svg onload=alert(0)>");
    CHECK(fold_value("%3Cscript%3E", o) == "<script>");
    CHECK(fold_value("\\u003cscript\\u003e", o) == "<script>");
    CHECK(fold_value("\\x3cscript\\x3e", o) == "<script>");
    CHECK(fold_value("%u003Cscript%u003E", o) == "<script>");
    CHECK(fold_value("a+b", o) == "a a");
    // Double percent-encoding decodes too, and leaves a mark.
    CHECK(fold_value("%253Cscript%253E", o) == "%25<script>");
    CHECK(fold_value("..%252f..%252fetc%252fpasswd", o) == "%25../../aaa/passwd");
    // Non-ASCII code points, UTF-8 from a browser or Latin-1 from CSIC, fold to one 'a' each.
    CHECK(fold_value("%CE%A3%CE%BF%CF%86%CE%AF%CE%B1", o) == "aaaaa");
    CHECK(fold_value("%E5%B1%B1%E5%B2%B8", o) == "aa");
    CHECK(fold_value("Jos%E9", o) == "Aaaa");
  }

  TEST_CASE("the request text decodes values and path, keeping names and separators") {
    auto o = v2();
    CHECK(text_of("/a.jsp?id=1%27+OR+1%3D1--&B1=Entrar", o)
          == "GET /a.jsp?id=0' or 0=0--&B0=Aaaaaa HTTP/0.0 Host: h");
    CHECK(text_of("/%2e%2e/etc?q=cat+%2Fetc%2Fpasswd", o)
          == "GET /../etc?q=cat /aaa/passwd HTTP/0.0 Host: h");
  }

  TEST_CASE("originals: a value that decoding changed is followed by its original") {
    auto o = v2();
    o.originals = true;
    // The decoded view keeps the words; the original its escapes (hex digits as they are).
    CHECK(fold_value("%3Cscript%3E", o)
          == "<script>\x1f"
             "%3Caaaaaa%3E");
    CHECK(fold_value("cal%2C%2C8%2Cndar", o)
          == "aaa,,0,aaaa\x1f"
             "aaa%2C%2C0%2Caaaa");
    CHECK(fold_value("Jos%E9", o)
          == "Aaaa\x1f"
             "Aaa%E9");
    CHECK(fold_value("&#x3C;b", o)
          == "<a\x1f"
             "&#a0A;a");
    // Raw, where a browser would have escaped: only '+' changed, so no original follows,
    // and the two spellings of the same text differ.
    CHECK(fold_value("a'b+c", o) == "a'a a");
    CHECK(fold_value("a%27b+c", o)
          == "a'a a\x1f"
             "a%27a+a");
    CHECK(fold_value("Maria+Lopez", o) == "Aaaaa Aaaaa");
    // Off: the decoded view alone, as before.
    CHECK(fold_value("a%27b+c", v2()) == "a'a a");
    // The path: the original follows a decoded one that differs.
    CHECK(text_of("/%2e%2e/etc?q=%41", o)
          == "GET /../etc\x1f"
             "/%2e%2e/etc?q=A\x1f"
             "%41 HTTP/0.0 Host: h");
    CHECK(text_of("/a.jsp?q=x", o) == "GET /a.jsp?q=a HTTP/0.0 Host: h");
  }

  TEST_CASE("list 2: MongoDB operators, LDAP attributes, header names; CR/LF and $ ( * | stay") {
    auto o = v2();
    REQUIRE(o.keywords == 2);
    // NoSQL: the operator keeps its '$' and name; a bare "ne" (French, say) still folds.
    CHECK(fold_value("{\"$ne\": null}", o) == "{\"$ne\": null}");
    CHECK(fold_value("x[$gt]=", o) == "a[$gt]=");
    CHECK(fold_value("{\"$regex\": \"^a\"}", o) == "{\"$regex\": \"^a\"}");
    CHECK(fold_value("je ne sais", o) == "aa aa aaaa");
    CHECK(fold_value("$Foo 12", o) == "$Aaa 00");
    // LDAP filters and XPath: attribute names kept, the filter's punctuation visible.
    CHECK(fold_value("*)(|(cn=*))", o) == "*)(|(cn=*))");
    CHECK(fold_value("admin)(&(sAMAccountName=*)", o) == "admin)(&(samaccountname=*)");
    CHECK(fold_value("' or count(/child::node())=1 or '", o)
          == "' or count(/child::node())=0 or '");
    // CRLF: decoded CR and LF stay control characters; header names are kept; written-out
    // escapes stay themselves.
    CHECK(fold_value("%0d%0aSet-Cookie:+a=b", o) == "\r\nset-cookie: a=a");
    CHECK(fold_value("x%250d%250aLocation:+http://e", o) == "%25a\r\nlocation: http://a");
    CHECK(fold_value("en\\r\\nContent-Type: text/html", o) == "aa\\r\\ncontent-type: text/html");
    // List 1 (older models) sees these as before.
    auto v1 = o;
    v1.keywords = 1;
    CHECK(fold_value("{\"$ne\": null}", v1) == "{\"$aa\": null}");
    CHECK(fold_value("*)(|(cn=*))", v1) == "*)(|(aa=*))");
    CHECK(fold_value("en\\r\\nContent-Type: text/html", v1) == "aa\\a\\aAaaaaaa-type: text/html");
    CHECK(is_keyword("samaccountname", 2));
    CHECK_FALSE(is_keyword("samaccountname", 1));
    CHECK_FALSE(is_keyword("script", 0));
    CHECK(is_keyword("$ne"));
    CHECK_FALSE(is_keyword("ne"));
  }

  TEST_CASE("header_urls: a Referer's query is folded like the request's") {
    auto r = parse_http_request("GET /search?q=hi HTTP/1.1\r\nHost: h\r\n"
                                "Referer: http://h/search?q=hello world&page=2\r\n\r\n");
    REQUIRE(r);
    auto o = v2();
    CHECK(to_model_text(*r, o)
          == "GET /search?q=aa HTTP/0.0 Host: h Referer: http://h/search?q=hello world&page=0");
    o.header_urls = true;
    CHECK(to_model_text(*r, o)
          == "GET /search?q=aa HTTP/0.0 Host: h Referer: http://h/search?q=aaaaa aaaaa&page=0");
    // What is not an absolute URL stays as it was.
    auto r2 = parse_http_request("GET / HTTP/1.1\r\nUser-Agent: Mozilla/5.0 (X11)\r\n\r\n");
    REQUIRE(r2);
    CHECK(to_model_text(*r2, o) == "GET / HTTP/0.0 User-Agent: Mozilla/0.0 (X00)");
  }

  TEST_CASE("keyword list is sorted and finds words, not substrings") {
    CHECK(keyword_lists_sorted());
    CHECK(is_keyword("script"));
    CHECK(is_keyword("whoami"));
    CHECK(is_keyword("onerror"));
    CHECK(is_keyword("__class__"));
    CHECK_FALSE(is_keyword("scripts"));
    CHECK_FALSE(is_keyword("maria"));
    CHECK_FALSE(is_keyword(""));
  }

  TEST_CASE("encode_payload: form-encoded unless already URL-encoded") {
    CHECK(encode_payload("' or 1=1 --") == "%27+or+1%3D1+--");
    CHECK(encode_payload("<script>") == "%3Cscript%3E");
    CHECK(encode_payload("Zoë") == "Zo%C3%AB");
    CHECK(encode_payload("%0d%0aSet-Cookie: a=b&c") == "%0d%0aSet-Cookie:%20a=b%26c");
    CHECK(encode_payload("100% cotton") == "100%25+cotton");
  }

  TEST_CASE("line uses are stable and roughly 60/20/20") {
    CHECK(use_of("' or 1=1 --") == use_of(std::string{"' or 1=1 --"}));
    size_t n[3] = {0, 0, 0};
    for (int i = 0; i < 3000; ++i)
      ++n[static_cast<int>(use_of("value " + std::to_string(i)))];
    CHECK(n[0] > 1600);
    CHECK(n[0] < 2000);
    CHECK(n[1] > 450);
    CHECK(n[2] > 450);
    CHECK(has_non_latin("Σοφοκλής"));
    CHECK(has_non_latin("山岸 裕樹"));
    CHECK_FALSE(has_non_latin("José Müller-Łukasz"));
    CHECK_FALSE(has_non_latin("12,50 €"));
  }

  TEST_CASE("inject_value replaces or appends one parameter, and fixes Content-Length") {
    auto get = parse_http_request("GET http://h/a.jsp?id=2&B1=Entrar HTTP/1.1\r\nHost: h\r\n\r\n");
    REQUIRE(get);
    std::mt19937_64 rng(3);
    int replaced = 0;
    for (int i = 0; i < 40; ++i) {
      auto r = inject_value(*get, "X%27", rng);
      CHECK(r.url.find("X%27") != std::string::npos);
      CHECK(r.url.starts_with("http://h/a.jsp?id="));
      if (r.url == "http://h/a.jsp?id=X%27&B1=Entrar" || r.url == "http://h/a.jsp?id=2&B1=X%27")
        ++replaced;
    }
    CHECK(replaced > 10);
    CHECK(replaced < 40);
    auto post = parse_http_request(
      "POST http://h/p HTTP/1.1\r\nContent-Length: 7\r\nHost: h\r\n\r\nid=2&x=\r\n");
    REQUIRE(post);
    auto r = inject_value(*post, "abcdef", rng);
    CHECK(r.body.find("abcdef") != std::string::npos);
    CHECK(r.headers[0].second == std::to_string(r.body.size()));
    auto bare = parse_http_request("GET http://h/index.html HTTP/1.1\r\n\r\n");
    REQUIRE(bare);
    auto b = inject_value(*bare, "v", rng);
    CHECK(b.url.find("?") != std::string::npos);
    CHECK(b.url.ends_with("=v"));
    auto back = parse_http_request(render_http(r));
    REQUIRE(back);
    CHECK(back->body == r.body);
  }

  TEST_CASE("a payload directory loads; comments and blank lines are skipped") {
    namespace fs = std::filesystem;
    auto dir = fs::temp_directory_path() / ("comb_payloads_" + std::to_string(::getpid()));
    fs::create_directories(dir / "attacks");
    fs::create_directories(dir / "benign");
    std::ofstream(dir / "attacks" / "xss.txt") << "# header\n<script>\n\n<img src=x>\r\n";
    std::ofstream(dir / "benign" / "names.txt") << "Zoë\n";
    auto d = load_payload_dir(dir.string());
    REQUIRE(d);
    REQUIRE(d->attacks.size() == 1);
    CHECK(d->attacks[0].name == "xss");
    CHECK(d->attacks[0].attack);
    CHECK(d->attacks[0].lines == std::vector<std::string>{"<script>", "<img src=x>"});
    REQUIRE(d->benign.size() == 1);
    CHECK_FALSE(d->benign[0].attack);
    auto base = parse_http_request("GET http://h/a?x=1 HTTP/1.1\r\n\r\n");
    REQUIRE(base);
    std::vector<const http_request*> bases{&*base};
    injection_options io;
    io.copies = 2;
    auto reqs = inject_sets(bases, d->attacks, io);
    REQUIRE(reqs);
    CHECK(reqs->size() == 4);
    CHECK((*reqs)[0].request.label == 1);
    auto none = load_payload_dir((dir / "nothing").string());
    CHECK_FALSE(none);
    CHECK(is(none.error(), errc::not_found));
    fs::remove_all(dir);
  }

  TEST_CASE("the project's own payload sets load and hold every family the issue names") {
    auto d = load_payload_dir(default_payload_dir(COMB_SOURCE_DIR));
    REQUIRE(d);
    std::vector<std::string> names;
    for (auto& s : d->attacks) {
      names.push_back(s.name);
      CHECK(s.lines.size() >= 100);
    }
    for (auto f : {"sqli", "xss", "cmdi", "path_traversal", "ssti", "xxe", "nosql", "ldap_xpath",
                   "crlf_header", "scanner_probe", "oversized"})
      CHECK(std::find(names.begin(), names.end(), f) != names.end());
    CHECK(d->benign.size() >= 10);
  }
}
