#include "node/cluster_launch.hpp"

#include "base/errc.hpp"
#include "node/client.hpp"
#include "runtime/system_config.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace comb::runtime {

namespace fs = std::filesystem;

namespace {

// Beside the data folder, not in it: a node refuses a non-empty folder that is not yet a
// Comb data folder, which a fresh node's folder would be with its log in it.
std::string pid_file(const cluster_node& n) {
  return n.node.data_dir + ".pid";
}

std::string log_file(const cluster_node& n) {
  return n.node.data_dir + ".log";
}

// The last `n` lines of a file, indented, for error messages.
std::string tail_of(const std::string& path, size_t n = 8) {
  std::ifstream in{path};
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);)
    lines.push_back(line);
  std::string out;
  for (size_t i = lines.size() > n ? lines.size() - n : 0; i < lines.size(); ++i)
    out += "\n    " + lines[i];
  return out.empty() ? " (the log is empty)" : out;
}

// The pid in the node's pid file when that process is alive and is a comb node of that name
// (a stale pid reused by another program is not it); 0 otherwise.
pid_t running_pid(const cluster_node& n) {
  std::ifstream in{pid_file(n)};
  pid_t pid = 0;
  if (!(in >> pid) || pid <= 0 || ::kill(pid, 0) != 0)
    return 0;
  std::ifstream cmd{"/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary};
  std::stringstream ss;
  ss << cmd.rdbuf();
  auto text = ss.str();
  if (text.find("node") == std::string::npos || text.find(n.node.name) == std::string::npos)
    return 0;
  // A zombie (an exited child of this process) is not running.
  std::ifstream st{"/proc/" + std::to_string(pid) + "/stat"};
  std::string s;
  std::getline(st, s);
  auto close = s.rfind(')');
  if (close != std::string::npos && close + 2 < s.size() && s[close + 2] == 'Z')
    return 0;
  return pid;
}

bool alive(pid_t pid) {
  // Reap it first when it is our child, so that an exited node does not linger as a zombie.
  int status = 0;
  if (::waitpid(pid, &status, WNOHANG) == pid)
    return false;
  return ::kill(pid, 0) == 0;
}

// Starts `comb node --config F --name N` in its own session, output to the node's log.
caf::expected<pid_t> spawn_node(const cluster_node& n, const std::string& config,
                                const std::string& comb) {
  std::error_code ec;
  // A bare folder name ("data = \"n1\"") has no parent to create: create_directories("")
  // fails with "Invalid argument".
  if (auto parent = fs::path{n.node.data_dir}.parent_path(); !parent.empty())
    fs::create_directories(parent, ec);
  if (ec)
    return make_error(errc::storage_error, n.node.data_dir + ": " + ec.message());
  auto log = log_file(n);
  int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0)
    return make_error(errc::storage_error, log + ": cannot open the node's log");
  std::vector<std::string> argv{comb, "node", "--config", config, "--name", n.node.name};
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fd);
    return make_error(errc::storage_error, "fork failed");
  }
  if (pid == 0) {
    ::setsid(); // not stopped by the terminal's Ctrl-C once `comb cluster up` returned
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    int null = ::open("/dev/null", O_RDONLY);
    if (null >= 0)
      ::dup2(null, 0);
    std::vector<char*> args;
    for (auto& a : argv)
      args.push_back(a.data());
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    std::_Exit(127);
  }
  ::close(fd);
  std::ofstream{pid_file(n)} << pid << "\n";
  return pid;
}

// Stops `pid`: SIGTERM, SIGKILL after `bound`. True when it ended on SIGTERM.
bool stop_pid(pid_t pid, std::chrono::milliseconds bound) {
  ::kill(pid, SIGTERM);
  auto until = std::chrono::steady_clock::now() + bound;
  while (std::chrono::steady_clock::now() < until) {
    if (!alive(pid))
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds{50});
  }
  ::kill(pid, SIGKILL);
  while (alive(pid))
    std::this_thread::sleep_for(std::chrono::milliseconds{20});
  return false;
}

} // namespace

bool is_local_host(const std::string& host) {
  if (host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1" || host == "0.0.0.0")
    return true;
  ifaddrs* ifs = nullptr;
  if (::getifaddrs(&ifs) != 0)
    return false;
  bool found = false;
  for (auto* i = ifs; i && !found; i = i->ifa_next) {
    if (!i->ifa_addr || (i->ifa_addr->sa_family != AF_INET && i->ifa_addr->sa_family != AF_INET6))
      continue;
    char buf[NI_MAXHOST];
    auto len = i->ifa_addr->sa_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
    if (::getnameinfo(i->ifa_addr, static_cast<socklen_t>(len), buf, sizeof(buf), nullptr, 0,
                      NI_NUMERICHOST)
        == 0)
      found = host == buf;
  }
  ::freeifaddrs(ifs);
  return found;
}

caf::expected<std::vector<node_report>> cluster_up(const cluster_config& cfg,
                                                   const std::string& config_path,
                                                   const std::string& comb_binary, bool all_local,
                                                   std::chrono::milliseconds wait) {
  std::vector<node_report> out;
  std::vector<std::pair<const cluster_node*, pid_t>> started;
  auto config = fs::absolute(config_path).string();
  auto undo = [&](const std::string& why) {
    for (auto& [n, pid] : started)
      stop_pid(pid, std::chrono::seconds{10});
    return make_error(errc::unavailable, why);
  };
  for (auto& n : cfg.nodes) {
    if (!all_local && !is_local_host(n.node.host)) {
      out.push_back({n.node.name, true, "not started: " + n.node.host + " is not this host"});
      continue;
    }
    if (auto pid = running_pid(n)) {
      out.push_back({n.node.name, true, "already running, pid " + std::to_string(pid)});
      continue;
    }
    auto pid = spawn_node(n, config, comb_binary);
    if (!pid)
      return undo("node " + n.node.name + " did not start: " + describe(pid.error()));
    started.emplace_back(&n, *pid);
  }
  // Wait for each: it answers on its port, or its process ended (then its log says why).
  system_config sc{2};
  if (auto err = sc.set_tls(cfg.tls))
    return err;
  caf::actor_system sys{sc};
  for (auto& [n, pid] : started) {
    auto addr = n->node.host + ":" + std::to_string(n->node.port);
    auto until = std::chrono::steady_clock::now() + wait;
    bool up = false;
    while (std::chrono::steady_clock::now() < until) {
      if (!alive(pid))
        break;
      if (client::connect(sys, {n->node.host, n->node.port}, std::chrono::seconds{2}, cfg.tls,
                          cfg.client_secret())) {
        up = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds{200});
    }
    if (!up) {
      auto why = alive(pid) ? "did not answer on " + addr + " within "
                                + std::to_string(wait.count() / 1000) + " s"
                            : "exited";
      return undo("node " + n->node.name + " " + why + "; the last lines of " + log_file(*n) + ":"
                  + tail_of(log_file(*n)));
    }
    out.push_back({n->node.name, true,
                   "started, pid " + std::to_string(pid) + ", " + addr + ", log " + log_file(*n)});
  }
  return out;
}

std::vector<nlohmann::json> cluster_status(caf::actor_system& sys, const cluster_config& cfg,
                                           std::chrono::milliseconds timeout) {
  std::vector<nlohmann::json> out;
  for (auto& n : cfg.nodes) {
    nlohmann::json j{{"name", n.node.name},
                     {"address", n.node.host + ":" + std::to_string(n.node.port)},
                     {"roles", n.roles},
                     {"configured_partitions", describe_partitions(n.node.owned)},
                     {"durability", storage::to_string(n.node.durability)}};
    if (auto pid = running_pid(n))
      j["pid"] = pid;
    auto c = client::connect(sys, {n.node.host, n.node.port}, timeout, cfg.tls,
                             cfg.client_secret());
    if (!c) {
      j["reachable"] = false;
      j["error"] = describe(c.error());
      out.push_back(std::move(j));
      continue;
    }
    auto info = c->info();
    j["reachable"] = static_cast<bool>(info);
    if (!info) {
      j["error"] = describe(info.error());
    } else {
      auto i = nlohmann::json::parse(*info, nullptr, false);
      if (!i.is_discarded())
        for (auto key : {"owned", "partitions", "durability", "peers", "outbox", "provenance",
                         "provenance_lag", "version"})
          if (i.contains(key))
            j[key == std::string{"partitions"} ? "cluster_partitions" : key] = i[key];
    }
    out.push_back(std::move(j));
  }
  return out;
}

std::vector<node_report> cluster_down(const cluster_config& cfg, std::chrono::milliseconds bound) {
  std::vector<node_report> out;
  for (auto& n : cfg.nodes) {
    auto pid = running_pid(n);
    if (!pid) {
      out.push_back({n.node.name, true, "not running here"});
      continue;
    }
    bool clean = stop_pid(pid, bound);
    std::error_code ec;
    fs::remove(pid_file(n), ec);
    out.push_back({n.node.name, true,
                   clean ? "stopped (pid " + std::to_string(pid) + ")"
                         : "killed with SIGKILL after " + std::to_string(bound.count() / 1000)
                             + " s (pid " + std::to_string(pid) + ")"});
  }
  return out;
}

} // namespace comb::runtime
