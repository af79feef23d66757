// comb::nectar::slow_client_guard: bounds how long a client of Nectar's HTTP server may take
// to send a whole request. cpp-httplib (Debian 0.11) only bounds each read, so a slowloris
// client that sends one header byte just inside the read timeout holds a server thread for
// ever; with enough such connections no thread is left for anyone else. The guard looks at
// the server's own connected sockets every `tick` (/proc/self/fd, getsockname/getpeername:
// httplib does not hand out its sockets) and shuts down, for reading and writing, a socket
// that has been reading one request for longer than `limit`: since it was first seen, or
// since its previous response was written. The server tells it when a request was read
// (read()) and when its response went out (answered()), keyed by the peer's address. A
// connection between the two (its handler running) is never cut. Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>

namespace comb::nectar {

class slow_client_guard {
public:
  /// Watches connections to local `port`.
  slow_client_guard(uint16_t port, std::chrono::milliseconds limit,
                    std::chrono::milliseconds tick = std::chrono::milliseconds{500});
  ~slow_client_guard();
  slow_client_guard(const slow_client_guard&) = delete;
  slow_client_guard& operator=(const slow_client_guard&) = delete;

  /// The request of peer `addr`:`port` has been read (its handler runs now).
  void read(const std::string& addr, int port);
  /// The response to peer `addr`:`port` has been written (it may send its next request).
  void answered(const std::string& addr, int port);
  /// Connections shut down for being too slow (monotonic).
  uint64_t cut() const;

private:
  using peer = std::pair<std::string, int>;
  struct conn {
    std::chrono::steady_clock::time_point since; ///< start of the request being read
    bool in_handler = false;
  };
  void run();
  void scan();

  uint16_t port_;
  std::chrono::milliseconds limit_, tick_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  uint64_t cut_ = 0;
  /// Connections by peer, as last seen on a socket or told by the server.
  std::map<peer, conn> conns_;
  std::thread thread_;
};

} // namespace comb::nectar
