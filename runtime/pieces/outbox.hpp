// comb::runtime::outbox: the transactional outbox through which a stored procedure invokes a
// function actor asynchronously. enqueue() records the call (and its payload) in the caller's
// own transaction, so the call exists exactly when the caller's writes committed; the outbox
// dispatcher (actors/outbox_dispatcher.hpp) sends committed calls that have no result yet,
// again after a restart; and result procedures registered with add_result_procedure() apply
// each call's result exactly once, keyed by the call (which carries the caller's execution
// id): a second delivery of the same result is answered "duplicate" and changes nothing.
// Stateless functions over a transaction or database; thread-safe as those are.
#pragma once

#include "runtime/pieces/compute_types.hpp"
#include "runtime/pieces/piece.hpp"
#include "runtime/procedure_registry.hpp"

#include <caf/expected.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace comb::storage {
class database;
class transaction;
} // namespace comb::storage

namespace comb::runtime {

/// A call to a function actor, as recorded in the outbox.
struct outbox_call {
  piece_kind kind = piece_kind::infer;
  std::string model;
  /// 0: the version active in the compute process when the task starts.
  uint32_t model_version = 0;
  /// The procedure that receives the result: args {"call", "result" | "error", "context"}.
  std::string result_procedure;
  /// The role the result procedure runs as.
  std::string role = "admin";
  /// Passed through to the result procedure untouched.
  nlohmann::json context = nlohmann::json::object();
  /// The payload's typed tensors (empty: opaque bytes); checked against the payload by
  /// enqueue() and sent on the task's piece 0. The result procedure gets the output tensors
  /// as result "outputs" beside the "output" bytes (runtime::result_tensors reads them).
  std::vector<tensor_spec> inputs;
};

/// A committed call that has no result applied yet.
struct pending_call {
  std::string key;
  uint64_t task_id = 0;
  uint64_t execution_id = 0;
  outbox_call call;
};

/// A call as its transaction committed it, with its payload: what the outbox's listener
/// hears, so that the dispatcher can send the call without reading it back. Payloads copied
/// into calls not yet handled are bounded (outbox::hint_bytes); past the bound a call comes
/// without its payload (has_payload() false) and the dispatcher reads it from the outbox.
struct committed_call {
  pending_call call;
  std::vector<char> payload;
  /// Gives the payload's bytes back to the bound (even once the payload was moved out); set
  /// exactly when the payload was copied.
  std::shared_ptr<std::atomic<size_t>> held;
  size_t held_bytes = 0;
  /// Instead of `payload`: where to read it (enqueue_rows of one row of a blobs table: the
  /// blob pinned as the transaction read it, read by whoever sends the call). Holds no bytes.
  std::shared_ptr<const payload_source> source;
  bool has_payload() const { return held != nullptr; }
  ~committed_call() {
    if (held)
      *held -= held_bytes;
  }
};

class outbox {
public:
  /// Outbox tables (internal: their names start with "__"). A payload up to
  /// storage::options::blob_inline_max rides in its call's row; larger ones are blobs in
  /// payload_table.
  static constexpr const char* calls_table = "__outbox";
  static constexpr const char* payload_table = "__outbox_payload";
  static constexpr const char* done_table = "__outbox_done";

  /// Declares the outbox tables with `procs` (call before the node starts).
  static void add_tables(procedure_registry& procs);

  /// Records a call with `payload` in `txn`, the calling procedure's transaction. Returns the
  /// call's key ("<execution id hex>.<n>"). Errors: invalid_argument (no result procedure,
  /// or inputs that check_specs refuses against the payload, naming the tensor), storage
  /// errors.
  static caf::expected<std::string> enqueue(call_context& ctx, storage::transaction& txn,
                                            const outbox_call& call, std::string_view payload);

  /// enqueue() for a payload the caller gives away: the dispatcher's copy of it (see
  /// set_listener) is `payload` itself, not a copy.
  static caf::expected<std::string> enqueue(call_context& ctx, storage::transaction& txn,
                                            const outbox_call& call, std::vector<char>&& payload);

  /// Records a call whose payload is the values of rows `keys` of `table` (a rows or a blobs
  /// table), one after another, as `txn` reads them now: the call stores which rows and their
  /// bytes' size and XXH3 hash, not a copy of the bytes, so the payload costs no write and no
  /// sync of its own. For inputs that stay as they are until the call's result is applied
  /// (stored images, logged requests): the dispatcher sends the bytes read here, and when it
  /// has to read them again (after a restart) it reads the rows and checks size and hash; rows
  /// changed or deleted in between make the call fail with errc::corrupt_data naming them
  /// (its result procedure gets that error). Errors as enqueue(), and errc::not_found naming a
  /// missing table or row.
  static caf::expected<std::string> enqueue_rows(call_context& ctx, storage::transaction& txn,
                                                 const outbox_call& call, const std::string& table,
                                                 const std::vector<std::string>& keys);

  /// Registers `fn` as a result procedure that runs at most once per call: before `fn`, the
  /// wrapper checks in the same transaction whether the call's result was applied; if so it
  /// returns {"applied": false, "duplicate": true} and `fn` does not run; otherwise it runs
  /// `fn`, removes the call from the outbox and records it as done, all in one transaction.
  /// Returns {"applied": true, "result": <fn's result>}.
  static void add_result_procedure(procedure_registry& procs, std::string name, procedure_fn fn,
                                   procedure_options opts = {});

  /// Committed calls without a result, in key order, starting after `after` (empty: from the
  /// start), at most `limit`, leaving out (without decoding them) keys for which `skip` says
  /// true. Reads the database directly (the dispatcher is infrastructure).
  static caf::expected<std::vector<pending_call>> pending(
    storage::database& db, std::string_view after, size_t limit,
    const std::function<bool(std::string_view key)>& skip = {});

  /// Calls `fn` with every call enqueued in `db` from now on (and a copy of its payload),
  /// right after the enqueuing transaction commits (on the committing thread), so a
  /// dispatcher need not wait for its next poll nor read the call back. One listener per
  /// database; an empty `fn` removes it.
  using listener = std::function<void(std::shared_ptr<committed_call>)>;
  /// Payload bytes copied into calls the listener has not let go of, at most.
  static constexpr size_t hint_bytes = size_t{64} << 20;
  static void set_listener(storage::database& db, listener fn);

  /// The committed call `key` if it has no result yet, nullopt otherwise; with `payload`,
  /// also reads the call's payload into it (in the same snapshot).
  static caf::expected<std::optional<pending_call>> find(storage::database& db,
                                                         std::string_view key,
                                                         std::vector<char>* payload = nullptr);

  /// Reads the payload of a pending call into `out`; not_found once the call is done.
  static caf::error payload(storage::database& db, std::string_view key, std::vector<char>& out);

  /// True when the result of `key` was applied.
  static caf::expected<bool> done(storage::database& db, std::string_view key);
};

} // namespace comb::runtime
