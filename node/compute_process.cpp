// comb::runtime::compute_process: chooses the compute process's backends, configures its actor
// system, spawns and publishes its compute actor.
#include "node/compute_process.hpp"

#include "base/errc.hpp"
#include "kernels/cuda/cuda_backend.hpp"
#include "runtime/pieces/compute_types.hpp"
#include "runtime/pieces/transfer_tuning.hpp"

#include <caf/io/middleman.hpp>
#include <caf/send.hpp>

#include <sched.h>

#include <cstdlib>
#include <string>

namespace comb::runtime {

caf::expected<backend_choice> compute_process::choose_backends(const std::string& flag) {
  if (flag != "cpu" && flag != "cuda" && flag != "auto")
    return make_error(errc::bad_config, "--backend '" + flag + "': expected cpu, cuda or auto");
  backend_choice out;
  if (flag != "cpu") {
    for (auto& b : kernels::backends())
      if (b->name() == "cuda")
        out.backends.push_back(b);
    if (!out.backends.empty()) {
      out.name = "cuda";
      return out;
    }
  }
  std::string why = "CUDA not built";
  if (kernels::cuda::built()) {
    // describe_device() says "no CUDA device (reason)" here: keep the reason.
    auto detail = kernels::cuda::describe_device();
    const std::string prefix = "no CUDA device (";
    if (detail.rfind(prefix, 0) == 0 && detail.size() > prefix.size() && detail.back() == ')')
      detail = detail.substr(prefix.size(), detail.size() - prefix.size() - 1);
    why = "CUDA built but no device answered (" + detail + ")";
  }
  if (flag == "cuda")
    return make_error(errc::unavailable, "--backend cuda: " + why + "; use --backend cpu or auto");
  out.name = "cpu";
  out.backends.push_back(kernels::backends().front());
  if (flag == "auto")
    out.note = why + ": running on the CPU";
  return out;
}

void compute_process::configure(system_config& cfg) {
  keep_large_buffers_in_heap();
  add_compute_types(cfg);
  cfg.set("scheduler.policy", caf::atom("sharing"));
  // COMB_MIDDLEMAN_WORKERS=N (measurements only): N BASP workers (CAF's default: 1 on a
  // 2-core machine). 0: a message from a function actor is deserialized by the middleman's
  // own thread and put straight into the compute actor's mailbox, one hand-off between
  // threads less per piece; not shown to help in 2 alternating pairs (perf_serving MNIST 1
  // invocation split, load 2.6: commit -> compute has the task 0.365/0.487 ms against
  // 0.442/0.434 with 1).
  if (const char* v = std::getenv("COMB_MIDDLEMAN_WORKERS"); v && *v)
    cfg.set("middleman.workers", static_cast<size_t>(std::strtoul(v, nullptr, 10)));
  // COMB_COMPUTE_INTAKE_BATCH=1 (measurements only): the process's threads (started after
  // this) run as SCHED_BATCH, so that the middleman and the compute actor, woken by a task
  // arriving, do not preempt a running batch; each executor puts its own thread back to
  // SCHED_OTHER (executor.cpp). perf_serving MNIST split, load 1.7-2.5, 3 rounds: 1,000
  // invocations +2.2/-6.5/-10.0% against +11.9/+15.2/+6.3% (compute CPU 5.25/5.17/5.56
  // against 5.85/5.84/5.29 ms/inv); but at 1 invocation the kernels' pool woken early
  // (SCHED_OTHER, spinning) kept the compute actor off the CPU: commit -> compute has the
  // task 2.3 ms. With COMB_COMPUTE_EARLY_WAKE=0 COMB_EXECUTOR_WAKE=0 too: +22.4/+17.7%
  // against +18.1/+21.6% (2 runs). Not the default until quiet A/B runs decide.
  if (const char* v = std::getenv("COMB_COMPUTE_INTAKE_BATCH"); v && std::string{v} == "1") {
    sched_param none{};
    ::sched_setscheduler(0, SCHED_BATCH, &none);
  }
}

caf::expected<std::unique_ptr<compute_process>> compute_process::start(caf::actor_system& sys,
                                                                       actors::compute_config cfg,
                                                                       const endpoint& listen,
                                                                       const tls_config& tls) {
  auto actor = actors::spawn_compute_actor(sys, std::move(cfg));
  caf::expected<uint16_t> port =
    tls.enabled()
      ? runtime::publish(sys, caf::actor_cast<caf::strong_actor_ptr>(actor), {}, listen.host,
                         listen.port, /*reuse=*/true, tls)
      : sys.middleman().publish(actor, listen.port, listen.host.c_str(), /*reuse=*/true);
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
