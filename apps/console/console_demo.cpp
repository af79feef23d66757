// The console's demo steps (see console_demo.hpp).
#include "apps/console/console_demo.hpp"

#include "base/base64.hpp"
#include "base/errc.hpp"
#include "runtime/pieces/model_digest.hpp"
#include "runtime/pieces/model_store.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

namespace comb::apps::console {

namespace fs = std::filesystem;
using nlohmann::json;

caf::expected<std::string> demo_login(accounts& acc, const std::string& data_dir) {
  auto file = data_dir + "/console-login.txt";
  std::string password;
  if (std::ifstream in{file}; in)
    std::getline(in, password);
  if (password.size() >= 8) {
    auto ok = acc.check("analyst", password);
    if (!ok)
      return ok.error();
    if (*ok)
      return password;
  }
  static constexpr char alphabet[] = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
  std::random_device rd; // /dev/urandom on Linux
  std::uniform_int_distribution<size_t> pick{0, sizeof(alphabet) - 2};
  password.clear();
  for (int i = 0; i < 16; ++i)
    password += alphabet[pick(rd)];
  if (auto err = acc.set_user("analyst", password))
    return err;
  fs::remove(file);
  {
    std::ofstream out{file};
    out << password << "\n";
    if (!out)
      return make_error(errc::storage_error, file + ": cannot write the console login");
  }
  fs::permissions(file, fs::perms::owner_read | fs::perms::owner_write);
  return password;
}

std::string demo_model_file(const std::string& source_dir, bool& exists) {
  if (const char* env = std::getenv("COMB_ANOMALY_MODEL"); env && *env) {
    exists = fs::is_regular_file(env);
    return env;
  }
  const char* name = "anomaly_model.safetensors";
  for (auto p : {fs::current_path() / name, fs::path(source_dir) / name})
    if (fs::is_regular_file(p)) {
      exists = true;
      return p.string();
    }
  exists = false;
  return (fs::path(source_dir) / name).string();
}

namespace {

// The model store's row of version `v` of `name` in a comb.model.list answer, or null.
json find_row(const json& list, const std::string& name, uint32_t v) {
  for (auto& m : list)
    if (m.value("name", "") == name && m.value("version", 0u) == v)
      return m;
  return nullptr;
}

} // namespace

caf::error put_and_activate_model(console_link& admin, const std::string& name,
                                  const std::string& file, std::chrono::milliseconds wait,
                                  const std::function<void(const std::string&)>& say) {
  std::string bytes;
  {
    std::ifstream in{file, std::ios::binary};
    if (!in)
      return make_error(errc::not_found, "cannot read the model file " + file);
    std::ostringstream s;
    s << in.rdbuf();
    bytes = s.str();
  }
  auto digest = runtime::model_digest(bytes.data(), bytes.size());
  auto list = admin.call("comb.model.list", json::object());
  if (!list)
    return list.error();
  // The same bytes stored before (a restarted demo): activate that version again.
  uint32_t version = 0;
  uint32_t highest = 0;
  for (auto& m : *list)
    if (m.value("name", "") == name) {
      highest = std::max(highest, m.value("version", 0u));
      if (m.value("digest", "") == digest)
        version = m.value("version", 0u);
    }
  auto what = "model '" + name + "' version ";
  if (version == 0) {
    version = highest + 1;
    const auto chunk = runtime::model_store::chunk_size;
    size_t chunks = std::max<size_t>(1, (bytes.size() + chunk - 1) / chunk);
    for (size_t i = 0; i < chunks; ++i) {
      auto part = std::string_view{bytes}.substr(i * chunk, chunk);
      json args{
        {"name", name}, {"version", version}, {"chunk_no", i}, {"data", base64_encode(part)}};
      if (auto r = admin.call("comb.model.put_chunk", args, std::chrono::seconds{60}); !r)
        return r.error();
    }
    auto put = admin.call("comb.model.put",
                          {{"name", name},
                           {"version", version},
                           {"chunk_count", chunks},
                           {"digest", digest},
                           {"kind", "anomaly-detector"}},
                          std::chrono::seconds{120});
    if (!put)
      return put.error();
    say("stored " + file + " as " + what + std::to_string(version) + " ("
        + std::to_string(bytes.size()) + " bytes)");
  } else if (auto row = find_row(*list, name, version); row.value("active", false)) {
    say(what + std::to_string(version) + " (" + file + ") is already active");
    return {};
  }
  auto act = admin.call("comb.model.activate", {{"name", name}, {"version", version}});
  if (!act)
    return act.error();
  auto key = act->value("call", "");
  auto deadline = std::chrono::steady_clock::now() + wait;
  while (std::chrono::steady_clock::now() < deadline) {
    auto now = admin.call("comb.model.list", json::object());
    if (!now)
      return now.error();
    auto row = find_row(*now, name, version);
    auto last = row.is_object() ? row.value("last_load", json::object()) : json::object();
    if (last.value("call", "") == key) {
      if (last.value("ok", false)) {
        say(what + std::to_string(version) + " is active: Nectar's requests get model labels");
        return {};
      }
      return make_error(errc::bad_model, what + std::to_string(version)
                                           + " failed to load: " + row.value("load_error", "?"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds{300});
  }
  say(what + std::to_string(version) + " is still loading after "
      + std::to_string(wait.count() / 1000) + " s (the compute process will finish it)");
  return {};
}

void demo_anomaly_model(caf::actor_system& sys, const endpoint& node, const std::string& source_dir,
                        const std::function<void(const std::string&)>& say) {
  auto line = [&](const std::string& s) { say("anomaly model: " + s); };
  bool exists = false;
  auto file = demo_model_file(source_dir, exists);
  auto at = node.to_string();
  console_link admin{sys, node, "admin"};
  if (exists) {
    if (auto err = put_and_activate_model(admin, "waf", file, std::chrono::seconds{60}, line))
      line("not activated (" + file + "): " + describe(err));
    return;
  }
  // No file: a version stored by an earlier start may still be active (the data folder keeps
  // it); say so, or how to get one.
  uint32_t active = 0;
  uint32_t highest = 0;
  if (auto list = admin.call("comb.model.list", json::object()))
    for (auto& m : *list)
      if (m.value("name", "") == "waf") {
        highest = std::max(highest, m.value("version", 0u));
        if (m.value("active", false))
          active = m.value("version", 0u);
      }
  if (active > 0)
    line("no file at " + file + " (or $COMB_ANOMALY_MODEL); version " + std::to_string(active)
         + " of model 'waf', stored by an earlier start, stays active");
  else
    line("none at " + file
         + " (or $COMB_ANOMALY_MODEL): Nectar's requests get rule labels "
           "only and wait in httplog_unlabeled for a model. Training one is too long for the "
           "demo; to train one and have it labeled:");
  auto next = std::to_string(highest + 1);
  line("  ./dev comb anomaly train --out anomaly_model.safetensors   (then start the demo "
       "again, or put it into this one:)");
  line("  ./dev comb model put --node " + at + " --name waf --version " + next
       + " --file anomaly_model.safetensors && ./dev comb model activate --node " + at
       + " --name waf --version " + next);
}

} // namespace comb::apps::console
