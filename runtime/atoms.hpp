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
/// A call another node's gateway forwarded (it names that node and the partition it chose):
/// the receiver runs it or refuses it, and never forwards it again.
using forwarded_atom = caf::atom_constant<caf::atom("forwarded")>;

/// Ask a node's gateway for a nonce to prove the cluster's shared secret with ("" when the
/// node has no secret).
using hello_atom = caf::atom_constant<caf::atom("hello")>;
/// Prove the shared secret: HMAC-SHA256(secret, nonce || caller's node id), hex.
using auth_atom = caf::atom_constant<caf::atom("auth")>;

} // namespace comb
