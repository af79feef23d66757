#include "storage/log_record.hpp"

#include "base/errc.hpp"
#include "schemas/log_record.capnp.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/array.h>
#include <kj/exception.h>

#include <cstring>
#include <memory>
#include <optional>

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

log_record to_log_record(const invocation_record& rec) {
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

log_record to_log_record(const message_record& msg) {
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

namespace {

// The fields of one record, borrowed from a log_record or an invocation_record, so that both
// encode without an intermediate copy.
struct record_view {
  uint64_t lsn = 0;
  int64_t timestamp_ns = 0;
  bool invocation = false;
  std::string_view sender, receiver, procedure, role, status, payload, result;
  uint64_t execution_id = 0;
  uint64_t parent_id = 0;
  bool read_only = false;
  int64_t start_ns = 0;
  int64_t end_ns = 0;
  uint32_t partition = 0;
  const std::vector<row_change>* changes = nullptr;
  const std::vector<row_read>* reads = nullptr;
};

capnp::Text::Reader as_text(std::string_view s) {
  return {s.data(), s.size()};
}

// Appends the serialized message to a std::string (no intermediate flat array).
class string_output : public kj::OutputStream {
public:
  explicit string_output(std::string& out) : out_(out) {}
  void write(const void* buffer, size_t size) override {
    out_.append(static_cast<const char*>(buffer), size);
  }

private:
  std::string& out_;
};

// Zeroed space for the first segment of a record's message, reused by every encode on the
// thread: a record that fits needs no allocation for its message (MallocMessageBuilder zeroes
// what it used again when it goes).
constexpr size_t scratch_words = 1024;
thread_local std::unique_ptr<capnp::word[]> scratch;

// Appends a flat message to `out` (no intermediate flat array).
void append_message(std::string& out, capnp::MessageBuilder& mb) {
  out.reserve(out.size() + capnp::computeSerializedSizeInWords(mb) * sizeof(capnp::word));
  string_output os{out};
  capnp::writeMessage(os, mb);
}

// Writes the lsn and the record's flat message into `out` (replacing what it held; its
// capacity is kept). With `head`, also writes there head_front zero bytes, the lsn and the
// message as it is before its changes are set, with their row flags (the builder is
// serialized twice).
void encode_view(const record_view& r, std::string& out, std::string* head = nullptr,
                 size_t head_front = 0) {
  size_t bytes = 256 + r.sender.size() + r.receiver.size() + r.procedure.size() + r.role.size()
                 + r.status.size() + r.payload.size() + r.result.size();
  for (auto& c : *r.changes)
    bytes += 64 + c.table.size() + c.key.size() + c.value.size();
  for (auto& rd : *r.reads)
    bytes += 48 + rd.table.size() + rd.key.size();
  bytes += r.changes->size() + 8; // row flags
  // A first segment that holds the whole message: the thread's scratch space when it fits.
  auto words = bytes / sizeof(capnp::word) + 1;
  std::optional<capnp::MallocMessageBuilder> builder;
  if (words <= scratch_words) {
    if (!scratch)
      scratch.reset(new capnp::word[scratch_words]()); // zeroed
    builder.emplace(kj::arrayPtr(scratch.get(), scratch_words));
  } else {
    builder.emplace(static_cast<unsigned>(words));
  }
  auto b = builder->initRoot<LogRecord>();
  b.setTimestampNs(r.timestamp_ns);
  b.setKind(r.invocation ? LogRecord::Kind::INVOCATION : LogRecord::Kind::MESSAGE);
  b.setSender(as_text(r.sender));
  b.setReceiver(as_text(r.receiver));
  b.setExecutionId(r.execution_id);
  b.setParentId(r.parent_id);
  b.setProcedure(as_text(r.procedure));
  b.setRole(as_text(r.role));
  b.setStatus(as_text(r.status));
  b.setPayload(bytes_of(r.payload));
  b.setResult(bytes_of(r.result));
  b.setReadOnly(r.read_only);
  b.setStartNs(r.start_ns);
  b.setEndNs(r.end_ns);
  b.setPartition(r.partition);
  if (!r.reads->empty()) {
    auto rs = b.initReads(static_cast<unsigned>(r.reads->size()));
    for (size_t i = 0; i < r.reads->size(); ++i) {
      rs[static_cast<unsigned>(i)].setTable(as_text((*r.reads)[i].table));
      rs[static_cast<unsigned>(i)].setKey(bytes_of((*r.reads)[i].key));
    }
  }
  if (head) {
    if (!r.changes->empty()) {
      auto flags = b.initRowFlags(static_cast<unsigned>(r.changes->size()));
      for (size_t i = 0; i < r.changes->size(); ++i)
        flags[static_cast<unsigned>(i)] = row_flag((*r.changes)[i]);
    }
    head->clear();
    head->append(head_front, '\0');
    head->append(reinterpret_cast<const char*>(&r.lsn), 8);
    append_message(*head, *builder);
  }
  if (!r.changes->empty()) {
    auto cs = b.initChanges(static_cast<unsigned>(r.changes->size()));
    for (size_t i = 0; i < r.changes->size(); ++i) {
      auto& c = (*r.changes)[i];
      auto cb = cs[static_cast<unsigned>(i)];
      cb.setTable(as_text(c.table));
      cb.setKey(bytes_of(c.key));
      cb.setOp(c.kind == row_change::op::insert   ? RowChange::Op::INSERT
               : c.kind == row_change::op::update ? RowChange::Op::UPDATE
                                                  : RowChange::Op::DELETE);
      cb.setIsRow(c.is_row);
      cb.setValue(bytes_of(c.value));
    }
  }
  out.clear();
  out.append(reinterpret_cast<const char*>(&r.lsn), 8);
  append_message(out, *builder);
}

// The same fields as to_log_record(rec), borrowed.
record_view view_of(const invocation_record& rec) {
  record_view v;
  v.timestamp_ns = rec.end_ns;
  v.invocation = true;
  v.sender = rec.sender;
  v.receiver = rec.receiver;
  v.procedure = rec.procedure;
  v.role = rec.role;
  v.status = rec.status;
  v.payload = rec.args;
  v.result = rec.result;
  v.execution_id = rec.execution_id;
  v.parent_id = rec.parent_id;
  v.read_only = rec.read_only;
  v.start_ns = rec.start_ns;
  v.end_ns = rec.end_ns;
  v.partition = rec.partition;
  v.changes = &rec.changes;
  v.reads = &rec.reads;
  return v;
}

} // namespace

std::string encode(const log_record& r) {
  record_view v;
  v.lsn = r.lsn;
  v.timestamp_ns = r.timestamp_ns;
  v.invocation = r.kind == log_record::kind_t::invocation;
  v.sender = r.sender;
  v.receiver = r.receiver;
  v.procedure = r.procedure;
  v.role = r.role;
  v.status = r.status;
  v.payload = r.payload;
  v.result = r.result;
  v.execution_id = r.execution_id;
  v.parent_id = r.parent_id;
  v.read_only = r.read_only;
  v.start_ns = r.start_ns;
  v.end_ns = r.end_ns;
  v.partition = r.partition;
  v.changes = &r.changes;
  v.reads = &r.reads;
  std::string out;
  encode_view(v, out);
  return out;
}

std::string encode(const invocation_record& rec) {
  std::string out;
  encode_view(view_of(rec), out);
  return out;
}

void encode_committed(std::string& whole, std::string& head, const invocation_record& rec,
                      size_t head_front) {
  encode_view(view_of(rec), whole, &head, head_front);
}

uint8_t row_flag(const row_change& c) {
  uint8_t op = c.kind == row_change::op::insert ? 1 : c.kind == row_change::op::update ? 2 : 3;
  return static_cast<uint8_t>(op | (c.is_row ? 4 : 0));
}

bool from_row_flag(uint8_t flag, row_change& c) {
  if ((flag & 3) == 0 || (flag & ~7) != 0)
    return false;
  c.kind = (flag & 3) == 1   ? row_change::op::insert
           : (flag & 3) == 2 ? row_change::op::update
                             : row_change::op::del;
  c.is_row = (flag & 4) != 0;
  return true;
}

void set_lsn(std::string& encoded, uint64_t lsn) {
  if (encoded.size() >= 8)
    std::memcpy(encoded.data(), &lsn, 8);
}

uint64_t lsn_of(std::string_view encoded) {
  uint64_t lsn = 0;
  if (encoded.size() >= 8)
    std::memcpy(&lsn, encoded.data(), 8);
  return lsn;
}

namespace {

// head_only: a record with row flags need not hold its changes (a WAL head).
caf::expected<log_record> decode_impl(std::string_view bytes, bool head_only) {
  if (bytes.size() < 8)
    return make_error(errc::corrupt_data, "record of " + std::to_string(bytes.size())
                                            + " bytes is too short for its lsn");
  uint64_t lsn = lsn_of(bytes);
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
      return make_error(errc::corrupt_data,
                        "record has unknown kind " + std::to_string(static_cast<int>(k)));
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
      row_change rc;
      rc.table = text(c.getTable());
      rc.key = data(c.getKey());
      auto op = c.getOp();
      if (op == RowChange::Op::INSERT)
        rc.kind = row_change::op::insert;
      else if (op == RowChange::Op::UPDATE)
        rc.kind = row_change::op::update;
      else if (op == RowChange::Op::DELETE)
        rc.kind = row_change::op::del;
      else
        return make_error(errc::corrupt_data, "row change has unknown op");
      rc.is_row = c.getIsRow();
      rc.value = data(c.getValue());
      r.changes.push_back(std::move(rc));
    }
    for (auto rd : v.getReads())
      r.reads.push_back({text(rd.getTable()), data(rd.getKey())});
    if (mr.getEnd() != words.end())
      return make_error(errc::corrupt_data, std::to_string((words.end() - mr.getEnd()) * 8)
                                              + " bytes follow the record");
    auto flags = v.getRowFlags();
    if (flags.size() == 0)
      return r;
    if (r.changes.empty() && head_only) {
      r.row_flags.assign(reinterpret_cast<const char*>(flags.begin()), flags.size());
      return r;
    }
    if (r.changes.size() != flags.size())
      return make_error(errc::corrupt_data,
                        "record has row flags for " + std::to_string(flags.size())
                          + " row change(s) but holds " + std::to_string(r.changes.size()));
    for (size_t i = 0; i < r.changes.size(); ++i)
      if (flags[static_cast<unsigned>(i)] != row_flag(r.changes[i]))
        return make_error(errc::corrupt_data, "row change " + std::to_string(i)
                                                + " does not match the record's row flags");
  } catch (const kj::Exception& e) {
    return make_error(errc::corrupt_data,
                      std::string{"record does not decode: "} + e.getDescription().cStr());
  }
  return r;
}

} // namespace

caf::expected<log_record> decode(std::string_view bytes) {
  return decode_impl(bytes, /*head_only=*/false);
}

caf::expected<log_record> decode_head(std::string_view bytes) {
  return decode_impl(bytes, /*head_only=*/true);
}

} // namespace comb::storage
