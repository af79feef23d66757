// A stopped node's data folder is read, never written, by `comb digest`, `comb log verify
// --data` and replay's source (issue 16): on a folder nobody may write to (chmod -R a-w, read
// by a user that is not root, so that the permissions hold), each succeeds and gives the same
// digest as the folder had, and none changes a file (no LOG renamed, no lock, no blob
// segment). As root without setpriv the non-root half is skipped, saying so; the check that
// nothing changed still runs.
#include "apps/apps.hpp"
#include "node/node.hpp"
#include "runtime/system_config.hpp"
#include "storage/database.hpp"
#include "tests/test_util.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <map>

#include <unistd.h>

using namespace comb;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// User and group that own nothing here: the one non-root user a test box is sure to have.
constexpr const char* nobody = "65534";

std::shared_ptr<runtime::procedure_registry> procs() {
  // All apps, as `comb replay` registers them: the replayed folder has the same tables.
  auto p = std::make_shared<runtime::procedure_registry>();
  apps::register_all(*p);
  return p;
}

// Runs the comb binary (as `nobody` when `as_nobody`); returns its exit code and output.
std::pair<int, std::string> run_comb(const std::vector<std::string>& args, const std::string& out,
                                     bool as_nobody) {
  std::vector<std::string> argv;
  if (as_nobody)
    argv = {"/usr/bin/setpriv", std::string{"--reuid="} + nobody, std::string{"--regid="} + nobody,
            "--clear-groups", "--"};
  argv.push_back(test::comb_binary());
  argv.insert(argv.end(), args.begin(), args.end());
  test::child_process p{argv, out};
  int status = p.wait();
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, test::read_file(out)};
}

// Every file under `dir` with its size and modification time: what a writer would change.
std::map<std::string, std::pair<uintmax_t, fs::file_time_type>> files_of(const std::string& dir) {
  std::map<std::string, std::pair<uintmax_t, fs::file_time_type>> out;
  for (auto& e : fs::recursive_directory_iterator(dir))
    out[e.path().string()] = {e.is_regular_file() ? e.file_size() : 0, e.last_write_time()};
  return out;
}

// The digest a read-write open of `data` gives.
std::string digest_of(const std::string& data) {
  storage::options opts;
  opts.create_if_missing = false;
  auto db = test::must(storage::database::open(data, opts));
  return test::must(db->digest());
}

} // namespace

TEST_SUITE("runtime.provenance.read_only") {
  TEST_CASE("digest, log verify --data and replay read a folder nobody may write to") {
    test::temp_dir dir;
    // The folder must be reachable by nobody; what is under it decides who may write.
    fs::permissions(dir.path(), fs::perms::owner_all | fs::perms::group_exec | fs::perms::group_read
                                  | fs::perms::others_exec | fs::perms::others_read);
    runtime::node_config cfg;
    cfg.data_dir = dir.path() + "/node/data";
    cfg.provenance_dir = dir.path() + "/node/log";
    cfg.durability = storage::durability::async;
    cfg.partitions = 2;
    {
      runtime::system_config sc{2};
      caf::actor_system sys{sc};
      auto n = test::must(runtime::node::start(sys, cfg, procs()));
      for (int i = 0; i < 30; ++i)
        test::must(n->call("bank.open", json{{"account", "a" + std::to_string(i)}, {"balance", 5}},
                           "admin"));
      test::must(n->call("bank.transfer",
                         json{{"id", "t1"}, {"from", "a1"}, {"to", "a2"}, {"amount", 3}}, "admin"));
    }
    auto want = digest_of(cfg.data_dir);
    // A copy whose files nobody may write (the original stays writable for the cleanup).
    auto ro = dir.path() + "/ro";
    fs::copy(dir.path() + "/node", ro, fs::copy_options::recursive);
    for (auto& e : fs::recursive_directory_iterator(ro))
      fs::permissions(e.path(),
                      fs::perms::owner_write | fs::perms::group_write | fs::perms::others_write,
                      fs::perm_options::remove);
    fs::permissions(ro, fs::perms::owner_write | fs::perms::group_write | fs::perms::others_write,
                    fs::perm_options::remove);
    auto before = files_of(ro);
    bool root = ::geteuid() == 0;
    bool as_nobody = root && fs::exists("/usr/bin/setpriv");
    if (root && !as_nobody)
      MESSAGE("SKIPPED: running as root without /usr/bin/setpriv: the permissions do not bind "
              "root, so only 'no file changed' is checked");
    // Replay writes into a folder of its own, which nobody must be able to create.
    auto out_dir = dir.path() + "/out";
    fs::create_directory(out_dir);
    if (as_nobody)
      REQUIRE(::chown(out_dir.c_str(), 65534, 65534) == 0);

    auto [rc, out] = run_comb({"digest", "--data", ro + "/data"}, dir.path() + "/digest.txt",
                              as_nobody);
    CAPTURE(out);
    CHECK(rc == 0);
    CHECK(out == "digest " + want + "\n");

    auto [vrc, vout] = run_comb({"log", "verify", "--log", ro + "/log", "--data", ro + "/data"},
                                dir.path() + "/verify.txt", as_nobody);
    CAPTURE(vout);
    CHECK(vrc == 0);
    CHECK(vout.find("where it must") != std::string::npos);

    auto [rrc, rout] = run_comb({"replay", "--log", ro + "/log", "--data", ro + "/data", "--into",
                                 out_dir + "/replayed"},
                                dir.path() + "/replay.txt", as_nobody);
    CAPTURE(rout);
    CHECK(rrc == 0);
    CHECK(rout.find("digest " + want) != std::string::npos);

    // Nothing in the read-only copy changed, whoever ran the tools.
    CHECK(files_of(ro) == before);
    // Put the write bits back so that the temp folder can be removed.
    for (auto& e : fs::recursive_directory_iterator(ro))
      fs::permissions(e.path(), fs::perms::owner_write, fs::perm_options::add);
    fs::permissions(ro, fs::perms::owner_write, fs::perm_options::add);
  }
}
