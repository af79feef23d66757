// comb::runtime::router: finds where an invocation runs: the partition its procedure's
// partitioning argument hashes to (over the cluster's partition count, so every node picks the
// same one), and whether this node runs that partition (its state actor) or another node does
// (by name). It checks what can be checked before sending: that the procedure exists. A
// procedure without a partitioning argument runs on the node that receives the call (its
// lowest partition), over that node's rows. A small copyable value shared by the gateway and
// in-process clients; thread-safe.
#pragma once

#include "runtime/interfaces.hpp"
#include "runtime/procedure_registry.hpp"

#include <caf/expected.hpp>

#include <memory>
#include <string>
#include <vector>

namespace comb::runtime {

/// "0-3,6,8-9": a partition list, sorted, ranges collapsed, for messages.
std::string describe_partitions(std::vector<uint32_t> parts);

class router {
public:
  router() = default;
  /// A one-node cluster: `partitions[p]` runs partition p.
  router(std::shared_ptr<const procedure_registry> procs,
         std::vector<actors::state_actor> partitions);
  /// A node of a cluster: `local[p]` runs partition p when this node runs it (null otherwise);
  /// `owners[p]` names the node that runs p; `self` is this node's name.
  router(std::shared_ptr<const procedure_registry> procs, std::vector<actors::state_actor> local,
         std::vector<std::string> owners, std::string self);

  /// Where an invocation runs.
  struct target {
    uint32_t partition = 0;
    /// The state actor when this node runs the partition; null when `owner` does.
    actors::state_actor local;
    std::string owner;
  };

  /// Where `inv` runs, or unknown_procedure / invalid_argument.
  caf::expected<target> locate(const invocation& inv) const;

  /// The local state actor that must run `inv`, or unknown_procedure / invalid_argument, or
  /// unavailable when another node runs its partition (the gateway forwards such calls).
  caf::expected<actors::state_actor> route(const invocation& inv) const;

  const procedure_registry& procs() const { return *procs_; }
  /// One entry per partition of the cluster; null where another node runs it.
  const std::vector<actors::state_actor>& partitions() const { return partitions_; }
  /// The node that runs partition p.
  const std::string& owner(uint32_t p) const { return owners_[p]; }
  const std::string& self_name() const { return self_; }
  /// The partitions this node runs.
  std::vector<uint32_t> local_partitions() const;
  /// True when this node runs every partition.
  bool all_local() const;

private:
  std::shared_ptr<const procedure_registry> procs_;
  std::vector<actors::state_actor> partitions_;
  std::vector<std::string> owners_;
  std::string self_;
};

} // namespace comb::runtime
