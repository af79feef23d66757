// Tests of the CSIC 2010 loader: framing on synthetic text, gzip reading, and (when the
// data set is present) the published request counts.
#include "apps/anomaly/csic_dataset.hpp"

#include "base/errc.hpp"
#include "tests/apps/anomaly/test_data.hpp"
#include "tests/test_util.hpp"

#include <doctest/doctest.h>
#include <zlib.h>

#include <cstdio>
#include <filesystem>

using namespace comb;
using namespace comb::anomaly;

TEST_SUITE("apps.anomaly.csic_dataset") {
  TEST_CASE("framing splits at GET/POST/PUT http lines with either line end") {
    std::string text = "junk before\r\n"
                       "GET http://h/a HTTP/1.1\r\nHost: h\r\n\r\n\r\n"
                       "POST http://h/b HTTP/1.1\r\nHost: h\r\n\r\nx=1\n\r\n"
                       "PUT http://h/c HTTP/1.1\nHost: h\n\nGET not-a-start\n"
                       "GET http://h/d HTTP/1.1\r\n\r\n";
    auto frames = frame_requests(text);
    REQUIRE(frames.size() == 4);
    CHECK(frames[0].starts_with("GET http://h/a"));
    CHECK(frames[1].starts_with("POST http://h/b"));
    CHECK(frames[2].starts_with("PUT http://h/c"));
    CHECK(frames[2].find("GET not-a-start") != std::string_view::npos);
    CHECK(frames[3] == "GET http://h/d HTTP/1.1\r\n\r\n");
    auto post = parse_http_request(frames[1]);
    REQUIRE(post);
    CHECK(post->body == "x=1");
    CHECK(frame_requests("").empty());
    CHECK(frame_requests("no request here\n").empty());
  }

  TEST_CASE("gzip files are read directly; errors name the file") {
    auto dir = std::filesystem::temp_directory_path() / "comb_anomaly_csic_test";
    std::filesystem::create_directories(dir);
    auto path = (dir / "t.gz").string();
    std::string content = "GET http://h/a HTTP/1.1\r\n\r\n";
    gzFile f = gzopen(path.c_str(), "wb");
    REQUIRE(f != nullptr);
    gzwrite(f, content.data(), static_cast<unsigned>(content.size()));
    gzclose(f);
    auto read = read_gzip_file(path);
    REQUIRE(read);
    CHECK(*read == content);
    auto missing = read_gzip_file((dir / "missing.gz").string());
    REQUIRE_FALSE(missing);
    CHECK(is(missing.error(), errc::not_found));
    CHECK(describe(missing.error()).find("missing.gz") != std::string::npos);
    // A truncated gzip stream is corrupt data, not a crash.
    std::string bytes;
    {
      auto whole = std::filesystem::file_size(path);
      FILE* in = std::fopen(path.c_str(), "rb");
      bytes.resize(whole);
      REQUIRE(std::fread(bytes.data(), 1, whole, in) == whole);
      std::fclose(in);
    }
    auto cut = (dir / "cut.gz").string();
    FILE* out = std::fopen(cut.c_str(), "wb");
    std::fwrite(bytes.data(), 1, bytes.size() / 2, out);
    std::fclose(out);
    auto bad = read_gzip_file(cut);
    REQUIRE_FALSE(bad);
    CHECK(is(bad.error(), errc::corrupt_data));
    auto no_dir = load_csic((dir / "nowhere").string());
    REQUIRE_FALSE(no_dir);
    CHECK(describe(no_dir.error()).find("normalTrafficTraining.txt.gz") != std::string::npos);
    std::filesystem::remove_all(dir);
  }

  TEST_CASE("the published data set has the published counts") {
    if (!anomaly::test::have_csic()) {
      MESSAGE("CSIC 2010 not found at " << anomaly::test::csic_dir() << ": skipped");
      return;
    }
    auto ds = load_csic(anomaly::test::csic_dir());
    REQUIRE_MESSAGE(ds, comb::test::why(ds));
    CHECK(ds->requests.size() == 97065);
    CHECK(ds->counts[0] == 72000);
    CHECK(ds->counts[1] == 25065);
    size_t get = 0, post = 0, put = 0, post_with_body = 0;
    for (auto& r : ds->requests) {
      if (r.file != 2)
        continue;
      get += r.request.method == "GET";
      put += r.request.method == "PUT";
      post += r.request.method == "POST";
    }
    CHECK(get == 15088);
    CHECK(post == 9580);
    CHECK(put == 397);
    for (auto& r : ds->requests)
      if (r.file == 1 && r.request.method == "POST")
        post_with_body += !r.request.body.empty() && r.request.body.back() != '\r';
    CHECK(post_with_body == 8000); // LF-only bodies of normalTrafficTest are clean
    auto first = ds->requests.front();
    CHECK(first.request.version == "HTTP/1.1");
    CHECK(first.request.headers.size() >= 8);
  }

} // TEST_SUITE
