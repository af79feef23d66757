// comb::wall_clock_ns: the wall-clock time (ns since the Unix epoch) that provenance
// records carry, cheap enough to read twice per transaction. On some VMs clock_gettime is a
// system call (no vDSO for the clock source), about 1 µs; this reads the CPU's time-stamp
// counter instead and converts it with a rate and offset that each thread re-anchors to the
// system clock every 100 ms, so it stays within microseconds of system_clock. Where the TSC
// is not invariant (no constant_tsc/nonstop_tsc) it is system_clock::now(). Thread-safe.
#pragma once

#include <cstdint>

namespace comb {

int64_t wall_clock_ns();

} // namespace comb
