// comb::runtime::router: finds the state actor that runs an invocation (by the procedure's
// partitioning argument) and checks what can be checked before sending: that the procedure
// exists. A small copyable value shared by the gateway and in-process clients; thread-safe.
#pragma once

#include "runtime/interfaces.hpp"
#include "runtime/procedure_registry.hpp"

#include <caf/expected.hpp>

#include <memory>
#include <vector>

namespace comb::runtime {

class router {
public:
  router() = default;
  router(std::shared_ptr<const procedure_registry> procs,
         std::vector<actors::state_actor> partitions)
    : procs_(std::move(procs)), partitions_(std::move(partitions)) {}

  /// The state actor that must run `inv`, or unknown_procedure / invalid_argument.
  caf::expected<actors::state_actor> route(const invocation& inv) const;

  const procedure_registry& procs() const { return *procs_; }
  const std::vector<actors::state_actor>& partitions() const { return partitions_; }

private:
  std::shared_ptr<const procedure_registry> procs_;
  std::vector<actors::state_actor> partitions_;
};

} // namespace comb::runtime
