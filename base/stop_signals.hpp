// comb::stop_signal_set(): the signals that stop a serving command (SIGINT, SIGTERM). main()
// blocks them before anything else runs; serving commands take them with sigwait. Header only.
#pragma once

#include <csignal>

namespace comb {

/// SIGINT and SIGTERM.
inline sigset_t stop_signal_set() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

} // namespace comb
