// Loading MNIST and image files into a node (see loader.hpp).
#include "apps/imaging/loader.hpp"

#include "apps/imaging/image_codecs.hpp"
#include "apps/imaging/image_store.hpp"
#include "base/base64.hpp"
#include "base/errc.hpp"
#include "kernels/image.hpp"
#include "node/client.hpp"
#include "node/node.hpp"

#include <cstdlib>
#include <filesystem>

namespace comb::apps::imaging {

using nlohmann::json;
namespace fs = std::filesystem;

procedure_caller caller_for(const runtime::client& c, std::string role,
                            std::chrono::milliseconds timeout) {
  return [&c, role = std::move(role), timeout](const std::string& proc, const json& args) {
    return c.call(proc, args.dump(), role, timeout);
  };
}

procedure_caller caller_for(runtime::node& n, std::string role, std::chrono::milliseconds timeout) {
  return [&n, role = std::move(role), timeout](const std::string& proc, const json& args) {
    return n.call(proc, args, role, timeout);
  };
}

caf::expected<std::string> default_data_dir(const std::string& source_dir) {
  std::error_code ec;
  if (const char* env = std::getenv("COMB_DATA_DIR"); env && *env) {
    if (fs::is_directory(env, ec))
      return std::string{env};
    return make_error(errc::not_found,
                      std::string{"$COMB_DATA_DIR is '"} + env + "', which is not a folder");
  }
  std::vector<std::string> tried;
  for (auto p : {source_dir + "/../shared/data", std::string{"../shared/data"}}) {
    if (fs::is_directory(p, ec))
      return fs::weakly_canonical(p, ec).string();
    tried.push_back(p);
  }
  return make_error(errc::not_found, "no data folder: set --data or $COMB_DATA_DIR (looked at "
                                       + tried[0] + " and " + tried[1]
                                       + "; ../shared/data/README.md says where the files "
                                         "come from)");
}

caf::expected<load_report> load_mnist_split(const procedure_caller& call, const mnist_split& s,
                                            const std::string& dataset, size_t limit,
                                            const progress_fn& progress, size_t batch) {
  auto t0 = std::chrono::steady_clock::now();
  size_t n = limit == 0 ? s.count : std::min(limit, s.count);
  load_report rep{dataset, 0, 0, 0};
  size_t last_report = 0;
  if (batch == 0)
    batch = static_cast<size_t>(images_per_call(784));
  for (size_t first = 0; first < n; first += batch) {
    json images = json::array();
    for (size_t i = first; i < std::min(n, first + batch); ++i) {
      auto px = std::string_view{reinterpret_cast<const char*>(s.pixels.data()) + i * 784, 784};
      images.push_back({{"width", 28},
                        {"height", 28},
                        {"channels", 1},
                        {"label", s.labels[i]},
                        {"pixels", base64_encode(px)}});
    }
    auto r = call("imaging.put_images",
                  {{"dataset", dataset}, {"first_index", first}, {"images", std::move(images)}});
    if (!r)
      return std::move(r.error());
    rep.images = rep.labelled = static_cast<int64_t>(std::min(n, first + batch));
    if (progress && (rep.images - last_report >= 10000 || size_t(rep.images) == n)) {
      last_report = rep.images;
      progress(dataset + ": " + std::to_string(rep.images) + " / " + std::to_string(n) + " images");
    }
  }
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

caf::expected<std::vector<load_report>> load_mnist(const procedure_caller& call,
                                                   const std::string& dir, const std::string& split,
                                                   size_t limit, const progress_fn& progress) {
  if (split != "train" && split != "test" && split != "both")
    return make_error(errc::invalid_argument,
                      "--split must be train, test or both (got '" + split + "')");
  std::error_code ec;
  auto folder = fs::is_directory(fs::path{dir} / "mnist", ec) ? (fs::path{dir} / "mnist").string()
                                                              : dir;
  std::vector<load_report> out;
  for (auto [name, prefix] : {std::pair{"train", "train"}, {"test", "t10k"}}) {
    if (split != "both" && split != name)
      continue;
    auto s = read_mnist(folder, prefix);
    if (!s)
      return s.error();
    auto r = load_mnist_split(call, *s, std::string{"mnist-"} + name, limit, progress);
    if (!r)
      return r.error();
    out.push_back(std::move(*r));
  }
  return out;
}

caf::expected<load_report> load_image_files(const procedure_caller& call,
                                            const std::string& dataset,
                                            const std::vector<std::string>& files, int size,
                                            int64_t first_index, const progress_fn& progress) {
  if (files.empty())
    return make_error(errc::invalid_argument, "no image files given");
  if (size < 0 || size > 4096)
    return make_error(errc::invalid_argument,
                      "--size must be in [0, 4096] (got " + std::to_string(size) + ")");
  auto t0 = std::chrono::steady_clock::now();
  // Decode everything first, so that a bad file stores nothing.
  std::vector<kernels::image> decoded;
  for (const auto& f : files) {
    auto img = load_image(f);
    if (!img)
      return img.error();
    decoded.push_back(size > 0 ? kernels::resize_nearest(*img, size, size) : std::move(*img));
  }
  load_report rep{dataset, 0, 0, 0};
  size_t batch_bytes = 0;
  json images = json::array();
  auto flush = [&]() -> caf::error {
    if (images.empty())
      return {};
    auto r = call("imaging.put_images", {{"dataset", dataset},
                                         {"first_index", first_index + rep.images},
                                         {"images", images}});
    if (!r)
      return std::move(r.error());
    rep.images += static_cast<int64_t>(images.size());
    if (progress)
      progress(dataset + ": " + std::to_string(rep.images) + " / " + std::to_string(files.size())
               + " images");
    images = json::array();
    batch_bytes = 0;
    return {};
  };
  for (size_t i = 0; i < decoded.size(); ++i) {
    const auto& img = decoded[i];
    auto px = std::string_view{reinterpret_cast<const char*>(img.rgb.data()), img.rgb.size()};
    // One put per classify call's worth of images of one size: each put is one block, which
    // a call then sends as it is stored.
    bool other_size = !images.empty() && (images.back()["width"] != img.width
                                          || images.back()["height"] != img.height);
    if (other_size || batch_bytes + px.size() > (size_t{4} << 20)
        || int64_t(images.size()) >= images_per_call(px.size()))
      if (auto e = flush())
        return e;
    images.push_back({{"width", img.width},
                      {"height", img.height},
                      {"channels", 3},
                      {"name", fs::path{files[i]}.filename().string()},
                      {"pixels", base64_encode(px)}});
    batch_bytes += px.size();
  }
  if (auto e = flush())
    return e;
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

} // namespace comb::apps::imaging
