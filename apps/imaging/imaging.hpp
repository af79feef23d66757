// comb::apps::imaging: images in tables, classified, detected and trained on through the
// outbox and the compute process. register_imaging() adds the app's tables and procedures
// (image_store.hpp, imaging_calls.hpp) to a registry; filled before a node starts.
#pragma once

#include "runtime/procedure_registry.hpp"

namespace comb::apps::imaging {

/// Registers imaging.put_images, imaging.dataset, imaging.labels, imaging.results,
/// imaging.classify/classified, imaging.detect/detected and imaging.train/trained.
void register_imaging(runtime::procedure_registry& procs);

} // namespace comb::apps::imaging
