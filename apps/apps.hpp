// comb::apps::register_all: every app's stored procedures, for `comb node` and `comb demo`.
#pragma once

#include "runtime/procedure_registry.hpp"

namespace comb::apps {

/// Registers the procedures and tables of every app built into this binary.
void register_all(runtime::procedure_registry& procs);

/// Registers the model runners of every app built into this binary (runtime/pieces/
/// model_runner.hpp), for the compute process and for the checks of `comb model put`. Call
/// once, before an actor system starts.
void register_runners();

} // namespace comb::apps
