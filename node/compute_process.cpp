#include "node/compute_process.hpp"

#include "base/errc.hpp"
#include "runtime/pieces/compute_types.hpp"
#include "runtime/pieces/transfer_tuning.hpp"

#include <caf/io/middleman.hpp>
#include <caf/send.hpp>

namespace comb::runtime {

void compute_process::configure(system_config& cfg) {
  keep_large_buffers_in_heap();
  add_compute_types(cfg);
  cfg.set("scheduler.policy", caf::atom("sharing"));
}

caf::expected<std::unique_ptr<compute_process>> compute_process::start(caf::actor_system& sys,
                                                                       actors::compute_config cfg,
                                                                       const endpoint& listen) {
  auto actor = actors::spawn_compute_actor(sys, std::move(cfg));
  auto port = sys.middleman().publish(actor, listen.port, listen.host.c_str(), /*reuse=*/true);
  if (!port) {
    caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
    return make_error(errc::network_error,
                      "cannot listen on " + listen.to_string() + ": " + sys.render(port.error()));
  }
  return std::unique_ptr<compute_process>{new compute_process(std::move(actor), *port)};
}

compute_process::~compute_process() {
  caf::anon_send_exit(actor_, caf::exit_reason::user_shutdown);
}

} // namespace comb::runtime
