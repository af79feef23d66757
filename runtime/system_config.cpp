#include "runtime/system_config.hpp"

#include "base/errc.hpp"

#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>

#include <algorithm>
#include <cstdlib>
#include <thread>

namespace comb::runtime {

system_config::system_config(size_t threads) {
  load<caf::io::middleman>();
  add_error_category(errc_category, [](uint8_t code, caf::atom_value, const caf::message& ctx) {
    return describe(caf::error{code, errc_category, ctx});
  });
  // One worker per core. CAF's own default is at least 4, which on a 2-core machine lets
  // the OS preempt a worker inside a RocksDB commit (the write-group leader, or a row-lock
  // holder) while the others wait for it: perf_txn ran at about half the speed.
  if (threads == 0)
    threads = std::max(1u, std::thread::hardware_concurrency());
  set("scheduler.max-threads", threads);
  // COMB_SCHEDULER=sharing|stealing overrides CAF's scheduler policy (for measurements; a
  // process that sets one itself, such as `comb compute`, sets it after this).
  if (const char* policy = std::getenv("COMB_SCHEDULER"); policy && *policy)
    set("scheduler.policy", caf::atom_from_string(policy));
}

caf::error system_config::set_tls(const tls_config& tls) {
  if (!tls.enabled())
    return caf::none;
  if (auto err = check_tls(tls))
    return err;
  if (!tls_.enabled())
    load<caf::openssl::manager>();
  tls_ = tls;
  // With any of these set, CAF's session requires and verifies a certificate on both sides
  // (SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT) against the CA file.
  openssl_cafile = tls.ca_file;
  openssl_certificate = tls.cert_file;
  openssl_key = tls.key_file;
  log_tls_refusals();
  return caf::none;
}

} // namespace comb::runtime
