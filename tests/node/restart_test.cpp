// Tests of a `comb node` child process that dies under its clients: a node killed with a
// client connected listens on its port again at once while a port another socket listens on
// is still refused, a call in flight when the node dies fails at once with a named error,
// and `comb model put` names a file it cannot read instead of aborting.
#include "base/errc.hpp"
#include "runtime/system_config.hpp"
#include "tests/client_util.hpp"
#include "tests/test_util.hpp"

#include <doctest/doctest.h>

#include <fstream>
#include <future>

#include <sys/stat.h>

using namespace comb;
using nlohmann::json;

namespace {

using test::read_file;

std::unique_ptr<test::child_process> start_node(const std::string& data, int port,
                                                const std::string& log) {
  return std::make_unique<test::child_process>(
    std::vector<std::string>{test::comb_binary(), "node", "--data", data, "--listen",
                             "127.0.0.1:" + std::to_string(port), "--durability", "async",
                             "--no-provenance"},
    log);
}

/// A socket listening on 127.0.0.1:`port` with SO_REUSEADDR set, as another program might
/// hold it; closed on destruction.
class listener {
public:
  explicit listener(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    int on = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    ok_ = bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 && listen(fd_, 4) == 0;
  }
  ~listener() { close(fd_); }
  listener(const listener&) = delete;
  listener& operator=(const listener&) = delete;
  bool ok() const { return ok_; }

private:
  int fd_ = -1;
  bool ok_ = false;
};

/// Runs `comb model put` for `file` (no node needed: the file is read first); its exit code
/// and output.
std::pair<int, std::string> model_put(const test::temp_dir& dir, const std::string& file) {
  auto log = dir.path() + "/put.log";
  test::child_process put{{test::comb_binary(), "model", "put", "--node", "127.0.0.1:1", "--name",
                           "m", "--version", "1", "--file", file},
                          log};
  int status = put.wait();
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), read_file(log)};
}

} // namespace

TEST_SUITE("node.restart") {
  TEST_CASE("a node killed with a client connected listens on the same port again at once") {
    test::temp_dir dir;
    auto data = dir.path() + "/node";
    int port = test::free_port();
    runtime::system_config cfg{2};
    caf::actor_system sys{cfg};
    auto node = start_node(data, port, dir.path() + "/node1.log");
    auto c = test::connect_retry(sys, port);
    REQUIRE_MESSAGE(c, test::why(c));
    auto r = c->call("bank.open", json{{"account", "alice"}, {"balance", 100}}.dump(), "admin");
    REQUIRE_MESSAGE(r, test::why(r));

    // SIGKILL with the client's connection open: the node's end of it lingers (TIME_WAIT).
    node->kill(SIGKILL);
    auto node2 = start_node(data, port, dir.path() + "/node2.log");
    REQUIRE(test::wait_for_line(dir.path() + "/node2.log", "listening on", std::chrono::seconds{30},
                                node2.get()));
    auto c2 = test::connect_retry(sys, port);
    REQUIRE_MESSAGE(c2, test::why(c2));
    auto r2 = c2->call("bank.balance", json{{"account", "alice"}}.dump(), "admin");
    REQUIRE_MESSAGE(r2, test::why(r2));
    CHECK_MESSAGE(r2->dump().find("100") != std::string::npos, r2->dump());
    node2->kill(SIGTERM);
  }

  TEST_CASE("a port another socket listens on is still refused with network_error") {
    test::temp_dir dir;
    int port = test::free_port();
    auto node = start_node(dir.path() + "/a", port, dir.path() + "/a.log");
    REQUIRE(test::wait_for_line(dir.path() + "/a.log", "listening on", std::chrono::seconds{30},
                                node.get()));
    // A second node on the first node's port.
    auto second = start_node(dir.path() + "/b", port, dir.path() + "/b.log");
    int status = second->wait();
    auto out = read_file(dir.path() + "/b.log");
    CHECK_MESSAGE((WIFEXITED(status) && WEXITSTATUS(status) != 0), out);
    CHECK_MESSAGE(out.find("network_error: cannot listen on 127.0.0.1:" + std::to_string(port))
                    != std::string::npos,
                  out);
    // The first node still serves.
    runtime::system_config cfg{2};
    caf::actor_system sys{cfg};
    auto c = test::connect_retry(sys, port);
    REQUIRE_MESSAGE(c, test::why(c));
    auto r = c->call("bank.total", "{}", "auditor");
    CHECK_MESSAGE(r, test::why(r));
    node->kill(SIGTERM);

    // Another program's socket, even one with SO_REUSEADDR, keeps the port too.
    int port2 = test::free_port();
    listener other{port2};
    REQUIRE(other.ok());
    auto third = start_node(dir.path() + "/c", port2, dir.path() + "/c.log");
    status = third->wait();
    out = read_file(dir.path() + "/c.log");
    CHECK_MESSAGE((WIFEXITED(status) && WEXITSTATUS(status) != 0), out);
    CHECK_MESSAGE(out.find("network_error: cannot listen on 127.0.0.1:" + std::to_string(port2))
                    != std::string::npos,
                  out);
  }

  TEST_CASE("comb call --timeout covers connecting to a server that accepts and says nothing") {
    test::temp_dir dir;
    int port = test::free_port();
    // A socket that listens (the kernel completes the TCP handshake) but never answers.
    listener silent{port};
    REQUIRE(silent.ok());
    auto log = dir.path() + "/call.log";
    test::child_process call{{test::comb_binary(), "call", "--node",
                              "127.0.0.1:" + std::to_string(port), "--timeout", "2", "bank.total",
                              "{}"},
                             log};
    // Before the fix the call hung in CAF's remote_actor forever.
    REQUIRE_MESSAGE(test::wait_until([&] { return !call.running(); }, std::chrono::seconds{60},
                                     "comb call to end"),
                    "comb call still waits: " << read_file(log));
    auto out = read_file(log);
    CHECK_MESSAGE(out.find("timeout: connected to 127.0.0.1:" + std::to_string(port)
                           + " but got no answer within")
                    != std::string::npos,
                  out);
  }

  TEST_CASE("a call in flight when the node dies fails at once: unavailable, may have committed") {
    test::temp_dir dir;
    int port = test::free_port();
    runtime::system_config cfg{2};
    caf::actor_system sys{cfg};
    auto node = start_node(dir.path() + "/node", port, dir.path() + "/node.log");
    auto c = test::connect_retry(sys, port);
    REQUIRE_MESSAGE(c, test::why(c));
    auto r = c->call("bank.total", "{}", "auditor");
    REQUIRE_MESSAGE(r, test::why(r));

    // The node stops answering, a call goes out, and the node dies with it unanswered. The
    // call's timeout (60 s) is far beyond the wait below: only a lost connection ends it.
    REQUIRE(node->stop());
    auto call = std::async(std::launch::async, [&] {
      return c->call("bank.open", json{{"account", "bob"}, {"balance", 1}}.dump(), "admin",
                     std::chrono::seconds{60});
    });
    node->kill(SIGKILL);
    REQUIRE_MESSAGE(call.wait_for(std::chrono::seconds{30}) == std::future_status::ready,
                    "the call still waits 30 s after its node died");
    auto lost = call.get();
    REQUIRE(!lost);
    auto text = describe(lost.error());
    CHECK_MESSAGE(is(lost.error(), errc::unavailable), text);
    CHECK_MESSAGE(text.find("lost the connection to the Comb node at 127.0.0.1:"
                            + std::to_string(port))
                    != std::string::npos,
                  text);
    CHECK_MESSAGE(text.find("bank.open") != std::string::npos, text);
    CHECK_MESSAGE(text.find("may or may not have committed") != std::string::npos, text);
    CHECK_MESSAGE(text.find("idempotency id") != std::string::npos, text);

    // A call on the dead connection afterwards gets the same named error, also at once.
    auto after = c->call("bank.total", "{}", "auditor", std::chrono::seconds{60});
    REQUIRE(!after);
    CHECK_MESSAGE(is(after.error(), errc::unavailable), describe(after.error()));
  }

  TEST_CASE("model put names a folder, a missing or unreadable file and a failed read") {
    test::temp_dir dir;
    auto [code, out] = model_put(dir, dir.path());
    CHECK_MESSAGE(code == 2, out);
    CHECK_MESSAGE(out.find("comb model put: invalid_argument: '" + dir.path() + "' is a folder")
                    != std::string::npos,
                  out);

    auto missing = dir.path() + "/no-such-model.bin";
    std::tie(code, out) = model_put(dir, missing);
    CHECK_MESSAGE(code == 2, out);
    CHECK_MESSAGE(out.find("comb model put: not_found: cannot read model file '" + missing
                           + "': No such file or directory")
                    != std::string::npos,
                  out);

    auto locked = dir.path() + "/locked.bin";
    std::ofstream{locked} << "bytes";
    REQUIRE(chmod(locked.c_str(), 0) == 0);
    if (geteuid() == 0) {
      MESSAGE("running as root, which reads any file: the unreadable-file case is skipped");
    } else {
      std::tie(code, out) = model_put(dir, locked);
      CHECK_MESSAGE(code == 2, out);
      CHECK_MESSAGE(out.find("comb model put: storage_error: cannot read model file '" + locked
                             + "': Permission denied")
                      != std::string::npos,
                    out);
    }

    // A file that opens but whose read fails: /proc/self/mem at offset 0 (EIO, even for root).
    std::tie(code, out) = model_put(dir, "/proc/self/mem");
    CHECK_MESSAGE(code == 2, out);
    CHECK_MESSAGE(out.find("comb model put: storage_error: cannot read model file "
                           "'/proc/self/mem': Input/output error")
                    != std::string::npos,
                  out);
  }

} // TEST_SUITE
