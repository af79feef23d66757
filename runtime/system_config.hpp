// comb::runtime::system_config: the CAF actor-system configuration every Comb process uses:
// loads the middleman (remote actors over TCP), registers the "comb" error category so errors
// render with their names, and sizes the scheduler; with set_tls(), CAF's OpenSSL module too.
// Construct one per process.
#pragma once

#include "runtime/tls.hpp"

#include <caf/actor_system_config.hpp>

#include <cstddef>

namespace comb::runtime {

class system_config : public caf::actor_system_config {
public:
  /// `threads` = 0: one scheduler worker per core.
  explicit system_config(size_t threads = 0);

  /// Loads caf::openssl::manager and gives it `tls`'s files (before the actor_system is
  /// made from this config): connections made through runtime::publish/remote_actor with
  /// the same tls_config then use TLS with mutual authentication, and refused handshakes are
  /// logged to stderr. Checks the files first (check_tls): bad_config naming the file.
  /// Nothing happens, and no error, when `tls` is not enabled.
  caf::error set_tls(const tls_config& tls);

  /// The TLS files given to set_tls() (empty when off).
  const tls_config& tls() const { return tls_; }

private:
  /// How an idle work-stealing worker polls (work-stealing.* of CAF): `knob` is the
  /// COMB_SCHEDULER_IDLE environment variable, null or "" for Comb's setting, "caf" for CAF's
  /// defaults, "ATTEMPTS:MS" for moderate-poll-attempts and relaxed-sleep-duration (measurements).
  void set_idle_polling(const char* knob);

  tls_config tls_;
};

} // namespace comb::runtime
