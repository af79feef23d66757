#include "runtime/system_config.hpp"

#include "base/cpu_set.hpp"
#include "base/errc.hpp"

#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
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
  // One per core this process may run on (`taskset`, `comb compute --cpus`).
  if (threads == 0)
    threads = std::max<size_t>(1,
                               std::min<size_t>(std::max(1u, std::thread::hardware_concurrency()),
                                                comb::allowed_cpus().size()));
  set("scheduler.max-threads", threads);
  // COMB_SCHEDULER=sharing|stealing overrides CAF's scheduler policy (for measurements; a
  // process that sets one itself, such as `comb compute`, sets it after this).
  if (const char* policy = std::getenv("COMB_SCHEDULER"); policy && *policy)
    set("scheduler.policy", caf::atom_from_string(caf::string_view{policy, std::strlen(policy)}));
  set_idle_polling(std::getenv("COMB_SCHEDULER_IDLE"));
}

void system_config::set_idle_polling(const char* knob) {
  // A work-stealing worker that runs out of jobs polls its queue 100 times, then 500 times
  // with a 50 us sleep between polls (CAF's "moderate" phase, about 30-50 ms of wake-ups),
  // and only then waits on its condition variable (woken by the next job sent to it, or every
  // relaxed-sleep-duration to try a steal). An idle node's outbox dispatcher polls every
  // 50 ms, so its workers never got past the moderate phase: an idle `comb node` used 14.5%
  // of a core, 2.2% with 20 moderate polls (30 s each, same binary, load 6-7). perf_txn
  // --quick, three runs each way at load 7.5: no row slower (async 64 clients 0.84 of direct
  // against 0.72 with CAF's polling, medians).
  size_t moderate = 20;
  auto relaxed = std::chrono::milliseconds{10};
  if (knob && std::string{knob} == "caf")
    return; // CAF's own defaults (500 attempts, 10 ms), for measurements
  if (knob && *knob) {
    // "ATTEMPTS:MS", for measurements.
    char* end = nullptr;
    moderate = std::strtoul(knob, &end, 10);
    if (end && *end == ':')
      relaxed = std::chrono::milliseconds{std::strtol(end + 1, nullptr, 10)};
  }
  set("work-stealing.moderate-poll-attempts", moderate);
  set("work-stealing.relaxed-sleep-duration", caf::timespan{relaxed});
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
