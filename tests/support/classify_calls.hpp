// imaging.classify calls in multi-process tests of the compute path (crash matrix, cluster
// faults). comb::test::set_up_mlp_images gives a running node what the calls need, through its
// gateway as a user would: a small MLP (784-16-10, one chunk) stored as a model (version 1)
// and activated, and random 28x28 images in dataset "d" (labels i % 10).
// check_each_call_applied_once checks a stopped node's data folder afterwards. Header only.
#pragma once

#include "apps/imaging/imaging_calls.hpp"
#include "base/base64.hpp"
#include "base/errc.hpp"
#include "node/client.hpp"
#include "runtime/pieces/kernel_runners.hpp"
#include "runtime/pieces/model_digest.hpp"
#include "runtime/pieces/outbox.hpp"
#include "storage/database.hpp"
#include "storage/provenance_log.hpp"
#include "storage/transaction.hpp"
#include "tests/test_util.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace comb::test {

/// Stores and activates the model (as `model`) and stores the images; "" when done, else why
/// not. On a cluster the model is stored on the node that holds its name's partition and the
/// images on the node `c` reaches, which mirrors the model when it classifies.
inline std::string set_up_mlp_images(runtime::client& c, int images,
                                     const std::string& model = "mlp") {
  using nlohmann::json;
  using namespace std::chrono_literals;
  auto file = runtime::make_mlp_file({784, 16, 10}, 1);
  if (!file)
    return describe(file.error());
  auto r = c.call(
    "comb.model.put_chunk",
    json{{"name", model}, {"version", 1}, {"chunk_no", 0}, {"data", base64_encode(*file)}}.dump(),
    "admin", 10s);
  if (r)
    r = c.call("comb.model.put",
               json{{"name", model},
                    {"version", 1},
                    {"chunk_count", 1},
                    {"digest", runtime::model_digest(file->data(), file->size())}}
                 .dump(),
               "admin", 10s);
  json ims = json::array();
  std::mt19937 rng{7};
  for (int i = 0; i < images; ++i) {
    std::string px(784, '\0');
    for (auto& b : px)
      b = static_cast<char>(rng());
    ims.push_back({{"width", 28},
                   {"height", 28},
                   {"channels", 1},
                   {"label", i % 10},
                   {"pixels", base64_encode(px)}});
  }
  if (r)
    r = c.call("imaging.put_images",
               json{{"dataset", "d"}, {"first_index", 0}, {"images", ims}}.dump(), "admin", 10s);
  if (r)
    r = c.call("comb.model.activate", json{{"name", model}, {"version", 1}}.dump(), "admin", 10s);
  return r ? std::string{} : why(r);
}

/// Checks the data folder `data` (its node stopped) and its log `log_dir` after classify calls:
/// no committed call is lost (every call in `acked` is in imaging_calls, the outbox is empty),
/// every call is done with an outbox done row, the log's lsns are dense from 1, and the log
/// holds exactly one applied run of imaging.classified per call.
inline void check_each_call_applied_once(const std::string& data, const std::string& log_dir,
                                         const std::vector<std::string>& acked) {
  using nlohmann::json;
  std::set<std::string> committed;
  {
    storage::options so;
    so.create_if_missing = false;
    auto db = must(storage::database::open(data, so));
    CHECK(must(db->count(runtime::outbox::calls_table)) == 0);
    auto txn = db->begin();
    REQUIRE(!txn->scan(apps::imaging::calls_table, "", "", [&](auto key, std::string_view v) {
      committed.emplace(key);
      auto row = json::from_msgpack(v);
      CHECK_MESSAGE(row.value("state", "") == "done", key << ": " << row.dump());
      return true;
    }));
    size_t lost = 0;
    for (auto& k : acked)
      lost += committed.count(k) == 0;
    CHECK_MESSAGE(lost == 0, lost << " acknowledged calls are not in imaging_calls");
    for (auto& k : committed)
      CHECK_MESSAGE(must(txn->get(runtime::outbox::done_table, k)).has_value(),
                    k << " has no outbox done row");
    txn->rollback();
  }
  uint64_t next = 1;
  std::map<std::string, int> applied; // call -> applied runs of imaging.classified
  auto reader = must(storage::log_reader::open(log_dir));
  auto err = reader.for_each(0, [&](storage::log_record&& r) {
    CHECK(r.lsn == next);
    next = r.lsn + 1;
    if (r.kind == storage::log_record::kind_t::invocation && r.status == "ok"
        && r.procedure == "imaging.classified") {
      auto res = json::parse(r.result, nullptr, false);
      if (res.is_object() && res.value("applied", false))
        ++applied[res.at("result").at("call").get<std::string>()];
    }
    return true;
  });
  CHECK_MESSAGE(!err, describe(err));
  for (auto& k : committed)
    CHECK_MESSAGE(applied[k] == 1, k << " has " << applied[k] << " applied results in the log");
  CHECK(applied.size() == committed.size());
}

} // namespace comb::test
