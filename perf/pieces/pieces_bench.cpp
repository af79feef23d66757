// perf_pieces: end-to-end tasks/s and MB/s of compute tasks through
//   full:     primary procedure (payload committed with its outbox call) -> dispatcher ->
//             function actor -> pieces over TCP -> `comb compute` (checksum) -> result
//             procedure (result committed exactly once),
//   function: function actor -> pieces over TCP -> `comb compute` -> reply (no database),
// each against the same compute step (checksum over the pieces) called in-process, measured
// in the same run on the same payloads. Prints fixed overhead per invocation (1 KiB tasks) and
// transfer cost per MiB (slope between 1 MiB and 8 MiB tasks).
// Usage: perf_pieces [--benchmarks=full,function] [--sizes=1024,102400,1048576,8388608]
//                    [--counts=1,10,100,1000] [--max-bytes=N] [--functions=4]
//                    [--node-threads=N (default: half the cores)] [--inflight-bytes=N]
//                    [--repeat=3 (runs per case; the summary takes the median)]
//                    [--apply-batch=N (results applied in one transaction, at most; default:
//                     the dispatcher's; 1: each in its own)]
#include "perf/bench_env.hpp"
#include "actors/function_actor.hpp"
#include "actors/outbox_dispatcher.hpp"
#include "runtime/pieces/builtin_tasks.hpp"
#include "runtime/pieces/compute_types.hpp"
#include "base/errc.hpp"
#include "node/node.hpp"
#include "runtime/pieces/outbox.hpp"
#include "runtime/system_config.hpp"
#include "storage/transaction.hpp"
#include "tests/test_util.hpp"

#include <caf/all.hpp>

#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <thread>

using namespace comb;
using namespace comb::runtime;
using clk = std::chrono::steady_clock;

namespace {

std::vector<size_t> parse_list(const std::string& s) {
  std::vector<size_t> out;
  std::stringstream ss{s};
  std::string item;
  while (std::getline(ss, item, ','))
    out.push_back(std::stoull(item));
  return out;
}

struct bench_config : system_config {
  explicit bench_config(size_t threads) : system_config(threads) {
    add_compute_types(*this);
    if (std::getenv("COMB_STEALING") == nullptr)
      set("scheduler.policy", caf::atom("sharing"));
  }
};

/// Results committed by bench.store (counted once each commit is done, so waiting for them
/// costs the node nothing).
std::atomic<uint64_t> results_committed{0};

std::shared_ptr<procedure_registry> procedures() {
  auto procs = std::make_shared<procedure_registry>();
  outbox::add_tables(*procs);
  procs->add_table("results");
  procedure_options opts;
  opts.roles = {"*"};
  opts.partition_by = "name";
  opts.max_args_bytes = size_t{64} << 20;
  procs->add(
    "bench.submit",
    [](call_context& ctx, storage::transaction& txn,
       const nlohmann::json& args) -> caf::expected<nlohmann::json> {
      outbox_call c;
      c.model = "checksum";
      c.result_procedure = "bench.store";
      c.context = {{"name", arg<std::string>(args, "name")}};
      auto key = outbox::enqueue(ctx, txn, c, args.at("payload").get_ref<const std::string&>());
      if (!key)
        return key.error();
      return nlohmann::json{{"call", *key}};
    },
    opts);
  opts.partition_by.clear();
  outbox::add_result_procedure(
    *procs, "bench.store",
    [](call_context&, storage::transaction& txn,
       const nlohmann::json& args) -> caf::expected<nlohmann::json> {
      const auto& out = args.at("result").at("output").get_binary();
      std::vector<char> bytes(out.begin(), out.end());
      auto sum = parse_checksum_output(bytes);
      if (!sum)
        return sum.error();
      if (auto err = txn.put_row("results", args.at("context").at("name").get<std::string>(),
                                 {{"checksum", sum->first}, {"length", sum->second}}))
        return err;
      txn.after_commit([] { ++results_committed; });
      return nlohmann::json{};
    },
    opts);
  return procs;
}

/// Tasks kept in flight: 64, or fewer so that about `inflight_bytes` are in flight (the
/// dispatcher's default bound).
size_t inflight_bytes = actors::dispatcher_config{}.max_in_flight_bytes;
size_t window_for(size_t size) {
  return std::max<size_t>(1, std::min<size_t>(64, inflight_bytes / std::max<size_t>(size, 1)));
}

/// Requests this harness has had answered (submits, tasks).
std::atomic<uint64_t> answered{0};

/// Ends the process when neither a request was answered nor a result committed for 120 s.
/// The harness's requests carry no CAF timeout: one per request woke CAF's clock thread for
/// every task (about 8 us of CPU per task on the 2-core VM, taken from the path measured).
class watchdog {
public:
  watchdog()
    : thread_{[this] {
        auto moved = [] { return answered.load() + results_committed.load(); };
        auto last = moved();
        auto since = clk::now();
        std::unique_lock<std::mutex> lock{mtx_};
        while (!cv_.wait_for(lock, std::chrono::milliseconds{500}, [this] { return done_; })) {
          if (auto now = moved(); now != last) {
            last = now;
            since = clk::now();
          } else if (clk::now() - since > std::chrono::seconds{120}) {
            std::fprintf(stderr, "perf_pieces: nothing answered or committed for 120 s\n");
            std::_Exit(1);
          }
        }
      }} {}
  ~watchdog() {
    {
      std::lock_guard<std::mutex> lock{mtx_};
      done_ = true;
    }
    cv_.notify_one(); // at once: a run's end does not wait out a sleep
    thread_.join();
  }

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

double seconds_since(clk::time_point t0) {
  return std::chrono::duration<double>(clk::now() - t0).count();
}

/// The baseline: the same compute step, in-process, on the same payload split the same way.
double run_inprocess(const std::string& payload, size_t count) {
  std::vector<payload_buffer> chunks;
  for (size_t i = 0; i < payload.size() || chunks.empty(); i += max_piece_payload)
    chunks.emplace_back(std::vector<char>(
      payload.begin() + i, payload.begin() + std::min(payload.size(), i + max_piece_payload)));
  volatile uint64_t sink = 0;
  auto t0 = clk::now();
  for (size_t i = 0; i < count; ++i) {
    auto out = checksum_output(chunks);
    sink = sink + static_cast<unsigned char>(out[0]);
  }
  return seconds_since(t0);
}

/// CPU seconds of all threads of process `pid` so far (summed from each thread's schedstat,
/// in ns: /proc/PID/stat counts clock ticks, too coarse for a run of 1,000 small tasks).
double process_cpu_s(pid_t pid) {
  auto dir_name = "/proc/" + std::to_string(pid) + "/task";
  DIR* dir = opendir(dir_name.c_str());
  if (dir == nullptr)
    return 0;
  double total = 0;
  while (auto* ent = readdir(dir)) {
    if (ent->d_name[0] == '.')
      continue;
    std::ifstream in{dir_name + "/" + ent->d_name + "/schedstat"};
    double ns = 0;
    if (in >> ns)
      total += ns / 1e9;
  }
  closedir(dir);
  return total;
}

double thread_cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

/// CPU used during a run: the node's threads (this process but the harness's thread, which
/// plays the client), the compute process's, and the client's. Less sensitive to the other
/// work on a shared machine than the wall-clock rate.
struct cpu_use {
  double node_s = 0, compute_s = 0, client_s = 0;
};

class cpu_meter {
public:
  explicit cpu_meter(pid_t compute) : compute_{compute} { start(); }
  void start() {
    self0_ = process_cpu_s(getpid());
    client0_ = thread_cpu_s();
    compute0_ = process_cpu_s(compute_);
  }
  cpu_use stop() const {
    auto client = thread_cpu_s() - client0_;
    return {process_cpu_s(getpid()) - self0_ - client, process_cpu_s(compute_) - compute0_, client};
  }

private:
  pid_t compute_;
  double self0_ = 0, client0_ = 0, compute0_ = 0;
};

struct result_line {
  std::string name;
  size_t size;
  size_t count;
  double comb_s;
  double base_s;
  cpu_use cpu;
};

void print(const result_line& r) {
  double mb = static_cast<double>(r.size) * r.count / 1e6;
  std::printf("%-9s %8zu B x %4zu  comb %9.1f tasks/s %9.1f MB/s | in-process %11.1f tasks/s "
              "%9.1f MB/s | ratio %7.2fx slower\n",
              r.name.c_str(), r.size, r.count, r.count / r.comb_s, mb / r.comb_s,
              r.count / r.base_s, mb / r.base_s, r.comb_s / r.base_s);
  std::printf("%-9s %8zu B x %4zu  CPU per task: node %.1f us, compute process %.1f us, "
              "client %.1f us\n",
              r.name.c_str(), r.size, r.count, r.cpu.node_s / r.count * 1e6,
              r.cpu.compute_s / r.count * 1e6, r.cpu.client_s / r.count * 1e6);
  std::fflush(stdout);
}

} // namespace

int main(int argc, char** argv) {
  std::string benchmarks = "full,function";
  std::vector<size_t> sizes{1024, 102400, 1048576, 8388608};
  std::vector<size_t> counts{1, 10, 100, 1000};
  size_t max_bytes = size_t{1} << 30; // skip combinations moving more than this
  uint32_t functions = 4;
  uint32_t apply_batch = actors::dispatcher_config{}.max_apply_batch;
  size_t repeat = 3;
  size_t node_threads = std::max(1u, std::thread::hardware_concurrency() / 2);
  uint32_t window = actors::function_config{}.window;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&](const char* flag) { return a.substr(std::string{flag}.size()); };
    if (a.rfind("--benchmarks=", 0) == 0)
      benchmarks = val("--benchmarks=");
    else if (a.rfind("--sizes=", 0) == 0)
      sizes = parse_list(val("--sizes="));
    else if (a.rfind("--counts=", 0) == 0)
      counts = parse_list(val("--counts="));
    else if (a.rfind("--max-bytes=", 0) == 0)
      max_bytes = std::stoull(val("--max-bytes="));
    else if (a.rfind("--window=", 0) == 0)
      window = static_cast<uint32_t>(std::stoul(val("--window=")));
    else if (a.rfind("--inflight-bytes=", 0) == 0)
      inflight_bytes = std::stoull(val("--inflight-bytes="));
    else if (a.rfind("--repeat=", 0) == 0)
      repeat = std::max<size_t>(1, std::stoull(val("--repeat=")));
    else if (a.rfind("--node-threads=", 0) == 0)
      node_threads = std::stoull(val("--node-threads="));
    else if (a.rfind("--apply-batch=", 0) == 0)
      apply_batch = static_cast<uint32_t>(std::stoul(val("--apply-batch=")));
    else if (a.rfind("--functions=", 0) == 0)
      functions = static_cast<uint32_t>(std::stoul(val("--functions=")));
    else {
      std::fprintf(stderr, "perf_pieces: unknown argument '%s'\n", a.c_str());
      return 2;
    }
  }
  // The same OpenBLAS and malloc environment as the other benchmarks (re-executes once when
  // it must): without the malloc settings every 8 MiB task is a fresh mmap whose pages fault
  // in on each transfer. `comb compute` inherits it.
  comb::perf::clean_blas_env(argv, "perf_pieces");
  std::printf("perf_pieces: %u cores; node on %zu CAF workers, compute process on its own; "
              "compute step = checksum over 1 MiB pieces; loopback TCP\n",
              std::thread::hardware_concurrency(), node_threads);
  // The compute process.
  test::temp_dir dir;
  auto port = test::free_port();
  auto log = dir.path() + "/compute.log";
  size_t cores = std::thread::hardware_concurrency();
  auto compute_threads = cores > node_threads ? cores - node_threads : size_t{1};
  test::child_process compute{{test::comb_binary(), "compute", "--listen",
                               "127.0.0.1:" + std::to_string(port), "--memory-limit-mib", "2048",
                               "--threads", std::to_string(compute_threads)},
                              log};
  for (int i = 0;; ++i) {
    std::ifstream in{log};
    std::stringstream ss;
    ss << in.rdbuf();
    if (ss.str().find("listening on") != std::string::npos)
      break;
    if (i > 400) {
      std::fprintf(stderr, "perf_pieces: comb compute did not start: %s\n", ss.str().c_str());
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds{50});
  }
  // The node's actors run on `node_threads` CAF workers; the compute process has its own.
  // On a 2-core machine one worker each keeps the two processes from preempting each other
  // (and the node's actors from waking each other across cores) on every hop.
  bench_config cfg{node_threads};
  // Each (size, count) runs `repeat` times in a row; every run is printed.
  std::vector<size_t> repeated;
  for (auto c : counts)
    for (size_t i = 0; i < repeat; ++i)
      repeated.push_back(c);
  caf::actor_system sys{cfg};
  watchdog stuck;
  std::map<std::pair<std::string, size_t>, result_line> at; // (bench, size) at largest count
  std::vector<result_line> lines;
  auto keep = [&](const result_line& r) {
    print(r);
    lines.push_back(r);
  };

  if (benchmarks.find("function") != std::string::npos) {
    caf::scoped_actor self{sys};
    std::vector<caf::actor> fns;
    for (uint32_t i = 0; i < functions; ++i) {
      actors::function_config fc;
      fc.compute_port = static_cast<uint16_t>(port);
      fc.window = window;
      fns.push_back(actors::spawn_function_actor(sys, fc));
    }
    uint64_t task = 1;
    for (auto size : sizes) {
      std::string payload(size, 'f');
      std::mt19937 rng{1};
      for (auto& c : payload)
        c = static_cast<char>(rng());
      for (auto count : repeated) {
        if (size * count > max_bytes)
          continue;
        // Warm-up (connection, allocator).
        if (task == 1) {
          task_request w;
          w.task_id = task++;
          w.model = "checksum";
          w.bytes.assign(payload.begin(), payload.end());
          self->request(fns[0], std::chrono::seconds{60}, run_atom::value, std::move(w))
            .receive([](task_result&) {}, [](caf::error&) {});
        }
        cpu_meter cpu{compute.pid()};
        auto t0 = clk::now();
        std::vector<decltype(self->request(fns[0], caf::infinite, run_atom::value, task_request{}))>
          handles;
        size_t failed = 0;
        size_t sent = 0, done = 0;
        while (done < count) {
          while (sent < count && sent - done < window_for(size)) {
            task_request req;
            req.task_id = task++;
            req.model = "checksum";
            req.bytes.assign(payload.begin(), payload.end());
            handles.push_back(self->request(fns[sent % fns.size()], caf::infinite, run_atom::value,
                                            std::move(req)));
            ++sent;
          }
          handles[done].receive([](task_result&) {}, [&](caf::error&) { ++failed; });
          ++done;
          ++answered;
        }
        auto comb_s = seconds_since(t0);
        auto used = cpu.stop();
        if (failed > 0)
          std::printf("function: %zu of %zu tasks failed\n", failed, count);
        keep({"function", size, count, comb_s, run_inprocess(payload, count), used});
      }
    }
    for (auto& f : fns)
      caf::anon_send_exit(f, caf::exit_reason::user_shutdown);
  }

  if (benchmarks.find("full") != std::string::npos) {
    node_config nc;
    nc.data_dir = dir.path() + "/data";
    nc.partitions = 2;
    nc.durability = storage::durability::async;
    auto n = node::start(sys, nc, procedures());
    if (!n) {
      std::fprintf(stderr, "perf_pieces: %s\n", describe(n.error()).c_str());
      return 1;
    }
    actors::dispatcher_config dc;
    dc.function.compute_port = static_cast<uint16_t>(port);
    dc.functions = functions;
    dc.max_apply_batch = apply_batch;
    dc.function.window = window;
    dc.max_in_flight_bytes = inflight_bytes;
    auto disp = actors::spawn_outbox_dispatcher(sys, (*n)->db(), (*n)->route(), dc);
    caf::scoped_actor self{sys};
    uint64_t job = 0;
    for (auto size : sizes) {
      std::string payload(size, 'f');
      std::mt19937 rng{2};
      for (auto& c : payload)
        c = static_cast<char>('a' + rng() % 26);
      for (auto count : repeated) {
        if (size * count > max_bytes)
          continue;
        // Results committed so far (asking the node, or scanning the results table, on every
        // check would take time from the system being measured).
        auto applied = [] { return results_committed.load(); };
        auto base = applied();
        // Requests that carried results to the state actor (one per batch).
        auto apply_requests = [&] {
          uint64_t n = 0;
          self->request(disp, std::chrono::seconds{30}, caf::get_atom::value)
            .receive(
              [&](std::string& s) {
                n = nlohmann::json::parse(s).value("apply_requests", uint64_t{0});
              },
              [](caf::error&) {});
          return n;
        };
        auto requests_before = apply_requests();
        cpu_meter cpu{compute.pid()};
        auto t0 = clk::now();
        // Closed loop, as for the function path: at most window_for(size) tasks between submit
        // and applied result (`done` counts acknowledged submits, `finished` applied results).
        size_t failed = 0, sent = 0, done = 0, finished = 0;
        auto window = window_for(size);
        std::vector<decltype(self->request(std::declval<actors::state_actor>(), caf::infinite,
                                           call_atom::value, invocation{}))>
          handles;
        while (done < count) {
          while (sent < count && sent - done < window && sent - finished < window) {
            invocation inv;
            inv.procedure = "bench.submit";
            // One copy of the payload into the request (a braced initializer list would
            // copy it twice).
            inv.args = nlohmann::json::object();
            inv.args["name"] = "job" + std::to_string(job++);
            inv.args["payload"] = payload;
            inv.role = "admin";
            inv.sender = "perf_pieces";
            auto target = (*n)->route().route(inv);
            handles.push_back(
              self->request(*target, caf::infinite, call_atom::value, std::move(inv)));
            ++sent;
          }
          if (done < sent) {
            handles[done].receive([](nlohmann::json&) {}, [&](caf::error&) { ++failed; });
            ++done;
            ++answered;
            continue;
          }
          finished = applied() - base + failed;
          if (sent - finished >= window)
            std::this_thread::sleep_for(std::chrono::microseconds{50});
        }
        // Wait until every result is committed by the result procedure.
        auto deadline = clk::now() + std::chrono::seconds{300};
        while (applied() < base + count - failed && clk::now() < deadline)
          std::this_thread::sleep_for(std::chrono::microseconds{200});
        auto comb_s = seconds_since(t0);
        auto used = cpu.stop();
        if (failed > 0)
          std::printf("full: %zu of %zu submits failed\n", failed, count);
        if (auto requests = apply_requests() - requests_before; requests > 0)
          std::printf("full %12zu B x %4zu  results per request to the state actor: %.2f\n",
                      size, count, static_cast<double>(count) / static_cast<double>(requests));
        keep({"full", size, count, comb_s, run_inprocess(payload, count), used});
      }
    }
    self->send_exit(disp, caf::exit_reason::user_shutdown);
    self->wait_for(disp);
    n->reset();
  }

  // Fixed overhead per invocation (1 KiB at the largest count) and transfer cost per MiB
  // (slope between 1 MiB and 8 MiB tasks at the largest count run for both), each from the
  // median of the repeated runs: one run on a shared 2-core machine can be 1.5x off.
  auto median = [&](const std::string& b, size_t size, size_t count) -> std::optional<result_line> {
    std::vector<result_line> runs;
    for (const auto& r : lines)
      if (r.name == b && r.size == size && r.count == count)
        runs.push_back(r);
    if (runs.empty())
      return std::nullopt;
    auto mid = [&](auto field) {
      std::vector<double> v;
      for (auto& r : runs)
        v.push_back(r.*field);
      std::sort(v.begin(), v.end());
      return v[v.size() / 2];
    };
    result_line m = runs[0];
    m.comb_s = mid(&result_line::comb_s);
    m.base_s = mid(&result_line::base_s);
    auto mid_cpu = [&](double cpu_use::*field) {
      std::vector<double> v;
      for (auto& r : runs)
        v.push_back(r.cpu.*field);
      std::sort(v.begin(), v.end());
      return v[v.size() / 2];
    };
    m.cpu = {mid_cpu(&cpu_use::node_s), mid_cpu(&cpu_use::compute_s), mid_cpu(&cpu_use::client_s)};
    return m;
  };
  for (std::string b : {"function", "full"}) {
    size_t small_count = 0, both_count = 0;
    for (auto c : counts) {
      if (median(b, 1024, c))
        small_count = std::max(small_count, c);
      if (median(b, 1048576, c) && median(b, 8388608, c))
        both_count = std::max(both_count, c);
    }
    if (auto small = median(b, 1024, small_count))
      std::printf("%-9s fixed overhead per invocation (1 KiB x %zu, median of %zu): comb %.1f "
                  "us, in-process %.2f us\n",
                  b.c_str(), small->count, repeat, small->comb_s / small->count * 1e6,
                  small->base_s / small->count * 1e6);
    if (auto small = median(b, 1024, small_count))
      std::printf("%-9s CPU per invocation (1 KiB x %zu, medians of %zu): node %.1f us + compute "
                  "process %.1f us = %.1f us (client %.1f us)\n",
                  b.c_str(), small->count, repeat, small->cpu.node_s / small->count * 1e6,
                  small->cpu.compute_s / small->count * 1e6,
                  (small->cpu.node_s + small->cpu.compute_s) / small->count * 1e6,
                  small->cpu.client_s / small->count * 1e6);
    auto mib1 = median(b, 1048576, both_count);
    auto mib8 = median(b, 8388608, both_count);
    if (mib1 && mib8) {
      double per1 = mib1->comb_s / mib1->count, per8 = mib8->comb_s / mib8->count;
      double b1 = mib1->base_s / mib1->count, b8 = mib8->base_s / mib8->count;
      double us_per_mib = (per8 - per1) / 7 * 1e6;
      double base_us_per_mib = (b8 - b1) / 7 * 1e6;
      std::printf("%-9s transfer cost per MiB (8 MiB vs 1 MiB tasks x %zu, median of %zu): "
                  "comb %.1f us/MiB (%.2f GB/s), in-process %.1f us/MiB (%.2f GB/s), ratio "
                  "%.2fx\n",
                  b.c_str(), both_count, repeat, us_per_mib, 1048.576 / us_per_mib, base_us_per_mib,
                  1048.576 / base_us_per_mib, us_per_mib / base_us_per_mib);
    }
  }
  return 0;
}
