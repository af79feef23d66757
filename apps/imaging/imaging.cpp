// Registration of the imaging app's procedures (see imaging.hpp).
#include "apps/imaging/imaging.hpp"

#include "apps/imaging/image_store.hpp"
#include "apps/imaging/imaging_calls.hpp"

namespace comb::apps::imaging {

void register_imaging(runtime::procedure_registry& procs) {
  register_image_store(procs);
  register_calls(procs);
}

} // namespace comb::apps::imaging
