// comb::runtime::add_services: the runtime's own procedures and tables (the model store's
// procedures and tables, the outbox's tables), which every node has beside its apps' and
// which replay adds too, so that a replayed database has the tables of the original.
// Stateless; thread-safe.
#pragma once

#include "runtime/procedure_registry.hpp"

namespace comb::runtime {

/// Adds the runtime's services to `procs`. Procedures already registered under the same
/// names are kept (an app or a test may register them with other roles).
void add_services(procedure_registry& procs);

} // namespace comb::runtime
