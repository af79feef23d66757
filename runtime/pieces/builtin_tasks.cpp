#include "runtime/pieces/builtin_tasks.hpp"

#include "base/errc.hpp"

#include <cstring>

namespace comb::runtime {

bool is_builtin_model(std::string_view model_id) {
  return model_id == "echo" || model_id == "checksum" || model_id == "matmul";
}

namespace {

constexpr uint64_t mul1 = 0x9E3779B97F4A7C15ull;
constexpr uint64_t mul2 = 0xC2B2AE3D27D4EB4Full;

inline uint64_t mix(uint64_t h, uint64_t w) {
  h ^= w * mul2;
  h = (h << 31) | (h >> 33);
  return h * mul1;
}

inline uint64_t load64(const void* p) {
  uint64_t w;
  std::memcpy(&w, p, 8);
  return w;
}

void put64(std::vector<char>& out, uint64_t x) {
  for (int i = 0; i < 8; ++i)
    out.push_back(static_cast<char>((x >> (8 * i)) & 0xff));
}

uint64_t get64(const char* p) {
  uint64_t x = 0;
  for (int i = 0; i < 8; ++i)
    x |= static_cast<uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return x;
}

} // namespace

checksum64::checksum64(uint64_t seed) : h_(seed ^ 0x27D4EB2F165667C5ull) {
  // Nothing else to do.
}

void checksum64::update(const char* data, size_t size) {
  length_ += size;
  while (tail_size_ > 0 && tail_size_ < 8 && size > 0) {
    tail_[tail_size_++] = static_cast<unsigned char>(*data++);
    --size;
  }
  if (tail_size_ == 8) {
    h_ = mix(h_, load64(tail_));
    tail_size_ = 0;
  }
  // Four independent lanes would be faster; one lane keeps the definition obvious and still
  // runs at several GB/s.
  while (size >= 8) {
    h_ = mix(h_, load64(data));
    data += 8;
    size -= 8;
  }
  while (size > 0) {
    tail_[tail_size_++] = static_cast<unsigned char>(*data++);
    --size;
  }
}

uint64_t checksum64::digest() const {
  auto h = h_;
  uint64_t last = 0;
  std::memcpy(&last, tail_, tail_size_);
  h = mix(h, last ^ (static_cast<uint64_t>(tail_size_) << 56));
  h ^= length_;
  h ^= h >> 33;
  h *= mul2;
  h ^= h >> 29;
  return h;
}

std::vector<char> checksum_output(const std::vector<payload_buffer>& chunks, uint64_t seed) {
  checksum64 c{seed};
  for (const auto& x : chunks)
    c.update(x.data(), x.size());
  std::vector<char> out;
  put64(out, c.digest());
  put64(out, c.length());
  return out;
}

caf::expected<std::pair<uint64_t, uint64_t>> parse_checksum_output(const std::vector<char>& out) {
  if (out.size() != 16)
    return make_error(errc::corrupt_data,
                      "checksum output has " + std::to_string(out.size()) + " bytes, expected 16");
  return std::pair<uint64_t, uint64_t>{get64(out.data()), get64(out.data() + 8)};
}

std::vector<char> make_matmul_payload(uint32_t m, uint32_t k, uint32_t n,
                                      const std::vector<float>& a, const std::vector<float>& b) {
  std::vector<char> out(12 + (a.size() + b.size()) * sizeof(float));
  uint32_t dims[3] = {m, k, n};
  std::memcpy(out.data(), dims, 12);
  std::memcpy(out.data() + 12, a.data(), a.size() * sizeof(float));
  std::memcpy(out.data() + 12 + a.size() * sizeof(float), b.data(), b.size() * sizeof(float));
  return out;
}

caf::expected<std::vector<char>> matmul_output(const std::vector<char>& payload) {
  if (payload.size() < 12)
    return make_error(errc::invalid_argument, "matmul payload of " + std::to_string(payload.size())
                                                + " bytes is shorter than its 12-byte header");
  uint32_t dims[3];
  std::memcpy(dims, payload.data(), 12);
  uint64_t m = dims[0], k = dims[1], n = dims[2];
  auto want = 12 + (m * k + k * n) * sizeof(float);
  if (m * k > (uint64_t{1} << 32) || k * n > (uint64_t{1} << 32) || payload.size() != want)
    return make_error(errc::invalid_argument,
                      "matmul payload of " + std::to_string(payload.size()) + " bytes does not "
                        + "match its header m=" + std::to_string(m) + " k=" + std::to_string(k)
                        + " n=" + std::to_string(n) + " (expected " + std::to_string(want) + ")");
  std::vector<float> a(m * k), b(k * n), c(m * n, 0.0f);
  std::memcpy(a.data(), payload.data() + 12, a.size() * sizeof(float));
  std::memcpy(b.data(), payload.data() + 12 + a.size() * sizeof(float), b.size() * sizeof(float));
  for (uint64_t i = 0; i < m; ++i)
    for (uint64_t p = 0; p < k; ++p) {
      auto aip = a[i * k + p];
      for (uint64_t j = 0; j < n; ++j)
        c[i * n + j] += aip * b[p * n + j];
    }
  std::vector<char> out(c.size() * sizeof(float));
  std::memcpy(out.data(), c.data(), out.size());
  return out;
}

caf::expected<std::vector<char>> run_builtin(std::string_view model_id,
                                             const std::vector<payload_buffer>& chunks) {
  if (model_id == "checksum")
    return checksum_output(chunks);
  if (model_id == "echo" || model_id == "matmul") {
    std::vector<char> flat;
    if (chunks.size() == 1) {
      flat.assign(chunks[0].begin(), chunks[0].end());
    } else {
      size_t total = 0;
      for (const auto& c : chunks)
        total += c.size();
      flat.reserve(total);
      for (const auto& c : chunks)
        flat.insert(flat.end(), c.begin(), c.end());
    }
    if (model_id == "echo")
      return flat;
    return matmul_output(flat);
  }
  return make_error(errc::bad_model, "unknown built-in model '" + std::string{model_id} + "'");
}

} // namespace comb::runtime
