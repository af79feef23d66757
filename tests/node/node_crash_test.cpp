// Crash test for the outbox with large payloads: a `comb node` child process (async
// durability) commits model activations, whose multi-MiB load calls keep their payloads in
// the blob store, and is killed with SIGKILL while the calls are in flight. After a restart
// every call reaches the `comb compute` process with its bytes intact (the compute process
// reports the digest, which the result procedure checks), each is applied once, and the
// payloads are freed.
#include "base/errc.hpp"
#include "runtime/pieces/model_store.hpp"
#include "runtime/pieces/outbox.hpp"
#include "runtime/system_config.hpp"
#include "storage/blob_store.hpp"
#include "storage/database.hpp"
#include "storage/transaction.hpp"
#include "tests/client_util.hpp"
#include "tests/test_util.hpp"

#include <doctest/doctest.h>

#include <fstream>
#include <random>
#include <sstream>

using namespace comb;
using nlohmann::json;

namespace {

using test::read_file;

std::unique_ptr<test::child_process> start_node(const std::string& data, int port, int compute_port,
                                                const std::string& log) {
  std::fflush(stdout);
  return std::make_unique<test::child_process>(
    std::vector<std::string>{test::comb_binary(), "node", "--data", data, "--listen",
                             "127.0.0.1:" + std::to_string(port), "--compute",
                             "127.0.0.1:" + std::to_string(compute_port), "--durability", "async",
                             "--no-provenance"},
    log);
}

} // namespace

TEST_SUITE("node.compute_crash") {
  TEST_CASE("SIGKILL with large calls in flight: after a restart each is applied once, intact") {
    test::temp_dir dir;
    auto data = dir.path() + "/node";
    int compute_port = test::free_port();
    std::fflush(stdout);
    test::child_process compute{{test::comb_binary(), "compute", "--listen",
                                 "127.0.0.1:" + std::to_string(compute_port), "--threads", "1"},
                                dir.path() + "/compute.log"};
    REQUIRE(test::wait_for_line(dir.path() + "/compute.log", "listening on",
                                std::chrono::seconds{30}, &compute));
    runtime::system_config cfg{2};
    caf::actor_system sys{cfg};
    int port = test::free_port();
    auto node = start_node(data, port, compute_port, dir.path() + "/node1.log");
    auto c = test::connect_retry(sys, port);
    REQUIRE_MESSAGE(c, test::why(c));

    // Six models of 3 MiB and a bit, stored through the CLI.
    constexpr int models = 6;
    for (int m = 0; m < models; ++m) {
      std::string bytes(3 * runtime::model_store::chunk_size + 777 * m, '\0');
      std::mt19937 rng{static_cast<uint32_t>(m)};
      for (auto& b : bytes)
        b = static_cast<char>(rng());
      auto file = dir.path() + "/m" + std::to_string(m) + ".bin";
      std::ofstream{file, std::ios::binary} << bytes;
      auto log = dir.path() + "/put" + std::to_string(m) + ".log";
      test::child_process put{{test::comb_binary(), "model", "put", "--node",
                               "127.0.0.1:" + std::to_string(port), "--name",
                               "m" + std::to_string(m), "--version", "1", "--file", file, "--raw"},
                              log};
      REQUIRE_MESSAGE(put.wait() == 0, read_file(log));
    }
    // Activate them all (each commits a load call holding the model's bytes) and kill the
    // node at once, with the calls committed and not yet, or only partly, sent.
    for (int m = 0; m < models; ++m) {
      auto r = c->call("comb.model.activate",
                       json{{"name", "m" + std::to_string(m)}, {"version", 1}}.dump(), "admin");
      REQUIRE_MESSAGE(r, test::why(r));
    }
    node->kill(SIGKILL);

    int port2 = test::free_port();
    auto node2 = start_node(data, port2, compute_port, dir.path() + "/node2.log");
    auto c2 = test::connect_retry(sys, port2);
    REQUIRE_MESSAGE(c2, test::why(c2));
    // The restarted node sends the calls again; wait until compute has loaded every model.
    json list;
    test::wait_until(
      [&] {
        auto r = c2->call("comb.model.list", "{}", "admin");
        REQUIRE_MESSAGE(r, test::why(r));
        list = *r;
        size_t active = 0;
        for (auto& row : list)
          active += row.value("active", false) && row.value("loaded", false);
        return active == models;
      },
      std::chrono::seconds{60}, "all " + std::to_string(models) + " models active and loaded");
    REQUIRE(list.size() == models);
    for (auto& row : list) {
      CHECK_MESSAGE(row.value("active", false), row.dump());
      CHECK_MESSAGE(row.value("loaded", false), row.dump());
      CHECK_MESSAGE(!row.contains("load_error"), row.dump()); // digests matched
    }
    node2->kill(SIGTERM);

    // Every call was applied once and its payload freed.
    auto db = test::must(storage::database::open(data));
    CHECK(db->count(runtime::outbox::calls_table).value() == 0);
    CHECK(db->count(runtime::outbox::done_table).value() == models);
    // The blobs left are the models' chunks (in the blob store since issue 16), no payload.
    CHECK(db->count(runtime::outbox::payload_table).value() == 0);
    uint64_t chunk_blobs = 0;
    uint64_t chunk_bytes = 0;
    REQUIRE(!db->scan(runtime::model_store::chunks_table, [&](auto, auto stored) {
      auto n = storage::transaction::stored_blob_size(stored);
      if (n && *n > db->opts().blob_inline_max) {
        ++chunk_blobs;
        chunk_bytes += *n;
      }
      return true;
    }));
    CHECK(db->count(storage::database::blob_index_table).value() == chunk_blobs);
    CHECK(db->blobs().live_bytes() == chunk_bytes);
    CHECK(db->missing_blobs() == 0);
  }

} // TEST_SUITE
