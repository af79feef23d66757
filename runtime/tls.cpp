#include "runtime/tls.hpp"

#include "base/errc.hpp"

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>
#include <caf/io/middleman_actor.hpp>
#include <caf/openssl/manager.hpp>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <dlfcn.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>

namespace comb::runtime {

namespace {

template <class T, void (*Free)(T*)>
struct openssl_deleter {
  void operator()(T* p) const { Free(p); }
};
using x509_ptr = std::unique_ptr<X509, openssl_deleter<X509, X509_free>>;
using pkey_ptr = std::unique_ptr<EVP_PKEY, openssl_deleter<EVP_PKEY, EVP_PKEY_free>>;
using store_ptr = std::unique_ptr<X509_STORE, openssl_deleter<X509_STORE, X509_STORE_free>>;
using store_ctx_ptr =
  std::unique_ptr<X509_STORE_CTX, openssl_deleter<X509_STORE_CTX, X509_STORE_CTX_free>>;

struct file_closer {
  void operator()(FILE* f) const { std::fclose(f); }
};

/// OpenSSL's queued errors as text (consumes the queue: only for our own checks).
std::string openssl_errors() {
  std::string msg;
  while (auto e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!msg.empty())
      msg += "; ";
    msg += buf;
  }
  return msg.empty() ? "not PEM" : msg;
}

/// A passphrase callback that refuses: an encrypted key fails the check instead of OpenSSL
/// prompting on the terminal (CAF would do so on its I/O thread).
int no_passphrase(char*, int, int, void*) {
  return -1;
}

caf::expected<std::unique_ptr<FILE, file_closer>> open_pem(const std::string& what,
                                                           const std::string& path) {
  std::unique_ptr<FILE, file_closer> f{std::fopen(path.c_str(), "r")};
  if (!f)
    return make_error(errc::bad_config,
                      "cannot read TLS " + what + " " + path + ": " + std::strerror(errno));
  return f;
}

caf::expected<x509_ptr> read_cert(const std::string& what, const std::string& path) {
  auto f = open_pem(what, path);
  if (!f)
    return std::move(f.error());
  ERR_clear_error();
  x509_ptr cert{PEM_read_X509(f->get(), nullptr, no_passphrase, nullptr)};
  if (!cert)
    return make_error(errc::bad_config, "TLS " + what + " " + path
                                          + " holds no PEM certificate: " + openssl_errors());
  return cert;
}

// ---- handshake failures -------------------------------------------------------------------
//
// CAF 0.17.6's openssl::session runs SSL_accept/SSL_connect/SSL_read itself and only logs
// a failure through CAF_LOG_INFO, which Debian's build compiles out (CAF_LOG_LEVEL_QUIET);
// the connection is then closed silently. To tell an operator who was refused and why, this
// file defines those three OpenSSL functions: the dynamic linker binds libcaf_openssl's calls
// to the executable's definitions first (ELF symbol interposition, as LD_PRELOAD tools do),
// and each wrapper calls the real function (dlsym RTLD_NEXT) and, only when it failed for
// good (not WANT_READ/WANT_WRITE), notes the peer and OpenSSL's reason. The error queue is
// peeked, not consumed, so OpenSSL and CAF see exactly what they would have seen.

std::atomic<bool> log_refusals_on{false};
std::mutex failures_mtx;
std::map<uint16_t, std::string> failures_by_port; // remote port -> last reason
// The peer of each handshake in progress, taken at its first step: a peer that gives up has
// closed its socket by the time the failure shows, and getpeername() then knows nothing.
std::map<const SSL*, std::pair<std::string, uint16_t>> handshake_peers;

// The host each connection Comb opens through remote_actor() is meant to reach, by the
// "ip:port" of every address the host resolves to: the interposed SSL_connect has OpenSSL
// check the peer's certificate against it (SAN DNS names for a name, SAN IPs for an address).
std::map<std::string, std::string> expected_hosts;

std::string ip_text(const sockaddr* sa) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (sa->sa_family == AF_INET)
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, host, sizeof(host));
  else if (sa->sa_family == AF_INET6)
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, host,
              sizeof(host));
  return host;
}

void expect_host(const std::string& host, uint16_t port) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0)
    return; // CAF's connect fails on its own, saying so
  std::lock_guard<std::mutex> guard{failures_mtx};
  for (auto* a = res; a; a = a->ai_next)
    expected_hosts[ip_text(a->ai_addr) + ":" + std::to_string(port)] = host;
  freeaddrinfo(res);
}

/// The host expected at "ip:port", or "" when Comb did not open that connection itself.
std::string expected_host(const std::string& peer) {
  std::lock_guard<std::mutex> guard{failures_mtx};
  auto i = expected_hosts.find(peer);
  return i == expected_hosts.end() ? std::string{} : i->second;
}

std::string peer_address(SSL* ssl, uint16_t* port_out) {
  sockaddr_storage sa{};
  socklen_t len = sizeof(sa);
  int fd = SSL_get_fd(ssl);
  if (fd < 0 || getpeername(fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0)
    return "an unknown peer";
  char host[INET6_ADDRSTRLEN] = "?";
  uint16_t port = 0;
  if (sa.ss_family == AF_INET) {
    auto in = reinterpret_cast<sockaddr_in*>(&sa);
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
    port = ntohs(in->sin_port);
  } else if (sa.ss_family == AF_INET6) {
    auto in6 = reinterpret_cast<sockaddr_in6*>(&sa);
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
    port = ntohs(in6->sin6_port);
  }
  *port_out = port;
  return std::string{host} + ":" + std::to_string(port);
}

/// True when `ssl`'s peer certificate was refused for naming another host.
bool host_mismatch(SSL* ssl) {
  auto verify = SSL_get_verify_result(ssl);
  return verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH;
}

/// Has OpenSSL check the certificate of the peer `ssl` connects to against the host Comb
/// meant to reach there (a client's or node's connection to a node by its configured host).
void check_peer_host(SSL* ssl) {
  uint16_t port = 0;
  auto peer = peer_address(ssl, &port);
  if (port == 0)
    return;
  auto host = expected_host(peer);
  if (host.empty())
    return;
  in6_addr ip{};
  auto* param = SSL_get0_param(ssl);
  if (inet_pton(AF_INET, host.c_str(), &ip) == 1 || inet_pton(AF_INET6, host.c_str(), &ip) == 1) {
    X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str());
  } else {
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    SSL_set1_host(ssl, host.c_str());
  }
}

/// Why the handshake on `ssl` failed, in words an operator can act on; `host` is the host
/// Comb meant to reach (client side), or "".
std::string failure_reason(SSL* ssl, int ssl_error, const std::string& host = {}) {
  std::string reason;
  auto verify = SSL_get_verify_result(ssl);
  if (verify != X509_V_OK) {
    reason = std::string{"peer certificate rejected: "} + X509_verify_cert_error_string(verify);
    if (host_mismatch(ssl))
      reason += " (its certificate names no '" + host
                + "' in its subjectAltName: give the node a certificate for the host its peers "
                  "reach it by, e.g. scripts/make-test-certs.sh NAME=IP)";
  } else if (auto e = ERR_peek_last_error()) {
    auto r = ERR_reason_error_string(e);
    reason = r ? r : "TLS error " + std::to_string(e);
    if (ERR_GET_REASON(e) == SSL_R_WRONG_VERSION_NUMBER
        || ERR_GET_REASON(e) == SSL_R_PACKET_LENGTH_TOO_LONG
        || ERR_GET_REASON(e) == SSL_R_HTTP_REQUEST)
      reason += " (the peer does not speak TLS: plain TCP?)";
    else if (ERR_GET_REASON(e) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE)
      reason += " (a client without a certificate)";
    else if (ERR_GET_REASON(e) == SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED)
      reason += " (the node requires a certificate from the cluster's CA)";
    else if (ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
      reason += " (the peer closed the connection during the TLS handshake: a plain-TCP "
                "client giving up, or one that does not trust this side's certificate)";
  } else if (ssl_error == SSL_ERROR_SYSCALL || ssl_error == SSL_ERROR_ZERO_RETURN)
    reason = "connection closed during the TLS handshake (a plain-TCP peer, or one that gave up)";
  else
    reason = "TLS error " + std::to_string(ssl_error);
  return reason;
}

void remember_peer(SSL* ssl) {
  uint16_t port = 0;
  auto peer = peer_address(ssl, &port);
  if (port == 0) // already closed: keep what an earlier step saw
    return;
  std::lock_guard<std::mutex> guard{failures_mtx};
  handshake_peers[ssl] = {peer, port};
}

void note_failure(SSL* ssl, int ret, bool accepted, bool in_handshake) {
  int err = ret == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl, ret);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
    return;
  std::pair<std::string, uint16_t> known;
  if (in_handshake) {
    std::lock_guard<std::mutex> guard{failures_mtx};
    if (auto i = handshake_peers.find(ssl); i != handshake_peers.end()) {
      known = i->second;
      handshake_peers.erase(i);
    }
  }
  if (err == SSL_ERROR_NONE)
    return;
  // After the handshake, an orderly close is not a refusal.
  if (!in_handshake && err != SSL_ERROR_SSL)
    return;
  uint16_t port = 0;
  auto peer = peer_address(ssl, &port);
  if (port == 0 && !known.first.empty()) {
    peer = known.first;
    port = known.second;
  }
  auto host = accepted ? std::string{} : expected_host(peer);
  auto reason = failure_reason(ssl, err, host);
  {
    std::lock_guard<std::mutex> guard{failures_mtx};
    failures_by_port[port] = reason;
  }
  // This side refused the node it connected to: its certificate is for another host.
  bool refused_host = !accepted && host_mismatch(ssl);
  if ((accepted || refused_host) && log_refusals_on.load()) {
    char stamp[32];
    auto now = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&now, &tm);
    std::strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
    // One write per line, so lines from several I/O threads do not interleave.
    auto what = accepted ? " comb: TLS: refused connection from " + peer
                         : " comb: TLS: refused node " + host + " at " + peer;
    std::cerr << (std::string{stamp} + what + ": " + reason + "\n") << std::flush;
  }
}

template <class F>
F real(const char* name) {
  static_assert(std::is_pointer_v<F>);
  return reinterpret_cast<F>(dlsym(RTLD_NEXT, name));
}

} // namespace

namespace {

std::string hex(const unsigned char* p, size_t n) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out += digits[p[i] >> 4];
    out += digits[p[i] & 15];
  }
  return out;
}

} // namespace

std::string secret_proof(const std::string& secret, const std::string& nonce,
                         const std::string& node) {
  auto msg = nonce + node;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
            reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), mac, &len))
    return {}; // never equal to a real proof: same_proof() refuses empty ones
  return hex(mac, len);
}

std::string make_nonce() {
  unsigned char buf[32];
  if (RAND_bytes(buf, sizeof(buf)) != 1)
    return {};
  return hex(buf, sizeof(buf));
}

bool same_proof(const std::string& a, const std::string& b) {
  return !a.empty() && a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

void expect_tls_host(const std::string& host, uint16_t port) {
  expect_host(host, port);
}

void log_tls_refusals() {
  log_refusals_on = true;
}

std::string last_tls_failure(const std::string&, uint16_t port) {
  std::lock_guard<std::mutex> guard{failures_mtx};
  auto i = failures_by_port.find(port);
  return i == failures_by_port.end() ? std::string{} : i->second;
}

caf::error check_tls(const tls_config& tls) {
  if (!tls.enabled())
    return caf::none;
  for (auto [key, value] :
       {std::pair{"ca_file", &tls.ca_file}, std::pair{"cert_file", &tls.cert_file},
        std::pair{"key_file", &tls.key_file}})
    if (value->empty())
      return make_error(errc::bad_config,
                        std::string{"TLS needs ca_file, cert_file and key_file together: "} + key
                          + " is not set");
  auto ca = read_cert("CA certificate", tls.ca_file);
  if (!ca)
    return std::move(ca.error());
  auto cert = read_cert("certificate", tls.cert_file);
  if (!cert)
    return std::move(cert.error());
  auto kf = open_pem("key", tls.key_file);
  if (!kf)
    return std::move(kf.error());
  ERR_clear_error();
  pkey_ptr key{PEM_read_PrivateKey(kf->get(), nullptr, no_passphrase, nullptr)};
  if (!key)
    return make_error(errc::bad_config,
                      "TLS key " + tls.key_file
                        + " holds no unencrypted PEM private key (Comb takes no passphrase): "
                        + openssl_errors());
  if (X509_check_private_key(cert->get(), key.get()) != 1) {
    ERR_clear_error();
    return make_error(errc::bad_config, "TLS key " + tls.key_file
                                          + " does not match the certificate " + tls.cert_file);
  }
  store_ptr store{X509_STORE_new()};
  store_ctx_ptr ctx{X509_STORE_CTX_new()};
  if (!store || !ctx || X509_STORE_load_locations(store.get(), tls.ca_file.c_str(), nullptr) != 1
      || X509_STORE_CTX_init(ctx.get(), store.get(), cert->get(), nullptr) != 1)
    return make_error(errc::bad_config, "cannot load the TLS CA certificate " + tls.ca_file + ": "
                                          + openssl_errors());
  if (X509_verify_cert(ctx.get()) != 1)
    return make_error(errc::bad_config,
                      "TLS certificate " + tls.cert_file + " is not valid under the CA "
                        + tls.ca_file + ": "
                        + X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get())));
  return caf::none;
}

namespace {

caf::expected<caf::io::middleman_actor> connection_manager(caf::actor_system& sys,
                                                           const tls_config& tls) {
  if (!tls.enabled())
    return sys.middleman().actor_handle();
  if (!sys.has_openssl_manager())
    return make_error(errc::bad_config, "TLS files are set but this actor system was not "
                                        "configured for TLS (system_config::set_tls)");
  return sys.openssl_manager().actor_handle();
}

} // namespace

caf::expected<uint16_t> publish(caf::actor_system& sys, caf::strong_actor_ptr whom,
                                std::set<std::string> sigs, const std::string& host, uint16_t port,
                                bool reuse, const tls_config& tls) {
  auto mm = connection_manager(sys, tls);
  if (!mm)
    return std::move(mm.error());
  caf::expected<uint16_t> result = make_error(errc::network_error, "no reply");
  caf::scoped_actor self{sys};
  self
    ->request(*mm, caf::infinite, caf::publish_atom::value, port, std::move(whom), std::move(sigs),
              host, reuse)
    .receive([&](uint16_t bound) { result = bound; },
             [&](caf::error& e) { result = std::move(e); });
  return result;
}

caf::expected<caf::strong_actor_ptr> remote_actor(caf::actor_system& sys, const std::string& host,
                                                  uint16_t port, std::chrono::milliseconds timeout,
                                                  const tls_config& tls,
                                                  const std::set<std::string>& ifs) {
  auto mm = connection_manager(sys, tls);
  if (!mm)
    return std::move(mm.error());
  auto where = host + ":" + std::to_string(port);
  {
    std::lock_guard<std::mutex> guard{failures_mtx};
    failures_by_port.erase(port);
  }
  if (tls.enabled())
    expect_host(host, port);
  // A refused TLS handshake closes the connection before CAF's own handshake; CAF then
  // reports a generic error (or nothing until the timeout): OpenSSL's reason says why.
  auto tls_reason = [&]() -> std::string {
    if (!tls.enabled())
      return {};
    auto r = last_tls_failure(host, port);
    return r.empty() ? std::string{} : "TLS handshake with " + where + " failed: " + r;
  };
  caf::expected<caf::strong_actor_ptr> result = make_error(errc::network_error, "no reply");
  caf::scoped_actor self{sys};
  self->request(*mm, timeout, caf::connect_atom::value, host, port)
    .receive(
      [&](const caf::node_id&, caf::strong_actor_ptr& ptr, const std::set<std::string>& got) {
        if (!ptr)
          result = make_error(errc::network_error,
                              "no actor is published at " + where + " (not a Comb node?)");
        else if (!ifs.empty() && got != ifs)
          result = make_error(errc::protocol_error,
                              "the actor published at " + where
                                + " has another interface than expected (a compute process "
                                  "where a node was expected, or another version of Comb?)");
        else
          result = std::move(ptr);
      },
      [&](caf::error& e) {
        if (auto r = tls_reason(); !r.empty() && r.find(" mismatch (") != std::string::npos)
          result = make_error(errc::network_error, r); // it says what to do
        else if (!r.empty())
          result = make_error(errc::network_error,
                              r
                                + " (does this client hold a certificate from the cluster's CA, "
                                  "and does the node run with TLS?)");
        else if (e == caf::sec::disconnect_during_handshake && tls.enabled())
          // The node's alert can be lost when its close resets the connection before this
          // side read it: OpenSSL then sees only the connection end, and names no reason.
          result = make_error(errc::network_error,
                              "TLS handshake with " + where
                                + " failed: the node closed the connection before Comb's "
                                  "handshake completed (does this client hold a certificate "
                                  "from the cluster's CA?)");
        else if (e == caf::sec::disconnect_during_handshake && !tls.enabled())
          result = make_error(errc::network_error,
                              "the node at " + where
                                + " closed the connection during CAF's handshake: does it "
                                  "require TLS (give --tls-ca/--tls-cert/--tls-key)?");
        else if (e == caf::sec::request_timeout)
          result = make_error(
            errc::timeout,
            "connected to " + where + " but got no answer within " + std::to_string(timeout.count())
              + " ms: is it a Comb node, is it responsive"
              + (tls.enabled() ? ", and does it run with TLS?" : ", and does it run without TLS?"));
        else
          result = make_error(errc::network_error,
                              "cannot reach a Comb node at " + where + ": " + sys.render(e));
      });
  return result;
}

} // namespace comb::runtime

// The interposed OpenSSL entry points (see "handshake failures" above). They forward every
// call unchanged; on a failure for good they only record it.
extern "C" {

// Each first empties the thread's OpenSSL error queue, as OpenSSL asks before any TLS I/O
// call: SSL_get_error() reads that queue, and CAF's I/O thread serves every connection, so an
// error left by one connection's refused handshake made the next SSL_read on another,
// healthy connection (returning -1 with WANT_READ) read as SSL_ERROR_SSL, and CAF closed it:
// every kept TLS connection was lost after any refusal.
int SSL_accept(SSL* ssl) {
  static auto fn = comb::runtime::real<int (*)(SSL*)>("SSL_accept");
  comb::runtime::remember_peer(ssl);
  ERR_clear_error();
  int ret = fn(ssl);
  comb::runtime::note_failure(ssl, ret, /*accepted=*/true, /*in_handshake=*/true);
  return ret;
}

// Before the handshake's first step, the host Comb meant to reach (expect_host) is set on
// the SSL object, so that OpenSSL's verification refuses a certificate for another host.
int SSL_connect(SSL* ssl) {
  static auto fn = comb::runtime::real<int (*)(SSL*)>("SSL_connect");
  comb::runtime::check_peer_host(ssl);
  comb::runtime::remember_peer(ssl);
  ERR_clear_error();
  int ret = fn(ssl);
  comb::runtime::note_failure(ssl, ret, /*accepted=*/false, /*in_handshake=*/true);
  return ret;
}

int SSL_read(SSL* ssl, void* buf, int num) {
  static auto fn = comb::runtime::real<int (*)(SSL*, void*, int)>("SSL_read");
  ERR_clear_error();
  int ret = fn(ssl, buf, num);
  // With TLS 1.3 a client learns that the node refused its certificate on its first read.
  if (ret <= 0)
    comb::runtime::note_failure(ssl, ret, /*accepted=*/SSL_is_server(ssl) == 1,
                                /*in_handshake=*/false);
  return ret;
}

int SSL_write(SSL* ssl, const void* buf, int num) {
  static auto fn = comb::runtime::real<int (*)(SSL*, const void*, int)>("SSL_write");
  ERR_clear_error();
  int ret = fn(ssl, buf, num);
  // A client whose certificate the node refused may meet the node's alert on a write first.
  if (ret <= 0)
    comb::runtime::note_failure(ssl, ret, /*accepted=*/SSL_is_server(ssl) == 1,
                                /*in_handshake=*/false);
  return ret;
}

} // extern "C"
