// Slowloris against Nectar's HTTP server: a client that sends one header line every 300 ms
// (well inside the 2 s read timeout, so cpp-httplib alone would keep it forever) is cut once
// its request has taken longer than the server's request_read_limit, and the server keeps
// answering others; with the limit off the same client is still connected, so the test sees
// the bound and not something else closing the connection. No node is needed: the trickled
// request never reaches a handler and /healthz calls none.
#include "apps/nectar/server.hpp"
#include "runtime/system_config.hpp"
#include "tests/apps/nectar/nectar_util.hpp"

#include <doctest/doctest.h>

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

using namespace comb;

namespace {

/// Trickles a request's header lines to `port` every 300 ms for up to `for_at_most`; returns
/// how long until the server closed the connection, or `for_at_most` when it never did.
std::chrono::milliseconds trickle(uint16_t port, std::chrono::milliseconds for_at_most) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  auto start = std::chrono::steady_clock::now();
  std::string line = "GET /healthz HTTP/1.1\r\n";
  int n = 0;
  while (std::chrono::steady_clock::now() - start < for_at_most) {
    if (send(fd, line.data(), line.size(), MSG_NOSIGNAL) < 0)
      break;
    line = "X-Slow-" + std::to_string(++n) + ": x\r\n";
    // Wait 300 ms, watching for the server's end of the stream (or anything it sends).
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 300) > 0) {
      char buf[512];
      if (recv(fd, buf, sizeof(buf), 0) <= 0)
        break;
    }
  }
  close(fd);
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now()
                                                               - start);
}

} // namespace

TEST_SUITE("apps.nectar.slowloris") {
  TEST_CASE("a request trickled past request_read_limit is cut; others are served") {
    runtime::system_config cfg{2};
    caf::actor_system sys{cfg};
    for (bool bounded : {true, false}) {
      CAPTURE(bounded);
      nectar::server_options so;
      so.node = {"127.0.0.1", 1}; // never called
      so.port = 0;
      so.threads = 4;
      so.capture = false;
      so.read_timeout = std::chrono::seconds{2};
      so.request_read_limit = std::chrono::milliseconds{bounded ? 1500 : 0};
      auto srv = nectar::server::start(sys, so);
      REQUIRE_MESSAGE(srv, test::why(srv));
      auto port = (*srv)->port();
      std::chrono::milliseconds took{0};
      std::thread slow{[&] { took = trickle(port, std::chrono::milliseconds{5000}); }};
      std::this_thread::sleep_for(std::chrono::milliseconds{500});
      // Someone else is served meanwhile.
      CHECK(test::raw_request(port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n") == 200);
      slow.join();
      if (bounded) {
        // 1.5 s limit, checked every 0.5 s: cut within about 2 s; never as late as 5 s.
        CHECK(took >= std::chrono::milliseconds{1400});
        CHECK(took < std::chrono::milliseconds{4500});
      } else {
        CHECK(took >= std::chrono::milliseconds{5000});
      }
      CHECK(test::raw_request(port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n") == 200);
      (*srv)->stop();
    }
  }
}
