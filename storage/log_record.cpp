#include "storage/log_record.hpp"

#include "base/errc.hpp"
#include "base/json_text.hpp"
#include "base/msgpack.hpp"
#include "schemas/log_record.capnp.h"
#include "storage/record_value.hpp"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/array.h>
#include <kj/exception.h>

#include <array>
#include <charconv>
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

// -- record values as MessagePack -----------------------------------------------------------

using comb::msgpack_type;
using nlohmann::json;

// For each byte: whether json_text writes it as it is inside a string (as base/json_text.cpp).
constexpr auto plain_byte = [] {
  std::array<bool, 256> t{};
  for (int c = 0x20; c < 0x80; ++c)
    t[c] = c != '"' && c != '\\';
  return t;
}();

// Reads MessagePack (with comb::msgpack_cursor, which checks every read against the end) and
// appends its JSON text as comb::append_json_text writes the value nlohmann::json::from_msgpack
// makes of it. Refuses bin and ext values, keys that are not strings, nesting deeper than 256
// and text that is not UTF-8.
class msgpack_text {
public:
  msgpack_text(std::string_view in, std::string& out) : in_(in), out_(out) {}

  bool whole() { return value(0) && in_.at_end(); }

private:
  template <class Int>
  void number(Int v) {
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
    out_.append(buf, end);
  }

  bool string(std::string_view s) {
    bool plain = true;
    for (unsigned char c : s)
      plain = plain && plain_byte[c];
    if (plain) {
      out_.push_back('"');
      out_.append(s);
      out_.push_back('"');
      return true;
    }
    try {
      out_.append(json(std::string{s}).dump());
    } catch (const json::exception&) {
      return false; // not UTF-8
    }
    return true;
  }

  bool items(uint64_t n, int depth, bool map) {
    out_.push_back(map ? '{' : '[');
    std::string_view key;
    for (uint64_t i = 0; i < n; ++i) {
      if (i > 0)
        out_.push_back(',');
      if (map) {
        if (!in_.read_str(key) || !string(key))
          return false;
        out_.push_back(':');
      }
      if (!value(depth + 1))
        return false;
    }
    out_.push_back(map ? '}' : ']');
    return true;
  }

  bool value(int depth) {
    comb::msgpack_value v;
    if (depth > 256 || !in_.next(v))
      return false;
    switch (v.type) {
    case msgpack_type::nil:
      out_.append("null");
      return true;
    case msgpack_type::boolean:
      out_.append(v.bits != 0 ? "true" : "false");
      return true;
    case msgpack_type::unsigned_int:
      number(v.bits);
      return true;
    case msgpack_type::signed_int:
      number(v.as_int());
      return true;
    case msgpack_type::float32:
    case msgpack_type::float64:
      out_.append(json(v.as_double()).dump());
      return true;
    case msgpack_type::str:
      return string(v.bytes);
    case msgpack_type::array:
    case msgpack_type::map:
      return items(v.count, depth, v.type == msgpack_type::map);
    case msgpack_type::bin:
    case msgpack_type::ext:
      return false;
    }
    return false;
  }

  comb::msgpack_cursor in_;
  std::string& out_;
};

bool msgpack_to_text(std::string_view msgpack, std::string& out) {
  out.clear();
  return msgpack_text{msgpack, out}.whole();
}

} // namespace

void append_record_value(std::string& out, const nlohmann::json& value) {
  size_t start = out.size();
  out.push_back(record_msgpack_marker);
  if (comb::append_msgpack(out, value, /*ascii_only=*/true))
    return;
  out.resize(start);
  comb::append_json_text(out, value);
}

std::optional<std::string> record_value_text(std::string_view field) {
  if (!is_msgpack_value(field))
    return std::string{field};
  std::string out;
  if (!msgpack_to_text(field.substr(1), out))
    return std::nullopt;
  return out;
}

namespace {

// A record value's JSON text (for the record types that hold text, and format 1).
std::string value_text(std::string_view field) {
  auto t = record_value_text(field);
  return t ? std::move(*t) : std::string{field};
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
  r.payload = value_text(rec.args);
  r.result = value_text(rec.result);
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

// The fields of one record, borrowed from a log_record, an invocation_record or a
// message_record, so that each encodes without an intermediate copy.
struct record_view {
  uint64_t lsn = 0;
  int64_t timestamp_ns = 0;
  bool invocation = false;
  std::string_view sender, receiver, procedure, role, status, payload, result;
  /// A message's payload is its kind, then " " and its payload when that is not empty:
  /// `payload` holds the kind and `payload_tail` the rest.
  std::string_view payload_tail;
  uint64_t execution_id = 0;
  uint64_t parent_id = 0;
  bool read_only = false;
  int64_t start_ns = 0;
  int64_t end_ns = 0;
  uint32_t partition = 0;
  const std::vector<row_change>* changes = nullptr;
  const std::vector<row_read>* reads = nullptr;
  /// Format 1 only: the flags of a head's changes (log_record::row_flags).
  std::string_view row_flags;
  /// The payload / result is MessagePack (storage/record_value.hpp; its marker taken off).
  bool payload_msgpack = false;
  bool result_msgpack = false;
};

// An invocation's arguments and result that hold MessagePack are written as they are, their
// marker byte replaced by a flag bit.
void take_values(record_view& v) {
  if (!v.invocation)
    return;
  if (is_msgpack_value(v.payload)) {
    v.payload.remove_prefix(1);
    v.payload_msgpack = true;
  }
  if (is_msgpack_value(v.result)) {
    v.result.remove_prefix(1);
    v.result_msgpack = true;
  }
}

// -- format 2 -------------------------------------------------------------------------------

// After the lsn: bytes that no format-1 record has there (as a Cap'n Proto segment count they
// would mean 16 million segments), then the format's number.
constexpr char format_marker[3] = {'\xff', '\xff', '\xff'};
constexpr uint8_t format_compact = 2;
// The record's flag byte.
constexpr uint8_t flag_invocation = 1;
constexpr uint8_t flag_read_only = 2;
// The timestamp is end_ns (as for every invocation): it is not written again.
constexpr uint8_t flag_timestamp_is_end = 4;
// The payload (an invocation's arguments) / result field holds MessagePack: decode gives its
// JSON text. Records without these bits hold JSON text there, as all did before them.
constexpr uint8_t flag_payload_msgpack = 8;
constexpr uint8_t flag_result_msgpack = 16;
constexpr uint8_t known_flags = flag_invocation | flag_read_only | flag_timestamp_is_end
                                | flag_payload_msgpack | flag_result_msgpack;

// end_ns is written as its distance from start_ns, zigzagged (a few bytes, not nine).
uint64_t zigzag(uint64_t delta) {
  auto d = static_cast<int64_t>(delta);
  return (static_cast<uint64_t>(d) << 1) ^ static_cast<uint64_t>(d >> 63);
}
uint64_t unzigzag(uint64_t z) {
  return (z >> 1) ^ (~(z & 1) + 1);
}

size_t varint_size(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

char* put_varint(char* p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<char>(v);
  return p;
}

size_t field_size(std::string_view s) {
  return varint_size(s.size()) + s.size();
}

char* put_field(char* p, std::string_view s) {
  p = put_varint(p, s.size());
  if (!s.empty())
    std::memcpy(p, s.data(), s.size());
  return p + s.size();
}

size_t payload_size(const record_view& r) {
  return r.payload.size() + (r.payload_tail.empty() ? 0 : 1 + r.payload_tail.size());
}

// Writes the record in format 2 into `out` (replacing what it held; its capacity is kept):
//   [u64 lsn][ff ff ff 02][u8 flags: 1 invocation, 2 read-only, 4 timestamp is end_ns,
//                                   8 payload is MessagePack, 16 result is MessagePack]
//   varints: timestamp_ns (unless flag 4), execution_id, parent_id, start_ns,
//            end_ns - start_ns (zigzag), partition
//   fields ([varint size][bytes]): sender, receiver, procedure, role, status, payload, result
//   [varint reads] per read: table, key
//   [varint changes][one flag byte per change (row_flag)]          <- the head ends here
//   per change: table, key, value
// Writes the record after `front` bytes of `out` (left for the caller); returns the size of
// out's front and the record's head (the record up to the end of its row flags: the WAL
// head, a prefix of the whole record).
size_t encode_compact(const record_view& r, std::string& out, size_t front = 0) {
  auto& changes = *r.changes;
  auto& reads = *r.reads;
  size_t payload = payload_size(r);
  bool ts_is_end = r.timestamp_ns == r.end_ns;
  uint64_t end_delta =
    zigzag(static_cast<uint64_t>(r.end_ns) - static_cast<uint64_t>(r.start_ns));
  size_t prefix = 8 + 4 + 1 + (ts_is_end ? 0 : varint_size(static_cast<uint64_t>(r.timestamp_ns)))
                  + varint_size(r.execution_id) + varint_size(r.parent_id)
                  + varint_size(static_cast<uint64_t>(r.start_ns)) + varint_size(end_delta)
                  + varint_size(r.partition)
                  + field_size(r.sender) + field_size(r.receiver) + field_size(r.procedure)
                  + field_size(r.role) + field_size(r.status) + varint_size(payload) + payload
                  + field_size(r.result) + varint_size(reads.size())
                  + varint_size(changes.size()) + changes.size();
  for (auto& rd : reads)
    prefix += field_size(rd.table) + field_size(rd.key);
  size_t total = prefix;
  for (auto& c : changes)
    total += field_size(c.table) + field_size(c.key) + field_size(c.value);
  // Not cleared first: a kept buffer of about the same size is neither zero-filled again nor
  // copied; every byte after `front` is written below.
  out.resize(front + total);
  char* p = out.data() + front;
  std::memcpy(p, &r.lsn, 8);
  p += 8;
  std::memcpy(p, format_marker, 3);
  p[3] = static_cast<char>(format_compact);
  p += 4;
  *p++ = static_cast<char>((r.invocation ? flag_invocation : 0)
                           | (r.read_only ? flag_read_only : 0)
                           | (ts_is_end ? flag_timestamp_is_end : 0)
                           | (r.payload_msgpack ? flag_payload_msgpack : 0)
                           | (r.result_msgpack ? flag_result_msgpack : 0));
  if (!ts_is_end)
    p = put_varint(p, static_cast<uint64_t>(r.timestamp_ns));
  p = put_varint(p, r.execution_id);
  p = put_varint(p, r.parent_id);
  p = put_varint(p, static_cast<uint64_t>(r.start_ns));
  p = put_varint(p, end_delta);
  p = put_varint(p, r.partition);
  p = put_field(p, r.sender);
  p = put_field(p, r.receiver);
  p = put_field(p, r.procedure);
  p = put_field(p, r.role);
  p = put_field(p, r.status);
  p = put_varint(p, payload);
  if (!r.payload.empty())
    std::memcpy(p, r.payload.data(), r.payload.size());
  p += r.payload.size();
  if (!r.payload_tail.empty()) {
    *p++ = ' ';
    std::memcpy(p, r.payload_tail.data(), r.payload_tail.size());
    p += r.payload_tail.size();
  }
  p = put_field(p, r.result);
  p = put_varint(p, reads.size());
  for (auto& rd : reads) {
    p = put_field(p, rd.table);
    p = put_field(p, rd.key);
  }
  p = put_varint(p, changes.size());
  for (auto& c : changes)
    *p++ = static_cast<char>(row_flag(c));
  for (auto& c : changes) {
    p = put_field(p, c.table);
    p = put_field(p, c.key);
    p = put_field(p, c.value);
  }
  return front + prefix;
}

// Reads a format-2 record after its lsn and format bytes; every read is checked against the
// end, so arbitrary bytes never read out of bounds.
class compact_reader {
public:
  compact_reader(std::string_view bytes, size_t offset) : bytes_(bytes), at_(offset) {}

  bool failed() const { return !what_.empty(); }
  const std::string& what() const { return what_; }
  bool at_end() const { return at_ == bytes_.size(); }
  size_t left() const { return bytes_.size() - at_; }

  uint64_t varint(const char* name) {
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
      if (at_ >= bytes_.size()) {
        fail(name, "is cut off");
        return 0;
      }
      auto b = static_cast<uint8_t>(bytes_[at_++]);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0)
        return v;
    }
    fail(name, "is not a valid varint");
    return 0;
  }

  uint8_t byte(const char* name) {
    if (at_ >= bytes_.size()) {
      fail(name, "is cut off");
      return 0;
    }
    return static_cast<uint8_t>(bytes_[at_++]);
  }

  std::string field(const char* name) {
    auto n = varint(name);
    if (failed())
      return {};
    if (n > left()) {
      fail(name, "claims " + std::to_string(n) + " bytes, " + std::to_string(left()) + " remain");
      return {};
    }
    std::string s{bytes_.substr(at_, n)};
    at_ += n;
    return s;
  }

  std::string_view take(size_t n, const char* name) {
    if (n > left()) {
      fail(name, "claims " + std::to_string(n) + " bytes, " + std::to_string(left()) + " remain");
      return {};
    }
    auto s = bytes_.substr(at_, n);
    at_ += n;
    return s;
  }

private:
  void fail(const char* name, const std::string& why) {
    if (what_.empty())
      what_ = std::string{"record's "} + name + " at byte " + std::to_string(at_) + " " + why;
  }

  std::string_view bytes_;
  size_t at_;
  std::string what_;
};

caf::expected<log_record> decode_compact(std::string_view bytes, bool head_only) {
  compact_reader in{bytes, 12};
  log_record r;
  r.lsn = lsn_of(bytes);
  auto flags = in.byte("flags");
  if (!in.failed() && (flags & ~known_flags) != 0)
    return make_error(errc::corrupt_data,
                      "record has unknown flags " + std::to_string(static_cast<int>(flags)));
  r.kind = (flags & flag_invocation) ? log_record::kind_t::invocation
                                     : log_record::kind_t::message;
  r.read_only = (flags & flag_read_only) != 0;
  if (!(flags & flag_timestamp_is_end))
    r.timestamp_ns = static_cast<int64_t>(in.varint("timestamp"));
  r.execution_id = in.varint("execution id");
  r.parent_id = in.varint("parent id");
  auto start = in.varint("start time");
  r.start_ns = static_cast<int64_t>(start);
  r.end_ns = static_cast<int64_t>(start + unzigzag(in.varint("end time")));
  if (flags & flag_timestamp_is_end)
    r.timestamp_ns = r.end_ns;
  auto partition = in.varint("partition");
  if (partition > UINT32_MAX)
    return make_error(errc::corrupt_data, "record's partition " + std::to_string(partition)
                                            + " does not fit 32 bits");
  r.partition = static_cast<uint32_t>(partition);
  r.sender = in.field("sender");
  r.receiver = in.field("receiver");
  r.procedure = in.field("procedure");
  r.role = in.field("role");
  r.status = in.field("status");
  r.payload = in.field("payload");
  r.result = in.field("result");
  auto reads = in.varint("read count");
  if (in.failed())
    return make_error(errc::corrupt_data, in.what());
  std::string text;
  if (flags & flag_payload_msgpack) {
    if (!msgpack_to_text(r.payload, text))
      return make_error(errc::corrupt_data, "record's payload is not valid MessagePack");
    r.payload.swap(text);
  }
  if (flags & flag_result_msgpack) {
    if (!msgpack_to_text(r.result, text))
      return make_error(errc::corrupt_data, "record's result is not valid MessagePack");
    r.result.swap(text);
  }
  if (reads > in.left() / 2)
    return make_error(errc::corrupt_data, "record claims " + std::to_string(reads)
                                            + " row reads in " + std::to_string(in.left())
                                            + " bytes");
  r.reads.reserve(reads);
  for (uint64_t i = 0; i < reads && !in.failed(); ++i) {
    row_read rd;
    rd.table = in.field("read table");
    rd.key = in.field("read key");
    r.reads.push_back(std::move(rd));
  }
  auto n = in.varint("change count");
  if (in.failed())
    return make_error(errc::corrupt_data, in.what());
  auto row_flags = in.take(n, "row flags");
  if (in.failed())
    return make_error(errc::corrupt_data, in.what());
  if (in.at_end() && n > 0) { // a head: the changes are announced, not held
    if (!head_only)
      return make_error(errc::corrupt_data, "record has row flags for " + std::to_string(n)
                                              + " row change(s) but holds 0");
    r.row_flags = std::string{row_flags};
    for (size_t i = 0; i < n; ++i) {
      row_change c;
      if (!from_row_flag(static_cast<uint8_t>(row_flags[i]), c))
        return make_error(errc::corrupt_data, "row flag " + std::to_string(i) + " is "
                                                + std::to_string(static_cast<uint8_t>(row_flags[i]))
                                                + ", not an op");
    }
    return r;
  }
  if (n > in.left() / 3)
    return make_error(errc::corrupt_data, "record claims " + std::to_string(n)
                                            + " row changes in " + std::to_string(in.left())
                                            + " bytes");
  r.changes.resize(n);
  for (size_t i = 0; i < n; ++i) {
    auto& c = r.changes[i];
    if (!from_row_flag(static_cast<uint8_t>(row_flags[i]), c))
      return make_error(errc::corrupt_data, "row change " + std::to_string(i) + " has flag "
                                              + std::to_string(static_cast<uint8_t>(row_flags[i]))
                                              + ", not an op");
    c.table = in.field("change table");
    c.key = in.field("change key");
    c.value = in.field("change value");
    if (in.failed())
      return make_error(errc::corrupt_data, in.what());
  }
  if (!in.at_end())
    return make_error(errc::corrupt_data,
                      std::to_string(in.left()) + " bytes follow the record");
  return r;
}

// -- format 1 (Cap'n Proto) -----------------------------------------------------------------

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

// The lsn and the record as a flat Cap'n Proto LogRecord: how records were written before
// format 2. A view with row flags and no changes makes a format-1 WAL head.
std::string encode_capnp(const record_view& r) {
  capnp::MallocMessageBuilder builder;
  auto b = builder.initRoot<LogRecord>();
  b.setTimestampNs(r.timestamp_ns);
  b.setKind(r.invocation ? LogRecord::Kind::INVOCATION : LogRecord::Kind::MESSAGE);
  b.setSender(as_text(r.sender));
  b.setReceiver(as_text(r.receiver));
  b.setExecutionId(r.execution_id);
  b.setParentId(r.parent_id);
  b.setProcedure(as_text(r.procedure));
  b.setRole(as_text(r.role));
  b.setStatus(as_text(r.status));
  std::string payload{r.payload};
  if (r.payload_msgpack)
    msgpack_to_text(r.payload, payload);
  if (!r.payload_tail.empty())
    payload.append(" ").append(r.payload_tail);
  b.setPayload(bytes_of(payload));
  std::string result{r.result};
  if (r.result_msgpack)
    msgpack_to_text(r.result, result);
  b.setResult(bytes_of(result));
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
  if (!r.row_flags.empty())
    b.setRowFlags(bytes_of(r.row_flags));
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
  std::string out;
  out.append(reinterpret_cast<const char*>(&r.lsn), 8);
  out.reserve(out.size() + capnp::computeSerializedSizeInWords(builder) * sizeof(capnp::word));
  string_output os{out};
  capnp::writeMessage(os, builder);
  return out;
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
  take_values(v);
  return v;
}

record_view view_of(const log_record& r) {
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
  take_values(v);
  return v;
}

const std::vector<row_change> no_changes;
const std::vector<row_read> no_reads;

} // namespace

std::string encode(const log_record& r) {
  std::string out;
  encode_compact(view_of(r), out);
  return out;
}

std::string encode(const invocation_record& rec) {
  std::string out;
  encode_compact(view_of(rec), out);
  return out;
}

std::string encode(const message_record& msg) {
  record_view v;
  v.timestamp_ns = msg.timestamp_ns;
  v.sender = msg.sender;
  v.receiver = msg.receiver;
  v.execution_id = msg.execution_id;
  v.parent_id = msg.parent_id;
  v.procedure = msg.procedure;
  v.role = msg.role;
  v.status = msg.status;
  v.payload = msg.kind;
  v.payload_tail = msg.payload;
  v.changes = &no_changes;
  v.reads = &no_reads;
  std::string out;
  encode_compact(v, out);
  return out;
}

std::string encode_v1(const log_record& r) {
  auto v = view_of(r);
  v.row_flags = r.row_flags;
  return encode_capnp(v);
}

size_t encode_committed(std::string& buf, const invocation_record& rec, size_t front) {
  return encode_compact(view_of(rec), buf, front);
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
  if (bytes.size() >= 12 && bytes.substr(8, 3) == std::string_view{format_marker, 3}) {
    auto format = static_cast<uint8_t>(bytes[11]);
    if (format == format_compact)
      return decode_compact(bytes, head_only);
    return make_error(errc::corrupt_data, "record has format " + std::to_string(format)
                                            + "; this build reads formats 1 and 2");
  }
  // Format 1: a flat Cap'n Proto LogRecord (records written before format 2).
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

namespace {

// A decoded invocation's arguments and result are text. Text that starts with the marker byte
// (storage/record_value.hpp) would be taken for MessagePack once the record is encoded again;
// no writer makes such text (0xc1 starts no UTF-8), so it is damage. Checked in place (the
// record is returned as it is, not moved again).
void check_text_values(caf::expected<log_record>& r) {
  if (!r || r->kind != log_record::kind_t::invocation)
    return;
  const char* field = is_msgpack_value(r->payload) ? "payload"
                      : is_msgpack_value(r->result) ? "result"
                                                    : nullptr;
  if (field != nullptr)
    r = make_error(errc::corrupt_data, std::string{"record's "} + field
                                         + " is text that starts with byte 0xc1, which no text "
                                           "starts with");
}

} // namespace

caf::expected<log_record> decode(std::string_view bytes) {
  auto r = decode_impl(bytes, /*head_only=*/false);
  check_text_values(r);
  return r;
}

caf::expected<log_record> decode_head(std::string_view bytes) {
  auto r = decode_impl(bytes, /*head_only=*/true);
  check_text_values(r);
  return r;
}

} // namespace comb::storage
