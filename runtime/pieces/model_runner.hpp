// comb::runtime::model_runner: how the compute process runs a kind of model, and the
// process-wide registry of runners by kind (like the procedure registry, but for models):
// Comb registers the kernels' models ("mlp", "mobilenet_v2", "centernet"; see
// runtime/pieces/kernel_runners.hpp) and an app registers its own (apps/anomaly registers
// "anomaly-detector") without touching the compute actor. A model file's kind comes from its
// content, never from its name: a safetensors file names it in its header's __metadata__
// ("comb.kind"), a TFLite file is claimed by the runner that recognises its graph. The
// registry is filled before the actor system starts and then only read; thread-safe.
#pragma once

#include "kernels/backend.hpp"
#include "kernels/tflite_reader.hpp"
#include "runtime/pieces/piece.hpp"
#include "runtime/pieces/tensor_spec.hpp"

#include <caf/expected.hpp>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace comb::runtime {

/// One whole task's input tensors (its payload split by its specs). The bytes lie in
/// `tensors.bytes`, or, when the compute process did not copy them (a blob file it mapped),
/// in `input` with `tensors.bytes` empty: runners read them through views().
struct task_tensors {
  uint64_t task_id = 0;
  tensor_pack tensors;
  payload_buffer input;
  /// The tensors as views into the task's bytes (check_specs first).
  caf::expected<std::vector<tensor_view>> views() const {
    if (input.external())
      return split_payload(tensors.specs, input.data(), input.size());
    return tensors.views();
  }
};

/// A model version loaded on one backend, owned by that backend's executor actor (one thread
/// uses it at a time; not thread-safe).
class loaded_model {
public:
  virtual ~loaded_model() = default;
  /// Bytes it holds (weights, packed copies, caches) on its backend's device; the executor
  /// sums these against its memory bound.
  virtual size_t memory_bytes() const = 0;
  /// Runs one batch of whole inference tasks. Returns one entry per task, in order: its
  /// output tensors, or an error naming what is wrong with that task (errc::invalid_argument
  /// for a missing tensor, a wrong dtype or shape); the other tasks of the batch still run.
  virtual std::vector<caf::expected<tensor_pack>> infer(
    const std::vector<const task_tensors*>& batch) = 0;
  /// Runs one training task on a copy of this version's weights (the loaded version does not
  /// change): returns the trained model as a file of the same kind in a u8 tensor named
  /// "model", plus what the runner reports (e.g. f32 "loss"). Default: errc::unsupported.
  virtual caf::expected<tensor_pack> train(const task_tensors& task);
};

/// A kind of model the compute process can run.
class model_runner {
public:
  virtual ~model_runner() = default;
  /// "mlp", "mobilenet_v2", "centernet", "anomaly-detector", ...
  virtual std::string kind() const = 0;
  /// True when this runner runs the TFLite graph `m` (TFLite files carry no comb.kind).
  virtual bool claims_tflite(const kernels::tflite_model& m) const {
    (void) m;
    return false;
  }
  /// Checks a file of this kind well enough that load() will not fail on its content
  /// (format, every tensor there with its dtype and shape) and returns a one-line summary
  /// ("MLP 784-512-10, 407,050 parameters"). Errors: errc::bad_model naming the problem.
  virtual caf::expected<std::string> check(std::string_view bytes) const = 0;
  /// Loads a model onto `be` (kernels::cpu() or a CUDA backend). Errors: errc::bad_model
  /// naming the problem, errc::unsupported when `be` cannot run it.
  virtual caf::expected<std::unique_ptr<loaded_model>> load(std::string_view bytes,
                                                            kernels::backend& be) const = 0;
};

/// Registers a runner; a second runner of the same kind replaces the first. Call before the
/// actor system starts.
void register_runner(std::shared_ptr<model_runner> r);

/// The runner of `kind`, or nullptr. The kernels' runners are always registered.
std::shared_ptr<const model_runner> find_runner(std::string_view kind);

/// Every registered kind, sorted.
std::vector<std::string> runner_kinds();

/// What check_model found.
struct model_file_info {
  std::string kind;
  std::string summary;
};

/// The kind of a model file from its content. Errors: errc::bad_model for bytes that are
/// neither safetensors nor TFLite ("not a model file: ..."), a safetensors file without
/// comb.kind, a kind no runner serves, or a TFLite graph no runner claims (each naming the
/// registered kinds).
caf::expected<std::string> identify_model(std::string_view bytes);

/// True when `bytes` have the form of a safetensors or TFLite file (identify_model then names
/// the kind, or why no runner serves it); anything else is opaque bytes, which the compute
/// process keeps as a checksum model (files the model store holds with kind "raw").
bool looks_like_model_file(std::string_view bytes);

/// identify_model, then the runner's check(): what `comb model put` runs before storing.
caf::expected<model_file_info> check_model(std::string_view bytes);

} // namespace comb::runtime
