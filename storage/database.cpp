#include "storage/database.hpp"

#include "base/errc.hpp"
#include "storage/blob_store.hpp"
#include "storage/transaction.hpp"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/transaction.h>
#include <rocksdb/utilities/transaction_db.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

namespace fs = std::filesystem;

namespace comb::storage {

namespace {

constexpr const char* marker_name = "COMB";
constexpr const char* marker_magic = "comb-data-folder";

bool valid_table_name(std::string_view name) {
  if (name.empty() || name.size() > 128)
    return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
  });
}

// Checks (or writes) the marker file. Returns an error for foreign or other-version folders.
caf::error check_marker(const std::string& dir, bool create) {
  std::error_code ec;
  auto marker = fs::path{dir} / marker_name;
  if (fs::exists(marker, ec)) {
    std::ifstream in{marker};
    std::string magic;
    int version = -1;
    in >> magic >> version;
    if (magic != marker_magic)
      return make_error(errc::not_comb_folder,
                        dir + ": " + marker_name + " file is not a Comb marker");
    if (version != format_version)
      return make_error(errc::format_mismatch,
                        dir + ": data format version " + std::to_string(version)
                          + ", this build reads version " + std::to_string(format_version));
    return {};
  }
  bool empty = !fs::exists(dir, ec) || fs::is_empty(dir, ec);
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec))
    return make_error(errc::not_comb_folder, dir + ": not a directory");
  if (!empty)
    return make_error(errc::not_comb_folder,
                      dir + ": folder has files but no " + marker_name
                        + " marker; refusing to use a folder that is not Comb's");
  if (!create)
    return make_error(errc::not_found, dir + ": no Comb data folder here");
  fs::create_directories(dir, ec);
  if (ec)
    return make_error(errc::storage_error, dir + ": cannot create: " + ec.message());
  std::ofstream out{marker};
  out << marker_magic << ' ' << format_version << '\n';
  out.close();
  if (!out)
    return make_error(errc::storage_error, dir + ": cannot write the marker file");
  return {};
}

} // namespace

bool parse_durability(const std::string& text, durability& out) {
  if (text == "sync")
    out = durability::sync;
  else if (text == "async")
    out = durability::async;
  else
    return false;
  return true;
}

std::string to_string(durability x) {
  return x == durability::sync ? "sync" : "async";
}

caf::error to_error(const rocksdb::Status& s, std::string_view what) {
  std::string msg{what};
  msg += ": ";
  msg += s.ToString();
  if (s.IsBusy() || s.IsTimedOut() || s.IsTryAgain() || s.IsDeadlock())
    return make_error(errc::conflict, std::move(msg));
  if (s.IsCorruption())
    return make_error(errc::corrupt_data, std::move(msg));
  if (s.IsNotFound())
    return make_error(errc::not_found, std::move(msg));
  return make_error(errc::storage_error, std::move(msg));
}

database::database(std::string dir, options opts) : dir_(std::move(dir)), opts_(opts) {
}

caf::expected<std::unique_ptr<database>> database::open(const std::string& dir,
                                                        const options& opts) {
  if (auto err = check_marker(dir, opts.create_if_missing && !opts.read_only))
    return err;
  std::unique_ptr<database> self{new database(dir, opts)};
  auto db_dir = (fs::path{dir} / "db").string();

  rocksdb::Options ro;
  ro.create_if_missing = !opts.read_only;
  ro.create_missing_column_families = !opts.read_only;
  ro.IncreaseParallelism(2);
  // One write group's WAL write overlaps the previous group's memtable inserts, so that
  // commits waiting for the WAL are not also held up by the memtable (with provenance the WAL
  // entries are larger and take longer).
  ro.enable_pipelined_write = true;
  if (opts.keep_wal_seconds > 0) {
    ro.WAL_ttl_seconds = opts.keep_wal_seconds;
    ro.WAL_size_limit_MB = 4096;
  }
  rocksdb::BlockBasedTableOptions bo;
  bo.block_cache = rocksdb::NewLRUCache(opts.block_cache_bytes);
  ro.table_factory.reset(rocksdb::NewBlockBasedTableFactory(bo));
  self->cf_options_ = std::make_unique<rocksdb::ColumnFamilyOptions>(ro);
  const auto& cfo = *self->cf_options_;

  std::vector<std::string> names;
  auto ls = rocksdb::DB::ListColumnFamilies(ro, db_dir, &names);
  if (!ls.ok())
    names = {rocksdb::kDefaultColumnFamilyName};
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (auto& n : names)
    descs.emplace_back(n, cfo);

  rocksdb::TransactionDBOptions to;
  to.transaction_lock_timeout = opts.lock_timeout_ms;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::Status s;
  if (opts.read_only) {
    // No lock file, no new LOG (nor the rename of the old one), no WAL or SST written.
    s = rocksdb::DB::OpenForReadOnly(ro, db_dir, descs, &handles, &self->reader_);
  } else {
    s = rocksdb::TransactionDB::Open(ro, to, db_dir, descs, &handles, &self->db_);
    self->reader_ = self->db_;
  }
  if (!s.ok() && s.IsIOError() && s.ToString().find("While lock file") != std::string::npos)
    return make_error(errc::storage_error,
                      dir
                        + ": the data folder is in use by another process (a running comb node?): "
                        + s.ToString());
  if (!s.ok())
    return to_error(s, std::string{opts.read_only ? "open (read-only) " : "open "} + db_dir);
  for (size_t i = 0; i < handles.size(); ++i) {
    self->owned_.push_back(handles[i]);
    if (names[i] != rocksdb::kDefaultColumnFamilyName) {
      auto t = self->cfs_.emplace(names[i], table_ref{handles[i], table_kind::rows}).first;
      t->second.name = t->first; // the map's nodes stay where they are
    }
  }
  if (auto err = self->open_blobs())
    return err;
  return self;
}

// Opens the blob store and counts the blobs that committed rows still reference; segments
// left with none (blobs of transactions that never committed) are deleted.
caf::error database::open_blobs() {
  if (!opts_.read_only || !has_table(blob_index_table))
    if (auto err = create_table(blob_index_table))
      return err;
  blob_index_ = handle(blob_index_table);
  auto store = blob_store::open((fs::path{dir_} / "blobs").string(), opts_.blob_segment_bytes,
                                opts_.blob_lanes, opts_.blob_spare_segments,
                                /*sync_names=*/opts_.mode == durability::sync,
                                /*read_only=*/opts_.read_only);
  if (!store)
    return std::move(store.error());
  blobs_ = std::move(*store);
  std::unique_ptr<rocksdb::Iterator> it{reader_->NewIterator(rocksdb::ReadOptions{}, blob_index_)};
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    auto ref = blob_ref::decode({it->value().data(), it->value().size()});
    if (!ref)
      return make_error(errc::corrupt_data,
                        dir_ + ": a row of " + blob_index_table + " is not a blob reference");
    if (!blobs_->adopt(*ref))
      ++missing_blobs_;
  }
  if (!it->status().ok())
    return to_error(it->status(), "read " + std::string{blob_index_table});
  if (!opts_.read_only) // a reader leaves the segments as they are
    blobs_->finish_recovery();
  return {};
}

database::~database() {
  spare_.clear(); // before the TransactionDB they belong to
  if (reader_) {
    for (auto* h : owned_)
      reader_->DestroyColumnFamilyHandle(h).PermitUncheckedError();
    delete reader_; // db_ when not read-only
  }
}

caf::error database::create_table(const std::string& name, table_kind kind) {
  if (!valid_table_name(name))
    return make_error(errc::invalid_argument,
                      "table name '" + name + "' must be 1..128 chars of [A-Za-z0-9_.-]");
  std::unique_lock guard{mtx_};
  if (auto i = cfs_.find(name); i != cfs_.end()) {
    if (kind == table_kind::blobs) // the kind is declared again at each open
      i->second.kind = kind;
    return {};
  }
  if (!db_)
    return make_error(errc::storage_error,
                      dir_ + ": opened read-only, it has no table '" + name + "' to read");
  rocksdb::ColumnFamilyHandle* h = nullptr;
  auto s = db_->CreateColumnFamily(*cf_options_, name, &h);
  if (!s.ok())
    return to_error(s, "create table " + name);
  owned_.push_back(h);
  auto i = cfs_.emplace(name, table_ref{h, kind}).first;
  i->second.name = i->first; // the map's nodes stay where they are
  return {};
}

std::optional<database::table_ref> database::table(std::string_view name) const {
  std::shared_lock guard{mtx_};
  auto i = cfs_.find(name);
  if (i == cfs_.end())
    return std::nullopt;
  return i->second;
}

bool database::has_table(std::string_view name) const {
  return handle(name) != nullptr;
}

rocksdb::ColumnFamilyHandle* database::handle(std::string_view table) const {
  auto t = this->table(table);
  return t ? t->handle : nullptr;
}

std::vector<std::string> database::tables() const {
  std::shared_lock guard{mtx_};
  std::vector<std::string> out;
  for (auto& [k, v] : cfs_)
    out.push_back(k);
  std::sort(out.begin(), out.end());
  return out;
}

caf::error database::scan_wal(
  uint64_t after_seq,
  const std::function<void(std::string_view blob, const std::vector<wal_write>& before)>& fn)
  const {
  std::unique_ptr<rocksdb::TransactionLogIterator> it;
  auto s = reader_->GetUpdatesSince(after_seq + 1, &it,
                                    rocksdb::TransactionLogIterator::ReadOptions{});
  if (s.IsNotFound())
    return {}; // no WAL at all
  if (!s.ok())
    return to_error(s, "read the WAL");
  std::unordered_map<uint32_t, std::string> names;
  {
    std::shared_lock guard{mtx_};
    for (auto& [name, ref] : cfs_)
      names.emplace(ref.handle->GetID(), name);
  }
  struct collector : rocksdb::WriteBatch::Handler {
    const std::function<void(std::string_view, const std::vector<wal_write>&)>* fn;
    const std::unordered_map<uint32_t, std::string>* names;
    uint32_t blob_index_id = 0;
    std::vector<wal_write> writes;
    void add(uint32_t cf, const rocksdb::Slice& key, const rocksdb::Slice& value, bool del) {
      if (cf == blob_index_id)
        return;
      auto n = names->find(cf);
      writes.push_back({n == names->end() ? std::string_view{} : std::string_view{n->second},
                        {key.data(), key.size()},
                        {value.data(), value.size()},
                        del});
    }
    void LogData(const rocksdb::Slice& blob) override { (*fn)({blob.data(), blob.size()}, writes); }
    rocksdb::Status PutCF(uint32_t cf, const rocksdb::Slice& key,
                          const rocksdb::Slice& value) override {
      add(cf, key, value, false);
      return rocksdb::Status::OK();
    }
    rocksdb::Status DeleteCF(uint32_t cf, const rocksdb::Slice& key) override {
      add(cf, key, {}, true);
      return rocksdb::Status::OK();
    }
    rocksdb::Status SingleDeleteCF(uint32_t, const rocksdb::Slice&) override {
      return rocksdb::Status::OK();
    }
    rocksdb::Status DeleteRangeCF(uint32_t, const rocksdb::Slice&, const rocksdb::Slice&) override {
      return rocksdb::Status::OK();
    }
    rocksdb::Status MergeCF(uint32_t, const rocksdb::Slice&, const rocksdb::Slice&) override {
      return rocksdb::Status::OK();
    }
    rocksdb::Status PutEntityCF(uint32_t, const rocksdb::Slice&, const rocksdb::Slice&) override {
      return rocksdb::Status::OK();
    }
    rocksdb::Status PutBlobIndexCF(uint32_t, const rocksdb::Slice&,
                                   const rocksdb::Slice&) override {
      return rocksdb::Status::OK();
    }
    rocksdb::Status MarkNoop(bool) override { return rocksdb::Status::OK(); }
    rocksdb::Status MarkCommitWithTimestamp(const rocksdb::Slice&, const rocksdb::Slice&) override {
      return rocksdb::Status::OK();
    }
    rocksdb::Status MarkBeginPrepare(bool) override { return rocksdb::Status::OK(); }
    rocksdb::Status MarkEndPrepare(const rocksdb::Slice&) override { return rocksdb::Status::OK(); }
    rocksdb::Status MarkCommit(const rocksdb::Slice&) override { return rocksdb::Status::OK(); }
    rocksdb::Status MarkRollback(const rocksdb::Slice&) override { return rocksdb::Status::OK(); }
  } h;
  h.fn = &fn;
  h.names = &names;
  h.blob_index_id = blob_index_->GetID();
  for (; it->Valid(); it->Next()) {
    auto batch = it->GetBatch();
    if (batch.sequence <= after_seq)
      continue;
    h.writes.clear();
    auto st = batch.writeBatchPtr->Iterate(&h);
    if (!st.ok())
      return to_error(st, "read a WAL batch");
  }
  if (!it->status().ok() && !it->status().IsNotFound())
    return to_error(it->status(), "read the WAL");
  return {};
}

uint64_t database::latest_sequence() const {
  return reader_->GetLatestSequenceNumber();
}

std::unique_ptr<transaction> database::begin(bool group_sync) {
  rocksdb::WriteOptions wo;
  // In sync mode a commit syncs the WAL itself, unless the caller groups commits and makes
  // them durable together with sync_group() (see actors::group_committer).
  wo.sync = syncs_commits() && !group_sync;
  rocksdb::TransactionOptions txo;
  txo.deadlock_detect = true;
  std::unique_ptr<rocksdb::Transaction> t;
  {
    std::lock_guard guard{spare_mtx_};
    if (!spare_.empty()) {
      t = std::move(spare_.back());
      spare_.pop_back();
    }
  }
  // Given a finished transaction, RocksDB reinitializes it (new id, options, no snapshot,
  // empty write batch) and returns it: no allocation of the transaction and its batch's
  // index. perf_txn's async transfers under callgrind: 183.8k instructions a transfer
  // against 187.2k (-1.8%).
  auto* began = db_->BeginTransaction(wo, txo, t.get());
  if (began == t.get())
    t.release();
  t.reset(began);
  return std::make_unique<transaction>(*this, std::move(t));
}

void database::recycle(std::unique_ptr<rocksdb::Transaction> txn) {
  // As many as there are threads committing at once (state actors on their CAF workers, the
  // provenance writer, ...); more would only hold memory.
  constexpr size_t max_spare = 16;
  if (!txn)
    return;
  {
    std::lock_guard guard{spare_mtx_};
    if (spare_.size() < max_spare) {
      spare_.push_back(std::move(txn));
      return;
    }
  }
  txn.reset(); // outside the lock
}

caf::error database::sync_group() {
  if (!syncs_commits())
    return {};
  return sync_wal();
}

caf::error database::sync_wal() {
  if (!db_)
    return {}; // read-only: nothing written
  auto s = db_->SyncWAL();
  if (!s.ok())
    return to_error(s, "sync WAL");
  return {};
}

caf::expected<std::string> database::digest() const {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](std::string_view bytes) {
    // Length first, so ("ab","c") and ("a","bc") differ.
    uint64_t n = bytes.size();
    for (int i = 0; i < 8; ++i) {
      h ^= (n >> (8 * i)) & 0xff;
      h *= 1099511628211ull;
    }
    for (unsigned char c : bytes) {
      h ^= c;
      h *= 1099511628211ull;
    }
  };
  // One snapshot for the tables and the blob index, so the two agree.
  rocksdb::ReadOptions ro;
  ro.snapshot = reader_->GetSnapshot();
  struct release_snapshot {
    rocksdb::DB* db;
    const rocksdb::Snapshot* s;
    ~release_snapshot() { db->ReleaseSnapshot(s); }
  } guard{reader_, ro.snapshot};
  std::unique_ptr<rocksdb::Iterator> index{reader_->NewIterator(ro, blob_index_)};
  std::vector<char> blob;
  for (auto& name : tables()) {
    if (name.rfind("__", 0) == 0)
      continue;
    mix(name);
    std::unique_ptr<rocksdb::Iterator> it{reader_->NewIterator(ro, handle(name))};
    std::string index_key = name + '\0';
    auto prefix_size = index_key.size();
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      mix({it->key().data(), it->key().size()});
      index_key.resize(prefix_size);
      index_key.append(it->key().data(), it->key().size());
      index->Seek(index_key);
      if (index->Valid() && index->key() == index_key) {
        auto ref = blob_ref::decode({index->value().data(), index->value().size()});
        if (!ref)
          return make_error(errc::corrupt_data,
                            "digest of " + name + ": bad blob reference in the index");
        blob.resize(ref->size);
        if (auto err = blobs_->read(*ref, blob.data()))
          return err;
        mix({blob.data(), blob.size()});
      } else {
        mix({it->value().data(), it->value().size()});
      }
    }
    if (!it->status().ok())
      return to_error(it->status(), "digest of " + name);
  }
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return std::string{buf};
}

caf::expected<uint64_t> database::count(std::string_view table) const {
  auto* h = handle(table);
  if (!h)
    return make_error(errc::unknown_table, "no table '" + std::string{table} + "'");
  std::unique_ptr<rocksdb::Iterator> it{reader_->NewIterator(rocksdb::ReadOptions{}, h)};
  uint64_t n = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next())
    ++n;
  if (!it->status().ok())
    return to_error(it->status(), "count " + std::string{table});
  return n;
}

caf::expected<std::optional<std::string>> database::get(std::string_view table,
                                                        std::string_view key) const {
  auto* h = handle(table);
  if (!h)
    return make_error(errc::unknown_table, "no table '" + std::string{table} + "'");
  std::string value;
  auto s = reader_->Get(rocksdb::ReadOptions{}, h, rocksdb::Slice{key.data(), key.size()}, &value);
  if (s.IsNotFound())
    return std::optional<std::string>{};
  if (!s.ok())
    return to_error(s, "read " + std::string{table});
  return std::optional<std::string>{std::move(value)};
}

caf::error database::scan(std::string_view table,
                          const std::function<bool(std::string_view, std::string_view)>& fn) const {
  auto* h = handle(table);
  if (!h)
    return {};
  std::unique_ptr<rocksdb::Iterator> it{reader_->NewIterator(rocksdb::ReadOptions{}, h)};
  for (it->SeekToFirst(); it->Valid(); it->Next())
    if (!fn({it->key().data(), it->key().size()}, {it->value().data(), it->value().size()}))
      break;
  if (!it->status().ok())
    return to_error(it->status(), "scan " + std::string{table});
  return {};
}

} // namespace comb::storage
