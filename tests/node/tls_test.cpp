// Tests for TLS with mutual authentication (runtime/tls.hpp) on a real node on loopback, with
// certificates made by scripts/make-test-certs.sh into a temp folder: a client holding the
// cluster's certificates calls the node over TLS; a client without a certificate, with one from
// another CA, or speaking plain TCP is refused with a clear error while the node keeps serving
// and logs the refusal (peer address and reason) on stderr; bad TLS files stop a node before it
// starts, naming the file; and a procedure's argument does not appear in the bytes on the wire
// (captured by a small TCP relay), while it does without TLS.
#include "apps/bank/bank.hpp"
#include "base/errc.hpp"
#include "node/client.hpp"
#include "node/node.hpp"
#include "runtime/pieces/compute_types.hpp"
#include "runtime/system_config.hpp"
#include "runtime/tls.hpp"
#include "tests/test_util.hpp"

#include <caf/openssl/manager.hpp>
#include <doctest/doctest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <atomic>
#include <fcntl.h>
#include <fstream>
#include <mutex>
#include <poll.h>
#include <thread>

using namespace comb;
using namespace std::chrono_literals;

namespace {

/// Certificates for node1 and a client under CA "cluster", and a client under another CA.
struct certs {
  test::temp_dir dir;
  std::string ca, node_cert, node_key, node2_key, client_cert, client_key;
  std::string other_ca, other_cert, other_key;
  certs() {
    auto script = std::string{COMB_SOURCE_DIR} + "/scripts/make-test-certs.sh";
    auto run = [&](const std::string& sub, const std::string& names) {
      auto cmd = script + " " + dir.path() + "/" + sub + " " + names + " >/dev/null 2>&1";
      REQUIRE_MESSAGE(std::system(cmd.c_str()) == 0, cmd);
    };
    run("cluster", "node1 node2");
    run("other", "node1");
    auto c = dir.path() + "/cluster/";
    auto o = dir.path() + "/other/";
    ca = c + "ca.pem";
    node_cert = c + "node1.pem";
    node_key = c + "node1.key";
    node2_key = c + "node2.key";
    client_cert = c + "client.pem";
    client_key = c + "client.key";
    other_ca = o + "ca.pem";
    other_cert = o + "client.pem";
    other_key = o + "client.key";
  }
  runtime::tls_config node_tls() const { return {ca, node_cert, node_key}; }
  runtime::tls_config client_tls() const { return {ca, client_cert, client_key}; }
};

std::shared_ptr<runtime::procedure_registry> bank_procs() {
  auto procs = std::make_shared<runtime::procedure_registry>();
  apps::bank::register_bank(*procs);
  return procs;
}

/// Sends what this process writes to stderr into a file until destroyed (the node's log).
class stderr_capture {
public:
  explicit stderr_capture(std::string path) : path_(std::move(path)) {
    std::fflush(stderr);
    saved_ = dup(2);
    int fd = open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 2);
    close(fd);
  }
  ~stderr_capture() {
    std::fflush(stderr);
    dup2(saved_, 2);
    close(saved_);
  }
  /// Waits (at most `limit`) until the log holds `needle` after `from`; the log either way.
  std::string wait_for(const std::string& needle, size_t from = 0,
                       std::chrono::milliseconds limit = 10s) const {
    auto deadline = std::chrono::steady_clock::now() + limit;
    std::string text;
    do {
      text = test::read_file(path_);
      if (text.size() > from && text.find(needle, from) != std::string::npos)
        break;
      std::this_thread::sleep_for(50ms);
    } while (std::chrono::steady_clock::now() < deadline);
    return text;
  }
  size_t size() const { return test::read_file(path_).size(); }

private:
  std::string path_;
  int saved_;
};

/// A TCP relay on loopback that forwards every connection to `target_port` and keeps a copy
/// of all bytes in both directions: what an observer on the network would see.
class relay {
public:
  explicit relay(uint16_t target_port) : target_(target_port) {
    listener_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
    REQUIRE(listen(listener_, 8) == 0);
    socklen_t len = sizeof(a);
    getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread{[this] { run(); }};
  }
  ~relay() {
    stop_ = true;
    thread_.join();
    close(listener_);
  }
  uint16_t port() const { return port_; }
  std::string seen() {
    std::lock_guard<std::mutex> guard{mtx_};
    return seen_;
  }

private:
  void run() {
    std::vector<std::pair<int, int>> links; // (client, upstream)
    while (!stop_) {
      std::vector<pollfd> fds{{listener_, POLLIN, 0}};
      for (auto [c, u] : links) {
        fds.push_back({c, POLLIN, 0});
        fds.push_back({u, POLLIN, 0});
      }
      if (poll(fds.data(), fds.size(), 50) <= 0)
        continue;
      if (fds[0].revents & POLLIN) {
        int c = accept(listener_, nullptr, nullptr);
        int u = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(target_);
        if (connect(u, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0)
          links.emplace_back(c, u);
        else {
          close(c);
          close(u);
        }
      }
      std::vector<std::pair<int, int>> alive;
      for (size_t i = 0; i < links.size(); ++i) {
        auto [c, u] = links[i];
        bool open = true;
        for (auto [from, to, idx] : {std::tuple{c, u, 1 + 2 * i}, std::tuple{u, c, 2 + 2 * i}}) {
          if (!open || !(fds[idx].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
          char buf[16384];
          auto n = read(from, buf, sizeof(buf));
          if (n <= 0 || write(to, buf, n) != n) {
            open = false;
            break;
          }
          std::lock_guard<std::mutex> guard{mtx_};
          seen_.append(buf, n);
        }
        if (open)
          alive.emplace_back(c, u);
        else {
          close(c);
          close(u);
        }
      }
      links = std::move(alive);
    }
    for (auto [c, u] : links) {
      close(c);
      close(u);
    }
  }

  uint16_t target_;
  int listener_;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mtx_;
  std::string seen_;
  std::thread thread_;
};

/// A TLS node with the bank, on a free loopback port.
struct tls_node {
  runtime::system_config cfg{2};
  std::unique_ptr<caf::actor_system> sys;
  std::unique_ptr<runtime::node> node;
  tls_node(const std::string& data, const runtime::tls_config& tls,
           const std::string& host = "127.0.0.1") {
    if (tls.enabled())
      REQUIRE(!cfg.set_tls(tls));
    sys = std::make_unique<caf::actor_system>(cfg);
    runtime::node_config nc;
    nc.data_dir = data;
    nc.partitions = 2;
    nc.listen = true;
    nc.host = host;
    nc.tls = tls;
    node = test::must(runtime::node::start(*sys, nc, bank_procs()));
  }
  uint16_t port() const { return node->port(); }
};

/// A client actor system configured directly through CAF's fields, so that it may hold
/// credentials check_tls() would refuse (another CA's certificate).
struct raw_tls_client {
  runtime::system_config cfg{2};
  std::unique_ptr<caf::actor_system> sys;
  runtime::tls_config tls;
  raw_tls_client(runtime::tls_config t) : tls(std::move(t)) {
    cfg.load<caf::openssl::manager>();
    cfg.openssl_cafile = tls.ca_file;
    cfg.openssl_certificate = tls.cert_file;
    cfg.openssl_key = tls.key_file;
    sys = std::make_unique<caf::actor_system>(cfg);
  }
};

caf::expected<nlohmann::json> open_account(caf::actor_system& sys, uint16_t port,
                                           const runtime::tls_config& tls,
                                           const std::string& account) {
  auto c = runtime::client::connect(sys, {"127.0.0.1", port}, 10s, tls);
  if (!c)
    return std::move(c.error());
  return c->call("bank.open", nlohmann::json{{"account", account}, {"balance", 5}}.dump(), "admin",
                 20s);
}

/// A TLS client made with OpenSSL alone that trusts the CA but presents no certificate
/// (CAF's module refuses to start without one): true when the node let it read any byte.
bool certless_client_gets_data(uint16_t port, const std::string& ca, std::string* reason) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  REQUIRE(SSL_CTX_load_verify_locations(ctx, ca.c_str(), nullptr) == 1);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  bool got = false;
  char buf[256];
  if (SSL_connect(ssl) == 1)
    got = SSL_read(ssl, buf, sizeof(buf)) > 0; // TLS 1.3: the refusal arrives here
  if (auto e = ERR_peek_last_error(); e && ERR_reason_error_string(e))
    *reason = ERR_reason_error_string(e);
  ERR_clear_error();
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  close(fd);
  return got;
}

} // namespace

TEST_SUITE("node.tls") {
  TEST_CASE("mutual TLS: the cluster's client is served; others are refused, logged, and the "
            "node keeps serving") {
    certs c;
    test::temp_dir data;
    stderr_capture log{data.path() + "/node.log"};
    tls_node n{data.path() + "/db", c.node_tls()};

    runtime::system_config ccfg{2};
    REQUIRE(!ccfg.set_tls(c.client_tls()));
    caf::actor_system csys{ccfg};
    auto client = runtime::client::connect(csys, {"127.0.0.1", n.port()}, 10s, c.client_tls());
    REQUIRE_MESSAGE(client, test::why(client));
    auto open = [&](const std::string& account) {
      return client->call("bank.open", nlohmann::json{{"account", account}, {"balance", 5}}.dump(),
                          "admin", 20s);
    };
    auto ok = open("alice");
    REQUIRE_MESSAGE(ok, test::why(ok));
    auto ok2 = open("alice2"); // a second call on the same connection
    REQUIRE_MESSAGE(ok2, test::why(ok2));

    SUBCASE("a client without a certificate") {
      std::string reason;
      CHECK_FALSE(certless_client_gets_data(n.port(), c.ca, &reason));
      INFO("client saw: " << reason);
      auto text = log.wait_for("did not return a certificate");
      CHECK_MESSAGE(text.find("comb: TLS: refused connection from 127.0.0.1:") != std::string::npos,
                    text);
      CHECK_MESSAGE(text.find("did not return a certificate") != std::string::npos, text);
    }
    SUBCASE("a client whose certificate is from another CA") {
      // It trusts the cluster's CA (so the node's certificate passes) but presents its own.
      raw_tls_client rogue{{c.ca, c.other_cert, c.other_key}};
      auto r = open_account(*rogue.sys, n.port(), rogue.tls, "mallory");
      REQUIRE_FALSE(r);
      CHECK(is(r.error(), errc::network_error));
      CHECK_MESSAGE(describe(r.error()).find("TLS handshake with 127.0.0.1:") != std::string::npos,
                    describe(r.error()));
      auto text = log.wait_for("peer certificate rejected");
      CHECK_MESSAGE(text.find("refused connection from 127.0.0.1:") != std::string::npos, text);
      CHECK_MESSAGE(text.find("peer certificate rejected") != std::string::npos, text);
    }
    SUBCASE("a client of another cluster (other CA for both its certificate and trust)") {
      raw_tls_client rogue{{c.other_ca, c.other_cert, c.other_key}};
      auto r = open_account(*rogue.sys, n.port(), rogue.tls, "mallory");
      REQUIRE_FALSE(r);
      // It rejects the node's certificate itself, and says so.
      CHECK_MESSAGE(describe(r.error()).find("peer certificate rejected") != std::string::npos,
                    describe(r.error()));
      auto text = log.wait_for("refused connection from");
      CHECK_MESSAGE(text.find("refused connection from 127.0.0.1:") != std::string::npos, text);
    }
    SUBCASE("a plain-TCP client") {
      {
        runtime::system_config pcfg{2};
        caf::actor_system psys{pcfg};
        auto start = std::chrono::steady_clock::now();
        auto r = runtime::client::connect(psys, {"127.0.0.1", n.port()}, 2s);
        REQUIRE_FALSE(r);
        CHECK(std::chrono::steady_clock::now() - start < 15s);
        CHECK_MESSAGE(describe(r.error()).find("TLS") != std::string::npos, describe(r.error()));
      } // the client gives up and closes its connection: the node logs it then
      auto text = log.wait_for("refused connection from");
      CHECK_MESSAGE(text.find("refused connection from 127.0.0.1:") != std::string::npos, text);
    }
    // Whatever was refused, the node still serves the cluster's client, on the connection it
    // kept (a refused handshake once left an error in the I/O thread's OpenSSL queue that
    // closed the next healthy connection to read) and on a new one.
    auto first_again = open("carol");
    CHECK_MESSAGE(first_again, "first client after refusals: " << test::why(first_again));
    runtime::system_config ncfg{2};
    REQUIRE(!ncfg.set_tls(c.client_tls()));
    caf::actor_system nsys{ncfg};
    auto again = open_account(nsys, n.port(), c.client_tls(), "bob");
    CHECK_MESSAGE(again, test::why(again));
  }

  TEST_CASE("a node's certificate must be for the host it is reached by (SAN IP or DNS name)") {
    certs c;
    // node3's certificate names 127.0.0.2; node1's does not (localhost, 127.0.0.1, ::1).
    auto script = std::string{COMB_SOURCE_DIR} + "/scripts/make-test-certs.sh";
    auto cluster = c.dir.path() + "/cluster";
    auto cmd = script + " " + cluster + " node3=127.0.0.2 >/dev/null 2>&1";
    REQUIRE_MESSAGE(std::system(cmd.c_str()) == 0, cmd);
    test::temp_dir data;
    stderr_capture log{data.path() + "/client.log"};
    auto node_on = [&](const std::string& dir, const std::string& name) {
      runtime::tls_config tls{c.ca, cluster + "/" + name + ".pem", cluster + "/" + name + ".key"};
      return std::make_unique<tls_node>(dir, tls, "127.0.0.2");
    };
    runtime::system_config ccfg{2};
    REQUIRE(!ccfg.set_tls(c.client_tls()));
    caf::actor_system csys{ccfg};
    {
      auto wrong = node_on(data.path() + "/n1", "node1"); // a certificate for other hosts
      auto r = runtime::client::connect(csys, {"127.0.0.2", wrong->port()}, 10s, c.client_tls());
      REQUIRE_FALSE(r);
      CHECK(is(r.error(), errc::network_error));
      CHECK_MESSAGE(describe(r.error()).find("names no '127.0.0.2'") != std::string::npos,
                    describe(r.error()));
      auto text = log.wait_for("refused node 127.0.0.2 at 127.0.0.2:");
      CHECK_MESSAGE(text.find("comb: TLS: refused node 127.0.0.2 at 127.0.0.2:") != std::string::npos,
                    text);
    }
    auto right = node_on(data.path() + "/n3", "node3");
    auto r = runtime::client::connect(csys, {"127.0.0.2", right->port()}, 10s, c.client_tls());
    REQUIRE_MESSAGE(r, test::why(r));
    auto ok = r->call("bank.open", nlohmann::json{{"account", "a"}, {"balance", 5}}.dump(), "admin",
                      20s);
    CHECK_MESSAGE(ok, test::why(ok));
  }

  TEST_CASE("bytes on the wire: a procedure's argument is not visible with TLS, and is without") {
    certs c;
    test::temp_dir data;
    const std::string marker = "acct-PLAINTEXT-MARKER-7f3a";
    {
      tls_node n{data.path() + "/tls", c.node_tls()};
      relay r{n.port()};
      runtime::system_config ccfg{2};
      REQUIRE(!ccfg.set_tls(c.client_tls()));
      caf::actor_system csys{ccfg};
      auto ok = open_account(csys, r.port(), c.client_tls(), marker);
      REQUIRE_MESSAGE(ok, test::why(ok));
      auto seen = r.seen();
      CHECK(seen.size() > 500); // the relay did carry the handshake and the call
      CHECK(seen.find(marker) == std::string::npos);
      CHECK(seen.find("bank.open") == std::string::npos);
    }
    {
      // The control: the same call to a plain node shows the argument in the capture.
      tls_node n{data.path() + "/plain", {}};
      relay r{n.port()};
      runtime::system_config ccfg{2};
      caf::actor_system csys{ccfg};
      auto ok = open_account(csys, r.port(), {}, marker);
      REQUIRE_MESSAGE(ok, test::why(ok));
      CHECK(r.seen().find(marker) != std::string::npos);
    }
  }

  TEST_CASE("bad TLS files stop a node before it starts, naming the file") {
    certs c;
    auto refused = [](const runtime::tls_config& tls) {
      runtime::system_config cfg{2};
      auto err = cfg.set_tls(tls);
      REQUIRE(err);
      CHECK(is(err, errc::bad_config));
      return describe(err);
    };
    auto missing = c.dir.path() + "/cluster/missing.key";
    auto m = refused({c.ca, c.node_cert, missing});
    CHECK_MESSAGE(m.find(missing) != std::string::npos, m);
    CHECK_MESSAGE(m.find("No such file") != std::string::npos, m);

    auto mismatched = refused({c.ca, c.node_cert, c.node2_key});
    CHECK_MESSAGE(mismatched.find(c.node2_key + " does not match the certificate " + c.node_cert)
                    != std::string::npos,
                  mismatched);

    auto foreign = refused({c.ca, c.other_cert, c.other_key});
    CHECK_MESSAGE(foreign.find(c.other_cert + " is not valid under the CA " + c.ca)
                    != std::string::npos,
                  foreign);

    auto partial = refused({c.ca, c.node_cert, ""});
    CHECK_MESSAGE(partial.find("key_file is not set") != std::string::npos, partial);

    auto not_pem = refused({c.ca, c.ca + ".missing", c.node_key});
    CHECK_MESSAGE(not_pem.find(c.ca + ".missing") != std::string::npos, not_pem);

    // A node given TLS files on a system not configured for them does not listen in plain.
    test::temp_dir data;
    runtime::system_config cfg{2};
    caf::actor_system sys{cfg};
    runtime::node_config nc;
    nc.data_dir = data.path();
    nc.listen = true;
    nc.tls = c.node_tls();
    auto n = runtime::node::start(sys, nc, bank_procs());
    REQUIRE_FALSE(n);
    CHECK_MESSAGE(describe(n.error()).find("set_tls") != std::string::npos, describe(n.error()));
  }

  TEST_CASE("client commands take --tls-*: comb model, imaging, nectar count") {
    certs c;
    test::temp_dir data;
    tls_node n{data.path() + "/db", c.node_tls()};
    auto addr = "127.0.0.1:" + std::to_string(n.port());
    std::vector<std::string> tls{"--tls-ca",    c.ca,        "--tls-cert",
                                 c.client_cert, "--tls-key", c.client_key};
    auto with = [&](std::vector<std::string> args) {
      args.insert(args.end(), tls.begin(), tls.end());
      return args;
    };
    auto ok = test::run_comb(with({"model", "list", "--node", addr}), data.path() + "/m1.txt");
    CHECK_MESSAGE(ok.rc == 0, ok.out);
    auto plain = test::run_comb({"model", "list", "--node", addr}, data.path() + "/m2.txt");
    CHECK(plain.rc != 0);
    CHECK_MESSAGE(plain.out.find("--tls-ca") != std::string::npos, plain.out);
    // Connected over TLS: the node answers (it has no imaging or Nectar procedures here).
    auto im = test::run_comb(with({"imaging", "results", "--node", addr, "--dataset", "d",
                                   "--model", "m"}),
                             data.path() + "/i.txt");
    CHECK_MESSAGE(im.out.find("unknown_procedure") != std::string::npos, im.out);
    auto nc = test::run_comb(with({"nectar", "count", "--node", addr}), data.path() + "/n.txt");
    CHECK_MESSAGE(nc.out.find("unknown_procedure") != std::string::npos, nc.out);
    auto bad = test::run_comb({"model", "list", "--node", addr, "--tls-ca", "/nonexistent.pem",
                               "--tls-cert", c.client_cert, "--tls-key", c.client_key},
                              data.path() + "/m3.txt");
    CHECK(bad.rc == 2);
    CHECK_MESSAGE(bad.out.find("/nonexistent.pem") != std::string::npos, bad.out);
  }
}

TEST_SUITE("node.tls compute") {
  TEST_CASE("a TLS node reaches its compute process over TLS; plain TCP does not reach it") {
    certs c;
    test::temp_dir data;
    auto port = test::free_port();
    auto log = data.path() + "/compute.log";
    auto node2_cert = c.dir.path() + "/cluster/node2.pem";
    test::child_process compute{
      {test::comb_binary(), "compute", "--listen", "127.0.0.1:" + std::to_string(port), "--backend",
       "cpu", "--tls-ca", c.ca, "--tls-cert", node2_cert, "--tls-key", c.node2_key},
      log};
    REQUIRE_MESSAGE(test::wait_for_line(log, "listening on", 30s, &compute), test::read_file(log));
    CHECK(test::read_file(log).find("TLS") != std::string::npos);

    // A client without TLS gets no compute actor from it.
    {
      runtime::system_config plain_cfg{1};
      caf::actor_system plain{plain_cfg};
      auto got = runtime::remote_actor(plain, "127.0.0.1", static_cast<uint16_t>(port), 3s, {});
      CHECK_FALSE(got);
    }

    // The node's function actors talk TLS to it: an activation (a load_model task) completes.
    runtime::system_config cfg{2};
    REQUIRE(!cfg.set_tls(c.node_tls()));
    runtime::add_compute_types(cfg);
    caf::actor_system sys{cfg};
    runtime::node_config nc;
    nc.data_dir = data.path() + "/db";
    nc.partitions = 2;
    nc.listen = true;
    nc.tls = c.node_tls();
    nc.compute = endpoint{"127.0.0.1", static_cast<uint16_t>(port)};
    auto n = test::must(runtime::node::start(sys, nc, bank_procs()));
    auto addr = "127.0.0.1:" + std::to_string(n->port());
    std::vector<std::string> tls{"--tls-ca",    c.ca,        "--tls-cert",
                                 c.client_cert, "--tls-key", c.client_key};
    auto file = data.path() + "/raw.bin";
    {
      std::ofstream f{file, std::ios::binary};
      f << "some model bytes";
    }
    std::vector<std::string> put{"model",     "put", "--node", addr, "--name", "m",
                                 "--version", "1",   "--file", file, "--raw"};
    put.insert(put.end(), tls.begin(), tls.end());
    auto p = test::run_comb(put, data.path() + "/put.txt");
    REQUIRE_MESSAGE(p.rc == 0, p.out);
    std::vector<std::string> act{"model", "activate",  "--node", addr,        "--name",
                                 "m",     "--version", "1",      "--timeout", "30"};
    act.insert(act.end(), tls.begin(), tls.end());
    auto a = test::run_comb(act, data.path() + "/act.txt");
    CHECK_MESSAGE(a.rc == 0, a.out << "\ncompute log:\n" << test::read_file(log));
  }
}
