#include "apps/bank/bank_demo.hpp"

#include "base/errc.hpp"

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace comb::apps::bank {

caf::expected<demo_report> run_demo(runtime::node& n, const demo_options& o) {
  demo_report rep;
  rep.accounts = o.accounts;
  rep.clients = o.threads;
  for (int i = 0; i < o.accounts; ++i) {
    auto r = n.call("bank.open",
                    {{"account", "acct-" + std::to_string(i)}, {"balance", o.opening_balance}},
                    "admin");
    if (r)
      ++rep.opened;
    else if (!is(r.error(), errc::already_exists))
      return std::move(r.error());
  }
  std::atomic<int> ok{0}, failed{0};
  auto run_id = std::to_string(runtime::next_execution_id());
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < o.threads; ++t)
    pool.emplace_back([&, t] {
      for (int i = 0; i < o.transfers_per_thread; ++i) {
        int a = (t * 7919 + i * 104729) % o.accounts;
        int b = (a + 1 + i % (o.accounts - 1)) % o.accounts;
        auto r = n.call("bank.transfer",
                        {{"id", run_id + "-" + std::to_string(t) + "-" + std::to_string(i)},
                         {"from", "acct-" + std::to_string(a)},
                         {"to", "acct-" + std::to_string(b)},
                         {"amount", 1 + i % 10}},
                        "teller");
        (r ? ok : failed)++;
      }
    });
  for (auto& th : pool)
    th.join();
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  rep.committed = ok;
  rep.refused = failed;
  auto total = n.call("bank.total", nlohmann::json::object(), "auditor");
  if (!total)
    return std::move(total.error());
  rep.total = std::move(*total);
  rep.conserved = rep.total["total"] == int64_t{o.accounts} * o.opening_balance;
  return rep;
}

} // namespace comb::apps::bank
