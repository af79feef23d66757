// comb::runtime compute messages: the atoms and message types exchanged between function
// actors, the compute actor (in the `comb compute` process, over CAF's middleman) and their
// clients, and add_compute_types() which registers them with an actor system config. Every
// process that talks to a compute actor calls add_compute_types(). Plain values; thread-safe.
#pragma once

#include "runtime/pieces/piece.hpp"
#include "runtime/pieces/blob_file_pieces.hpp"
#include "runtime/pieces/shm_pieces.hpp"

#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/meta/type_name.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace comb::runtime {

/// (piece_atom, std::vector<char> encoded_piece) -> task_result: one Cap'n Proto piece.
using piece_atom = caf::atom_constant<caf::atom("piece")>;
/// (shm_piece_atom, std::vector<char> header, shm_ref) -> task_result: a whole task whose
/// bytes lie in a shared-memory segment of the sender (runtime/pieces/shm_pieces.hpp);
/// `header` is its encoded piece 0 of 1 without payload.
using shm_piece_atom = caf::atom_constant<caf::atom("shmpiece")>;
/// (blob_piece_atom, std::vector<char> header, blob_file_ref) -> task_result: a whole task
/// whose bytes are a pinned blob in a segment file of the sender's blob store, on this host
/// (runtime/pieces/blob_file_pieces.hpp); `header` is its encoded piece 0 of 1 without payload.
using blob_piece_atom = caf::atom_constant<caf::atom("blobpiece")>;
/// (ping_atom) -> uint64_t tasks completed: is the compute process there (answered by its
/// compute actor while executors run).
using ping_atom = caf::atom_constant<caf::atom("ping")>;
/// (activate_atom, std::string model, uint32_t version) -> uint32_t previous_version.
using activate_atom = caf::atom_constant<caf::atom("activate")>;
/// (models_atom) -> std::string: the loaded models as JSON.
using models_atom = caf::atom_constant<caf::atom("models")>;
/// (stats_atom) -> std::string: pool and batching counters as JSON.
using stats_atom = caf::atom_constant<caf::atom("stats")>;
/// (run_atom, task_request) -> task_result: asks a function actor to send a task.
using run_atom = caf::atom_constant<caf::atom("run")>;

/// The reply to a piece, and the result of a task.
struct task_result {
  uint64_t task_id = 0;
  /// False: the piece was accepted and the task awaits more pieces (other fields empty).
  bool complete = false;
  /// runtime::piece_kind as a number.
  uint8_t kind = 0;
  /// Provenance: the model, the exact version and its digest that produced `output`.
  std::string model;
  uint32_t model_version = 0;
  std::string model_digest;
  /// How many tasks ran in the same batch.
  uint32_t batch_size = 0;
  /// Payload bytes of the task.
  uint64_t input_bytes = 0;
  /// Where the task's time went in the compute process: from its last piece to its batch's
  /// start (waiting for a batch or an executor), and its batch's runner call (0 for built-in
  /// tasks and loads).
  uint64_t queued_us = 0;
  uint64_t run_us = 0;
  /// When the compute process had the whole task and when it replied, in ns of its steady
  /// clock (CLOCK_MONOTONIC, shared by the processes of one host: a sender on the same host
  /// can split a task's way there and back; 0 for built-in tasks and loads).
  uint64_t whole_ns = 0;
  uint64_t replied_ns = 0;
  /// The output tensors, whose bytes are `output` one after another (empty: `output` is
  /// opaque bytes, as for built-in tasks and load_model).
  std::vector<tensor_spec> outputs;
  std::vector<char> output;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, task_result& x) {
  return f(caf::meta::type_name("comb.task_result"), x.task_id, x.complete, x.kind, x.model,
           x.model_version, x.model_digest, x.batch_size, x.input_bytes, x.queued_us, x.run_us,
           x.whole_ns, x.replied_ns, x.outputs, x.output);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, shm_ref& x) {
  return f(caf::meta::type_name("comb.shm_ref"), x.segment, x.offset, x.size, x.ticket);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, blob_file_ref& x) {
  return f(caf::meta::type_name("comb.blob_file_ref"), x.path, x.offset, x.size, x.xxh3);
}

/// A task's bytes not read yet (in this process only; never serialized): the function actor
/// reads them when it sends the task, straight into a shared-memory region when it uses one,
/// instead of receiving a buffer it would copy there. `read` fills `size` bytes at `dest`; its
/// errors are final for the task (the bytes are damaged or gone).
struct payload_source {
  uint64_t size = 0;
  std::function<caf::error(char* dest)> read;
  /// Where the bytes lie when they are a pinned blob (the pin lives in `read`): a compute
  /// process on this host may read them from there itself (blob_file_pieces.hpp).
  std::optional<blob_file_ref> file;
};

/// What a function actor sends: pieces [first_piece, first_piece + n) of a task of
/// piece_count pieces, whose bytes are `bytes` (piece i holds bytes [i*piece_size, ...)).
/// A task sent by one actor has first_piece 0 and all of its bytes.
struct task_request {
  uint64_t task_id = 0;
  uint8_t kind = 0;
  std::string model;
  uint32_t model_version = 0;
  /// 0: computed from bytes.size() and piece_size (whole task from this actor).
  uint32_t piece_count = 0;
  uint32_t first_piece = 0;
  uint32_t piece_size = static_cast<uint32_t>(max_piece_payload);
  /// The task's input tensors, describing all of the task's bytes (empty: opaque bytes). The
  /// function actor puts them on the task's piece 0.
  std::vector<tensor_spec> inputs;
  std::vector<char> bytes;
  /// Instead of `bytes` (which is then empty), in this process only: where to read them.
  /// Not part of the message's serialized form.
  std::shared_ptr<const payload_source> source;
  uint64_t payload_size() const { return source ? source->size : bytes.size(); }
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, task_request& x) {
  return f(caf::meta::type_name("comb.task_request"), x.task_id, x.kind, x.model, x.model_version,
           x.piece_count, x.first_piece, x.piece_size, x.inputs, x.bytes);
}

/// Registers task_result, task_request and the tensor specs they carry with `cfg` (call
/// before starting the system).
inline void add_compute_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<tensor_spec>("comb.tensor_spec");
  cfg.add_message_type<std::vector<tensor_spec>>("comb.tensor_specs");
  cfg.add_message_type<task_result>("comb.task_result");
  cfg.add_message_type<task_request>("comb.task_request");
  cfg.add_message_type<shm_ref>("comb.shm_ref");
  cfg.add_message_type<blob_file_ref>("comb.blob_file_ref");
}

} // namespace comb::runtime
