// comb::test::netns_hosts: N "hosts" on this machine for cluster tests, each a Linux network
// namespace with loopback up and one veth link to a bridge that lives in a namespace of its
// own (so the root namespace is never touched), addresses 10.77.0.1 .. 10.77.0.N/24. A test
// runs processes inside a host (spawn), moves its own thread into one (enter), and cuts and
// heals a host's link (the bridge side of its veth goes down: packets to and from the host
// are dropped, connections hang as on a pulled cable, nothing is refused). Namespaces are
// named comb-<pid>-<host>; the destructor removes them, and a new harness first removes those
// of test processes that died without cleaning up. Needs root and iproute2 (`ip netns`);
// netns_hosts::unavailable() says why not, so that tests skip visibly. Not thread-safe.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

namespace comb::test {

/// A process started inside a host namespace; killed (SIGKILL) and reaped on destruction.
class netns_process {
public:
  netns_process(const std::string& ns, const std::vector<std::string>& argv,
                const std::string& log);
  ~netns_process();
  netns_process(const netns_process&) = delete;
  netns_process& operator=(const netns_process&) = delete;

  pid_t pid() const { return pid_; }
  /// Sends `sig` and waits for the process to end; returns its wait status.
  int kill(int sig);
  /// Waits for the process to end; returns its wait status.
  int wait();
  bool running();

private:
  pid_t pid_ = -1;
};

class netns_hosts {
public:
  /// Why hosts cannot be made here (not root, no `ip`, namespaces refused); "" when they can.
  static std::string unavailable();

  /// Makes `n` hosts (at most 200); on failure every namespace made so far is removed and
  /// error() says what failed.
  explicit netns_hosts(size_t n);
  ~netns_hosts();
  netns_hosts(const netns_hosts&) = delete;
  netns_hosts& operator=(const netns_hosts&) = delete;

  /// What failed while making the hosts; "" when they are up.
  const std::string& error() const { return error_; }
  size_t size() const { return hosts_.size(); }

  /// Host i's namespace name and address (i from 0).
  const std::string& ns(size_t i) const { return hosts_.at(i); }
  std::string address(size_t i) const;

  /// Starts `argv` inside host i, stdout and stderr to `log`.
  std::unique_ptr<netns_process> spawn(size_t i, const std::vector<std::string>& argv,
                                       const std::string& log) const;

  /// Runs a shell command inside host i; its exit code.
  int run(size_t i, const std::string& command) const;

  /// Cuts host i off the bridge / puts it back. False (and error() says why) when `ip` fails.
  bool cut(size_t i);
  bool heal(size_t i);

  /// Moves the calling thread into host i until the guard is destroyed. Threads the caller
  /// starts meanwhile (an actor system's) are born in that namespace and stay there, so a
  /// test makes its clients' actor system inside the guard's scope.
  class entered {
  public:
    entered(const std::string& ns);
    ~entered();
    entered(const entered&) = delete;
    entered& operator=(const entered&) = delete;
    /// False when the thread could not enter (and why).
    bool ok() const { return ok_; }
    const std::string& why() const { return why_; }

  private:
    int home_ = -1;
    bool ok_ = false;
    std::string why_;
  };
  std::unique_ptr<entered> enter(size_t i) const;

private:
  bool ip(const std::string& args);
  void remove_all();

  std::string prefix_; // comb-<pid>-
  std::string bridge_; // the bridge's namespace
  std::vector<std::string> hosts_;
  std::string error_;
};

} // namespace comb::test
