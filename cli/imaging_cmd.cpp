// `comb imaging load | classify | detect | train | results | make-detector | demo`: the
// imaging app (apps/imaging) against a running node. This file parses flags and prints; the
// work is apps/imaging's (loader.hpp, runs.hpp), reached through a client connection.
#include "cli/commands.hpp"

#include "apps/imaging/loader.hpp"
#include "base/endpoint.hpp"
#include "base/errc.hpp"
#include "node/client.hpp"
#include "runtime/pieces/compute_types.hpp"
#include "runtime/system_config.hpp"

#include <caf/actor_system.hpp>

#include <iomanip>
#include <iostream>

namespace comb::cli {

namespace {

namespace im = apps::imaging;

struct imaging_opts {
  std::string node = "127.0.0.1:4242";
  std::string role = "admin";
  std::string data;
  std::string split = "both";
  size_t limit = 0;
  std::string dataset;
  std::vector<std::string> files;
  int size = 224;
  int64_t first_index = 0;
  double timeout = 3600;
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
  caf::actor_system sys{cfg};
  auto c = runtime::client::connect(sys, *ep);
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
  with_node("load images", o, [&](const im::procedure_caller& call) {
    auto r = im::load_image_files(call, o.dataset, o.files, o.size, o.first_index, print_line);
    if (!r)
      fail_imaging("load images", r.error());
    print_report(*r);
  });
}

void add_common(CLI::App* sub, imaging_opts& o) {
  sub->add_option("--node", o.node, "HOST:PORT of the node's gateway")->capture_default_str();
  sub->add_option("--role", o.role, "Role to call as")->capture_default_str();
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
}

} // namespace comb::cli
