// Tests for comb::storage::blob_store and the blob rows of transactions: round trips, inline
// and stored values, freeing on rollback, overwrite and delete, recovery after a crash,
// damaged segments, and the guards between blobs tables and row tables.
#include "storage/blob_store.hpp"

#include "base/errc.hpp"
#include "storage/database.hpp"
#include "storage/transaction.hpp"
#include "tests/test_util.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

using namespace comb;
namespace fs = std::filesystem;

namespace {

std::string bytes_of(size_t n, uint32_t seed) {
  std::mt19937 rng{seed};
  std::string s(n, '\0');
  for (auto& c : s)
    c = static_cast<char>(rng());
  return s;
}

// One lane and no spares unless asked, so that tests can count segment files.
std::unique_ptr<storage::database> open_db(const std::string& dir, size_t segment_bytes = 1 << 20,
                                           size_t lanes = 1, size_t spares = 0) {
  storage::options o;
  o.blob_inline_max = 1024;
  o.blob_segment_bytes = segment_bytes;
  o.blob_lanes = lanes;
  o.blob_spare_segments = spares;
  auto db = test::must(storage::database::open(dir, o));
  REQUIRE(!db->create_table("b", storage::table_kind::blobs));
  REQUIRE(!db->create_table("t"));
  return db;
}

std::string read_blob(storage::database& db, const std::string& key) {
  auto txn = db.begin();
  std::vector<char> out;
  auto found = txn->get_blob("b", key, out);
  REQUIRE_MESSAGE(found, test::why(found));
  if (!*found)
    return "<absent>";
  return {out.begin(), out.end()};
}

size_t segment_files(const std::string& dir) {
  size_t n = 0;
  for (auto& e : fs::directory_iterator{fs::path{dir} / "blobs"})
    n += e.path().extension() == ".blob";
  return n;
}

} // namespace

TEST_SUITE("storage.blob_store") {
  TEST_CASE("blob rows round-trip, inline and in segments, and survive a reopen") {
    test::temp_dir dir;
    auto small = bytes_of(100, 1);
    auto large = bytes_of(300'000, 2);
    auto empty = std::string{};
    {
      auto db = open_db(dir.path());
      auto txn = db->begin();
      CHECK(!txn->put_blob("b", "small", small));
      CHECK(!txn->put_blob("b", "large", large));
      CHECK(!txn->put_blob("b", "empty", empty));
      std::vector<char> out;
      CHECK(txn->get_blob("b", "large", out).value()); // read your own write
      CHECK(std::string(out.begin(), out.end()) == large);
      CHECK(!txn->commit());
      CHECK(db->blobs().live_bytes() == large.size()); // only the large one left the row
      CHECK(read_blob(*db, "small") == small);
      CHECK(read_blob(*db, "large") == large);
      CHECK(read_blob(*db, "empty") == empty);
      CHECK(read_blob(*db, "none") == "<absent>");
    }
    auto db = open_db(dir.path());
    CHECK(db->missing_blobs() == 0);
    CHECK(db->blobs().live_bytes() == large.size());
    CHECK(read_blob(*db, "large") == large);
    CHECK(read_blob(*db, "small") == small);
  }

  TEST_CASE("segments take disk space as blobs fill them, and a closed one ends at its last blob") {
    test::temp_dir dir;
    auto payload = bytes_of(100'000, 9);
    {
      auto db = open_db(dir.path(), /*segment_bytes=*/64 << 20);
      auto txn = db->begin();
      CHECK(!txn->put_blob("b", "k", payload));
      CHECK(!txn->commit());
      // A segment file grows as blobs are appended: it is not 64 MiB from the start.
      for (auto& e : fs::directory_iterator{fs::path{dir.path()} / "blobs"})
        CHECK(fs::file_size(e.path()) <= (uint64_t{4} << 20));
      CHECK(read_blob(*db, "k") == payload);
    }
    std::vector<uint64_t> sizes;
    for (auto& e : fs::directory_iterator{fs::path{dir.path()} / "blobs"})
      sizes.push_back(fs::file_size(e.path()));
    REQUIRE(sizes.size() == 1);
    CHECK(sizes[0]
          == storage::blob_store::header_bytes + storage::blob_store::frame_bytes + payload.size());
    auto db = open_db(dir.path(), /*segment_bytes=*/64 << 20);
    CHECK(read_blob(*db, "k") == payload);
  }

  TEST_CASE("blobs of a transaction that does not commit are freed") {
    test::temp_dir dir;
    auto db = open_db(dir.path(), /*segment_bytes=*/64 << 10);
    {
      auto txn = db->begin();
      CHECK(!txn->put_blob("b", "k", bytes_of(100'000, 3)));
      CHECK(db->blobs().live_bytes() == 100'000);
      txn->rollback();
    }
    CHECK(db->blobs().live_bytes() == 0);
    {
      auto txn = db->begin();
      CHECK(!txn->put_blob("b", "k", bytes_of(100'000, 4)));
      // Overwritten in the same transaction: the first blob is freed at once.
      CHECK(!txn->put_blob("b", "k", bytes_of(90'000, 5)));
      CHECK(db->blobs().live_bytes() == 90'000);
    } // destroyed without commit
    CHECK(db->blobs().live_bytes() == 0);
    CHECK(read_blob(*db, "k") == "<absent>");
  }

  TEST_CASE("overwritten and deleted blobs are freed after the commit, and empty segments go") {
    test::temp_dir dir;
    auto db = open_db(dir.path(), /*segment_bytes=*/64 << 10);
    // Each blob takes a segment of its own (larger than the segment size).
    for (int i = 0; i < 5; ++i) {
      auto txn = db->begin();
      CHECK(!txn->put_blob("b", "k" + std::to_string(i), bytes_of(70'000, 10 + i)));
      CHECK(!txn->commit());
    }
    CHECK(db->blobs().live_bytes() == 5 * 70'000);
    CHECK(segment_files(dir.path()) >= 5);
    auto reader = db->begin(); // its snapshot still sees k0
    {
      auto txn = db->begin();
      CHECK(!txn->del_blob("b", "k0"));
      CHECK(!txn->put_blob("b", "k1", "now small"));
      CHECK(!txn->put_blob("b", "k2", bytes_of(80'000, 99)));
      CHECK(db->blobs().live_bytes() == 5 * 70'000 + 80'000); // freed only once committed
      CHECK(!txn->commit());
    }
    CHECK(db->blobs().live_bytes() == 2 * 70'000 + 80'000);
    CHECK(read_blob(*db, "k0") == "<absent>");
    CHECK(read_blob(*db, "k1") == "now small");
    CHECK(read_blob(*db, "k2") == bytes_of(80'000, 99));
    CHECK(read_blob(*db, "k3") == bytes_of(70'000, 13));
    // The freed blobs' segments were deleted: k3, k4, k2's and the current one remain.
    CHECK(segment_files(dir.path()) <= 4);
    // A reader whose row was deleted under it sees it absent or gets a clear not_found, never
    // other bytes.
    std::vector<char> out;
    auto r = reader->get_blob("b", "k0", out);
    if (!r)
      CHECK(is(r.error(), errc::not_found));
    else if (*r)
      CHECK(std::string(out.begin(), out.end()) == bytes_of(70'000, 10));
  }

  TEST_CASE("at open, blobs no committed row references are deleted; referenced ones stay") {
    test::temp_dir dir;
    {
      auto db = open_db(dir.path());
      auto txn = db->begin();
      CHECK(!txn->put_blob("b", "kept", bytes_of(200'000, 7)));
      CHECK(!txn->commit());
      // A transaction cut short by a crash: its blob is in a segment, no row refers to it.
      CHECK(db->blobs().append(bytes_of(500'000, 8)));
      CHECK(segment_files(dir.path()) == 1);
    }
    {
      auto db = open_db(dir.path());
      CHECK(db->blobs().live_bytes() == 200'000);
      CHECK(read_blob(*db, "kept") == bytes_of(200'000, 7));
      auto txn = db->begin();
      CHECK(!txn->del_blob("b", "kept"));
      CHECK(!txn->commit());
    }
    auto db = open_db(dir.path());
    CHECK(db->blobs().live_bytes() == 0);
    CHECK(segment_files(dir.path()) == 1); // only the new, empty current segment
  }

  TEST_CASE("a damaged segment gives corrupt_data naming the file and offset") {
    test::temp_dir dir;
    auto payload = bytes_of(50'000, 9);
    {
      auto db = open_db(dir.path());
      auto txn = db->begin();
      CHECK(!txn->put_blob("b", "k", payload));
      CHECK(!txn->put_blob("b", "j", payload));
      CHECK(!txn->commit());
    }
    fs::path seg;
    for (auto& e : fs::directory_iterator{fs::path{dir.path()} / "blobs"})
      seg = e.path();
    auto name = seg.filename().string();
    {
      std::fstream f{seg, std::ios::in | std::ios::out | std::ios::binary};
      f.seekp(storage::blob_store::header_bytes + storage::blob_store::frame_bytes + 1234);
      f.put('\x5a');
    }
    {
      auto db = open_db(dir.path());
      auto txn = db->begin();
      std::vector<char> out;
      auto r = txn->get_blob("b", "k", out);
      REQUIRE(!r);
      CHECK(is(r.error(), errc::corrupt_data));
      auto text = describe(r.error());
      CHECK(text.find(name) != std::string::npos);
      CHECK(text.find("offset 16") != std::string::npos);
      CHECK(text.find("hash mismatch") != std::string::npos);
      CHECK(read_blob(*db, "j") == payload); // the other blob is intact
      CHECK(!db->digest());                  // the digest does not hide the damage
    }
    fs::resize_file(seg, fs::file_size(seg) - 100);
    auto db = open_db(dir.path());
    auto txn = db->begin();
    std::vector<char> out;
    auto r = txn->get_blob("b", "j", out);
    REQUIRE(!r);
    CHECK(is(r.error(), errc::corrupt_data));
    CHECK(describe(r.error()).find("ends inside the blob") != std::string::npos);
  }

  TEST_CASE("a damaged frame, or a reference to another blob, gives corrupt_data") {
    test::temp_dir dir;
    auto payload = bytes_of(40'000, 3);
    storage::blob_ref ref;
    {
      auto db = open_db(dir.path());
      ref = test::must(db->blobs().append(payload));
      std::vector<char> out(ref.size);
      CHECK(!db->blobs().read(ref, out.data()));
      CHECK(std::string(out.begin(), out.end()) == payload);
      // A reference whose size or hash does not match the frame.
      auto wrong = ref;
      wrong.size -= 1;
      auto err = db->blobs().read(wrong, out.data());
      CHECK(is(err, errc::corrupt_data));
      CHECK(describe(err).find("another blob") != std::string::npos);
      // A reference into a segment that does not exist.
      auto gone = ref;
      gone.segment += 100;
      CHECK(is(db->blobs().read(gone, out.data()), errc::not_found));
    }
    auto seg = fs::path{dir.path()} / "blobs" / storage::blob_store::segment_name(ref.segment);
    {
      std::fstream f{seg, std::ios::in | std::ios::out | std::ios::binary};
      f.seekp(static_cast<std::streamoff>(ref.offset + 2)); // inside the frame's size field
      f.put('\x7f');
    }
    auto store = test::must(storage::blob_store::open((fs::path{dir.path()} / "blobs").string()));
    CHECK(store->adopt(ref));
    std::vector<char> out(ref.size);
    auto err = store->read(ref, out.data());
    CHECK(is(err, errc::corrupt_data));
    CHECK(describe(err).find("frame checksum mismatch") != std::string::npos);
    CHECK(describe(err).find(seg.filename().string()) != std::string::npos);
  }

  TEST_CASE("blobs tables and row tables each refuse the other's calls") {
    test::temp_dir dir;
    auto db = open_db(dir.path());
    auto txn = db->begin();
    CHECK(is(txn->put("b", "k", "v"), errc::invalid_argument));
    CHECK(is(txn->del("b", "k"), errc::invalid_argument));
    CHECK(is(txn->get("b", "k").error(), errc::invalid_argument));
    CHECK(is(txn->put_row("b", "k", {{"a", 1}}), errc::invalid_argument));
    CHECK(is(txn->put_blob("t", "k", "v"), errc::invalid_argument));
    std::vector<char> out;
    CHECK(is(txn->get_blob("t", "k", out).error(), errc::invalid_argument));
    CHECK(is(txn->put_blob("nope", "k", "v"), errc::invalid_argument));
  }

  TEST_CASE("the digest counts a blob's bytes, not where it lies") {
    test::temp_dir a, b;
    auto da = open_db(a.path());
    auto db = open_db(b.path());
    // Same final state, reached through different blob placements.
    {
      auto t = db->begin();
      CHECK(!t->put_blob("b", "x", bytes_of(40'000, 1)));
      CHECK(!t->commit());
    }
    for (auto* d : {da.get(), db.get()}) {
      auto t = d->begin();
      CHECK(!t->put_blob("b", "x", bytes_of(60'000, 2)));
      CHECK(!t->put_blob("b", "y", "small"));
      CHECK(!t->commit());
    }
    CHECK(da->digest().value() == db->digest().value());
    auto t = db->begin();
    auto changed = bytes_of(60'000, 2);
    changed[30'000] ^= 1;
    CHECK(!t->put_blob("b", "x", changed));
    CHECK(!t->commit());
    CHECK(da->digest().value() != db->digest().value());
  }

  TEST_CASE("retired segments are kept as spares and written over") {
    test::temp_dir dir;
    auto db = open_db(dir.path(), /*segment_bytes=*/64 << 10, /*lanes=*/1, /*spares=*/2);
    for (int round = 0; round < 6; ++round) {
      auto txn = db->begin();
      CHECK(!txn->put_blob("b", "k", bytes_of(70'000, round))); // one segment per blob
      CHECK(!txn->commit());
      CHECK(read_blob(*db, "k") == bytes_of(70'000, round));
    }
    // Each overwrite retired the previous blob's segment: two are kept as spares, the current
    // segment holds k, and no more files than that exist however many rounds ran.
    CHECK(db->blobs().spare_count() <= 2);
    CHECK(segment_files(dir.path()) == db->blobs().segment_count() + db->blobs().spare_count());
    CHECK(segment_files(dir.path()) <= 4);
    CHECK(db->blobs().live_bytes() == 70'000);
  }

  TEST_CASE("concurrent writers append in parallel and every blob reads back") {
    test::temp_dir dir;
    auto db = open_db(dir.path(), /*segment_bytes=*/256 << 10, /*lanes=*/3, /*spares=*/2);
    std::vector<std::thread> threads;
    for (int w = 0; w < 4; ++w)
      threads.emplace_back([&, w] {
        for (int i = 0; i < 20; ++i) {
          auto txn = db->begin();
          auto key = std::to_string(w) + "." + std::to_string(i);
          if (txn->put_blob("b", key, bytes_of(10'000 + 997 * i, w * 100 + i)) || txn->commit())
            std::abort();
        }
      });
    for (auto& t : threads)
      t.join();
    for (int w = 0; w < 4; ++w)
      for (int i = 0; i < 20; ++i)
        CHECK(read_blob(*db, std::to_string(w) + "." + std::to_string(i))
              == bytes_of(10'000 + 997 * i, w * 100 + i));
  }

  TEST_CASE("sync durability syncs the segment before the commit") {
    test::temp_dir dir;
    storage::options o;
    o.mode = storage::durability::sync;
    o.blob_inline_max = 16;
    auto db = test::must(storage::database::open(dir.path(), o));
    REQUIRE(!db->create_table("b", storage::table_kind::blobs));
    auto txn = db->begin();
    CHECK(!txn->put_blob("b", "k", bytes_of(5000, 1)));
    CHECK(!txn->commit());
    CHECK(read_blob(*db, "k") == bytes_of(5000, 1));
  }
}
