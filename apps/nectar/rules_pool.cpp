// CRS in worker processes with a time bound per request (see rules_pool.hpp).
#include "apps/nectar/rules_pool.hpp"

#include "apps/nectar/rules_worker.hpp"
#include "base/errc.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iostream>

extern char** environ;

namespace comb::nectar {

namespace {

struct worker {
  pid_t pid = -1;
  int fd = -1;
  std::string name;
};

/// Kills the worker (a no-op when it ended already), closes its socket, waits for it and
/// says how it ended.
std::string reap_worker(pid_t pid, int fd, int* exit_code = nullptr, int* signal = nullptr) {
  if (fd >= 0)
    ::close(fd);
  if (pid <= 0)
    return "was not running";
  // Its group too: the process that runs CRS is its child (rules_worker.hpp).
  ::kill(-pid, SIGKILL);
  ::kill(pid, SIGKILL);
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(st)) {
    if (exit_code)
      *exit_code = WEXITSTATUS(st);
    return "exited with status " + std::to_string(WEXITSTATUS(st));
  }
  if (WIFSIGNALED(st)) {
    if (signal)
      *signal = WTERMSIG(st);
    const char* abbrev = sigabbrev_np(WTERMSIG(st));
    return "was killed by signal " + std::to_string(WTERMSIG(st)) + " (SIG"
           + (abbrev ? abbrev : "?") + ")";
  }
  return "ended (status " + std::to_string(st) + ")";
}

/// Starts `comb nectar rules-worker` on one end of a socket pair and waits for it to load CRS.
caf::expected<worker> spawn_worker(const rules_pool_options& o) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    return make_error(errc::unavailable, std::string{"socketpair: "} + std::strerror(errno));
  int child = sv[1];
  if (child == 3) { // dup2(3, 3) would keep close-on-exec
    child = ::fcntl(sv[1], F_DUPFD_CLOEXEC, 10);
    ::close(sv[1]);
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, child, 3);
  // Nothing else of the server's: its HTTP connections, listening socket and node links are
  // not all close-on-exec, and a worker holding one would keep it open after the server
  // closed it (a client would see no end of its connection).
  posix_spawn_file_actions_addclosefrom_np(&fa, 4);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGXCPU, SIGCHLD})
    sigaddset(&defaults, sig);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  // Its own process group: a Ctrl-C to the server's terminal stops the server, which then
  // stops its workers; a worker whose server went away ends at the end of its socket.
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  std::vector<std::string> args{o.executable,
                                "nectar",
                                "rules-worker",
                                "--paranoia",
                                std::to_string(o.paranoia),
                                "--cpu-budget-ms",
                                std::to_string(o.cpu_budget.count())};
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  // One thread of BLAS and OpenMP: a worker runs CRS alone.
  std::vector<std::string> env_store;
  for (char** e = environ; e && *e; ++e) {
    std::string_view v{*e};
    if (!v.starts_with("OPENBLAS_NUM_THREADS=") && !v.starts_with("OMP_NUM_THREADS="))
      env_store.emplace_back(v);
  }
  env_store.emplace_back("OPENBLAS_NUM_THREADS=1");
  env_store.emplace_back("OMP_NUM_THREADS=1");
  std::vector<char*> envp;
  for (auto& e : env_store)
    envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, o.executable.c_str(), &fa, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  ::close(child);
  if (rc != 0) {
    ::close(sv[0]);
    return make_error(errc::unavailable, "cannot start the CRS rules worker " + o.executable + ": "
                                        + std::strerror(rc));
  }
  bool timed_out = false;
  auto frame =
    read_frame(sv[0], std::chrono::steady_clock::now() + o.start_timeout, &timed_out);
  std::optional<rules_reply> ready;
  if (frame)
    ready = decode_reply(*frame);
  if (!ready || ready->what != rules_reply::kind::ready) {
    auto how = reap_worker(pid, sv[0]);
    if (ready && ready->what == rules_reply::kind::error)
      return make_error(errc::bad_config, "the CRS rules worker could not load CRS: " + ready->text);
    return make_error(errc::unavailable, "the CRS rules worker " + o.executable + " "
                                        + (timed_out ? "did not load CRS in time and " : "")
                                        + how + " before it was ready");
  }
  return worker{pid, sv[0], ready->text};
}

} // namespace

std::string rules_failure_label(rules_result::outcome what) {
  switch (what) {
    case rules_result::outcome::ok:
      return "";
    case rules_result::outcome::timed_out:
      return "timed out";
    case rules_result::outcome::crashed:
      return "crashed";
    case rules_result::outcome::unavailable:
      return "unavailable";
    case rules_result::outcome::budget_exhausted:
      return "budget exhausted";
  }
  return "";
}

rules_pool::rules_pool(rules_pool_options opts) : opts_(std::move(opts)), budget_(opts_.budget) {
  slots_.resize(std::max<size_t>(opts_.workers, 1));
}

caf::expected<std::unique_ptr<rules_pool>> rules_pool::start(const rules_pool_options& opts) {
  if (opts.executable.empty())
    return make_error(errc::invalid_argument, "no executable for the CRS rules workers");
  auto p = std::unique_ptr<rules_pool>(new rules_pool(opts));
  // The first worker here, so that a set-up that cannot work (CRS missing) is said now.
  auto w = spawn_worker(p->opts_);
  if (!w)
    return w.error();
  p->name_ = w->name;
  p->slots_[0] = slot{w->pid, w->fd, slot::state::idle};
  p->stats_.started = 1;
  p->supervisor_ = std::thread{[q = p.get()] { q->supervise(); }};
  return p;
}

rules_pool::~rules_pool() {
  {
    std::lock_guard<std::mutex> guard{mu_};
    stopping_ = true;
    wake_lines(true);
  }
  dead_cv_.notify_all();
  if (supervisor_.joinable())
    supervisor_.join();
  for (auto& s : slots_)
    if (s.st == slot::state::idle || s.st == slot::state::busy)
      reap_worker(s.pid, s.fd);
}

void rules_pool::supervise() {
  std::unique_lock<std::mutex> lock{mu_};
  auto backoff = std::chrono::milliseconds{100};
  auto is_dead = [](const slot& s) { return s.st == slot::state::dead; };
  for (;;) {
    // Four times a second, an idle worker whose socket ended (it died) is reaped and replaced,
    // so that it is not left for a request to find.
    dead_cv_.wait_for(lock, std::chrono::milliseconds{250}, [&] {
      return stopping_ || std::any_of(slots_.begin(), slots_.end(), is_dead);
    });
    if (stopping_)
      return;
    for (auto& idle : slots_) {
      if (idle.st != slot::state::idle)
        continue;
      pollfd pf{idle.fd, POLLIN, 0};
      if (::poll(&pf, 1, 0) <= 0)
        continue;
      auto how = reap_worker(idle.pid, idle.fd);
      ++stats_.died_idle;
      stats_.last_failure = "CRS rules worker " + std::to_string(idle.pid) + " " + how
                            + " while idle";
      std::cerr << "nectar rules: " << stats_.last_failure << "; starting another" << std::endl;
      idle = slot{};
    }
    if (!std::any_of(slots_.begin(), slots_.end(), is_dead))
      continue;
    auto& s = *std::find_if(slots_.begin(), slots_.end(), is_dead);
    s.st = slot::state::starting;
    lock.unlock();
    auto w = spawn_worker(opts_);
    lock.lock();
    if (stopping_) {
      s.st = slot::state::dead;
      if (w)
        reap_worker(w->pid, w->fd);
      return;
    }
    if (w) {
      s.pid = w->pid;
      s.fd = w->fd;
      s.st = slot::state::idle;
      ++stats_.started;
      failed_starts_ = 0;
      backoff = std::chrono::milliseconds{100};
      wake_lines();
      continue;
    }
    s.st = slot::state::dead;
    ++failed_starts_;
    stats_.last_failure = describe(w.error());
    if (failed_starts_ == 1 || failed_starts_ % 100 == 0)
      std::cerr << "nectar rules: " << stats_.last_failure << " (" << failed_starts_
                << " failed starts in a row)" << std::endl;
    wake_lines(true); // callers waiting for a worker may give up now
    dead_cv_.wait_for(lock, backoff, [&] { return stopping_; });
    backoff = std::min(backoff * 2, std::chrono::milliseconds{5000});
  }
}

size_t rules_pool::waiting() const {
  std::lock_guard<std::mutex> guard{mu_};
  return waiting_[0].size() + waiting_[1].size();
}

void rules_pool::wake_lines(bool all) {
  for (auto& line : waiting_) {
    if (line.empty())
      continue;
    if (!all) {
      line.front()->cv.notify_one();
      continue;
    }
    for (auto* w : line)
      w->cv.notify_one();
  }
}

rules_result rules_pool::evaluate(const anomaly::http_request& r, const std::string& client) {
  // The client pays for what CRS took before its worker is free again, so that its next
  // request, which may be waiting for that worker, sees the charge.
  auto charge = [&](const rules_result& res) {
    if (!client.empty())
      budget_.charge(client, std::chrono::nanoseconds{res.cpu_ns});
  };
  auto payload = encode_request(r);
  bool large = r.body.size() > opts_.large_body_bytes;
  auto large_workers = opts_.large_workers > 0 ? std::min(opts_.large_workers, slots_.size())
                                               : std::max<size_t>(slots_.size() - 1, 1);
  auto is = [](slot::state st) { return [st](const slot& s) { return s.st == st; }; };
  for (size_t attempt = 0;; ++attempt) {
    slot* s = nullptr;
    pid_t pid = -1;
    int fd = -1;
    uint64_t turn = 0;
    {
      std::unique_lock<std::mutex> lock{mu_};
      // Without a worker running and starts failing, a caller does not wait for ever.
      auto broken = [&] {
        return failed_starts_ >= 3
               && std::none_of(slots_.begin(), slots_.end(), is(slot::state::busy));
      };
      // A large request waits while the large workers are all busy, so that ordinary ones
      // always find a worker.
      auto lane_free = [&] {
        if (!large)
          return true;
        auto busy_large = std::count_if(slots_.begin(), slots_.end(), [](const slot& x) {
          return x.st == slot::state::busy && x.large;
        });
        return static_cast<size_t>(busy_large) < large_workers;
      };
      // Callers take workers in the order they came (ordinary and large requests each in
      // their own line, so that a large one held by its lane does not hold up ordinary ones):
      // under load, waking whichever waiter the scheduler picks left some requests waiting
      // for many others' turns, the labeling lag's tail. A retry after a dead worker keeps
      // its place at the front.
      auto& line = waiting_[large ? 1 : 0];
      waiter me;
      if (attempt == 0)
        line.push_back(&me);
      else
        line.push_front(&me);
      bool held = false; // by the lane, with a worker idle
      me.cv.wait(lock, [&] {
        if (stopping_ || broken())
          return true;
        bool idle = std::any_of(slots_.begin(), slots_.end(), is(slot::state::idle));
        if (line.front() != &me || !idle)
          return false;
        held = held || !lane_free();
        return lane_free();
      });
      stats_.large_waits += held ? 1 : 0;
      line.erase(std::find(line.begin(), line.end(), &me));
      wake_lines(); // the next in line may take another idle worker
      auto idle = std::find_if(slots_.begin(), slots_.end(), is(slot::state::idle));
      if (stopping_ || idle == slots_.end() || attempt > slots_.size()) {
        ++stats_.unavailable;
        rules_result res;
        res.what = rules_result::outcome::unavailable;
        res.why = stopping_ ? "the rules pool is stopping"
                            : "no CRS rules worker could be started: " + stats_.last_failure;
        return res;
      }
      // The client's budget, checked once a worker is free for it: its requests that waited
      // meanwhile see what its earlier ones cost.
      if (!client.empty() && !budget_.allow(client)) {
        ++stats_.budget_exhausted;
        rules_result res;
        res.what = rules_result::outcome::budget_exhausted;
        res.flagged = true;
        res.why = "client " + client + " spent its budget of slow CRS time";
        if (stats_.budget_exhausted == 1 || stats_.budget_exhausted % 1000 == 0)
          std::cerr << "nectar rules: " << res.why << " (" << stats_.budget_exhausted
                    << " requests labeled 'budget exhausted' so far)" << std::endl;
        wake_lines(); // the worker stays free for the next caller
        return res;
      }
      s = &*idle;
      s->st = slot::state::busy;
      s->large = large;
      turn = ++turns_;
      pid = s->pid;
      fd = s->fd;
    }
    // A worker that died while idle (its socket ended) never saw this request: another takes it.
    pollfd pf{fd, POLLIN, 0};
    bool gone = ::poll(&pf, 1, 0) > 0 || !write_frame(fd, payload);
    if (gone) {
      auto how = reap_worker(pid, fd);
      std::lock_guard<std::mutex> guard{mu_};
      *s = slot{};
      ++stats_.died_idle;
      stats_.last_failure = "CRS rules worker " + std::to_string(pid) + " " + how + " while idle";
      std::cerr << "nectar rules: " << stats_.last_failure << "; starting another" << std::endl;
      dead_cv_.notify_all();
      continue;
    }
    bool wall = false;
    auto frame = read_frame(fd, std::chrono::steady_clock::now() + opts_.wall_budget, &wall);
    std::optional<rules_reply> reply;
    if (frame)
      reply = decode_reply(*frame);
    if (reply && reply->what == rules_reply::kind::verdict) {
      rules_result res;
      res.flagged = reply->flagged;
      res.score = reply->score;
      res.rules = std::move(reply->rules);
      res.cpu_ns = reply->cpu_ns;
      res.turn = turn;
      charge(res);
      std::lock_guard<std::mutex> guard{mu_};
      s->st = slot::state::idle;
      ++stats_.evaluated;
      wake_lines();
      return res;
    }
    rules_result res;
    res.flagged = true;
    res.turn = turn;
    if (reply && (reply->what == rules_reply::kind::timed_out
                  || reply->what == rules_reply::kind::crashed)) {
      // The worker's CRS process overran its budget or died; the worker forked another.
      bool timed_out = reply->what == rules_reply::kind::timed_out;
      res.what = timed_out ? rules_result::outcome::timed_out : rules_result::outcome::crashed;
      res.cpu_ns = reply->cpu_ns;
      res.why = reply->text + " (worker " + std::to_string(pid) + ")";
      charge(res);
      std::lock_guard<std::mutex> guard{mu_};
      s->st = slot::state::idle;
      auto& n = timed_out ? stats_.timed_out : stats_.crashed;
      if (n++ == 0 || (stats_.timed_out + stats_.crashed) % 100 == 0)
        std::cerr << "nectar rules: " << res.why << " (" << stats_.timed_out << " timed out, "
                  << stats_.crashed << " crashed so far)" << std::endl;
      stats_.last_failure = res.why;
      wake_lines();
      return res;
    }
    // Past the wall-clock budget, or the worker itself ended: killed (if it still runs) and
    // replaced.
    int code = -1, sig = 0;
    auto how = reap_worker(pid, fd, &code, &sig);
    if (wall || code == rules_timed_out_exit) {
      res.what = rules_result::outcome::timed_out;
      res.cpu_ns = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(opts_.cpu_budget).count());
      res.why = wall ? "CRS took over " + std::to_string(opts_.wall_budget.count())
                         + " ms of wall-clock time (worker " + std::to_string(pid) + " killed)"
                     : "CRS took over " + std::to_string(opts_.cpu_budget.count())
                         + " ms of CPU (worker " + std::to_string(pid) + " ended)";
    } else {
      res.what = rules_result::outcome::crashed;
      res.why = "CRS rules worker " + std::to_string(pid) + " " + how
                + (reply ? " after a reply that was not a verdict" : "")
                + " while it held the request";
    }
    charge(res);
    std::lock_guard<std::mutex> guard{mu_};
    *s = slot{};
    bool first = false;
    if (res.what == rules_result::outcome::timed_out) {
      first = stats_.timed_out == 0;
      ++stats_.timed_out;
    } else {
      first = stats_.crashed == 0;
      ++stats_.crashed;
    }
    stats_.last_failure = res.why;
    if (first || (stats_.timed_out + stats_.crashed) % 100 == 0)
      std::cerr << "nectar rules: " << res.why << " (" << stats_.timed_out << " timed out, "
                << stats_.crashed << " crashed so far); starting another" << std::endl;
    dead_cv_.notify_all();
    return res;
  }
}

std::string rules_pool::name() const {
  return name_ + ", " + std::to_string(slots_.size()) + " worker processes, "
         + std::to_string(opts_.cpu_budget.count()) + " ms CPU a request";
}

rules_pool_stats rules_pool::stats() const {
  std::lock_guard<std::mutex> guard{mu_};
  return stats_;
}

std::vector<pid_t> rules_pool::pids() const {
  std::lock_guard<std::mutex> guard{mu_};
  std::vector<pid_t> out;
  for (auto& s : slots_)
    if (s.st == slot::state::idle || s.st == slot::state::busy)
      out.push_back(s.pid);
  return out;
}

} // namespace comb::nectar
