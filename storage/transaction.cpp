#include "storage/transaction.hpp"

#include "runtime/errc.hpp"
#include "storage/database.hpp"

#include <rocksdb/utilities/transaction.h>
#include <rocksdb/utilities/transaction_db.h>

namespace comb::storage {

namespace {

std::string known_key(std::string_view table, std::string_view key) {
  std::string k;
  k.reserve(table.size() + 1 + key.size());
  k.append(table);
  k.push_back('\0');
  k.append(key);
  return k;
}

caf::error no_table(std::string_view table) {
  return make_error(errc::unknown_table, "no table '" + std::string{table} + "'");
}

} // namespace

transaction::transaction(database& db, std::unique_ptr<rocksdb::Transaction> txn)
  : db_(db), txn_(std::move(txn)) {
}

transaction::~transaction() {
  if (!done_)
    rollback();
}

caf::expected<std::optional<std::string>>
transaction::read(std::string_view table, std::string_view key, bool for_update) {
  auto* cf = db_.handle(table);
  if (!cf)
    return no_table(table);
  std::string value;
  rocksdb::ReadOptions ro;
  rocksdb::Slice k{key.data(), key.size()};
  auto s = for_update ? txn_->GetForUpdate(ro, cf, k, &value) : txn_->Get(ro, cf, k, &value);
  if (record_reads_)
    reads_.push_back({std::string{table}, std::string{key}});
  if (s.IsNotFound()) {
    known_[known_key(table, key)] = false;
    return std::optional<std::string>{};
  }
  if (!s.ok())
    return to_error(s, "read " + std::string{table});
  known_[known_key(table, key)] = true;
  return std::optional<std::string>{std::move(value)};
}

caf::expected<std::optional<std::string>> transaction::get(std::string_view table,
                                                           std::string_view key) {
  return read(table, key, false);
}

caf::expected<std::optional<std::string>>
transaction::get_for_update(std::string_view table, std::string_view key) {
  return read(table, key, true);
}

caf::error transaction::write(std::string_view table, std::string_view key,
                              std::string_view value, bool is_row, bool must_be_absent) {
  auto* cf = db_.handle(table);
  if (!cf)
    return no_table(table);
  auto kk = known_key(table, key);
  auto i = known_.find(kk);
  bool exists;
  if (i != known_.end() && !must_be_absent) {
    exists = i->second;
  } else {
    // Lock the row while finding out whether it exists, so insert-if-absent is atomic.
    std::string ignored;
    auto s = txn_->GetForUpdate(rocksdb::ReadOptions{}, cf, {key.data(), key.size()}, &ignored);
    if (!s.ok() && !s.IsNotFound())
      return to_error(s, "write " + std::string{table});
    exists = s.ok();
  }
  if (must_be_absent && exists)
    return make_error(errc::already_exists,
                      std::string{table} + ": a row with key '" + std::string{key}
                        + "' already exists");
  auto s = txn_->Put(cf, {key.data(), key.size()}, {value.data(), value.size()});
  if (!s.ok())
    return to_error(s, "write " + std::string{table});
  known_[std::move(kk)] = true;
  runtime::row_change c;
  c.table = table;
  c.key = key;
  c.kind = exists ? runtime::row_change::op::update : runtime::row_change::op::insert;
  c.is_row = is_row;
  c.value = value;
  changes_.push_back(std::move(c));
  wrote_ = true;
  return {};
}

caf::error transaction::put(std::string_view table, std::string_view key,
                            std::string_view value) {
  return write(table, key, value, /*is_row=*/false, /*must_be_absent=*/false);
}

caf::error transaction::insert(std::string_view table, std::string_view key,
                               std::string_view value) {
  return write(table, key, value, /*is_row=*/false, /*must_be_absent=*/true);
}

void transaction::put_log_data(std::string_view blob) {
  txn_->PutLogData({blob.data(), blob.size()});
}

caf::error transaction::del(std::string_view table, std::string_view key) {
  auto* cf = db_.handle(table);
  if (!cf)
    return no_table(table);
  auto s = txn_->Delete(cf, {key.data(), key.size()});
  if (!s.ok())
    return to_error(s, "delete from " + std::string{table});
  known_[known_key(table, key)] = false;
  runtime::row_change c;
  c.table = table;
  c.key = key;
  c.kind = runtime::row_change::op::del;
  changes_.push_back(std::move(c));
  wrote_ = true;
  return {};
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

caf::expected<std::optional<nlohmann::json>>
decode_row(std::string_view table, std::string_view key,
           caf::expected<std::optional<std::string>> raw) {
  if (!raw)
    return raw.error();
  if (!*raw)
    return std::optional<nlohmann::json>{};
  auto j = nlohmann::json::from_msgpack(**raw, /*strict=*/true, /*allow_exceptions=*/false);
  if (j.is_discarded())
    return make_error(errc::corrupt_data, std::string{table} + "/" + std::string{key}
                                            + ": stored row is not valid MessagePack");
  return std::optional<nlohmann::json>{std::move(j)};
}

} // namespace

caf::expected<std::optional<nlohmann::json>> transaction::get_row(std::string_view table,
                                                                  std::string_view key) {
  return decode_row(table, key, read(table, key, false));
}

caf::expected<std::optional<nlohmann::json>>
transaction::get_row_for_update(std::string_view table, std::string_view key) {
  return decode_row(table, key, read(table, key, true));
}

caf::error transaction::put_row(std::string_view table, std::string_view key,
                                const nlohmann::json& row) {
  std::string bytes;
  nlohmann::json::to_msgpack(row, bytes);
  return write(table, key, bytes, /*is_row=*/true, /*must_be_absent=*/false);
}

caf::error transaction::insert_row(std::string_view table, std::string_view key,
                                   const nlohmann::json& row) {
  std::string bytes;
  nlohmann::json::to_msgpack(row, bytes);
  return write(table, key, bytes, /*is_row=*/true, /*must_be_absent=*/true);
}

caf::error transaction::commit() {
  if (done_)
    return make_error(errc::invalid_argument, "transaction already finished");
  done_ = true;
  auto s = txn_->Commit();
  if (!s.ok()) {
    txn_->Rollback().PermitUncheckedError();
    return to_error(s, "commit");
  }
  return {};
}

void transaction::rollback() {
  if (done_)
    return;
  done_ = true;
  txn_->Rollback().PermitUncheckedError();
  changes_.clear();
}

} // namespace comb::storage
