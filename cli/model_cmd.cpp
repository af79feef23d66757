// `comb model put | list | get | activate`: the model store (runtime/model_store.hpp) of a
// running node, reached through its gateway. put splits a file into 1 MiB chunks and records
// the version with its SHA-256 digest (the node checks the file with its model runner unless
// --raw); get writes a version back to a file and checks the digest; activate has the node
// load the version into its compute process and waits until it is active or failed to load.
#include "cli/commands.hpp"
#include "cli/tls_flags.hpp"

#include "base/base64.hpp"
#include "node/client.hpp"
#include "base/endpoint.hpp"
#include "base/errc.hpp"
#include "runtime/pieces/model_digest.hpp"
#include "runtime/pieces/model_store.hpp"
#include "runtime/system_config.hpp"

#include <caf/actor_system.hpp>

#include <cerrno>
#include <chrono>
#include <thread>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace comb::cli {

namespace {

struct model_opts {
  std::string node = "127.0.0.1:4242";
  runtime::tls_config tls; // --tls-*: the cluster's CA and a client certificate
  std::string role = "admin";
  std::string name;
  uint32_t version = 0;
  std::string file;
  /// put: store raw bytes, unchecked (kind "raw"); or the kind the file must have.
  bool raw = false;
  std::string kind;
  /// activate: how long to wait for the version to be active, in seconds.
  double timeout = 120;
};

[[noreturn]] void fail_model(const std::string& cmd, const caf::error& e, int code = 1) {
  fail("model " + cmd, e, code);
}

/// Runs `body` with a client connected to the node.
template <class F>
void with_client(const std::string& cmd, const model_opts& o, F body) {
  auto ep = comb::parse_endpoint(o.node);
  if (!ep)
    fail_model(cmd, ep.error(), 2);
  runtime::system_config cfg{2};
  use_tls("model " + cmd, cfg, o.tls);
  caf::actor_system sys{cfg};
  auto c = runtime::client::connect(sys, *ep, std::chrono::seconds{10}, o.tls);
  if (!c)
    fail_model(cmd, c.error(), 3);
  body(*c);
}

nlohmann::json call(const std::string& cmd, runtime::client& c, const model_opts& o,
                    const std::string& proc, const nlohmann::json& args) {
  auto r = c.call(proc, args.dump(), o.role);
  if (!r)
    fail_model(cmd, r.error());
  return *r;
}

/// The bytes of the model file at `path`, or an error naming the file and the problem (a
/// folder, a missing or unreadable file, a failed read). POSIX calls rather than ifstream,
/// whose reads throw std::ios_base::failure on a folder.
caf::expected<std::string> read_model_file(const std::string& path) {
  auto cannot = [&](int err) {
    return make_error(err == ENOENT ? errc::not_found : errc::storage_error,
                      "cannot read model file '" + path + "': " + std::strerror(err));
  };
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return cannot(errno);
  std::string bytes;
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    auto err = cannot(errno);
    ::close(fd);
    return err;
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    return make_error(errc::invalid_argument,
                      "'" + path + "' is a folder; --file takes the model's file");
  }
  char buf[1 << 16];
  for (;;) {
    auto n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      auto err = cannot(errno);
      ::close(fd);
      return err;
    }
    if (n == 0)
      break;
    bytes.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return bytes;
}

void put(const model_opts& o) {
  auto file = read_model_file(o.file);
  if (!file)
    fail_model("put", file.error(), 2);
  const std::string& bytes = *file;
  auto digest = runtime::model_digest(bytes.data(), bytes.size());
  with_client("put", o, [&](runtime::client& c) {
    size_t chunks = 0;
    for (size_t off = 0; off < bytes.size() || chunks == 0;
         off += runtime::model_store::chunk_size) {
      auto n = std::min(runtime::model_store::chunk_size, bytes.size() - off);
      call("put", c, o, "comb.model.put_chunk",
           {{"name", o.name},
            {"version", o.version},
            {"chunk_no", chunks},
            {"data", comb::base64_encode(std::string_view{bytes}.substr(off, n))}});
      ++chunks;
      if (off + n >= bytes.size())
        break;
    }
    nlohmann::json args{
      {"name", o.name}, {"version", o.version}, {"chunk_count", chunks}, {"digest", digest}};
    if (o.raw)
      args["kind"] = "raw";
    else if (!o.kind.empty())
      args["kind"] = o.kind;
    auto r = call("put", c, o, "comb.model.put", args);
    std::cout << r.dump() << "\n";
  });
}

/// The node's outbox calls that cannot reach the compute process, by call key (from the
/// gateway's info; empty when the node has no dispatcher or does not say).
std::map<std::string, nlohmann::json> failing_calls(runtime::client& c) {
  std::map<std::string, nlohmann::json> out;
  auto text = c.info();
  if (!text)
    return out;
  auto info = nlohmann::json::parse(*text, nullptr, false);
  if (info.is_discarded() || !info.contains("outbox") || !info["outbox"].is_object())
    return out;
  for (const auto& f : info["outbox"].value("failing", nlohmann::json::array()))
    out[f.value("call", "")] = f;
  return out;
}

void list(const model_opts& o) {
  with_client("list", o, [&](runtime::client& c) {
    auto r = call("list", c, o, "comb.model.list", nlohmann::json::object());
    // A version whose activation cannot reach the compute process says so, with the
    // attempts so far (the dispatcher's; the error is recorded in the row once it gives up).
    auto failing = failing_calls(c);
    for (auto& m : r) {
      auto f = failing.find(m.value("activation", ""));
      if (f != failing.end() && !m.value("loaded", false)) {
        m["attempts"] = f->second.value("attempts", 0);
        m["last_error"] = f->second.value("last_error", "");
        if (f->second.contains("gives_up_in_s"))
          m["gives_up_in_s"] = f->second["gives_up_in_s"];
      }
      std::cout << m.dump() << "\n";
    }
  });
}

void get(const model_opts& o) {
  with_client("get", o, [&](runtime::client& c) {
    std::string bytes;
    std::string digest;
    int64_t count = 1;
    for (int64_t i = 0; i < count; ++i) {
      auto r = call("get", c, o, "comb.model.get_chunk",
                    {{"name", o.name}, {"version", o.version}, {"chunk_no", i}});
      count = r.value("chunk_count", int64_t{0});
      digest = r.value("digest", "");
      auto data = comb::base64_decode(r.value("data", ""));
      if (!data)
        fail_model("get", data.error());
      bytes += *data;
    }
    auto actual = runtime::model_digest(bytes.data(), bytes.size());
    if (actual != digest)
      fail_model("get",
                 make_error(errc::corrupt_data,
                            "model '" + o.name + "' version " + std::to_string(o.version)
                              + " read back with digest " + actual + ", stored digest " + digest));
    std::ofstream out{o.file, std::ios::binary | std::ios::trunc};
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out)
      fail_model("get", make_error(errc::storage_error, "cannot write '" + o.file + "'"), 2);
    std::cout << nlohmann::json{{"name", o.name},
                                {"version", o.version},
                                {"bytes", bytes.size()},
                                {"digest", digest}}
                   .dump()
              << "\n";
  });
}

/// The row of `name` `version` in comb.model.list's answer, or null.
nlohmann::json find_version(const nlohmann::json& list, const std::string& name, uint32_t version) {
  for (const auto& m : list)
    if (m.value("name", "") == name && m.value("version", 0u) == version)
      return m;
  return nullptr;
}

void activate(const model_opts& o) {
  with_client("activate", o, [&](runtime::client& c) {
    auto r = call("activate", c, o, "comb.model.activate",
                  {{"name", o.name}, {"version", o.version}});
    auto key = r.value("call", "");
    auto what = "model '" + o.name + "' version " + std::to_string(o.version);
    // The version is active once the compute process has loaded it; a load that failed is
    // recorded in its row by the same call's result (the previous version keeps serving).
    auto deadline = std::chrono::steady_clock::now()
                    + std::chrono::milliseconds{static_cast<int64_t>(o.timeout * 1000)};
    auto next_note = std::chrono::steady_clock::now() + std::chrono::seconds{2};
    for (;;) {
      auto list = call("activate", c, o, "comb.model.list", nlohmann::json::object());
      auto row = find_version(list, o.name, o.version);
      if (row.is_null())
        fail_model("activate", make_error(errc::not_found, what + " vanished while loading"));
      auto last = row.value("last_load", nlohmann::json::object());
      if (last.value("call", "") == key) {
        if (last.value("ok", false)) {
          r["active"] = row.value("active", false);
          r["summary"] = row.value("summary", "");
          std::cout << r.dump() << "\n";
          return;
        }
        std::string active_now;
        for (const auto& m : list)
          if (m.value("name", "") == o.name && m.value("active", false))
            active_now = "; version " + std::to_string(m.value("version", 0u)) + " stays active";
        fail_model("activate",
                   make_error(errc::bad_model, what + " failed to load: "
                                                 + row.value("load_error", "?") + active_now));
      }
      // Say why it waits, when the compute process cannot be reached (at most every 5 s).
      if (auto now = std::chrono::steady_clock::now(); now >= next_note) {
        next_note = now + std::chrono::seconds{5};
        auto failing = failing_calls(c);
        if (auto f = failing.find(key); f != failing.end())
          std::cerr << "comb model activate: " << what
                    << " is not loaded yet: " << f->second.value("attempts", 0)
                    << " attempt(s) to reach the compute process failed, the last with: "
                    << f->second.value("last_error", "")
                    << (f->second.contains("gives_up_in_s")
                          ? "; the call gives up in "
                              + std::to_string(
                                static_cast<int64_t>(f->second.value("gives_up_in_s", 0.0)))
                              + " s"
                          : std::string{})
                    << std::endl;
      }
      if (std::chrono::steady_clock::now() >= deadline)
        fail_model("activate",
                   make_error(errc::timeout, what + " is not loaded after "
                                               + std::to_string(static_cast<int64_t>(o.timeout))
                                               + " s (call " + key
                                               + "); `comb model list` shows when it is"));
      std::this_thread::sleep_for(std::chrono::milliseconds{100});
    }
  });
}

void add_common(CLI::App* sub, model_opts& o) {
  sub->add_option("--node", o.node, "HOST:PORT of the node's gateway")->capture_default_str();
  sub->add_option("--role", o.role, "Role to call as")->capture_default_str();
  add_tls_flags(sub, o.tls);
}

} // namespace

void add_model_commands(CLI::App& app) {
  auto o = std::make_shared<model_opts>();
  auto* model = app.add_subcommand("model", "Store, list, fetch and activate model versions");
  model->require_subcommand(1);
  auto* p = model->add_subcommand("put", "Store a file as model NAME version VERSION");
  add_common(p, *o);
  p->add_option("--name", o->name, "Model name")->required();
  p->add_option("--version", o->version, "Version (>= 1)")->required();
  p->add_option("--file", o->file, "Model file")->required();
  p->add_flag("--raw", o->raw,
              "Store the bytes unchecked (a built-in test model: the compute process loads it "
              "only as the checksum model)");
  p->add_option("--kind", o->kind, "Refuse the file unless it is a model of this kind");
  p->callback([o] { put(*o); });
  auto* l = model->add_subcommand("list", "List stored model versions");
  add_common(l, *o);
  l->callback([o] { list(*o); });
  auto* g = model->add_subcommand("get", "Write a stored model version to a file");
  add_common(g, *o);
  g->add_option("--name", o->name, "Model name")->required();
  g->add_option("--version", o->version, "Version")->required();
  g->add_option("--out", o->file, "Output file")->required();
  g->callback([o] { get(*o); });
  auto* a = model->add_subcommand("activate", "Load a version into the compute process and "
                                              "make it the active one");
  add_common(a, *o);
  a->add_option("--name", o->name, "Model name")->required();
  a->add_option("--version", o->version, "Version")->required();
  a->add_option("--timeout", o->timeout, "Seconds to wait until the version is active")
    ->capture_default_str();
  a->callback([o] { activate(*o); });
}

} // namespace comb::cli
