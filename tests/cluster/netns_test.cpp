// Tests of the network-namespace harness the cluster tests run on (tests/support/netns.hpp):
// hosts reach each other over the bridge and not the root namespace, a cut host is
// unreachable (a connect times out, nothing refuses it) until it is healed, processes run
// inside a host, and namespaces are removed, including those a dead test left behind.
// Skipped, visibly, where the harness cannot run (not root, no `ip netns`).
#include "tests/support/netns.hpp"

#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace comb;

namespace {

sockaddr_in addr_of(const std::string& ip, int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  return a;
}

// A listening socket on ip:port in the calling thread's namespace (-1 on failure).
int listen_on(const std::string& ip, int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  auto a = addr_of(ip, port);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd, 8) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Connects to ip:port within `ms`: "ok", or what happened ("timeout", "refused", ...).
std::string try_connect(const std::string& ip, int port, int ms) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  auto a = addr_of(ip, port);
  std::string out;
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    out = "ok";
  } else if (errno != EINPROGRESS) {
    out = std::strerror(errno);
  } else {
    pollfd p{fd, POLLOUT, 0};
    if (poll(&p, 1, ms) == 0) {
      out = "timeout";
    } else {
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      out = err == 0 ? "ok" : std::strerror(err);
    }
  }
  close(fd);
  return out;
}

bool exists(const std::string& ns) {
  return std::filesystem::exists("/run/netns/" + ns);
}

} // namespace

TEST_SUITE("cluster.netns") {
  TEST_CASE("hosts reach each other; a cut host is unreachable until healed; all is removed") {
    if (auto why = test::netns_hosts::unavailable(); !why.empty()) {
      MESSAGE("SKIPPED: " << why);
      return;
    }
    // A namespace left by a test process that died: the next harness removes it.
    pid_t dead = fork();
    if (dead == 0)
      _exit(0);
    waitpid(dead, nullptr, 0);
    auto stale = "comb-" + std::to_string(dead) + "-h1";
    REQUIRE(std::system(("ip netns add " + stale).c_str()) == 0);
    std::string names[3];
    {
      test::netns_hosts hosts{3};
      REQUIRE_MESSAGE(hosts.error().empty(), hosts.error());
      CHECK(!exists(stale));
      REQUIRE(hosts.size() == 3);
      for (size_t i = 0; i < 3; ++i) {
        names[i] = hosts.ns(i);
        CHECK(exists(names[i]));
      }
      CHECK(hosts.address(1) == "10.77.0.2");
      // Loopback is up and the host has its address; the root namespace does not.
      CHECK(hosts.run(0, "ip addr show dev lo | grep -q 'inet 127.0.0.1'") == 0);
      CHECK(hosts.run(1, "ip addr show dev eth0 | grep -q 'inet 10.77.0.2/24'") == 0);
      CHECK(std::system("ip addr | grep -q 'inet 10.77.0.'") != 0);

      // Host 1 listens; host 2 connects over the bridge.
      int port = 4700;
      int fd = -1;
      {
        auto in = hosts.enter(0);
        REQUIRE_MESSAGE(in->ok(), in->why());
        fd = listen_on(hosts.address(0), port);
      }
      REQUIRE(fd >= 0);
      {
        auto in = hosts.enter(1);
        REQUIRE_MESSAGE(in->ok(), in->why());
        CHECK(try_connect(hosts.address(0), port, 5000) == "ok");
        // From host 2, host 1's address is not host 2's own: nothing listens on port 4701.
        CHECK(try_connect(hosts.address(0), port + 1, 5000) != "ok");
      }

      // Cut host 1: a connect from host 2 hangs (dropped, not refused) until it is healed.
      REQUIRE_MESSAGE(hosts.cut(0), hosts.error());
      {
        auto in = hosts.enter(1);
        CHECK(try_connect(hosts.address(0), port, 1000) == "timeout");
      }
      REQUIRE_MESSAGE(hosts.heal(0), hosts.error());
      {
        auto in = hosts.enter(1);
        CHECK(try_connect(hosts.address(0), port, 10000) == "ok");
      }
      close(fd);

      // A process inside host 3 sees host 3's address.
      auto log = std::filesystem::temp_directory_path()
                 / ("comb-netns-" + std::to_string(getpid()));
      auto p = hosts.spawn(2, {"/bin/sh", "-c", "ip -4 -o addr show dev eth0"}, log.string());
      int st = p->wait();
      CHECK(WIFEXITED(st));
      std::ifstream in{log};
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      CHECK_MESSAGE(text.find("10.77.0.3/24") != std::string::npos, text);
      std::filesystem::remove(log);

      // One that runs on is killed with its handle.
      auto sleeper = hosts.spawn(2, {"/bin/sleep", "60"}, "");
      CHECK(sleeper->running());
    }
    for (auto& n : names)
      CHECK(!exists(n));
  }
}
