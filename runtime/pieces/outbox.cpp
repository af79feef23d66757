// comb::runtime::outbox: the outbox's rows, enqueue, result procedures and reads (see
// outbox.hpp).
#include "runtime/pieces/outbox.hpp"
#include "runtime/pieces/stage_trace.hpp"

#include "base/errc.hpp"
#include "base/msgpack.hpp"
#include "base/sync_point.hpp"
#include "base/xxh3.hpp"
#include "storage/database.hpp"
#include "storage/transaction.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <unordered_map>

namespace comb::runtime {

namespace {

std::string hex16(uint64_t x) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(x));
  return buf;
}

nlohmann::json to_row(const outbox_call& c, uint64_t execution_id, uint64_t task_id) {
  // Member by member: a braced initializer list copies every value once more and checks each
  // pair's shape.
  nlohmann::json row = nlohmann::json::object();
  row["kind"] = to_string(c.kind);
  row["model"] = c.model;
  row["model_version"] = c.model_version;
  row["result_procedure"] = c.result_procedure;
  row["role"] = c.role;
  row["context"] = c.context;
  row["execution_id"] = execution_id;
  row["task_id"] = task_id;
  if (!c.inputs.empty())
    row["inputs"] = specs_to_json(c.inputs);
  return row;
}

// A stored call row's bytes (to_row's, as MessagePack) to the call, without decoding the row
// into a JSON tree: an inline payload was copied byte by byte into the tree only to be thrown
// away. The context and the inputs are decoded from their own bytes; other members (the
// payload, payload_rows) are stepped over. corrupt_data, naming the member, for a member
// missing or of another type and for bytes that are not one map.
caf::expected<pending_call> from_row_bytes(std::string key, std::string_view row) {
  auto bad = [&](const std::string& what) {
    return make_error(errc::corrupt_data, "outbox row '" + key + "': " + what);
  };
  msgpack_cursor cur{row};
  uint64_t members = 0;
  if (!cur.read_map(members))
    return bad(cur.error());
  pending_call p;
  // The members to_row always writes: kind, model, model_version, result_procedure, role,
  // context, execution_id, task_id.
  constexpr const char* required[] = {"kind", "model", "model_version", "result_procedure",
                                      "role", "context", "execution_id", "task_id"};
  bool seen[std::size(required)] = {};
  // A member's value decoded on its own, from its bytes.
  auto sub_json = [&](nlohmann::json& out) {
    auto start = cur.offset();
    if (!cur.skip())
      return false;
    out = nlohmann::json::from_msgpack(row.substr(start, cur.offset() - start), /*strict=*/true,
                                       /*allow_exceptions=*/false);
    return !out.is_discarded();
  };
  for (uint64_t m = 0; m < members; ++m) {
    std::string_view name, text;
    if (!cur.read_str(name))
      return bad(cur.error());
    size_t which = std::find(std::begin(required), std::end(required), name) - std::begin(required);
    if (which < std::size(required))
      seen[which] = true;
    bool ok = true;
    uint64_t u = 0;
    if (name == "kind") {
      if ((ok = cur.read_str(text))) {
        auto kind = parse_piece_kind(std::string{text});
        if (!kind)
          return kind.error();
        p.call.kind = *kind;
      }
    } else if (name == "model") {
      if ((ok = cur.read_str(text)))
        p.call.model.assign(text);
    } else if (name == "model_version") {
      if ((ok = cur.read_uint(u) && u <= UINT32_MAX))
        p.call.model_version = static_cast<uint32_t>(u);
    } else if (name == "result_procedure") {
      if ((ok = cur.read_str(text)))
        p.call.result_procedure.assign(text);
    } else if (name == "role") {
      if ((ok = cur.read_str(text)))
        p.call.role.assign(text);
    } else if (name == "execution_id") {
      ok = cur.read_uint(p.execution_id);
    } else if (name == "task_id") {
      ok = cur.read_uint(p.task_id);
    } else if (name == "context") {
      ok = sub_json(p.call.context);
    } else if (name == "inputs") {
      nlohmann::json inputs;
      if ((ok = sub_json(inputs))) {
        auto specs = specs_from_json(inputs);
        if (!specs)
          return bad("inputs: " + describe(specs.error()));
        p.call.inputs = std::move(*specs);
      }
    } else {
      ok = cur.skip();
    }
    if (!ok)
      return bad("member '" + std::string{name} + "': "
                 + (cur.failed() ? cur.error() : std::string{"a value out of range"}));
  }
  if (!cur.at_end())
    return bad("bytes after the row's map");
  for (size_t i = 0; i < std::size(required); ++i)
    if (!seen[i])
      return bad("no member '" + std::string{required[i]} + "'");
  p.key = std::move(key);
  return p;
}

// Listeners by database (few, long-lived); read on every enqueue.
std::shared_mutex listeners_mtx;
struct listener_entry {
  outbox::listener fn;
  /// Payload bytes held by committed_calls not yet destroyed.
  std::shared_ptr<std::atomic<size_t>> held = std::make_shared<std::atomic<size_t>>(0);
};
std::unordered_map<const storage::database*, std::shared_ptr<listener_entry>> listeners;

std::shared_ptr<listener_entry> listener_of(const storage::database& db) {
  std::shared_lock guard{listeners_mtx};
  auto i = listeners.find(&db);
  return i == listeners.end() ? nullptr : i->second;
}

// Appends the values of rows `keys` of `table` to `out`, as `txn` reads them, and sets
// `xxh3` to XXH3-64 of what it appended: for one row of a blobs table the blob's recorded
// hash (the read checked the bytes against it), otherwise the hash of the bytes.
caf::error append_rows(storage::transaction& txn, const std::string& table,
                       const std::vector<std::string>& keys, std::vector<char>& out,
                       const std::string& what, uint64_t& xxh3) {
  auto start = out.size();
  std::optional<uint64_t> known;
  auto t = txn.db().table(table);
  if (!t)
    return make_error(errc::not_found, what + ": no table '" + table + "'");
  std::vector<char> blob;
  for (const auto& k : keys) {
    bool found = false;
    if (t->kind == storage::table_kind::blobs) {
      // A single blob is read straight into the payload.
      auto& dest = keys.size() == 1 ? out : blob;
      uint64_t h = 0;
      auto got = txn.get_blob(table, k, dest, keys.size() == 1 && start == 0 ? &h : nullptr);
      if (!got)
        return std::move(got.error());
      found = *got;
      if (found && &dest == &out)
        known = h;
      if (found && &dest == &blob)
        out.insert(out.end(), blob.begin(), blob.end());
    } else {
      auto v = txn.get(table, k);
      if (!v)
        return std::move(v.error());
      found = v->has_value();
      if (found)
        out.insert(out.end(), (*v)->begin(), (*v)->end());
    }
    if (!found)
      return make_error(errc::not_found, what + ": no row '" + k + "' in table '" + table + "'");
  }
  xxh3 = known ? *known : comb::xxh3_64(out.data() + start, out.size() - start);
  return {};
}

// A call's payload made of rows (enqueue_rows): read again, checked against what the call
// recorded.
caf::error read_rows_payload(storage::transaction& txn, std::string_view key,
                             const nlohmann::json& ref, std::vector<char>& out) {
  auto where = "outbox call '" + std::string{key} + "'";
  try {
    auto table = ref.at("table").get<std::string>();
    auto keys = ref.at("keys").get<std::vector<std::string>>();
    auto size = ref.at("bytes").get<uint64_t>();
    auto hash = ref.at("xxh3").get<uint64_t>();
    out.clear();
    out.reserve(size);
    uint64_t now_hash = 0;
    if (auto err = append_rows(txn, table, keys, out, where + ": its input rows", now_hash))
      return make_error(errc::corrupt_data, describe(err) + " (deleted after the call committed)");
    if (out.size() != size || now_hash != hash)
      return make_error(errc::corrupt_data,
                        where + ": its input rows in table '" + table + "' ("
                          + (keys.empty() ? std::string{"none named"} : keys.front())
                          + (keys.size() > 1 ? " and " + std::to_string(keys.size() - 1) + " more"
                                             : std::string{})
                          + ") changed after the call committed (" + std::to_string(out.size())
                          + " bytes now, " + std::to_string(size) + " then)");
    return {};
  } catch (const nlohmann::json::exception& e) {
    return make_error(errc::corrupt_data, where + ": payload_rows: " + e.what());
  }
}

// A call's payload: in its row (field "payload") when small, else in the payload table.
caf::error read_payload(storage::transaction& txn, std::string_view key, const nlohmann::json& row,
                        std::vector<char>& out) {
  if (auto i = row.find("payload_rows"); i != row.end())
    return read_rows_payload(txn, key, *i, out);
  if (auto i = row.find("payload"); i != row.end()) {
    if (!i->is_binary())
      return make_error(errc::corrupt_data,
                        "outbox call '" + std::string{key} + "': payload is not bytes");
    const auto& b = i->get_binary();
    out.assign(b.begin(), b.end());
    return {};
  }
  auto found = txn.get_blob(outbox::payload_table, key, out);
  if (!found)
    return std::move(found.error());
  if (!*found)
    return make_error(errc::corrupt_data, "outbox call '" + std::string{key} + "' has no payload");
  return {};
}

/// Whether a stored call row (a MessagePack map) holds its payload itself: a top-level
/// "payload" or "payload_rows" member. Read from the row's bytes without decoding it: decoding
/// copied an inline payload byte by byte into a JSON tree (about 50k instructions for 1 KiB)
/// that the result procedure threw away. Nested values are stepped over by their sizes and
/// counts (base/msgpack's cursor). Nothing when the bytes are not one well-formed MessagePack
/// map whose keys are strings. `inline_bytes` (when not null) gets the bytes of a top-level
/// "payload" member that is a bin value and no "payload_rows" beside it (else it is left
/// null).
std::optional<bool> holds_payload(std::string_view row, std::string_view* inline_bytes = nullptr) {
  msgpack_cursor cur{row};
  uint64_t members = 0;
  if (!cur.read_map(members))
    return std::nullopt;
  bool found = false, rows = false;
  std::string_view bin;
  for (uint64_t m = 0; m < members; ++m) {
    std::string_view name;
    if (!cur.read_str(name))
      return std::nullopt; // keys are strings
    bool is_payload = name == "payload";
    rows = rows || name == "payload_rows";
    found = found || is_payload || rows;
    msgpack_value v;
    if (is_payload && cur.peek(v) && v.type == msgpack_type::bin) {
      cur.next(v);
      bin = v.bytes;
    } else if (!cur.skip()) {
      return std::nullopt;
    }
  }
  if (!cur.at_end())
    return std::nullopt;
  if (inline_bytes != nullptr && !rows && bin.data() != nullptr)
    *inline_bytes = bin;
  return found;
}

} // namespace

void outbox::set_listener(storage::database& db, listener fn) {
  std::unique_lock guard{listeners_mtx};
  if (fn)
    listeners[&db] = std::make_shared<listener_entry>(listener_entry{std::move(fn)});
  else
    listeners.erase(&db);
}

caf::expected<std::optional<pending_call>> outbox::find(storage::database& db, std::string_view key,
                                                        std::vector<char>* payload) {
  auto txn = db.begin();
  auto raw = txn->get(calls_table, key);
  if (!raw)
    return std::move(raw.error());
  if (!*raw)
    return std::optional<pending_call>{};
  // The call from the row's bytes, as pending() reads it; a payload held in the row is
  // copied straight from them (decoding the row into a JSON tree copied it byte by byte).
  auto p = from_row_bytes(std::string{key}, **raw);
  if (!p)
    return std::move(p.error());
  if (payload) {
    std::string_view in_row;
    if (holds_payload(**raw, &in_row) && in_row.data() != nullptr) {
      payload->assign(in_row.begin(), in_row.end());
    } else {
      // Elsewhere (a blob, rows), or a payload member to report as damaged.
      nlohmann::json row;
      if (!storage::transaction::decode_row(**raw, row))
        return make_error(errc::corrupt_data, std::string{calls_table} + "/" + std::string{key}
                                                + ": stored row is not valid MessagePack");
      if (auto err = read_payload(*txn, key, row, *payload))
        return err;
    }
  }
  return std::optional<pending_call>{std::move(*p)};
}

void outbox::add_tables(procedure_registry& procs) {
  procs.add_table(calls_table);
  procs.add_table(payload_table, storage::table_kind::blobs);
  procs.add_table(done_table);
}

namespace {

// Records `call` in `txn`. Its payload is `payload`; `owned` (when not null) holds those bytes
// and may be moved into the listener's copy; `rows` (when not null) says which rows they are
// (enqueue_rows), in place of storing them.
caf::expected<std::string> record_call(call_context& ctx, storage::transaction& txn,
                                       const outbox_call& call, std::string_view payload,
                                       std::vector<char>* owned, const nlohmann::json* rows,
                                       std::shared_ptr<const payload_source> source = nullptr) {
  auto payload_size = source ? source->size : payload.size();
  if (call.result_procedure.empty())
    return make_error(errc::invalid_argument, "outbox call from execution "
                                                + std::to_string(ctx.execution_id)
                                                + " names no result procedure");
  if (auto err = check_specs(call.inputs, payload_size))
    return make_error(errc::invalid_argument, "outbox call from execution "
                                                + std::to_string(ctx.execution_id) + " to model '"
                                                + call.model + "': " + describe(err));
  // Execution ids are unique, so the execution id and a count of its calls name the call.
  char seq[9];
  std::snprintf(seq, sizeof(seq), "%08x", ctx.outbox_calls);
  auto key = hex16(ctx.execution_id) + "." + seq;
  auto task_id = partition_hash(key);
  auto row = to_row(call, ctx.execution_id, task_id);
  if (rows)
    row["payload_rows"] = *rows;
  // A small payload rides in the call's row: one row to write, read and delete, not two.
  else if (payload.size() <= txn.db().opts().blob_inline_max)
    row["payload"] = nlohmann::json::binary_t{std::vector<uint8_t>(payload.begin(), payload.end())};
  else if (auto err = txn.put_blob(outbox::payload_table, key, payload))
    return err;
  if (auto err = txn.put_row(outbox::calls_table, key, row))
    return err;
  ++ctx.outbox_calls;
  if (auto l = listener_of(txn.db())) {
    auto c = std::make_shared<committed_call>();
    c->call.key = key;
    c->call.task_id = task_id;
    c->call.execution_id = ctx.execution_id;
    c->call.call = call;
    // Copied (or moved) unless that would hold more than hint_bytes in calls not yet handled.
    if (source)
      c->source = std::move(source);
    else if (*l->held + payload.size() <= outbox::hint_bytes
             || payload.size() <= txn.db().opts().blob_inline_max) {
      *l->held += payload.size();
      c->held = l->held;
      c->held_bytes = payload.size();
      if (owned)
        c->payload = std::move(*owned);
      else
        c->payload.assign(payload.begin(), payload.end());
    }
    txn.after_commit([l, c = std::move(c)]() mutable {
      // Committed; the dispatcher not told yet (it finds the call by its scan, or after a
      // restart).
      COMB_SYNC_POINT("outbox.after_commit");
      stage_trace::mark("commit.hook");
      l->fn(std::move(c));
    });
  }
  return key;
}

} // namespace

caf::expected<std::string> outbox::enqueue(call_context& ctx, storage::transaction& txn,
                                           const outbox_call& call, std::string_view payload) {
  return record_call(ctx, txn, call, payload, nullptr, nullptr);
}

caf::expected<std::string> outbox::enqueue(call_context& ctx, storage::transaction& txn,
                                           const outbox_call& call, std::vector<char>&& payload) {
  return record_call(ctx, txn, call, std::string_view{payload.data(), payload.size()}, &payload,
                     nullptr);
}

caf::expected<std::string> outbox::enqueue_rows(call_context& ctx, storage::transaction& txn,
                                                const outbox_call& call, const std::string& table,
                                                const std::vector<std::string>& keys) {
  auto what = "outbox call from execution " + std::to_string(ctx.execution_id) + " to model '"
              + call.model + "'";
  if (keys.empty())
    return make_error(errc::invalid_argument, what + ": no input rows named");
  std::vector<char> payload;
  uint64_t hash = 0;
  auto t = txn.db().table(table);
  if (keys.size() == 1 && t && t->kind == storage::table_kind::blobs) {
    // One blob: pinned, not read. Whoever sends the call reads it once, to where it goes (a
    // shared-memory region), checked against the hash recorded here.
    std::optional<storage::blob_store::pinned> pinned;
    auto found = txn.pin_blob(table, keys.front(), pinned, payload);
    if (!found)
      return std::move(found.error());
    if (!*found)
      return make_error(errc::not_found,
                        what + ": no row '" + keys.front() + "' in table '" + table + "'");
    if (pinned) {
      nlohmann::json rows{
        {"table", table}, {"keys", keys}, {"bytes", pinned->size()}, {"xxh3", pinned->hash()}};
      auto src = std::make_shared<payload_source>();
      src->size = pinned->size();
      src->file = blob_file_ref{std::filesystem::absolute(pinned->file()).string(),
                                pinned->file_offset(), pinned->size(), pinned->hash()};
      src->read = [p = std::move(*pinned)](char* dest) { return p.read(dest); };
      return record_call(ctx, txn, call, {}, nullptr, &rows, std::move(src));
    }
    hash = comb::xxh3_64(payload.data(), payload.size());
  } else if (auto err = append_rows(txn, table, keys, payload, what, hash)) {
    return err;
  }
  nlohmann::json rows{{"table", table}, {"keys", keys}, {"bytes", payload.size()}, {"xxh3", hash}};
  return record_call(ctx, txn, call, std::string_view{payload.data(), payload.size()}, &payload,
                     &rows);
}

void outbox::add_result_procedure(procedure_registry& procs, std::string name, procedure_fn fn,
                                  procedure_options opts) {
  add_tables(procs);
  auto wrapped = [fn = std::move(fn)](call_context& ctx, storage::transaction& txn,
                                      const nlohmann::json& args) -> caf::expected<nlohmann::json> {
    auto key = arg<std::string>(args, "call");
    // The call's row, locked: a result applied removes it and records the call as done in
    // one transaction, so while the row is there no result was applied, and a second result
    // for the same call waits for this lock and then finds the done row. (The done table is
    // read only when the call is gone: one locked read per result, not two.)
    auto row = txn.get_for_update(calls_table, key);
    if (!row)
      return row.error();
    if (!*row) {
      auto done = txn.get_for_update(done_table, key);
      if (!done)
        return done.error();
      if (*done)
        return nlohmann::json{{"applied", false}, {"duplicate", true}};
      return make_error(errc::not_found,
                        "result for outbox call '" + key + "': no such call in the outbox");
    }
    // Payloads in the call's row or made of rows it names have no blob to delete.
    auto in_row = holds_payload(**row);
    if (!in_row)
      return make_error(errc::corrupt_data, std::string{calls_table} + "/" + key
                                              + ": stored row is not valid MessagePack");
    auto r = fn(ctx, txn, args);
    if (!r)
      return r.error();
    if (auto err = txn.del(calls_table, key))
      return err;
    if (!*in_row)
      if (auto err = txn.del_blob(payload_table, key))
        return err;
    nlohmann::json rec{{"result_execution", ctx.execution_id}};
    if (auto i = args.find("result"); i != args.end() && i->is_object()) {
      for (auto field : {"model", "model_version", "model_digest"})
        if (auto j = i->find(field); j != i->end())
          rec[field] = *j;
    } else if (auto e = args.find("error"); e != args.end()) {
      rec["error"] = *e;
    }
    if (auto err = txn.put_row(done_table, key, rec))
      return err;
    // The result applied and the call marked done, in a transaction not yet committed.
    COMB_SYNC_POINT("outbox.result_before_commit");
    return nlohmann::json{{"applied", true}, {"result", std::move(*r)}};
  };
  procs.add(std::move(name), std::move(wrapped), std::move(opts));
}

caf::expected<std::vector<pending_call>> outbox::pending(
  storage::database& db, std::string_view after, size_t limit,
  const std::function<bool(std::string_view key)>& skip) {
  std::vector<pending_call> out;
  auto txn = db.begin();
  std::string from{after};
  if (!from.empty())
    from.push_back('\0');
  caf::error bad;
  auto err = txn->scan(calls_table, from, "", [&](std::string_view key, std::string_view value) {
    if (skip && skip(key))
      return true; // not decoded, not counted
    // Read from the row's bytes: an inline payload is stepped over, not decoded.
    auto p = from_row_bytes(std::string{key}, value);
    if (!p) {
      bad = p.error();
      return false;
    }
    out.push_back(std::move(*p));
    return out.size() < limit;
  });
  txn->rollback();
  if (err)
    return err;
  if (bad)
    return bad;
  return out;
}

caf::error outbox::payload(storage::database& db, std::string_view key, std::vector<char>& out) {
  auto call = find(db, key, &out);
  if (!call)
    return std::move(call.error());
  if (!*call)
    return make_error(errc::not_found, "outbox call '" + std::string{key} + "' is done");
  return {};
}

caf::expected<bool> outbox::done(storage::database& db, std::string_view key) {
  auto txn = db.begin();
  auto v = txn->get(done_table, key);
  txn->rollback();
  if (!v)
    return v.error();
  return v->has_value();
}

} // namespace comb::runtime
