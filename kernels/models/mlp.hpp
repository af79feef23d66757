// comb::kernels::mlp: a multi-layer perceptron (default 784-512-10): dense layers with
// bias and ReLU between them, softmax cross-entropy on the last, Adam. Forward, backward
// and a trainer step through one kernels::backend; weights as safetensors (fc<i>.weight
// [in, out], fc<i>.bias). Owned by one trainer or predictor; not thread-safe.
#pragma once

#include "kernels/backend.hpp"
#include "kernels/op.hpp"
#include "kernels/tensor.hpp"

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace comb::kernels {

struct mlp_config {
  /// Layer widths, input first: {784, 512, 10} is one hidden layer of 512.
  std::vector<int64_t> sizes = {784, 512, 10};
  uint64_t seed = 1;
  adam_params adam;
};

class mlp {
public:
  mlp(mlp&&) noexcept;
  mlp& operator=(mlp&&) noexcept;
  ~mlp();

  /// Errors: errc::invalid_argument for fewer than 2 sizes or a size outside 1..65536.
  static caf::expected<mlp> create(const mlp_config& cfg, std::shared_ptr<backend> be = nullptr);

  /// Class probabilities [batch, classes] for x f32 [batch, sizes[0]].
  caf::expected<tensor> forward(const tensor& x);

  /// Forward, cross-entropy against labels i32 [batch], backward; fills gradients().
  caf::expected<float> loss_and_gradients(const tensor& x, const tensor& labels);

  /// loss_and_gradients then one Adam step; returns the loss before the step.
  caf::expected<float> train_step(const tensor& x, const tensor& labels);

  std::vector<std::pair<std::string, tensor*>> parameters();
  std::vector<std::pair<std::string, tensor*>> gradients();

  caf::error save(const std::string& path, const std::map<std::string, std::string>& metadata = {});
  /// Loads weights written by save() into this model (same sizes). Errors as
  /// assign_parameters / load_safetensors.
  caf::error load_weights(const std::string& path);

  const mlp_config& config() const;
  double forward_flops(int64_t batch) const;
  /// FLOPs of one train_step's products: the forward, every layer's weight gradient, and the
  /// input gradient of every layer but the first (nothing needs the gradient of x).
  double train_flops(int64_t batch) const;

private:
  mlp();
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace comb::kernels
