// comb::runtime large values in provenance (see large_values.hpp).
#include "runtime/provenance/large_values.hpp"

#include "base/base64.hpp"
#include "base/errc.hpp"
#include "runtime/pieces/model_digest.hpp"
#include "storage/transaction.hpp"

namespace comb::runtime {

namespace {

using json = nlohmann::json;

// Replaces the long strings under `j`; returns whether any was.
bool elide(json& j, const stored_check& stored) {
  bool changed = false;
  if (j.is_object() || j.is_array()) {
    for (auto& v : j)
      changed = elide(v, stored) || changed;
    return changed;
  }
  if (j.is_binary()) { // MessagePack rows hold bytes as binary
    const auto& b = j.get_binary();
    if (b.size() < elide_min_string)
      return false;
    auto digest = model_digest(reinterpret_cast<const char*>(b.data()), b.size());
    j = json{{elided_key, {{"sha256", digest}, {"size", b.size()}, {"binary", true}}}};
    return true;
  }
  if (!j.is_string())
    return false;
  const auto& s = j.get_ref<const std::string&>();
  if (s.size() < elide_min_string)
    return false;
  // Base64 that encodes back to the same text is digested as its bytes (the model store's
  // chunk digests), and restored by encoding them again.
  auto bytes = base64_decode(s);
  bool b64 = bytes && base64_encode(*bytes) == s;
  const std::string& raw = b64 ? *bytes : s;
  if (stored && !stored(raw))
    return false; // replay could not find them: logged as they are
  j = json{
    {elided_key,
     {{"sha256", model_digest(raw.data(), raw.size())}, {"size", raw.size()}, {"base64", b64}}}};
  return true;
}

bool is_marker(const json& j) {
  return j.is_object() && j.size() == 1 && j.contains(elided_key) && j[elided_key].is_object();
}

caf::error restore(json& j, const elided_source& source, const std::string& path) {
  if (is_marker(j)) {
    const auto& m = j[elided_key];
    auto sha = m.value("sha256", std::string{});
    auto size = m.value("size", uint64_t{0});
    auto what = "argument " + (path.empty() ? std::string{"(whole)"} : path)
                + " was logged as its digest sha256 " + sha + " (" + std::to_string(size)
                + " bytes)";
    if (!source)
      return make_error(errc::not_found,
                        what
                          + "; its bytes are not in the log: give the source data folder "
                            "(--data) to take them from its model store");
    auto bytes = source(sha, size);
    if (!bytes)
      return make_error(errc::not_found, what + ": " + describe(bytes.error()));
    if (bytes->size() != size || model_digest(bytes->data(), bytes->size()) != sha)
      return make_error(errc::corrupt_data,
                        what + ", but the bytes found for it have another digest or size");
    if (m.value("binary", false))
      j = json::binary_t{std::vector<uint8_t>(bytes->begin(), bytes->end())};
    else
      j = m.value("base64", false) ? base64_encode(*bytes) : std::move(*bytes);
    return {};
  }
  if (j.is_object()) {
    for (auto& [k, v] : j.items())
      if (auto err = restore(v, source, path.empty() ? k : path + "." + k))
        return err;
  } else if (j.is_array()) {
    for (size_t i = 0; i < j.size(); ++i)
      if (auto err = restore(j[i], source, path + "[" + std::to_string(i) + "]"))
        return err;
  }
  return {};
}

} // namespace

std::optional<std::string> elide_large_values(std::string_view json_text, size_t threshold,
                                              const stored_check& stored) {
  if (json_text.size() <= threshold)
    return std::nullopt;
  auto j = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !elide(j, stored))
    return std::nullopt;
  return j.dump();
}

std::optional<std::string> elide_row_value(std::string_view value, bool is_row, size_t threshold) {
  if (value.size() <= threshold)
    return std::nullopt;
  if (is_row) {
    // A row keeps its small fields (what the SQL store's columns show); its long strings and
    // bytes become digests.
    json j;
    if (storage::transaction::decode_row(value, j) && elide(j, {})) {
      auto out = json::to_msgpack(j);
      return std::string{out.begin(), out.end()};
    }
  }
  // Raw bytes, or a row large only by its many small fields: one digest for the whole value.
  auto out = json::to_msgpack(json{{elided_key,
                                    {{"sha256", model_digest(value.data(), value.size())},
                                     {"size", value.size()},
                                     {"whole", true}}}});
  return std::string{out.begin(), out.end()};
}

bool same_elided_value(std::string_view value, bool is_row, std::string_view logged) {
  if (logged.find(elided_key) == std::string_view::npos)
    return false;
  auto now = elide_row_value(value, is_row, 0);
  return now && *now == logged;
}

bool has_elided(const json& args) {
  if (is_marker(args))
    return true;
  if (args.is_object() || args.is_array())
    for (const auto& v : args)
      if (has_elided(v))
        return true;
  return false;
}

caf::error restore_elided(json& args, const elided_source& source) {
  return restore(args, source, "");
}

} // namespace comb::runtime
