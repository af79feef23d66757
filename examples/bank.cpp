// Example: the bank as an actor graph: client actors -> state actors (one per partition) ->
// group committer, on a single in-process node. Run: build/examples/example_bank [DATA_DIR]
#include "apps/bank/bank.hpp"
#include "base/errc.hpp"
#include "node/node.hpp"
#include "runtime/system_config.hpp"

#include <caf/all.hpp>

#include <atomic>
#include <filesystem>
#include <iostream>

using namespace comb;
using nlohmann::json;

// A client actor: sends `n` transfers one after another, each when the previous one is done.
void teller(caf::event_based_actor* self, runtime::router r, int id, int n,
            std::shared_ptr<std::atomic<int>> done) {
  if (n == 0)
    return self->quit();
  runtime::invocation inv{
    "bank.transfer",
    {{"id", "teller" + std::to_string(id) + "-" + std::to_string(n)},
     {"from", "acct-" + std::to_string(id % 10)},
     {"to", "acct-" + std::to_string((id + n) % 10 == id % 10 ? (id + 1) % 10 : (id + n) % 10)},
     {"amount", 1}},
    "teller"};
  auto target = r.route(inv);
  self->request(*target, caf::infinite, call_atom::value, std::move(inv))
    .then(
      [=](const json&) {
        ++*done;
        teller(self, r, id, n - 1, done);
      },
      [=](const caf::error& e) {
        std::cerr << "transfer failed: " << describe(e) << "\n";
        teller(self, r, id, n - 1, done);
      });
}

int main(int argc, char** argv) {
  std::string dir = argc > 1 ? argv[1] : "data/example-bank";
  std::filesystem::remove_all(dir);
  runtime::system_config cfg;
  caf::actor_system sys{cfg};
  auto procs = std::make_shared<runtime::procedure_registry>();
  apps::bank::register_bank(*procs);
  runtime::node_config nc;
  nc.data_dir = dir;
  auto failed = [](const caf::error& e) {
    std::cerr << describe(e) << "\n";
    return 1;
  };
  auto node = runtime::node::start(sys, nc, procs);
  if (!node)
    return failed(node.error());
  auto& n = **node;
  for (int i = 0; i < 10; ++i)
    if (auto r = n.call("bank.open", {{"account", "acct-" + std::to_string(i)}, {"balance", 100}},
                        "admin");
        !r)
      return failed(r.error());
  auto done = std::make_shared<std::atomic<int>>(0);
  {
    caf::scoped_actor self{sys};
    for (int t = 0; t < 20; ++t)
      self->monitor(sys.spawn(teller, n.route(), t, 50, done));
    for (int t = 0; t < 20; ++t)
      self->receive([](const caf::down_msg&) {});
  }
  auto total = n.call("bank.total", json::object(), "auditor");
  if (!total)
    return failed(total.error());
  std::cout << *done << " transfers committed; " << total->dump() << "\n";
  return (*total)["total"] == 1000 ? 0 : 1;
}
