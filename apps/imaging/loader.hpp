// comb::apps::imaging loader: puts images into a node's tables through its procedures: MNIST
// splits from IDX files (datasets "mnist-train", "mnist-test") and image files (BMP, PNG,
// JPEG, resized by nearest neighbour to a model's input size). It reaches the node through a
// procedure_caller, so the same code runs from the CLI (over TCP) and from the demo or a test
// (in process). Batches stay under the procedure's argument bound; loading again overwrites
// the same rows. Stateless functions; each call blocks until its batches are stored.
#pragma once

#include "apps/imaging/idx.hpp"

#include <caf/expected.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace comb::runtime {
class client;
class node;
} // namespace comb::runtime

namespace comb::apps::imaging {

/// Calls a procedure on a node with JSON arguments and returns its result or error.
using procedure_caller =
  std::function<caf::expected<nlohmann::json>(const std::string& proc, const nlohmann::json& args)>;

/// A caller over a client's connection, as `role`, each call bounded by `timeout`.
procedure_caller caller_for(const runtime::client& c, std::string role = "admin",
                            std::chrono::milliseconds timeout = std::chrono::seconds{120});

/// A caller into a node of this process, as `role`.
procedure_caller caller_for(runtime::node& n, std::string role = "admin",
                            std::chrono::milliseconds timeout = std::chrono::seconds{120});

/// Receives one line of progress (e.g. "mnist-train: 12000 / 60000 images").
using progress_fn = std::function<void(const std::string& line)>;

/// Where the shared data lives: $COMB_DATA_DIR when set, else `<source_dir>/../shared/data`
/// when it exists, else "../shared/data" from the working folder. Errors: not_found naming
/// every place looked at.
caf::expected<std::string> default_data_dir(const std::string& source_dir);

struct load_report {
  std::string dataset;
  int64_t images = 0;
  int64_t labelled = 0;
  double seconds = 0;
};

/// Stores images [0, limit) of an MNIST split (28x28, 1 channel, labelled) as `dataset`, in
/// batches of `batch` images (0: as many as one classify call takes, images_per_call(784) =
/// 1,200, so that each call's images are one stored block).
caf::expected<load_report> load_mnist_split(const procedure_caller& call, const mnist_split& s,
                                            const std::string& dataset, size_t limit,
                                            const progress_fn& progress, size_t batch = 0);

/// Reads MNIST from `dir` (its mnist/ folder, or `dir` itself when the files are there) and
/// stores split "train" (as mnist-train), "test" (mnist-test) or "both", at most `limit`
/// images of each (0: all).
caf::expected<std::vector<load_report>> load_mnist(const procedure_caller& call,
                                                   const std::string& dir, const std::string& split,
                                                   size_t limit, const progress_fn& progress);

/// Decodes image files (BMP, PNG, JPEG), resizes each to size x size RGB (0: keeps its size)
/// and stores them as `dataset` from index `first_index`, with their file names. Errors name
/// the file that could not be read or decoded; nothing is stored then.
caf::expected<load_report> load_image_files(const procedure_caller& call,
                                            const std::string& dataset,
                                            const std::vector<std::string>& files, int size,
                                            int64_t first_index, const progress_fn& progress);

} // namespace comb::apps::imaging
