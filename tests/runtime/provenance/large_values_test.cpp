// Large values in provenance (issue 16, space): arguments above the threshold are logged
// with their long strings as SHA-256 digest and size, model chunks live once in the blob
// store, and replay takes a chunk's bytes from the source database by digest, or names the
// digest it cannot find.
#include "base/base64.hpp"
#include "base/errc.hpp"
#include "node/node.hpp"
#include "runtime/pieces/model_digest.hpp"
#include "runtime/pieces/model_store.hpp"
#include "runtime/provenance/large_values.hpp"
#include "runtime/provenance/provenance_recorder.hpp"
#include "runtime/provenance/replay.hpp"
#include "runtime/system_config.hpp"
#include "storage/database.hpp"
#include "storage/provenance_log.hpp"
#include "storage/transaction.hpp"
#include "tests/test_util.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <random>

using namespace comb;
using nlohmann::json;

namespace {

std::string random_bytes(size_t n, uint32_t seed) {
  std::mt19937 gen{seed};
  std::string out(n, '\0');
  for (auto& c : out)
    c = static_cast<char>(gen());
  return out;
}

// Stores `bytes` as raw model `name` version 1 through the procedures, chunk by chunk.
void put_model(runtime::node& n, const std::string& name, const std::string& bytes) {
  uint32_t chunks = 0;
  for (size_t off = 0; off < bytes.size(); off += runtime::model_store::chunk_size) {
    auto part = std::string_view{bytes}.substr(off, runtime::model_store::chunk_size);
    test::must(n.call(
      "comb.model.put_chunk",
      {{"name", name}, {"version", 1}, {"chunk_no", chunks++}, {"data", base64_encode(part)}},
      "admin"));
  }
  test::must(n.call("comb.model.put",
                    {{"name", name},
                     {"version", 1},
                     {"chunk_count", chunks},
                     {"digest", runtime::model_digest(bytes.data(), bytes.size())},
                     {"kind", "raw"}},
                    "admin"));
}

// t.note {text}: keeps only the text's length (its bytes are stored nowhere).
void add_note(runtime::procedure_registry& procs) {
  procs.add_table("t.notes");
  procs.add("t.note",
            [](runtime::call_context&, storage::transaction& txn,
               const json& args) -> caf::expected<json> {
              auto text = args.at("text").get<std::string>();
              if (auto err = txn.put_row("t.notes", "n", json{{"len", text.size()}}))
                return err;
              return json{};
            });
}

// t.big {seed}: writes a row with a 200 KiB string, 100 KiB of bytes and small fields, and
// 100 KiB of raw bytes, all made from the seed (replay writes them again).
void add_big(runtime::procedure_registry& procs) {
  procs.add_table("t.big");
  procs.add_table("t.raw");
  procs.add("t.big",
            [](runtime::call_context&, storage::transaction& txn,
               const json& args) -> caf::expected<json> {
              auto seed = args.at("seed").get<uint32_t>();
              auto text = base64_encode(random_bytes(150 * 1024, seed));
              auto bytes = random_bytes(100 * 1024, seed + 1);
              json row{{"name", "x"},
                       {"n", seed},
                       {"text", text},
                       {"bytes", json::binary_t{std::vector<uint8_t>(bytes.begin(), bytes.end())}}};
              if (auto err = txn.put_row("t.big", "r" + std::to_string(seed), row))
                return err;
              if (auto err = txn.put("t.raw", "r" + std::to_string(seed), bytes))
                return err;
              return json{{"text_bytes", text.size()}};
            });
}

std::string digest_of(const std::string& data) {
  storage::options opts;
  opts.create_if_missing = false;
  opts.read_only = true;
  auto db = test::must(storage::database::open(data, opts));
  return test::must(db->digest());
}

} // namespace

TEST_SUITE("runtime.provenance.large_values") {
  TEST_CASE("large row values and message payloads are logged as digest and size; replay "
            "compares rows by digest") {
    test::temp_dir dir;
    runtime::node_config cfg;
    cfg.data_dir = dir.path() + "/data";
    cfg.provenance_dir = dir.path() + "/log";
    cfg.durability = storage::durability::async;
    cfg.partitions = 2;
    cfg.provenance_elide_bytes = 4096;
    {
      runtime::system_config sc{2};
      caf::actor_system sys{sc};
      auto procs = std::make_shared<runtime::procedure_registry>();
      add_big(*procs);
      auto n = test::must(runtime::node::start(sys, cfg, procs));
      for (uint32_t seed : {1u, 2u})
        test::must(n->call("t.big", {{"seed", seed}}, "admin"));
    }
    size_t big_records = 0;
    auto reader = test::must(storage::log_reader::open(cfg.provenance_dir));
    REQUIRE(!reader.for_each(0, [&](storage::log_record&& r) {
      if (r.procedure != "t.big")
        return true;
      ++big_records;
      auto seed = json::parse(r.payload).at("seed").get<uint32_t>();
      auto text = base64_encode(random_bytes(150 * 1024, seed));
      auto bytes = random_bytes(100 * 1024, seed + 1);
      REQUIRE(r.changes.size() == 2);
      for (auto& c : r.changes) {
        CHECK_MESSAGE(c.value.size() < 1024, c.table << " logged " << c.value.size() << " bytes");
        auto v = json::from_msgpack(c.value);
        if (c.table == "t.big") {
          CHECK(v["name"] == "x"); // small fields kept
          CHECK(v["n"] == seed);
          // The base64 text is digested as the bytes it encodes (as arguments are).
          auto raw = random_bytes(150 * 1024, seed);
          CHECK(v["text"][runtime::elided_key]["sha256"]
                == runtime::model_digest(raw.data(), raw.size()));
          CHECK(v["text"][runtime::elided_key]["base64"] == true);
          CHECK(v["bytes"][runtime::elided_key]["sha256"]
                == runtime::model_digest(bytes.data(), bytes.size()));
          CHECK(v["bytes"][runtime::elided_key]["size"] == bytes.size());
          CHECK(v["bytes"][runtime::elided_key]["binary"] == true);
        } else {
          CHECK(v[runtime::elided_key]["sha256"]
                == runtime::model_digest(bytes.data(), bytes.size()));
          CHECK(v[runtime::elided_key]["whole"] == true);
        }
      }
      return true;
    }));
    CHECK(big_records == 2);

    // Replay writes the whole values again and matches them with the log's digests.
    runtime::procedure_registry procs;
    add_big(procs);
    runtime::replay_options ro;
    ro.log_dir = cfg.provenance_dir;
    ro.into_dir = dir.path() + "/replayed";
    ro.source_data = cfg.data_dir;
    auto rep = runtime::replay(procs, ro);
    REQUIRE_MESSAGE(rep, test::why(rep));
    CHECK(rep->digest == digest_of(cfg.data_dir));
    // A value that differs from the one logged is still a divergence.
    runtime::procedure_registry other;
    other.add_table("t.big");
    other.add_table("t.raw");
    other.add("t.big",
              [](runtime::call_context&, storage::transaction& txn,
                 const json& args) -> caf::expected<json> {
                auto seed = args.at("seed").get<uint32_t>();
                auto bytes = random_bytes(100 * 1024, seed + 1);
                bytes[5] ^= 1;
                json row{{"name", "x"},
                         {"n", seed},
                         {"text", base64_encode(random_bytes(150 * 1024, seed))},
                         {"bytes",
                          json::binary_t{std::vector<uint8_t>(bytes.begin(), bytes.end())}}};
                if (auto err = txn.put_row("t.big", "r" + std::to_string(seed), row))
                  return err;
                if (auto err = txn.put("t.raw", "r" + std::to_string(seed), bytes))
                  return err;
                return json{};
              });
    ro.into_dir = dir.path() + "/diverged";
    auto bad = runtime::replay(other, ro);
    REQUIRE(!bad);
    CHECK(describe(bad.error()).find("replay diverged") != std::string::npos);

    // A message's large payload: its long strings as digest and size.
    {
      storage::options so;
      so.keep_wal_seconds = runtime::provenance_recorder::keep_wal_seconds;
      auto db = test::must(storage::database::open(dir.path() + "/mdb", so));
      runtime::provenance_recorder::options po;
      po.log_dir = dir.path() + "/mlog";
      po.elide_above = 4096;
      auto rec = test::must(runtime::provenance_recorder::open(*db, po));
      storage::message_record m;
      m.kind = "function_call";
      m.sender = "a";
      m.receiver = "b";
      m.payload = json{{"call", "k"}, {"input", std::string(50000, '-')}}.dump(); // not base64
      rec->on_message(m);
    }
    size_t messages = 0;
    auto mreader = test::must(storage::log_reader::open(dir.path() + "/mlog"));
    REQUIRE(!mreader.for_each(0, [&](storage::log_record&& r) {
      if (r.kind != storage::log_record::kind_t::message)
        return true;
      ++messages;
      CHECK(r.payload.size() < 1024);
      REQUIRE(r.payload.rfind("function_call ", 0) == 0); // "<kind> <payload>"
      auto p = json::parse(r.payload.substr(14));
      CHECK(p["call"] == "k");
      CHECK(p["input"][runtime::elided_key]["size"] == 50000);
      return true;
    }));
    CHECK(messages == 1);
  }

  TEST_CASE("elide_large_values keeps small arguments and short strings, digests long ones") {
    json small{{"name", "m"}, {"data", std::string(100, 'x')}};
    CHECK(!runtime::elide_large_values(small.dump(), 64));
    auto bytes = random_bytes(3000, 1);
    json big{{"name", "m"}, {"data", base64_encode(bytes)}, {"note", std::string(2000, '-')}};
    auto out = runtime::elide_large_values(big.dump(), 1024);
    REQUIRE(out);
    auto j = json::parse(*out);
    CHECK(j["name"] == "m");
    CHECK(j["data"][runtime::elided_key]["sha256"]
          == runtime::model_digest(bytes.data(), bytes.size()));
    CHECK(j["data"][runtime::elided_key]["size"] == 3000);
    CHECK(j["data"][runtime::elided_key]["base64"] == true);
    CHECK(j["note"][runtime::elided_key]["base64"] == false);
    CHECK(runtime::has_elided(j));
    // Restored from a source that has the bytes: the arguments as they were.
    auto restored = j;
    REQUIRE(!runtime::restore_elided(
      restored, [&](const std::string& sha, uint64_t size) -> caf::expected<std::string> {
        if (size == 3000)
          return bytes;
        return std::string(2000, '-');
      }));
    CHECK(restored == big);
    // Bytes with another digest are refused, naming the argument and the digest.
    auto wrong = j;
    auto err = runtime::restore_elided(
      wrong, [&](const std::string&, uint64_t size) -> caf::expected<std::string> {
        return std::string(size, 'z');
      });
    REQUIRE(err);
    CHECK(describe(err).find("argument data was logged as its digest sha256 "
                             + runtime::model_digest(bytes.data(), bytes.size()))
          != std::string::npos);
  }

  TEST_CASE("model chunks are logged as digest and size; replay takes them from the source") {
    test::temp_dir dir;
    runtime::node_config cfg;
    cfg.data_dir = dir.path() + "/data";
    cfg.provenance_dir = dir.path() + "/log";
    cfg.durability = storage::durability::async;
    cfg.partitions = 2;
    cfg.provenance_elide_bytes = 4096; // small, so that a small model shows it
    auto model = random_bytes(runtime::model_store::chunk_size + 20000, 7);
    auto small = random_bytes(9000, 8); // inline in its blob row
    {
      runtime::system_config sc{2};
      caf::actor_system sys{sc};
      // A procedure that keeps only the length of its large argument: replay could not find
      // the argument's bytes anywhere, so its record must hold them.
      auto procs = std::make_shared<runtime::procedure_registry>();
      add_note(*procs);
      auto n = test::must(runtime::node::start(sys, cfg, procs));
      put_model(*n, "big", model);
      put_model(*n, "small", small);
      test::must(n->call("t.note", {{"text", base64_encode(small)}}, "admin"));
    }
    // Each chunk's record names its bytes by digest and size; no record holds them.
    std::vector<std::string> chunk_digests;
    std::string note_payload;
    uint64_t log_bytes = 0;
    auto reader = test::must(storage::log_reader::open(cfg.provenance_dir));
    REQUIRE(!reader.for_each(0, [&](storage::log_record&& r) {
      log_bytes += r.payload.size() + r.result.size();
      for (auto& c : r.changes)
        log_bytes += c.value.size();
      if (r.procedure == "t.note")
        note_payload = r.payload;
      if (r.procedure != "comb.model.put_chunk")
        return true;
      auto args = json::parse(r.payload);
      auto& m = args["data"][runtime::elided_key];
      REQUIRE(m.is_object());
      chunk_digests.push_back(m["sha256"].get<std::string>());
      // A chunk in the blob store is a reference in its row; small ones stay inline.
      for (auto& c : r.changes)
        CHECK(c.value.size() <= 1 + storage::options{}.blob_inline_max);
      return true;
    }));
    auto piece = [&](const std::string& bytes, size_t off, size_t n) {
      auto s = bytes.substr(off, n);
      return runtime::model_digest(s.data(), s.size());
    };
    REQUIRE(chunk_digests.size() == 3);
    CHECK(chunk_digests[0] == piece(model, 0, runtime::model_store::chunk_size));
    CHECK(chunk_digests[1] == piece(model, runtime::model_store::chunk_size, 20000));
    CHECK(chunk_digests[2] == piece(small, 0, small.size()));
    CHECK(log_bytes < 64 * 1024 + note_payload.size());
    CHECK(note_payload.find(base64_encode(small)) != std::string::npos); // kept whole
    auto want = digest_of(cfg.data_dir);

    // Without the source, replay names the first digest it lacks.
    runtime::procedure_registry procs;
    add_note(procs);
    runtime::replay_options ro;
    ro.log_dir = cfg.provenance_dir;
    ro.into_dir = dir.path() + "/replay-nosource";
    auto refused = runtime::replay(procs, ro);
    REQUIRE(!refused);
    CAPTURE(describe(refused.error()));
    CHECK(describe(refused.error()).find("sha256 " + chunk_digests[0]) != std::string::npos);
    CHECK(describe(refused.error()).find("--data") != std::string::npos);
    CHECK(!std::filesystem::exists(ro.into_dir)); // refused before anything was written

    // With it, the bytes come from the source's model store and the state is the same.
    ro.into_dir = dir.path() + "/replayed";
    ro.source_data = cfg.data_dir;
    auto rep = runtime::replay(procs, ro);
    REQUIRE_MESSAGE(rep, test::why(rep));
    CHECK(rep->digest == want);
    auto replayed = test::must(storage::database::open(ro.into_dir));
    REQUIRE(
      !replayed->create_table(runtime::model_store::chunks_table, storage::table_kind::blobs));
    auto back = runtime::model_store::read_version(*replayed, "big", 1);
    REQUIRE_MESSAGE(back, test::why(back));
    CHECK(back->first == model);
  }
}
