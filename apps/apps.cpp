#include "apps/apps.hpp"

#include "apps/bank/bank.hpp"
#include "runtime/model_store.hpp"
#include "runtime/outbox.hpp"

namespace comb::apps {

void register_all(runtime::procedure_registry& procs) {
  bank::register_bank(procs);
  runtime::model_store::add_procedures(procs);
  runtime::outbox::add_tables(procs);
}

} // namespace comb::apps
