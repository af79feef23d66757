// comb::anomaly::anomaly_runner: the HTTP anomaly detector (detector.hpp) as a model runner
// of kind "anomaly-detector" (runtime/pieces/model_runner.hpp), so the compute process serves
// detector files from the model store. Inference takes a str tensor "requests" [n] (raw HTTP
// requests) and gives "score" f32 [n] (probability of "anomalous") and "parsed" u8 [n] (1 when
// the request parsed as HTTP, 0 when it was scored on its raw bytes), and "threshold" f32 [1]
// (the model file's saved, calibrated threshold). A request's score
// depends on that request alone, never on the other requests or tasks of its batch. On the
// CPU backend the TextCNN scores through its fused engine, on another backend (CUDA) op by op
// there. The runner is stateless and thread-safe; a loaded model belongs to one executor.
#pragma once

#include "runtime/pieces/model_runner.hpp"

#include <memory>
#include <string>
#include <string_view>

namespace comb::anomaly {

class anomaly_runner : public runtime::model_runner {
public:
  /// "anomaly-detector" (the comb.kind detector::serialize writes).
  static constexpr const char* kind_name = "anomaly-detector";

  std::string kind() const override { return kind_name; }

  /// detector::deserialize succeeds: "anomaly detector: TextCNN vocab V, embed E, kernels
  /// 2,3,4 x F filters, N tokens, P parameters". Errors: errc::bad_model naming the problem.
  caf::expected<std::string> check(std::string_view bytes) const override;

  /// Keeps a detector on `be`. Errors: errc::bad_model for a file check() refuses,
  /// errc::unsupported when `be` cannot run the TextCNN (naming the backend and why).
  caf::expected<std::unique_ptr<runtime::loaded_model>> load(std::string_view bytes,
                                                             kernels::backend& be) const override;
};

/// Registers anomaly_runner with the model-runner registry (apps::register_runners calls it).
void register_anomaly_runner();

} // namespace comb::anomaly
