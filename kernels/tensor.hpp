// comb::kernels::tensor: an n-dimensional array with a shape, a dtype (f32, plus u8/i8 for
// quantized import and i32 for token ids and indices) and a device (cpu or cuda). A tensor
// owns its storage through a shared handle: copies of a tensor share the bytes (like a
// torch.Tensor), clone() makes a deep copy. CPU storage is 64-byte aligned and zeroed; CUDA
// storage comes from the device_memory registered for cuda (kernels/device_memory.hpp) and
// is unavailable otherwise. A tensor is not thread-safe for concurrent writers; reading one
// tensor from several threads is fine.
#pragma once

#include "base/errc.hpp"

#include <caf/expected.hpp>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

namespace comb::kernels {

/// Element type.
enum class dtype : uint8_t {
  /// 32-bit IEEE float.
  f32,
  /// Unsigned 8-bit integer (quantized activations/weights).
  u8,
  /// Signed 8-bit integer (quantized weights).
  i8,
  /// Signed 32-bit integer (token ids, labels, indices).
  i32,
};

/// Where the bytes live.
enum class device : uint8_t {
  cpu,
  cuda,
};

/// Bytes per element of `t`.
size_t size_of(dtype t);

/// "f32", "u8", "i8", "i32".
std::string to_string(dtype t);

/// "cpu", "cuda".
std::string to_string(device d);

/// Dimensions, outermost first (row-major: the last index varies fastest).
class shape {
public:
  shape() = default;
  shape(std::initializer_list<int64_t> dims) : dims_(dims) {}
  explicit shape(std::vector<int64_t> dims) : dims_(std::move(dims)) {}

  /// Number of dimensions.
  size_t rank() const { return dims_.size(); }

  /// Product of the dimensions (1 for rank 0).
  int64_t numel() const;

  int64_t operator[](size_t i) const { return dims_[i]; }

  const std::vector<int64_t>& dims() const { return dims_; }

  /// True when every dimension is >= 0 and the element count fits in int64.
  bool valid() const;

  friend bool operator==(const shape&, const shape&) = default;

private:
  std::vector<int64_t> dims_;
};

/// "[64, 256, 64]".
std::string to_string(const shape& s);

/// An owning, reference-counted n-dimensional array.
class tensor {
public:
  /// An empty tensor (rank 0, no storage).
  tensor() = default;

  /// Allocates a zeroed tensor. Errors: errc::invalid_argument for a negative dimension or
  /// overflowing size, errc::unsupported when `dev` has no memory registered (cuda without
  /// a device), errc::overloaded when the allocation fails.
  static caf::expected<tensor> make(const kernels::shape& s, kernels::dtype t = dtype::f32,
                                    kernels::device dev = device::cpu);

  /// Allocates a zeroed CPU tensor; aborts only on out-of-memory or a negative dimension,
  /// which are programming errors here (use make() for shapes from outside).
  static tensor zeros(const kernels::shape& s, kernels::dtype t = dtype::f32);

  /// A CPU f32 tensor holding `values` (numel must match, else errc::invalid_argument).
  static caf::expected<tensor> from(const kernels::shape& s, const std::vector<float>& values);

  /// A CPU i32 tensor holding `values` (numel must match, else errc::invalid_argument).
  static caf::expected<tensor> from(const kernels::shape& s, const std::vector<int32_t>& values);

  const kernels::shape& shape() const { return shape_; }
  int64_t dim(size_t i) const { return shape_[i]; }
  size_t rank() const { return shape_.rank(); }
  int64_t numel() const { return shape_.numel(); }
  kernels::dtype dtype() const { return dtype_; }
  kernels::device device() const { return device_; }
  size_t bytes() const { return static_cast<size_t>(numel()) * size_of(dtype_); }
  bool empty() const { return !storage_; }

  /// Raw bytes (device pointer for cuda tensors).
  void* raw() { return storage_ ? storage_->ptr : nullptr; }
  const void* raw() const { return storage_ ? storage_->ptr : nullptr; }

  /// Typed pointer; the caller must have checked dtype() (asserted in debug builds).
  template <class T>
  T* data() {
    return static_cast<T*>(raw());
  }
  template <class T>
  const T* data() const {
    return static_cast<const T*>(raw());
  }

  /// Reallocates (zeroed) unless the tensor already has this shape, dtype and device; then
  /// leaves the contents alone. Used by ops to size their outputs.
  caf::error ensure(const kernels::shape& s, kernels::dtype t = dtype::f32,
                    kernels::device dev = device::cpu);

  /// Same storage, new shape with the same element count (errc::invalid_argument otherwise).
  caf::expected<tensor> reshape(const kernels::shape& s) const;

  /// Deep copy on the same device.
  caf::expected<tensor> clone() const;

  /// Copy onto `dev` (a deep copy even when already there).
  caf::expected<tensor> to(kernels::device dev) const;

  /// Sets every byte to zero.
  caf::error zero();

  /// Number of tensors sharing this storage (0 when empty).
  long use_count() const { return storage_.use_count(); }

  /// Human-readable "f32[64, 256] on cpu".
  std::string describe() const;

private:
  struct storage {
    void* ptr = nullptr;
    size_t bytes = 0;
    kernels::device dev = device::cpu;
    ~storage();
  };

  kernels::shape shape_;
  kernels::dtype dtype_ = dtype::f32;
  kernels::device device_ = device::cpu;
  std::shared_ptr<storage> storage_;
};

} // namespace comb::kernels
