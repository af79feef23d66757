#include "base/xxh3.hpp"

#define XXH_STATIC_LINKING_ONLY // XXH3_state_t's layout, to hold it by value
#include <xxhash.h>
#include <xxh_x86dispatch.h>

namespace comb {

uint64_t xxh3_64(const void* data, size_t size) {
  return XXH3_64bits_dispatch(data, size);
}

struct xxh3_stream::state {
  XXH3_state_t xxh;
};

xxh3_stream::xxh3_stream() : state_(std::make_unique<state>()) {
  XXH3_64bits_reset(&state_->xxh);
}

xxh3_stream::~xxh3_stream() = default;
xxh3_stream::xxh3_stream(xxh3_stream&&) noexcept = default;
xxh3_stream& xxh3_stream::operator=(xxh3_stream&&) noexcept = default;

void xxh3_stream::update(const void* data, size_t size) {
  XXH3_64bits_update_dispatch(&state_->xxh, data, size);
}

uint64_t xxh3_stream::digest() const {
  return XXH3_64bits_digest(&state_->xxh);
}

} // namespace comb
