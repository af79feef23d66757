// comb::test::pg_server: a PostgreSQL server of a test's own, for the PostgreSQL analytics
// store's tests: initdb in a temporary folder, then postgres on a free loopback port (TCP
// 127.0.0.1 only, the socket in the folder), as the user nobody when the test runs as root
// (PostgreSQL refuses root), with trust auth for the user "comb". It depends on no system
// service. The destructor stops it (SIGINT, SIGKILL after 10 s) and removes the folder; the
// server also gets SIGKILL when the test process dies (PR_SET_PDEATHSIG), so a crashed test
// leaves no server behind. When initdb is not installed, available() is false and why() says
// so: the test then skips, visibly. Header only; not thread-safe.
#pragma once

#include "tests/test_util.hpp"

#include <filesystem>
#include <glob.h>
#include <grp.h>
#include <pwd.h>
#include <sys/prctl.h>

namespace comb::test {

class pg_server {
public:
  pg_server() {
    bin_ = find_bin();
    if (bin_.empty()) {
      why_ = "initdb is not installed (no /usr/lib/postgresql/*/bin/initdb; Debian package "
             "postgresql)";
      return;
    }
    available_ = true;
    if (geteuid() == 0) {
      auto* pw = getpwnam("nobody");
      if (!pw) {
        why_ = "running as root and there is no user nobody to run PostgreSQL as";
        return;
      }
      uid_ = pw->pw_uid;
      auto* gr = getgrnam("nogroup");
      gid_ = gr ? gr->gr_gid : pw->pw_gid;
      if (chown(dir_.path().c_str(), uid_, gid_) != 0) {
        why_ = "cannot hand " + dir_.path() + " to nobody";
        return;
      }
    }
    auto data = dir_.path() + "/data";
    auto init_log = dir_.path() + "/initdb.log";
    pid_t init = spawn({bin_ + "/initdb", "-D", data, "-U", "comb", "-A", "trust", "-E", "UTF8",
                        "--locale=C", "--no-sync"},
                       init_log);
    int status = 0;
    if (!wait_exit(init, std::chrono::seconds{90}, status) || !WIFEXITED(status)
        || WEXITSTATUS(status) != 0) {
      why_ = "initdb failed:\n" + read_file(init_log);
      return;
    }
    port_ = free_port();
    log_ = dir_.path() + "/postgres.log";
    pid_ = spawn({bin_ + "/postgres", "-D", data, "-p", std::to_string(port_), "-k", dir_.path(),
                  "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c",
                  "synchronous_commit=off", "-c", "full_page_writes=off", "-c",
                  "max_connections=20", "-c", "shared_buffers=16MB"},
                 log_);
    bool ready = wait_until(
      [&] {
        return read_file(log_).find("ready to accept connections") != std::string::npos || exited();
      },
      std::chrono::seconds{60}, "PostgreSQL to accept connections");
    if (!ready || exited()) {
      why_ = "postgres did not start:\n" + read_file(log_);
      return;
    }
    running_ = true;
  }

  ~pg_server() {
    if (pid_ > 0) {
      kill(pid_, SIGINT); // fast shutdown
      int status = 0;
      if (!wait_exit(pid_, std::chrono::seconds{10}, status)) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
      }
    }
  }

  pg_server(const pg_server&) = delete;
  pg_server& operator=(const pg_server&) = delete;

  /// False when PostgreSQL is not installed (skip the test).
  bool available() const { return available_; }
  /// True once the server accepts connections.
  bool running() const { return running_; }
  /// Why it is not available or not running (with initdb's or postgres's output).
  const std::string& why() const { return why_; }
  /// postgresql://comb@127.0.0.1:PORT/postgres
  std::string url() const {
    return "postgresql://comb@127.0.0.1:" + std::to_string(port_) + "/postgres";
  }
  /// A new database on this server (created with `createdb`), as a URL.
  std::string create_database(const std::string& name) {
    int status = 0;
    auto log = dir_.path() + "/createdb.log";
    pid_t p = spawn({bin_ + "/createdb", "-h", "127.0.0.1", "-p", std::to_string(port_), "-U",
                     "comb", name},
                    log);
    if (!wait_exit(p, std::chrono::seconds{30}, status) || !WIFEXITED(status)
        || WEXITSTATUS(status) != 0) {
      std::fprintf(stderr, "createdb %s failed:\n%s\n", name.c_str(), read_file(log).c_str());
      return "";
    }
    return "postgresql://comb@127.0.0.1:" + std::to_string(port_) + "/" + name;
  }

private:
  static std::string find_bin() {
    glob_t g{};
    std::string best;
    int best_version = -1;
    if (glob("/usr/lib/postgresql/*/bin/initdb", 0, nullptr, &g) == 0)
      for (size_t i = 0; i < g.gl_pathc; ++i) {
        std::filesystem::path p = g.gl_pathv[i];
        auto version = std::atoi(p.parent_path().parent_path().filename().c_str());
        if (version > best_version) {
          best_version = version;
          best = p.parent_path().string();
        }
      }
    globfree(&g);
    return best;
  }

  // Runs argv as this server's user, stdout and stderr into `log`; the child dies with us.
  pid_t spawn(const std::vector<std::string>& argv, const std::string& log) {
    std::fflush(stdout);
    std::fflush(stderr);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
      if (geteuid() == 0 && (setgroups(0, nullptr) != 0 || setgid(gid_) != 0 || setuid(uid_) != 0))
        std::_Exit(126);
      // After the user change, which would clear it.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent)
        std::_Exit(125);
      if (!std::freopen(log.c_str(), "w", stdout))
        std::_Exit(124);
      dup2(fileno(stdout), fileno(stderr));
      setenv("LC_ALL", "C", 1);
      std::vector<char*> args;
      for (auto& a : argv)
        args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      std::_Exit(127);
    }
    return pid;
  }

  static bool wait_exit(pid_t pid, std::chrono::milliseconds timeout, int& status) {
    bool done = wait_until([&] { return waitpid(pid, &status, WNOHANG) == pid; }, timeout,
                           "process " + std::to_string(pid) + " to exit");
    if (!done) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
    }
    return done;
  }

  bool exited() {
    int status = 0;
    if (pid_ > 0 && waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return true;
    }
    return pid_ <= 0;
  }

  temp_dir dir_;
  std::string bin_;
  std::string why_;
  std::string log_;
  bool available_ = false;
  bool running_ = false;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  int port_ = 0;
  pid_t pid_ = -1;
};

} // namespace comb::test
