// The CAF atoms Comb's actors use in their message interfaces. Header only.
#pragma once

#include <caf/atom.hpp>

namespace comb {

/// Invoke a stored procedure.
using call_atom = caf::atom_constant<caf::atom("call")>;
/// Reply once the commit is durable (group commit).
using sync_atom = caf::atom_constant<caf::atom("sync")>;
/// Internal: run one fsync for all pending commits.
using flush_atom = caf::atom_constant<caf::atom("flush")>;
/// Ask a node about itself (procedures, partitions, durability).
using info_atom = caf::atom_constant<caf::atom("info")>;

} // namespace comb
