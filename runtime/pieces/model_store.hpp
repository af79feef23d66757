// comb::runtime::model_store: models kept in the database as 1 MiB chunks, each version with
// a name, a version number and a SHA-256 digest, as stored procedures (so every change is a
// transaction and is recorded for provenance). Activating a version records an outbox call
// that loads its chunks into the compute process as load_model pieces; the version becomes
// active when the compute process has loaded it (result procedure comb.model.loaded), so
// calls pinned to the active version never reach a compute process without it, and calls in
// flight keep the version they were pinned to. Every stored version was checked by its
// model runner (runtime::check_model: its kind and a summary are in its row) unless it was
// put as raw bytes. Registered once per node; stateless.
#pragma once

#include "runtime/procedure_registry.hpp"

#include <caf/expected.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace comb::storage {
class database;
class transaction;
} // namespace comb::storage

namespace comb::runtime {

class model_store {
public:
  static constexpr const char* models_table = "comb_models";
  /// A blobs table: a chunk's bytes are written once, to the blob store, and its row (and
  /// so its WAL entry and its provenance record) holds a reference.
  static constexpr const char* chunks_table = "comb_model_chunk_blobs";
  /// Where folders written before chunks moved to the blob store keep them (rows of bytes):
  /// read when a chunk is not in chunks_table, never written.
  static constexpr const char* old_chunks_table = "comb_model_chunks";
  static constexpr const char* active_table = "comb_model_active";
  /// Size of a chunk (the last chunk of a model may be shorter).
  static constexpr size_t chunk_size = size_t{1} << 20;

  /// Registers the tables (and the outbox's) and the procedures, each for `roles`:
  ///   comb.model.put_chunk {name, version, chunk_no, data (base64)}
  ///   comb.model.put       {name, version, chunk_count, digest, kind?} -> checks and
  ///                        records it: the digest, then check_model on the whole file (a file
  ///                        of unknown kind or a corrupt one is refused with the check's
  ///                        error and nothing is recorded). kind "raw": raw bytes, not checked
  ///                        (the compute process loads them only as the built-in tasks'
  ///                        checksum model); any other kind must be the one the file has.
  ///   comb.model.list      {} -> [{name, version, digest, bytes, chunks, kind, summary,
  ///                        active, loaded, load_error?, ...}]
  ///   comb.model.get_chunk {name, version, chunk_no} -> {data (base64), chunk_count}
  ///   comb.model.activate  {name, version} -> {call}: loads it into the compute process
  ///                        (enqueue_activation)
  ///   comb.model.loaded    (result procedure of that call) -> makes the version active, or
  ///                        records "load_error" in its row (the active version stays)
  ///   comb.model.active    {name} -> {name, version, row}: the active version and its row
  ///                        (bad_model when none), read by nodes that mirror the model
  /// and, not partitioned (they run on the node that receives them), a cluster's mirrors: a
  /// node that runs a call for a model whose partition another node holds keeps a copy of
  /// the owner's active version (actors::gateway fetches it), so that its procedures read
  /// the version, kind and digest and its dispatcher can reload the bytes as for its own:
  ///   comb.model.mirror_chunk {name, version, chunk_no, data (base64)} -> a chunk of it
  ///   comb.model.mirror    {name, version, owner, row} -> when every chunk is here, checks
  ///                        them against the row's digest (and check_model), stores the row
  ///                        with "mirror_of": owner and makes the version active here:
  ///                        {mirrored: true}; else {mirrored: false, missing: [chunk_no]}
  ///                        (chunks that do not match the digest are dropped and named
  ///                        missing). A version stored as this node's own is refused
  ///                        (already_exists), a mirror with another digest too (corrupt_data).
  static void add_procedures(procedure_registry& procs, std::vector<std::string> roles = {"admin"});

  /// The active version of `name` (for a primary procedure to pin its call to), or
  /// errc::bad_model when the model has no active version.
  static caf::expected<uint32_t> active_version(storage::transaction& txn, std::string_view name);

  /// The highest stored version of `name`, 0 when there is none.
  static caf::expected<uint32_t> latest_version(storage::transaction& txn, std::string_view name);

  /// Stores the whole file `bytes` as version `version` of `name` inside a procedure's
  /// transaction: its chunks, digest, check_model's kind and summary, and `extra`'s fields
  /// (e.g. what trained it) in its row, which is returned. Errors: invalid_argument (name or
  /// version), already_exists (the version is stored), bad_model (check_model's error: the
  /// file's kind is unknown or it is corrupt; nothing is stored).
  static caf::expected<nlohmann::json> store_version(call_context& ctx, storage::transaction& txn,
                                                     const std::string& name, uint32_t version,
                                                     std::string_view bytes,
                                                     nlohmann::json extra = {});

  /// What comb.model.activate does, inside a procedure's transaction: records the outbox call
  /// that loads version `version` of `name` into the compute process (comb.model.loaded makes
  /// it active) and clears the version's earlier load_error. Returns the call's key. Errors:
  /// not_found (the version is not stored), corrupt_data (a chunk is missing).
  static caf::expected<std::string> enqueue_activation(call_context& ctx, storage::transaction& txn,
                                                       const std::string& name, uint32_t version);

  /// Reads the bytes and digest of version `version` of `name` (0: the active version)
  /// directly from `db`, checking the digest (infrastructure: the outbox dispatcher reloads a
  /// model the compute process lost). Errors: bad_model (no active version), not_found (no
  /// such version), corrupt_data (a chunk is missing or the bytes do not match the digest).
  static caf::expected<std::pair<std::string, std::string>> read_version(storage::database& db,
                                                                         std::string_view name,
                                                                         uint32_t version);
};

} // namespace comb::runtime
