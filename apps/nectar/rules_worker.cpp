// A CRS rules worker process and its frames (see rules_worker.hpp).
#include "apps/nectar/rules_worker.hpp"

#ifdef COMB_NECTAR_HAVE_CRS
#  include "apps/anomaly/crs_engine.hpp"
#  include "base/errc.hpp"
#endif

#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>

namespace comb::nectar {

namespace {

constexpr uint32_t max_frame = uint32_t{64} << 20;

void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i)
    out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void put_str(std::string& out, const std::string& s) {
  put_u32(out, static_cast<uint32_t>(s.size()));
  out += s;
}

/// Reads what encode_* wrote; every read checks the bounds (ok_ false past the end).
struct reader {
  const std::string& in;
  size_t pos = 0;
  bool ok = true;

  uint64_t uint(int bytes) {
    if (!ok || in.size() - pos < static_cast<size_t>(bytes)) {
      ok = false;
      return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i)
      v |= static_cast<uint64_t>(static_cast<unsigned char>(in[pos + i])) << (8 * i);
    pos += bytes;
    return v;
  }
  std::string str() {
    auto n = uint(4);
    if (!ok || in.size() - pos < n) {
      ok = false;
      return {};
    }
    auto s = in.substr(pos, n);
    pos += n;
    return s;
  }
};

uint64_t thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

[[maybe_unused]] void on_budget_spent(int) {
  _exit(rules_timed_out_exit);
}

#ifdef COMB_NECTAR_HAVE_CRS
/// A forked CRS process's loop: one verdict per request until end of file (0), or 2 after a
/// request that does not decode. Each request runs under a timer on this thread's CPU clock
/// whose signal ends the process (rules_timed_out_exit).
int serve_requests(int fd, const anomaly::crs_engine& engine, const rules_worker_options& opts) {
  sigevent sev{};
  sev.sigev_notify = SIGEV_THREAD_ID;
  sev.sigev_signo = SIGXCPU;
  sev._sigev_un._tid = gettid(); // sigev_notify_thread_id, which this glibc does not name
  timer_t timer{};
  auto budget_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(opts.cpu_budget).count();
  if (budget_ns > 0 && timer_create(CLOCK_THREAD_CPUTIME_ID, &sev, &timer) != 0) {
    rules_reply no{rules_reply::kind::error,
                   std::string{"no CPU timer for the budget: "} + std::strerror(errno)};
    write_frame(fd, encode_reply(no));
    return 2;
  }
  sigset_t xcpu;
  sigemptyset(&xcpu);
  sigaddset(&xcpu, SIGXCPU);
  pthread_sigmask(SIG_UNBLOCK, &xcpu, nullptr);
  itimerspec arm{};
  arm.it_value.tv_sec = budget_ns / 1'000'000'000;
  arm.it_value.tv_nsec = budget_ns % 1'000'000'000;
  itimerspec disarm{};
  for (;;) {
    auto frame = read_frame(fd);
    if (!frame)
      return 0; // the pool closed the socket (or went away)
    auto req = decode_request(*frame);
    if (!req) {
      rules_reply no{rules_reply::kind::error, "a request frame that does not decode"};
      write_frame(fd, encode_reply(no));
      return 2;
    }
    // A relative timer on a CPU clock counts from the clock's value now.
    auto cpu0 = thread_cpu_ns();
    if (budget_ns > 0)
      timer_settime(timer, 0, &arm, nullptr);
    auto v = engine.evaluate(*req);
    if (budget_ns > 0)
      timer_settime(timer, 0, &disarm, nullptr);
    rules_reply out;
    out.flagged = v.flagged;
    out.score = v.score;
    out.rules = std::move(v.rules);
    out.cpu_ns = thread_cpu_ns() - cpu0;
    if (!write_frame(fd, encode_reply(out)))
      return 0;
  }
}
#endif

} // namespace

std::string encode_request(const anomaly::http_request& r) {
  std::string out;
  out.reserve(64 + r.url.size() + r.body.size());
  put_str(out, r.method);
  put_str(out, r.url);
  put_str(out, r.version);
  put_u32(out, static_cast<uint32_t>(r.headers.size()));
  for (auto& [k, v] : r.headers) {
    put_str(out, k);
    put_str(out, v);
  }
  put_str(out, r.body);
  return out;
}

std::optional<anomaly::http_request> decode_request(const std::string& payload) {
  reader in{payload};
  anomaly::http_request r;
  r.method = in.str();
  r.url = in.str();
  r.version = in.str();
  auto n = in.uint(4);
  for (uint64_t i = 0; in.ok && i < n; ++i) {
    auto k = in.str();
    auto v = in.str();
    r.headers.emplace_back(std::move(k), std::move(v));
  }
  r.body = in.str();
  if (!in.ok || in.pos != payload.size())
    return std::nullopt;
  return r;
}

std::string encode_reply(const rules_reply& r) {
  std::string out;
  out.push_back(static_cast<char>(r.what));
  put_str(out, r.text);
  out.push_back(r.flagged ? 1 : 0);
  put_u32(out, static_cast<uint32_t>(r.score));
  put_u64(out, r.cpu_ns);
  put_u32(out, static_cast<uint32_t>(r.rules.size()));
  for (int id : r.rules)
    put_u32(out, static_cast<uint32_t>(id));
  return out;
}

std::optional<rules_reply> decode_reply(const std::string& payload) {
  reader in{payload};
  rules_reply r;
  auto what = in.uint(1);
  if (what > 4)
    return std::nullopt;
  r.what = static_cast<rules_reply::kind>(what);
  r.text = in.str();
  r.flagged = in.uint(1) != 0;
  r.score = static_cast<int>(static_cast<uint32_t>(in.uint(4)));
  r.cpu_ns = in.uint(8);
  auto n = in.uint(4);
  for (uint64_t i = 0; in.ok && i < n; ++i)
    r.rules.push_back(static_cast<int>(static_cast<uint32_t>(in.uint(4))));
  if (!in.ok || in.pos != payload.size())
    return std::nullopt;
  return r;
}

bool write_frame(int fd, const std::string& payload) {
  std::string head;
  put_u32(head, static_cast<uint32_t>(payload.size()));
  iovec iov[2] = {{head.data(), head.size()},
                  {const_cast<char*>(payload.data()), payload.size()}};
  size_t total = head.size() + payload.size(), done = 0;
  while (done < total) {
    msghdr m{};
    iovec rest[2];
    int n = 0;
    size_t skip = done;
    for (auto& v : iov) {
      if (skip >= v.iov_len) {
        skip -= v.iov_len;
        continue;
      }
      rest[n++] = {static_cast<char*>(v.iov_base) + skip, v.iov_len - skip};
      skip = 0;
    }
    m.msg_iov = rest;
    m.msg_iovlen = static_cast<size_t>(n);
    auto w = ::sendmsg(fd, &m, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return false;
    }
    done += static_cast<size_t>(w);
  }
  return true;
}

std::optional<std::string> read_frame(int fd,
                                      std::optional<std::chrono::steady_clock::time_point> deadline,
                                      bool* timed_out) {
  if (timed_out)
    *timed_out = false;
  auto read_exact = [&](char* p, size_t n) {
    while (n > 0) {
      if (deadline) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                      *deadline - std::chrono::steady_clock::now())
                      .count();
        pollfd pf{fd, POLLIN, 0};
        int r = ::poll(&pf, 1, static_cast<int>(std::max<long long>(left, 0) + 1));
        if (r < 0 && errno == EINTR)
          continue;
        if (r == 0) {
          if (std::chrono::steady_clock::now() < *deadline)
            continue;
          if (timed_out)
            *timed_out = true;
          return false;
        }
        if (r < 0)
          return false;
      }
      auto got = ::read(fd, p, n);
      if (got < 0 && errno == EINTR)
        continue;
      if (got <= 0)
        return false;
      p += got;
      n -= static_cast<size_t>(got);
    }
    return true;
  };
  unsigned char head[4];
  if (!read_exact(reinterpret_cast<char*>(head), 4))
    return std::nullopt;
  uint32_t n = head[0] | (head[1] << 8) | (head[2] << 16) | (uint32_t{head[3]} << 24);
  if (n > max_frame)
    return std::nullopt;
  std::string payload(n, '\0');
  if (n > 0 && !read_exact(payload.data(), n))
    return std::nullopt;
  return payload;
}

int run_rules_worker([[maybe_unused]] int fd, [[maybe_unused]] const rules_worker_options& opts) {
  std::signal(SIGPIPE, SIG_IGN);
#ifndef COMB_NECTAR_HAVE_CRS
  rules_reply no{rules_reply::kind::error, "built without libmodsecurity"};
  write_frame(fd, encode_reply(no));
  return 2;
#else
  anomaly::crs_options co;
  co.paranoia = opts.paranoia;
  co.allow_accept_charset = true;
  auto engine = anomaly::crs_engine::create(co);
  if (!engine) {
    rules_reply no{rules_reply::kind::error, describe(engine.error())};
    write_frame(fd, encode_reply(no));
    return 2;
  }
  rules_reply ready{rules_reply::kind::ready, (*engine)->name()};
  if (!write_frame(fd, encode_reply(ready)))
    return 0;
  // CRS runs in a child forked from here, CRS loaded: one that overruns its budget (or dies)
  // is replaced by another fork in a millisecond or two instead of a new process loading CRS
  // for a second and a half, so that each slow request costs its budget, not a reload. This
  // process says what became of the request.
  struct sigaction sa {};
  sa.sa_handler = on_budget_spent;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGXCPU, &sa, nullptr);
  pid_t self = ::getpid();
  for (;;) {
    pid_t child = ::fork();
    if (child < 0) {
      rules_reply no{rules_reply::kind::error, std::string{"fork: "} + std::strerror(errno)};
      write_frame(fd, encode_reply(no));
      return 2;
    }
    if (child == 0) {
      // It ends with this process (killed, say): it must not go on answering on the socket
      // with no one left to say what became of a request.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != self)
        _exit(0);
      _exit(serve_requests(fd, **engine, opts));
    }
    int st = 0;
    while (::waitpid(child, &st, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(st) && (WEXITSTATUS(st) == 0 || WEXITSTATUS(st) == 2))
      return WEXITSTATUS(st); // the pool closed the socket, or sent what does not decode
    rules_reply r;
    r.flagged = true;
    if (WIFEXITED(st) && WEXITSTATUS(st) == rules_timed_out_exit) {
      r.what = rules_reply::kind::timed_out;
      r.cpu_ns = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(opts.cpu_budget).count());
      r.text = "CRS took over " + std::to_string(opts.cpu_budget.count())
               + " ms of CPU (its process " + std::to_string(child) + " ended)";
    } else {
      r.what = rules_reply::kind::crashed;
      std::string how = WIFSIGNALED(st) ? "was killed by signal " + std::to_string(WTERMSIG(st))
                                        : "exited with status " + std::to_string(WEXITSTATUS(st));
      r.text = "the CRS process " + std::to_string(child) + " " + how
               + " while it held the request";
    }
    if (!write_frame(fd, encode_reply(r)))
      return 0;
  }
#endif
}

} // namespace comb::nectar
