// comb::actors::executor: loads model versions through the runner registry onto one backend,
// bounds the memory they hold, and runs batches (inference as one runner call, training task
// by task) on its own thread.
#include "actors/executor.hpp"
#include "runtime/pieces/stage_trace.hpp"

#include "base/errc.hpp"
#include "kernels/cpu_backend.hpp"

#include <caf/all.hpp>

#include <sched.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <string_view>

namespace comb::actors {

std::string mib_text(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return buf;
}

namespace {

struct held_model {
  std::unique_ptr<runtime::loaded_model> model;
  uint64_t bytes = 0;
};

struct executor_state {
  executor_config cfg;
  std::map<std::pair<std::string, uint32_t>, held_model> models;
  uint64_t used = 0;
  bool wake_pool = [] {
    auto* e = std::getenv("COMB_EXECUTOR_WAKE");
    return !(e && std::string_view{e} == "0");
  }();
  bool policy_set = false;
  static inline const char* name = "comb.executor";
};

using executor_t = caf::stateful_actor<executor_state>;

std::string model_name(const std::string& model, uint32_t version) {
  return "model '" + model + "' version " + std::to_string(version);
}

/// The memory bound's error: errc::bad_model (not overloaded, which senders answer by sending
/// the same piece again), naming what the model needs and what is free.
caf::error no_room(const executor_state& st, const std::string& what, uint64_t need) {
  auto limit = st.cfg.model_memory_limit;
  auto free = limit > st.used ? limit - st.used : 0;
  auto text = what + " needs " + mib_text(need) + ", " + mib_text(free) + " free of "
              + mib_text(limit) + " on " + st.cfg.backend->name();
  if (need > limit)
    return make_error(errc::bad_model, text + " (larger than the model memory limit)");
  return make_error(errc::bad_model, text
                                       + " (the loaded versions keep serving; load it "
                                         "once a superseded version is unloaded, or raise "
                                         "the limit)");
}

caf::behavior executor(executor_t* self, executor_config cfg) {
  self->state.cfg = std::move(cfg);
  return {
    [=](exec_load_atom, const std::string& model, uint32_t version, const std::string& kind,
        const exec_bytes& file) -> caf::result<uint64_t> {
      auto& st = self->state;
      auto key = std::make_pair(model, version);
      if (auto i = st.models.find(key); i != st.models.end())
        return i->second.bytes;
      auto what = model_name(model, version) + " (" + kind + ")";
      auto runner = runtime::find_runner(kind);
      if (!runner)
        return make_error(errc::bad_model, what + ": no runner of that kind is registered");
      auto limit = st.cfg.model_memory_limit;
      // The file's size is a lower bound of what its weights hold: refuse early.
      if (limit > 0 && file->size() > limit - std::min(limit, st.used))
        return no_room(st, what, file->size());
      auto load_on =
        [&](kernels::backend& be) -> caf::expected<std::unique_ptr<runtime::loaded_model>> {
        try {
          return runner->load(std::string_view(file->data(), file->size()), be);
        } catch (const std::exception& e) {
          return make_error(errc::bad_model, std::string{"loading failed: "} + e.what());
        }
      };
      auto m = load_on(*st.cfg.backend);
      if (!m && is(m.error(), errc::unsupported)
          && st.cfg.backend->device() != kernels::device::cpu) {
        // The runtime degrades to the CPU rather than refusing the model.
        std::fprintf(stderr, "comb compute: %s on %s: %s; running it on the CPU\n", what.c_str(),
                     st.cfg.backend->name().c_str(), describe(m.error()).c_str());
        m = load_on(kernels::cpu());
      }
      // Never overloaded (senders answer that by sending the piece again): the file is at fault.
      if (!m)
        return make_error(is(m.error(), errc::unsupported) ? errc::unsupported : errc::bad_model,
                          what + ": " + describe(m.error()));
      auto need = static_cast<uint64_t>((*m)->memory_bytes());
      if (limit > 0 && need > limit - std::min(limit, st.used))
        return no_room(st, what, need);
      st.used += need;
      st.models.emplace(key, held_model{std::move(*m), need});
      return need;
    },
    [=](exec_run_atom, exec_batch_ptr& b) -> exec_batch_ptr {
      runtime::stage_trace::mark("ex.run");
      auto& st = self->state;
      if (!st.policy_set) {
        // The batch runs as SCHED_OTHER where the process's other threads may be SCHED_BATCH
        // (COMB_COMPUTE_INTAKE_BATCH, node/compute_process.cpp).
        st.policy_set = true;
        if (::sched_getscheduler(0) == SCHED_BATCH) {
          sched_param none{};
          ::sched_setscheduler(0, SCHED_OTHER, &none);
        }
      }
      // The kernels' pool workers sleep after an idle spell (a lone request): wake them now,
      // off this thread's CPU (kernels::cpu_backend::wake_workers), so their wake-up overlaps
      // the runner's input preparation and the first parallel op finds them running on
      // the other CPU. perf_serving MNIST 1 invocation, 6 alternating pairs at load 3.6-6.1:
      // runner median 4.4 ms against 5.9 without (3/3 pairs at load < 5: 3.2-3.5 against
      // 3.9-6.5). COMB_EXECUTOR_WAKE=0: off, for A/B runs.
      if (st.wake_pool && st.cfg.backend->device() == kernels::device::cpu)
        kernels::cpu_backend::wake_workers();
      b->results.clear();
      auto i = st.models.find({b->model, b->version});
      if (i == st.models.end()) {
        for (size_t k = 0; k < b->tasks.size(); ++k)
          b->results.emplace_back(
            make_error(errc::model_not_loaded, model_name(b->model, b->version)
                                                 + " is not loaded on " + st.cfg.backend->name()));
        return b;
      }
      auto start = std::chrono::steady_clock::now();
      b->started = start;
      runtime::stage_trace::mark("ex.start");
      auto& m = *i->second.model;
      try {
        if (b->kind == runtime::piece_kind::train) {
          for (auto& t : b->tasks)
            b->results.push_back(m.train(t));
        } else {
          std::vector<const runtime::task_tensors*> ptrs;
          for (auto& t : b->tasks)
            ptrs.push_back(&t);
          b->results = m.infer(ptrs);
        }
      } catch (const std::exception& e) {
        b->results.clear();
        for (size_t k = 0; k < b->tasks.size(); ++k)
          b->results.emplace_back(
            make_error(errc::procedure_failed, model_name(b->model, b->version) + " on "
                                                 + st.cfg.backend->name()
                                                 + ": the batch failed: " + e.what()));
      }
      while (b->results.size() < b->tasks.size())
        b->results.emplace_back(
          make_error(errc::procedure_failed, model_name(b->model, b->version)
                                               + ": the runner answered fewer results than tasks"));
      b->results.erase(b->results.begin() + static_cast<std::ptrdiff_t>(b->tasks.size()),
                       b->results.end());
      b->took = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - start);
      runtime::stage_trace::mark("ex.done");
      return b;
    },
    [=](exec_unload_atom, const std::string& model, uint32_t version) -> uint64_t {
      auto& st = self->state;
      auto i = st.models.find({model, version});
      if (i == st.models.end())
        return 0;
      auto freed = i->second.bytes;
      st.used -= freed;
      st.models.erase(i);
      return freed;
    },
  };
}

} // namespace

caf::actor spawn_executor(caf::local_actor* parent, executor_config cfg) {
  // COMB_EXECUTOR_DETACHED=0 (measurements only): on the scheduler's threads, like the
  // compute actor, so that a batch and its answer change no thread when the process has one
  // scheduler thread; a long batch then holds that thread (and the compute actor) meanwhile,
  // so pings go unanswered during a long training task (function_actor.hpp). perf_serving
  // MNIST split 1 invocation: commit -> executor 20 -> 5 us, its answer -> compute actor 30
  // -> 8 us; 1,000 invocations +3.1/+3.6/+13.5% against +11.9/+15.2/+6.3% (load 1.7-3.3).
  static const bool detached = [] {
    auto* e = std::getenv("COMB_EXECUTOR_DETACHED");
    return !(e && std::string_view{e} == "0");
  }();
  if (!detached)
    return parent->spawn<caf::linked>(executor, std::move(cfg));
  return parent->spawn<caf::detached + caf::linked>(executor, std::move(cfg));
}

} // namespace comb::actors
