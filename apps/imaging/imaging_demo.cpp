// The imaging demo (see imaging_demo.hpp).
#include "apps/imaging/imaging_demo.hpp"

#include "base/errc.hpp"

#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>

namespace comb::apps::imaging {

using nlohmann::json;

namespace {

// The accuracy of `version` in an imaging.results reply, or -1 when it answered nothing.
double accuracy_of(const json& results, int64_t version) {
  for (const auto& v : results.value("versions", json::array()))
    if (v.value("version", int64_t{0}) == version && v.contains("accuracy"))
      return v["accuracy"].get<double>();
  return -1;
}

// Loads an MNIST split unless the dataset already holds all of it.
caf::expected<int64_t> ensure_mnist(const procedure_caller& call, const std::string& dir,
                                    const std::string& split, int64_t expected,
                                    const progress_fn& progress) {
  auto ds = call("imaging.dataset", {{"dataset", "mnist-" + split}});
  if (ds && ds->value("count", int64_t{0}) >= expected && ds->value("labelled", 0) >= expected)
    return ds->value("count", int64_t{0});
  auto r = load_mnist(call, dir, split, 0, progress);
  if (!r)
    return r.error();
  return r->front().images;
}

} // namespace

caf::expected<demo_report> run_imaging_demo(const procedure_caller& call, const demo_options& o,
                                            const progress_fn& progress) {
  auto until = std::chrono::steady_clock::now() + o.timeout;
  demo_report rep;
  auto train = ensure_mnist(call, o.data_dir, "train", 60000, progress);
  if (!train)
    return train.error();
  auto test = ensure_mnist(call, o.data_dir, "test", 10000, progress);
  if (!test)
    return test.error();
  rep.train_images = *train;
  rep.test_images = *test;

  // A stored version that reached the target on mnist-test is reused.
  auto versions = model_versions(call, o.mlp);
  if (!versions)
    return versions.error();
  auto results = call("imaging.results", {{"dataset", "mnist-test"}, {"model", o.mlp}});
  int64_t good = 0;
  if (results)
    for (const auto& v : *versions)
      if (accuracy_of(*results, v.value("version", int64_t{0})) >= o.target_accuracy)
        good = v.value("version", int64_t{0});
  if (good > 0) {
    if (progress)
      progress(o.mlp + " version " + std::to_string(good) + " already reached "
               + std::to_string(int(o.target_accuracy * 100)) + "% on mnist-test: reusing it");
    bool active = false;
    for (const auto& v : *versions)
      active |= v.value("version", int64_t{0}) == good && v.value("active", false);
    if (auto e = wait_active(call, o.mlp, static_cast<uint32_t>(good), !active, until, progress))
      return e;
  } else {
    for (int64_t round = 0; round < o.max_rounds; ++round) {
      train_options t;
      t.model = o.mlp;
      t.dataset = "mnist-train";
      t.epochs = o.epochs_per_round;
      t.rounds = 1;
      t.seed = 1 + static_cast<uint64_t>(round);
      auto r = train_rounds(call, t, until, progress);
      if (!r)
        return r.error();
      rep.rounds.push_back(r->front());
      auto run = run_dataset(call, "imaging.classify", "mnist-test", o.mlp, until, nullptr);
      if (!run)
        return run.error();
      auto acc = accuracy_of(run->results, r->front().version);
      if (progress)
        progress(o.mlp + " version " + std::to_string(r->front().version) + ": mnist-test accuracy "
                 + std::to_string(acc * 100).substr(0, 5) + "%");
      if (acc >= o.target_accuracy)
        break;
    }
  }

  // Classify the test set with the active version, and read its accuracy.
  auto run = run_dataset(call, "imaging.classify", "mnist-test", o.mlp, until, progress);
  if (!run)
    return run.error();
  rep.classify_seconds = run->seconds;
  for (const auto& v : run->results.value("versions", json::array()))
    if (v.value("version", int64_t{0}) > rep.version && v.value("answered", 0) > 0)
      rep.version = v.value("version", int64_t{0});
  auto vs = model_versions(call, o.mlp);
  if (!vs)
    return vs.error();
  for (const auto& v : *vs)
    if (v.value("active", false))
      rep.version = v.value("version", int64_t{0});
  rep.accuracy = accuracy_of(run->results, rep.version);

  // MobileNetV2 on the three BMPs.
  auto models = std::filesystem::path{o.data_dir} / "models";
  std::vector<std::string> files;
  for (auto f : {"cat.bmp", "grace_hopper.bmp", "bird.bmp"})
    files.push_back((models / f).string());
  auto loaded = load_image_files(call, "imagenet-samples", files, 224, 0, nullptr);
  if (!loaded)
    return loaded.error();
  auto mv = model_versions(call, o.mobilenet);
  if (!mv)
    return mv.error();
  if (mv->empty()) {
    auto path = (models / "mobilenet_v2_1.0_224_quant.tflite").string();
    std::ifstream in{path, std::ios::binary};
    if (!in)
      return make_error(errc::not_found, "cannot open " + path);
    std::stringstream ss;
    ss << in.rdbuf();
    if (auto e = put_model(call, o.mobilenet, 1, ss.str()))
      return e;
    mv = model_versions(call, o.mobilenet);
    if (!mv)
      return mv.error();
  }
  if (!mv->back().value("active", false))
    if (auto e = wait_active(call, o.mobilenet, mv->back().value("version", 0u),
                             /*activate=*/true, until, progress))
      return e;
  auto bmp = run_dataset(call, "imaging.classify", "imagenet-samples", o.mobilenet, until, nullptr);
  if (!bmp)
    return bmp.error();
  auto names = read_class_names((models / "imagenet_labels.txt").string());
  auto ans = answers(call, "imagenet-samples", o.mobilenet, 3);
  if (!ans)
    return ans.error();
  for (const auto& a : *ans) {
    rep.bmp_answers.push_back(a);
    rep.bmp_names.push_back(names && a.label >= 0 && size_t(a.label) < names->size()
                              ? (*names)[size_t(a.label)]
                              : std::string{"?"});
  }
  return rep;
}

void print_demo_report(std::ostream& out, const demo_report& r, const demo_options& o) {
  out << "  imaging: MNIST " << r.train_images << " training and " << r.test_images
      << " test images in table imaging_images\n";
  if (r.rounds.empty())
    out << "  imaging: " << o.mlp << " reused (a stored version already reached "
        << o.target_accuracy * 100 << "%)\n";
  for (const auto& t : r.rounds)
    out << "  imaging: trained " << o.mlp << " version " << t.version << " from version "
        << t.trained_from << " on " << t.rows << " rows through the compute process in "
        << std::fixed << std::setprecision(1) << t.seconds << " s, losses " << t.losses.dump()
        << "\n";
  out << "  imaging: " << o.mlp << " version " << r.version << " classified mnist-test: accuracy "
      << std::fixed << std::setprecision(2) << r.accuracy * 100 << "% (in " << std::setprecision(1)
      << r.classify_seconds << " s)\n";
  for (size_t i = 0; i < r.bmp_answers.size(); ++i) {
    const auto& a = r.bmp_answers[i];
    out << "  imaging: " << o.mobilenet << " on " << a.name << ": " << a.label << " \""
        << r.bmp_names[i] << "\" (score " << std::setprecision(3) << a.score << ")\n";
  }
  out << std::flush;
}

} // namespace comb::apps::imaging
