// comb::nectar::kdf_pool: a few threads that run the server's scrypt hashes (register, log
// in), so that at most `threads` hashes run at once. scrypt is the costliest thing a page of
// Nectar does (tens of ms and 16 MiB at log2 N 14): run on the HTTP handler threads, a burst
// of logins took every core and every page waited behind them, and each hash on a fresh
// thread paid its 16 MiB of page faults again. Here logins queue for the pool, other pages
// keep the other cores, and a pool thread reuses its allocator arena. Past `max_waiting`
// queued hashes a login is refused at once (errc::overloaded: the server answers 503 with
// Retry-After) rather than tying up a handler thread. Thread-safe.
#pragma once

#include "apps/nectar/credentials.hpp"

#include <caf/expected.hpp>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace comb::nectar {

class kdf_pool {
public:
  /// `threads` 0: half the cores, at least one.
  explicit kdf_pool(size_t threads = 0, size_t max_waiting = 64);
  ~kdf_pool();
  kdf_pool(const kdf_pool&) = delete;
  kdf_pool& operator=(const kdf_pool&) = delete;

  /// hash_password on a pool thread; blocks the caller until it is done. Errors: overloaded
  /// when `max_waiting` hashes already wait, and those of hash_password.
  caf::expected<std::string> hash(std::string_view password, std::string_view salt_hex,
                                  const kdf_params& params);

  size_t threads() const { return threads_.size(); }
  /// Hashes refused because the queue was full (monotonic).
  uint64_t refused() const;

private:
  struct job {
    std::string password, salt;
    kdf_params params;
    std::promise<caf::expected<std::string>> done;
  };
  void run();

  size_t max_waiting_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<job> queue_;
  bool stopping_ = false;
  uint64_t refused_ = 0;
  std::vector<std::thread> threads_;
};

} // namespace comb::nectar
