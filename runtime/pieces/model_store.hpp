// comb::runtime::model_store: models kept in the database as 1 MiB chunks, each version with
// a name, a version number and a SHA-256 digest, as stored procedures (so every change is a
// transaction and is recorded for provenance). Activating a version records an outbox call
// that loads its chunks into the compute process as load_model pieces; the version becomes
// active when the compute process has loaded it (result procedure comb.model.loaded), so
// calls pinned to the active version never reach a compute process without it, and calls in
// flight keep the version they were pinned to. Registered once per node; stateless.
#pragma once

#include "runtime/procedure_registry.hpp"

#include <caf/expected.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace comb::storage {
class transaction;
} // namespace comb::storage

namespace comb::runtime {

class model_store {
public:
  static constexpr const char* models_table = "comb_models";
  static constexpr const char* chunks_table = "comb_model_chunks";
  static constexpr const char* active_table = "comb_model_active";
  /// Size of a chunk (the last chunk of a model may be shorter).
  static constexpr size_t chunk_size = size_t{1} << 20;

  /// Registers the tables (and the outbox's) and the procedures, each for `roles`:
  ///   comb.model.put_chunk {name, version, chunk_no, data (base64)}
  ///   comb.model.put       {name, version, chunk_count, digest} -> checks and records it
  ///   comb.model.list      {} -> [{name, version, digest, bytes, chunks, active, loaded}]
  ///   comb.model.get_chunk {name, version, chunk_no} -> {data (base64), chunk_count}
  ///   comb.model.activate  {name, version} -> {call}: loads it into the compute process
  ///   comb.model.loaded    (result procedure of that call) -> makes the version active
  static void add_procedures(procedure_registry& procs, std::vector<std::string> roles = {"admin"});

  /// The active version of `name` (for a primary procedure to pin its call to), or
  /// errc::bad_model when the model has no active version.
  static caf::expected<uint32_t> active_version(storage::transaction& txn, std::string_view name);
};

} // namespace comb::runtime
