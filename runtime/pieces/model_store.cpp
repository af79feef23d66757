// comb::runtime::model_store: the model procedures, and storing, activating and reading
// versions from other procedures and from the dispatcher (see model_store.hpp).
#include "runtime/pieces/model_store.hpp"

#include "base/base64.hpp"
#include "base/errc.hpp"
#include "runtime/pieces/model_digest.hpp"
#include "runtime/pieces/model_runner.hpp"
#include "runtime/pieces/outbox.hpp"
#include "storage/database.hpp"
#include "storage/transaction.hpp"

#include <openssl/evp.h>

#include <cstdio>
#include <memory>

namespace comb::runtime {

namespace {

using json = nlohmann::json;

bool valid_name(const std::string& s) {
  if (s.empty() || s.size() > 128)
    return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.'))
      return false;
  return true;
}

std::string model_key(const std::string& name, uint32_t version) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%010u", version);
  return name + "/" + buf;
}

std::string chunk_key(const std::string& name, uint32_t version, uint32_t chunk) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "/%08u", chunk);
  return model_key(name, version) + buf;
}

/// The kind argument of comb.model.put that skips the check.
constexpr const char* raw_kind = "raw";

std::string version_text(const std::string& name, uint32_t version) {
  return "model '" + name + "' version " + std::to_string(version);
}

caf::error check_name_version(const std::string& name, int64_t version) {
  if (!valid_name(name))
    return make_error(errc::invalid_argument, "model name '" + name
                                                + "' must be 1..128 characters of "
                                                  "[A-Za-z0-9_.-]");
  if (version < 1 || version > 0xffffffffll)
    return make_error(errc::invalid_argument, "model version " + std::to_string(version) + " of '"
                                                + name + "' must be in [1, 4294967295]");
  return {};
}

/// Name and version arguments, checked.
caf::expected<std::pair<std::string, uint32_t>> name_version(const json& args) {
  auto name = arg<std::string>(args, "name");
  auto version = arg<int64_t>(args, "version");
  if (auto err = check_name_version(name, version))
    return err;
  return std::pair<std::string, uint32_t>{name, static_cast<uint32_t>(version)};
}

/// check_model on a whole file about to be stored as `name` `version`; `want` (from put's
/// "kind" argument) is the kind the caller expects, or empty.
caf::expected<model_file_info> check_file(const std::string& name, uint32_t version,
                                          std::string_view bytes, const std::string& want = {}) {
  auto info = check_model(bytes);
  if (!info) {
    // The check's own text; its code is named only when it is not bad_model.
    auto why = describe(info.error());
    if (is(info.error(), errc::bad_model))
      why.erase(0, to_string(errc::bad_model).size() + 2);
    return make_error(errc::bad_model, version_text(name, version) + " is refused: " + why);
  }
  if (!want.empty() && info->kind != want)
    return make_error(errc::bad_model, version_text(name, version) + " is refused: the file is a '"
                                         + info->kind + "' model, not the '" + want + "' given");
  return info;
}

// A chunk's bytes, from the blobs table or, in a folder written before it, the rows table.
caf::expected<std::optional<std::string>> read_chunk(storage::transaction& txn,
                                                     const std::string& key) {
  std::vector<char> buf;
  auto found = txn.get_blob(model_store::chunks_table, key, buf);
  if (!found)
    return found.error();
  if (*found)
    return std::optional<std::string>{std::string{buf.begin(), buf.end()}};
  return txn.get(model_store::old_chunks_table, key);
}

caf::expected<json> put_chunk(call_context&, storage::transaction& txn, const json& args) {
  auto nv = name_version(args);
  if (!nv)
    return nv.error();
  auto [name, version] = *nv;
  auto no = arg<int64_t>(args, "chunk_no");
  if (no < 0 || no > 1000000)
    return make_error(errc::invalid_argument, "chunk_no " + std::to_string(no) + " of model '"
                                                + name + "' is out of range");
  auto data = base64_decode(arg<std::string>(args, "data"));
  if (!data)
    return make_error(errc::invalid_argument, "chunk " + std::to_string(no) + " of model '" + name
                                                + "': " + describe(data.error()));
  if (data->size() > model_store::chunk_size)
    return make_error(errc::too_large, "chunk " + std::to_string(no) + " of model '" + name
                                         + "' has " + std::to_string(data->size())
                                         + " bytes, more than 1 MiB");
  auto existing = txn.get(model_store::models_table, model_key(name, version));
  if (!existing)
    return existing.error();
  if (*existing)
    return make_error(errc::already_exists, "model '" + name + "' version "
                                              + std::to_string(version)
                                              + " is already stored; versions are immutable");
  if (auto err = txn.put_blob(model_store::chunks_table,
                              chunk_key(name, version, static_cast<uint32_t>(no)), *data))
    return err;
  return json{{"stored", data->size()}};
}

caf::expected<json> put_model(call_context&, storage::transaction& txn, const json& args) {
  auto nv = name_version(args);
  if (!nv)
    return nv.error();
  auto [name, version] = *nv;
  auto count = arg<int64_t>(args, "chunk_count");
  auto digest = arg<std::string>(args, "digest");
  if (count < 1 || count > 1000000)
    return make_error(errc::invalid_argument, "chunk_count " + std::to_string(count) + " of model '"
                                                + name + "' is out of range");
  auto key = model_key(name, version);
  auto existing = txn.get_row_for_update(model_store::models_table, key);
  if (!existing)
    return existing.error();
  if (*existing) {
    if ((**existing).value("digest", "") == digest)
      return json{{"name", name}, {"version", version}, {"digest", digest}, {"new", false}};
    return make_error(errc::already_exists,
                      "model '" + name + "' version " + std::to_string(version)
                        + " is already stored with digest " + (**existing).value("digest", ""));
  }
  // The file is checked whole, unless the caller stores raw bytes (built-in test models).
  auto kind = args.value("kind", std::string{});
  bool raw = kind == raw_kind;
  std::string whole;
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx{EVP_MD_CTX_new(), &EVP_MD_CTX_free};
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  uint64_t bytes = 0;
  for (int64_t i = 0; i < count; ++i) {
    auto chunk = read_chunk(txn, chunk_key(name, version, static_cast<uint32_t>(i)));
    if (!chunk)
      return chunk.error();
    if (!*chunk)
      return make_error(errc::bad_model, "model '" + name + "' version " + std::to_string(version)
                                           + ": chunk " + std::to_string(i) + " of "
                                           + std::to_string(count) + " is missing");
    if (i + 1 < count && (*chunk)->size() != model_store::chunk_size)
      return make_error(errc::bad_model, "model '" + name + "' version " + std::to_string(version)
                                           + ": chunk " + std::to_string(i) + " is not 1 MiB long");
    EVP_DigestUpdate(ctx.get(), (*chunk)->data(), (*chunk)->size());
    bytes += (*chunk)->size();
    if (!raw)
      whole += **chunk;
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &len);
  static constexpr char digits[] = "0123456789abcdef";
  std::string actual;
  for (unsigned i = 0; i < len; ++i) {
    actual.push_back(digits[md[i] >> 4]);
    actual.push_back(digits[md[i] & 15]);
  }
  if (actual != digest)
    return make_error(errc::bad_model, "model '" + name + "' version " + std::to_string(version)
                                         + ": chunks have digest " + actual + ", not the " + digest
                                         + " given");
  json row{{"name", name},   {"version", version}, {"digest", digest},
           {"bytes", bytes}, {"chunks", count},    {"loaded", false}};
  if (raw) {
    row["kind"] = raw_kind;
    row["summary"] = "raw bytes, not checked";
  } else {
    auto info = check_file(name, version, whole, kind);
    if (!info)
      return info.error(); // the procedure fails: its chunks roll back with it
    row["kind"] = info->kind;
    row["summary"] = info->summary;
  }
  if (auto err = txn.put_row(model_store::models_table, key, row))
    return err;
  row["new"] = true;
  return row;
}

caf::expected<json> list_models(call_context&, storage::transaction& txn, const json&) {
  std::map<std::string, uint32_t> active;
  if (auto err = txn.scan(model_store::active_table, "", "",
                          [&](std::string_view k, std::string_view v) {
                            auto row = json::from_msgpack(v, true, false);
                            if (!row.is_discarded())
                              active[std::string{k}] = row.value("version", 0u);
                            return true;
                          }))
    return err;
  auto out = json::array();
  if (auto err = txn.scan(model_store::models_table, "", "",
                          [&](std::string_view, std::string_view v) {
                            auto row = json::from_msgpack(v, true, false);
                            if (row.is_discarded())
                              return true;
                            auto i = active.find(row.value("name", ""));
                            row["active"] = i != active.end()
                                            && i->second == row.value("version", 0u);
                            out.push_back(std::move(row));
                            return true;
                          }))
    return err;
  return out;
}

caf::expected<json> get_chunk(call_context&, storage::transaction& txn, const json& args) {
  auto nv = name_version(args);
  if (!nv)
    return nv.error();
  auto [name, version] = *nv;
  auto no = arg<int64_t>(args, "chunk_no");
  auto row = txn.get_row(model_store::models_table, model_key(name, version));
  if (!row)
    return row.error();
  if (!*row)
    return make_error(errc::not_found,
                      "no model '" + name + "' version " + std::to_string(version));
  auto count = (**row).value("chunks", int64_t{0});
  if (no < 0 || no >= count)
    return make_error(errc::invalid_argument,
                      "model '" + name + "' version " + std::to_string(version) + " has "
                        + std::to_string(count) + " chunks, not chunk " + std::to_string(no));
  auto chunk = read_chunk(txn, chunk_key(name, version, static_cast<uint32_t>(no)));
  if (!chunk)
    return chunk.error();
  if (!*chunk)
    return make_error(errc::corrupt_data,
                      "model '" + name + "' chunk " + std::to_string(no) + " is missing");
  return json{{"data", base64_encode(**chunk)},
              {"chunk_count", count},
              {"digest", (**row).value("digest", "")}};
}

caf::expected<json> activate(call_context& ctx, storage::transaction& txn, const json& args) {
  auto nv = name_version(args);
  if (!nv)
    return nv.error();
  auto [name, version] = *nv;
  auto key = model_store::enqueue_activation(ctx, txn, name, version);
  if (!key)
    return key.error();
  return json{{"call", *key}, {"name", name}, {"version", version}};
}

caf::expected<json> loaded(call_context&, storage::transaction& txn, const json& args) {
  const auto& c = args.at("context");
  auto name = c.at("name").get<std::string>();
  auto version = c.at("version").get<uint32_t>();
  auto key = model_key(name, version);
  auto row = txn.get_row_for_update(model_store::models_table, key);
  if (!row)
    return row.error();
  if (!*row)
    return make_error(errc::not_found,
                      "model '" + name + "' version " + std::to_string(version) + " vanished");
  auto call = args.value("call", std::string{});
  if (auto e = args.find("error"); e != args.end()) {
    (**row)["load_error"] = *e;
    (**row)["last_load"] = {{"call", call}, {"ok", false}};
    if (auto err = txn.put_row(model_store::models_table, key, **row))
      return err;
    return json{{"activated", false}, {"error", *e}};
  }
  auto digest = args.at("result").at("model_digest").get<std::string>();
  if (digest != (**row).value("digest", "")) {
    (**row)["load_error"] = "compute process reported digest " + digest;
    (**row)["last_load"] = {{"call", call}, {"ok", false}};
    if (auto err = txn.put_row(model_store::models_table, key, **row))
      return err;
    return json{{"activated", false}, {"error", "digest mismatch"}};
  }
  (**row)["loaded"] = true;
  (**row).erase("load_error");
  (**row)["last_load"] = {{"call", call}, {"ok", true}};
  if (auto err = txn.put_row(model_store::models_table, key, **row))
    return err;
  if (auto err = txn.put_row(model_store::active_table, name, {{"version", version}}))
    return err;
  return json{{"activated", true}, {"name", name}, {"version", version}};
}

// comb.model.active: the active version of a model and its row, for a node that mirrors it.
caf::expected<json> active_model(call_context&, storage::transaction& txn, const json& args) {
  auto name = arg<std::string>(args, "name");
  if (auto err = check_name_version(name, 1))
    return err;
  auto version = model_store::active_version(txn, name);
  if (!version)
    return version.error();
  auto row = txn.get_row(model_store::models_table, model_key(name, *version));
  if (!row)
    return row.error();
  if (!*row)
    return make_error(errc::corrupt_data, "the active " + version_text(name, *version)
                                            + " has no row in " + model_store::models_table);
  return json{{"name", name}, {"version", *version}, {"row", **row}};
}

// comb.model.mirror: see model_store.hpp.
caf::expected<json> mirror(call_context&, storage::transaction& txn, const json& args) {
  auto nv = name_version(args);
  if (!nv)
    return nv.error();
  // Plain variables, not structured bindings: the lambda below captures them (C++20 lets it,
  // clang 14, which builds the fuzz targets, does not).
  auto name = nv->first;
  auto version = nv->second;
  auto owner = arg<std::string>(args, "owner");
  const auto& given = args.at("row");
  auto what = "mirror of " + version_text(name, version) + " from node " + owner;
  if (!given.is_object() || !given.contains("digest") || !given["digest"].is_string()
      || !given.contains("chunks") || !given["chunks"].is_number_integer())
    return make_error(errc::invalid_argument, what + ": its row needs a digest and a chunk count");
  auto digest = given["digest"].get<std::string>();
  auto count = given["chunks"].get<int64_t>();
  if (count < 1 || count > 1000000)
    return make_error(errc::invalid_argument,
                      what + ": chunk count " + std::to_string(count) + " is out of range");
  auto key = model_key(name, version);
  auto activate_it = [&]() -> caf::expected<json> {
    auto active = txn.get_row(model_store::active_table, name);
    if (!active)
      return active.error();
    if (!*active || (**active).value("version", 0u) != version)
      if (auto err = txn.put_row(model_store::active_table, name, {{"version", version}}))
        return err;
    return json{{"mirrored", true}, {"name", name}, {"version", version}, {"owner", owner}};
  };
  auto existing = txn.get_row_for_update(model_store::models_table, key);
  if (!existing)
    return existing.error();
  if (*existing) {
    if (!(**existing).contains("mirror_of"))
      return make_error(errc::already_exists,
                        what + ": this node stores that version as its own, not as a mirror "
                               "(do the nodes' cluster configs place the model's partition "
                               "differently?)");
    if ((**existing).value("digest", "") != digest)
      return make_error(errc::corrupt_data, what + ": the mirror here has digest "
                                              + (**existing).value("digest", "") + ", node "
                                              + owner + "'s has " + digest);
    return activate_it();
  }
  // A new version: its chunks come first (comb.model.mirror_chunk); name the missing ones.
  json missing = json::array();
  std::string whole;
  for (int64_t i = 0; i < count; ++i) {
    auto chunk = read_chunk(txn, chunk_key(name, version, static_cast<uint32_t>(i)));
    if (!chunk)
      return chunk.error();
    if (!*chunk)
      missing.push_back(i);
    else if (missing.empty())
      whole += **chunk;
  }
  if (!missing.empty())
    return json{{"mirrored", false}, {"missing", missing}};
  if (auto actual = model_digest(whole.data(), whole.size()); actual != digest) {
    // Chunks that do not add up (a copy cut short): dropped, so that they are fetched again.
    for (int64_t i = 0; i < count; ++i)
      if (auto err = txn.del_blob(model_store::chunks_table,
                                  chunk_key(name, version, static_cast<uint32_t>(i))))
        return err;
    json all = json::array();
    for (int64_t i = 0; i < count; ++i)
      all.push_back(i);
    return json{{"mirrored", false},
                {"missing", all},
                {"dropped", "the chunks had digest " + actual + ", not " + digest}};
  }
  json row = given;
  auto kind = row.value("kind", std::string{});
  if (kind != raw_kind) {
    auto info = check_file(name, version, whole, kind);
    if (!info)
      return info.error();
    row["kind"] = info->kind;
    row["summary"] = info->summary;
  }
  row["name"] = name;
  row["version"] = version;
  row["bytes"] = whole.size();
  row["loaded"] = false; // this node's compute process loads it when a call needs it
  row["mirror_of"] = owner;
  for (const char* k : {"activation", "last_load", "load_error"})
    row.erase(k);
  if (auto err = txn.put_row(model_store::models_table, key, row))
    return err;
  return activate_it();
}

} // namespace

void model_store::add_procedures(procedure_registry& procs, std::vector<std::string> roles) {
  outbox::add_tables(procs);
  procs.add_table(models_table);
  procs.add_table(chunks_table, storage::table_kind::blobs);
  procs.add_table(old_chunks_table);
  procs.add_table(active_table);
  procedure_options w;
  w.roles = roles;
  w.partition_by = "name";
  w.max_args_bytes = size_t{2} << 20; // a 1 MiB chunk in base64 plus the rest
  procedure_options r = w;
  r.read_only = true;
  procedure_options list = r;
  list.partition_by.clear();
  procs.add("comb.model.put_chunk", put_chunk, w);
  procs.add("comb.model.put", put_model, w);
  procs.add("comb.model.list", list_models, list);
  procs.add("comb.model.get_chunk", get_chunk, r);
  procs.add("comb.model.activate", activate, w);
  procs.add("comb.model.active", active_model, r);
  // A mirror is written on the node that needs it, whatever partition the name hashes to.
  procedure_options local = w;
  local.partition_by.clear();
  procs.add("comb.model.mirror_chunk", put_chunk, local);
  procs.add("comb.model.mirror", mirror, local);
  procedure_options res;
  res.roles = roles;
  outbox::add_result_procedure(procs, "comb.model.loaded", loaded, res);
}

caf::expected<uint32_t> model_store::active_version(storage::transaction& txn,
                                                    std::string_view name) {
  auto row = txn.get_row(active_table, name);
  if (!row)
    return row.error();
  if (!*row)
    return make_error(errc::bad_model, "model '" + std::string{name} + "' has no active version");
  return (**row).value("version", 0u);
}

caf::expected<uint32_t> model_store::latest_version(storage::transaction& txn,
                                                    std::string_view name) {
  // Keys are "<name>/<version, 10 digits>": the last key from "<name>/" up to "<name>0" ('0'
  // follows '/') is the highest version.
  std::string from = std::string{name} + "/";
  std::string to = std::string{name} + "0";
  uint32_t latest = 0;
  caf::error bad;
  if (auto err = txn.scan(models_table, from, to, [&](std::string_view k, std::string_view) {
        auto digits = k.substr(from.size());
        if (digits.size() != 10 || digits.find('/') != std::string_view::npos)
          return true;
        latest = std::max(latest, static_cast<uint32_t>(std::stoul(std::string{digits})));
        return true;
      }))
    return err;
  return latest;
}

caf::expected<json> model_store::store_version(call_context&, storage::transaction& txn,
                                               const std::string& name, uint32_t version,
                                               std::string_view bytes, json extra) {
  if (auto err = check_name_version(name, version))
    return err;
  auto key = model_key(name, version);
  auto existing = txn.get_for_update(models_table, key);
  if (!existing)
    return existing.error();
  if (*existing)
    return make_error(errc::already_exists,
                      version_text(name, version) + " is already stored; versions are immutable");
  auto info = check_file(name, version, bytes);
  if (!info)
    return info.error();
  uint32_t count = 0;
  for (size_t at = 0; at < bytes.size() || count == 0; at += chunk_size, ++count)
    if (auto err = txn.put_blob(chunks_table, chunk_key(name, version, count),
                                bytes.substr(at, std::min(chunk_size, bytes.size() - at))))
      return err;
  json row = extra.is_object() ? std::move(extra) : json::object();
  row.update(json{{"name", name},
                  {"version", version},
                  {"digest", model_digest(bytes.data(), bytes.size())},
                  {"bytes", bytes.size()},
                  {"chunks", count},
                  {"loaded", false},
                  {"kind", info->kind},
                  {"summary", info->summary}});
  if (auto err = txn.put_row(models_table, key, row))
    return err;
  return row;
}

caf::expected<std::string> model_store::enqueue_activation(call_context& ctx,
                                                           storage::transaction& txn,
                                                           const std::string& name,
                                                           uint32_t version) {
  auto key = model_key(name, version);
  auto row = txn.get_row_for_update(models_table, key);
  if (!row)
    return row.error();
  if (!*row)
    return make_error(errc::not_found,
                      "cannot activate " + version_text(name, version) + ": it is not stored");
  auto count = (**row).value("chunks", uint32_t{0});
  outbox_call call;
  call.kind = piece_kind::load_model;
  call.model = name;
  call.model_version = version;
  call.result_procedure = "comb.model.loaded";
  call.role = ctx.role.empty() ? "admin" : std::string{ctx.role};
  call.context = {{"name", name}, {"version", version}, {"digest", (**row)["digest"]}};
  // The call names the version's chunks (rows of chunks_table, immutable like the version)
  // instead of holding a copy of the file: activating a 200 MiB model writes no 200 MiB
  // payload blob that would stay until the load call ends.
  std::vector<std::string> keys;
  keys.reserve(count);
  for (uint32_t i = 0; i < count; ++i)
    keys.push_back(chunk_key(name, version, i));
  auto call_key = outbox::enqueue_rows(ctx, txn, call, chunks_table, keys);
  if (!call_key && is(call_key.error(), errc::not_found)) {
    // A folder from before chunks moved to the blob store keeps them in old_chunks_table,
    // which a call can name only one table of: the call holds a copy.
    std::string payload;
    payload.reserve((**row).value("bytes", size_t{0}));
    for (uint32_t i = 0; i < count; ++i) {
      auto chunk = read_chunk(txn, chunk_key(name, version, i));
      if (!chunk)
        return chunk.error();
      if (!*chunk)
        return make_error(errc::corrupt_data,
                          "model '" + name + "' chunk " + std::to_string(i) + " is missing");
      payload += **chunk;
    }
    call_key = outbox::enqueue(ctx, txn, call, payload);
  }
  if (!call_key)
    return call_key.error();
  // A new attempt: an earlier attempt's error no longer describes the version.
  (**row).erase("load_error");
  (**row)["activation"] = *call_key;
  if (auto err = txn.put_row(models_table, key, **row))
    return err;
  return *call_key;
}

caf::expected<std::pair<std::string, std::string>> model_store::read_version(storage::database& db,
                                                                             std::string_view name,
                                                                             uint32_t version) {
  auto txn = db.begin();
  auto done = [&](auto&& result) {
    txn->rollback();
    return std::forward<decltype(result)>(result);
  };
  std::string n{name};
  if (version == 0) {
    auto active = active_version(*txn, name);
    if (!active)
      return done(active.error());
    version = *active;
  }
  auto row = txn->get_row(models_table, model_key(n, version));
  if (!row)
    return done(row.error());
  if (!*row)
    return done(make_error(errc::not_found, "no " + version_text(n, version) + " is stored"));
  auto count = (**row).value("chunks", uint32_t{0});
  auto digest = (**row).value("digest", std::string{});
  std::string bytes;
  bytes.reserve((**row).value("bytes", size_t{0}));
  for (uint32_t i = 0; i < count; ++i) {
    auto chunk = read_chunk(*txn, chunk_key(n, version, i));
    if (!chunk)
      return done(chunk.error());
    if (!*chunk)
      return done(make_error(errc::corrupt_data, version_text(n, version) + ": chunk "
                                                   + std::to_string(i) + " of "
                                                   + std::to_string(count) + " is missing"));
    bytes += **chunk;
  }
  txn->rollback();
  auto actual = model_digest(bytes.data(), bytes.size());
  if (actual != digest)
    return make_error(errc::corrupt_data, version_text(n, version) + ": its chunks have digest "
                                            + actual + ", not the " + digest + " recorded");
  return std::pair<std::string, std::string>{std::move(bytes), std::move(digest)};
}

} // namespace comb::runtime
