// comb::actors::executor: the actor that runs models on one kernels backend (the CPU, or one
// CUDA device) for a compute actor. It owns the model versions loaded on its backend
// (runtime::loaded_model, made by the registry's runners) and bounds the memory they hold;
// the compute actor pools and batches tasks and sends it whole batches of one model version.
// Spawned detached (its own thread), so that a long batch never blocks the compute actor's
// pooling; it handles one message at a time, so each loaded model is used by one thread.
// Talk to it only by messages: exec_load_atom, exec_run_atom, exec_unload_atom.
#pragma once

#include "kernels/backend.hpp"
#include "runtime/pieces/model_runner.hpp"
#include "runtime/pieces/piece.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/expected.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace comb::actors {

/// (exec_load_atom, std::string model, uint32_t version, std::string kind, exec_bytes file)
/// -> uint64_t memory_bytes: loads a model version with the runner of `kind`. Errors:
/// errc::bad_model naming the model: no runner, the runner refuses the file, or it does not
/// fit the memory bound ("needs X MiB, Y MiB free of Z MiB on cpu"); errc::unsupported when
/// neither its backend nor the CPU can run it. A model its (CUDA) backend cannot run is
/// loaded on the CPU instead, said on stderr.
using exec_load_atom = caf::atom_constant<caf::atom("exload")>;
/// (exec_run_atom, exec_batch_ptr) -> exec_batch_ptr: runs a batch, filling its results.
using exec_run_atom = caf::atom_constant<caf::atom("exrun")>;
/// (exec_unload_atom, std::string model, uint32_t version) -> uint64_t freed bytes.
using exec_unload_atom = caf::atom_constant<caf::atom("exunload")>;

/// A model file's bytes, shared between the compute actor and its executors.
using exec_bytes = std::shared_ptr<const std::vector<char>>;

/// A batch of whole tasks of one model version and one purpose (infer or train).
struct exec_batch {
  std::string model;
  uint32_t version = 0;
  runtime::piece_kind kind = runtime::piece_kind::infer;
  std::vector<runtime::task_tensors> tasks;
  /// Filled by the executor: one entry per task, in order.
  std::vector<caf::expected<runtime::tensor_pack>> results;
  /// When the runner started (the batch may have waited in the executor's mailbox), and how
  /// long it took.
  std::chrono::steady_clock::time_point started{};
  std::chrono::microseconds took{0};
};

using exec_batch_ptr = std::shared_ptr<exec_batch>;

/// Configuration of an executor.
struct executor_config {
  /// The backend it runs models on (kernels::backends(): the CPU's or a CUDA device's).
  std::shared_ptr<kernels::backend> backend;
  /// Bound on the bytes its loaded models hold (loaded_model::memory_bytes; 0: none).
  size_t model_memory_limit = 0;
};

/// Spawns a detached executor linked to `parent` (it ends with its compute actor).
caf::actor spawn_executor(caf::local_actor* parent, executor_config cfg);

/// "1.5 MiB".
std::string mib_text(uint64_t bytes);

} // namespace comb::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(comb::actors::exec_bytes)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(comb::actors::exec_batch_ptr)
