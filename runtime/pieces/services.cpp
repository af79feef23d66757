#include "runtime/pieces/services.hpp"

#include "runtime/pieces/model_store.hpp"

namespace comb::runtime {

void add_services(procedure_registry& procs) {
  procedure_registry services;
  model_store::add_procedures(services);
  for (const auto& name : services.names())
    if (!procs.find(name)) {
      const auto* def = services.find(name);
      procs.add(name, def->fn, def->opts);
    }
  for (const auto& t : services.tables())
    procs.add_table(t.name, t.kind);
}

} // namespace comb::runtime
