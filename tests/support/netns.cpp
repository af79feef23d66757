#include "tests/support/netns.hpp"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include <fcntl.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

namespace comb::test {

namespace {

// Where `ip netns add` keeps the namespaces it names.
constexpr const char* netns_dir = "/run/netns";

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s)
    q += c == '\'' ? std::string{"'\\''"} : std::string(1, c);
  return q + "'";
}

int system_status(const std::string& cmd) {
  int st = std::system(cmd.c_str());
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

bool enter_ns(const std::string& ns, std::string& why) {
  auto path = std::string{netns_dir} + "/" + ns;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    why = path + ": " + std::strerror(errno);
    return false;
  }
  bool ok = setns(fd, CLONE_NEWNET) == 0;
  if (!ok)
    why = "setns " + path + ": " + std::strerror(errno);
  close(fd);
  return ok;
}

// Kills (SIGKILL) the processes still running in namespace `ns`, which this harness started.
void kill_inside(const std::string& ns) {
  auto cmd = "ip netns pids " + shell_quote(ns) + " 2>/dev/null";
  if (FILE* p = popen(cmd.c_str(), "r")) {
    long pid = 0;
    while (std::fscanf(p, "%ld", &pid) == 1)
      if (pid > 1 && pid != getpid())
        ::kill(static_cast<pid_t>(pid), SIGKILL);
    pclose(p);
  }
}

// Removes the namespaces of test processes that died without removing theirs.
void remove_stale() {
  std::error_code ec;
  for (auto& e : std::filesystem::directory_iterator{netns_dir, ec}) {
    auto name = e.path().filename().string();
    if (name.rfind("comb-", 0) != 0)
      continue;
    auto dash = name.find('-', 5);
    if (dash == std::string::npos)
      continue;
    char* end = nullptr;
    auto pid = std::strtol(name.c_str() + 5, &end, 10);
    if (end != name.c_str() + dash || pid <= 0)
      continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH)
      continue;        // its test still runs
    kill_inside(name); // nodes the dead test left running there
    system_status("ip netns del " + shell_quote(name) + " 2>/dev/null");
  }
}

} // namespace

netns_process::netns_process(const std::string& ns, const std::vector<std::string>& argv,
                             const std::string& log) {
  std::fflush(stdout);
  std::fflush(stderr);
  pid_ = fork();
  if (pid_ == 0) {
    if (!log.empty()) {
      if (!std::freopen(log.c_str(), "w", stdout))
        std::_Exit(127);
      dup2(fileno(stdout), fileno(stderr));
    }
    std::string why;
    if (!enter_ns(ns, why)) {
      std::fprintf(stderr, "netns_process: %s\n", why.c_str());
      std::_Exit(126);
    }
    std::vector<char*> args;
    for (auto& a : argv)
      args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    std::fprintf(stderr, "netns_process: exec %s: %s\n", args[0], std::strerror(errno));
    std::_Exit(127);
  }
}

netns_process::~netns_process() {
  if (pid_ > 0 && running())
    kill(SIGKILL);
}

int netns_process::kill(int sig) {
  if (pid_ > 0)
    ::kill(pid_, sig);
  return wait();
}

int netns_process::wait() {
  int status = 0;
  if (pid_ > 0)
    waitpid(pid_, &status, 0);
  pid_ = -1;
  return status;
}

bool netns_process::running() {
  if (pid_ <= 0)
    return false;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == 0)
    return true;
  pid_ = -1;
  return false;
}

std::string netns_hosts::unavailable() {
  if (geteuid() != 0)
    return "network namespaces need root (euid " + std::to_string(geteuid()) + ")";
  if (system_status("ip netns list >/dev/null 2>&1") != 0)
    return "`ip netns` is not available (install iproute2)";
  auto probe = "comb-" + std::to_string(getpid()) + "-probe";
  if (system_status("ip netns add " + probe + " >/dev/null 2>&1") != 0)
    return "`ip netns add` fails here (no permission to make network namespaces?)";
  system_status("ip netns del " + probe + " >/dev/null 2>&1");
  return "";
}

netns_hosts::netns_hosts(size_t n) : prefix_("comb-" + std::to_string(getpid()) + "-") {
  remove_stale();
  if (n == 0 || n > 200) {
    error_ = "netns_hosts: between 1 and 200 hosts, not " + std::to_string(n);
    return;
  }
  bridge_ = prefix_ + "br";
  if (!ip("netns add " + bridge_) || !ip("-n " + bridge_ + " link add br0 type bridge")
      || !ip("-n " + bridge_ + " link set br0 up") || !ip("-n " + bridge_ + " link set lo up")) {
    remove_all();
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    auto ns = prefix_ + "h" + std::to_string(i + 1);
    auto port = "v" + std::to_string(i + 1);
    if (!ip("netns add " + ns)) {
      remove_all();
      return;
    }
    hosts_.push_back(ns);
    if (!ip("-n " + ns + " link add eth0 type veth peer name " + port + " netns " + bridge_)
        || !ip("-n " + bridge_ + " link set " + port + " master br0")
        || !ip("-n " + bridge_ + " link set " + port + " up") || !ip("-n " + ns + " link set lo up")
        || !ip("-n " + ns + " addr add " + address(i) + "/24 dev eth0")
        || !ip("-n " + ns + " link set eth0 up")) {
      remove_all();
      return;
    }
  }
}

netns_hosts::~netns_hosts() {
  remove_all();
}

std::string netns_hosts::address(size_t i) const {
  return "10.77.0." + std::to_string(i + 1);
}

bool netns_hosts::ip(const std::string& args) {
  auto cmd = "ip " + args + " 2>&1";
  std::string out;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    char buf[256];
    while (std::fgets(buf, sizeof buf, p))
      out += buf;
    int st = pclose(p);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
      return true;
  }
  error_ = "`ip " + args + "` failed: " + out;
  return false;
}

void netns_hosts::remove_all() {
  // Deleting a namespace deletes its end of each veth, and with it the other end.
  for (auto& h : hosts_) {
    kill_inside(h); // what run() left behind (spawn()'s processes die with their handles)
    system_status("ip netns del " + h + " >/dev/null 2>&1");
  }
  if (!bridge_.empty())
    system_status("ip netns del " + bridge_ + " >/dev/null 2>&1");
  hosts_.clear();
  bridge_.clear();
}

std::unique_ptr<netns_process> netns_hosts::spawn(size_t i, const std::vector<std::string>& argv,
                                                  const std::string& log) const {
  return std::make_unique<netns_process>(ns(i), argv, log);
}

int netns_hosts::run(size_t i, const std::string& command) const {
  return system_status("ip netns exec " + ns(i) + " sh -c " + shell_quote(command));
}

bool netns_hosts::cut(size_t i) {
  return ip("-n " + bridge_ + " link set v" + std::to_string(i + 1) + " down");
}

bool netns_hosts::heal(size_t i) {
  return ip("-n " + bridge_ + " link set v" + std::to_string(i + 1) + " up");
}

netns_hosts::entered::entered(const std::string& ns) {
  home_ = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (home_ < 0) {
    why_ = std::string{"/proc/thread-self/ns/net: "} + std::strerror(errno);
    return;
  }
  ok_ = enter_ns(ns, why_);
}

netns_hosts::entered::~entered() {
  if (home_ >= 0) {
    if (ok_ && setns(home_, CLONE_NEWNET) != 0)
      std::fprintf(stderr, "netns_hosts: cannot return to the first namespace: %s\n",
                   std::strerror(errno));
    close(home_);
  }
}

std::unique_ptr<netns_hosts::entered> netns_hosts::enter(size_t i) const {
  return std::make_unique<entered>(ns(i));
}

} // namespace comb::test
