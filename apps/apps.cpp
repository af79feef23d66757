#include "apps/apps.hpp"

#include "apps/bank/bank.hpp"
#ifdef COMB_HAVE_APP_ANOMALY
#  include "apps/anomaly/anomaly_app.hpp"
#  include "apps/anomaly/anomaly_runner.hpp"
#endif
#include "apps/imaging/imaging.hpp"
#ifdef COMB_HAVE_APP_CONSOLE
#  include "apps/console/console_app.hpp"
#endif
#ifdef COMB_HAVE_APP_NECTAR
#  include "apps/nectar/httplog.hpp"
#  include "apps/nectar/nectar_app.hpp"
#endif

namespace comb::apps {

void register_all(runtime::procedure_registry& procs) {
  bank::register_bank(procs);
#ifdef COMB_HAVE_APP_ANOMALY
  anomaly::register_anomaly(procs);
#endif
  imaging::register_imaging(procs);
#ifdef COMB_HAVE_APP_CONSOLE
  console::register_console(procs);
#endif
#ifdef COMB_HAVE_APP_NECTAR
  nectar::register_nectar(procs);
  nectar::register_httplog(procs);
#endif
}

void register_runners() {
#ifdef COMB_HAVE_APP_ANOMALY
  anomaly::register_anomaly_runner();
#endif
}

} // namespace comb::apps
