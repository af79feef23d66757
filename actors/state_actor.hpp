// comb::actors::state_actor: the actor that owns one partition's execution lane. It runs each
// invocation to completion as one RocksDB transaction, one at a time in arrival order
// (VoltDB's model), commits on success and rolls back on error or exception, retries on lock
// conflicts, and reports every invocation to the node's provenance hook. In sync mode the
// reply goes through the group committer, so it is sent only once the commit is durable.
//
// Batches: call_atom with a vector of invocations (the outbox dispatcher sends its result
// procedures so) runs them in order in one transaction with one commit, each its own
// invocation (its own execution id and call context, seeing the writes of those before it),
// and replies with one invocation_outcome each. If one is refused, fails or throws, or the
// commit fails, nothing of the batch is kept and each runs alone, as a lone call would, so
// every outcome is what it would have been alone. With a provenance hook (one record per
// commit) or partitions on other nodes, each runs alone in its own transaction. In sync mode
// one wait for the group committer answers the whole batch.
//
// Cross-partition procedures: all partitions of a node share one TransactionDB. A procedure
// runs on the partition chosen by its `partition_by` argument and may read and write rows of
// any partition within its single RocksDB transaction; pessimistic row locks (and RocksDB's
// deadlock detection) serialize it against procedures running on other partitions' actors, so
// it is still one atomic, isolated transaction. A deadlock or lock timeout aborts and retries.
// In a cluster, rows of partitioned tables of partitions on other nodes are not in this
// database: a procedure that reads or writes one is refused (errc::unsupported, naming the
// row, its partition and node); Comb has no two-phase commit yet.
#pragma once

#include "runtime/interfaces.hpp"
#include "runtime/procedure_registry.hpp"
#include "runtime/provenance/provenance_hook.hpp"

#include <memory>
#include <string>
#include <vector>

namespace comb::storage {
class database;
} // namespace comb::storage

namespace comb::actors {

/// What a state actor needs; shared by all partitions of a node.
struct state_env {
  storage::database* db = nullptr;
  std::shared_ptr<const runtime::procedure_registry> procs;
  /// Valid in sync mode; replies go through it.
  committer_actor committer;
  std::shared_ptr<runtime::provenance_hook> hook;
  uint32_t partitions = 1;
  std::string node_name = "node";
  /// In a cluster whose partitions are not all on this node: the node running each
  /// partition. A transaction touching a row of a partitioned table that another node holds
  /// is refused (Comb runs no transaction across nodes). Null: every partition is local.
  std::shared_ptr<const std::vector<std::string>> owners;
};

struct state_actor_state {
  uint64_t executed = 0;
  uint64_t retries = 0;
  static inline const char* name = "state_actor";
};

/// The behavior of the state actor of partition `partition`.
state_actor::behavior_type state_actor_impl(state_actor::stateful_pointer<state_actor_state> self,
                                            state_env env, uint32_t partition);

/// Maximum attempts of one invocation that keeps hitting lock conflicts.
constexpr int max_conflict_retries = 50;

} // namespace comb::actors
