// The server's scrypt thread pool (see kdf_pool.hpp).
#include "apps/nectar/kdf_pool.hpp"

#include "base/errc.hpp"

#include <openssl/crypto.h>

#include <algorithm>

namespace comb::nectar {

kdf_pool::kdf_pool(size_t threads, size_t max_waiting)
  : max_waiting_(std::max<size_t>(1, max_waiting)) {
  if (threads == 0)
    threads = std::max<size_t>(1, std::thread::hardware_concurrency() / 2);
  for (size_t i = 0; i < threads; ++i)
    threads_.emplace_back([this] { run(); });
}

kdf_pool::~kdf_pool() {
  {
    std::lock_guard<std::mutex> guard{mu_};
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_)
    t.join();
}

uint64_t kdf_pool::refused() const {
  std::lock_guard<std::mutex> guard{mu_};
  return refused_;
}

caf::expected<std::string> kdf_pool::hash(std::string_view password, std::string_view salt_hex,
                                          const kdf_params& params) {
  std::future<caf::expected<std::string>> result;
  {
    std::lock_guard<std::mutex> guard{mu_};
    if (stopping_ || queue_.size() >= max_waiting_) {
      ++refused_;
      return make_error(errc::overloaded, "too many logins at once ("
                                            + std::to_string(queue_.size())
                                            + " password hashes waiting): try again in a moment");
    }
    queue_.push_back(job{std::string{password}, std::string{salt_hex}, params, {}});
    result = queue_.back().done.get_future();
  }
  cv_.notify_one();
  return result.get();
}

void kdf_pool::run() {
  for (;;) {
    job j;
    {
      std::unique_lock<std::mutex> lock{mu_};
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty())
        return; // stopping, nothing left: every queued caller got its answer
      j = std::move(queue_.front());
      queue_.pop_front();
    }
    j.done.set_value(hash_password(j.password, j.salt, j.params));
    // The password leaves memory with the job.
    OPENSSL_cleanse(j.password.data(), j.password.size());
  }
}

} // namespace comb::nectar
