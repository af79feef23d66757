// comb::runtime transfer tuning: process-wide settings that make large pieces cheap to move
// through CAF 0.17's middleman. CAF leaves Nagle's algorithm on and offers no option for it
// (the tail of a large BASP message then waits for the peer's delayed ACK), and glibc serves
// every buffer over 128 KiB with a fresh mmap, so each 1 MiB piece costs hundreds of page
// faults per copy. Called by `comb compute` at start and after publishing (accepted sockets
// inherit options from the listening socket) and by function actors (at spawn and after each
// connect). Thread-safe.
#pragma once

#include <cstddef>

namespace comb::runtime {

/// Sets TCP_NODELAY and 4 MiB socket buffers on every TCP socket of this process; returns
/// how many sockets it changed.
size_t set_tcp_nodelay_on_all_sockets();

/// Keeps buffers up to 64 MiB on the heap (no mmap/munmap per buffer) and stops glibc from
/// returning freed heap memory below 1 GiB to the kernel. Idempotent.
void keep_large_buffers_in_heap();

} // namespace comb::runtime
