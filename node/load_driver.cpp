#include "node/load_driver.hpp"

#include "base/errc.hpp"

#include <caf/all.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>

namespace comb::runtime {

namespace {

struct shared_load {
  router r;
  uint64_t total = 0;
  invocation_maker make;
  reply_observer observe;
  std::atomic<uint64_t> next{0};
  std::atomic<uint64_t> ok{0};
  std::atomic<uint64_t> failed{0};
  std::mutex mtx;
  std::vector<std::string> errors;

  void record(uint64_t i, const caf::expected<nlohmann::json>& reply) {
    if (reply) {
      ++ok;
    } else {
      ++failed;
      std::lock_guard guard{mtx};
      if (errors.size() < 8)
        errors.push_back(describe(reply.error()));
    }
    if (observe)
      observe(i, reply);
  }
};

// One client: sends its next invocation when the previous reply arrives.
void client_loop(caf::event_based_actor* self, std::shared_ptr<shared_load> load) {
  auto i = load->next++;
  if (i >= load->total) {
    self->quit();
    return;
  }
  auto inv = load->make(i);
  auto target = load->r.route(inv);
  if (!target) {
    load->record(i, target.error());
    client_loop(self, load);
    return;
  }
  self->request(*target, caf::infinite, call_atom::value, std::move(inv))
    .then(
      [=](nlohmann::json& reply) {
        load->record(i, caf::expected<nlohmann::json>{std::move(reply)});
        client_loop(self, load);
      },
      [=](caf::error& e) {
        load->record(i, e);
        client_loop(self, load);
      });
}

} // namespace

load_result drive(caf::actor_system& sys, const router& r, uint32_t clients, uint64_t total,
                  invocation_maker make, reply_observer observe) {
  auto load = std::make_shared<shared_load>();
  load->r = r;
  load->total = total;
  load->make = std::move(make);
  load->observe = std::move(observe);
  caf::scoped_actor self{sys};
  auto t0 = std::chrono::steady_clock::now();
  for (uint32_t c = 0; c < clients; ++c) {
    auto a = sys.spawn([load](caf::event_based_actor* s) { client_loop(s, load); });
    self->monitor(a);
  }
  for (uint32_t c = 0; c < clients; ++c)
    self->receive([](const caf::down_msg&) {});
  load_result out;
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  out.ok = load->ok;
  out.failed = load->failed;
  out.errors = load->errors;
  return out;
}

} // namespace comb::runtime
