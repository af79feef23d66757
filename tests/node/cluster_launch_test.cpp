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
#include <unistd.h>

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

/// The status line of `GET /` on 127.0.0.1:port (HTTP/1.0), or "" when nothing answers.
std::string http_status(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return {};
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
    std::string req = "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::send(fd, req.data(), req.size(), 0) == static_cast<ssize_t>(req.size())) {
      char buf[256];
      auto n = ::recv(fd, buf, sizeof(buf), 0);
      if (n > 0)
        out.assign(buf, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  return out.substr(0, out.find("\r\n"));
}

/// Runs `comb cluster down` on `cfg` when the test case ends, also when a REQUIRE stopped it
/// early: a failed case left its nodes running (each idles at about 13% of a core).
struct down_at_exit {
  std::string cfg, dir;
  ~down_at_exit() {
    if (!cfg.empty())
      run_comb({"cluster", "down", "--config", cfg}, dir + "/down-at-exit.txt");
  }
};
} // namespace

TEST_SUITE("node.cluster_launch") {
  TEST_CASE("up, status, down") {
    test::temp_dir dir;
    auto cfg = write_config(dir.path(), test::free_port(), test::free_port());
    auto up = run_comb({"cluster", "up", "--config", cfg}, dir.path() + "/up.txt");
    down_at_exit guard{cfg, dir.path()};
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

  TEST_CASE("a node's nectar and console roles: comb node serves both, and stops them") {
    test::temp_dir dir;
    int port = test::free_port(), nectar = test::free_port(), console = test::free_port();
    auto cfg = dir.path() + "/apps.toml";
    std::ofstream{cfg} << "[cluster]\nname = 'apps'\npartitions = 2\n"
                       << "[[node]]\nname = 'app'\nlisten = '127.0.0.1:" << port << "'\n"
                       << "data = '" << dir.path() << "/app'\npartitions = [0, 1]\n"
                       << "durability = 'async'\n"
                       << "roles = ['state', 'spooler', 'nectar', 'console']\n"
                       << "nectar_listen = '127.0.0.1:" << nectar << "'\n"
                       << "console_listen = '127.0.0.1:" << console << "'\n";
    auto up = run_comb({"cluster", "up", "--config", cfg}, dir.path() + "/up.txt");
    down_at_exit guard{cfg, dir.path()};
    CAPTURE(up.out);
    REQUIRE(up.rc == 0);
    std::string n_status, c_status;
    test::wait_until(
      [&] {
        n_status = http_status(nectar);
        c_status = http_status(console);
        return !n_status.empty() && !c_status.empty();
      },
      20s, "nectar and console answering");
    CHECK_MESSAGE(n_status.find(" 200") != std::string::npos, n_status);
    // The console sends a visitor without a session to its login page.
    CHECK_MESSAGE(c_status.find(" 303") != std::string::npos, c_status);
    auto down = run_comb({"cluster", "down", "--config", cfg}, dir.path() + "/down.txt");
    CAPTURE(down.out);
    CHECK(down.rc == 0);
    CHECK(http_status(nectar).empty());
    CHECK(http_status(console).empty());
  }
}
