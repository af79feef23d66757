// `comb imaging load | classify | detect | train | results | make-detector | demo`: the
// imaging app (apps/imaging) against a running node. This file parses flags and prints; the
// work is apps/imaging's (loader.hpp, runs.hpp), reached through a client connection.
#include "cli/commands.hpp"
#include "cli/tls_flags.hpp"

#include "apps/imaging/imaging_demo.hpp"
#include "apps/imaging/loader.hpp"
#include "apps/imaging/runs.hpp"
#include "base/endpoint.hpp"
#include "base/errc.hpp"
#include "node/client.hpp"
#include "runtime/pieces/compute_types.hpp"
#include "runtime/pieces/kernel_runners.hpp"
#include "runtime/system_config.hpp"

#include <caf/actor_system.hpp>

#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>

namespace comb::cli {

namespace {

namespace im = apps::imaging;

struct imaging_opts {
  std::string node = "127.0.0.1:4242";
  runtime::tls_config tls; // --tls-*: the cluster's CA and a client certificate
  std::string role = "admin";
  std::string data;
  std::string split = "both";
  size_t limit = 0;
  std::string dataset;
  std::vector<std::string> files;
  int size = 224;
  int64_t first_index = 0;
  double timeout = 3600;
  std::string model;
  int64_t epochs = 2;
  int64_t batch = 128;
  double lr = 1e-3;
  int64_t rounds = 1;
  int64_t from = 0;
  uint64_t seed = 1;
  std::string out;
  std::string tflite;
  int classes = 80;
  std::string names;
};

[[noreturn]] void fail_imaging(const std::string& cmd, const caf::error& e, int code = 1) {
  fail("imaging " + cmd, e, code);
}

/// Runs `body` with a caller connected to the node.
template <class F>
void with_node(const std::string& cmd, const imaging_opts& o, F body) {
  auto ep = comb::parse_endpoint(o.node);
  if (!ep)
    fail_imaging(cmd, ep.error(), 2);
  runtime::system_config cfg{2};
  runtime::add_compute_types(cfg);
  use_tls("imaging " + cmd, cfg, o.tls);
  caf::actor_system sys{cfg};
  auto c = runtime::client::connect(sys, *ep, std::chrono::seconds{10}, o.tls);
  if (!c)
    fail_imaging(cmd, c.error(), 3);
  auto call = im::caller_for(*c, o.role);
  body(call);
}

void print_line(const std::string& line) {
  std::cout << "  " << line << std::endl;
}

std::string data_dir(const std::string& cmd, const imaging_opts& o) {
  if (!o.data.empty())
    return o.data;
  auto d = im::default_data_dir(COMB_SOURCE_DIR);
  if (!d)
    fail_imaging(cmd, d.error(), 2);
  return *d;
}

void print_report(const im::load_report& r) {
  std::cout << r.dataset << ": " << r.images << " images stored (" << r.labelled << " labelled) in "
            << std::fixed << std::setprecision(1) << r.seconds << " s" << std::endl;
}

void load_mnist(const imaging_opts& o) {
  auto dir = data_dir("load mnist", o);
  with_node("load mnist", o, [&](const im::procedure_caller& call) {
    auto r = im::load_mnist(call, dir, o.split, o.limit, print_line);
    if (!r)
      fail_imaging("load mnist", r.error());
    for (const auto& rep : *r)
      print_report(rep);
  });
}

void load_images(const imaging_opts& o) {
  // Every file is checked before the first is stored: a folder or an empty file is named
  // here rather than decoded as an image of unknown format (its "first bytes" zeros).
  for (const auto& f : o.files) {
    std::error_code ec;
    auto st = std::filesystem::status(f, ec);
    if (!std::filesystem::exists(st))
      fail("imaging load images", make_error(errc::not_found, f + ": no such file"), 2);
    if (std::filesystem::is_directory(st))
      fail("imaging load images",
           make_error(errc::invalid_argument, f + ": is a folder; give the image files"), 2);
    if (std::filesystem::is_regular_file(st) && std::filesystem::file_size(f, ec) == 0 && !ec)
      fail("imaging load images",
           make_error(errc::corrupt_data, f + ": the file is empty (0 bytes), not an image"));
  }
  with_node("load images", o, [&](const im::procedure_caller& call) {
    auto r = im::load_image_files(call, o.dataset, o.files, o.size, o.first_index, print_line);
    if (!r)
      fail_imaging("load images", r.error());
    print_report(*r);
  });
}

im::deadline until(const imaging_opts& o) {
  return std::chrono::steady_clock::now()
         + std::chrono::milliseconds{static_cast<int64_t>(o.timeout * 1000)};
}

// Prints imaging.results: accuracy per model version for labelled images.
void print_results(const nlohmann::json& r) {
  std::cout << r.value("dataset", "") << " with " << r.value("model", "") << ": "
            << r.value("images", 0) << " images, " << r.value("labelled", 0) << " labelled\n";
  for (const auto& v : r.value("versions", nlohmann::json::array())) {
    std::cout << "  version " << v.value("version", 0) << ": " << v.value("answered", 0)
              << " answered";
    if (v.contains("accuracy"))
      std::cout << ", accuracy " << std::fixed << std::setprecision(4)
                << v["accuracy"].get<double>() << " (" << v.value("correct", 0) << " / "
                << v.value("labelled", 0) << ")";
    std::cout << "\n";
  }
  std::cout << std::flush;
}

// Class names for a model's labels: --names, else imagenet_labels.txt of the data folder
// (when present).
std::vector<std::string> class_names(const imaging_opts& o) {
  std::string path = o.names;
  if (path.empty()) {
    auto d = o.data.empty() ? im::default_data_dir(COMB_SOURCE_DIR) : o.data;
    if (!d)
      return {};
    path = *d + "/models/imagenet_labels.txt";
  }
  auto n = im::read_class_names(path);
  return n ? *n : std::vector<std::string>{};
}

void classify(const imaging_opts& o) {
  with_node("classify", o, [&](const im::procedure_caller& call) {
    auto r = im::run_dataset(call, "imaging.classify", o.dataset, o.model, until(o), print_line);
    if (!r)
      fail_imaging("classify", r.error());
    std::cout << "classified " << r->images << " images of " << o.dataset << " with " << o.model
              << " in " << r->calls << " calls, " << std::fixed << std::setprecision(1)
              << r->seconds << " s\n";
    print_results(r->results);
    if (r->results.value("labelled", 0) > 0)
      return;
    auto names = class_names(o);
    auto a = im::answers(call, o.dataset, o.model, r->results.value("images", int64_t{0}));
    if (!a)
      fail_imaging("classify", a.error());
    for (const auto& x : *a)
      std::cout << "  " << x.index << " " << x.name << ": " << x.label << " "
                << (x.label >= 0 && size_t(x.label) < names.size() ? names[size_t(x.label)]
                                                                   : std::string{})
                << " (score " << std::setprecision(3) << x.score << ", version " << x.version
                << ")\n";
  });
}

void detect(const imaging_opts& o) {
  with_node("detect", o, [&](const im::procedure_caller& call) {
    auto r = im::run_dataset(call, "imaging.detect", o.dataset, o.model, until(o), print_line);
    if (!r)
      fail_imaging("detect", r.error());
    auto count = r->results.value("images", int64_t{0});
    for (int64_t from = 0; from < count; from += 100) {
      auto b = call("imaging.boxes",
                    {{"dataset", o.dataset}, {"model", o.model}, {"from", from}, {"limit", 100}});
      if (!b)
        fail_imaging("detect", b.error());
      for (const auto& row : *b) {
        std::cout << "  " << row.value("index", 0) << ": " << row.value("count", 0)
                  << " boxes (version " << row.value("version", 0) << ")";
        if (!row["boxes"].empty())
          std::cout << ", best " << row["boxes"][0].dump();
        std::cout << "\n";
      }
    }
    std::cout << "detected on " << r->images << " images of " << o.dataset << " with " << o.model
              << " in " << r->calls << " calls, " << std::fixed << std::setprecision(1)
              << r->seconds
              << " s; boxes in table imaging_boxes. Note: the detector's heads are randomly "
                 "initialised (comb imaging make-detector), so its boxes measure timing only, "
                 "not detection quality.\n"
              << std::flush;
  });
}

void results(const imaging_opts& o) {
  with_node("results", o, [&](const im::procedure_caller& call) {
    auto r = call("imaging.results", {{"dataset", o.dataset}, {"model", o.model}});
    if (!r)
      fail_imaging("results", r.error());
    print_results(*r);
  });
}

void train(const imaging_opts& o) {
  with_node("train", o, [&](const im::procedure_caller& call) {
    im::train_options t;
    t.model = o.model;
    t.dataset = o.dataset.empty() ? "mnist-train" : o.dataset;
    t.epochs = o.epochs;
    t.batch = o.batch;
    t.lr = o.lr;
    t.rounds = o.rounds;
    t.from = o.from;
    t.limit = static_cast<int64_t>(o.limit);
    t.seed = o.seed;
    auto r = im::train_rounds(call, t, until(o), print_line);
    if (!r)
      fail_imaging("train", r.error());
    for (const auto& round : *r)
      std::cout << o.model << " version " << round.version << " trained from version "
                << round.trained_from << " on " << round.rows << " rows of " << t.dataset
                << ", losses " << round.losses.dump() << "\n";
    std::cout << std::flush;
  });
}

void make_detector(const imaging_opts& o) {
  std::string tflite = o.tflite;
  if (tflite.empty()) {
    auto d = o.data.empty() ? im::default_data_dir(COMB_SOURCE_DIR) : o.data;
    if (!d)
      fail_imaging("make-detector", d.error(), 2);
    tflite = *d + "/models/mobilenet_v2_1.0_224_quant.tflite";
  }
  auto file = runtime::make_centernet_file(tflite, o.classes, o.seed);
  if (!file)
    fail_imaging("make-detector", file.error(), 2);
  std::ofstream out{o.out, std::ios::binary | std::ios::trunc};
  out.write(file->data(), static_cast<std::streamsize>(file->size()));
  out.close();
  if (!out)
    fail_imaging("make-detector", make_error(errc::storage_error, "cannot write '" + o.out + "'"),
                 2);
  std::cout << "wrote " << o.out << " (" << file->size() << " bytes): a CenterNet detector of "
            << o.classes << " classes on the MobileNetV2 backbone of " << tflite
            << ". Its neck and heads are randomly initialised: its boxes measure timing only.\n";
}

void demo(const imaging_opts& o) {
  im::demo_options d;
  if (!o.data.empty()) {
    d.data_dir = o.data;
  } else {
    auto dir = im::default_data_dir(COMB_SOURCE_DIR);
    if (!dir)
      fail_imaging("demo", dir.error(), 2);
    d.data_dir = *dir;
  }
  d.timeout = std::chrono::seconds{static_cast<int64_t>(o.timeout)};
  with_node("demo", o, [&](const im::procedure_caller& call) {
    auto r = im::run_imaging_demo(call, d, print_line);
    if (!r)
      fail_imaging("demo", r.error());
    im::print_demo_report(std::cout, *r, d);
  });
}

void add_common(CLI::App* sub, imaging_opts& o) {
  sub->add_option("--node", o.node, "HOST:PORT of the node's gateway")->capture_default_str();
  sub->add_option("--role", o.role, "Role to call as")->capture_default_str();
  add_tls_flags(sub, o.tls);
}

} // namespace

void add_imaging_commands(CLI::App& app) {
  auto o = std::make_shared<imaging_opts>();
  auto* imaging = app.add_subcommand(
    "imaging", "Images in tables, classified, detected and trained on through the compute path");
  imaging->require_subcommand(1);

  auto* load = imaging->add_subcommand("load", "Store images in the node's tables");
  load->require_subcommand(1);
  auto* mnist = load->add_subcommand("mnist", "Load MNIST as datasets mnist-train, mnist-test");
  add_common(mnist, *o);
  mnist->add_option("--data", o->data,
                    "Data folder holding mnist/ (default $COMB_DATA_DIR or ../shared/data)");
  mnist->add_option("--split", o->split, "train, test or both")
    ->check(CLI::IsMember({"train", "test", "both"}))
    ->capture_default_str();
  mnist->add_option("--limit", o->limit, "At most this many images of each split (0: all)")
    ->capture_default_str();
  mnist->callback([o] { load_mnist(*o); });

  auto* images = load->add_subcommand("images", "Load BMP, PNG or JPEG files as a dataset");
  add_common(images, *o);
  images->add_option("--dataset", o->dataset, "Dataset name")->required();
  images
    ->add_option("--size", o->size,
                 "Resize to SIZE x SIZE by nearest neighbour (224: MobileNetV2, 512: "
                 "the detector; 0: keep)")
    ->capture_default_str();
  images->add_option("--first-index", o->first_index, "Index of the first file's image")
    ->capture_default_str();
  images->add_option("files", o->files, "Image files")->required();
  images->callback([o] { load_images(*o); });

  auto timeout = [&](CLI::App* sub) {
    sub->add_option("--timeout", o->timeout, "Give up waiting after this many seconds")
      ->capture_default_str();
  };
  auto* c = imaging->add_subcommand("classify", "Classify every image of a dataset through "
                                                "the compute process; prints the accuracy");
  add_common(c, *o);
  timeout(c);
  c->add_option("--dataset", o->dataset, "Dataset")->required();
  c->add_option("--model", o->model, "Model name (its active version is used)")->required();
  c->add_option("--names", o->names, "Class names file (default imagenet_labels.txt)");
  c->add_option("--data", o->data, "Data folder (for the class names)");
  c->callback([o] { classify(*o); });

  auto* d = imaging->add_subcommand("detect", "Detect objects in every image of a dataset "
                                              "(a detector from make-detector: timing only)");
  add_common(d, *o);
  timeout(d);
  d->add_option("--dataset", o->dataset, "Dataset (512x512 RGB images)")->required();
  d->add_option("--model", o->model, "Model name")->required();
  d->callback([o] { detect(*o); });

  auto* t = imaging->add_subcommand("train", "Train a model through the compute process, "
                                             "one stored version per round");
  add_common(t, *o);
  timeout(t);
  t->add_option("--model", o->model, "Model name (version 1 is made when it does not exist)")
    ->required();
  t->add_option("--dataset", o->dataset, "Training dataset (default mnist-train)");
  t->add_option("--epochs", o->epochs, "Epochs per round")->capture_default_str();
  t->add_option("--rounds", o->rounds, "Rounds (calls), each from the last stored version")
    ->capture_default_str();
  t->add_option("--batch", o->batch, "Batch size")->capture_default_str();
  t->add_option("--lr", o->lr, "Adam learning rate")->capture_default_str();
  t->add_option("--from", o->from, "First image index")->capture_default_str();
  t->add_option("--limit", o->limit, "Images (0: to the end)")->capture_default_str();
  t->add_option("--seed", o->seed, "Seed (version 1 and shuffling)")->capture_default_str();
  t->callback([o] { train(*o); });

  auto* r = imaging->add_subcommand("results", "Accuracy of a model's answers per version");
  add_common(r, *o);
  r->add_option("--dataset", o->dataset, "Dataset")->required();
  r->add_option("--model", o->model, "Model name")->required();
  r->callback([o] { results(*o); });

  auto* m = imaging->add_subcommand("make-detector",
                                    "Write a CenterNet detector file on the MobileNetV2 backbone "
                                    "(neck and heads randomly initialised: timing only)");
  m->add_option("--out", o->out, "Output file")->required();
  m->add_option("--tflite", o->tflite,
                "Backbone (default DATA/models/mobilenet_v2_1.0_224_"
                "quant.tflite)");
  m->add_option("--data", o->data, "Data folder");
  m->add_option("--classes", o->classes, "Classes")->capture_default_str();
  m->add_option("--seed", o->seed, "Seed of the random heads")->capture_default_str();
  m->callback([o] { make_detector(*o); });

  auto* dm = imaging->add_subcommand(
    "demo", "Load MNIST, train the MLP to 98% through the path (or reuse a stored version that "
            "did), classify the test set, and classify the three BMPs with MobileNetV2");
  add_common(dm, *o);
  timeout(dm);
  dm->add_option("--data", o->data, "Data folder (default $COMB_DATA_DIR or ../shared/data)");
  dm->callback([o] { demo(*o); });
}

} // namespace comb::cli
