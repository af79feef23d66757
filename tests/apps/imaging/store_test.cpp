// apps.imaging.store: the image tables' procedures on a node in this process (no compute
// process): imaging.put_images stores and overwrites rows and keeps the dataset's count and
// labelled images; bad arguments (names, sizes, pixel counts, base64, too many images) are
// refused naming the problem and store nothing; imaging.labels and imaging.results read back;
// a call's labels are one row, a later call takes its images out of the model's older rows,
// and per-image rows of earlier versions still read;
// calls that need a model or images that are not there are refused by name.
#include "apps/imaging/image_store.hpp"
#include "apps/imaging/imaging.hpp"
#include "apps/imaging/label_store.hpp"
#include "base/base64.hpp"
#include "base/errc.hpp"
#include "node/node.hpp"
#include "runtime/system_config.hpp"
#include "storage/database.hpp"
#include "storage/transaction.hpp"
#include "tests/test_util.hpp"

#include <caf/all.hpp>
#include <algorithm>
#include <doctest/doctest.h>

using namespace comb;
using namespace comb::apps::imaging;
using nlohmann::json;

namespace {

struct fixture {
  test::temp_dir dir;
  runtime::system_config cfg{2};
  caf::actor_system sys{cfg};
  std::unique_ptr<runtime::node> n;

  fixture() {
    runtime::node_config nc;
    nc.data_dir = dir.path() + "/data";
    nc.partitions = 2;
    nc.durability = storage::durability::async;
    auto procs = std::make_shared<runtime::procedure_registry>();
    register_imaging(*procs);
    n = test::must(runtime::node::start(sys, nc, procs));
  }
  ~fixture() { n.reset(); }

  caf::expected<json> call(const std::string& proc, const json& args) {
    return n->call(proc, args, "admin");
  }
};

json image(int w, int h, int c, int label, uint8_t fill) {
  json im{{"width", w},
          {"height", h},
          {"channels", c},
          {"pixels", base64_encode(std::string(size_t(w) * h * c, char(fill)))}};
  if (label >= 0)
    im["label"] = label;
  return im;
}

// The error text of a call that must fail with `code`, naming `needle`.
void refused(const caf::expected<json>& r, errc code, const std::string& needle) {
  REQUIRE_FALSE(r);
  auto text = describe(r.error());
  INFO(text);
  CHECK(is(r.error(), code));
  CHECK(text.find(needle) != std::string::npos);
}

} // namespace

TEST_SUITE("apps.imaging.store") {
  TEST_CASE("put_images stores rows, overwrites them and keeps the dataset's counts") {
    fixture f;
    json three = {image(2, 2, 1, 3, 10), image(2, 2, 1, 4, 20), image(2, 2, 1, -1, 30)};
    auto r = f.call("imaging.put_images",
                    {{"dataset", "d"}, {"first_index", 0}, {"images", three}});
    REQUIRE_MESSAGE(r, test::why(r));
    CHECK((*r)["stored"] == 3);
    CHECK((*r)["next_index"] == 3);
    auto ds = f.call("imaging.dataset", {{"dataset", "d"}});
    REQUIRE_MESSAGE(ds, test::why(ds));
    CHECK((*ds)["count"] == 3);
    CHECK((*ds)["labelled"] == 2);
    CHECK((*ds)["width"] == 2);
    // Overwriting index 2 with a labelled image: still 3 images, now 3 labelled.
    r = f.call("imaging.put_images",
               {{"dataset", "d"}, {"first_index", 2}, {"images", {image(2, 2, 1, 5, 40)}}});
    REQUIRE_MESSAGE(r, test::why(r));
    ds = f.call("imaging.dataset", {{"dataset", "d"}});
    CHECK((*ds)["count"] == 3);
    CHECK((*ds)["labelled"] == 3);
    auto labels = f.call("imaging.labels", {{"dataset", "d"}, {"from", 1}, {"limit", 5}});
    REQUIRE_MESSAGE(labels, test::why(labels));
    REQUIRE(labels->size() == 2);
    CHECK((*labels)[0]["index"] == 1);
    CHECK((*labels)[0]["label"] == 4);
    CHECK((*labels)[1]["label"] == 5);
    CHECK((*labels)[1]["answers"].empty());
    auto results = f.call("imaging.results", {{"dataset", "d"}, {"model", "m"}});
    REQUIRE_MESSAGE(results, test::why(results));
    CHECK((*results)["images"] == 3);
    CHECK((*results)["versions"].empty());
  }

  TEST_CASE("bad arguments are refused by name and store nothing") {
    fixture f;
    auto put = [&](json args) { return f.call("imaging.put_images", args); };
    json ok_images = {image(2, 2, 1, 1, 0)};
    refused(put({{"dataset", "a/b"}, {"first_index", 0}, {"images", ok_images}}),
            errc::invalid_argument, "dataset");
    refused(put({{"dataset", ""}, {"first_index", 0}, {"images", ok_images}}),
            errc::invalid_argument, "dataset");
    refused(put({{"dataset", "d"}, {"first_index", -1}, {"images", ok_images}}),
            errc::invalid_argument, "first_index");
    refused(put({{"dataset", "d"}, {"first_index", 0}, {"images", json::array()}}),
            errc::invalid_argument, "images");
    refused(put({{"dataset", "d"}, {"first_index", 0}, {"images", "x"}}), errc::invalid_argument,
            "'images' must be an array");
    auto short_px = image(2, 2, 1, 1, 0);
    short_px["pixels"] = base64_encode("abc");
    refused(put(
              {{"dataset", "d"}, {"first_index", 0}, {"images", {image(2, 2, 1, 1, 0), short_px}}}),
            errc::invalid_argument, "image 1 (index 1): 3 pixel bytes");
    auto bad64 = image(2, 2, 1, 1, 0);
    bad64["pixels"] = "!!!not base64";
    refused(put({{"dataset", "d"}, {"first_index", 0}, {"images", {bad64}}}),
            errc::invalid_argument, "base64");
    refused(put({{"dataset", "d"}, {"first_index", 0}, {"images", {image(2, 2, 2, 1, 0)}}}),
            errc::invalid_argument, "channels");
    auto huge = image(2, 2, 1, 1, 0);
    huge["width"] = 100000;
    refused(put({{"dataset", "d"}, {"first_index", 0}, {"images", {huge}}}), errc::invalid_argument,
            "'width' must be in [1, 4096]");
    auto neg = image(2, 2, 1, 1, 0);
    neg["label"] = -3;
    refused(put({{"dataset", "d"}, {"first_index", 0}, {"images", {neg}}}), errc::invalid_argument,
            "'label'");
    json many = json::array();
    for (size_t i = 0; i < max_images_per_put + 1; ++i)
      many.push_back({{"width", 1}, {"height", 1}, {"channels", 1}, {"pixels", "AA=="}});
    refused(put({{"dataset", "d"}, {"first_index", 0}, {"images", many}}), errc::invalid_argument,
            "4096 images a call");
    // Nothing was stored by any of them (image 0 of the short-pixels call included).
    refused(f.call("imaging.dataset", {{"dataset", "d"}}), errc::not_found, "'d'");
    refused(f.call("imaging.labels", {{"dataset", "d"}, {"from", 0}, {"limit", 5000}}),
            errc::invalid_argument, "limit");
    refused(f.call("imaging.results", {{"dataset", "nope"}, {"model", "m"}}), errc::not_found,
            "nope");
  }

  TEST_CASE("classify, detect and train refuse what is missing, by name") {
    fixture f;
    refused(f.call("imaging.classify", {{"dataset", "d"}, {"model", "m"}}), errc::not_found, "'d'");
    auto r = f.call("imaging.put_images",
                    {{"dataset", "d"}, {"first_index", 0}, {"images", {image(28, 28, 1, 1, 0)}}});
    REQUIRE_MESSAGE(r, test::why(r));
    refused(f.call("imaging.classify", {{"dataset", "d"}, {"model", "m"}}), errc::bad_model, "m");
    refused(f.call("imaging.detect", {{"dataset", "d"}, {"model", "m"}}), errc::bad_model, "m");
    refused(f.call("imaging.train",
                   {{"dataset", "d"}, {"model", "m"}, {"epochs", 1}, {"batch", 8}, {"lr", 0.01}}),
            errc::not_found, "no stored version");
    refused(f.call("imaging.train",
                   {{"dataset", "d"}, {"model", "m"}, {"epochs", 0}, {"batch", 8}, {"lr", 0.01}}),
            errc::invalid_argument, "epochs");
    refused(f.call("imaging.call", {{"call", "nothing"}}), errc::not_found, "nothing");
  }

  TEST_CASE("read_images reads rows of any MessagePack encoding the same way and names a "
            "damaged row") {
    fixture f;
    std::vector<uint8_t> px(28 * 28);
    for (size_t i = 0; i < px.size(); ++i)
      px[i] = static_cast<uint8_t>(i * 7);
    auto row = [&](int64_t index) {
      return json{{"dataset", "d"},  {"index", index},  {"width", 28},
                  {"height", 28},    {"channels", 1},   {"label", index % 10},
                  {"name", "n"},     {"pixels", json::binary_t{px}}};
    };
    auto put = [&](int64_t index, const std::string& bytes) {
      auto txn = f.n->db().begin();
      REQUIRE(!txn->put(images_table, image_key("d", index), bytes));
      REQUIRE(!txn->commit());
    };
    auto as_string = [](const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); };
    // As imaging.put_images writes it; in wide encodings; with a nested value (read by the
    // general reader); with a negative label and a float.
    put(0, as_string(json::to_msgpack(row(0))));
    // Row 1 by hand in the widest forms: map16, str8 keys, uint64 / int64 / int16 numbers,
    // bin32 pixels, a float64 and a nil.
    std::string wide{"\xde\x00\x08", 3};
    auto key = [&](const std::string& k) {
      wide += '\xd9';
      wide += static_cast<char>(k.size());
      wide += k;
    };
    auto be = [&](uint64_t x, int bytes) {
      for (int i = bytes - 1; i >= 0; --i)
        wide += static_cast<char>((x >> (8 * i)) & 0xff);
    };
    key("index"), wide += '\xcf', be(1, 8);
    key("width"), wide += '\xd3', be(28, 8);
    key("height"), wide += '\xd1', be(28, 2);
    key("channels"), wide += '\xce', be(1, 4);
    key("label"), wide += '\xd0', be(1, 1);
    key("score"), wide += '\xcb', be(0, 8);
    key("name"), wide += '\xc0';
    key("pixels"), wide += '\xc6', be(px.size(), 4);
    wide.append(px.begin(), px.end());
    REQUIRE(json::from_msgpack(wide)["height"] == 28); // it is MessagePack
    put(1, wide);
    auto nested = row(2);
    nested["extra"] = json{{"a", json::array({1, 2, 3})}};
    put(2, as_string(json::to_msgpack(nested)));
    auto big = row(3);
    big["index"] = int64_t{3};
    big["label"] = -5;
    big["score"] = 0.25;
    put(3, as_string(json::to_msgpack(big)));
    {
      auto txn = f.n->db().begin();
      auto imgs = read_images(*txn, "d", 0, 10, size_t{1} << 20);
      REQUIRE_MESSAGE(imgs, describe(imgs.error()));
      REQUIRE(imgs->size() == 4);
      for (int64_t i = 0; i < 4; ++i) {
        const auto& im = (*imgs)[size_t(i)];
        CHECK(im.index == i);
        CHECK(im.width == 28);
        CHECK(im.height == 28);
        CHECK(im.channels == 1);
        CHECK(im.pixels == px);
        REQUIRE(im.label);
        CHECK(*im.label == (i == 3 ? -5 : i % 10));
      }
    }
    // Damaged rows: cut short, pixels of the wrong size, a field missing, not MessagePack.
    auto cut = json::to_msgpack(row(4));
    cut.resize(cut.size() - 10);
    auto small = row(5);
    small["pixels"] = json::binary_t{std::vector<uint8_t>(100)};
    auto missing = row(6);
    missing.erase("width");
    std::vector<std::pair<int64_t, std::string>> bad{
      {4, as_string(cut)},
      {5, as_string(json::to_msgpack(small))},
      {6, as_string(json::to_msgpack(missing))},
      {7, "not a row"}};
    for (auto& [index, bytes] : bad) {
      put(index, bytes);
      auto txn = f.n->db().begin();
      auto imgs = read_images(*txn, "d", index, 1, size_t{1} << 20);
      REQUIRE(!imgs);
      CHECK(is(imgs.error(), errc::corrupt_data));
      CHECK_MESSAGE(describe(imgs.error()).find(image_key("d", index)) != std::string::npos,
                    describe(imgs.error()));
      txn->rollback();
    }
  }


  TEST_CASE("a call's labels are one row; a later call takes its images out of the model's older "
            "rows; per-image rows of earlier versions still read") {
    fixture f;
    json imgs = json::array();
    for (int i = 0; i < 6; ++i)
      imgs.push_back(image(2, 2, 1, i % 3, uint8_t(i)));
    auto r = f.call("imaging.put_images", {{"dataset", "d"}, {"first_index", 0}, {"images", imgs}});
    REQUIRE_MESSAGE(r, test::why(r));
    auto write = [&](const label_row& row) {
      auto txn = f.n->db().begin();
      auto e = write_labels(*txn, row);
      if (!e)
        e = txn->commit();
      return e;
    };
    auto row_of = [](std::string model, int64_t version, std::string call,
                     std::vector<label_answer> answers) {
      label_row row;
      row.dataset = "d", row.model = std::move(model), row.version = version;
      row.digest = "dg", row.call = std::move(call), row.answers = std::move(answers);
      return row;
    };
    // An earlier version's per-image row for image 5 (model m).
    {
      auto txn = f.n->db().begin();
      json old{{"dataset", "d"}, {"index", 5}, {"model", "m"}, {"version", 1}, {"digest", "old"},
               {"label", 2},     {"score", 0.5}, {"call", "c0"}};
      REQUIRE(!txn->put_row(labels_table, image_key("d", 5) + "/m", old));
      REQUIRE(!txn->commit());
    }
    // Call c1 (version 1) answers images 0..3 (labels 0, 1, 2, 2: three right of four); model
    // n answers image 1 in its own row.
    REQUIRE(!write(row_of("m", 1, "c1", {{0, 0, .9f}, {1, 1, .8f}, {2, 2, .7f}, {3, 2, .6f}})));
    REQUIRE(!write(row_of("n", 7, "k1", {{1, 2, .4f}})));
    {
      auto txn = f.n->db().begin();
      int rows = 0;
      REQUIRE(!txn->scan(labels_table, "", "", [&](std::string_view, std::string_view) {
        return ++rows, true;
      }));
      CHECK(rows == 3); // c1's row, n's row and the per-image row
      auto stored = txn->get_row(labels_table, image_key("d", 0) + "/m");
      REQUIRE(stored);
      REQUIRE(*stored);
      CHECK((**stored)["labels"] == json({0, 1, 2, 2}));
      CHECK((**stored)["from"] == 0);
      CHECK_FALSE((**stored).contains("indexes"));
    }
    auto results = f.call("imaging.results", {{"dataset", "d"}, {"model", "m"}});
    REQUIRE_MESSAGE(results, test::why(results));
    REQUIRE((*results)["versions"].size() == 1);
    CHECK((*results)["versions"][0]["answered"] == 5);
    CHECK((*results)["versions"][0]["correct"] == 5 - 1);
    // Call c2 (version 2) answers images 2, 3 and 5: c1 keeps 0 and 1, the per-image row goes.
    REQUIRE(!write(row_of("m", 2, "c2", {{2, 2, .9f}, {3, 1, .9f}, {5, 2, .9f}})));
    {
      auto txn = f.n->db().begin();
      auto gone = txn->get_row(labels_table, image_key("d", 5) + "/m");
      REQUIRE(gone);
      CHECK_FALSE(*gone);
      auto c1 = txn->get_row(labels_table, image_key("d", 0) + "/m");
      REQUIRE(c1);
      REQUIRE(*c1);
      CHECK((**c1)["labels"] == json({0, 1}));
      auto c2 = txn->get_row(labels_table, image_key("d", 2) + "/m");
      REQUIRE(c2);
      REQUIRE(*c2);
      CHECK((**c2)["indexes"] == json({2, 3, 5})); // not contiguous: the indexes are kept
    }
    auto labels = f.call("imaging.labels", {{"dataset", "d"}, {"from", 1}, {"limit", 3}});
    REQUIRE_MESSAGE(labels, test::why(labels));
    REQUIRE(labels->size() == 3);
    // Image 1: m's answer from c1 and n's; image 3: only c2's, version 2.
    auto& a1 = (*labels)[0]["answers"];
    REQUIRE(a1.size() == 2);
    CHECK(a1[0]["model"] == "m");
    CHECK(a1[0]["call"] == "c1");
    CHECK(a1[0]["label"] == 1);
    CHECK(a1[1]["model"] == "n");
    CHECK(a1[1]["version"] == 7);
    auto& a3 = (*labels)[2]["answers"];
    REQUIRE(a3.size() == 1);
    CHECK(a3[0]["version"] == 2);
    CHECK(a3[0]["label"] == 1);
    results = f.call("imaging.results", {{"dataset", "d"}, {"model", "m"}});
    REQUIRE_MESSAGE(results, test::why(results));
    REQUIRE((*results)["versions"].size() == 2);
    CHECK((*results)["versions"][0]["answered"] == 2); // version 1: images 0 and 1
    CHECK((*results)["versions"][0]["correct"] == 2);
    CHECK((*results)["versions"][1]["answered"] == 3); // version 2: 2 and 5 right, 3 wrong
    CHECK((*results)["versions"][1]["correct"] == 2);
    // Answers out of order or spread too widely are refused; a damaged row is named.
    auto refused_write = [&](const label_row& row, const std::string& needle) {
      auto e = write(row);
      REQUIRE(e);
      CHECK(is(e, errc::invalid_argument));
      CHECK_MESSAGE(describe(e).find(needle) != std::string::npos, describe(e));
    };
    refused_write(row_of("m", 3, "c3", {{3, 0, 0.f}, {2, 0, 0.f}}), "increasing index order");
    refused_write(row_of("m", 3, "c3", {{0, 0, 0.f}, {max_label_span, 0, 0.f}}), "1200 indexes");
    {
      auto txn = f.n->db().begin();
      REQUIRE(!txn->put(labels_table, image_key("d", 4) + "/z", "not a row"));
      REQUIRE(!txn->commit());
    }
    auto damaged = f.call("imaging.labels", {{"dataset", "d"}, {"from", 4}, {"limit", 1}});
    REQUIRE_FALSE(damaged);
    CHECK(is(damaged.error(), errc::corrupt_data));
    CHECK(describe(damaged.error()).find(image_key("d", 4) + "/z") != std::string::npos);
  }

  TEST_CASE("the images of one put and one size are one block; replacing some of them gives "
            "the others their own pixels; a missing or short block is named") {
    fixture f;
    auto put = [&](int64_t first, const json& imgs) {
      auto r = f.call("imaging.put_images",
                      {{"dataset", "d"}, {"first_index", first}, {"images", imgs}});
      REQUIRE_MESSAGE(r, test::why(r));
    };
    auto row_of = [&](int64_t index) {
      auto txn = f.n->db().begin();
      auto row = txn->get_row(images_table, image_key("d", index));
      txn->rollback();
      REQUIRE(row);
      REQUIRE(*row);
      return **row;
    };
    auto has_block = [&](int64_t first) {
      auto txn = f.n->db().begin();
      std::vector<char> bytes;
      auto found = txn->get_blob(blocks_table, block_key("d", first), bytes);
      txn->rollback();
      REQUIRE(found);
      return *found;
    };
    auto pixels = [&](int64_t from, int64_t limit) {
      auto txn = f.n->db().begin();
      auto imgs = read_images(*txn, "d", from, limit, size_t{1} << 20);
      txn->rollback();
      REQUIRE_MESSAGE(imgs, describe(imgs.error()));
      std::vector<int> out; // each image's first pixel, or -1 when they differ within it
      for (const auto& im : *imgs) {
        bool same = std::all_of(im.pixels.begin(), im.pixels.end(),
                                [&](uint8_t p) { return p == im.pixels.front(); });
        out.push_back(same ? im.pixels.front() : -1);
      }
      return out;
    };
    // Five 4x4 images, one block: rows name it and hold no pixels.
    json five = json::array();
    for (int i = 0; i < 5; ++i)
      five.push_back(image(4, 4, 1, i, uint8_t(10 + i)));
    put(0, five);
    CHECK(has_block(0));
    for (int64_t i = 0; i < 5; ++i) {
      auto row = row_of(i);
      CHECK(!row.contains("pixels"));
      CHECK(row["block"] == 0);
      CHECK(row["block_count"] == 5);
      CHECK(row["offset"] == i * 16);
    }
    CHECK(pixels(0, 5) == std::vector<int>{10, 11, 12, 13, 14});
    CHECK(pixels(3, 1) == std::vector<int>{13});
    // Replacing images 1 and 2 (with images of another size): the block is gone, images 0, 3
    // and 4 hold their own pixels, 1 and 2 are a block of their own.
    put(1, {image(2, 2, 1, 7, 90), image(2, 2, 1, 8, 91)});
    CHECK(!has_block(0));
    CHECK(has_block(1));
    for (int64_t i : {0, 3, 4}) {
      auto row = row_of(i);
      CHECK(row.contains("pixels"));
      CHECK(!row.contains("block"));
      CHECK(row["label"] == i);
    }
    CHECK(row_of(2)["block"] == 1);
    CHECK(pixels(0, 5) == std::vector<int>{10, 90, 91, 13, 14});
    auto ds = f.call("imaging.dataset", {{"dataset", "d"}});
    REQUIRE(ds);
    CHECK((*ds)["count"] == 5);
    CHECK((*ds)["labelled"] == 5);
    CHECK((*ds)["width"] == 0); // mixed sizes now
    // Images of several sizes in one put keep their pixels in their rows.
    put(5, {image(3, 3, 1, -1, 50), image(2, 2, 1, -1, 51)});
    CHECK(!has_block(5));
    CHECK(row_of(5).contains("pixels"));
    CHECK(pixels(5, 2) == std::vector<int>{50, 51});
    // Replacing a whole block: one block again, the old one replaced, nothing left over.
    put(1, {image(4, 4, 3, -1, 60), image(4, 4, 3, -1, 61)});
    CHECK(has_block(1));
    CHECK(pixels(0, 7) == std::vector<int>{10, 60, 61, 13, 14, 50, 51});
    // imaging.labels reads rows in blocks as any others.
    auto labels = f.call("imaging.labels", {{"dataset", "d"}, {"from", 0}, {"limit", 10}});
    REQUIRE_MESSAGE(labels, test::why(labels));
    CHECK(labels->size() == 7);
    // A block that is gone, or shorter than its rows say, is named by the reader.
    {
      auto txn = f.n->db().begin();
      REQUIRE(!txn->put_blob(blocks_table, block_key("d", 1), std::string(40, 'x')));
      REQUIRE(!txn->commit());
    }
    {
      auto txn = f.n->db().begin();
      auto imgs = read_images(*txn, "d", 1, 2, size_t{1} << 20);
      txn->rollback();
      REQUIRE(!imgs);
      CHECK(is(imgs.error(), errc::corrupt_data));
      CHECK_MESSAGE(describe(imgs.error()).find(block_key("d", 1)) != std::string::npos,
                    describe(imgs.error()));
    }
    {
      auto txn = f.n->db().begin();
      REQUIRE(!txn->del_blob(blocks_table, block_key("d", 1)));
      REQUIRE(!txn->commit());
    }
    {
      auto txn = f.n->db().begin();
      auto imgs = read_images(*txn, "d", 2, 1, size_t{1} << 20);
      txn->rollback();
      REQUIRE(!imgs);
      CHECK(is(imgs.error(), errc::corrupt_data));
      CHECK_MESSAGE(describe(imgs.error()).find("missing") != std::string::npos,
                    describe(imgs.error()));
    }
    // A row whose block fields do not hold its image is damaged.
    {
      auto txn = f.n->db().begin();
      auto row = row_of(1);
      row["offset"] = 5;
      REQUIRE(!txn->put_row(images_table, image_key("d", 1), row));
      REQUIRE(!txn->commit());
      auto t2 = f.n->db().begin();
      auto imgs = read_images(*t2, "d", 1, 1, size_t{1} << 20);
      t2->rollback();
      REQUIRE(!imgs);
      CHECK(is(imgs.error(), errc::corrupt_data));
      CHECK(describe(imgs.error()).find(image_key("d", 1)) != std::string::npos);
    }
    // Putting the images again repairs them.
    put(1, {image(4, 4, 3, -1, 70), image(4, 4, 3, -1, 71)});
    CHECK(pixels(0, 3) == std::vector<int>{10, 70, 71});
  }

} // TEST_SUITE
