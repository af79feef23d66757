// `comb` given bad input by a new user or an attacker: each case exits non-zero with one
// error line naming the file, key or query and the problem, instead of starting anyway, an
// uncaught exception or SQLite's silence. Every check but the last comes before `comb`
// connects to a node; the last starts one node with `comb cluster up`.
#include "storage/sql_store.hpp"
#include "tests/apps/anomaly/tiny_detector.hpp"
#include "tests/test_util.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

using namespace comb;

namespace {

void write(const std::string& path, const std::string& text) {
  std::ofstream{path, std::ios::binary} << text;
}

bool has(const test::run_result& r, const std::string& text) {
  if (r.out.find(text) != std::string::npos)
    return true;
  MESSAGE("output lacks '" << text << "': " << r.out);
  return false;
}

} // namespace

TEST_SUITE("cli.bad_input") {
  TEST_CASE("comb node refuses a cluster config it cannot use, naming the file and the key") {
    test::temp_dir dir;
    auto out = dir.path() + "/out.txt";
    // One node without 'listen': it used to start with no gateway ("listening on
    // 127.0.0.1:0"), reachable by no client.
    auto no_listen = dir.path() + "/no_listen.toml";
    write(no_listen, "[cluster]\nname='c'\n[[node]]\nname='n1'\ndata='d'\npartitions=2\n");
    auto r = test::run_comb({"node", "--config", no_listen, "--name", "n1", "--seconds", "1"}, out);
    CHECK(r.rc == 2);
    CHECK(has(r, "no_listen.toml: node 'n1': missing 'listen'"));
    CHECK(r.out.find("listening on") == std::string::npos);
    // A folder given as the config: it read as an empty file ("no nodes defined").
    r = test::run_comb({"node", "--config", dir.path(), "--seconds", "1"}, out);
    CHECK(r.rc == 2);
    CHECK(has(r, "it is a folder, not a TOML file"));
    r = test::run_comb({"node", "--config", dir.path() + "/none.toml", "--seconds", "1"}, out);
    CHECK(r.rc == 2);
    CHECK(has(r, "none.toml: cannot read the cluster config: no such file"));
  }

  TEST_CASE("comb node --cpus: runs on those CPUs; a bad list or an absent CPU is named") {
    test::temp_dir dir;
    auto out = dir.path() + "/out.txt";
    auto r = test::run_comb({"node", "--data", dir.path() + "/d", "--listen", "127.0.0.1:0",
                             "--cpus", "0", "--seconds", "0.5"},
                            out);
    CHECK_MESSAGE(r.rc == 0, r.out);
    CHECK(has(r, ": on CPUs 0"));
    r = test::run_comb({"node", "--data", dir.path() + "/d", "--listen", "127.0.0.1:0", "--cpus",
                        "0-x", "--seconds", "0.5"},
                       out);
    CHECK(r.rc == 2);
    CHECK(has(r, "CPU list '0-x'"));
    r = test::run_comb({"node", "--data", dir.path() + "/d", "--listen", "127.0.0.1:0", "--cpus",
                        "1023", "--seconds", "0.5"},
                       out);
    CHECK(r.rc == 2);
    CHECK(has(r, "cannot run on CPUs 1023"));
  }

  TEST_CASE("comb node refuses a --spool SQLite file that can never open") {
    test::temp_dir dir;
    auto out = dir.path() + "/out.txt";
    // The node ran and its spooler logged "cannot open SQL store" once a second, forever.
    auto r = test::run_comb({"node", "--data", dir.path() + "/d", "--listen", "127.0.0.1:0",
                             "--spool", dir.path() + "/missing/x.sqlite", "--seconds", "1"},
                            out);
    CHECK(r.rc == 2);
    CHECK(has(r, "missing/x.sqlite: folder " + dir.path() + "/missing does not exist"));
    r = test::run_comb({"node", "--data", dir.path() + "/d", "--listen", "127.0.0.1:0", "--spool",
                        dir.path(), "--seconds", "1"},
                       out);
    CHECK(r.rc == 2);
    CHECK(has(r, "is a folder, not an SQLite file"));
    // A file in the data folder the node is about to create is fine.
    r = test::run_comb({"node", "--data", dir.path() + "/d", "--listen", "127.0.0.1:0", "--spool",
                        dir.path() + "/d/mine.sqlite", "--seconds", "0.5"},
                       out);
    CHECK_MESSAGE(r.rc == 0, r.out);
  }

  TEST_CASE("comb prov query: an empty query, two statements and a BLOB column") {
    test::temp_dir dir;
    auto out = dir.path() + "/out.txt";
    auto file = dir.path() + "/store.sqlite";
    {
      auto store = storage::sql_store::open(file, /*read_only=*/false);
      REQUIRE(store);
    }
    // SQLite prepares nothing for blanks; stepping that said "query failed: not an error".
    auto r = test::run_comb({"prov", "query", "--sql", file, "  "}, out);
    CHECK(r.rc == 1);
    CHECK(has(r, "invalid SQL: the query holds no statement"));
    // SQLite ran the first statement and ignored the rest in silence.
    r = test::run_comb({"prov", "query", "--sql", file, "select 1 as a; select 2 as b"}, out);
    CHECK(r.rc == 1);
    CHECK(has(r, "one statement at a time"));
    CHECK(r.out.find("\"a\"") == std::string::npos);
    // A trailing semicolon or comment is still one statement.
    r = test::run_comb({"prov", "query", "--sql", file, "select 1 as a; -- done"}, out);
    CHECK(r.rc == 0);
    CHECK(has(r, "{\"a\":1}"));
    // A time that is not a number matched nothing (exit 0); one past 64 bits matched all.
    r = test::run_comb({"prov", "at", "--sql", file, "bank.accounts", "abc"}, out);
    CHECK(r.rc == 2);
    CHECK(has(r, "NS 'abc' is not a time in nanoseconds"));
    r = test::run_comb({"prov", "by-user", "--sql", file, "admin", "0", "99999999999999999999999"},
                       out);
    CHECK(r.rc == 2);
    CHECK(has(r, "TO_NS '99999999999999999999999' is not a time"));
    r = test::run_comb({"prov", "hot-table", "--sql", file, "0", "5"}, out);
    CHECK(r.rc == 0);
    // A text file given as the store: "invalid SQL: file is not a database" (log spool), or
    // any query not reading a table answered as if it were one (prov query).
    auto text = dir.path() + "/notes.txt";
    write(text, "these are not the rows you are looking for\n");
    r = test::run_comb({"prov", "query", "--sql", text, "select 1 as a"}, out);
    CHECK(r.rc == 1);
    CHECK(has(r, "notes.txt: not an SQLite database"));
    r = test::run_comb({"log", "spool", "--log", dir.path(), "--sql", text}, out);
    CHECK(r.rc != 0);
    CHECK(has(r, "notes.txt: not an SQLite database"));
    // Bytes that are not UTF-8 threw nlohmann's type_error 316 out of main.
    r = test::run_comb({"prov", "query", "--sql", file, "select x'ff00fe' as b"}, out);
    CHECK(r.rc == 0);
    CHECK(has(r, "{\"b\":\""));
    CHECK(r.out.find("json.exception") == std::string::npos);
  }

  TEST_CASE("comb imaging load images names a folder and an empty file") {
    test::temp_dir dir;
    auto out = dir.path() + "/out.txt";
    auto empty = dir.path() + "/empty.png";
    write(empty, "");
    // Port 1: nothing listens there; the files are checked before connecting.
    auto r = test::run_comb(
      {"imaging", "load", "images", "--node", "127.0.0.1:1", "--dataset", "x", dir.path()}, out);
    CHECK(r.rc == 2);
    CHECK(has(r, "is a folder"));
    r = test::run_comb(
      {"imaging", "load", "images", "--node", "127.0.0.1:1", "--dataset", "x", empty}, out);
    CHECK(r.rc == 1);
    CHECK(has(r, "empty.png: the file is empty (0 bytes)"));
  }

  TEST_CASE("comb anomaly score: a folder for a file, and input with no HTTP request") {
    test::temp_dir dir;
    auto out = dir.path() + "/out.txt";
    auto model = dir.path() + "/tiny.safetensors";
    REQUIRE_FALSE(anomaly::tiny::tiny_detector().save(model));
    auto garbage = dir.path() + "/garbage.bin";
    std::string bytes;
    for (int i = 0; i < 4096; ++i)
      bytes.push_back(static_cast<char>((i * 73 + 11) % 256));
    write(garbage, bytes);
    // Reading a folder threw "basic_filebuf::underflow error reading the file: Is a directory".
    auto r = test::run_comb({"anomaly", "score", "-m", dir.path(), garbage}, out);
    CHECK(r.rc == 2);
    CHECK(has(r, "is a folder, not a file"));
    r = test::run_comb({"anomaly", "score", "-m", model, dir.path()}, out);
    CHECK(r.rc == 2);
    CHECK(has(r, "is a folder, not a file"));
    // calibrate and eval --ood name a folder given as the model before reading anything else.
    r = test::run_comb({"anomaly", "calibrate", "-m", dir.path()}, out);
    CHECK(r.rc == 2);
    CHECK(has(r, "is a folder, not a file"));
    r = test::run_comb({"anomaly", "eval", "--ood", dir.path(), "--model", dir.path()}, out);
    CHECK(r.rc == 2);
    CHECK(has(r, "is a folder, not a file"));
    // Binary data: scored on its raw bytes as before, but the exit code says it was no request.
    r = test::run_comb({"anomaly", "score", "-m", model, garbage}, out);
    CHECK(r.rc == 1);
    CHECK(has(r, "garbage.bin holds no HTTP request"));
    // One real request among the garbage: scored, exit 0.
    auto mixed = dir.path() + "/mixed.txt";
    write(mixed, "GET /index.jsp HTTP/1.1\r\nHost: shop\r\n\r\n");
    r = test::run_comb({"anomaly", "score", "-m", model, mixed}, out);
    CHECK(r.rc == 0);
  }

  TEST_CASE("comb call and comb console refuse a timeout that is not positive") {
    test::temp_dir dir;
    // It waited "1 ms" and blamed the node ("got no answer within 1 ms").
    auto r = test::run_comb({"call", "--node", "127.0.0.1:1", "--timeout=-1", "bank.total"},
                            dir.path() + "/out.txt");
    CHECK(r.rc != 0);
    CHECK(has(r, "--timeout"));
    CHECK(r.out.find("no answer") == std::string::npos);
    // The console's Search time limit: a negative one was taken.
    r = test::run_comb({"console", "--sql", dir.path() + "/x.sqlite", "--node", "127.0.0.1:1",
                        "--sql-timeout-ms=-5", "--seconds", "1"},
                       dir.path() + "/out.txt");
    CHECK(r.rc != 0);
    CHECK(has(r, "--sql-timeout-ms"));
  }

  TEST_CASE("comb cluster up: a node whose data folder is a bare name starts") {
    test::temp_dir dir;
    auto out = dir.path() + "/out.txt";
    auto cfg = dir.path() + "/c.toml";
    write(cfg, "[cluster]\nname='bare'\n[[node]]\nname='a'\nlisten='127.0.0.1:"
                 + std::to_string(test::free_port()) + "'\ndata='da'\npartitions=1\n");
    // "data = 'da'" is relative to the current folder, so `comb` runs in the temp folder. It
    // failed with "node a did not start: storage_error: da: Invalid argument".
    auto in_dir = [&](const std::string& args) {
      test::child_process p{
        {"/bin/sh", "-c", "cd '" + dir.path() + "' && exec '" + test::comb_binary() + "' " + args},
        out};
      int status = p.wait();
      return test::run_result{WIFEXITED(status) ? WEXITSTATUS(status) : -1, test::read_file(out)};
    };
    auto up = in_dir("cluster up --config c.toml");
    auto down = in_dir("cluster down --config c.toml");
    CHECK_MESSAGE(up.rc == 0, up.out);
    CHECK(up.out.find("Invalid argument") == std::string::npos);
    CHECK(std::filesystem::exists(dir.path() + "/da/COMB"));
    CHECK_MESSAGE(down.rc == 0, down.out);
  }
}
