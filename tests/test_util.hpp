// Helpers shared by Comb's tests: temporary folders, locating the comb binary, child
// processes, and bounded waits on a condition (a line in a child's log, a port that accepts,
// anything a predicate can see). Header only; not thread-safe.
#pragma once

#include "base/errc.hpp"

#include <caf/expected.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

namespace comb::test {

/// The value of `x`; aborts the test binary with the error's text when there is none.
template <class T>
T must(caf::expected<T> x) {
  if (!x) {
    std::fprintf(stderr, "unexpected error: %s\n", describe(x.error()).c_str());
    std::abort();
  }
  return std::move(*x);
}

/// The error text of `x`, or "ok" (safe to use in assertion messages either way).
template <class T>
std::string why(const caf::expected<T>& x) {
  return x ? std::string{"ok"} : describe(x.error());
}

/// The whole content of a file ("" when it cannot be read).
inline std::string read_file(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// A fresh folder under the system temp dir, removed on destruction.
class temp_dir {
public:
  temp_dir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "comb-test-XXXXXX").string();
    if (!mkdtemp(tmpl.data()))
      std::abort();
    path_ = tmpl;
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  const std::string& path() const { return path_; }

private:
  std::string path_;
};

#ifdef COMB_BINARY_DIR
/// The comb binary of this build.
inline std::string comb_binary() {
  return std::string{COMB_BINARY_DIR} + "/comb";
}
#endif

/// A child process started with fork/exec; killed (SIGKILL) on destruction if still running.
class child_process {
public:
  explicit child_process(const std::vector<std::string>& argv, const std::string& log = "") {
    std::fflush(stdout);
    std::fflush(stderr);
    pid_ = fork();
    if (pid_ == 0) {
      if (!log.empty()) {
        if (!std::freopen(log.c_str(), "w", stdout)) {
          std::fprintf(stderr, "child_process: cannot write %s\n", log.c_str());
          std::_Exit(127);
        }
        dup2(fileno(stdout), fileno(stderr));
      }
      std::vector<char*> args;
      for (auto& a : argv)
        args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      std::_Exit(127);
    }
  }
  ~child_process() {
    if (pid_ > 0 && running())
      kill(SIGKILL);
  }
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  pid_t pid() const { return pid_; }

  /// Sends `sig` and waits for the process to end; returns its wait status.
  int kill(int sig) {
    ::kill(pid_, sig);
    return wait();
  }

  /// Sends `sig` and returns at once (SIGSTOP, SIGCONT, ...).
  void signal(int sig) {
    if (pid_ > 0)
      ::kill(pid_, sig);
  }

  /// Stops the process (SIGSTOP) and returns once all its threads have stopped (true), or
  /// false when it ended instead. kill() alone only marks the process: its threads run on
  /// until the one picked to take the signal is scheduled, milliseconds on a loaded machine,
  /// time enough to answer a request sent after the kill (a CI run saw a reply in 2 ms).
  bool stop() {
    if (pid_ <= 0)
      return false;
    ::kill(pid_, SIGSTOP);
    for (;;) {
      int status = 0;
      auto r = waitpid(pid_, &status, WUNTRACED);
      if (r == -1 && errno == EINTR)
        continue;
      if (r == pid_ && WIFSTOPPED(status))
        return true;
      if (r == pid_ && (WIFEXITED(status) || WIFSIGNALED(status)))
        pid_ = -1;
      return false;
    }
  }

  int wait() {
    int status = 0;
    if (pid_ > 0)
      waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }

  bool running() {
    if (pid_ <= 0)
      return false;
    int status = 0;
    return waitpid(pid_, &status, WNOHANG) == 0;
  }

private:
  pid_t pid_ = -1;
};

/// What a `comb` run printed and its exit code (-1 when it did not exit normally).
struct run_result {
  int rc = -1;
  std::string out;
};

/// Runs `comb ARGS...` to its end, its output (stdout and stderr) kept in file `out`.
inline run_result run_comb(const std::vector<std::string>& args, const std::string& out) {
  std::vector<std::string> argv{comb_binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  child_process p{argv, out};
  int status = p.wait();
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_file(out)};
}

/// Polls `pred` until it returns true or `timeout` has passed, checking often at first and
/// then every 50 ms. Returns whether `pred` held; on a timeout it says on stderr what it
/// waited for (`what`) and for how long. Use it where no reply or notification exists to
/// wait on: the poll is for the condition, never a guess at how long something takes, so
/// pick a `timeout` that only a broken build reaches, even on a slow, loaded machine.
template <class Pred>
bool wait_until(Pred&& pred, std::chrono::milliseconds timeout, const std::string& what) {
  auto start = std::chrono::steady_clock::now();
  auto pause = std::chrono::milliseconds{1};
  for (;;) {
    if (pred())
      return true;
    auto waited = std::chrono::steady_clock::now() - start;
    if (waited >= timeout) {
      std::fprintf(stderr, "wait_until: gave up after %lld ms waiting for %s\n",
                   static_cast<long long>(timeout.count()), what.c_str());
      return false;
    }
    // The pause between polls, not a guess at when the condition holds.
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds{50});
  }
}

/// Waits until the file `log` contains `text`; false after `timeout`, or as soon as `proc`
/// (when given) has exited without writing it. Says on stderr what was missing, with the
/// file's content.
inline bool wait_for_line(const std::string& log, const std::string& text,
                          std::chrono::milliseconds timeout = std::chrono::seconds{30},
                          child_process* proc = nullptr) {
  auto has = [&] { return read_file(log).find(text) != std::string::npos; };
  bool exited = false;
  wait_until(
    [&] {
      if (has())
        return true;
      exited = proc != nullptr && !proc->running();
      return exited;
    },
    timeout, "'" + text + "' in " + log);
  if (has())
    return true;
  std::fprintf(stderr, "no '%s' in %s%s:\n%s\n", text.c_str(), log.c_str(),
               exited ? " (the process exited)" : "", read_file(log).c_str());
  return false;
}

/// True when something accepts TCP connections on 127.0.0.1:`port` right now.
inline bool port_accepts(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

/// A TCP port that was free a moment ago on 127.0.0.1.
inline int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

} // namespace comb::test
