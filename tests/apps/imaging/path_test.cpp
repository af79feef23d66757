// apps.imaging.path: the imaging app through the whole path, on loopback: a node in this
// process (the imaging procedures, its outbox dispatcher) and a `comb compute` child process.
// Loads 2,000 MNIST training and 500 test images into tables, trains the MLP for 2 epochs
// through a train call (the new version is stored with the rows and version it came from and
// reaches >= 85% test accuracy), classifies the test set (every label row names the version
// and call that produced it), classifies the three BMPs with MobileNetV2 (286, 653, 20, as
// ../shared/data/README.md says) and runs the detector on one 512x512 image. Skips visibly
// when ../shared/data is absent.
#include "apps/imaging/idx.hpp"
#include "apps/imaging/imaging.hpp"
#include "apps/imaging/loader.hpp"
#include "apps/imaging/runs.hpp"
#include "base/errc.hpp"
#include "node/node.hpp"
#include "runtime/pieces/compute_types.hpp"
#include "runtime/pieces/kernel_runners.hpp"
#include "runtime/system_config.hpp"
#include "tests/compute_util.hpp"
#include "tests/test_util.hpp"

#include <caf/all.hpp>
#include <doctest/doctest.h>

#include <filesystem>

using namespace comb;
using namespace comb::apps::imaging;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

std::string data_dir() {
  return std::string{COMB_SOURCE_DIR} + "/../shared/data";
}

bool have_data() {
  std::error_code ec;
  return std::filesystem::exists(data_dir() + "/mnist/train-images-idx3-ubyte.gz", ec)
         && std::filesystem::exists(data_dir() + "/models/mobilenet_v2_1.0_224_quant.tflite", ec);
}

struct fixture {
  test::temp_dir dir;
  runtime::system_config cfg{2};
  std::unique_ptr<caf::actor_system> sys;
  std::unique_ptr<runtime::node> n;

  explicit fixture(uint16_t compute_port) {
    runtime::add_compute_types(cfg);
    sys = std::make_unique<caf::actor_system>(cfg);
    runtime::node_config nc;
    nc.data_dir = dir.path() + "/data";
    nc.partitions = 2;
    nc.durability = storage::durability::async;
    nc.compute = endpoint{"127.0.0.1", compute_port};
    auto procs = std::make_shared<runtime::procedure_registry>();
    register_imaging(*procs);
    n = test::must(runtime::node::start(*sys, nc, procs));
  }
  ~fixture() { n.reset(); }
};

deadline in(std::chrono::seconds s) {
  return std::chrono::steady_clock::now() + s;
}

void say(const std::string& line) {
  MESSAGE(line);
}

} // namespace

TEST_SUITE("apps.imaging.path") {
  TEST_CASE("MNIST through the path: load, train 2 epochs, classify; MobileNetV2; detector") {
    if (!have_data()) {
      MESSAGE("../shared/data (mnist/, models/) absent at " << data_dir()
                                                            << ": skipping (see its README.md)");
      return;
    }
    test::compute_child compute{{"--backend", "cpu"}};
    fixture f{compute.port()};
    auto call = caller_for(*f.n);

    // Images in tables.
    auto train = read_mnist(data_dir() + "/mnist", "train");
    REQUIRE_MESSAGE(train, test::why(train));
    auto test_split = read_mnist(data_dir() + "/mnist", "t10k");
    REQUIRE_MESSAGE(test_split, test::why(test_split));
    auto lt = load_mnist_split(call, *train, "mnist-train", 2000, nullptr);
    REQUIRE_MESSAGE(lt, test::why(lt));
    CHECK(lt->images == 2000);
    auto ls = load_mnist_split(call, *test_split, "mnist-test", 500, nullptr);
    REQUIRE_MESSAGE(ls, test::why(ls));
    auto ds = call("imaging.dataset", {{"dataset", "mnist-test"}});
    REQUIRE_MESSAGE(ds, test::why(ds));
    CHECK((*ds)["count"] == 500);
    CHECK((*ds)["labelled"] == 500);

    // Train 2 epochs through a train call: version 1 is made, version 2 is stored and active.
    train_options t;
    t.model = "mnist-mlp";
    t.epochs = 2;
    t.batch = 32; // 126 Adam steps over the 2,000 images
    t.rounds = 1;
    auto rounds = train_rounds(call, t, in(240s), say);
    REQUIRE_MESSAGE(rounds, test::why(rounds));
    REQUIRE(rounds->size() == 1);
    CHECK((*rounds)[0].trained_from == 1);
    CHECK((*rounds)[0].version == 2);
    CHECK((*rounds)[0].losses.size() == 2);
    auto versions = model_versions(call, "mnist-mlp");
    REQUIRE_MESSAGE(versions, test::why(versions));
    REQUIRE(versions->size() == 2);
    const auto& v2 = versions->back();
    CAPTURE(v2);
    CHECK(v2["version"] == 2);
    CHECK(v2["active"] == true);
    CHECK(v2["trained_from"] == 1);
    CHECK(v2["dataset"] == "mnist-train");
    CHECK(v2["rows_from"] == 0);
    CHECK(v2["rows_to"] == 1999);
    CHECK(v2["rows"] == 2000);
    CHECK(v2["call"].is_string());
    CHECK(v2["losses"].size() == 2);

    // Classify the test set with version 2.
    auto run = run_dataset(call, "imaging.classify", "mnist-test", "mnist-mlp", in(120s), say);
    REQUIRE_MESSAGE(run, test::why(run));
    CHECK(run->images == 500);
    CAPTURE(run->results);
    REQUIRE(run->results["versions"].size() == 1);
    const auto& res = run->results["versions"][0];
    CHECK(res["version"] == 2);
    CHECK(res["answered"] == 500);
    MESSAGE("mnist-test accuracy of version 2: " << res["accuracy"].get<double>());
    CHECK(res["accuracy"].get<double>() >= 0.85);
    auto ans = answers(call, "mnist-test", "mnist-mlp", 500);
    REQUIRE_MESSAGE(ans, test::why(ans));
    CHECK(ans->size() == 500);
    for (const auto& a : *ans)
      REQUIRE(a.version == 2);
    auto labels = call("imaging.labels", {{"dataset", "mnist-test"}, {"from", 0}, {"limit", 1}});
    REQUIRE_MESSAGE(labels, test::why(labels));
    CHECK((*labels)[0]["answers"][0]["version"] == 2);
    CHECK((*labels)[0]["answers"][0]["digest"] == v2["digest"]);
    CHECK((*labels)[0]["answers"][0]["call"].get<std::string>().size() > 0);

    // The 500 test images were put as one block: a call over them sends the block as it is
    // stored; one that starts inside it reads and packs their pixels; both give the same
    // labels.
    auto whole = call("imaging.classify",
                      {{"dataset", "mnist-test"}, {"model", "mnist-mlp"}, {"from", 0}});
    REQUIRE_MESSAGE(whole, test::why(whole));
    CHECK((*whole)["input"] == "block");
    CHECK((*whole)["images"] == 500);
    auto part = call("imaging.classify", {{"dataset", "mnist-test"},
                                          {"model", "mnist-mlp"},
                                          {"from", 1},
                                          {"limit", 10}});
    REQUIRE_MESSAGE(part, test::why(part));
    CHECK((*part)["input"] == "rows");
    CHECK((*part)["images"] == 10);
    for (const auto* c : {&*whole, &*part}) {
      auto done = wait_call(call, (*c)["call"].get<std::string>(), in(60s));
      REQUIRE_MESSAGE(done, test::why(done));
      CHECK((*done)["state"] == "done");
    }
    auto again_ans = answers(call, "mnist-test", "mnist-mlp", 500);
    REQUIRE_MESSAGE(again_ans, test::why(again_ans));
    REQUIRE(again_ans->size() == 500);
    for (size_t i = 0; i < 500; ++i)
      CHECK((*again_ans)[i].label == (*ans)[i].label);

    // The next round trains from the last stored version (how a killed run resumes), on the
    // rows asked for, and records them.
    t.epochs = 1;
    t.from = 100;
    t.limit = 300;
    auto again = train_rounds(call, t, in(240s), say);
    REQUIRE_MESSAGE(again, test::why(again));
    CHECK((*again)[0].trained_from == 2);
    CHECK((*again)[0].version == 3);
    auto v3 = model_versions(call, "mnist-mlp");
    REQUIRE_MESSAGE(v3, test::why(v3));
    REQUIRE(v3->size() == 3);
    CHECK(v3->back()["trained_from"] == 2);
    CHECK(v3->back()["rows_from"] == 100);
    CHECK(v3->back()["rows_to"] == 399);
    CHECK(v3->back()["active"] == true);

    // A model that does not exist is refused by name; an image of the wrong size too.
    auto missing = call("imaging.classify", {{"dataset", "mnist-test"}, {"model", "nope"}});
    REQUIRE_FALSE(missing);
    CHECK(describe(missing.error()).find("nope") != std::string::npos);

    // MobileNetV2 on the three BMPs, through the path.
    auto models = data_dir() + "/models/";
    auto bmps = load_image_files(
      call, "bmps", {models + "cat.bmp", models + "grace_hopper.bmp", models + "bird.bmp"}, 224, 0,
      nullptr);
    REQUIRE_MESSAGE(bmps, test::why(bmps));
    REQUIRE(!put_model(call, "mobilenet-v2", 1,
                       test::read_file(models + "mobilenet_v2_1.0_224_quant.tflite")));
    REQUIRE(!wait_active(call, "mobilenet-v2", 1, /*activate=*/true, in(120s), say));
    auto wrong = call("imaging.classify", {{"dataset", "mnist-test"}, {"model", "mobilenet-v2"}});
    REQUIRE_FALSE(wrong);
    CHECK(describe(wrong.error()).find("224") != std::string::npos);
    auto mrun = run_dataset(call, "imaging.classify", "bmps", "mobilenet-v2", in(120s), say);
    REQUIRE_MESSAGE(mrun, test::why(mrun));
    auto mans = answers(call, "bmps", "mobilenet-v2", 3);
    REQUIRE_MESSAGE(mans, test::why(mans));
    REQUIRE(mans->size() == 3);
    CHECK((*mans)[0].name == "cat.bmp");
    CHECK((*mans)[0].label == 286);
    CHECK((*mans)[1].label == 653);
    CHECK((*mans)[2].label == 20);
    for (const auto& a : *mans)
      CHECK((a.score > 0 && a.score <= 1));

    // The detector (random heads: timing only) on one 512x512 image returns boxes.
    auto det = runtime::make_centernet_file(models + "mobilenet_v2_1.0_224_quant.tflite", 80, 1);
    REQUIRE_MESSAGE(det, test::why(det));
    REQUIRE(!put_model(call, "detector", 1, *det));
    REQUIRE(!wait_active(call, "detector", 1, /*activate=*/true, in(120s), say));
    auto big = load_image_files(call, "det", {models + "grace_hopper.bmp"}, 512, 0, nullptr);
    REQUIRE_MESSAGE(big, test::why(big));
    auto drun = run_dataset(call, "imaging.detect", "det", "detector", in(120s), say);
    REQUIRE_MESSAGE(drun, test::why(drun));
    CHECK(drun->images == 1);
    auto first = call("imaging.detect", {{"dataset", "det"}, {"model", "detector"}});
    REQUIRE_MESSAGE(first, test::why(first));
    auto done = wait_call(call, (*first)["call"].get<std::string>(), in(120s));
    REQUIRE_MESSAGE(done, test::why(done));
    CHECK((*done)["results"] == 1);
    CHECK((*done)["result_version"] == 1);
    auto rows = call("imaging.boxes",
                     {{"dataset", "det"}, {"model", "detector"}, {"from", 0}, {"limit", 10}});
    REQUIRE_MESSAGE(rows, test::why(rows));
    REQUIRE(rows->size() == 1);
    CHECK((*rows)[0]["version"] == 1);
    CHECK((*rows)[0]["count"].get<int>() == int((*rows)[0]["boxes"].size()));
    CHECK((*rows)[0]["count"].get<int>() > 0);
    CHECK((*rows)[0]["count"].get<int>() <= 100);
    for (const auto& b : (*rows)[0]["boxes"])
      REQUIRE(b.size() == 6);
  }

} // TEST_SUITE
