// comb::runtime model runners: the process-wide registry of runners by kind (a mutex-guarded
// map; the kernels' runners are registered on first use), loaded_model::train's default, and
// identify_model / check_model, which read a model file's kind from its content.
#include "runtime/pieces/model_runner.hpp"

#include "base/errc.hpp"
#include "runtime/pieces/kernel_runners.hpp"

#include <nlohmann/json.hpp>

#include <cstring>
#include <map>
#include <mutex>

namespace comb::runtime {

namespace {

struct registry {
  std::mutex mtx;
  std::map<std::string, std::shared_ptr<model_runner>, std::less<>> runners;
};

registry& reg() {
  static registry r;
  return r;
}

/// True on the thread that is registering the kernels' runners.
thread_local bool registering_kernels = false;

/// Registers the kernels' runners once, before any lookup or other registration, so that a
/// runner an app registers for one of their kinds replaces them (outside the registry's lock:
/// register_kernel_runners calls register_runner).
void ensure_kernel_runners() {
  static std::once_flag once;
  std::call_once(once, [] {
    registering_kernels = true;
    register_kernel_runners();
    registering_kernels = false;
  });
}

/// "anomaly-detector, centernet, mlp, mobilenet_v2" for error messages.
std::string kinds_list() {
  auto kinds = runner_kinds();
  std::string out;
  for (auto& k : kinds) {
    if (!out.empty())
      out += ", ";
    out += k;
  }
  return out.empty() ? std::string{"none"} : out;
}

/// The header length a safetensors file's first 8 bytes give (little-endian), when `bytes`
/// hold at least those 8 and a ninth that opens a JSON object; 0 otherwise. It may exceed the
/// file (a truncated file).
uint64_t safetensors_header_length(std::string_view bytes) {
  if (bytes.size() < 9 || bytes[8] != '{')
    return 0;
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i)
    n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  return n;
}

/// True when `bytes` look like safetensors: a header length that fits and a header that opens
/// a JSON object.
bool looks_like_safetensors(std::string_view bytes, uint64_t& header_len) {
  if (bytes.size() < 10)
    return false;
  auto n = safetensors_header_length(bytes);
  if (n < 2 || n > bytes.size() - 8)
    return false;
  header_len = n;
  return true;
}

bool looks_like_tflite(std::string_view bytes) {
  return bytes.size() >= 8 && bytes.substr(4, 4) == "TFL3";
}

caf::expected<std::string> safetensors_kind(std::string_view bytes, uint64_t header_len) {
  auto header = nlohmann::json::parse(bytes.substr(8, header_len), nullptr,
                                      /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object())
    return make_error(errc::bad_model, "not a model file: the safetensors header ("
                                         + std::to_string(header_len)
                                         + " bytes) is not a JSON object");
  auto meta = header.find("__metadata__");
  if (meta == header.end() || !meta->is_object())
    return make_error(errc::bad_model,
                      "safetensors file without __metadata__ comb.kind: Comb cannot tell "
                      "which runner serves it (registered kinds: "
                        + kinds_list() + ")");
  auto kind = meta->find("comb.kind");
  if (kind == meta->end() || !kind->is_string())
    return make_error(errc::bad_model,
                      "safetensors file without __metadata__ comb.kind: Comb cannot tell "
                      "which runner serves it (registered kinds: "
                        + kinds_list() + ")");
  auto k = kind->get<std::string>();
  if (!find_runner(k))
    return make_error(errc::bad_model,
                      "safetensors file of kind '" + k
                        + "', which no runner serves (registered kinds: " + kinds_list() + ")");
  return k;
}

caf::expected<std::string> tflite_kind(std::string_view bytes) {
  auto m = kernels::read_tflite(
    std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
  if (!m)
    return make_error(errc::bad_model, "TFLite file that does not read: " + describe(m.error()));
  std::vector<std::shared_ptr<model_runner>> runners;
  {
    std::lock_guard<std::mutex> guard{reg().mtx};
    for (auto& [k, r] : reg().runners)
      runners.push_back(r);
  }
  for (auto& r : runners)
    if (r->claims_tflite(*m))
      return r->kind();
  return make_error(errc::bad_model,
                    "TFLite graph (" + std::to_string(m->operators.size()) + " operators, "
                      + std::to_string(m->tensors.size())
                      + " tensors) that no runner claims (registered kinds: " + kinds_list() + ")");
}

} // namespace

caf::expected<tensor_pack> loaded_model::train(const task_tensors& /*task*/) {
  return make_error(errc::unsupported, "this model kind does not train");
}

void register_runner(std::shared_ptr<model_runner> r) {
  if (!r)
    return;
  if (!registering_kernels)
    ensure_kernel_runners();
  auto kind = r->kind();
  std::lock_guard<std::mutex> guard{reg().mtx};
  reg().runners[std::move(kind)] = std::move(r);
}

std::shared_ptr<const model_runner> find_runner(std::string_view kind) {
  ensure_kernel_runners();
  std::lock_guard<std::mutex> guard{reg().mtx};
  auto i = reg().runners.find(kind);
  if (i == reg().runners.end())
    return nullptr;
  return i->second;
}

std::vector<std::string> runner_kinds() {
  ensure_kernel_runners();
  std::lock_guard<std::mutex> guard{reg().mtx};
  std::vector<std::string> out;
  for (auto& [k, r] : reg().runners)
    out.push_back(k);
  return out; // std::map keeps them sorted
}

bool looks_like_model_file(std::string_view bytes) {
  uint64_t header_len = 0;
  return looks_like_safetensors(bytes, header_len) || looks_like_tflite(bytes);
}

caf::expected<std::string> identify_model(std::string_view bytes) {
  ensure_kernel_runners();
  uint64_t header_len = 0;
  if (looks_like_safetensors(bytes, header_len))
    return safetensors_kind(bytes, header_len);
  if (looks_like_tflite(bytes))
    return tflite_kind(bytes);
  // A safetensors file cut short: its first 8 bytes give a header length larger than the file
  // and the header starts as one does. Say so rather than "not a model file".
  if (auto n = safetensors_header_length(bytes); n >= 2 && n > bytes.size() - 8)
    return make_error(errc::bad_model,
                      "truncated safetensors file: its header claims " + std::to_string(n)
                        + " bytes of JSON, the file has " + std::to_string(bytes.size())
                        + " bytes in all");
  return make_error(errc::bad_model,
                    "not a model file (neither safetensors nor TFLite): "
                      + std::to_string(bytes.size())
                      + " bytes; a safetensors file starts with its header length and a JSON "
                        "header, a TFLite file has \"TFL3\" at bytes 4..8");
}

caf::expected<model_file_info> check_model(std::string_view bytes) {
  auto kind = identify_model(bytes);
  if (!kind)
    return kind.error();
  auto r = find_runner(*kind);
  if (!r)
    return make_error(errc::bad_model, "no runner serves kind '" + *kind
                                         + "' (registered kinds: " + kinds_list() + ")");
  auto summary = r->check(bytes);
  if (!summary)
    return summary.error();
  return model_file_info{*kind, std::move(*summary)};
}

} // namespace comb::runtime
