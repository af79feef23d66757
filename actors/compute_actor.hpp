// comb::actors::compute_actor: the actor of the `comb compute` process that function actors
// reach over TCP (CAF middleman). It pools pieces by task (runtime::piece_pool), batches whole
// tasks per model (run at once, or wait for a batch size or a deadline), runs batches of a
// higher-priority purpose first (inference before training by default), holds loaded model
// versions, and replies with results that name the model version that produced them. Model
// files of a runner's kind (runtime/pieces/model_runner.hpp) are loaded by its executors (one
// per backend, actors/executor.hpp), which run each batch of one version as one runner call on
// their own threads; opaque files are kept as checksum models. A task for a version it does
// not hold answers errc::model_not_loaded. A load_model task is an activation (comb.model.
// activate sends it): its version becomes the active one and every other version is
// superseded, unloaded once its last task is done and unload_grace passed; a reload_model task
// (the dispatcher restoring a version for tasks pinned to it) loads without activating. Its state is private to the actor; talk to it only by messages
// (runtime/compute_types.hpp).
#pragma once

#include "kernels/backend.hpp"
#include "runtime/pieces/piece.hpp"
#include "runtime/pieces/piece_pool.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/expected.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace comb::actors {

/// When whole tasks of one model run.
struct batch_policy {
  /// Run once this many tasks wait (1 = run each task at once).
  uint32_t max_batch = 1;
  /// Run whatever waits once the oldest task waited this long.
  std::chrono::milliseconds max_delay{0};
};

/// Configuration of a compute actor.
struct compute_config {
  runtime::piece_pool_config pool;
  /// Policy of models without an entry in `batching`.
  batch_policy default_batching;
  /// Per-model policies, by model id.
  std::map<std::string, batch_policy> batching;
  /// Purposes in priority order: ready batches of an earlier kind run first.
  std::vector<runtime::piece_kind> priority{runtime::piece_kind::load_model,
                                            runtime::piece_kind::infer, runtime::piece_kind::train};
  /// "cpu" or "cuda"; reported in stats.
  std::string backend = "cpu";
  /// Why that backend (e.g. "CUDA not built: running on the CPU"); reported in stats.
  std::string backend_note;
  /// Backends to run models on, one executor each (empty: the CPU backend).
  std::vector<std::shared_ptr<kernels::backend>> backends;
  /// Bound on the bytes the loaded models of one executor hold (0: none). A version that does
  /// not fit is refused (errc::bad_model, "needs X MiB, Y MiB free of Z MiB") and the loaded
  /// versions keep serving.
  size_t model_memory_limit = 0;
  /// A superseded version is unloaded once its last task is done and it has not been used
  /// (loaded, or run) for this long: tasks pinned to it that were reloaded for need not race
  /// the unload.
  std::chrono::milliseconds unload_grace{2000};
  /// Listen on a local link (runtime/pieces/local_link.hpp) so that function actors on this
  /// host send whole shared-memory and blob-file tasks around CAF's middleman; off with
  /// COMB_LOCAL_LINK=off too.
  bool local_link = true;
};

/// Parses "MODEL=SIZE:DELAY_MS" (e.g. "checksum=8:5") into a model id and its policy.
caf::expected<std::pair<std::string, batch_policy>> parse_batch_policy(std::string_view s);

/// Parses "infer,train,load_model" into a priority order (kinds left out go last).
caf::expected<std::vector<runtime::piece_kind>> parse_priority(std::string_view s);

/// Spawns a compute actor and its executors. Handles (see runtime/compute_types.hpp):
/// piece_atom, activate_atom, models_atom, stats_atom.
caf::actor spawn_compute_actor(caf::actor_system& sys, compute_config cfg);

} // namespace comb::actors
