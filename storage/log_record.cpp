#include "storage/log_record.hpp"

#include "runtime/errc.hpp"
#include "schemas/log_record.capnp.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/array.h>
#include <kj/exception.h>

#include <cstring>

namespace comb::storage {

namespace {

kj::ArrayPtr<const capnp::byte> bytes_of(std::string_view s) {
  return {reinterpret_cast<const capnp::byte*>(s.data()), s.size()};
}

std::string text(capnp::Text::Reader t) {
  return {t.cStr(), t.size()};
}

std::string data(capnp::Data::Reader d) {
  return {reinterpret_cast<const char*>(d.begin()), d.size()};
}

} // namespace

std::string_view log_record::kind_name() const {
  return kind == kind_t::invocation ? "invocation" : "message";
}

log_record to_log_record(const runtime::invocation_record& rec) {
  log_record r;
  r.kind = log_record::kind_t::invocation;
  r.timestamp_ns = rec.end_ns;
  r.sender = rec.sender;
  r.receiver = rec.receiver;
  r.execution_id = rec.execution_id;
  r.parent_id = rec.parent_id;
  r.procedure = rec.procedure;
  r.role = rec.role;
  r.status = rec.status;
  r.payload = rec.args;
  r.result = rec.result;
  r.read_only = rec.read_only;
  r.start_ns = rec.start_ns;
  r.end_ns = rec.end_ns;
  r.partition = rec.partition;
  r.changes = rec.changes;
  r.reads = rec.reads;
  return r;
}

log_record to_log_record(const runtime::message_record& msg) {
  log_record r;
  r.kind = log_record::kind_t::message;
  r.timestamp_ns = msg.timestamp_ns;
  r.sender = msg.sender;
  r.receiver = msg.receiver;
  r.execution_id = msg.execution_id;
  r.parent_id = msg.parent_id;
  r.procedure = msg.procedure;
  r.role = msg.role;
  r.status = msg.status;
  r.payload = msg.kind + (msg.payload.empty() ? "" : " " + msg.payload);
  return r;
}

std::string encode(const log_record& r) {
  capnp::MallocMessageBuilder mb;
  auto b = mb.initRoot<LogRecord>();
  b.setTimestampNs(r.timestamp_ns);
  b.setKind(r.kind == log_record::kind_t::invocation ? LogRecord::Kind::INVOCATION
                                                     : LogRecord::Kind::MESSAGE);
  b.setSender(r.sender);
  b.setReceiver(r.receiver);
  b.setExecutionId(r.execution_id);
  b.setParentId(r.parent_id);
  b.setProcedure(r.procedure);
  b.setRole(r.role);
  b.setStatus(r.status);
  b.setPayload(bytes_of(r.payload));
  b.setResult(bytes_of(r.result));
  b.setReadOnly(r.read_only);
  b.setStartNs(r.start_ns);
  b.setEndNs(r.end_ns);
  b.setPartition(r.partition);
  if (!r.changes.empty()) {
    auto cs = b.initChanges(static_cast<unsigned>(r.changes.size()));
    for (size_t i = 0; i < r.changes.size(); ++i) {
      auto& c = r.changes[i];
      auto cb = cs[static_cast<unsigned>(i)];
      cb.setTable(c.table);
      cb.setKey(bytes_of(c.key));
      cb.setOp(c.kind == runtime::row_change::op::insert   ? RowChange::Op::INSERT
               : c.kind == runtime::row_change::op::update ? RowChange::Op::UPDATE
                                                           : RowChange::Op::DELETE);
      cb.setIsRow(c.is_row);
      cb.setValue(bytes_of(c.value));
    }
  }
  if (!r.reads.empty()) {
    auto rs = b.initReads(static_cast<unsigned>(r.reads.size()));
    for (size_t i = 0; i < r.reads.size(); ++i) {
      rs[static_cast<unsigned>(i)].setTable(r.reads[i].table);
      rs[static_cast<unsigned>(i)].setKey(bytes_of(r.reads[i].key));
    }
  }
  auto words = capnp::messageToFlatArray(mb);
  auto bytes = words.asBytes();
  std::string out(8 + bytes.size(), '\0');
  std::memcpy(out.data() + 8, bytes.begin(), bytes.size());
  set_lsn(out, r.lsn);
  return out;
}

void set_lsn(std::string& encoded, uint64_t lsn) {
  if (encoded.size() >= 8)
    std::memcpy(encoded.data(), &lsn, 8);
}

caf::expected<log_record> decode(std::string_view bytes) {
  if (bytes.size() < 8)
    return make_error(errc::corrupt_data, "record of " + std::to_string(bytes.size())
                                            + " bytes is too short for its lsn");
  uint64_t lsn;
  std::memcpy(&lsn, bytes.data(), 8);
  bytes.remove_prefix(8);
  if (bytes.size() % sizeof(capnp::word) != 0 || bytes.empty())
    return make_error(errc::corrupt_data, "record of " + std::to_string(bytes.size())
                                            + " bytes is not a whole number of 8-byte words");
  // Copy into word-aligned memory: the frame's bytes need not be aligned.
  kj::Array<capnp::word> words = kj::heapArray<capnp::word>(bytes.size() / sizeof(capnp::word));
  std::memcpy(words.begin(), bytes.data(), bytes.size());
  log_record r;
  try {
    capnp::ReaderOptions opts;
    opts.traversalLimitInWords = words.size() * 4 + 1024;
    opts.nestingLimit = 16;
    capnp::FlatArrayMessageReader mr{words.asPtr(), opts};
    auto v = mr.getRoot<LogRecord>();
    r.lsn = lsn;
    r.timestamp_ns = v.getTimestampNs();
    auto k = v.getKind();
    if (k != LogRecord::Kind::INVOCATION && k != LogRecord::Kind::MESSAGE)
      return make_error(errc::corrupt_data, "record has unknown kind "
                                              + std::to_string(static_cast<int>(k)));
    r.kind = k == LogRecord::Kind::INVOCATION ? log_record::kind_t::invocation
                                              : log_record::kind_t::message;
    r.sender = text(v.getSender());
    r.receiver = text(v.getReceiver());
    r.execution_id = v.getExecutionId();
    r.parent_id = v.getParentId();
    r.procedure = text(v.getProcedure());
    r.role = text(v.getRole());
    r.status = text(v.getStatus());
    r.payload = data(v.getPayload());
    r.result = data(v.getResult());
    r.read_only = v.getReadOnly();
    r.start_ns = v.getStartNs();
    r.end_ns = v.getEndNs();
    r.partition = v.getPartition();
    for (auto c : v.getChanges()) {
      runtime::row_change rc;
      rc.table = text(c.getTable());
      rc.key = data(c.getKey());
      auto op = c.getOp();
      if (op == RowChange::Op::INSERT)
        rc.kind = runtime::row_change::op::insert;
      else if (op == RowChange::Op::UPDATE)
        rc.kind = runtime::row_change::op::update;
      else if (op == RowChange::Op::DELETE)
        rc.kind = runtime::row_change::op::del;
      else
        return make_error(errc::corrupt_data, "row change has unknown op");
      rc.is_row = c.getIsRow();
      rc.value = data(c.getValue());
      r.changes.push_back(std::move(rc));
    }
    for (auto rd : v.getReads())
      r.reads.push_back({text(rd.getTable()), data(rd.getKey())});
  } catch (const kj::Exception& e) {
    return make_error(errc::corrupt_data,
                      std::string{"record does not decode: "} + e.getDescription().cStr());
  }
  return r;
}

} // namespace comb::storage
