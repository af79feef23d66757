#include "storage/transaction.hpp"

#include "base/errc.hpp"
#include "base/msgpack.hpp"
#include "base/thread_slot.hpp"
#include "base/xxh3.hpp"
#include "storage/database.hpp"

#include <rocksdb/utilities/transaction.h>
#include <rocksdb/utilities/transaction_db.h>

#include <algorithm>
#include <cstdint>
#include <cstring>


namespace comb::storage {

namespace {

// A blobs-table row's key in the blob index: table + '\0' + key.
std::string blob_index_key(std::string_view table, std::string_view key) {
  std::string k;
  k.reserve(table.size() + 1 + key.size());
  k.append(table);
  k.push_back('\0');
  k.append(key);
  return k;
}

// The key of known_big_: the column family's address, then the row's key.
std::string big_known_key(const rocksdb::ColumnFamilyHandle* cf, std::string_view key) {
  std::string k(sizeof cf + key.size(), '\0');
  std::memcpy(k.data(), &cf, sizeof cf);
  std::memcpy(k.data() + sizeof cf, key.data(), key.size());
  return k;
}

caf::error no_table(std::string_view table) {
  return make_error(errc::unknown_table, "no table '" + std::string{table} + "'");
}

// The stored form of a blobs-table row: a tag, then the bytes or the blob's reference.
constexpr char inline_tag = 'I';
constexpr char blob_tag = 'B';

} // namespace

transaction::transaction(database& db, std::unique_ptr<rocksdb::Transaction> txn)
  : db_(db), txn_(std::move(txn)) {
}

transaction::~transaction() {
  if (!done_)
    rollback();
  db_.recycle(std::move(txn_)); // finished: committed or rolled back
}

bool* transaction::find_known(const rocksdb::ColumnFamilyHandle* cf, std::string_view key) {
  if (known_big_.empty()) {
    for (auto& r : known_small_)
      if (r.cf == cf && r.key == key)
        return &r.exists;
    return nullptr;
  }
  auto i = known_big_.find(big_known_key(cf, key));
  return i == known_big_.end() ? nullptr : &i->second;
}

void transaction::set_known(const rocksdb::ColumnFamilyHandle* cf, std::string_view key,
                            bool exists) {
  if (auto* e = find_known(cf, key)) {
    *e = exists;
    return;
  }
  if (known_big_.empty() && known_small_.size() < known_small_max) {
    if (known_small_.empty())
      known_small_.reserve(8);
    known_small_.push_back({cf, std::string{key}, exists});
    return;
  }
  for (auto& r : known_small_) // a large transaction: from now on, the hash map
    known_big_.emplace(big_known_key(r.cf, r.key), r.exists);
  known_small_.clear();
  known_big_.emplace(big_known_key(cf, key), exists);
}

caf::expected<rocksdb::ColumnFamilyHandle*> transaction::cf_of(std::string_view table,
                                                               table_kind kind,
                                                               const char* blob_call) const {
  for (size_t i = 0; i < tables_n_; ++i)
    if (tables_[i].name == table && tables_[i].kind == kind)
      return tables_[i].cf;
  auto t = db_.table(table);
  if (t && t->kind == kind) {
    if (tables_n_ < tables_kept)
      tables_[tables_n_++] = {t->name, t->handle, kind};
    return t->handle;
  }
  if (kind == table_kind::blobs) // a blob call on a rows table, or on no table
    return make_error(errc::invalid_argument,
                      "table '" + std::string{table} + "' is not a blobs table");
  if (!t)
    return no_table(table);
  return make_error(errc::invalid_argument, "table '" + std::string{table}
                                              + "' holds blobs: use transaction::" + blob_call);
}

caf::error transaction::check_row(std::string_view table, std::string_view key) {
  if (!guard_)
    return {};
  auto err = guard_(table, key);
  if (err && !guard_error_)
    guard_error_ = err;
  return err;
}

caf::expected<bool> transaction::read_into(std::string_view table, std::string_view key,
                                           bool for_update, table_kind kind, std::string& value) {
  if (auto err = check_row(table, key))
    return err;
  auto handle = cf_of(table, kind, "get_blob");
  if (!handle)
    return std::move(handle.error());
  auto* cf = *handle;
  rocksdb::ReadOptions ro;
  rocksdb::Slice k{key.data(), key.size()};
  auto s = for_update ? txn_->GetForUpdate(ro, cf, k, &value) : txn_->Get(ro, cf, k, &value);
  if (record_reads_)
    reads_.push_back({std::string{table}, std::string{key}});
  if (s.IsNotFound()) {
    set_known(cf, key, false);
    return false;
  }
  if (!s.ok())
    return to_error(s, "read " + std::string{table});
  set_known(cf, key, true);
  return true;
}

caf::expected<std::optional<std::string>> transaction::read(std::string_view table,
                                                            std::string_view key, bool for_update,
                                                            table_kind kind) {
  std::string value;
  auto found = read_into(table, key, for_update, kind, value);
  if (!found)
    return std::move(found.error());
  if (!*found)
    return std::optional<std::string>{};
  return std::optional<std::string>{std::move(value)};
}

caf::expected<std::optional<std::string>> transaction::get(std::string_view table,
                                                           std::string_view key) {
  return read(table, key, false);
}

caf::expected<std::optional<std::string>> transaction::get_for_update(std::string_view table,
                                                                      std::string_view key) {
  return read(table, key, true);
}

caf::error transaction::write(std::string_view table, std::string_view key, std::string_view value,
                              bool is_row, bool must_be_absent, table_kind kind) {
  if (auto err = check_row(table, key))
    return err;
  auto handle = cf_of(table, kind, "put_blob");
  if (!handle)
    return std::move(handle.error());
  auto* cf = *handle;
  auto* known = must_be_absent ? nullptr : find_known(cf, key);
  bool exists;
  if (known) {
    exists = *known;
  } else {
    // Lock the row while finding out whether it exists, so insert-if-absent is atomic.
    std::string ignored;
    auto s = txn_->GetForUpdate(rocksdb::ReadOptions{}, cf, {key.data(), key.size()}, &ignored);
    if (!s.ok() && !s.IsNotFound())
      return to_error(s, "write " + std::string{table});
    exists = s.ok();
  }
  if (must_be_absent && exists)
    return make_error(errc::already_exists, std::string{table} + ": a row with key '"
                                              + std::string{key} + "' already exists");
  auto s = txn_->Put(cf, {key.data(), key.size()}, {value.data(), value.size()});
  if (!s.ok())
    return to_error(s, "write " + std::string{table});
  if (known)
    *known = true;
  else
    set_known(cf, key, true);
  wrote_ = true;
  if (!record_changes_)
    return {};
  auto& c = new_change();
  c.table.assign(table);
  c.key.assign(key);
  c.kind = exists ? row_change::op::update : row_change::op::insert;
  c.is_row = is_row;
  c.value.assign(value);
  return {};
}

row_change& transaction::new_change() {
  if (recorded_ < changes_.size())
    return changes_[recorded_++];
  if (changes_.capacity() == 0) // a procedure writes a few rows: no regrowth (and moves) for them
    changes_.reserve(4);
  ++recorded_;
  return changes_.emplace_back();
}

caf::error transaction::put(std::string_view table, std::string_view key, std::string_view value) {
  return write(table, key, value, /*is_row=*/false, /*must_be_absent=*/false);
}

caf::error transaction::put_untracked(std::string_view table, std::string_view key,
                                      std::string_view value) {
  auto handle = cf_of(table, table_kind::rows, "put_untracked");
  if (!handle)
    return std::move(handle.error());
  auto s = txn_->PutUntracked(*handle, {key.data(), key.size()}, {value.data(), value.size()});
  if (!s.ok())
    return to_error(s, "write " + std::string{table});
  return {};
}

caf::error transaction::insert(std::string_view table, std::string_view key,
                               std::string_view value) {
  return write(table, key, value, /*is_row=*/false, /*must_be_absent=*/true);
}

void transaction::put_log_data(std::string_view blob) {
  txn_->PutLogData({blob.data(), blob.size()});
}

caf::error transaction::del(std::string_view table, std::string_view key) {
  return erase(table, key, table_kind::rows);
}

caf::error transaction::erase(std::string_view table, std::string_view key, table_kind kind) {
  if (auto err = check_row(table, key))
    return err;
  auto handle = cf_of(table, kind, "del_blob");
  if (!handle)
    return std::move(handle.error());
  auto s = txn_->Delete(*handle, {key.data(), key.size()});
  if (!s.ok())
    return to_error(s, "delete from " + std::string{table});
  set_known(*handle, key, false);
  wrote_ = true;
  if (!record_changes_)
    return {};
  auto& c = new_change();
  c.table.assign(table);
  c.key.assign(key);
  c.kind = row_change::op::del;
  c.is_row = true;
  c.value.clear();
  return {};
}

caf::error transaction::replace_blob(std::string_view table, std::string_view key) {
  auto cf = cf_of(table, table_kind::blobs, nullptr);
  if (!cf)
    return std::move(cf.error());
  std::string old;
  auto s = txn_->GetForUpdate(rocksdb::ReadOptions{}, *cf, {key.data(), key.size()}, &old);
  if (!s.ok() && !s.IsNotFound())
    return to_error(s, "write " + std::string{table});
  set_known(*cf, key, s.ok());
  if (!s.ok() || old.empty() || old[0] != blob_tag)
    return {};
  auto ref = blob_ref::decode(std::string_view{old}.substr(1));
  if (!ref)
    return make_error(errc::corrupt_data, std::string{table} + "/" + std::string{key}
                                            + ": stored blob reference is damaged");
  auto mine = std::find_if(appended_.begin(), appended_.end(), [&](const blob_ref& r) {
    return r.segment == ref->segment && r.offset == ref->offset;
  });
  if (mine != appended_.end()) {
    // Written earlier in this transaction: nobody else can see it, free it now.
    db_.blobs().release(*mine);
    appended_.erase(mine);
  } else {
    replaced_.push_back(*ref);
  }
  auto s2 = txn_->Delete(db_.blob_index(), blob_index_key(table, key));
  if (!s2.ok())
    return to_error(s2, "write " + std::string{database::blob_index_table});
  return {};
}

bool transaction::same_blob_value(std::string_view a, std::string_view b) {
  if (a.size() == 1 + blob_ref::encoded_size && b.size() == a.size() && a[0] == blob_tag
      && b[0] == blob_tag) {
    auto ra = blob_ref::decode(a.substr(1));
    auto rb = blob_ref::decode(b.substr(1));
    if (ra && rb)
      return ra->size == rb->size && ra->hash == rb->hash;
  }
  return a == b;
}

caf::error transaction::put_blob(std::string_view table, std::string_view key,
                                 std::string_view bytes) {
  if (auto err = replace_blob(table, key))
    return err;
  std::string stored;
  if (bytes.size() <= db_.opts().blob_inline_max) {
    stored.reserve(1 + bytes.size());
    stored.push_back(inline_tag);
    stored.append(bytes);
  } else {
    auto ref = db_.blobs().append(bytes);
    if (!ref)
      return std::move(ref.error());
    appended_.push_back(*ref);
    auto encoded = ref->encode();
    auto s = txn_->Put(db_.blob_index(), blob_index_key(table, key), encoded);
    if (!s.ok())
      return to_error(s, "write " + std::string{database::blob_index_table});
    stored.reserve(1 + encoded.size());
    stored.push_back(blob_tag);
    stored.append(encoded);
  }
  return write(table, key, stored, /*is_row=*/false, /*must_be_absent=*/false, table_kind::blobs);
}

caf::expected<bool> transaction::get_blob(std::string_view table, std::string_view key,
                                          std::vector<char>& out, uint64_t* xxh3) {
  auto v = read(table, key, false, table_kind::blobs);
  if (!v)
    return std::move(v.error());
  if (!*v)
    return false;
  if (auto err = read_stored_blob(db_, **v, out, xxh3))
    return make_error(static_cast<errc>(err.code()),
                      std::string{table} + "/" + std::string{key} + ": " + describe(err));
  return true;
}

caf::expected<bool> transaction::pin_blob(std::string_view table, std::string_view key,
                                          std::optional<blob_store::pinned>& pinned,
                                          std::vector<char>& inline_out) {
  pinned.reset();
  auto v = read(table, key, false, table_kind::blobs);
  if (!v)
    return std::move(v.error());
  if (!*v)
    return false;
  std::string_view stored = **v;
  auto name = [&] { return std::string{table} + "/" + std::string{key} + ": "; };
  if (!stored.empty() && stored[0] == blob_tag) {
    auto ref = blob_ref::decode(stored.substr(1));
    if (!ref)
      return make_error(errc::corrupt_data, name() + "stored value is not a blob row");
    auto p = db_.blobs().pin(*ref);
    if (!p)
      return make_error(static_cast<errc>(p.error().code()), name() + describe(p.error()));
    pinned = std::move(*p);
    return true;
  }
  if (auto err = read_stored_blob(db_, stored, inline_out, nullptr))
    return make_error(static_cast<errc>(err.code()), name() + describe(err));
  return true;
}

std::optional<uint64_t> transaction::stored_blob_size(std::string_view stored) {
  if (!stored.empty() && stored[0] == inline_tag)
    return stored.size() - 1;
  if (!stored.empty() && stored[0] == blob_tag)
    if (auto ref = blob_ref::decode(stored.substr(1)))
      return ref->size;
  return std::nullopt;
}

bool transaction::stored_blob_holds(std::string_view stored, std::string_view bytes) {
  if (!stored.empty() && stored[0] == inline_tag)
    return stored.substr(1) == bytes;
  if (stored.empty() || stored[0] != blob_tag)
    return false;
  auto ref = blob_ref::decode(stored.substr(1));
  return ref && ref->size == bytes.size()
         && ref->hash == comb::xxh3_64(bytes.data(), bytes.size()); // as blob_store::append
}

caf::error transaction::read_stored_blob(const database& db, std::string_view stored,
                                         std::vector<char>& out) {
  return read_stored_blob(db, stored, out, nullptr);
}

caf::error transaction::read_stored_blob(const database& db, std::string_view stored,
                                         std::vector<char>& out, uint64_t* xxh3) {
  if (!stored.empty() && stored[0] == inline_tag) {
    out.assign(stored.begin() + 1, stored.end());
    if (xxh3)
      *xxh3 = comb::xxh3_64(out.data(), out.size());
    return {};
  }
  std::optional<blob_ref> ref;
  if (!stored.empty() && stored[0] == blob_tag)
    ref = blob_ref::decode(stored.substr(1));
  if (!ref)
    return make_error(errc::corrupt_data, "stored value is not a blob row");
  out.resize(ref->size);
  if (auto err = db.blobs().read(*ref, out.data()))
    return err;
  if (xxh3)
    *xxh3 = ref->hash; // blob_store::read checked the bytes against it
  return {};
}

caf::error transaction::del_blob(std::string_view table, std::string_view key) {
  if (auto err = replace_blob(table, key))
    return err;
  return erase(table, key, table_kind::blobs);
}

void transaction::abandon() {
  for (auto& r : appended_)
    db_.blobs().release(r);
  appended_.clear();
  replaced_.clear();
  after_commit_.clear();
}

caf::error transaction::scan(
  std::string_view table, std::string_view from, std::string_view to,
  const std::function<bool(std::string_view key, std::string_view value)>& fn) {
  auto* cf = db_.handle(table);
  if (!cf)
    return no_table(table);
  rocksdb::ReadOptions ro;
  std::unique_ptr<rocksdb::Iterator> it{txn_->GetIterator(ro, cf)};
  if (from.empty())
    it->SeekToFirst();
  else
    it->Seek({from.data(), from.size()});
  for (; it->Valid(); it->Next()) {
    std::string_view k{it->key().data(), it->key().size()};
    if (!to.empty() && k >= to)
      break;
    if (record_reads_)
      reads_.push_back({std::string{table}, std::string{k}});
    if (!fn(k, {it->value().data(), it->value().size()}))
      break;
  }
  if (!it->status().ok())
    return to_error(it->status(), "scan " + std::string{table});
  return {};
}

namespace {

// A row's MessagePack bytes, read or about to be written, kept from one call to the next on
// this thread: a row of more than 15 bytes costs no allocation per read or write. A nested
// call (e.g. from a row guard) gets a buffer of its own. Larger buffers are released after
// use instead of kept.
struct release_row_bytes {
  static constexpr size_t max_kept = 64 << 10;
  void operator()(std::string& bytes) const {
    if (bytes.capacity() > max_kept)
      std::string{}.swap(bytes);
    else
      bytes.clear();
  }
};
using row_buffer = thread_slot<std::string, release_row_bytes>;

} // namespace

caf::expected<std::optional<nlohmann::json>> transaction::read_row(std::string_view table,
                                                                   std::string_view key,
                                                                   bool for_update) {
  row_buffer buf;
  auto found = read_into(table, key, for_update, table_kind::rows, buf.get());
  if (!found)
    return std::move(found.error());
  if (!*found)
    return std::optional<nlohmann::json>{};
  nlohmann::json j;
  if (!decode_row(buf.get(), j))
    return make_error(errc::corrupt_data, std::string{table} + "/" + std::string{key}
                                            + ": stored row is not valid MessagePack");
  return std::optional<nlohmann::json>{std::move(j)};
}

namespace {

// How deep decode_row's fast reader follows nested arrays and maps before it leaves the row to
// nlohmann's parser (rows are shallow; the parser has no limit of its own).
constexpr size_t fast_row_depth = 32;

} // namespace

bool transaction::decode_row(std::string_view bytes, nlohmann::json& out) {
  {
    comb::msgpack_cursor in{bytes};
    out = nlohmann::json{};
    // Comb's cursor, for the forms whose JSON nlohmann's MessagePack parser makes without
    // doubt: the same values in fewer instructions than the parser's SAX events. Anything else
    // (bin, ext, a key that is not a string, damaged bytes, deeper nesting) goes to nlohmann's
    // parser below, which decides.
    if (comb::read_msgpack_json(in, out, fast_row_depth, /*allow_binary=*/false) && in.at_end())
      return true;
  }
  // Parsed into `out`: json::from_msgpack would copy the whole value once more (its
  // `return ok ? result : discarded` copies), an allocation per object and member.
  out = nlohmann::json{};
  nlohmann::detail::json_sax_dom_parser<nlohmann::json> dom(out, /*allow_exceptions=*/false);
  if (nlohmann::json::sax_parse(bytes, &dom, nlohmann::json::input_format_t::msgpack,
                                /*strict=*/true))
    return true;
  out = nlohmann::json{};
  return false;
}

caf::expected<std::optional<nlohmann::json>> transaction::get_row(std::string_view table,
                                                                  std::string_view key) {
  return read_row(table, key, false);
}

caf::expected<std::optional<nlohmann::json>> transaction::get_row_for_update(std::string_view table,
                                                                             std::string_view key) {
  return read_row(table, key, true);
}

caf::error transaction::put_row(std::string_view table, std::string_view key,
                                const nlohmann::json& row) {
  row_buffer buf;
  comb::append_msgpack(buf.get(), row);
  return write(table, key, buf.get(), /*is_row=*/true, /*must_be_absent=*/false);
}

caf::error transaction::insert_row(std::string_view table, std::string_view key,
                                   const nlohmann::json& row) {
  row_buffer buf;
  comb::append_msgpack(buf.get(), row);
  return write(table, key, buf.get(), /*is_row=*/true, /*must_be_absent=*/true);
}

caf::error transaction::commit() {
  if (done_)
    return make_error(errc::invalid_argument, "transaction already finished");
  done_ = true;
  if (guard_error_) { // the procedure touched a row it may not, and went on regardless
    txn_->Rollback().PermitUncheckedError();
    abandon();
    return guard_error_;
  }
  if (!appended_.empty() && db_.syncs_commits()) {
    // The rows will reference these blobs once the WAL is on disk: put the blobs there first.
    std::vector<uint64_t> segments;
    for (auto& r : appended_)
      if (std::find(segments.begin(), segments.end(), r.segment) == segments.end())
        segments.push_back(r.segment);
    for (auto id : segments)
      if (auto err = db_.blobs().sync(id)) {
        txn_->Rollback().PermitUncheckedError();
        abandon();
        return err;
      }
  }
  auto s = txn_->Commit();
  if (!s.ok()) {
    txn_->Rollback().PermitUncheckedError();
    abandon();
    return to_error(s, "commit");
  }
  appended_.clear();
  for (auto& r : replaced_)
    db_.blobs().release(r);
  replaced_.clear();
  auto fns = std::move(after_commit_);
  after_commit_.clear();
  for (auto& fn : fns)
    fn();
  return {};
}

void transaction::rollback() {
  if (done_)
    return;
  done_ = true;
  txn_->Rollback().PermitUncheckedError();
  abandon();
  changes_.clear();
  recorded_ = 0;
}

} // namespace comb::storage
