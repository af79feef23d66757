// comb::runtime::compute_process: the compute process of the paper's Figure 1, assembled: one
// compute actor (actors/compute_actor.hpp) published on HOST:PORT through CAF's middleman, so
// that function actors of any node reach it over TCP. `comb compute` parses flags into a
// compute_config and serves one until it is told to stop. Owns its actor; destroying it stops
// the actor. Not thread-safe.
#pragma once

#include "actors/compute_actor.hpp"
#include "base/endpoint.hpp"
#include "runtime/system_config.hpp"
#include "runtime/tls.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/expected.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace comb::runtime {

/// The backends a compute process runs models on, and why (see choose_backends).
struct backend_choice {
  /// "cpu" or "cuda".
  std::string name;
  /// One executor each.
  std::vector<std::shared_ptr<kernels::backend>> backends;
  /// Why this choice, when it is not what was asked ("CUDA not built: running on the CPU").
  std::string note;
};

class compute_process {
public:
  /// The backends for `comb compute --backend FLAG`: "cpu" is the CPU backend; "cuda" every
  /// registered CUDA backend (errc::unavailable naming why when there is none: not built, or
  /// built but no device answered); "auto" CUDA when a device answers, else the CPU with a
  /// note saying why. Errors: errc::bad_config for another flag.
  static caf::expected<backend_choice> choose_backends(const std::string& flag);

  /// Sets up what a compute process needs before its actor system starts: the compute
  /// message types, large transfer buffers kept in the heap, and CAF's sharing scheduler
  /// (the default work-stealing workers sleep up to 10 ms when idle, which would add that
  /// much latency to each hop of a piece).
  static void configure(system_config& cfg);

  /// Spawns the compute actor and publishes it on `listen` (port 0 picks a free port), over
  /// TLS with mutual authentication when `tls` names files (the actor system must have them:
  /// system_config::set_tls), so that only the cluster's nodes reach it.
  /// Errors: network_error naming the address when it cannot listen.
  static caf::expected<std::unique_ptr<compute_process>> start(caf::actor_system& sys,
                                                               actors::compute_config cfg,
                                                               const endpoint& listen,
                                                               const tls_config& tls = {});

  ~compute_process();
  compute_process(const compute_process&) = delete;
  compute_process& operator=(const compute_process&) = delete;

  /// The bound port.
  uint16_t port() const { return port_; }

private:
  compute_process(caf::actor actor, uint16_t port) : actor_(std::move(actor)), port_(port) {}

  caf::actor actor_;
  uint16_t port_ = 0;
};

} // namespace comb::runtime
