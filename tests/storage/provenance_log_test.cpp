// Tests for the provenance log: CRC32C, record encoding, segments, rotation, recovery of torn
// tails, and clear errors for corruption in the middle, wrong magic and foreign segments.
#include "storage/provenance_log.hpp"

#include "base/errc.hpp"
#include "storage/crc32c.hpp"
#include "tests/test_util.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

using namespace comb;
namespace fs = std::filesystem;

namespace {

storage::log_record sample(uint64_t lsn) {
  storage::log_record r;
  r.lsn = lsn;
  r.kind = lsn % 3 == 0 ? storage::log_record::kind_t::message
                        : storage::log_record::kind_t::invocation;
  r.timestamp_ns = 1000 + static_cast<int64_t>(lsn);
  r.sender = "client";
  r.receiver = "n1/p0";
  r.execution_id = 5000 + lsn;
  r.procedure = "bank.transfer";
  r.role = "teller";
  r.status = "ok";
  r.payload = R"({"amount":)" + std::to_string(lsn) + "}";
  storage::row_change c;
  c.table = "bank.accounts";
  c.key = "acct-" + std::to_string(lsn);
  c.kind = storage::row_change::op::update;
  c.value = std::string("\x81\xa1v\x05", 4);
  r.changes.push_back(c);
  r.reads.push_back({"bank.accounts", "acct-1"});
  return r;
}

void write_log(const std::string& dir, uint64_t n, uint64_t segment_bytes = 4096) {
  auto w = test::must(storage::log_writer::open(dir, {segment_bytes}));
  for (uint64_t i = 0; i < n; ++i) {
    auto lsn = w->next_lsn();
    REQUIRE(!w->append(lsn, storage::encode(sample(lsn))));
  }
  REQUIRE(!w->sync());
}

std::vector<std::string> segments(const std::string& dir) {
  return test::must(storage::log_reader::open(dir)).segments();
}

void flip_byte(const std::string& path, uint64_t offset) {
  std::fstream f{path, std::ios::in | std::ios::out | std::ios::binary};
  f.seekg(static_cast<std::streamoff>(offset));
  char c;
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0x5a);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(&c, 1);
}

// The records with lsn >= from (up to `limit` of them) that `reader` visits, encoded; the
// error text, if any, last.
std::vector<std::string> read_from(const storage::log_reader& reader, uint64_t from,
                                   size_t limit = SIZE_MAX) {
  std::vector<std::string> out;
  auto err = reader.for_each(from, [&](storage::log_record&& r) {
    if (out.size() >= limit)
      return false;
    out.push_back(storage::encode(r));
    return true;
  });
  if (err)
    out.push_back("error: " + describe(err));
  return out;
}

} // namespace

TEST_SUITE("storage.provenance_log") {
  TEST_CASE("crc32c matches the standard check value") {
    CHECK(storage::crc32c("123456789", 9) == 0xE3069283u);
    CHECK(storage::crc32c("", 0) == 0u);
    std::string big(1000, 'x');
    CHECK(storage::crc32c(big.data() + 500, 500, storage::crc32c(big.data(), 500))
          == storage::crc32c(big.data(), 1000));
  }

  TEST_CASE("crc32c table and hardware paths match the RFC 3720 vectors") {
    std::string zeros(32, '\0'), ones(32, '\xff'), up(32, '\0'), down(32, '\0');
    for (int i = 0; i < 32; ++i) {
      up[i] = static_cast<char>(i);
      down[i] = static_cast<char>(31 - i);
    }
    struct vec {
      const std::string* bytes;
      uint32_t want;
    };
    const vec vectors[] = {
      {&zeros, 0x8A9136AAu}, {&ones, 0x62A8AB43u}, {&up, 0x46DD794Eu}, {&down, 0x113FDB5Cu}};
    for (const auto& v : vectors) {
      CHECK(storage::crc32c_table(v.bytes->data(), v.bytes->size()) == v.want);
      CHECK(storage::crc32c(v.bytes->data(), v.bytes->size()) == v.want);
      if (storage::crc32c_has_hardware())
        CHECK(storage::crc32c_hardware(v.bytes->data(), v.bytes->size()) == v.want);
    }
    // Unaligned starts and odd lengths take the hardware path's byte tail; both must agree.
    std::string text(1037, '\0');
    for (size_t i = 0; i < text.size(); ++i)
      text[i] = static_cast<char>(i * 131 + 7);
    for (size_t off : {0, 1, 3, 7})
      for (size_t len : {0, 1, 9, 15, 1000}) {
        auto t = storage::crc32c_table(text.data() + off, len);
        CHECK(storage::crc32c(text.data() + off, len) == t);
        if (storage::crc32c_has_hardware())
          CHECK(storage::crc32c_hardware(text.data() + off, len) == t);
      }
    if (!storage::crc32c_has_hardware())
      MESSAGE("no SSE4.2 on this CPU: hardware CRC32C path not tested");
  }

  TEST_CASE("records round-trip; garbage does not decode") {
    auto r = sample(7);
    auto back = test::must(storage::decode(storage::encode(r)));
    CHECK(back.lsn == 7);
    CHECK(back.kind == r.kind);
    CHECK(back.payload == r.payload);
    REQUIRE(back.changes.size() == 1);
    CHECK(back.changes[0].value == r.changes[0].value);
    CHECK(back.changes[0].kind == storage::row_change::op::update);
    CHECK(back.reads.size() == 1);
    CHECK(!storage::decode("short"));
    CHECK(!storage::decode(std::string(64, '\xff')));
  }

  TEST_CASE("a committed invocation's record and its WAL head, from one encoding") {
    storage::invocation_record rec;
    rec.execution_id = 42;
    rec.procedure = "bank.transfer";
    rec.role = "teller";
    rec.args = R"({"amount":5})";
    rec.result = R"({"ok":true})";
    rec.status = "ok";
    rec.start_ns = 10;
    rec.end_ns = 20;
    rec.receiver = "n1/p3";
    auto change = [](std::string table, std::string key, storage::row_change::op op, bool row,
                     std::string value) {
      storage::row_change c;
      c.table = std::move(table);
      c.key = std::move(key);
      c.kind = op;
      c.is_row = row;
      c.value = std::move(value);
      return c;
    };
    rec.changes = {change("bank.transfers", "t1", storage::row_change::op::insert, true, "\x81"),
                   change("bank.accounts", "a", storage::row_change::op::update, true, "\x82"),
                   change("files", "f", storage::row_change::op::update, false, "raw bytes"),
                   change("bank.accounts", "gone", storage::row_change::op::del, true, "")};
    rec.reads = {{"bank.accounts", "a"}};
    std::string whole;
    auto head_size = storage::encode_committed(whole, rec);
    storage::set_lsn(whole, 9);
    CHECK(whole == [&] {
      auto r = storage::encode(rec);
      storage::set_lsn(r, 9);
      return r;
    }());
    std::string head = whole.substr(0, head_size);
    CHECK(head.size() < whole.size());

    // The head: no rows, one flag per change; decode() wants the rows.
    auto h = test::must(storage::decode_head(head));
    CHECK(h.lsn == 9);
    CHECK(h.changes.empty());
    CHECK(h.reads.size() == 1);
    CHECK(h.payload == rec.args);
    CHECK(h.row_flags == std::string("\x05\x06\x02\x07", 4));
    auto lacking = storage::decode(head);
    REQUIRE(!lacking);
    CHECK(describe(lacking.error()).find("row flags for 4 row change(s) but holds 0")
          != std::string::npos);

    // The whole record: the same as the plain encoding, with flags that match.
    auto w = test::must(storage::decode(whole));
    auto one = test::must(storage::decode(storage::encode(rec)));
    CHECK(w.lsn == 9);
    CHECK(w.row_flags.empty());
    CHECK(w.payload == one.payload);
    CHECK(w.result == one.result);
    CHECK(w.receiver == one.receiver);
    CHECK(w.reads.size() == one.reads.size());
    REQUIRE(w.changes.size() == 4);
    for (size_t i = 0; i < 4; ++i) {
      CHECK(w.changes[i].table == rec.changes[i].table);
      CHECK(w.changes[i].key == rec.changes[i].key);
      CHECK(w.changes[i].kind == rec.changes[i].kind);
      CHECK(w.changes[i].is_row == rec.changes[i].is_row);
      CHECK(w.changes[i].value == rec.changes[i].value);
    }
    CHECK(test::must(storage::decode_head(whole)).changes.size() == 4);

    // The head is the record up to its row flags: one encoding, copied once.
    CHECK(whole.compare(0, head.size(), head) == 0);
    CHECK(head.substr(head.size() - 4) == std::string("\x05\x06\x02\x07", 4));
    // A flag byte that is no op, and bytes after the record, are refused.
    auto altered = whole;
    altered[head.size() - 2] = '\0';
    auto e1 = storage::decode(altered);
    REQUIRE(!e1);
    CHECK(describe(e1.error()).find("row change 2 has flag 0") != std::string::npos);
    auto e2 = storage::decode(whole + std::string(8, '\0'));
    REQUIRE(!e2);
    CHECK(describe(e2.error()).find("8 bytes follow the record") != std::string::npos);
    // Every cut short record is refused, and never read past its end; only the cut at the
    // head's end decodes, and only as a head.
    for (size_t n = 0; n < whole.size(); ++n) {
      CAPTURE(n);
      auto cut = std::string_view{whole}.substr(0, n);
      CHECK(!storage::decode(cut));
      CHECK(static_cast<bool>(storage::decode_head(cut)) == (n == head.size()));
    }
  }

  TEST_CASE("records are written in format 2; format-1 records and heads (older logs) decode") {
    auto r = sample(12);
    r.read_only = true;
    r.parent_id = 77;
    r.start_ns = -5;
    r.end_ns = int64_t{1} << 62;
    r.partition = 4000000000u;
    r.result = std::string("\0bytes\xff", 7);
    auto now = storage::encode(r);
    CHECK(now.substr(8, 4) == std::string("\xff\xff\xff\x02", 4));
    auto old = storage::encode_v1(r);
    CHECK(now.size() < old.size());
    for (const auto& bytes : {now, old}) {
      auto b = test::must(storage::decode(bytes));
      CHECK(b.lsn == 12);
      CHECK(b.kind == r.kind);
      CHECK(b.timestamp_ns == r.timestamp_ns);
      CHECK(b.sender == r.sender);
      CHECK(b.receiver == r.receiver);
      CHECK(b.execution_id == r.execution_id);
      CHECK(b.parent_id == 77);
      CHECK(b.procedure == r.procedure);
      CHECK(b.role == r.role);
      CHECK(b.status == r.status);
      CHECK(b.payload == r.payload);
      CHECK(b.result == r.result);
      CHECK(b.read_only);
      CHECK(b.start_ns == -5);
      CHECK(b.end_ns == r.end_ns);
      CHECK(b.partition == 4000000000u);
      REQUIRE(b.changes.size() == 1);
      CHECK(b.changes[0].table == "bank.accounts");
      CHECK(b.changes[0].key == r.changes[0].key);
      CHECK(b.changes[0].value == r.changes[0].value);
      CHECK(b.changes[0].kind == storage::row_change::op::update);
      CHECK(b.changes[0].is_row);
      REQUIRE(b.reads.size() == 1);
      CHECK(b.reads[0].key == "acct-1");
    }
    // An invocation's timestamp is its end time, written once.
    auto at_end = r;
    at_end.timestamp_ns = at_end.end_ns;
    CHECK(storage::encode(at_end).size() < now.size());
    CHECK(test::must(storage::decode(storage::encode(at_end))).timestamp_ns == r.end_ns);
    // A format-1 WAL head, as older builds put in the transaction's WAL entry.
    auto h = r;
    h.row_flags = std::string(1, static_cast<char>(storage::row_flag(r.changes[0])));
    h.changes.clear();
    auto old_head = storage::encode_v1(h);
    auto dh = test::must(storage::decode_head(old_head));
    CHECK(dh.changes.empty());
    CHECK(dh.row_flags == h.row_flags);
    CHECK(dh.payload == r.payload);
    CHECK(!storage::decode(old_head));
    // A message encoded from its message_record is the record to_log_record makes.
    storage::message_record m;
    m.kind = "piece";
    m.sender = "fn";
    m.receiver = "compute";
    m.payload = R"({"n":3})";
    m.execution_id = 9;
    auto dm = test::must(storage::decode(storage::encode(m)));
    CHECK(dm.kind == storage::log_record::kind_t::message);
    CHECK(dm.payload == storage::to_log_record(m).payload);
    m.payload.clear();
    CHECK(test::must(storage::decode(storage::encode(m))).payload == "piece");
    // An invocation's text that starts with the MessagePack marker byte 0xc1 (no text does)
    // is damage: encoded again it would be taken for MessagePack (fuzz_log_record found a
    // format-1 record whose result was "\xc1ull"). encode_v1 never writes such text for an
    // invocation, so the record is made as a message's and its kind bytes are then set to an
    // invocation's (the bytes where the two encodings of one record differ).
    for (auto field : {&storage::log_record::payload, &storage::log_record::result}) {
      auto inv = r, msg = r;
      inv.kind = storage::log_record::kind_t::invocation;
      msg.kind = storage::log_record::kind_t::message;
      inv.*field = msg.*field = "null";
      auto inv_bytes = storage::encode_v1(inv), msg_bytes = storage::encode_v1(msg);
      REQUIRE(inv_bytes.size() == msg_bytes.size());
      CHECK(storage::decode(inv_bytes));
      msg.*field = "\xc1ull";
      auto bytes = storage::encode_v1(msg);
      REQUIRE(bytes.size() == inv_bytes.size());
      for (size_t i = 0; i < bytes.size(); ++i)
        if (inv_bytes[i] != msg_bytes[i])
          bytes[i] = inv_bytes[i];
      auto e = storage::decode(bytes);
      REQUIRE(!e);
      CHECK(is(e.error(), errc::corrupt_data));
      CHECK(describe(e.error()).find("starts with byte 0xc1") != std::string::npos);
      CHECK(!storage::decode_head(bytes));
      msg.*field = "null";
      CHECK(test::must(storage::decode(storage::encode_v1(msg))).*field == "null");
    }
    // A format this build does not know is named.
    auto future = now;
    future[11] = '\x03';
    auto e = storage::decode(future);
    REQUIRE(!e);
    CHECK(describe(e.error()).find("format 3") != std::string::npos);
  }

  TEST_CASE("a log of format-1 records continued in format 2 reads in order") {
    test::temp_dir dir;
    {
      auto w = test::must(storage::log_writer::open(dir.path(), {4096}));
      for (uint64_t lsn = 1; lsn <= 30; ++lsn)
        REQUIRE(!w->append(lsn, storage::encode_v1(sample(lsn))));
      REQUIRE(!w->sync());
    }
    write_log(dir.path(), 30);
    uint64_t expect = 1;
    auto reader = test::must(storage::log_reader::open(dir.path()));
    REQUIRE(!reader.for_each(0, [&](storage::log_record&& r) {
      CHECK(r.lsn == expect);
      CHECK(r.payload == sample(expect).payload);
      CHECK(r.changes.size() == 1);
      ++expect;
      return true;
    }));
    CHECK(expect == 61);
    CHECK(test::must(storage::verify_log(dir.path())).records == 60);
  }

  TEST_CASE("segments rotate; readers see every record in order; writers resume") {
    test::temp_dir dir;
    write_log(dir.path(), 300);
    CHECK(segments(dir.path()).size() > 3);
    {
      auto w = test::must(storage::log_writer::open(dir.path(), {4096}));
      CHECK(w->next_lsn() == 301);
      CHECK(w->bytes_dropped() == 0);
      REQUIRE(!w->append(301, storage::encode(sample(301))));
      CHECK(is(w->append(999, storage::encode(sample(999))), errc::protocol_error));
    }
    auto reader = test::must(storage::log_reader::open(dir.path()));
    uint64_t expect = 1;
    storage::log_stats st;
    CHECK(!reader.for_each(
      0, [&](storage::log_record&& r) { return r.lsn == expect++; }, &st));
    CHECK(st.records == 301);
    CHECK(st.last_lsn == 301);
    uint64_t first = 0;
    CHECK(!reader.for_each(250, [&](storage::log_record&& r) { return first = r.lsn, false; }));
    CHECK(first == 250);
    auto v = test::must(storage::verify_log(dir.path()));
    CHECK(v.records == 301);
  }

  TEST_CASE("a torn tail is reported, then cut on recovery with the bytes dropped") {
    test::temp_dir dir;
    write_log(dir.path(), 50, 1 << 20);
    auto seg = dir.path() + "/" + segments(dir.path()).back();
    auto size = fs::file_size(seg);
    fs::resize_file(seg, size - 10);
    auto reader = test::must(storage::log_reader::open(dir.path()));
    storage::log_stats st;
    CHECK(!reader.for_each(
      0, [](auto&&) { return true; }, &st));
    CHECK(st.records == 49);
    CHECK(st.tail_bytes > 0);
    auto v = storage::verify_log(dir.path());
    REQUIRE(!v);
    CHECK(describe(v.error()).find("torn tail") != std::string::npos);
    auto w = test::must(storage::log_writer::open(dir.path()));
    CHECK(w->bytes_dropped() == st.tail_bytes);
    CHECK(w->recovery_note().find("cut") != std::string::npos);
    CHECK(w->next_lsn() == 50);
    REQUIRE(!w->append(50, storage::encode(sample(50))));
    REQUIRE(!w->sync());
    CHECK(test::must(storage::verify_log(dir.path())).records == 50);
  }

  TEST_CASE("a last segment whose header was cut short is dropped on recovery; garbage is not") {
    test::temp_dir dir;
    write_log(dir.path(), 40, 4096);
    auto segs = segments(dir.path());
    std::string header;
    {
      std::ifstream in{dir.path() + "/" + segs.front(), std::ios::binary};
      header.resize(12);
      in.read(header.data(), 12);
    }
    char name[32];
    std::snprintf(name, sizeof(name), "%020llu.plog", 41ull);
    auto torn = dir.path() + "/" + name;
    // The crash came after 12 of the header's 40 bytes: readers report a torn tail, verify
    // says so, and the writer removes the segment and goes on at lsn 41.
    std::ofstream{torn, std::ios::binary}.write(header.data(), 12);
    auto reader = test::must(storage::log_reader::open(dir.path()));
    storage::log_stats st;
    CHECK(!reader.for_each(
      0, [](auto&&) { return true; }, &st));
    CHECK(st.records == 40);
    CHECK(st.tail_segment.find("header is 12 bytes") != std::string::npos);
    {
      auto w = test::must(storage::log_writer::open(dir.path(), {4096}));
      CHECK(w->next_lsn() == 41);
      CHECK(w->recovery_note().find("removed") != std::string::npos);
      REQUIRE(!w->append(41, storage::encode(sample(41))));
      REQUIRE(!w->sync());
    }
    CHECK(test::must(storage::verify_log(dir.path())).records == 41);
    // Twelve bytes that are not the start of a header are not a torn write: refused, named.
    std::snprintf(name, sizeof(name), "%020llu.plog", 42ull);
    std::ofstream{dir.path() + "/" + name, std::ios::binary}.write("not a header", 12);
    auto w = storage::log_writer::open(dir.path(), {4096});
    REQUIRE(!w);
    CHECK(describe(w.error()).find("header is 12 bytes") != std::string::npos);
  }

  TEST_CASE("a corrupt record in the middle stops reading and says where") {
    test::temp_dir dir;
    write_log(dir.path(), 50, 1 << 20);
    auto name = segments(dir.path()).back();
    flip_byte(dir.path() + "/" + name, storage::segment_header_bytes + 20);
    auto v = storage::verify_log(dir.path());
    REQUIRE(!v);
    auto msg = describe(v.error());
    CHECK(msg.find(name + " offset " + std::to_string(storage::segment_header_bytes))
          != std::string::npos);
    CHECK(msg.find("checksum") != std::string::npos);
    auto w = storage::log_writer::open(dir.path());
    REQUIRE(!w); // never skipped silently, never cut
    CHECK(is(w.error(), errc::corrupt_data));
    CHECK(fs::file_size(dir.path() + "/" + name) > 1000);
  }

  TEST_CASE("a flipped bit in the last whole record is corruption, not a torn tail") {
    test::temp_dir dir;
    write_log(dir.path(), 50, 1 << 20);
    auto name = segments(dir.path()).back();
    auto seg = dir.path() + "/" + name;
    auto size = fs::file_size(seg);
    flip_byte(seg, size - 3); // inside the last record's body
    auto v = storage::verify_log(dir.path());
    REQUIRE(!v);
    auto msg = describe(v.error());
    CHECK(msg.find("checksum") != std::string::npos);
    CHECK(msg.find("corruption, not a torn tail") != std::string::npos);
    CHECK(msg.find("torn tail:") == std::string::npos);
    auto w = storage::log_writer::open(dir.path());
    REQUIRE(!w); // refused, never cut
    CHECK(is(w.error(), errc::corrupt_data));
    CHECK(fs::file_size(seg) == size);
  }

  TEST_CASE("a last record whose tail blocks were never written is a torn tail, and is cut") {
    test::temp_dir dir;
    // The last record is large enough to cross a 512-byte boundary.
    {
      auto w = test::must(storage::log_writer::open(dir.path(), {1 << 20}));
      for (uint64_t lsn = 1; lsn <= 10; ++lsn) {
        auto r = sample(lsn);
        if (lsn == 10)
          r.payload = R"({"big":")" + std::string(3000, 'x') + R"("})";
        REQUIRE(!w->append(lsn, storage::encode(r)));
      }
      REQUIRE(!w->sync());
    }
    auto seg = dir.path() + "/" + segments(dir.path()).back();
    auto size = fs::file_size(seg);
    // Zero the file from the last 512-byte boundary on, as a write cut by a power loss leaves
    // it (the size was extended, the last blocks never reached the disk).
    {
      std::fstream f{seg, std::ios::in | std::ios::out | std::ios::binary};
      auto from = (size - 1) / 512 * 512;
      f.seekp(static_cast<std::streamoff>(from));
      std::string zeros(size - from, '\0');
      f.write(zeros.data(), static_cast<std::streamsize>(zeros.size()));
    }
    auto v = storage::verify_log(dir.path());
    REQUIRE(!v);
    CHECK(describe(v.error()).find("torn tail: ") != std::string::npos);
    CHECK(describe(v.error()).find("never written") != std::string::npos);
    auto w = test::must(storage::log_writer::open(dir.path()));
    CHECK(w->next_lsn() == 10);
    CHECK(w->recovery_note().find("never written") != std::string::npos);
  }

  TEST_CASE("lsns in no segment (the first or a middle one deleted) are named, never skipped") {
    test::temp_dir dir;
    write_log(dir.path(), 300);
    auto segs = segments(dir.path());
    REQUIRE(segs.size() > 4);
    auto size_of_all = [&] {
      uint64_t n = 0;
      for (auto& s : segments(dir.path()))
        n += fs::file_size(dir.path() + "/" + s);
      return n;
    };
    // A middle segment: its lsns, and the segments on both sides, are named by the reader,
    // verify_log and the writer, which changes nothing.
    auto a = std::stoull(segs[2]), b = std::stoull(segs[3]) - 1;
    fs::remove(dir.path() + "/" + segs[2]);
    auto gap = "lsns " + std::to_string(a) + ".." + std::to_string(b) + " ("
               + std::to_string(b - a + 1) + " record(s)) are in no segment";
    auto v = storage::verify_log(dir.path());
    REQUIRE(!v);
    auto msg = describe(v.error());
    CAPTURE(msg);
    CHECK(msg.find(gap) != std::string::npos);
    CHECK(msg.find("segment " + segs[1] + " ends at lsn " + std::to_string(a - 1))
          != std::string::npos);
    CHECK(msg.find("the next one is " + segs[3]) != std::string::npos);
    auto reader = test::must(storage::log_reader::open(dir.path()));
    CHECK(describe(reader.for_each(0, [](auto&&) { return true; })).find(gap) != std::string::npos);
    auto size = size_of_all();
    auto w = storage::log_writer::open(dir.path(), {4096});
    REQUIRE(!w);
    CHECK(is(w.error(), errc::corrupt_data));
    CHECK(describe(w.error()).find(gap) != std::string::npos);
    CHECK(size_of_all() == size);
    // The first segment: the log must start at lsn 1.
    auto c = std::stoull(segs[1]) - 1;
    fs::remove(dir.path() + "/" + segs[0]);
    v = storage::verify_log(dir.path());
    REQUIRE(!v);
    msg = describe(v.error());
    CHECK(msg.find("lsns 1.." + std::to_string(c) + " (" + std::to_string(c)
                   + " record(s)) are in no segment")
          != std::string::npos);
    CHECK(msg.find("the log starts with segment " + segs[1]) != std::string::npos);
    // Told to accept the loss, the writer fills both gaps with the records it is given, each
    // in a segment of its own, and the log reads whole from lsn 1 again.
    std::vector<std::pair<uint64_t, std::string>> filled;
    storage::log_options accept{4096};
    accept.gap_filler = [&](uint64_t lsn, const std::string& missing) {
      filled.emplace_back(lsn, missing);
      auto r = sample(lsn);
      r.procedure = "provenance.loss";
      return storage::encode(r);
    };
    {
      auto w2 = test::must(storage::log_writer::open(dir.path(), accept));
      CHECK(w2->next_lsn() == 301);
      CHECK(w2->recovery_note().find("lsns 1.." + std::to_string(c) + " were in no segment")
            != std::string::npos);
      CHECK(w2->recovery_note().find("lsns " + std::to_string(a) + ".." + std::to_string(b)
                                     + " were in no segment")
            != std::string::npos);
    }
    REQUIRE(filled.size() == c + (b - a + 1));
    CHECK(filled.front() == std::pair<uint64_t, std::string>{1, "lsns 1.." + std::to_string(c)});
    CHECK(filled.back().first == b);
    CHECK(test::must(storage::verify_log(dir.path())).records == 300);
    uint64_t expect = 1;
    REQUIRE(!test::must(storage::log_reader::open(dir.path())).for_each(0, [&](auto&& r) {
      bool lost = r.lsn <= c || (r.lsn >= a && r.lsn <= b);
      CHECK(r.lsn == expect);
      CHECK((r.procedure == "provenance.loss") == lost);
      return r.lsn == expect++;
    }));
  }

  TEST_CASE("a renamed segment is refused: it leaves a gap, or overlaps the one before it") {
    test::temp_dir dir;
    write_log(dir.path(), 100);
    auto segs = segments(dir.path());
    REQUIRE(segs.size() > 2);
    // The second segment named one lsn later: its first lsn is in no segment.
    auto later = std::to_string(std::stoull(segs[1]) + 1);
    auto renamed = std::string(20 - later.size(), '0') + later + ".plog";
    fs::rename(dir.path() + "/" + segs[1], dir.path() + "/" + renamed);
    auto v = storage::verify_log(dir.path());
    REQUIRE(!v);
    CHECK(describe(v.error()).find("lsn " + std::to_string(std::stoull(segs[1]))
                                   + " (1 record(s)) are in no segment")
          != std::string::npos);
    fs::rename(dir.path() + "/" + renamed, dir.path() + "/" + segs[1]);
    CHECK(storage::verify_log(dir.path()));
    // A segment named below the end of the one before it.
    auto earlier = std::to_string(std::stoull(segs[2]) - 1);
    fs::rename(dir.path() + "/" + segs[2],
               dir.path() + "/" + std::string(20 - earlier.size(), '0') + earlier + ".plog");
    v = storage::verify_log(dir.path());
    REQUIRE(!v);
    CHECK(describe(v.error()).find("holds lsns up to " + std::to_string(std::stoull(segs[2]) - 1))
          != std::string::npos);
    CHECK(!storage::log_writer::open(dir.path()));
  }

  TEST_CASE("wrong magic and segments of another cluster are refused") {
    test::temp_dir a, b;
    write_log(a.path(), 10);
    write_log(b.path(), 10);
    // A segment from another cluster, where the log's next segment would start.
    auto foreign = segments(b.path()).front();
    fs::copy_file(b.path() + "/" + foreign, a.path() + "/00000000000000000011.plog");
    auto v = storage::verify_log(a.path());
    REQUIRE(!v);
    CHECK(describe(v.error()).find("belongs to cluster") != std::string::npos);
    fs::remove(a.path() + "/00000000000000000011.plog");
    CHECK(storage::verify_log(a.path()));
    // Wrong magic.
    auto first = a.path() + "/" + segments(a.path()).front();
    flip_byte(first, 0);
    auto m = storage::verify_log(a.path());
    REQUIRE(!m);
    CHECK(describe(m.error()).find("wrong magic") != std::string::npos);
    // Not a log at all.
    CHECK(is(storage::log_reader::open(a.path() + "/nope").error(), errc::not_found));
  }

  TEST_CASE("a resumed read returns what a fresh read returns from its lsn, across rotations") {
    test::temp_dir dir;
    auto w = test::must(storage::log_writer::open(dir.path(), {4096}));
    auto reader = test::must(storage::log_reader::open(dir.path()));
    uint64_t from = 1;
    size_t rounds = 0;
    for (uint64_t batch : {0, 1, 7, 13, 30, 2, 45, 0, 9, 60, 1, 25}) {
      for (uint64_t i = 0; i < batch; ++i) {
        auto lsn = w->next_lsn();
        REQUIRE(!w->append(lsn, storage::encode(sample(lsn))));
      }
      REQUIRE(!w->flush());
      auto before = reader.frames_read();
      // Stop after a few records every other round: the next read starts at the first record
      // this one did not take.
      size_t limit = rounds++ % 2 == 0 ? SIZE_MAX : 5;
      auto resumed = read_from(reader, from, limit);
      auto fresh = read_from(test::must(storage::log_reader::open(dir.path())), from, limit);
      CHECK(resumed == fresh);
      REQUIRE(resumed.size() == std::min<size_t>(limit, w->next_lsn() - from));
      for (size_t k = 0; k < resumed.size(); ++k)
        CHECK(test::must(storage::decode(resumed[k])).lsn == from + k);
      // Only the frames not read before are read: those it returned, and the one it stopped at.
      if (rounds > 1)
        CHECK(reader.frames_read() - before
              <= resumed.size() + (limit == SIZE_MAX ? 0 : 1));
      from += resumed.size();
    }
    from += read_from(reader, from).size();
    CHECK(segments(dir.path()).size() > 5);
    CHECK(from == w->next_lsn());
    // A call from an lsn before the cursor reads the log again, as a fresh reader does.
    CHECK(read_from(reader, 3) == read_from(test::must(storage::log_reader::open(dir.path())), 3));
    CHECK(read_from(reader, 3).size() == w->next_lsn() - 3);
  }

  TEST_CASE("a resumed read names the problems a fresh read names") {
    test::temp_dir dir;
    {
      auto w = test::must(storage::log_writer::open(dir.path(), {1 << 20}));
      for (uint64_t lsn = 1; lsn <= 40; ++lsn)
        REQUIRE(!w->append(lsn, storage::encode(sample(lsn))));
      REQUIRE(!w->sync());
    }
    auto fresh = [&](uint64_t from) {
      return read_from(test::must(storage::log_reader::open(dir.path())), from);
    };
    auto reader = test::must(storage::log_reader::open(dir.path()));
    CHECK(read_from(reader, 1).size() == 40);
    auto seg = dir.path() + "/" + segments(dir.path()).back();
    auto size = fs::file_size(seg);
    // A torn tail past the cursor: nothing new, no error; then the rest of the frame comes.
    {
      auto w = test::must(storage::log_writer::open(dir.path(), {1 << 20}));
      REQUIRE(!w->append(41, storage::encode(sample(41))));
      REQUIRE(!w->sync());
    }
    auto whole = fs::file_size(seg);
    std::string tail;
    {
      std::ifstream in{seg, std::ios::binary};
      in.seekg(static_cast<std::streamoff>(size));
      tail.resize(whole - size);
      in.read(tail.data(), static_cast<std::streamsize>(tail.size()));
    }
    fs::resize_file(seg, size + 10);
    CHECK(read_from(reader, 41).empty());
    CHECK(fresh(41).empty());
    {
      std::fstream f{seg, std::ios::in | std::ios::out | std::ios::binary};
      f.seekp(static_cast<std::streamoff>(size));
      f.write(tail.data(), static_cast<std::streamsize>(tail.size()));
    }
    CHECK(read_from(reader, 41) == fresh(41));
    CHECK(read_from(reader, 41).size() == 1);
    // A flipped bit in a new frame: the same error, naming the segment and offset.
    {
      auto w = test::must(storage::log_writer::open(dir.path(), {1 << 20}));
      for (uint64_t lsn = 42; lsn <= 44; ++lsn)
        REQUIRE(!w->append(lsn, storage::encode(sample(lsn))));
      REQUIRE(!w->sync());
    }
    flip_byte(seg, whole + 20);
    auto bad = read_from(reader, 42);
    REQUIRE(bad.size() == 1);
    CHECK(bad.back().find(segments(dir.path()).back() + " offset " + std::to_string(whole)
                          + ": record fails its checksum")
          != std::string::npos);
    CHECK(bad == fresh(42));
    flip_byte(seg, whole + 20);
    CHECK(read_from(reader, 42).size() == 3);
    // The segment replaced under the cursor by another file (a bit flipped in a frame the
    // cursor has passed): read afresh, so the corruption is named as a fresh read names it.
    auto copy = dir.path() + "/copy";
    fs::copy_file(seg, copy);
    flip_byte(copy, storage::segment_header_bytes + 20);
    fs::rename(copy, seg);
    auto replaced = read_from(reader, 45);
    REQUIRE(replaced.size() == 1);
    CHECK(replaced.back().find("checksum") != std::string::npos);
    CHECK(replaced == fresh(45));
  }

  TEST_CASE("a resumed read names the log's first segments deleted, as a fresh read does") {
    test::temp_dir dir;
    write_log(dir.path(), 200, 4096);
    auto reader = test::must(storage::log_reader::open(dir.path()));
    CHECK(read_from(reader, 1).size() == 200);
    auto segs = segments(dir.path());
    REQUIRE(segs.size() > 3);
    fs::remove(dir.path() + "/" + segs[0]);
    auto gap = read_from(reader, 201);
    REQUIRE(gap.size() == 1);
    CHECK(gap.back().find("the log starts with segment " + segs[1]) != std::string::npos);
    CHECK(gap == read_from(test::must(storage::log_reader::open(dir.path())), 201));
  }

} // TEST_SUITE
