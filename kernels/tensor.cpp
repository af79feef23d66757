// comb::kernels::tensor: allocation (64-byte aligned CPU storage or registered device
// memory), copies between devices and shape helpers.
#include "kernels/tensor.hpp"

#include "kernels/device_memory.hpp"

#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>

namespace comb::kernels {

namespace {

std::array<std::atomic<device_memory*>, 2> registry{};

constexpr size_t alignment = 64;

} // namespace

void register_device_memory(device dev, device_memory* m) {
  if (dev == device::cpu)
    return;
  registry[static_cast<size_t>(dev)].store(m);
}

device_memory* find_device_memory(device dev) {
  if (dev == device::cpu)
    return nullptr;
  return registry[static_cast<size_t>(dev)].load();
}

size_t size_of(dtype t) {
  switch (t) {
  case dtype::f32:
  case dtype::i32:
    return 4;
  case dtype::u8:
  case dtype::i8:
    return 1;
  }
  return 1;
}

std::string to_string(dtype t) {
  switch (t) {
  case dtype::f32:
    return "f32";
  case dtype::u8:
    return "u8";
  case dtype::i8:
    return "i8";
  case dtype::i32:
    return "i32";
  }
  return "?";
}

std::string to_string(device d) {
  return d == device::cpu ? "cpu" : "cuda";
}

int64_t shape::numel() const {
  int64_t n = 1;
  for (auto d : dims_)
    n *= d;
  return n;
}

bool shape::valid() const {
  int64_t n = 1;
  for (auto d : dims_) {
    if (d < 0)
      return false;
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / 16 / d)
      return false;
    n *= d;
  }
  return true;
}

std::string to_string(const shape& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.rank(); ++i)
    r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

tensor::storage::~storage() {
  if (!ptr)
    return;
  if (dev == device::cpu) {
    std::free(ptr);
  } else if (auto* m = find_device_memory(dev)) {
    m->deallocate(ptr);
  }
}

caf::expected<tensor> tensor::make(const kernels::shape& s, kernels::dtype t, kernels::device dev) {
  if (!s.valid())
    return make_error(errc::invalid_argument,
                      "tensor shape " + to_string(s) + " has a negative or overflowing dimension");
  tensor r;
  r.shape_ = s;
  r.dtype_ = t;
  r.device_ = dev;
  auto st = std::make_shared<storage>();
  st->dev = dev;
  size_t bytes = static_cast<size_t>(s.numel()) * size_of(t);
  st->bytes = bytes;
  if (dev == device::cpu) {
    size_t rounded = (bytes + alignment - 1) / alignment * alignment;
    if (rounded == 0)
      rounded = alignment;
    st->ptr = std::aligned_alloc(alignment, rounded);
    if (!st->ptr)
      return make_error(errc::overloaded, "cannot allocate " + std::to_string(bytes)
                                            + " bytes for tensor " + to_string(s));
    std::memset(st->ptr, 0, rounded);
  } else {
    auto* m = find_device_memory(dev);
    if (!m)
      return make_error(errc::unsupported,
                        "no " + to_string(dev) + " device is available for tensor " + to_string(s));
    auto p = m->allocate(bytes == 0 ? 1 : bytes);
    if (!p)
      return p.error();
    st->ptr = *p;
  }
  r.storage_ = std::move(st);
  return r;
}

tensor tensor::zeros(const kernels::shape& s, kernels::dtype t) {
  auto r = make(s, t, device::cpu);
  if (!r)
    throw std::bad_alloc{};
  return std::move(*r);
}

namespace {

template <class T>
caf::expected<tensor> from_values(const shape& s, const std::vector<T>& values, dtype t) {
  if (!s.valid() || s.numel() != static_cast<int64_t>(values.size()))
    return make_error(errc::invalid_argument, "tensor of shape " + to_string(s) + " cannot hold "
                                                + std::to_string(values.size()) + " values");
  auto r = tensor::make(s, t);
  if (!r)
    return r;
  if (!values.empty())
    std::memcpy(r->raw(), values.data(), values.size() * sizeof(T));
  return r;
}

} // namespace

caf::expected<tensor> tensor::from(const kernels::shape& s, const std::vector<float>& values) {
  return from_values(s, values, dtype::f32);
}

caf::expected<tensor> tensor::from(const kernels::shape& s, const std::vector<int32_t>& values) {
  return from_values(s, values, dtype::i32);
}

caf::error tensor::ensure(const kernels::shape& s, kernels::dtype t, kernels::device dev) {
  if (storage_ && shape_ == s && dtype_ == t && device_ == dev)
    return {};
  // Reuse the storage when it is ours alone and big enough.
  if (storage_ && storage_.use_count() == 1 && device_ == dev && s.valid()
      && static_cast<size_t>(s.numel()) * size_of(t) <= storage_->bytes) {
    shape_ = s;
    dtype_ = t;
    return zero();
  }
  auto r = make(s, t, dev);
  if (!r)
    return r.error();
  *this = std::move(*r);
  return {};
}

caf::expected<tensor> tensor::reshape(const kernels::shape& s) const {
  if (!s.valid() || s.numel() != numel())
    return make_error(errc::invalid_argument,
                      "cannot reshape " + describe() + " to " + to_string(s));
  tensor r = *this;
  r.shape_ = s;
  return r;
}

caf::expected<tensor> tensor::clone() const {
  return to(device_);
}

caf::expected<tensor> tensor::to(kernels::device dev) const {
  auto r = make(shape_, dtype_, dev);
  if (!r || bytes() == 0)
    return r;
  if (dev == device::cpu && device_ == device::cpu) {
    std::memcpy(r->raw(), raw(), bytes());
    return r;
  }
  auto* m = find_device_memory(dev == device::cpu ? device_ : dev);
  if (!m)
    return make_error(errc::unsupported,
                      "no device memory to copy " + describe() + " to " + to_string(dev));
  if (auto err = m->copy(r->raw(), dev, raw(), device_, bytes()))
    return err;
  return r;
}

caf::error tensor::zero() {
  if (!storage_ || bytes() == 0)
    return {};
  if (device_ == device::cpu) {
    std::memset(raw(), 0, bytes());
    return {};
  }
  auto* m = find_device_memory(device_);
  if (!m)
    return make_error(errc::unsupported, "no device memory to zero " + describe());
  return m->zero(raw(), bytes());
}

std::string tensor::describe() const {
  return to_string(dtype_) + to_string(shape_) + " on " + to_string(device_);
}

} // namespace comb::kernels
