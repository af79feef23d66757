#include "apps/apps.hpp"

#include "apps/bank/bank.hpp"
#ifdef COMB_HAVE_APP_ANOMALY
#  include "apps/anomaly/anomaly_app.hpp"
#  include "apps/anomaly/anomaly_runner.hpp"
#endif
#include "apps/imaging/imaging.hpp"

namespace comb::apps {

void register_all(runtime::procedure_registry& procs) {
  bank::register_bank(procs);
#ifdef COMB_HAVE_APP_ANOMALY
  anomaly::register_anomaly(procs);
#endif
  imaging::register_imaging(procs);
}

void register_runners() {
#ifdef COMB_HAVE_APP_ANOMALY
  anomaly::register_anomaly_runner();
#endif
}

} // namespace comb::apps
