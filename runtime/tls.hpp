// comb::runtime::tls: TLS with mutual authentication for Comb's actor traffic (nodes, clients,
// compute processes) through CAF's OpenSSL module. A tls_config names the cluster CA, this
// process's certificate and its key; with one set, the system_config loads
// caf::openssl::manager and publish()/remote_actor() below go over TLS, and CAF 0.17.6's
// session then sets SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT on both sides: a node
// requests and verifies the client's certificate against the CA, and the client verifies the
// node's. A connection opened by remote_actor() below also checks that the node's
// certificate is for the host it was asked to reach (a SAN DNS name, or a SAN IP when the
// host is an address): CAF 0.17.6 sets no host to verify, so tls.cpp sets it on the SSL
// object in its interposed SSL_connect (see there). Plain value types and free functions;
// everything here is thread-safe.
#pragma once

#include <caf/actor_cast.hpp>
#include <caf/actor_control_block.hpp>
#include <caf/actor_system.hpp>
#include <caf/expected.hpp>

#include <chrono>
#include <cstdint>
#include <set>
#include <string>

namespace comb::runtime {

/// The PEM files of one process's TLS identity. All empty: plain TCP.
struct tls_config {
  /// The cluster CA's certificate: peers must chain to it.
  std::string ca_file;
  /// This process's certificate (a chain file: leaf first).
  std::string cert_file;
  /// The unencrypted private key of cert_file.
  std::string key_file;

  /// True when any file is set (check_tls() then requires all three).
  bool enabled() const { return !ca_file.empty() || !cert_file.empty() || !key_file.empty(); }
};

/// Checks `tls` before any socket is opened: all three files set, readable and PEM, the key
/// unencrypted and matching the certificate, the certificate signed by the CA and valid now.
/// bad_config naming the file and the problem; no error when TLS is off. CAF's session loads
/// the files only at the first connection, on its I/O thread, where a bad file would throw.
caf::error check_tls(const tls_config& tls);

/// Publishes `whom` (with message types `sigs`) on host:port over TLS when `tls` is enabled,
/// plain TCP otherwise; the bound port, or CAF's error (the caller names the address).
caf::expected<uint16_t> publish(caf::actor_system& sys, caf::strong_actor_ptr whom,
                                std::set<std::string> sigs, const std::string& host, uint16_t port,
                                bool reuse, const tls_config& tls);

/// Typed form of publish() above.
template <class Handle>
caf::expected<uint16_t> publish(caf::actor_system& sys, const Handle& whom, const std::string& host,
                                uint16_t port, bool reuse, const tls_config& tls) {
  return publish(sys, caf::actor_cast<caf::strong_actor_ptr>(whom), sys.message_types(whom), host,
                 port, reuse, tls);
}

/// Connects to the actor published at host:port within `timeout` (CAF's own remote_actor
/// waits without a bound), over TLS when `tls` is enabled, checking that the peer's
/// certificate is for `host`. Errors: network_error when nothing listens there, when the TLS
/// handshake is refused (with OpenSSL's reason, e.g. a certificate from another CA, one for
/// another host, or a plain node) or when no actor is published there; errc::timeout when
/// something accepts but never completes CAF's handshake; protocol_error when the actor's
/// message types are not `ifs` (empty: any actor).
caf::expected<caf::strong_actor_ptr> remote_actor(caf::actor_system& sys, const std::string& host,
                                                  uint16_t port, std::chrono::milliseconds timeout,
                                                  const tls_config& tls,
                                                  const std::set<std::string>& ifs);

/// Typed form of remote_actor() above: the actor must have Handle's interface.
template <class Handle = caf::actor>
caf::expected<Handle> remote_actor(caf::actor_system& sys, const std::string& host, uint16_t port,
                                   std::chrono::milliseconds timeout, const tls_config& tls) {
  std::set<std::string> ifs;
  if constexpr (!std::is_same_v<Handle, caf::actor>)
    ifs = sys.message_types(caf::detail::type_list<Handle>{});
  auto ptr = remote_actor(sys, host, port, timeout, tls, ifs);
  if (!ptr)
    return std::move(ptr.error());
  return caf::actor_cast<Handle>(std::move(*ptr));
}

/// Makes the TLS connections this process opens to host:port check that the peer's
/// certificate is for `host` (remote_actor() does so itself; this is for code that connects
/// through CAF's connection manager directly, e.g. function actors to their compute process).
void expect_tls_host(const std::string& host, uint16_t port);

/// The proof of the cluster's shared secret a caller gives a node (with TLS off): the hex
/// HMAC-SHA256 of `nonce` followed by `node` (the caller's CAF node id as text) under `secret`.
std::string secret_proof(const std::string& secret, const std::string& nonce,
                         const std::string& node);

/// 32 random bytes from OpenSSL's generator, hex: a nonce for secret_proof().
std::string make_nonce();

/// Compares two proofs in constant time.
bool same_proof(const std::string& a, const std::string& b);

/// Makes every TLS handshake this process refuses or fails print one line to stderr (the
/// node's log): "comb: TLS: refused connection from HOST:PORT: REASON". CAF 0.17.6 gives no
/// hook for handshake failures (its log is compiled out in Debian's build), so tls.cpp wraps
/// OpenSSL's SSL_accept/SSL_connect/SSL_read (see there). Called by system_config::set_tls.
void log_tls_refusals();

/// The last TLS handshake failure seen on a connection to or from host:port (OpenSSL's
/// reason), or "" when none: lets a caller say why CAF's connection attempt failed.
std::string last_tls_failure(const std::string& host, uint16_t port);

} // namespace comb::runtime
