// End-to-end test of the anomaly detector served by Comb: a `comb node` child with a
// `comb compute` child on loopback; a small detector stored with `comb model put` and
// activated; anomaly.score enqueues an infer call, the compute process runs the
// anomaly-detector runner, anomaly.scored writes the scores, and they equal the in-process
// detector's scores of the same requests. `comb anomaly score --node` prints what the
// in-process `comb anomaly score` prints, over more than one 1 MiB call. A corrupt detector
// is refused at put, naming why; anomaly.score refuses an oversized call and a model without
// an active version; a call the compute process refuses (a model of another kind) is marked
// failed with the runner's error, which the CLI reports.
#include "apps/anomaly/anomaly_app.hpp"
#include "apps/anomaly/detector.hpp"
#include "base/base64.hpp"
#include "base/errc.hpp"
#include "runtime/pieces/kernel_runners.hpp"
#include "runtime/system_config.hpp"
#include "tests/apps/anomaly/tiny_detector.hpp"
#include "tests/client_util.hpp"
#include "tests/test_util.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>

using namespace comb;
using nlohmann::json;
using test::read_file;

namespace {

/// Runs the comb binary with `args` to completion; its exit status and output.
std::pair<int, std::string> run_comb(const test::temp_dir& dir, const std::string& name,
                                     std::vector<std::string> args) {
  args.insert(args.begin(), test::comb_binary());
  auto log = dir.path() + "/" + name + ".log";
  test::child_process p{args, log};
  int status = p.wait();
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), read_file(log)};
}

/// Stdout only: runs `comb` with stdout to `name`.out and stderr to /dev/null via a shell.
std::pair<int, std::string> run_comb_stdout(const test::temp_dir& dir, const std::string& name,
                                            const std::vector<std::string>& args) {
  std::string cmd = "'" + test::comb_binary() + "'";
  for (auto& a : args)
    cmd += " '" + a + "'";
  auto out = dir.path() + "/" + name + ".out";
  auto err = dir.path() + "/" + name + ".err";
  cmd += " > '" + out + "' 2> '" + err + "'";
  int status = std::system(cmd.c_str());
  INFO(read_file(err));
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_file(out)};
}

json call(runtime::client& c, const std::string& proc, const json& args) {
  auto r = c.call(proc, args.dump(), "admin");
  REQUIRE_MESSAGE(r, proc << ": " << test::why(r));
  return *r;
}

} // namespace

TEST_SUITE("apps.anomaly.serving") {
  TEST_CASE("a detector in the model store scores requests as it does in process") {
    test::temp_dir dir;
    auto d = anomaly::tiny::tiny_detector();
    auto model_file = dir.path() + "/detector.safetensors";
    REQUIRE_FALSE(d.save(model_file));

    int compute_port = test::free_port();
    test::child_process compute{{test::comb_binary(), "compute", "--listen",
                                 "127.0.0.1:" + std::to_string(compute_port), "--threads", "2"},
                                dir.path() + "/compute.log"};
    REQUIRE(test::wait_for_line(dir.path() + "/compute.log", "listening on",
                                std::chrono::seconds{30}, &compute));
    int port = test::free_port();
    auto node_addr = "127.0.0.1:" + std::to_string(port);
    test::child_process node{{test::comb_binary(), "node", "--data", dir.path() + "/node",
                              "--listen", node_addr, "--compute",
                              "127.0.0.1:" + std::to_string(compute_port), "--durability", "async",
                              "--no-provenance"},
                             dir.path() + "/node.log"};
    runtime::system_config cfg{2};
    caf::actor_system sys{cfg};
    auto c = test::connect_retry(sys, port);
    REQUIRE_MESSAGE(c, test::why(c) << "\n" << read_file(dir.path() + "/node.log"));

    // A model without an active version is refused before anything is stored.
    auto none = c->call("anomaly.score",
                        json{{"requests", {"GET / HTTP/1.1"}}, {"model", "waf"}}.dump(), "admin");
    REQUIRE_FALSE(none);
    CHECK(is(none.error(), errc::bad_model));
    CHECK_MESSAGE(describe(none.error()).find("'waf' has no active version") != std::string::npos,
                  describe(none.error()));

    // A corrupt detector file is refused at put, naming why.
    auto bytes = read_file(model_file);
    auto corrupt_file = dir.path() + "/corrupt.safetensors";
    std::ofstream{corrupt_file, std::ios::binary} << bytes.substr(0, bytes.size() - 100);
    auto [bad_code, bad_out] = run_comb(dir, "put-corrupt",
                                        {"model", "put", "--node", node_addr, "--name", "waf",
                                         "--version", "1", "--file", corrupt_file});
    CHECK(bad_code != 0);
    CHECK_MESSAGE(bad_out.find("bad_model") != std::string::npos, bad_out);
    CHECK_MESSAGE(bad_out.find("anomaly detector") != std::string::npos, bad_out);

    // The real one: put, activate, wait until the compute process has it.
    auto [code, out] = run_comb(dir, "put",
                                {"model", "put", "--node", node_addr, "--name", "waf", "--version",
                                 "1", "--file", model_file});
    REQUIRE_MESSAGE(code == 0, out);
    call(*c, "comb.model.activate", {{"name", "waf"}, {"version", 1}});
    json models;
    REQUIRE(test::wait_until(
      [&] {
        models = call(*c, "comb.model.list", json::object());
        for (auto& m : models)
          if (m.value("name", "") == "waf" && m.value("active", false))
            return true;
        return false;
      },
      std::chrono::seconds{30}, "model waf active"));

    auto reqs = anomaly::tiny::sample_requests();
    reqs.push_back("GET /caf\xe9.jsp HTTP/1.1\r\nHost: shop\r\n\r\n"); // Latin-1: base64
    auto args = json{{"model", "waf"}, {"source", "serving_test"}, {"encoding", "base64"}};
    args["requests"] = json::array();
    for (auto& r : reqs)
      args["requests"].push_back(base64_encode(r));
    auto sent = call(*c, "anomaly.score", args);
    auto key = sent.value("call", "");
    CHECK(sent.value("count", 0) == static_cast<int>(reqs.size()));
    CHECK(sent.value("version", 0) == 1);
    json res;
    REQUIRE(test::wait_until(
      [&] {
        res = call(*c, "anomaly.results", {{"call", key}});
        return res.value("status", "") != "pending";
      },
      std::chrono::seconds{30}, "the scores of call " + key));
    REQUIRE_MESSAGE(res.value("status", "") == "scored", res.dump());
    REQUIRE(res["scores"].size() == reqs.size());
    CHECK(res["pending"].empty());
    for (size_t i = 0; i < reqs.size(); ++i) {
      auto p = d.score_raw({std::string_view{reqs[i]}});
      REQUIRE(p);
      auto& row = res["scores"][i];
      CHECK_MESSAGE(std::abs(row.value("score", -1.0) - (*p)[0]) <= 1e-5,
                    "request " << i << ": " << row.dump() << " in process " << (*p)[0]);
      CHECK(row.value("label", "") == ((*p)[0] >= 0.5f ? "anomalous" : "normal"));
      CHECK(row.value("model", "") == "waf");
      CHECK(row.value("version", 0) == 1);
      CHECK(row.value("digest", "") == sent.value("digest", "x"));
      CHECK(row.value("call", "") == key);
      char idx[16];
      std::snprintf(idx, sizeof(idx), ".%08zu", i);
      CHECK(row.value("id", "") == sent.value("execution", "") + idx);
    }
    CHECK(res["scores"][0].value("parsed", false));
    CHECK_FALSE(res["scores"][4].value("parsed", true)); // binary garbage
    // By ids: one scored, one unknown.
    auto first = res["scores"][0].value("id", "");
    auto by_id = call(*c, "anomaly.results", {{"ids", {first}}});
    REQUIRE(by_id["scores"].size() == 1);
    CHECK(by_id["scores"][0]["score"] == res["scores"][0]["score"]);
    auto unknown = c->call("anomaly.results", json{{"ids", {"nope.00000000"}}}.dump(), "admin");
    REQUIRE_FALSE(unknown);
    CHECK(is(unknown.error(), errc::not_found));

    // More than 1 MiB in one call is refused, naming the limit.
    json big{{"model", "waf"}, {"requests", json::array()}};
    for (int i = 0; i < 300; ++i)
      big["requests"].push_back("GET /" + std::string(4000, 'a') + " HTTP/1.1");
    auto too_big = c->call("anomaly.score", big.dump(), "admin");
    REQUIRE_FALSE(too_big);
    CHECK(is(too_big.error(), errc::too_large));
    CHECK_MESSAGE(describe(too_big.error()).find("1 MiB") != std::string::npos,
                  describe(too_big.error()));

    // The CLI: a stream of about 1.5 MiB of requests (two calls) scored on the node prints
    // what the in-process scorer prints.
    std::string stream;
    for (int i = 0; i < 600; ++i) {
      auto& r = reqs[static_cast<size_t>(i) % 4]; // HTTP requests only: the split keeps them
      stream += r.substr(0, r.find("\r\n")) + "\r\nHost: shop\r\nX-Pad: "
                + std::string(static_cast<size_t>(2800 + i % 97), 'a' + i % 26) + "\r\n\r\n";
    }
    stream += "GET /caf\xe9.jsp HTTP/1.1\r\nHost: shop\r\n\r\n";
    auto stream_file = dir.path() + "/requests.txt";
    std::ofstream{stream_file, std::ios::binary} << stream;
    REQUIRE(stream.size() > anomaly::max_call_bytes * 3 / 2);
    auto [local_code, local] = run_comb_stdout(
      dir, "score-local", {"anomaly", "score", "--model", model_file, stream_file});
    REQUIRE(local_code == 0);
    auto [node_code, served] = run_comb_stdout(dir, "score-node",
                                               {"anomaly", "score", "--node", node_addr, "--model",
                                                "waf", "--timeout", "60", stream_file});
    REQUIRE(node_code == 0);
    CHECK(std::count(local.begin(), local.end(), '\n') == 601);
    CHECK(served == local);
    // A model of another kind: the compute process refuses the task, anomaly.scored marks
    // the call failed with the runner's error, and the CLI says so instead of waiting.
    auto mlp = runtime::make_mlp_file({784, 16, 10}, /*seed=*/1);
    REQUIRE(mlp);
    auto mlp_file = dir.path() + "/mlp.safetensors";
    std::ofstream{mlp_file, std::ios::binary} << *mlp;
    auto [mlp_code, mlp_out] = run_comb(dir, "put-mlp",
                                        {"model", "put", "--node", node_addr, "--name", "digits",
                                         "--version", "1", "--file", mlp_file});
    REQUIRE_MESSAGE(mlp_code == 0, mlp_out);
    call(*c, "comb.model.activate", {{"name", "digits"}, {"version", 1}});
    REQUIRE(test::wait_until(
      [&] {
        for (auto& m : call(*c, "comb.model.list", json::object()))
          if (m.value("name", "") == "digits" && m.value("active", false))
            return true;
        return false;
      },
      std::chrono::seconds{30}, "model digits active"));
    auto wrong = call(*c, "anomaly.score", {{"model", "digits"}, {"requests", {"GET / HTTP/1.1"}}});
    json failed;
    REQUIRE(test::wait_until(
      [&] {
        failed = call(*c, "anomaly.results", {{"call", wrong.value("call", "")}});
        return failed.value("status", "") != "pending";
      },
      std::chrono::seconds{30}, "the call to digits to fail"));
    CHECK_MESSAGE(failed.value("status", "") == "failed", failed.dump());
    CHECK_MESSAGE(failed.value("error", "").find("tensor 'x'") != std::string::npos, failed.dump());
    CHECK(failed["scores"].empty());
    CHECK(failed["pending"].size() == 1);
    auto [cli_fail_code, cli_fail] = run_comb(dir, "score-digits",
                                              {"anomaly", "score", "--node", node_addr, "--model",
                                               "digits", stream_file});
    CHECK(cli_fail_code != 0);
    CHECK_MESSAGE(cli_fail.find("failed: ") != std::string::npos, cli_fail);

    // A model the node does not have: the CLI names it.
    auto [missing_code, missing] = run_comb(dir, "score-missing",
                                            {"anomaly", "score", "--node", node_addr, "--model",
                                             "nope", stream_file});
    CHECK(missing_code != 0);
    CHECK_MESSAGE(missing.find("'nope' has no active version") != std::string::npos, missing);
  }
}
