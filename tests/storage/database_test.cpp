// Tests for comb::storage::database and transaction: tables, rows, read-your-writes,
// conflicts, rollback, format checks and durability modes.
#include "storage/database.hpp"

#include "base/errc.hpp"
#include "storage/transaction.hpp"
#include "tests/test_util.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <functional>
#include <fstream>

using namespace comb;
namespace fs = std::filesystem;

TEST_SUITE("storage.database") {
  TEST_CASE("tables, rows, scans and read-your-writes") {
    test::temp_dir dir;
    auto db = storage::database::open(dir.path());
    REQUIRE(db);
    REQUIRE(!(*db)->create_table("t"));
    REQUIRE(!(*db)->create_table("t")); // idempotent
    CHECK(is((*db)->create_table("bad name!"), errc::invalid_argument));
    auto txn = (*db)->begin();
    CHECK(!txn->put_row("t", "b", {{"v", 2}}));
    CHECK(!txn->put_row("t", "a", {{"v", 1}}));
    CHECK(!txn->put("t", "c", "raw"));
    auto r = txn->get_row("t", "a");
    REQUIRE(r);
    REQUIRE(*r);
    CHECK((**r)["v"] == 1); // read your own write
    std::vector<std::string> keys;
    CHECK(!txn->scan("t", "", "", [&](auto k, auto) { return keys.emplace_back(k), true; }));
    CHECK(keys == std::vector<std::string>{"a", "b", "c"});
    keys.clear();
    CHECK(!txn->scan("t", "b", "c", [&](auto k, auto) { return keys.emplace_back(k), true; }));
    CHECK(keys == std::vector<std::string>{"b"});
    CHECK(txn->changes().size() == 3);
    CHECK(txn->changes()[0].kind == storage::row_change::op::insert);
    CHECK(!txn->commit());
    auto t2 = (*db)->begin();
    CHECK(!t2->put_row("t", "a", {{"v", 10}}));
    CHECK(t2->changes()[0].kind == storage::row_change::op::update);
    CHECK(!t2->del("t", "c"));
    CHECK(!t2->commit());
    CHECK((*db)->count("t").value() == 2);
    CHECK(is((*db)->count("nope").error(), errc::unknown_table));
    auto t3 = (*db)->begin();
    CHECK(is(t3->get("nope", "x").error(), errc::unknown_table));
    CHECK(is(t3->insert_row("t", "a", {{"v", 0}}), errc::already_exists));
  }

  TEST_CASE("with record_changes off, writes commit and no change is recorded") {
    test::temp_dir dir;
    auto db = test::must(storage::database::open(dir.path()));
    REQUIRE(!db->create_table("t"));
    auto txn = db->begin();
    txn->record_changes(false);
    CHECK(!txn->put_row("t", "a", {{"v", 1}}));
    CHECK(!txn->put("t", "b", "raw"));
    CHECK(is(txn->insert_row("t", "a", {{"v", 2}}), errc::already_exists)); // still known
    CHECK(!txn->del("t", "b"));
    CHECK(txn->changes().empty());
    CHECK(!txn->read_only());
    CHECK(!txn->commit());
    auto t2 = db->begin();
    auto a = t2->get_row("t", "a");
    REQUIRE(a);
    REQUIRE(*a);
    CHECK((**a)["v"] == 1);
    auto b = t2->get("t", "b");
    REQUIRE(b);
    CHECK(!*b);
    CHECK(!t2->put_row("t", "c", {{"v", 3}}));
    CHECK(t2->changes().size() == 1); // the default records
  }

  TEST_CASE("insert or update is told by table and key, in small and large transactions") {
    test::temp_dir dir;
    auto db = test::must(storage::database::open(dir.path()));
    REQUIRE(!db->create_table("t"));
    REQUIRE(!db->create_table("u"));
    auto key = [](int i) { // short keys and keys past 15 bytes (no small-string buffer)
      return i % 2 ? "k" + std::to_string(i) : "a-rather-long-key-" + std::to_string(i);
    };
    {
      auto setup = db->begin();
      for (int i = 0; i < 100; i += 2)
        REQUIRE(!setup->put("t", key(i), "x"));
      REQUIRE(!setup->commit());
    }
    for (int rows : {4, 100}) { // 100 rows: past the transaction's small list of known rows
      CAPTURE(rows);
      auto txn = db->begin();
      // Reads first (every other key exists in t), then writes to the same keys of t and of
      // u, where none exists: the same key in another table is another row.
      for (int i = 0; i < rows; ++i)
        REQUIRE(txn->get("t", key(i)));
      for (int i = 0; i < rows; ++i) {
        REQUIRE(!txn->put("t", key(i), "y"));
        REQUIRE(!txn->put("u", key(i), "y"));
      }
      REQUIRE(!txn->del("t", key(0)));
      REQUIRE(!txn->put("t", key(0), "z")); // deleted in this transaction: an insert again
      CHECK(is(txn->insert("u", key(1), "w"), errc::already_exists)); // written here
      REQUIRE(!txn->insert("u", "fresh", "w"));
      const auto& c = txn->changes();
      REQUIRE(c.size() == static_cast<size_t>(2 * rows + 3));
      for (int i = 0; i < rows; ++i) {
        CAPTURE(i);
        CHECK(c[2 * i].table == "t");
        CHECK(c[2 * i].key == key(i));
        CHECK(c[2 * i].kind
              == (i % 2 == 0 ? storage::row_change::op::update : storage::row_change::op::insert));
        CHECK(c[2 * i + 1].table == "u");
        CHECK(c[2 * i + 1].kind == storage::row_change::op::insert);
      }
      CHECK(c[2 * rows].kind == storage::row_change::op::del);
      CHECK(c[2 * rows + 1].kind == storage::row_change::op::insert);
      CHECK(c[2 * rows + 2].kind == storage::row_change::op::insert);
      txn->rollback();
    }
  }

  TEST_CASE("rollback discards writes") {
    test::temp_dir dir;
    auto db = test::must(storage::database::open(dir.path()));
    REQUIRE(!db->create_table("t"));
    {
      auto txn = db->begin();
      CHECK(!txn->put("t", "k", "v"));
      txn->rollback();
    }
    {
      auto txn = db->begin();
      CHECK(!txn->put("t", "k2", "v"));
      // destroyed without commit: rolled back
    }
    CHECK(db->count("t").value() == 0);
  }

  TEST_CASE("a locked row makes a concurrent writer fail with conflict") {
    test::temp_dir dir;
    storage::options opts;
    opts.lock_timeout_ms = 50;
    auto db = test::must(storage::database::open(dir.path(), opts));
    REQUIRE(!db->create_table("t"));
    auto a = db->begin();
    auto b = db->begin();
    REQUIRE(a->get_for_update("t", "k"));
    CHECK(!a->put("t", "k", "1"));
    CHECK(is(b->put("t", "k", "2"), errc::conflict));
    CHECK(!a->commit());
    auto c = db->begin();
    CHECK(c->get("t", "k").value().value() == "1");
  }

  TEST_CASE("a transaction begun after others finished starts clean (reused RocksDB handles)") {
    // database::begin reuses the RocksDB transactions of finished ones: none of their writes,
    // locks or reads may reach the next transaction.
    test::temp_dir dir;
    storage::options opts;
    opts.lock_timeout_ms = 50;
    auto db = test::must(storage::database::open(dir.path(), opts));
    REQUIRE(!db->create_table("t"));
    {
      auto a = db->begin();
      CHECK(!a->put("t", "gone", "x"));
      REQUIRE(a->get_for_update("t", "locked"));
      // destroyed without commit: rolled back, its handle kept for reuse
    }
    {
      auto b = db->begin();
      CHECK(!b->put("t", "kept", "1"));
      CHECK(!b->commit());
    }
    for (int i = 0; i < 4; ++i) {
      CAPTURE(i);
      auto c = db->begin();
      auto d = db->begin(); // two at once: at least one of them reused
      for (auto* t : {c.get(), d.get()}) {
        CHECK(t->changes().empty());
        CHECK(t->read_only());
        CHECK(t->get("t", "gone").value() == std::nullopt); // a's write is not in its batch
      }
      CHECK(!c->put("t", "locked", std::to_string(i))); // a's lock was released
      CHECK(is(d->put("t", "locked", "no"), errc::conflict)); // c holds the lock now
      CHECK(!c->commit());
      CHECK(d->get("t", "locked").value() == std::to_string(i));
      if (i % 2 == 0)
        d->rollback();
      else
        CHECK(!d->commit()); // nothing written: commits nothing
    }
    CHECK(db->get("t", "kept").value() == "1");
    CHECK(db->get("t", "locked").value() == "3");
    CHECK(!db->get("t", "gone").value());
    CHECK(db->count("t").value() == 2);
  }

  TEST_CASE("reopen keeps data and tables; digest is stable") {
    test::temp_dir dir;
    std::string digest;
    {
      auto db = test::must(storage::database::open(dir.path()));
      REQUIRE(!db->create_table("t"));
      auto txn = db->begin();
      CHECK(!txn->put_row("t", "a", {{"x", "y"}}));
      CHECK(!txn->commit());
      CHECK(!db->sync_wal());
      digest = db->digest().value();
    }
    auto db = test::must(storage::database::open(dir.path()));
    CHECK(db->has_table("t"));
    CHECK(db->digest().value() == digest);
    auto txn = db->begin();
    CHECK(!txn->put_row("t", "a", {{"x", "z"}}));
    CHECK(!txn->commit());
    CHECK(db->digest().value() != digest);
  }

  TEST_CASE("a folder that is not Comb's, or of another version, is refused untouched") {
    test::temp_dir dir;
    auto foreign = dir.path() + "/foreign";
    fs::create_directories(foreign);
    std::ofstream{foreign + "/important.txt"} << "keep me";
    auto db = storage::database::open(foreign);
    REQUIRE(!db);
    CHECK(is(db.error(), errc::not_comb_folder));
    CHECK(describe(db.error()).find("no COMB marker") != std::string::npos);
    CHECK(fs::exists(foreign + "/important.txt"));
    CHECK(!fs::exists(foreign + "/db"));

    auto old = dir.path() + "/old";
    REQUIRE(storage::database::open(old));
    std::ofstream{old + "/COMB"} << "comb-data-folder 999\n";
    auto db2 = storage::database::open(old);
    REQUIRE(!db2);
    CHECK(is(db2.error(), errc::format_mismatch));

    auto bogus = dir.path() + "/bogus";
    fs::create_directories(bogus);
    std::ofstream{bogus + "/COMB"} << "something else\n";
    CHECK(is(storage::database::open(bogus).error(), errc::not_comb_folder));
  }

  TEST_CASE("a stored row that is not MessagePack is reported as corrupt") {
    test::temp_dir dir;
    auto db = test::must(storage::database::open(dir.path()));
    REQUIRE(!db->create_table("t"));
    auto txn = db->begin();
    CHECK(!txn->put("t", "k", std::string("\xc1\xc1", 2)));
    CHECK(is(txn->get_row("t", "k").error(), errc::corrupt_data));
  }

  TEST_CASE("rows of any size read and write right through the buffer reused between calls") {
    test::temp_dir dir;
    auto db = test::must(storage::database::open(dir.path()));
    REQUIRE(!db->create_table("t"));
    auto txn = db->begin();
    nlohmann::json big = {{"s", std::string(100000, 'x')}, {"n", 1}};
    nlohmann::json small = {{"v", 7}};
    CHECK(!txn->put_row("t", "big", big));
    CHECK(!txn->put_row("t", "small", small)); // written after a larger row: only its bytes
    CHECK(!txn->insert_row("t", "mid", {{"a", {1, 2, 3}}, {"b", "text"}}));
    CHECK(txn->changes().size() == 3);
    std::string small_bytes;
    nlohmann::json::to_msgpack(small, small_bytes);
    CHECK(txn->changes()[1].value == small_bytes); // the change holds this row's bytes only
    CHECK(txn->get_row("t", "big").value().value() == big);
    CHECK(txn->get_row("t", "small").value().value() == small);
    CHECK(txn->get_row_for_update("t", "mid").value().value()
          == nlohmann::json{{"a", {1, 2, 3}}, {"b", "text"}});
    CHECK(!txn->get_row("t", "none").value());
    // A row guard that reads a row itself (of another transaction) while the outer read holds
    // the buffer: each read gets its own row.
    auto other = db->begin();
    std::optional<nlohmann::json> seen;
    txn->set_row_guard([&](std::string_view, std::string_view key) -> caf::error {
      if (key == "small")
        seen = other->get_row("t", "absent-in-other").value();
      return {};
    });
    CHECK(txn->get_row("t", "small").value().value() == small);
    CHECK(!seen);
    CHECK(!txn->commit());
    auto t2 = db->begin();
    CHECK(t2->get_row("t", "big").value().value() == big);
    CHECK(t2->get_row("t", "small").value().value() == small);
  }

  TEST_CASE("put_row stores the bytes json::to_msgpack writes, for every kind and size") {
    test::temp_dir dir;
    auto db = test::must(storage::database::open(dir.path()));
    REQUIRE(!db->create_table("t"));
    using nlohmann::json;
    json ints = json::array();
    for (int64_t i : {int64_t{0}, int64_t{1}, int64_t{127}, int64_t{128}, int64_t{255},
                      int64_t{256}, int64_t{65535}, int64_t{65536}, int64_t{4294967295},
                      int64_t{4294967296}, INT64_MAX, int64_t{-1}, int64_t{-32}, int64_t{-33},
                      int64_t{-128}, int64_t{-129}, int64_t{-32768}, int64_t{-32769},
                      int64_t{INT32_MIN}, int64_t{INT32_MIN} - 1, INT64_MIN})
      ints.push_back(i);
    for (uint64_t u : {uint64_t{0}, uint64_t{127}, uint64_t{128}, uint64_t{65536}, UINT64_MAX})
      ints.push_back(u);
    json strings = json::array();
    for (size_t n : {0, 1, 31, 32, 255, 256, 65535, 65536})
      strings.push_back(std::string(n, 'k'));
    auto array_of = [](size_t n) { return json(std::vector<int>(n, 3)); };
    auto object_of = [](size_t n) {
      json o = json::object();
      for (size_t i = 0; i < n; ++i)
        o[std::string(i % 40, 'a') + std::to_string(i)] = i;
      return o;
    };
    std::vector<json> rows = {
      json::object(), json{{"balance", 42}}, json{{"x", nullptr}, {"t", true}, {"f", false}},
      json{{"ints", ints}}, json{{"strings", strings}},
      json{{"floats", {1.5, 0.1, 1e300, -0.0, 3.0}}},
      json{{"bin", json::binary({1, 2, 3})}, {"ext", json::binary({1, 2, 3, 4}, 7)}},
      json{{"a15", array_of(15)}, {"a16", array_of(16)}, {"a65536", array_of(65536)}},
      object_of(15), object_of(16), object_of(70000),
      json{{"nested", {{"deep", {{"er", {1, {{"k", "v"}}, json::array()}}}}}}},
      json::array({1, "two", 3.0}), json("a bare string"), json(7)};
    auto txn = db->begin();
    for (size_t i = 0; i < rows.size(); ++i) {
      CAPTURE(i);
      auto key = "r" + std::to_string(i);
      CHECK(!txn->put_row("t", key, rows[i]));
      std::string expect;
      nlohmann::json::to_msgpack(rows[i], expect);
      auto stored = txn->get("t", key).value().value();
      CHECK(stored == expect);
      CHECK(txn->get_row("t", key).value().value() == rows[i]);
    }
  }

  TEST_CASE("a stored row cut short or with bytes after it is reported as corrupt") {
    test::temp_dir dir;
    auto db = test::must(storage::database::open(dir.path()));
    REQUIRE(!db->create_table("t"));
    auto txn = db->begin();
    std::string whole;
    nlohmann::json::to_msgpack(nlohmann::json{{"a", 1}, {"b", 2}}, whole);
    CHECK(!txn->put("t", "cut", whole.substr(0, whole.size() - 2)));
    CHECK(!txn->put("t", "extra", whole + "\x01"));
    CHECK(is(txn->get_row("t", "cut").error(), errc::corrupt_data));
    CHECK(is(txn->get_row_for_update("t", "extra").error(), errc::corrupt_data));
    CHECK(!txn->put("t", "ok", whole));
    CHECK(txn->get_row("t", "ok").value().value() == nlohmann::json{{"a", 1}, {"b", 2}});
  }

  TEST_CASE("a transaction records its changes into spare ones as into new ones") {
    test::temp_dir dir;
    auto db = test::must(storage::database::open(dir.path()));
    REQUIRE(!db->create_table("t"));
    REQUIRE(!db->create_table("other"));
    auto write = [](storage::transaction& txn) {
      CHECK(!txn.put_row("t", "a", {{"v", std::string(40, 'x')}}));
      CHECK(!txn.put("t", "b", "raw"));
      CHECK(!txn.del("t", "a"));
      CHECK(!txn.insert_row("t", "c", {{"v", 3}}));
    };
    auto fresh = db->begin();
    write(*fresh);
    auto expected = fresh->take_changes();
    fresh->rollback();
    REQUIRE(expected.size() == 4);
    // Spares holding other changes (a longer table name, values of every size, the other
    // kinds), fewer than the writes, and as many and more.
    for (size_t n : {size_t{2}, size_t{4}, size_t{7}}) {
      CAPTURE(n);
      std::vector<storage::row_change> spare(n);
      for (size_t i = 0; i < n; ++i) {
        spare[i].table = "other";
        spare[i].key = "stale key " + std::to_string(i) + std::string(30, 'k');
        spare[i].kind = i % 2 ? storage::row_change::op::del : storage::row_change::op::update;
        spare[i].is_row = i % 2 == 0;
        spare[i].value = std::string(i * 50, 'z');
      }
      auto txn = db->begin();
      txn->reuse_changes(std::move(spare));
      write(*txn);
      const auto& got = txn->changes();
      REQUIRE(got.size() == expected.size());
      for (size_t i = 0; i < got.size(); ++i) {
        CAPTURE(i);
        CHECK(got[i].table == expected[i].table);
        CHECK(got[i].key == expected[i].key);
        CHECK(got[i].kind == expected[i].kind);
        CHECK(got[i].is_row == expected[i].is_row);
        CHECK(got[i].value == expected[i].value);
      }
      // Taken: exactly the changes made (spares beyond them dropped), and the next ones are
      // recorded afresh.
      auto taken = txn->take_changes();
      REQUIRE(taken.size() == expected.size());
      for (size_t i = 0; i < taken.size(); ++i)
        CHECK(taken[i].key == expected[i].key);
      CHECK(txn->changes().empty());
      CHECK(!txn->put("t", "after", "x"));
      REQUIRE(txn->changes().size() == 1);
      CHECK(txn->changes()[0].key == "after");
      txn->rollback();
      CHECK(txn->changes().empty());
    }
  }

  TEST_CASE("decode_row reads put_row's bytes and refuses bytes that are not one value") {
    nlohmann::json row{{"a", 1}, {"b", {1, "two", nullptr}}, {"c", {{"d", true}}}};
    std::string bytes;
    nlohmann::json::to_msgpack(row, bytes);
    nlohmann::json out = "previous";
    CHECK(storage::transaction::decode_row(bytes, out));
    CHECK(out == row);
    CHECK_FALSE(storage::transaction::decode_row(bytes.substr(0, bytes.size() - 1), out));
    CHECK(out.is_null());
    CHECK_FALSE(storage::transaction::decode_row(bytes + "\x01", out));
    CHECK_FALSE(storage::transaction::decode_row("", out));
  }

  TEST_CASE("decode_row gives what nlohmann's MessagePack parser gives, type for type") {
    // decode_row reads common rows with Comb's cursor and leaves the rest to nlohmann's
    // parser: whichever reads a row, the JSON (each value's type included: 5 read from an
    // int8 is a signed integer, from a uint8 an unsigned one) and the refusals must be the
    // parser's.
    std::function<bool(const nlohmann::json&, const nlohmann::json&)> same =
      [&](const nlohmann::json& a, const nlohmann::json& b) {
        if (a.type() != b.type())
          return false;
        if (a.is_object()) {
          if (a.size() != b.size())
            return false;
          for (auto i = a.begin(), j = b.begin(); i != a.end(); ++i, ++j)
            if (i.key() != j.key() || !same(*i, *j))
              return false;
          return true;
        }
        if (a.is_array()) {
          if (a.size() != b.size())
            return false;
          for (size_t i = 0; i < a.size(); ++i)
            if (!same(a[i], b[i]))
              return false;
          return true;
        }
        return a == b;
      };
    std::vector<std::string> cases;
    for (auto& j : {nlohmann::json{{"balance", 1000000000}}, nlohmann::json{{"balance", -5}},
                    nlohmann::json{{"from", "acct-1"},
                                   {"to", "acct-2"},
                                   {"amount", 17},
                                   {"exec", 18446744073709551615ull}},
                    nlohmann::json{{"a", 1.5},
                                   {"b", {1, "two", nullptr, true, false}},
                                   {"c", {{"d", nlohmann::json::object()}}},
                                   {"e", nlohmann::json::array()}},
                    nlohmann::json(std::string(70000, 'x')), nlohmann::json(-1),
                    nlohmann::json(INT64_MIN), nlohmann::json(255u), nlohmann::json(nullptr),
                    nlohmann::json::binary({1, 2, 3}), nlohmann::json::binary({1, 2}, 7)}) {
      std::string b;
      nlohmann::json::to_msgpack(j, b);
      cases.push_back(b);
    }
    auto bytes = [](std::initializer_list<int> v) {
      std::string s;
      for (int c : v)
        s.push_back(static_cast<char>(c));
      return s;
    };
    cases.push_back(bytes({0xd0, 0x05}));                             // int8 5: a signed integer
    cases.push_back(bytes({0xd3, 0, 0, 0, 0, 0, 0, 0, 0x07}));        // int64 7
    cases.push_back(bytes({0xcc, 0x05}));                             // uint8 5: unsigned
    cases.push_back(bytes({0xca, 0x3f, 0xc0, 0, 0}));                 // float32 1.5
    cases.push_back(bytes({0x82, 0xa1, 'k', 0x01, 0xa1, 'k', 0x02})); // a repeated key
    cases.push_back(bytes({0x81, 0x01, 0x02}));                       // a key that is no string
    cases.push_back(bytes({0x81, 0xc4, 0x01, 'k', 0x02}));            // a bin key
    cases.push_back(bytes({0xd4, 0x05, 0x01}));                       // fixext 1
    cases.push_back(bytes({0x91, 0xc7, 0x02, 0x09, 'a', 'b'}));       // ext 8 in an array
    cases.push_back(bytes({0xc1}));                                   // never used
    cases.push_back(bytes({0xdc, 0xff, 0xff}));                       // array 16 of 65535, no items
    std::string deep(40, '\x91'); // 40 nested arrays around a 1: past the cursor's depth
    cases.push_back(deep + "\x01");
    for (size_t n = cases.size(), i = 0; i < n; ++i) { // each cut short, and with a byte more
      for (size_t cut = 0; cut < std::min<size_t>(cases[i].size(), 12); ++cut)
        cases.push_back(cases[i].substr(0, cut));
      cases.push_back(cases[i] + "\x01");
    }
    size_t read = 0;
    for (auto& b : cases) {
      CAPTURE(nlohmann::json::binary(std::vector<uint8_t>(b.begin(), b.end())).dump());
      auto want = nlohmann::json::from_msgpack(b, /*strict=*/true, /*allow_exceptions=*/false);
      nlohmann::json got = "previous";
      bool ok = storage::transaction::decode_row(b, got);
      CHECK(ok == !want.is_discarded());
      if (ok) {
        ++read;
        CHECK(same(got, want));
      } else {
        CHECK(got.is_null());
      }
    }
    CHECK(read >= 11); // at least every value to_msgpack wrote
  }

  TEST_CASE("the database owns durability: sync commits are synced, grouped ones by sync_group") {
    for (auto mode : {storage::durability::sync, storage::durability::async}) {
      CAPTURE(storage::to_string(mode));
      test::temp_dir dir;
      storage::options opts;
      opts.mode = mode;
      auto db = test::must(storage::database::open(dir.path(), opts));
      CHECK(db->syncs_commits() == (mode == storage::durability::sync));
      REQUIRE(!db->create_table("t"));
      // A plain commit is as durable as the mode asks when it returns; a grouped one waits for
      // sync_group(), which is a no-op where commits need no sync.
      auto plain = db->begin();
      CHECK(!plain->put_row("t", "a", {{"x", 1}}));
      CHECK(!plain->commit());
      auto grouped = db->begin(/*group_sync=*/true);
      CHECK(!grouped->put_row("t", "b", {{"x", 2}}));
      CHECK(!grouped->commit());
      CHECK(!db->sync_group());
      CHECK(db->count("t").value() == 2);
    }
  }

} // TEST_SUITE
