#include "runtime/router.hpp"

#include "base/errc.hpp"

#include <algorithm>

namespace comb::runtime {

std::string describe_partitions(std::vector<uint32_t> parts) {
  std::sort(parts.begin(), parts.end());
  std::string out;
  for (size_t i = 0; i < parts.size();) {
    size_t j = i;
    while (j + 1 < parts.size() && parts[j + 1] == parts[j] + 1)
      ++j;
    out += (out.empty() ? "" : ",") + std::to_string(parts[i]);
    if (j > i)
      out += "-" + std::to_string(parts[j]);
    i = j + 1;
  }
  return out.empty() ? "none" : out;
}

router::router(std::shared_ptr<const procedure_registry> procs,
               std::vector<actors::state_actor> partitions)
  : procs_(std::move(procs)), partitions_(std::move(partitions)),
    owners_(partitions_.size(), std::string{}) {
}

router::router(std::shared_ptr<const procedure_registry> procs,
               std::vector<actors::state_actor> local, std::vector<std::string> owners,
               std::string self)
  : procs_(std::move(procs)), partitions_(std::move(local)), owners_(std::move(owners)),
    self_(std::move(self)) {
}

std::vector<uint32_t> router::local_partitions() const {
  std::vector<uint32_t> out;
  for (uint32_t p = 0; p < partitions_.size(); ++p)
    if (partitions_[p])
      out.push_back(p);
  return out;
}

bool router::all_local() const {
  return std::all_of(partitions_.begin(), partitions_.end(),
                     [](const actors::state_actor& a) { return static_cast<bool>(a); });
}

caf::expected<router::target> router::locate(const invocation& inv) const {
  const auto* def = procs_->find(inv.procedure);
  if (!def)
    return make_error(errc::unknown_procedure, "no stored procedure named '" + inv.procedure + "'");
  if (partitions_.empty())
    return make_error(errc::unavailable, inv.procedure + ": this node runs no partitions");
  target t;
  if (def->opts.partition_by.empty()) {
    // Not partitioned: it runs here, over this node's rows (or on partition 0's node when
    // this node runs no partition, e.g. a compute node).
    auto mine = std::find_if(partitions_.begin(), partitions_.end(),
                             [](const actors::state_actor& a) { return static_cast<bool>(a); });
    t.partition = mine == partitions_.end() ? 0 : static_cast<uint32_t>(mine - partitions_.begin());
  } else {
    auto p = procs_->partition_of(*def, inv.args, static_cast<uint32_t>(partitions_.size()));
    if (!p)
      return std::move(p.error());
    t.partition = *p;
  }
  t.local = partitions_[t.partition];
  t.owner = owners_[t.partition];
  return t;
}

caf::expected<actors::state_actor> router::route(const invocation& inv) const {
  auto t = locate(inv);
  if (!t)
    return std::move(t.error());
  if (!t->local)
    return make_error(errc::unavailable, inv.procedure + ": partition "
                                           + std::to_string(t->partition) + " is run by node "
                                           + t->owner + ", not by this node (" + self_ + ")");
  return t->local;
}

} // namespace comb::runtime
