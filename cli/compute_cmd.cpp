// `comb compute`: flags for the compute process of the paper's Figure 1 (assembled in
// node/compute_process.hpp), which serves until SIGINT/SIGTERM (or --seconds).
#include "cli/commands.hpp"
#include "cli/tls_flags.hpp"

#include "actors/compute_actor.hpp"
#include "base/cpu_set.hpp"
#include "base/endpoint.hpp"
#include "base/errc.hpp"
#include "kernels/cpu_backend.hpp"
#include "node/compute_process.hpp"
#include "runtime/system_config.hpp"

#include <caf/actor_system.hpp>

#include <sys/resource.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <cstdlib>
#include <iostream>

namespace comb::cli {

namespace {

struct compute_opts {
  std::string listen = "127.0.0.1:4300";
  std::string backend = "auto";
  size_t memory_limit_mib = 512;
  size_t model_memory_mib = 0;
  uint64_t unload_grace_ms = 2000;
  uint64_t task_timeout_ms = 30000;
  std::vector<std::string> batch;
  std::string priority = "load_model,infer,train";
  double seconds = 0;
  size_t threads = 0;
  std::string sgemm_split = "on";
  /// COMB_KERNEL_PIN for this process's kernel pool ("": the environment's, else "0").
  std::string kernel_pin;
  int nice = 0;
  /// --cpus: the CPUs this process runs on ("": wherever it may).
  std::string cpus;
  runtime::tls_config tls;
};

[[noreturn]] void fail_compute(const caf::error& e, int code = 1) {
  fail("compute", e, code);
}

void run_compute(const compute_opts& o) {
  // --cpus first, before any thread starts: every thread inherits the set, and the kernels'
  // pool and the scheduler size themselves to it.
  if (!o.cpus.empty()) {
    auto cpus = parse_cpu_list(o.cpus);
    if (!cpus)
      fail_compute(cpus.error(), 2);
    if (auto err = run_on_cpus(*cpus))
      fail_compute(err, 2);
  }
  if (o.nice != 0) {
    // Before any thread starts: every thread of this process inherits it (Linux keeps a
    // nice value per thread).
    errno = 0;
    if (::setpriority(PRIO_PROCESS, 0, o.nice) != 0)
      fail_compute(make_error(errc::bad_config,
                              "--nice " + std::to_string(o.nice) + ": " + std::strerror(errno)
                                + (o.nice < 0 ? " (a negative value needs root or CAP_SYS_NICE)"
                                              : "")),
                   2);
  }
  // The kernels' pool workers are left to the scheduler here unless COMB_KERNEL_PIN says
  // otherwise: this process shares the cores with a node, and a worker pinned to the CPU that
  // the node's threads need waits for them (perf_serving, MNIST 1,000, two alternating pairs
  // on a quiet 2-core VM: +14.6% / +16.7% over direct unpinned, +28.4% / +34.5% pinned).
  // --kernel-pin chooses (A/B runs of placements: perf_serving --compute-pin).
  if (!o.kernel_pin.empty())
    ::setenv("COMB_KERNEL_PIN", o.kernel_pin.c_str(), /*overwrite=*/1);
  else
    ::setenv("COMB_KERNEL_PIN", "0", /*overwrite=*/0);
  actors::compute_config cc;
  auto choice = runtime::compute_process::choose_backends(o.backend);
  if (!choice)
    fail_compute(choice.error(), 2);
  // Split sgemm: this process shares the cores with a node or others, and OpenBLAS's
  // lockstep threads spin while a preempted peer is away (kernels/detail/blas.hpp).
  kernels::cpu_backend::set_sgemm_split(o.sgemm_split == "on");
  cc.backend = choice->name;
  cc.backend_note = choice->note;
  cc.backends = choice->backends;
  cc.model_memory_limit = o.model_memory_mib << 20;
  cc.unload_grace = std::chrono::milliseconds{o.unload_grace_ms};
  if (o.memory_limit_mib == 0)
    fail_compute(make_error(errc::bad_config, "--memory-limit-mib must be at least 1"), 2);
  cc.pool.memory_limit = o.memory_limit_mib << 20;
  cc.pool.task_timeout = std::chrono::milliseconds{o.task_timeout_ms};
  for (const auto& b : o.batch) {
    auto p = actors::parse_batch_policy(b);
    if (!p)
      fail_compute(p.error(), 2);
    cc.batching[p->first] = p->second;
  }
  auto prio = actors::parse_priority(o.priority);
  if (!prio)
    fail_compute(prio.error(), 2);
  cc.priority = *prio;
  auto ep = comb::parse_endpoint(o.listen);
  if (!ep)
    fail_compute(ep.error(), 2);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  runtime::system_config cfg{o.threads};
  use_tls("compute", cfg, o.tls);
  runtime::compute_process::configure(cfg);
  caf::actor_system sys{cfg};
  auto proc = runtime::compute_process::start(sys, cc, *ep, o.tls);
  if (!proc)
    fail_compute(proc.error(), 3);
  std::cout << "comb compute: listening on " << ep->host << ":" << (*proc)->port() << " (backend "
            << cc.backend << (cc.backend_note.empty() ? "" : ": " + cc.backend_note)
            << ", memory limit " << o.memory_limit_mib << " MiB, model memory limit "
            << (o.model_memory_mib == 0 ? std::string{"none"}
                                        : std::to_string(o.model_memory_mib) + " MiB")
            << ", sgemm split " << o.sgemm_split << ", kernel pool "
            << kernels::cpu_backend::pool_info()
            << (o.nice != 0 ? ", nice " + std::to_string(o.nice) : std::string{})
            << (o.cpus.empty() ? std::string{} : ", on CPUs " + cpu_list_text(allowed_cpus()))
            << (o.tls.enabled() ? ", TLS" : "") << ")" << std::endl;
  if (o.seconds > 0) {
    timespec ts;
    ts.tv_sec = static_cast<time_t>(o.seconds);
    ts.tv_nsec = static_cast<long>((o.seconds - static_cast<double>(ts.tv_sec)) * 1e9);
    sigtimedwait(&set, nullptr, &ts);
  } else {
    int sig = 0;
    sigwait(&set, &sig);
  }
}

} // namespace

void add_compute_commands(CLI::App& app) {
  auto opts = std::make_shared<compute_opts>();
  auto* sub = app.add_subcommand("compute", "Run a compute process that function actors reach "
                                            "over TCP (pools pieces, batches, runs tasks)");
  sub->add_option("--listen", opts->listen, "HOST:PORT to publish the compute actor on")
    ->capture_default_str();
  sub
    ->add_option("--backend", opts->backend,
                 "auto, cpu or cuda: where models run (auto: CUDA when a device answers)")
    ->check(CLI::IsMember({"auto", "cpu", "cuda"}))
    ->capture_default_str();
  sub
    ->add_option("--sgemm-split", opts->sgemm_split,
                 "on: CPU sgemms run as parts on the kernels' pool, each a single-threaded "
                 "OpenBLAS call (better when the cores are shared with a node); off: "
                 "OpenBLAS's own threads")
    ->check(CLI::IsMember({"on", "off"}))
    ->capture_default_str();
  sub
    ->add_option("--kernel-pin", opts->kernel_pin,
                 "Where the kernels' pool workers run, as COMB_KERNEL_PIN: 0 left to the "
                 "scheduler, wake placed off the caller's CPU when woken, 1 pinned off the "
                 "caller's CPU (default: COMB_KERNEL_PIN, else 0)")
    ->check(CLI::IsMember({"0", "wake", "1"}));
  sub
    ->add_option("--nice", opts->nice,
                 "Scheduling priority of this process's threads, -20 to 19 (as nice(1)); on "
                 "cores shared with a node, a value below the node's lets the kernels run first "
                 "and the node's work fill the gaps (negative values need root or "
                 "CAP_SYS_NICE)")
    ->check(CLI::Range(-20, 19))
    ->capture_default_str();
  sub->add_option("--cpus", opts->cpus,
                  "Run on these CPUs only, as taskset's list (1, 2-7, 0,4-5): the kernels' pool "
                  "and the scheduler take one thread per CPU of the list (a node on the other "
                  "cores keeps its own)");
  sub
    ->add_option("--memory-limit-mib", opts->memory_limit_mib,
                 "Bound on memory reserved by incomplete tasks (back-pressure beyond it)")
    ->capture_default_str();
  sub
    ->add_option("--model-memory-mib", opts->model_memory_mib,
                 "Bound on the memory the loaded models of each executor hold (0: none); a "
                 "version that does not fit is refused and the loaded ones keep serving")
    ->capture_default_str();
  sub
    ->add_option("--unload-grace-ms", opts->unload_grace_ms,
                 "A version superseded by an activation is unloaded once its last task is done "
                 "and it was not used for this long")
    ->capture_default_str();
  sub
    ->add_option("--task-timeout-ms", opts->task_timeout_ms,
                 "An incomplete task is dropped this long after its first piece")
    ->capture_default_str();
  sub->add_option("--batch", opts->batch,
                  "Per-model batching MODEL=SIZE:DELAY_MS (repeatable; default: run at once)");
  sub->add_option("--priority", opts->priority, "Purposes in priority order")
    ->capture_default_str();
  sub->add_option("--seconds", opts->seconds, "Stop after this many seconds (0: at Ctrl-C)");
  sub->add_option("--threads", opts->threads, "Scheduler threads (0: every core)");
  add_tls_flags(sub, opts->tls); // nodes with the cluster's certificates only
  sub->callback([opts] { run_compute(*opts); });
}

} // namespace comb::cli
