// perf_serving: the paper's Table 1 and Figure 4 on Comb. For each model (MNIST MLP 784-512-10
// at 1,200 images per invocation, MobileNetV2 at 6 images of 224x224x3, the CenterNet-style
// detector at 1 image of 512x512x3: as many as fit in 1 MiB), N invocations of a primary
// procedure go through the whole path
//   procedure (reads the input row, commits an outbox call with typed tensors) -> dispatcher
//   -> function actor -> pieces over TCP -> `comb compute` (the model's runner on the CPU
//   executor) -> result procedure (writes a row, committed)
// and the amortized latency per invocation is compared with direct execution of the same
// model on the same kernels and batch, in-process, in the same run (before and after the
// path; the better of the two counts), and with PyTorch (python3-torch, 2 threads) running
// the same model and batch when it is installed. Also checks that the path's outputs equal the
// direct ones.
// Usage: perf_serving [--models=mnist,mobilenet,detector] [--counts=1,10,100,1000]
//                     [--window=8] [--node-threads=1] [--durability=sync|async]
//                     [--data=DIR] [--torch=auto|off] [--backend=cpu|cuda]
//                     [--hotswap=1000 (0: skip the hot-swap phase)]
//                     [--single-reps=21 (1 invocation: the medians of this many alternating
//                      runs of path and direct)]
//                     [--rounds=1 (more invocations: after the first round (direct both ways,
//                      path, direct again), this many rounds in all of path then direct,
//                      alternating; the row is the median path against the median direct,
//                      with their ranges and each round's ratio)]
//                     [--payload=rows|copy (the outbox call names its input row, or stores a
//                      copy of its bytes)]
//                     [--sgemm-split=on|off (`comb compute --sgemm-split`: its sgemms as parts
//                      on the kernels' pool, or OpenBLAS's own threads; direct execution is
//                      measured both ways and the faster counts)]
//                     [--compute-binary=PATH (the `comb` that runs `comb compute`; default
//                      the build's: alternate an older copy against it for A/B runs)]
//                     [--compute-pin=0|wake|1 (`comb compute --kernel-pin`: where its kernel
//                      pool's workers run; default the compute process's own, 0)]
//                     [--inputs=1 (bench procedures: this many distinct input blobs, stored
//                      under their own keys; invocation n reads input n % inputs, and direct
//                      execution rotates through the same inputs; 1: one repeated input)]
//                     [--cores=shared|split (shared: the node and `comb compute` share every
//                      core, direct execution runs on all of them; split: the node on the
//                      first half of the CPUs, `comb compute --cpus` on the rest, as the
//                      paper's external process on its own machine, and direct execution on
//                      the compute process's CPUs with as many kernel threads)]
//                     [--procedures=bench|imaging (bench: the primary reads one stored input
//                      blob, the result procedure writes one row; imaging: the app's own
//                      imaging.classify / imaging.detect read the images as rows, one per
//                      image, and imaging.classified / imaging.detected write one row per
//                      image, as `comb imaging classify` runs them)]
#include "base/base64.hpp"
#include "base/cpu_set.hpp"
#include "apps/imaging/imaging.hpp"
#include "base/errc.hpp"
#include "kernels/cpu_backend.hpp"
#include "node/node.hpp"
#include "perf/bench_env.hpp"
#include "runtime/pieces/compute_types.hpp"
#include "runtime/pieces/kernel_runners.hpp"
#include "runtime/pieces/model_digest.hpp"
#include "runtime/pieces/model_runner.hpp"
#include "runtime/pieces/model_store.hpp"
#include "runtime/pieces/outbox.hpp"
#include "runtime/pieces/stage_trace.hpp"
#include "runtime/system_config.hpp"
#include "storage/transaction.hpp"
#include "tests/test_util.hpp"

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>
#include <tuple>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace comb;
using namespace comb::runtime;
using clk = std::chrono::steady_clock;
using json = nlohmann::json;

namespace {

std::vector<size_t> parse_list(const std::string& s) {
  std::vector<size_t> out;
  std::stringstream ss{s};
  std::string item;
  while (std::getline(ss, item, ','))
    out.push_back(std::stoull(item));
  return out;
}

/// CPU seconds (user + system) used so far by process `pid` (0: this process); 0 when it is
/// not there.
double cpu_seconds(pid_t pid) { return std::max(0.0, perf::process_cpu_seconds(pid)); }

/// CPU time of each thread of process `pid` (0: this process) from the scheduler's own
/// account (/proc/PID/task/TID/schedstat: ns on a CPU, not 10 ms ticks), keyed by thread id,
/// with the thread's name. Threads that ended are not in it.
struct thread_cpu {
  std::string name;
  uint64_t ns = 0;
  /// Times the thread was put on a CPU (schedstat's third field: its wake-ups and preemptions).
  uint64_t runs = 0;
};
std::map<long, thread_cpu> threads_cpu(pid_t pid) {
  std::map<long, thread_cpu> out;
  auto base = pid == 0 ? std::string{"/proc/self/task"} : "/proc/" + std::to_string(pid) + "/task";
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator{base, ec}) {
    long tid = 0;
    try {
      tid = std::stol(e.path().filename().string());
    } catch (const std::exception&) {
      continue;
    }
    std::ifstream stat{e.path() / "schedstat"};
    std::ifstream comm{e.path() / "comm"};
    thread_cpu t;
    uint64_t waited = 0;
    if (!(stat >> t.ns >> waited >> t.runs))
      continue;
    std::getline(comm, t.name);
    out[tid] = std::move(t);
  }
  return out;
}

/// "name/tid a.aaa xR, ...": ms per invocation of each thread and the times it was put on a
/// CPU per invocation (those that started during the phase counted from 0; threads inherit
/// their creator's name, so the id tells them apart) between two samples, largest first, and
/// the sums.
std::string cpu_by_thread(const std::map<long, thread_cpu>& before,
                          const std::map<long, thread_cpu>& after, size_t count) {
  uint64_t total = 0, total_runs = 0;
  std::vector<std::tuple<uint64_t, uint64_t, std::string>> order;
  for (const auto& [tid, t] : after) {
    auto b = before.find(tid);
    bool seen = b != before.end() && b->second.ns <= t.ns && b->second.runs <= t.runs;
    uint64_t used = t.ns - (seen ? b->second.ns : 0);
    uint64_t runs = t.runs - (seen ? b->second.runs : 0);
    order.emplace_back(used, runs, t.name + "/" + std::to_string(tid));
    total += used;
    total_runs += runs;
  }
  std::sort(order.rbegin(), order.rend());
  std::string out;
  char buf[160];
  auto per = [&](uint64_t v) { return static_cast<double>(v) / static_cast<double>(count); };
  for (const auto& [ns, runs, name] : order) {
    if (per(ns) < 5e3) // under 5 us/inv
      continue;
    std::snprintf(buf, sizeof buf, "%s%s %.3f x%.1f", out.empty() ? "" : ", ", name.c_str(),
                  per(ns) / 1e6, per(runs));
    out += buf;
  }
  std::snprintf(buf, sizeof buf, " (sum %.3f ms, x%.1f on a CPU)", per(total) / 1e6,
                per(total_runs));
  return out + buf;
}

double seconds_since(clk::time_point t0) {
  return std::chrono::duration<double>(clk::now() - t0).count();
}

/// The `comb compute` child while it runs (-1: none), for the exit and signal paths below.
std::atomic<pid_t> compute_child{-1};

/// Kills the compute child (SIGKILL) and reaps it; async-signal-safe.
void kill_compute_child() {
  pid_t pid = compute_child.exchange(-1);
  if (pid <= 0)
    return;
  ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

/// SIGINT, SIGTERM, SIGHUP, SIGQUIT: the compute child goes first (it would serve on, an
/// orphan on the cores the next run measures), then this process ends as the signal says.
void on_fatal_signal(int sig) {
  kill_compute_child();
  static const char msg[] = "perf_serving: interrupted; its comb compute child was killed\n";
  [[maybe_unused]] auto n = ::write(STDERR_FILENO, msg, sizeof msg - 1);
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

/// Every way out of perf_serving takes its compute child along: a signal (the handlers
/// above), std::exit (die(), the watchdog) through atexit; a normal end's child_process
/// destructor kills it first.
void kill_child_on_exit() {
  std::atexit(kill_compute_child);
  struct sigaction sa{};
  sa.sa_handler = on_fatal_signal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT})
    ::sigaction(sig, &sa, nullptr);
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "perf_serving: %s\n", what.c_str());
  std::exit(1);
}

template <class T>
T must(caf::expected<T> x, const std::string& what) {
  if (!x)
    die(what + ": " + describe(x.error()));
  return std::move(*x);
}

/// One model of the table.
struct model_case {
  std::string name;  // "mnist"
  std::string model; // model store name
  std::string file;  // the model file's bytes
  tensor_spec input; // one invocation's input
  std::string bytes; // its bytes
  std::string note;
  /// --inputs > 1: the other inputs' bytes (input k at extra[k - 1]), the same spec.
  std::vector<std::string> extra;

  /// Input k's bytes (k = 0: `bytes`).
  const std::string& input_bytes(size_t k) const { return k == 0 ? bytes : extra.at(k - 1); }
};

/// --inputs: how many distinct inputs the invocations rotate through.
size_t input_count = 1;

/// The bench_inputs key of input k of `model` (input 0 under the model's name, as before).
std::string input_key(const std::string& model, size_t k) {
  return k == 0 ? model : model + "#" + std::to_string(k);
}

/// Results committed by bench.done.
std::atomic<uint64_t> results_committed{0};

/// When each invocation's result committed, and the version that produced it, by n.
std::mutex done_mtx;
/// Notified at each committed result (the submitting loop sleeps on it, instead of polling).
std::condition_variable done_cv;
std::map<int64_t, std::pair<clk::time_point, uint32_t>> done_at;

/// Where one invocation's time went (under done_mtx): the primary's commit, the result
/// procedure's first start, and the compute process's own account (queued, runner call).
struct stages {
  clk::time_point committed, result_started;
  uint64_t queued_us = 0, run_us = 0;
  /// The compute process's steady clock (the same CLOCK_MONOTONIC as this process's): when
  /// it had the whole task, and when it replied.
  uint64_t whole_ns = 0, replied_ns = 0;
};
std::map<int64_t, stages> stage_at;

/// Copies the compute process's account of a result (queued, run, whole, replied) into `st`.
void take_compute_times(stages& st, const json& result) {
  st.queued_us = result.value("queued_us", uint64_t{0});
  st.run_us = result.value("run_us", uint64_t{0});
  st.whole_ns = result.value("whole_ns", uint64_t{0});
  st.replied_ns = result.value("replied_ns", uint64_t{0});
}

/// How the primary hands its input to the outbox: "rows" (outbox::enqueue_rows: the call names
/// the input row) or "copy" (the call stores a copy of the bytes, outbox::enqueue).
std::string payload_mode = "rows";

/// Which procedures an invocation runs: "bench" (bench.infer / bench.done) or "imaging" (the
/// app's imaging.classify or imaging.detect and their result procedures).
std::string procedures_mode = "bench";
// `comb compute --nice`: the compute process's priority against the node's (0).
int compute_nice = 0;
/// Imaging mode: invocation number by the outbox call its primary committed.
std::map<std::string, int64_t> n_of_call;

std::shared_ptr<procedure_registry> procedures() {
  auto procs = std::make_shared<procedure_registry>();
  outbox::add_tables(*procs);
  // Inputs are tensors' bytes: a blobs table, read straight into the payload.
  procs->add_table("bench_inputs", storage::table_kind::blobs);
  procs->add_table("bench_specs");
  procs->add_table("bench_results");
  procedure_options opts;
  opts.roles = {"*"};
  opts.partition_by = "model";
  opts.max_args_bytes = size_t{4} << 20;
  procs->add(
    "bench.put_input",
    [](call_context&, storage::transaction& txn, const json& args) -> caf::expected<json> {
      auto data = base64_decode(arg<std::string>(args, "data"));
      if (!data)
        return data.error();
      json spec = args.at("spec");
      auto key = args.value("key", arg<std::string>(args, "model"));
      if (auto err = txn.put_blob("bench_inputs", key, *data))
        return err;
      if (auto err = txn.put_row("bench_specs", arg<std::string>(args, "model"), spec))
        return err;
      return json{{"bytes", data->size()}};
    },
    opts);
  // The primary procedure: reads the input row and the active version, commits the call.
  procs->add(
    "bench.infer",
    [](call_context& ctx, storage::transaction& txn, const json& args) -> caf::expected<json> {
      auto model = arg<std::string>(args, "model");
      auto spec_row = txn.get_row("bench_specs", model);
      if (!spec_row)
        return spec_row.error();
      if (!*spec_row)
        return make_error(errc::not_found, "no input stored for " + model);
      auto specs = specs_from_json(**spec_row);
      if (!specs)
        return specs.error();
      auto version = model_store::active_version(txn, model);
      if (!version)
        return version.error();
      outbox_call c;
      c.kind = piece_kind::infer;
      c.model = model;
      c.model_version = *version;
      c.inputs = std::move(*specs);
      c.result_procedure = "bench.done";
      c.context = {{"model", model}, {"n", arg<int64_t>(args, "n")}};
      // Which of the stored inputs (--inputs): its key, the model's name by default.
      auto input = args.value("input", model);
      caf::expected<std::string> key{std::string{}};
      if (payload_mode == "rows") {
        key = outbox::enqueue_rows(ctx, txn, c, "bench_inputs", {input});
      } else {
        std::vector<char> data;
        auto found = txn.get_blob("bench_inputs", input, data);
        if (!found)
          return found.error();
        if (!*found)
          return make_error(errc::not_found, "no input stored for " + model);
        key = outbox::enqueue(ctx, txn, c, std::move(data));
      }
      if (!key)
        return key.error();
      txn.after_commit([n = arg<int64_t>(args, "n")] {
        comb::runtime::stage_trace::mark("prim.commit");
        std::lock_guard<std::mutex> g{done_mtx};
        stage_at[n].committed = clk::now();
      });
      return json{{"call", *key}, {"version", *version}};
    },
    opts);
  procedure_options ro = opts;
  ro.read_only = true;
  procs->add(
    "bench.result",
    [](call_context&, storage::transaction& txn, const json& args) -> caf::expected<json> {
      auto key = arg<std::string>(args, "model") + "/" + std::to_string(arg<int64_t>(args, "n"));
      auto v = txn.get("bench_results", key);
      if (!v)
        return v.error();
      if (!*v)
        return make_error(errc::not_found, "no result " + key);
      return json{{"data", base64_encode(**v)}};
    },
    ro);
  procedure_options res;
  res.roles = {"*"};
  // The result procedure: writes the first output tensor's bytes as the invocation's row.
  outbox::add_result_procedure(
    *procs, "bench.done",
    [](call_context&, storage::transaction& txn, const json& args) -> caf::expected<json> {
      if (args.contains("error"))
        return make_error(errc::procedure_failed, args.at("error").dump());
      auto out = result_tensors(args.at("result"));
      if (!out)
        return out.error();
      auto views = out->views();
      if (!views || views->empty())
        return make_error(errc::corrupt_data, "result without tensors");
      const auto& ctx = args.at("context");
      auto key = ctx.at("model").get<std::string>() + "/"
                 + std::to_string(ctx.at("n").get<int64_t>());
      {
        comb::runtime::stage_trace::mark("res.start");
        auto started = clk::now();
        const auto& res = args.at("result");
        std::lock_guard<std::mutex> g{done_mtx};
        auto& st = stage_at[ctx.at("n").get<int64_t>()];
        if (st.result_started == clk::time_point{})
          st.result_started = started;
        take_compute_times(st, res);
      }
      if (auto err = txn.put("bench_results", key,
                             std::string_view{(*views)[0].data, (*views)[0].size}))
        return err;
      auto n = ctx.at("n").get<int64_t>();
      auto version = args.at("result").at("model_version").get<uint32_t>();
      txn.after_commit([n, version] {
        comb::runtime::stage_trace::mark("res.commit");
        {
          std::lock_guard<std::mutex> g{done_mtx};
          done_at[n] = {clk::now(), version};
          ++results_committed;
        }
        done_cv.notify_one();
      });
      return json{{"version", version}};
    },
    res);
  // The imaging app's procedures, their result procedures wrapped to report each committed
  // result as bench.done does (the app's own code runs unchanged inside the wrapper).
  apps::imaging::register_imaging(*procs);
  for (const char* name : {"imaging.classified", "imaging.detected"}) {
    auto def = procs->find(name);
    if (!def)
      die(std::string{"the imaging app has no procedure "} + name);
    auto inner = def->fn;
    auto opts = def->opts;
    procs->add(
      name,
      [inner](call_context& ctx, storage::transaction& txn,
              const json& args) -> caf::expected<json> {
        auto started = clk::now();
        auto r = inner(ctx, txn, args);
        if (!r || r->value("duplicate", false))
          return r;
        auto call = arg<std::string>(args, "call");
        uint32_t version = 0;
        stages times;
        times.result_started = started;
        if (auto i = args.find("result"); i != args.end() && i->is_object()) {
          version = i->value("model_version", 0u);
          take_compute_times(times, *i);
        }
        if (args.contains("error"))
          std::fprintf(stderr, "perf_serving: call %s failed: %s\n", call.c_str(),
                       args.at("error").dump().c_str());
        txn.after_commit([call, version, times]() mutable {
          {
            std::lock_guard<std::mutex> g{done_mtx};
            if (auto i = n_of_call.find(call); i != n_of_call.end()) {
              done_at[i->second] = {clk::now(), version};
              auto& st = stage_at[i->second];
              times.committed = st.committed; // the primary's, set by run_path
              st = times;
            }
            ++results_committed;
          }
          done_cv.notify_one();
        });
        return r;
      },
      opts);
  }
  return procs;
}

std::string read_file(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  if (!in)
    return {};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// Stores `file` as `version` of `name`.
void put(node& n, const std::string& name, uint32_t version, const std::string& file) {
  size_t chunks = 0;
  for (size_t off = 0; off < file.size() || chunks == 0; off += model_store::chunk_size, ++chunks)
    must(n.call("comb.model.put_chunk",
                {{"name", name},
                 {"version", version},
                 {"chunk_no", chunks},
                 {"data", base64_encode(std::string_view{file}.substr(
                            off, std::min(model_store::chunk_size, file.size() - off)))}},
                "admin"),
         "put_chunk " + name);
  must(n.call("comb.model.put",
              {{"name", name},
               {"version", version},
               {"chunk_count", chunks},
               {"digest", model_digest(file.data(), file.size())}},
              "admin"),
       "put " + name);
}

/// The active version of `name` (0: none); dies on a load error of `version`.
uint32_t active_version(node& n, const std::string& name, uint32_t version) {
  auto list = must(n.call("comb.model.list", json::object(), "admin"), "list");
  uint32_t active = 0;
  for (const auto& row : list)
    if (row.value("name", "") == name) {
      if (row.value("active", false))
        active = row.value("version", 0u);
      if (row.value("version", 0u) == version && row.contains("load_error"))
        die("loading " + name + " failed: " + row["load_error"].dump());
    }
  return active;
}

/// Activates `version` of `name` and waits until it is active.
void activate(node& n, const std::string& name, uint32_t version) {
  must(n.call("comb.model.activate", {{"name", name}, {"version", version}}, "admin"),
       "activate " + name);
  auto deadline = clk::now() + std::chrono::seconds{120};
  while (clk::now() < deadline) {
    if (active_version(n, name, version) == version)
      return;
    std::this_thread::sleep_for(std::chrono::milliseconds{20});
  }
  die("model " + name + " did not become active in 120 s");
}

/// When each invocation was submitted, by n.
std::map<int64_t, clk::time_point> submitted_at;

/// Runs `count` invocations through the whole path, at most `window` unfinished at once;
/// `at_sent(k)` runs after the k-th submit (hot swap).
double run_path(node& n, caf::actor_system& sys, const model_case& m, size_t count, size_t window,
                uint64_t& next_n, const std::function<void(size_t)>& at_sent = {}) {
  caf::scoped_actor self{sys};
  auto base = results_committed.load();
  size_t failed = 0, sent = 0;
  // The submits wait without a CAF timeout: one wakes CAF's clock thread when set and when
  // cancelled, twice per invocation on the cores the path runs on (the node's caf.clock
  // thread took 0.03-0.08 ms/inv of CPU). Instead this watchdog ends the run when neither a
  // submit nor a result moved for 120 s.
  std::atomic<uint64_t> submits{0};
  // Woken at once when the run ends: a join that waited out a 200 ms sleep left the path's
  // threads idle that long before the next run, and the next single invocation then started
  // from CAF's deep idle (its 1-invocation latency read about 2x).
  bool finished = false;
  std::mutex finished_mtx;
  std::condition_variable finished_cv;
  std::thread watchdog{[&] {
    auto moved = [&] { return submits.load() + results_committed.load(); };
    auto last = moved();
    auto since = clk::now();
    for (;;) {
      {
        std::unique_lock<std::mutex> lock{finished_mtx};
        if (finished_cv.wait_for(lock, std::chrono::milliseconds{200}, [&] { return finished; }))
          break;
      }
      if (auto now = moved(); now != last) {
        last = now;
        since = clk::now();
      } else if (clk::now() - since > std::chrono::seconds{120}) {
        die("no invocation submitted or finished for 120 s");
      }
    }
  }};
  struct joiner {
    bool& finished;
    std::mutex& mtx;
    std::condition_variable& cv;
    std::thread& t;
    ~joiner() {
      {
        std::lock_guard<std::mutex> lock{mtx};
        finished = true;
      }
      cv.notify_one();
      t.join();
    }
  } join_watchdog{finished, finished_mtx, finished_cv, watchdog};
  auto t0 = clk::now();
  while (results_committed.load() - base + failed < count) {
    while (sent < count && sent - (results_committed.load() - base + failed) < window) {
      invocation inv;
      auto this_n = static_cast<int64_t>(next_n++);
      submitted_at[this_n] = clk::now();
      if (procedures_mode == "imaging") {
        // The app's primary procedure over the dataset's images (all of one invocation's).
        inv.procedure = m.name == "detector" ? "imaging.detect" : "imaging.classify";
        inv.args = {{"dataset", m.model}, {"model", m.model}, {"from", 0}};
      } else {
        inv.procedure = "bench.infer";
        inv.args = {{"model", m.model},
                    {"n", this_n},
                    {"input", input_key(m.model, static_cast<size_t>(this_n) % input_count)}};
      }
      inv.role = "admin";
      inv.sender = "perf_serving";
      auto target = n.route().route(inv);
      if (!target)
        die(describe(target.error()));
      self->request(*target, caf::infinite, call_atom::value, std::move(inv))
        .receive(
                 [&](json& r) {
                   if (procedures_mode != "imaging")
                     return;
                   std::lock_guard<std::mutex> g{done_mtx};
                   n_of_call[r.value("call", std::string{})] = this_n;
                   stage_at[this_n].committed = clk::now();
                 },
                 [&](caf::error& e) {
                   ++failed;
                   std::fprintf(stderr, "perf_serving: invocation failed: %s\n",
                                describe(e).c_str());
                 });
      ++sent;
      ++submits;
      if (at_sent)
        at_sent(sent);
    }
    // Sleeps until a result commits: a polling client took a share of the cores the path
    // runs on.
    std::unique_lock<std::mutex> g{done_mtx};
    done_cv.wait_for(g, std::chrono::milliseconds{100}, [&] {
      auto done = results_committed.load() - base + failed;
      return done >= count || (sent < count && sent - done < window);
    });
  }
  auto s = seconds_since(t0);
  if (failed > 0)
    die(std::to_string(failed) + " of " + std::to_string(count) + " invocations failed");
  return s;
}

/// --cores=split: the node's CPUs and the compute process's (empty: shared, every core).
std::vector<int> node_cpus, compute_cpus;

/// While it lives, the calling thread runs where the compute process runs (--cores=split:
/// direct execution and PyTorch take the compute process's CPUs, not the node's); then back
/// on the node's.
struct on_compute_cpus {
  on_compute_cpus() {
    if (!compute_cpus.empty())
      must_ok(run_on_cpus(compute_cpus));
  }
  ~on_compute_cpus() {
    if (!node_cpus.empty())
      must_ok(run_on_cpus(node_cpus));
  }
  static void must_ok(const caf::error& e) {
    if (e)
      die("--cores=split: " + describe(e));
  }
};

/// Direct execution: the same runner on the same kernels and batch, in-process; iteration i
/// runs tasks[(first + i) % tasks.size()] (the inputs rotate as the path's do).
double run_direct(loaded_model& lm, const std::vector<task_tensors>& tasks, size_t count,
                  std::string* first_out, size_t first = 0) {
  on_compute_cpus here;
  auto t0 = clk::now();
  for (size_t i = 0; i < count; ++i) {
    std::vector<const task_tensors*> batch{&tasks[(first + i) % tasks.size()]};
    auto out = lm.infer(batch);
    if (out.size() != 1 || !out[0])
      die("direct inference failed: "
          + (out.empty() ? std::string{"no output"} : describe(out[0].error())));
    if (i == 0 && first_out) {
      auto v = out[0]->views();
      if (v && !v->empty())
        first_out->assign((*v)[0].data, (*v)[0].size);
    }
  }
  return seconds_since(t0);
}

/// Medians over invocations [from, to) of where their time went, in ms: submit to the
/// primary's commit; the commit to the result procedure's start less the compute process's
/// own time (dispatch, pieces over TCP, the result's way back); queued in the compute
/// process; its runner call; the result procedure's start to its commit.
void print_stages(int64_t from, int64_t to) {
  comb::perf::turns primary, transport, there, back, queued, run, result;
  std::lock_guard<std::mutex> g{done_mtx};
  auto ms = [](clk::duration d) { return std::chrono::duration<double, std::milli>(d).count(); };
  for (int64_t i = from; i < to; ++i) {
    auto st = stage_at.find(i);
    auto d = done_at.find(i);
    auto sub = submitted_at.find(i);
    if (st == stage_at.end() || d == done_at.end() || sub == submitted_at.end()
        || st->second.committed == clk::time_point{}
        || st->second.result_started == clk::time_point{})
      continue;
    const auto& x = st->second;
    primary.add(ms(x.committed - sub->second));
    transport.add(ms(x.result_started - x.committed) - (x.queued_us + x.run_us) / 1e3);
    if (x.whole_ns > 0 && x.replied_ns > 0) {
      auto ns = [](clk::time_point t) {
        return static_cast<double>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count());
      };
      there.add((static_cast<double>(x.whole_ns) - ns(x.committed)) / 1e6);
      back.add((ns(x.result_started) - static_cast<double>(x.replied_ns)) / 1e6);
    }
    queued.add(x.queued_us / 1e3);
    run.add(x.run_us / 1e3);
    result.add(ms(d->second.first - x.result_started));
  }
  if (primary.empty())
    return;
  std::printf("    where one invocation's time went (medians of %zu, ms): submit -> primary "
              "committed %.2f | -> result procedure starts: dispatch and transfer %.2f + queued "
              "in compute %.2f + runner %.2f | result committed %.2f\n",
              primary.v.size(), primary.median(), transport.median(), queued.median(),
              run.median(), result.median());
  if (!there.empty())
    std::printf("      dispatch and transfer split by the compute process's clock (medians, ms): "
                "commit -> the compute process has the whole task %.3f | its reply -> the "
                "result procedure starts %.3f\n",
                there.median(), back.median());
}

/// PyTorch's ms per batch for `which`, or a negative number when it is not available.
double torch_ms(const std::string& which, const std::string& script, size_t iters,
                unsigned threads) {
  on_compute_cpus here; // python inherits this thread's CPUs
  auto cmd = "/usr/bin/python3 " + script + " " + which + " " + std::to_string(iters) + " "
             + std::to_string(threads) + " 2>/dev/null";
  auto* p = popen(cmd.c_str(), "r");
  if (!p)
    return -1;
  char buf[512];
  double ms = -1;
  while (std::fgets(buf, sizeof buf, p)) {
    double v = 0;
    if (std::sscanf(buf, "torch_serving ms %lf", &v) == 1)
      ms = v;
  }
  pclose(p);
  return ms;
}

} // namespace

int main(int argc, char** argv) {
  // OpenBLAS choosing its own kernels and the same malloc settings for Comb (this process and
  // the compute process it starts) and PyTorch (BENCHMARKING.md).
  comb::perf::clean_blas_env(argv);
  std::string models = "mnist,mobilenet,detector";
  std::vector<size_t> counts{1, 10, 100, 1000};
  size_t window = 8;
  size_t node_threads = 1;
  std::string durability = "sync";
  std::string data_dir = std::string{COMB_SOURCE_DIR} + "/../shared/data";
  if (auto env = std::getenv("COMB_DATA_DIR"))
    data_dir = env;
  std::string torch = "auto";
  std::string backend = "cpu";
  size_t hotswap = 1000;
  size_t single_reps = 21;
  size_t rounds = 1;
  std::string sgemm_split = "on";
  std::string compute_binary = test::comb_binary();
  std::string compute_pin; // --compute-pin: comb compute --kernel-pin (empty: not passed)
  std::string cores_mode = "shared";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&](const char* flag) { return a.substr(std::string{flag}.size()); };
    if (a.rfind("--models=", 0) == 0)
      models = val("--models=");
    else if (a.rfind("--counts=", 0) == 0)
      counts = parse_list(val("--counts="));
    else if (a.rfind("--window=", 0) == 0)
      window = std::max<size_t>(1, std::stoull(val("--window=")));
    else if (a.rfind("--node-threads=", 0) == 0)
      node_threads = std::stoull(val("--node-threads="));
    else if (a.rfind("--durability=", 0) == 0)
      durability = val("--durability=");
    else if (a.rfind("--data=", 0) == 0)
      data_dir = val("--data=");
    else if (a.rfind("--torch=", 0) == 0)
      torch = val("--torch=");
    else if (a.rfind("--backend=", 0) == 0)
      backend = val("--backend=");
    else if (a.rfind("--payload=", 0) == 0)
      payload_mode = val("--payload=");
    else if (a.rfind("--sgemm-split=", 0) == 0)
      sgemm_split = val("--sgemm-split=");
    else if (a.rfind("--single-reps=", 0) == 0)
      single_reps = std::max<size_t>(1, std::stoull(val("--single-reps=")));
    else if (a.rfind("--rounds=", 0) == 0)
      rounds = std::max<size_t>(1, std::stoull(val("--rounds=")));
    else if (a.rfind("--hotswap=", 0) == 0)
      hotswap = std::stoull(val("--hotswap="));
    else if (a.rfind("--procedures=", 0) == 0)
      procedures_mode = val("--procedures=");
    else if (a.rfind("--inputs=", 0) == 0)
      input_count = std::stoull(val("--inputs="));
    else if (a.rfind("--compute-binary=", 0) == 0)
      compute_binary = val("--compute-binary=");
    else if (a.rfind("--compute-pin=", 0) == 0)
      compute_pin = val("--compute-pin=");
    else if (a.rfind("--cores=", 0) == 0)
      cores_mode = val("--cores=");
    else if (a.rfind("--compute-nice=", 0) == 0)
      compute_nice = std::stoi(val("--compute-nice="));
    else
      die("unknown argument '" + a + "'");
  }
  if (sgemm_split != "on" && sgemm_split != "off")
    die("--sgemm-split must be on or off, not '" + sgemm_split + "'");
  if (cores_mode != "shared" && cores_mode != "split")
    die("--cores must be shared or split, not '" + cores_mode + "'");
  if (cores_mode == "split") {
    auto all = allowed_cpus();
    if (all.size() < 2)
      die("--cores=split needs at least 2 CPUs; this process may use " + cpu_list_text(all));
    node_cpus.assign(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(all.size() / 2));
    compute_cpus.assign(all.begin() + static_cast<std::ptrdiff_t>(all.size() / 2), all.end());
  }
  if (payload_mode != "rows" && payload_mode != "copy")
    die("--payload must be rows or copy, not '" + payload_mode + "'");
  if (input_count < 1 || input_count > 64)
    die("--inputs must be 1 to 64");
  if (input_count > 1 && procedures_mode == "imaging")
    die("--inputs applies to --procedures=bench");
  storage::durability dur_mode;
  if (!storage::parse_durability(durability, dur_mode))
    die("--durability must be sync or async, not '" + durability + "'");

  // The models and one invocation's input each (random pixels: timing does not depend on them).
  std::vector<model_case> cases;
  std::mt19937 rng{7};
  auto pixels = [&](size_t n) {
    std::string s(n, '\0');
    for (auto& c : s)
      c = static_cast<char>(rng());
    return s;
  };
  auto tflite = data_dir + "/models/mobilenet_v2_1.0_224_quant.tflite";
  if (models.find("mnist") != std::string::npos) {
    model_case m{"mnist",
                 "bench-mnist",
                 must(make_mlp_file({784, 512, 10}, 1), "MLP"),
                 make_spec("x", tensor_dtype::u8, {1200, 784}),
                 pixels(1200 * 784),
                 "MLP 784-512-10, 1,200 images of 28x28 per invocation"};
    cases.push_back(std::move(m));
  }
  if (models.find("mobilenet") != std::string::npos) {
    auto file = read_file(tflite);
    if (file.empty())
      std::printf("mobilenet: skipped, %s is missing (see ../shared/data/README.md)\n",
                  tflite.c_str());
    else
      cases.push_back({"mobilenet", "bench-mobilenet", file,
                       make_spec("images", tensor_dtype::u8, {6, 224, 224, 3}),
                       pixels(6 * 224 * 224 * 3),
                       "MobileNetV2 1.0 from the TFLite file, 6 images of 224x224x3"});
  }
  if (models.find("detector") != std::string::npos) {
    auto file = make_centernet_file(tflite, 80, 1);
    if (!file)
      std::printf("detector: skipped: %s\n", describe(file.error()).c_str());
    else
      cases.push_back({"detector", "bench-detector", *file,
                       make_spec("images", tensor_dtype::u8, {1, 512, 512, 3}),
                       pixels(512 * 512 * 3),
                       "CenterNet-style on MobileNetV2 (backbone from the TFLite file, heads "
                       "randomly initialised: timing only), 1 image of 512x512x3"});
  }

  // --inputs: the other inputs, drawn after all the first ones (which stay as before).
  for (auto& m : cases)
    for (size_t k = 1; k < input_count; ++k)
      m.extra.push_back(pixels(m.bytes.size()));

  // The compute process, on the CPU executor; it and the node share the cores, or (split)
  // each has its own.
  unsigned cores = std::thread::hardware_concurrency();
  unsigned kernel_threads = compute_cpus.empty() ? cores : static_cast<unsigned>(compute_cpus.size());
  if (!compute_cpus.empty()) {
    // This process (the node's threads, started below, inherit it) on the node's CPUs; the
    // direct runs' kernel pool as large as the compute process's.
    if (auto e = run_on_cpus(node_cpus))
      die("--cores=split: " + describe(e));
    kernels::cpu_backend::set_threads(static_cast<int>(kernel_threads));
  }
  test::temp_dir dir;
  auto port = test::free_port();
  auto log = dir.path() + "/compute.log";
  std::vector<std::string> compute_args{
    compute_binary, "compute", "--listen", "127.0.0.1:" + std::to_string(port), "--backend",
    backend, "--memory-limit-mib", "2048", "--threads", "1", "--sgemm-split", sgemm_split,
    "--nice", std::to_string(compute_nice)};
  if (!compute_pin.empty()) // only when asked: an older --compute-binary lacks the flag
    compute_args.insert(compute_args.end(), {"--kernel-pin", compute_pin});
  if (!compute_cpus.empty())
    compute_args.insert(compute_args.end(), {"--cpus", cpu_list_text(compute_cpus)});
  kill_child_on_exit();
  test::child_process compute{compute_args, log};
  compute_child.store(compute.pid());
  // Before compute's destructor (which kills and reaps it): the exit path must not kill a
  // reused pid.
  struct forget_child {
    ~forget_child() { compute_child.store(-1); }
  } forget_compute_child;
  for (int i = 0;; ++i) {
    auto text = read_file(log);
    if (text.find("listening on") != std::string::npos)
      break;
    if (i > 600)
      die("comb compute did not start: " + text);
    std::this_thread::sleep_for(std::chrono::milliseconds{50});
  }
  std::printf(
    "perf_serving: %u cores; node in this process on %zu CAF worker(s), durability "
    "%s; `comb compute` in its own process (1 CAF worker, its CPU executor runs the "
    "kernels on the kernels' pool of %u threads, sgemm split %s, nice %d against the node's "
    "0); direct execution runs the same "
    "runner in this process on the same pool size; %zu invocations in flight; the "
    "outbox call %s\n",
    cores, node_threads, durability.c_str(), kernel_threads, sgemm_split.c_str(), compute_nice, window,
    procedures_mode == "imaging"
      ? "is the imaging app's (--procedures=imaging: the images put as `comb imaging load` puts them, a row each and their pixels one block per call's worth, which the call sends as stored; one row of labels per call written)"
    : payload_mode == "rows" ? "names its input row (--payload=rows)"
                             : "stores a copy of its input (--payload=copy)");
  if (!compute_cpus.empty())
    std::printf("cores split (--cores=split): the node (this process's CAF workers, RocksDB's "
                "threads and the client) on CPU(s) %s; `comb compute --cpus %s` on CPU(s) %s, "
                "as the paper's external process on its own machine; direct execution and "
                "PyTorch on CPU(s) %s with %u kernel thread(s)\n",
                cpu_list_text(node_cpus).c_str(), cpu_list_text(compute_cpus).c_str(),
                cpu_list_text(compute_cpus).c_str(), cpu_list_text(compute_cpus).c_str(),
                kernel_threads);
  else
    std::printf("cores shared (--cores=shared): the node, `comb compute` and direct execution "
                "may each run on every core\n");
  std::printf("compute: %s", read_file(log).c_str());

  system_config cfg{node_threads};
  add_compute_types(cfg);
  cfg.set("scheduler.policy", caf::atom("sharing"));
  caf::actor_system sys{cfg};
  node_config nc;
  nc.data_dir = dir.path() + "/data";
  nc.partitions = 2;
  nc.durability = dur_mode;
  nc.compute = endpoint{"127.0.0.1", static_cast<uint16_t>(port)};
  auto n = must(node::start(sys, nc, procedures()), "node");

  // The compute process's own counts (stats_atom): how tasks reached it, per phase.
  auto compute_actor = sys.middleman().remote_actor("127.0.0.1", port);
  auto compute_stats = [&]() -> json {
    json out = json::object();
    if (!compute_actor)
      return out;
    caf::scoped_actor self{sys};
    self->request(*compute_actor, std::chrono::seconds{10}, stats_atom::value)
      .receive([&](std::string& s) { out = json::parse(s, nullptr, false); },
               [&](caf::error&) {});
    return out.is_object() ? out : json::object();
  };
  auto print_transport = [&](const json& before, const json& after) {
    auto delta = [&](const char* key) -> long long {
      if (!after.contains(key) || !before.contains(key))
        return -1;
      return after[key].get<long long>() - before[key].get<long long>();
    };
    std::printf("    compute process: tasks through shared memory %lld, from blob files %lld (read "
                "in place %lld); early pool wakes %lld (-1: not counted by this binary)\n",
                delta("shm_tasks"), delta("blob_file_tasks"), delta("blob_file_in_place"),
                delta("early_pool_wakes"));
  };

  auto script = std::string{COMB_SOURCE_DIR} + "/perf/serving/serving_torch.py";
  struct row {
    std::string model;
    size_t count;
    double path_ms, direct_ms, torch_ms;
  };
  std::vector<row> rows;
  uint64_t next_n = 0;
  for (auto& m : cases) {
    std::printf("\n%s: %s\n", m.name.c_str(), m.note.c_str());
    put(*n, m.model, 1, m.file);
    activate(*n, m.model, 1);
    must(n->call("bench.put_input",
                 {{"model", m.model},
                  {"data", base64_encode(m.bytes)},
                  {"spec", specs_to_json({m.input})}},
                 "admin"),
         "input");
    for (size_t k = 1; k < input_count; ++k)
      must(n->call("bench.put_input",
                   {{"model", m.model},
                    {"key", input_key(m.model, k)},
                    {"data", base64_encode(m.input_bytes(k))},
                    {"spec", specs_to_json({m.input})}},
                   "admin"),
           "input " + std::to_string(k));
    if (procedures_mode == "imaging") {
      // The invocation's images as the app stores them (one put, so one block), the same pixels.
      const auto& shape = m.input.shape;
      int64_t count = shape[0];
      int64_t h = m.name == "mnist" ? 28 : shape[1], w = m.name == "mnist" ? 28 : shape[2];
      int64_t c = m.name == "mnist" ? 1 : shape[3];
      size_t per = static_cast<size_t>(h * w * c);
      json images = json::array();
      for (int64_t i = 0; i < count; ++i)
        images.push_back({{"width", w},
                          {"height", h},
                          {"channels", c},
                          {"pixels", base64_encode(std::string_view{m.bytes}.substr(
                                       static_cast<size_t>(i) * per, per))}});
      must(n->call("imaging.put_images",
                   {{"dataset", m.model}, {"first_index", 0}, {"images", std::move(images)}},
                   "admin"),
           "imaging.put_images");
    }
    auto kind = must(identify_model(m.file), "identify");
    auto runner = find_runner(kind);
    auto be = kernels::find_backend(backend);
    if (!be)
      die("backend " + backend + " is not available in this process");
    auto lm = must(runner->load(m.file, *be), "load in-process");
    std::vector<task_tensors> tasks(input_count);
    for (size_t k = 0; k < input_count; ++k) {
      tasks[k].tensors.specs = {m.input};
      const auto& b = m.input_bytes(k);
      tasks[k].tensors.bytes.assign(b.begin(), b.end());
    }
    const auto& task = tasks;
    // Warm up both sides (first-use allocations, connection, packed weights).
    std::vector<std::string> direct_outs(input_count);
    for (size_t k = 0; k < input_count; ++k)
      run_direct(*lm, {tasks[k]}, 1, &direct_outs[k]);
    run_path(*n, sys, m, 1, 1, next_n);
    if (procedures_mode == "imaging") {
      // The app wrote one answer per image, from this model, for the call just made.
      std::string call;
      {
        std::lock_guard<std::mutex> g{done_mtx};
        for (auto& [k, v] : n_of_call)
          if (v == static_cast<int64_t>(next_n - 1))
            call = k;
      }
      auto row = must(n->call("imaging.call", {{"call", call}}, "admin"), "imaging.call");
      if (row.value("state", "") != "done")
        die(m.name + ": the imaging call did not finish: " + row.dump());
      if (m.name != "detector") {
        auto labels = must(n->call("imaging.labels",
                                   {{"dataset", m.model}, {"from", 0}, {"limit", 1000}}, "admin"),
                           "imaging.labels");
        size_t answered = 0;
        for (const auto& e : labels)
          for (const auto& a : e.value("answers", json::array()))
            if (a.value("call", "") == call)
              ++answered;
        if (answered != labels.size() || labels.empty())
          die(m.name + ": the imaging call answered " + std::to_string(answered) + " of "
              + std::to_string(labels.size()) + " images");
      }
      std::printf("  the app's procedures ran: call %s done, one answer per image\n",
                  call.c_str());
    } else {
      // The path's output equals the direct one (the first output tensor's bytes), for each
      // input (the warm-up's invocation read one; one more invocation for each other).
      for (size_t k = 1; k < input_count; ++k)
        run_path(*n, sys, m, 1, 1, next_n);
      for (uint64_t i = next_n - input_count; i < next_n; ++i) {
        auto stored = must(n->call("bench.result", {{"model", m.model}, {"n", i}}, "admin"),
                           "result");
        auto path_out = base64_decode(stored.value("data", ""));
        if (!path_out || *path_out != direct_outs[i % input_count])
          die(m.name + ": the output through the path differs from direct execution's (input "
              + std::to_string(i % input_count) + ")");
      }
      std::printf("  output through the path equals direct execution's (%zu bytes%s)\n",
                  direct_outs[0].size(),
                  input_count > 1
                    ? (", each of " + std::to_string(input_count) + " distinct inputs").c_str()
                    : "");
    }
    double torch_per = -1;
    if (torch != "off") {
      torch_per = torch_ms(m.name, script, m.name == "mnist" ? 50 : 10, kernel_threads);
      if (torch_per < 0)
        std::printf("  PyTorch: not available (install python3-torch python3-torchvision: "
                    "COMB_SETUP_EXTRA=1 scripts/setup.sh)\n");
    }
    for (auto count : counts) {
      if (count == 1 && single_reps > 1) {
        // One invocation is a latency, not a throughput: the median of single_reps
        // alternating runs of each side (one run alone is at the mercy of a wake-up).
        comb::perf::turns d_own, d_split, path;
        auto first = static_cast<int64_t>(next_n);
        auto stats_before = compute_stats();
        auto c0 = cpu_seconds(0), k0 = cpu_seconds(compute.pid());
        // Each direct run follows a path run and each path run a direct one, so neither
        // side finds its own weights and buffers in the caches the other just used (a direct
        // run right after another read about 5% faster: MNIST on one core 4.74 against 4.98
        // ms).
        for (size_t rep = 0; rep < single_reps; ++rep) {
          kernels::cpu_backend::set_sgemm_split(false);
          // The input the path's next invocation reads.
          d_own.add(run_direct(*lm, task, 1, nullptr, next_n));
          path.add(run_path(*n, sys, m, 1, 1, next_n));
          kernels::cpu_backend::set_sgemm_split(true);
          d_split.add(run_direct(*lm, task, 1, nullptr, next_n));
          path.add(run_path(*n, sys, m, 1, 1, next_n));
        }
        auto c1 = cpu_seconds(0), k1 = cpu_seconds(compute.pid());
        auto stats_after = compute_stats();
        auto d = std::min(d_own.median(), d_split.median());
        auto p = path.median();
        row r{m.name, count, p * 1e3, d * 1e3, torch_per};
        rows.push_back(r);
        std::printf("  %-9s %5zu invocation:  path %9.2f ms [%.2f-%.2f] | direct %9.2f ms "
                    "(OpenBLAS threads %.2f, split %.2f) | overhead %+6.1f%% | medians of %zu "
                    "alternating runs (path %zu)",
                    m.name.c_str(), count, r.path_ms, path.min() * 1e3, path.max() * 1e3,
                    r.direct_ms, d_own.median() * 1e3, d_split.median() * 1e3,
                    (p / d - 1) * 100, single_reps, path.v.size());
        if (torch_per > 0)
          std::printf(" | PyTorch direct %9.2f ms/inv", torch_per);
        std::printf(" | CPU ms per rep (two path runs and both directs; node and directs in this process): %.2f, compute "
                    "%.2f\n",
                    (c1 - c0) / single_reps * 1e3, (k1 - k0) / single_reps * 1e3);
        print_stages(first, static_cast<int64_t>(next_n));
        print_transport(stats_before, stats_after);
        std::fflush(stdout);
        continue;
      }
      // Direct execution at its best: with OpenBLAS's own threads and with split sgemms
      // (kernels/detail/blas.hpp), before the path; after it again in the better mode.
      kernels::cpu_backend::set_sgemm_split(false);
      auto c0 = cpu_seconds(0);
      auto d_own = run_direct(*lm, task, count, nullptr);
      auto c_own = cpu_seconds(0);
      kernels::cpu_backend::set_sgemm_split(true);
      auto d_split = run_direct(*lm, task, count, nullptr);
      auto stats_before = compute_stats(); // not in the CPU measured
      auto c1 = cpu_seconds(0), k1 = cpu_seconds(compute.pid());
      auto node_t1 = threads_cpu(0), compute_t1 = threads_cpu(compute.pid());
      bool split_better = d_split < d_own;
      auto first = static_cast<int64_t>(next_n);
      auto p = run_path(*n, sys, m, count, window, next_n);
      auto c2 = cpu_seconds(0), k2 = cpu_seconds(compute.pid());
      auto node_t2 = threads_cpu(0), compute_t2 = threads_cpu(compute.pid());
      auto stats_after = compute_stats();
      kernels::cpu_backend::set_sgemm_split(split_better);
      auto d2 = run_direct(*lm, task, count, nullptr);
      auto d = std::min({d_own, d_split, d2});
      const auto p_first = p, d_first = d;
      // More rounds: path then direct (in the better mode), alternating; the medians count.
      comb::perf::turns path_turns, direct_turns, ratios;
      path_turns.add(p);
      direct_turns.add(std::min(d_own, d_split));
      direct_turns.add(d2);
      ratios.add(p_first / d_first);
      for (size_t round = 1; round < rounds; ++round) {
        auto pr = run_path(*n, sys, m, count, window, next_n);
        auto dr = run_direct(*lm, task, count, nullptr);
        path_turns.add(pr);
        direct_turns.add(dr);
        ratios.add(pr / dr);
      }
      if (rounds > 1) {
        p = path_turns.median();
        d = direct_turns.median();
      }
      row r{m.name, count, p / count * 1e3, d / count * 1e3, torch_per};
      rows.push_back(r);
      if (rounds > 1) {
        auto per_inv = [&](const comb::perf::turns& t) {
          comb::perf::turns x;
          for (auto v : t.v)
            x.add(v / static_cast<double>(count) * 1e3);
          return x.str("%.2f", "runs");
        };
        comb::perf::turns pct;
        for (auto v : ratios.v)
          pct.add((v - 1) * 100);
        std::printf("  %-9s %5zu invocations, %zu rounds: path %s ms/inv | direct %s ms/inv | "
                    "overhead of the medians %+6.1f%% | each round's path / its direct %s %%\n",
                    m.name.c_str(), count, rounds, per_inv(path_turns).c_str(),
                    per_inv(direct_turns).c_str(), (p / d - 1) * 100,
                    pct.str("%+.1f", "rounds").c_str());
      }
      std::printf("  %-9s %5zu invocations: path %9.2f ms/inv | direct %9.2f ms/inv "
                  "(before: OpenBLAS threads %.2f, split %.2f; after, %s %.2f) | overhead "
                  "%+6.1f%%%s",
                  m.name.c_str(), count, p_first / count * 1e3, d_first / count * 1e3,
                  d_own / count * 1e3,
                  d_split / count * 1e3, split_better ? "split" : "OpenBLAS threads",
                  d2 / count * 1e3, (p_first / d_first - 1) * 100,
                  rounds > 1 ? " (first round; its CPU and stages below)" : "");
      if (torch_per > 0)
        std::printf(" | PyTorch direct %9.2f ms/inv", torch_per);
      // Where the cores went (/proc, 10 ms ticks): the path's node and compute process
      // against direct execution's CPU for the same number of invocations.
      std::printf(" | CPU ms/inv: path node %.2f + compute %.2f, direct %.2f (OpenBLAS threads) "
                  "%.2f (split)\n",
                  (c2 - c1) / count * 1e3, (k2 - k1) / count * 1e3, (c_own - c0) / count * 1e3,
                  (c1 - c_own) / count * 1e3);
      // The same from the scheduler's ns account, by thread: which threads the path's CPU
      // went to (the node's CAF worker, its BASP multiplexer, CAF's clock, RocksDB's, ...).
      std::printf("    path CPU ms/inv by thread and times put on a CPU per inv (schedstat): node: %s | compute: %s\n",
                  cpu_by_thread(node_t1, node_t2, count).c_str(),
                  cpu_by_thread(compute_t1, compute_t2, count).c_str());
      print_stages(first, static_cast<int64_t>(next_n));
      print_transport(stats_before, stats_after);
      std::fflush(stdout);
    }
  }
  std::printf(
    "\nTable 1 on Comb (amortized latency per invocation; overhead = path / direct - 1)\n");
  std::printf("%-10s %6s %12s %12s %10s %12s\n", "model", "inv", "path ms", "direct ms", "overhead",
              "PyTorch ms");
  for (const auto& r : rows) {
    std::printf("%-10s %6zu %12.2f %12.2f %9.1f%%", r.model.c_str(), r.count, r.path_ms,
                r.direct_ms, (r.path_ms / r.direct_ms - 1) * 100);
    if (r.torch_ms > 0)
      std::printf(" %12.2f", r.torch_ms);
    std::printf("\n");
  }
  // Hot swap: the MNIST model's version 2 is activated while `hotswap` invocations run; no
  // invocation may fail, each result names its version, and the latency of the invocations
  // around the swap is compared with the same run without a swap.
  auto mnist = std::find_if(cases.begin(), cases.end(), [](auto& m) { return m.name == "mnist"; });
  if (hotswap > 0 && mnist != cases.end()) {
    auto pct = [](std::vector<double> v, double q) {
      std::sort(v.begin(), v.end());
      return v.empty() ? 0.0 : v[std::min(v.size() - 1, static_cast<size_t>(q * v.size()))];
    };
    auto latencies = [&](int64_t from, int64_t to, std::map<uint32_t, size_t>* versions) {
      std::vector<double> out;
      std::lock_guard<std::mutex> g{done_mtx};
      for (int64_t i = from; i < to; ++i) {
        auto d = done_at.find(i);
        if (d == done_at.end())
          die("invocation " + std::to_string(i) + " has no result");
        out.push_back(
          std::chrono::duration<double, std::milli>(d->second.first - submitted_at[i]).count());
        if (versions)
          ++(*versions)[d->second.second];
      }
      return out;
    };
    put(*n, mnist->model, 2, must(make_mlp_file({784, 512, 10}, 2), "MLP v2"));
    auto first = static_cast<int64_t>(next_n);
    run_path(*n, sys, *mnist, hotswap, window, next_n);
    auto steady = latencies(first, static_cast<int64_t>(next_n), nullptr);
    first = static_cast<int64_t>(next_n);
    int64_t swap_at = -1, swapped_at = -1;
    run_path(*n, sys, *mnist, hotswap, window, next_n, [&](size_t sent) {
      if (sent == hotswap / 3) {
        swap_at = static_cast<int64_t>(next_n);
        must(n->call("comb.model.activate", {{"name", mnist->model}, {"version", 2}}, "admin"),
             "activate v2");
      }
      if (swap_at >= 0 && swapped_at < 0 && sent % 8 == 0
          && active_version(*n, mnist->model, 2) == 2)
        swapped_at = static_cast<int64_t>(next_n);
    });
    std::map<uint32_t, size_t> versions;
    auto swap = latencies(first, static_cast<int64_t>(next_n), &versions);
    if (swapped_at < 0)
      swapped_at = static_cast<int64_t>(next_n);
    // The invocations submitted from the activation until it took effect, and a window after.
    auto around = latencies(swap_at,
                            std::min<int64_t>(static_cast<int64_t>(next_n),
                                              swapped_at + static_cast<int64_t>(window) * 4),
                            nullptr);
    std::printf("\nhot swap (MNIST, %zu invocations, version 2 activated after %zu): none "
                "failed; results by version:",
                hotswap, hotswap / 3);
    for (auto [v, c] : versions)
      std::printf(" v%u %zu", v, c);
    std::printf("\n  latency per invocation (submit to committed result) p50/p99: steady %.1f / "
                "%.1f ms | run with the swap %.1f / %.1f ms | the %zu around the swap %.1f / "
                "%.1f ms | p99 ratio around the swap / steady %.2fx\n",
                pct(steady, 0.5), pct(steady, 0.99), pct(swap, 0.5), pct(swap, 0.99), around.size(),
                pct(around, 0.5), pct(around, 0.99), pct(around, 0.99) / pct(steady, 0.99));
  }
  n.reset();
  return 0;
}
