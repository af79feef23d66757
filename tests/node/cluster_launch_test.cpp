// `comb cluster up|status|down` on a two-node loopback config, as a user runs them: up starts
// both nodes in the background and returns once they answer, status reports each reachable
// with its partitions, down stops them (their processes are gone, status says unreachable).
// A node that cannot start (its port is taken) makes up fail naming it and quoting its log,
// and the node it had already started is stopped again.
#include "tests/test_util.hpp"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <netinet/in.h>
#include <sys/socket.h>

#include <fstream>
#include <signal.h>

using namespace comb;
using namespace std::chrono_literals;

namespace {

using test::run_comb;

std::string write_config(const std::string& dir, int p1, int p2) {
  auto file = dir + "/c.toml";
  std::ofstream{file} << "[cluster]\nname = 'pair'\npartitions = 4\n"
                      << "[[node]]\nname = 'n1'\nlisten = '127.0.0.1:" << p1 << "'\n"
                      << "data = '" << dir << "/n1'\npartitions = [0, 1]\ndurability = 'async'\n"
                      << "roles = ['state', 'spooler']\n"
                      << "[[node]]\nname = 'n2'\nlisten = '127.0.0.1:" << p2 << "'\n"
                      << "data = '" << dir << "/n2'\npartitions = [2, 3]\ndurability = 'async'\n";
  return file;
}

pid_t pid_of(const std::string& data) {
  std::ifstream in{data + ".pid"};
  pid_t pid = 0;
  in >> pid;
  return pid;
}

} // namespace

TEST_SUITE("node.cluster_launch") {
  TEST_CASE("up, status, down") {
    test::temp_dir dir;
    auto cfg = write_config(dir.path(), test::free_port(), test::free_port());
    auto up = run_comb({"cluster", "up", "--config", cfg}, dir.path() + "/up.txt");
    CAPTURE(up.out);
    REQUIRE(up.rc == 0);
    CHECK(up.out.find("n1: started") != std::string::npos);
    CHECK(up.out.find("n2: started") != std::string::npos);
    auto p1 = pid_of(dir.path() + "/n1"), p2 = pid_of(dir.path() + "/n2");
    REQUIRE(p1 > 0);
    REQUIRE(p2 > 0);

    auto st = run_comb({"cluster", "status", "--config", cfg, "--json"}, dir.path() + "/st.txt");
    CAPTURE(st.out);
    REQUIRE(st.rc == 0);
    auto j = nlohmann::json::parse(st.out, nullptr, false);
    REQUIRE(!j.is_discarded());
    REQUIRE(j["nodes"].size() == 2);
    CHECK(j["nodes"][0]["reachable"] == true);
    CHECK(j["nodes"][0]["owned"] == "0-1");
    CHECK(j["nodes"][1]["owned"] == "2-3");
    CHECK(j["nodes"][1]["peers"][0]["name"] == "n1");

    // Provenance lag: n1 spools, n2 does not (no spooler role). After a few calls n1's
    // spooler catches up with its log within a pass or two.
    for (int i = 0; i < 3; ++i) {
      auto acct = "lag" + std::to_string(i);
      auto c = run_comb({"call", "--node", j["nodes"][0]["address"].get<std::string>(), "bank.open",
                         R"({"account":")" + acct + R"(","balance":1})"},
                        dir.path() + "/call.txt");
      REQUIRE_MESSAGE(c.rc == 0, c.out);
    }
    nlohmann::json lag;
    test::wait_until(
      [&] {
        auto s = run_comb({"cluster", "status", "--config", cfg, "--json"}, dir.path() + "/st.txt");
        auto js = nlohmann::json::parse(s.out, nullptr, false);
        if (js.is_discarded() || !js["nodes"][0].contains("provenance_lag"))
          return false;
        lag = js["nodes"][0]["provenance_lag"];
        return lag.value("written_lsn", 0) >= 3 && lag["spooled_lsn"] == lag["written_lsn"];
      },
      20s, "n1's spooler catching up with its log");
    CAPTURE(lag.dump());
    CHECK(lag["behind"] == 0);
    CHECK(lag["lag_s"] == 0.0);
    CHECK(lag["last_pass_s"].is_number());
    st = run_comb({"cluster", "status", "--config", cfg, "--json"}, dir.path() + "/st.txt");
    j = nlohmann::json::parse(st.out, nullptr, false);
    REQUIRE(!j.is_discarded());
    CHECK(j["nodes"][1]["provenance_lag"]["spooled_lsn"].is_null());
    auto text = run_comb({"cluster", "status", "--config", cfg}, dir.path() + "/st-text.txt");
    CAPTURE(text.out);
    CHECK(text.out.find(" spooled (caught up)") != std::string::npos);
    CHECK(text.out.find("written, not spooled by this node") != std::string::npos);

    auto down = run_comb({"cluster", "down", "--config", cfg}, dir.path() + "/down.txt");
    CAPTURE(down.out);
    REQUIRE(down.rc == 0);
    CHECK(down.out.find("n1: stopped") != std::string::npos);
    CHECK(::kill(p1, 0) != 0);
    CHECK(::kill(p2, 0) != 0);
    auto after = run_comb({"cluster", "status", "--config", cfg}, dir.path() + "/st2.txt");
    CHECK(after.rc == 3);
    CHECK(after.out.find("UNREACHABLE") != std::string::npos);
  }

  TEST_CASE("a node that cannot start: up names it, quotes its log, stops the others") {
    test::temp_dir dir;
    // Something else listens on n2's port.
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    REQUIRE(listen(fd, 4) == 0);
    socklen_t len = sizeof(addr);
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    auto cfg = write_config(dir.path(), test::free_port(), ntohs(addr.sin_port));
    auto up = run_comb({"cluster", "up", "--config", cfg, "--wait", "20"}, dir.path() + "/up.txt");
    CAPTURE(up.out);
    CHECK(up.rc != 0);
    CHECK(up.out.find("node n2") != std::string::npos);
    CHECK(up.out.find("n2.log") != std::string::npos);
    auto p1 = pid_of(dir.path() + "/n1");
    REQUIRE(p1 > 0);
    test::wait_until([&] { return ::kill(p1, 0) != 0; }, 20s, "n1 stopped again");
    CHECK(::kill(p1, 0) != 0);
    close(fd);
  }
}
