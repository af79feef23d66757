#include "runtime/router.hpp"

#include "base/errc.hpp"

namespace comb::runtime {

caf::expected<actors::state_actor> router::route(const invocation& inv) const {
  const auto* def = procs_->find(inv.procedure);
  if (!def)
    return make_error(errc::unknown_procedure, "no stored procedure named '" + inv.procedure + "'");
  auto p = procs_->partition_of(*def, inv.args, static_cast<uint32_t>(partitions_.size()));
  if (!p)
    return std::move(p.error());
  return partitions_[*p];
}

} // namespace comb::runtime
