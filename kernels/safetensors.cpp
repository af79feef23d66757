// comb::kernels safetensors: encoding and fully checked decoding with nlohmann::json.
#include "kernels/safetensors.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

namespace comb::kernels {

namespace {

/// Largest header we accept (the format's reference reader uses 100 MB).
constexpr uint64_t max_header = uint64_t{100} << 20;

const char* st_name(dtype t) {
  switch (t) {
  case dtype::f32:
    return "F32";
  case dtype::u8:
    return "U8";
  case dtype::i8:
    return "I8";
  case dtype::i32:
    return "I32";
  }
  return "?";
}

bool st_dtype(const std::string& s, dtype& t) {
  if (s == "F32")
    t = dtype::f32;
  else if (s == "U8")
    t = dtype::u8;
  else if (s == "I8")
    t = dtype::i8;
  else if (s == "I32")
    t = dtype::i32;
  else
    return false;
  return true;
}

caf::error corrupt(const std::string& what) {
  return make_error(errc::corrupt_data, "safetensors: " + what);
}

} // namespace

caf::expected<std::string> encode_safetensors(
  const std::vector<std::pair<std::string, const tensor*>>& tensors,
  const std::map<std::string, std::string>& metadata) {
  // An object even when empty: "null" is no header the decoder (or the format) accepts.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (auto& [k, v] : metadata)
      meta[k] = v;
    header["__metadata__"] = meta;
  }
  std::set<std::string> seen;
  size_t off = 0;
  for (auto& [name, t] : tensors) {
    if (name.empty() || name == "__metadata__" || !seen.insert(name).second)
      return make_error(errc::invalid_argument,
                        "safetensors: tensor name '" + name + "' is empty, reserved or repeated");
    if (!t || t->empty() || t->device() != device::cpu)
      return make_error(errc::invalid_argument,
                        "safetensors: tensor '" + name + "' is empty or not on the CPU");
    header[name] = {{"dtype", st_name(t->dtype())},
                    {"shape", t->shape().dims()},
                    {"data_offsets", {off, off + t->bytes()}}};
    off += t->bytes();
  }
  std::string h;
  try {
    h = header.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } catch (const std::exception& e) {
    return make_error(errc::invalid_argument, std::string{"safetensors: header: "} + e.what());
  }
  while (h.size() % 8 != 0)
    h += ' ';
  std::string out(8 + h.size() + off, '\0');
  uint64_t n = h.size();
  for (int i = 0; i < 8; ++i)
    out[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  std::memcpy(out.data() + 8, h.data(), h.size());
  size_t pos = 8 + h.size();
  for (auto& [name, t] : tensors) {
    if (t->bytes())
      std::memcpy(out.data() + pos, t->raw(), t->bytes());
    pos += t->bytes();
  }
  return out;
}

caf::expected<safetensors_file> decode_safetensors(std::string_view bytes) {
  if (bytes.size() < 8)
    return corrupt("file of " + std::to_string(bytes.size())
                   + " bytes is too short for the 8-byte header length");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i)
    n |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[static_cast<size_t>(i)]))
         << (8 * i);
  if (n > max_header || n > bytes.size() - 8)
    return corrupt("header length " + std::to_string(n) + " exceeds the file ("
                   + std::to_string(bytes.size()) + " bytes) or the 100 MB limit");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.substr(8, n));
  } catch (const nlohmann::json::parse_error& e) {
    // Not e.what(): its "last read: '...'" quotes up to the whole header (kilobytes of
    // garbage on one error line).
    return corrupt("header is not valid JSON: parse error at header byte " + std::to_string(e.byte)
                   + " of " + std::to_string(n));
  } catch (const std::exception& e) {
    return corrupt(std::string{"header is not valid JSON: "} + e.what());
  }
  if (!header.is_object())
    return corrupt("header is not a JSON object");
  std::string_view data = bytes.substr(8 + n);
  safetensors_file out;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (auto& [name, e] : header.items()) {
    if (name == "__metadata__") {
      if (!e.is_object())
        return corrupt("__metadata__ is not an object");
      for (auto& [k, v] : e.items()) {
        if (!v.is_string())
          return corrupt("metadata value of '" + k + "' is not a string");
        out.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    if (!e.is_object() || !e.contains("dtype") || !e.contains("shape")
        || !e.contains("data_offsets") || !e["dtype"].is_string() || !e["shape"].is_array()
        || !e["data_offsets"].is_array() || e["data_offsets"].size() != 2)
      return corrupt("tensor '" + name + "' lacks dtype, shape or a pair of data_offsets");
    dtype t;
    auto dt = e["dtype"].get<std::string>();
    if (!st_dtype(dt, t))
      return make_error(errc::unsupported, "safetensors: tensor '" + name + "' has dtype " + dt
                                             + "; Comb reads F32, U8, I8, I32");
    std::vector<int64_t> dims;
    for (auto& d : e["shape"]) {
      if (!d.is_number_unsigned() || d.get<uint64_t>() > (uint64_t{1} << 40))
        return corrupt("tensor '" + name + "' has a bad dimension " + d.dump());
      dims.push_back(static_cast<int64_t>(d.get<uint64_t>()));
    }
    shape s{dims};
    if (!s.valid())
      return corrupt("tensor '" + name + "' has an overflowing shape " + to_string(s));
    auto& offs = e["data_offsets"];
    if (!offs[0].is_number_unsigned() || !offs[1].is_number_unsigned())
      return corrupt("tensor '" + name + "' has non-numeric data_offsets");
    uint64_t b = offs[0].get<uint64_t>(), en = offs[1].get<uint64_t>();
    uint64_t want = static_cast<uint64_t>(s.numel()) * size_of(t);
    if (en < b || en > data.size())
      return corrupt("tensor '" + name + "' data range [" + std::to_string(b) + ", "
                     + std::to_string(en) + ") lies outside the " + std::to_string(data.size())
                     + " data bytes");
    if (en - b != want)
      return corrupt("tensor '" + name + "' holds " + std::to_string(en - b) + " bytes, its shape "
                     + to_string(s) + " needs " + std::to_string(want));
    ranges.emplace_back(b, en);
    auto tt = tensor::make(s, t);
    if (!tt)
      return tt.error();
    if (want)
      std::memcpy(tt->raw(), data.data() + b, want);
    out.tensors.emplace(name, std::move(*tt));
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].first < ranges[i - 1].second)
      return corrupt("tensor data ranges overlap at byte " + std::to_string(ranges[i].first));
  return out;
}

caf::error save_safetensors(const std::string& path,
                            const std::vector<std::pair<std::string, const tensor*>>& tensors,
                            const std::map<std::string, std::string>& metadata) {
  auto bytes = encode_safetensors(tensors, metadata);
  if (!bytes)
    return bytes.error();
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f)
      return make_error(errc::storage_error, "safetensors: cannot open " + tmp + " for writing");
    f.write(bytes->data(), static_cast<std::streamsize>(bytes->size()));
    f.flush();
    if (!f)
      return make_error(errc::storage_error, "safetensors: writing " + tmp + " failed");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    return make_error(errc::storage_error, "safetensors: cannot rename " + tmp + " to " + path);
  return {};
}

caf::expected<safetensors_file> load_safetensors(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f)
    return make_error(errc::not_found, "safetensors: cannot open " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  auto r = decode_safetensors(ss.str());
  if (!r)
    return make_error(static_cast<errc>(r.error().code()), path + ": " + describe(r.error()));
  return r;
}

caf::error assign_parameters(const safetensors_file& file,
                             const std::vector<std::pair<std::string, tensor*>>& params) {
  std::set<std::string> wanted;
  for (auto& [name, t] : params) {
    wanted.insert(name);
    auto i = file.tensors.find(name);
    if (i == file.tensors.end())
      return make_error(errc::bad_model, "weights: tensor '" + name + "' is missing");
    if (i->second.dtype() != t->dtype() || i->second.shape() != t->shape())
      return make_error(errc::bad_model, "weights: tensor '" + name + "' is " + i->second.describe()
                                           + ", the model expects " + t->describe());
  }
  for (auto& [name, t] : file.tensors)
    if (!wanted.count(name))
      return make_error(errc::bad_model,
                        "weights: the file has tensor '" + name + "' that the model does not");
  for (auto& [name, t] : params) {
    auto& src = file.tensors.at(name);
    if (t->device() == device::cpu) {
      std::memcpy(t->raw(), src.raw(), src.bytes());
    } else {
      auto moved = src.to(t->device());
      if (!moved)
        return moved.error();
      *t = std::move(*moved);
    }
  }
  return {};
}

} // namespace comb::kernels
