// comb::runtime::piece_pool: pools the pieces of compute tasks by task id until each task is
// whole (Figure 2 of the paper). It validates every piece (duplicates, piece numbers out of
// range, piece counts that disagree, oversized payloads, kind/model that disagree, tensor
// specs on a piece other than 0, specs that do not describe the whole payload), frees
// tasks that stay incomplete past their timeout, and bounds the memory held by incomplete
// tasks: a new task is admitted only when its worst-case size (piece_count x max piece size)
// fits, otherwise add() answers errc::overloaded (back-pressure: retry later). Admitted tasks
// can always complete, so the bound never deadlocks. A plain data structure owned by one
// compute actor; not thread-safe.
#pragma once

#include "runtime/pieces/piece.hpp"

#include <caf/expected.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace comb::runtime {

/// Limits of a piece_pool.
struct piece_pool_config {
  /// Bound on the bytes reserved by incomplete tasks (worst case piece_count x max_piece).
  size_t memory_limit = size_t{512} << 20;
  /// A task still incomplete this long after its first piece is dropped.
  std::chrono::milliseconds task_timeout{30000};
  /// Largest payload of one piece.
  size_t max_piece = max_piece_payload;
  /// How many finished (completed or expired) task ids are remembered, so that late or
  /// duplicate pieces get a clear error instead of starting a new task.
  size_t remembered_tasks = 65536;
};

/// A whole task: its pieces' payloads in piece order.
struct pooled_task {
  uint64_t task_id = 0;
  piece_kind kind = piece_kind::infer;
  std::string model_id;
  uint32_t model_version = 0;
  /// The input tensors piece 0 carried (empty: opaque bytes); checked against total_bytes.
  std::vector<tensor_spec> inputs;
  /// Payload of piece i is chunks[i].
  std::vector<payload_buffer> chunks;
  size_t total_bytes = 0;

  /// The payload as one contiguous buffer (a copy).
  std::vector<char> flatten() const;
  /// The payload as one contiguous buffer, taking the chunks: a task of one piece gives its
  /// buffer without a copy. Leaves the chunks empty.
  std::vector<char> take_payload();
  /// The payload as one buffer, taking the chunks: a task of one piece gives its chunk as it
  /// is (a window into a message, or external bytes such as a mapped blob file: not copied),
  /// more pieces are flattened. Leaves the chunks empty.
  payload_buffer take_payload_buffer();
};

/// Pools pieces by task. Not thread-safe.
class piece_pool {
public:
  using clock = std::chrono::steady_clock;

  explicit piece_pool(piece_pool_config cfg = {});

  /// Adds one piece. Returns the whole task when `p` completed it, std::nullopt when the
  /// task awaits more pieces, or an error naming the task and piece: errc::protocol_error
  /// (duplicate piece, piece_no >= piece_count, piece_count of 0 or disagreeing with earlier
  /// pieces, kind/model disagreeing, task already complete, tensor specs on a piece other
  /// than 0), errc::invalid_argument (the task is whole but its specs do not describe its
  /// payload: check_specs' error, naming the task; the task is dropped), errc::too_large (payload over
  /// max_piece, or a task that could never fit the memory bound), errc::overloaded (memory
  /// bound reached; nothing was kept, retry later), errc::timeout (the task expired).
  caf::expected<std::optional<pooled_task>> add(piece p, clock::time_point now = clock::now());

  /// Adds a whole task that came in one message rather than in pieces (shared-memory
  /// pieces, runtime/pieces/shm_pieces.hpp): `p` must be piece 0 of 1. Its payload may exceed
  /// max_piece but not memory_limit (errc::too_large); otherwise as add().
  caf::expected<std::optional<pooled_task>> add_whole(piece p);

  /// Drops the tasks whose timeout expired at `now`, frees their memory, and returns their ids.
  std::vector<uint64_t> expire(clock::time_point now = clock::now());

  /// Earliest time at which an incomplete task expires, if any.
  std::optional<clock::time_point> next_expiry() const;

  /// True when `task_id` is incomplete in the pool.
  bool contains(uint64_t task_id) const { return tasks_.count(task_id) > 0; }

  /// Model version recorded for an incomplete task (from its first piece).
  std::optional<uint32_t> model_version_of(uint64_t task_id) const;

  /// Bytes reserved by incomplete tasks (what the memory bound limits).
  size_t reserved_bytes() const { return reserved_; }

  /// Payload bytes actually held by incomplete tasks.
  size_t held_bytes() const { return held_; }

  /// Number of incomplete tasks.
  size_t incomplete_tasks() const { return tasks_.size(); }

  const piece_pool_config& config() const { return cfg_; }

private:
  struct task_state {
    piece_kind kind;
    std::string model_id;
    uint32_t model_version = 0;
    std::vector<tensor_spec> inputs;
    uint32_t piece_count = 0;
    uint32_t received = 0;
    size_t reserved = 0;
    size_t bytes = 0;
    clock::time_point deadline;
    std::vector<payload_buffer> chunks;
    std::vector<bool> have;
  };

  enum class finished : uint8_t { completed, expired };

  void remember(uint64_t task_id, finished how);
  /// add() after the payload's size check.
  caf::expected<std::optional<pooled_task>> add_checked(piece p, clock::time_point now);
  /// Checks a whole task's specs against its payload.
  static caf::expected<std::optional<pooled_task>> checked(pooled_task t);

  piece_pool_config cfg_;
  std::unordered_map<uint64_t, task_state> tasks_;
  std::unordered_map<uint64_t, finished> finished_;
  std::deque<uint64_t> finished_order_;
  size_t reserved_ = 0;
  size_t held_ = 0;
};

} // namespace comb::runtime
