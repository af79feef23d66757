#include "runtime/provenance/replay.hpp"

#include "runtime/provenance/large_values.hpp"
#include "runtime/provenance/provenance_recorder.hpp"

#include "base/errc.hpp"
#include "runtime/pieces/model_digest.hpp"
#include "runtime/pieces/services.hpp"
#include "storage/database.hpp"
#include "storage/provenance_log.hpp"
#include "storage/transaction.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string_view>

namespace comb::runtime {

namespace {

bool in_range(const storage::log_record& r, const replay_options& o) {
  return r.lsn <= o.until_lsn && r.timestamp_ns <= o.until_ns;
}

std::string change_text(const storage::row_change& c) {
  return c.table + "/" + c.key + " " + std::to_string(static_cast<int>(c.kind));
}

// The bytes of values that provenance logged as their digest (model chunks, and whatever
// else a transaction stored in a blobs table), found by digest and size among the blobs
// tables of the source database; each size is indexed once.
class blob_source {
public:
  blob_source(const storage::database& db, const std::set<std::string, std::less<>>& tables)
    : db_(db), tables_(tables) {}

  caf::expected<std::string> operator()(const std::string& sha256, uint64_t size) {
    if (indexed_.insert(size).second)
      for (const auto& table : tables_) {
        std::vector<char> buf;
        caf::error bad;
        auto err = db_.scan(table, [&](std::string_view key, std::string_view stored) {
          if (storage::transaction::stored_blob_size(stored) != size)
            return true;
          if ((bad = storage::transaction::read_stored_blob(db_, stored, buf)))
            return false;
          by_digest_.emplace(model_digest(buf.data(), buf.size()),
                             std::make_pair(table, std::string{key}));
          return true;
        });
        if (err || bad)
          return err ? err : bad;
      }
    auto i = by_digest_.find(sha256);
    if (i == by_digest_.end())
      return make_error(errc::not_found,
                        "no value of a blobs table in " + db_.dir() + " has that digest");
    auto& [table, key] = i->second;
    auto stored = db_.get(table, key);
    if (!stored)
      return std::move(stored.error());
    if (!*stored)
      return make_error(errc::not_found, table + "/" + key + " vanished from " + db_.dir());
    std::vector<char> buf;
    if (auto err = storage::transaction::read_stored_blob(db_, **stored, buf))
      return err;
    return std::string{buf.begin(), buf.end()};
  }

private:
  const storage::database& db_;
  const std::set<std::string, std::less<>>& tables_;
  std::set<uint64_t> indexed_;
  std::map<std::string, std::pair<std::string, std::string>> by_digest_;
};

// Arguments are logged as JSON text (comb::json_text), where a binary value (a function
// call's "output" bytes in its result procedure's arguments) is written the way
// nlohmann::json dumps one: {"bytes": [0..255, ...], "subtype": null or n}. Turned back into
// binary before the procedure runs again, or it would read an object where it read bytes
// (and replay would diverge). An argument of exactly that shape is taken for bytes.
void restore_binary(nlohmann::json& j) {
  if (j.is_object() && j.size() == 2 && j.contains("bytes") && j.contains("subtype")) {
    const auto& bytes = j["bytes"];
    const auto& sub = j["subtype"];
    if (bytes.is_array() && (sub.is_null() || sub.is_number_unsigned())
        && std::all_of(bytes.begin(), bytes.end(), [](const nlohmann::json& b) {
             return b.is_number_unsigned() && b.get<uint64_t>() <= 255;
           })) {
      std::vector<uint8_t> v;
      v.reserve(bytes.size());
      for (const auto& b : bytes)
        v.push_back(static_cast<uint8_t>(b.get<uint64_t>()));
      auto bin = sub.is_null() ? nlohmann::json::binary(std::move(v))
                               : nlohmann::json::binary(std::move(v), sub.get<uint8_t>());
      j = std::move(bin);
      return;
    }
  }
  if (j.is_object() || j.is_array())
    for (auto& v : j)
      restore_binary(v);
}

} // namespace

caf::error parse_until(const std::string& text, replay_options& opts) {
  uint64_t n = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec == std::errc{} && p == text.data() + text.size()) {
    opts.until_lsn = n;
    return {};
  }
  if (ec == std::errc{} && std::string_view{p} == "ns") {
    opts.until_ns = static_cast<int64_t>(n);
    return {};
  }
  std::tm tm{};
  double frac = 0;
  int consumed = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed)
      == 6) {
    std::string rest = text.substr(static_cast<size_t>(consumed));
    if (!rest.empty() && rest[0] == '.') {
      size_t i = 1;
      while (i < rest.size() && std::isdigit(static_cast<unsigned char>(rest[i])))
        ++i;
      frac = std::stod("0" + rest.substr(0, i));
      rest = rest.substr(i);
    }
    if (rest == "Z" || rest.empty()) {
      tm.tm_year -= 1900;
      tm.tm_mon -= 1;
      auto secs = timegm(&tm);
      opts.until_ns = static_cast<int64_t>(secs) * 1'000'000'000 + static_cast<int64_t>(frac * 1e9);
      return {};
    }
  }
  return make_error(errc::invalid_argument,
                    "--until '" + text
                      + "' is neither an lsn, <n>ns, nor a UTC time like 2026-11-25T07:30:00Z");
}

caf::expected<replay_report> replay(const procedure_registry& app_procs, const replay_options& o) {
  // A node runs the runtime's services beside its apps: replay has them too, so that the
  // replayed database has the same tables (and digest) as the original.
  procedure_registry procs = app_procs;
  add_services(procs);
  // Tables of blobs: a re-executed put_blob stores the same bytes at another place.
  std::set<std::string, std::less<>> blob_tables;
  for (const auto& t : procs.tables())
    if (t.kind == storage::table_kind::blobs)
      blob_tables.insert(t.name);
  auto reader = storage::log_reader::open(o.log_dir);
  if (!reader)
    return std::move(reader.error());
  // First pass: the whole range must read cleanly and name only known procedures.
  std::string unknown;
  caf::error needs_source;
  auto check = reader->for_each(0, [&](storage::log_record&& r) {
    if (!in_range(r, o))
      return false;
    if (r.kind == storage::log_record::kind_t::invocation && r.status == "ok" && !r.read_only
        && !procs.find(r.procedure)) {
      unknown = r.procedure;
      return false;
    }
    // Without a source folder, values logged as digests cannot be replayed: say so before
    // anything is written (the text test is cheap; the JSON is parsed only when it hits).
    if (o.source_data.empty() && !needs_source && r.kind == storage::log_record::kind_t::invocation
        && r.status == "ok" && !r.read_only && r.payload.find(elided_key) != std::string::npos) {
      auto args = nlohmann::json::parse(r.payload, nullptr, /*allow_exceptions=*/false);
      if (!args.is_discarded() && has_elided(args))
        if (auto err = restore_elided(args, {}))
          needs_source = make_error(errc::not_found, "refusing to replay lsn "
                                                       + std::to_string(r.lsn) + " (" + r.procedure
                                                       + "): " + describe(err));
    }
    return r.execution_id != o.execution || o.execution == 0;
  });
  if (needs_source && !check)
    return needs_source;
  if (check)
    return make_error(errc::corrupt_data, "refusing to replay " + o.log_dir
                                            + ": the log is damaged: " + describe(check));
  if (!unknown.empty())
    return make_error(errc::unknown_procedure, "refusing to replay: the log calls '" + unknown
                                                 + "', which this build does not register");
  // The source database, when given: it says where the log must end, and holds the bytes of
  // values the log holds only as digests.
  std::unique_ptr<storage::database> src;
  if (!o.source_data.empty()) {
    storage::log_stats st;
    if (auto err = reader->for_each(
          0, [](storage::log_record&&) { return true; }, &st))
      return make_error(errc::corrupt_data, "refusing to replay " + o.log_dir
                                              + ": the log is damaged: " + describe(err));
    storage::options so;
    so.create_if_missing = false;
    so.read_only = true; // the source is only read, and may be on a read-only filesystem
    so.keep_wal_seconds = provenance_recorder::keep_wal_seconds;
    auto opened = storage::database::open(o.source_data, so);
    if (!opened)
      return std::move(opened.error());
    src = std::move(*opened);
    auto end = provenance_recorder::check_log_end(*src, o.log_dir, st.last_lsn);
    if (!end)
      return std::move(end.error());
    if (!end->complete() && o.until_lsn > st.last_lsn)
      return make_error(errc::corrupt_data, "refusing to replay " + o.log_dir + " for "
                                              + o.source_data + ": " + end->describe());
  }
  std::error_code fec;
  if (std::filesystem::exists(o.into_dir, fec) && !std::filesystem::is_empty(o.into_dir, fec))
    return make_error(errc::invalid_argument, o.into_dir + ": replay needs a new or empty folder");
  auto db = storage::database::open(o.into_dir);
  if (!db)
    return std::move(db.error());
  for (auto& t : procs.tables())
    if (auto err = (*db)->create_table(t.name, t.kind))
      return err;
  replay_report rep;
  caf::error failure;
  std::optional<blob_source> blobs;
  elided_source from_source;
  if (src) {
    blobs.emplace(*src, blob_tables);
    from_source = [&](const std::string& sha, uint64_t size) { return (*blobs)(sha, size); };
  }
  auto err = reader->for_each(0, [&](storage::log_record&& r) {
    if (!in_range(r, o))
      return false;
    bool stop_after = o.execution != 0 && r.execution_id == o.execution;
    if (r.kind != storage::log_record::kind_t::invocation || r.status != "ok" || r.read_only) {
      ++rep.skipped;
      return !stop_after;
    }
    const auto* def = procs.find(r.procedure);
    auto args = nlohmann::json::parse(r.payload, nullptr, /*allow_exceptions=*/false);
    if (args.is_discarded()) {
      failure = make_error(errc::corrupt_data,
                           "lsn " + std::to_string(r.lsn) + ": arguments are not JSON");
      return false;
    }
    restore_binary(args);
    if (has_elided(args))
      if (auto rerr = restore_elided(args, from_source)) {
        failure = make_error(static_cast<errc>(rerr.code()),
                             "cannot replay lsn " + std::to_string(r.lsn) + " (" + r.procedure
                               + "): " + describe(rerr));
        return false;
      }
    call_context ctx;
    ctx.execution_id = r.execution_id;
    ctx.parent_id = r.parent_id;
    ctx.procedure = def->name;
    ctx.role = r.role;
    ctx.partition = r.partition;
    auto txn = (*db)->begin(/*group_sync=*/true); // synced together at the end
    caf::expected<nlohmann::json> res{nlohmann::json{}};
    try {
      res = def->fn(ctx, *txn, args);
    } catch (const std::exception& e) {
      res = make_error(errc::procedure_failed, e.what());
    }
    if (!res) {
      failure = make_error(errc::procedure_failed,
                           "replay diverged at lsn " + std::to_string(r.lsn) + " (" + r.procedure
                             + "): it failed now: " + describe(res.error()));
      return false;
    }
    // The re-executed transaction must write exactly what the original wrote.
    const auto& now = txn->changes();
    bool same = now.size() == r.changes.size();
    for (size_t i = 0; same && i < now.size(); ++i)
      same = now[i].table == r.changes[i].table && now[i].key == r.changes[i].key
             && now[i].kind == r.changes[i].kind
             && (now[i].value == r.changes[i].value
                 || (blob_tables.count(now[i].table) > 0
                     && storage::transaction::same_blob_value(now[i].value, r.changes[i].value))
                 // A large value logged as its digest (elide_row_value).
                 || same_elided_value(now[i].value, now[i].is_row, r.changes[i].value));
    if (!same) {
      failure = make_error(errc::procedure_failed,
                           "replay diverged at lsn " + std::to_string(r.lsn) + " (" + r.procedure
                             + "): it wrote " + std::to_string(now.size()) + " rows"
                             + (now.empty() ? "" : " starting " + change_text(now[0]))
                             + ", the log recorded " + std::to_string(r.changes.size())
                             + " (is the procedure deterministic?)");
      return false;
    }
    if (auto cerr = txn->commit()) {
      failure = cerr;
      return false;
    }
    ++rep.applied;
    rep.last_lsn = r.lsn;
    return !stop_after;
  });
  if (err)
    return err;
  if (failure)
    return failure;
  if (auto serr = (*db)->sync_wal())
    return serr;
  auto digest = (*db)->digest();
  if (!digest)
    return std::move(digest.error());
  rep.digest = *digest;
  return rep;
}

} // namespace comb::runtime
