#include "runtime/pieces/transfer_tuning.hpp"

#include <malloc.h>

#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace comb::runtime {

size_t set_tcp_nodelay_on_all_sockets() {
  size_t n = 0;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr)
    return 0;
  while (auto* ent = readdir(dir)) {
    if (ent->d_name[0] < '0' || ent->d_name[0] > '9')
      continue;
    int fd = std::atoi(ent->d_name);
    if (fd == dirfd(dir))
      continue;
    sockaddr_storage addr;
    socklen_t len = sizeof(addr);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
      continue; // not a socket
    if (addr.ss_family != AF_INET && addr.ss_family != AF_INET6)
      continue;
    int type = 0;
    socklen_t tlen = sizeof(type);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) != 0 || type != SOCK_STREAM)
      continue;
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0)
      ++n;
    // Large buffers: CAF writes once per readiness event, so a 1 MiB piece should not need
    // dozens of event-loop rounds (the kernel caps these at net.core.[rw]mem_max).
    int buf = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
  }
  closedir(dir);
  return n;
}

void keep_large_buffers_in_heap() {
  static std::once_flag once;
  std::call_once(once, [] {
    // mallopt returns 0 when it refuses a setting: nothing breaks, large buffers just keep
    // costing an mmap and munmap each, so say so and go on.
    if (mallopt(M_MMAP_THRESHOLD, 64 << 20) == 0)
      std::fprintf(stderr, "comb: mallopt(M_MMAP_THRESHOLD) refused; large buffers stay mmapped\n");
    if (mallopt(M_TRIM_THRESHOLD, 1 << 30) == 0)
      std::fprintf(stderr, "comb: mallopt(M_TRIM_THRESHOLD) refused\n");
  });
}

} // namespace comb::runtime
