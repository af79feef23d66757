#include "apps/apps.hpp"

#include "apps/bank/bank.hpp"

namespace comb::apps {

void register_all(runtime::procedure_registry& procs) {
  bank::register_bank(procs);
}

void register_runners() {
}

} // namespace comb::apps
