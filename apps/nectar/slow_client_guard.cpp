// Nectar's bound on a request's total read time (see slow_client_guard.hpp).
#include "apps/nectar/slow_client_guard.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdlib>
#include <iostream>
#include <set>
#include <vector>

namespace comb::nectar {

namespace {

/// The port of a socket address, or -1 when it is not IPv4/IPv6.
int port_of(const sockaddr_storage& a) {
  if (a.ss_family == AF_INET)
    return ntohs(reinterpret_cast<const sockaddr_in&>(a).sin_port);
  if (a.ss_family == AF_INET6)
    return ntohs(reinterpret_cast<const sockaddr_in6&>(a).sin6_port);
  return -1;
}

/// The address of a socket address as text (as httplib writes remote_addr).
std::string addr_of(const sockaddr_storage& a) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (a.ss_family == AF_INET)
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(a).sin_addr, buf, sizeof(buf));
  else if (a.ss_family == AF_INET6)
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(a).sin6_addr, buf, sizeof(buf));
  return buf;
}

} // namespace

slow_client_guard::slow_client_guard(uint16_t port, std::chrono::milliseconds limit,
                                     std::chrono::milliseconds tick)
  : port_(port), limit_(limit), tick_(tick) {
  thread_ = std::thread{[this] { run(); }};
}

slow_client_guard::~slow_client_guard() {
  {
    std::lock_guard<std::mutex> guard{mu_};
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable())
    thread_.join();
}

void slow_client_guard::read(const std::string& addr, int port) {
  std::lock_guard<std::mutex> guard{mu_};
  auto& c = conns_[{addr, port}];
  c.in_handler = true;
}

void slow_client_guard::answered(const std::string& addr, int port) {
  std::lock_guard<std::mutex> guard{mu_};
  auto& c = conns_[{addr, port}];
  c.in_handler = false;
  c.since = std::chrono::steady_clock::now();
}

uint64_t slow_client_guard::cut() const {
  std::lock_guard<std::mutex> guard{mu_};
  return cut_;
}

void slow_client_guard::run() {
  std::unique_lock<std::mutex> lock{mu_};
  while (!stopping_) {
    cv_.wait_for(lock, tick_, [&] { return stopping_; });
    if (stopping_)
      return;
    lock.unlock();
    scan();
    lock.lock();
  }
}

void slow_client_guard::scan() {
  // The server's connected sockets now: fd and peer.
  std::vector<std::pair<int, peer>> socks;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (dirent* e = readdir(d)) {
      char* end = nullptr;
      long fd = std::strtol(e->d_name, &end, 10);
      if (end == e->d_name || *end != '\0' || fd == dirfd(d))
        continue;
      sockaddr_storage local{}, remote{};
      socklen_t ll = sizeof(local), rl = sizeof(remote);
      if (getsockname(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&local), &ll) != 0
          || port_of(local) != port_)
        continue;
      if (getpeername(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&remote), &rl) != 0)
        continue; // the listening socket, or one already shut down
      socks.emplace_back(static_cast<int>(fd), peer{addr_of(remote), port_of(remote)});
    }
    closedir(d);
  }
  auto now = std::chrono::steady_clock::now();
  std::vector<std::pair<int, peer>> to_cut;
  {
    std::lock_guard<std::mutex> guard{mu_};
    std::map<peer, conn> seen;
    for (auto& [fd, p] : socks) {
      auto it = conns_.find(p);
      conn c = it != conns_.end() ? it->second : conn{now, false};
      if (!c.in_handler && now - c.since > limit_) {
        to_cut.emplace_back(fd, p);
        ++cut_;
      }
      seen[p] = c;
    }
    // Peers whose sockets are gone are forgotten (a later connection may reuse the port).
    conns_ = std::move(seen);
  }
  for (auto& [fd, p] : to_cut) {
    // Still the same connection? (httplib may have closed it since, and the number been
    // reused.) The handler thread blocked on it wakes, sees the end of the stream and closes
    // it: the fd stays its to close.
    sockaddr_storage remote{};
    socklen_t rl = sizeof(remote);
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&remote), &rl) == 0
        && peer{addr_of(remote), port_of(remote)} == p)
      ::shutdown(fd, SHUT_RDWR);
  }
  if (!to_cut.empty())
    std::cerr << "nectar: closed " << to_cut.size() << " connection(s) that took over "
              << limit_.count() << " ms to send a request" << std::endl;
}

} // namespace comb::nectar
