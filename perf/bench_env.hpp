// comb::perf: what every benchmark shares (docs/BENCHMARKING.md). Header only, so that a
// benchmark gets it by including it; it links nothing (OpenBLAS is looked up at run time).
// - clean_blas_env: benchmarks run with OpenBLAS choosing its own kernels and with the same
//   glibc malloc settings for Comb and PyTorch. When the environment forces
//   OPENBLAS_CORETYPE or OPENBLAS_L2_SIZE (some shells here set Haswell and 512), or lacks
//   the malloc settings, the benchmark re-executes itself once with them fixed, then prints
//   the machine report.
// - print_machine: cores, CPU model and the flags that matter, the load, the BLAS and its
//   kernel, so that a reader can judge the figures.
// - turns: the median and range of repeated turns (a benchmark reports those, never a best
//   run).
// - baseline_env: the environment a baseline would have run alone (for its standalone
//   phase).
#pragma once

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <dlfcn.h>
#include <sched.h>
#include <unistd.h>

namespace comb::perf {

/// The glibc malloc settings benchmarks run with, Comb and its PyTorch baselines alike. On the
/// VMs here a first touch of fresh memory is expensive, and glibc by default returns large
/// freed blocks to the OS (mmap threshold, trim): PyTorch, which allocates every activation
/// afresh, then ran MobileNetV2 5–7x slower than on a machine without that cost. Keeping freed
/// memory in the heap (mmap threshold at glibc's maximum of 32 MiB, trim threshold 1 GiB, top
/// pad 256 MiB) puts PyTorch back at its reference speed (docs/BENCHMARKING.md).
inline constexpr const char* malloc_env[][2] = {
  {"MALLOC_MMAP_THRESHOLD_", "33554432"},
  {"MALLOC_TRIM_THRESHOLD_", "1073741824"},
  {"MALLOC_TOP_PAD_", "268435456"},
};

/// A shell prefix that runs a baseline as it would run alone in a quiet process: the OpenBLAS
/// overrides unset (BENCHMARKING.md) and without the harness's malloc settings, which are
/// ours, not the baseline's. The standalone phase uses it; the in-harness phase inherits the
/// harness's environment, and the ratio is taken against the better of the two.
inline std::string baseline_env() {
  std::string r = "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE";
  for (auto& kv : malloc_env)
    r += std::string{" -u "} + kv[0];
  return r + " ";
}

/// Median, minimum and maximum of repeated turns of one measurement.
struct turns {
  std::vector<double> v;
  void add(double x) { v.push_back(x); }
  bool empty() const { return v.empty(); }
  double median() const {
    if (v.empty())
      return -1;
    auto s = v;
    std::sort(s.begin(), s.end());
    size_t n = s.size();
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
  }
  double min() const { return v.empty() ? -1 : *std::min_element(v.begin(), v.end()); }
  double max() const { return v.empty() ? -1 : *std::max_element(v.begin(), v.end()); }
  /// "12.3 [11.9-14.0, 7 turns]" with `fmt` for each number (e.g. "%.3f"); `what` names
  /// the repetitions ("turns", "runs").
  std::string str(const char* fmt = "%.3f", const char* what = "turns") const {
    if (v.empty())
      return "n/a";
    auto f = [&](double x) {
      char b[64];
      std::snprintf(b, sizeof b, fmt, x);
      return std::string{b};
    };
    return f(median()) + " [" + f(min()) + "-" + f(max()) + ", " + std::to_string(v.size()) + " "
           + what + "]";
  }
};

namespace detail {

inline std::string cpuinfo_field(const std::string& key) {
  std::ifstream f("/proc/cpuinfo");
  for (std::string line; std::getline(f, line);)
    if (line.rfind(key, 0) == 0)
      if (auto c = line.find(':'); c != std::string::npos)
        return line.substr(c + 2);
  return {};
}

/// The shared libraries named like one of `names` that this process has mapped.
inline std::string mapped_libs(std::initializer_list<const char*> names) {
  std::ifstream f("/proc/self/maps");
  std::set<std::string> libs;
  for (std::string line; std::getline(f, line);)
    for (const char* n : names)
      if (line.find(n) != std::string::npos)
        libs.insert(line.substr(line.rfind('/') + 1));
  std::string out;
  for (auto& l : libs)
    out += (out.empty() ? "" : ",") + l;
  return out;
}

} // namespace detail

/// Prints the machine a benchmark ran on: cores (and those this process may use), CPU model,
/// the SIMD flags the kernels dispatch on, the load average (others' work on a shared
/// machine), and the BLAS: its configuration and kernel from OpenBLAS itself when it is
/// loaded (openblas_get_config / openblas_get_corename), else the BLAS library mapped.
inline void print_machine(const char* bench) {
  cpu_set_t set;
  int usable = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : -1;
  std::string flags_line = " " + detail::cpuinfo_field("flags") + " ", flags;
  for (const char* f : {"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile"})
    if (flags_line.find(std::string{" "} + f + " ") != std::string::npos)
      flags += (flags.empty() ? "" : " ") + std::string{f};
  double load[3] = {-1, -1, -1};
  if (getloadavg(load, 3) < 0)
    load[0] = load[1] = load[2] = -1;
  std::printf("%s machine: %u cores (%d usable), %s; flags: %s; load average %.2f %.2f %.2f\n",
              bench, std::thread::hardware_concurrency(), usable,
              detail::cpuinfo_field("model name").c_str(), flags.empty() ? "none" : flags.c_str(),
              load[0], load[1], load[2]);
  using str_fn = char* (*) ();
  using int_fn = int (*)();
  auto config = reinterpret_cast<str_fn>(dlsym(RTLD_DEFAULT, "openblas_get_config"));
  auto core = reinterpret_cast<str_fn>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  auto threads = reinterpret_cast<int_fn>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  std::string forced;
  for (const char* v :
       {"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"})
    if (const char* x = std::getenv(v))
      forced += std::string{"; "} + v + "=" + x + " in the environment";
  if (config && core)
    std::printf("%s BLAS: %s; kernel %s; %d threads (%s)%s\n", bench, config(), core(),
                threads ? threads() : -1,
                detail::mapped_libs({"libopenblas", "libblas.so"}).c_str(), forced.c_str());
  else {
    auto libs = detail::mapped_libs({"libopenblas", "libblas", "libmkl"});
    std::printf("%s BLAS: %s\n", bench, libs.empty() ? "none loaded (not used)" : libs.c_str());
  }
  std::fflush(stdout);
}

/// Call first thing in main(). Returns only when the environment is clean: no OpenBLAS
/// overrides, and the malloc settings above (glibc reads them at start, hence the re-exec).
/// Then prints the machine report (print_machine) under the name `bench`.
inline void clean_blas_env(char** argv, const char* bench = nullptr) {
  bool blas = std::getenv("OPENBLAS_CORETYPE") || std::getenv("OPENBLAS_L2_SIZE");
  bool malloc_set = true;
  for (auto& kv : malloc_env)
    malloc_set = malloc_set && std::getenv(kv[0]);
  if (!blas && malloc_set) {
    std::string name = bench ? bench : argv[0];
    if (auto s = name.rfind('/'); s != std::string::npos)
      name = name.substr(s + 1);
    print_machine(name.c_str());
    return;
  }
  unsetenv("OPENBLAS_CORETYPE");
  unsetenv("OPENBLAS_L2_SIZE");
  for (auto& kv : malloc_env)
    setenv(kv[0], kv[1], /*overwrite=*/0);
  std::fprintf(stderr,
               "(benchmark environment: OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset; "
               "MALLOC_MMAP_THRESHOLD_=%s MALLOC_TRIM_THRESHOLD_=%s MALLOC_TOP_PAD_=%s)\n",
               std::getenv("MALLOC_MMAP_THRESHOLD_"), std::getenv("MALLOC_TRIM_THRESHOLD_"),
               std::getenv("MALLOC_TOP_PAD_"));
  execv("/proc/self/exe", argv);
  std::perror("re-exec with the benchmark environment failed; going on");
}

/// CPU seconds (user + system) process `pid` used so far, from /proc/PID/stat; -1 when it is
/// not there (Linux only; 0 for pid 0: "this process" is /proc/self).
inline double process_cpu_seconds(pid_t pid) {
  std::ifstream in{pid == 0 ? std::string{"/proc/self/stat"}
                            : "/proc/" + std::to_string(pid) + "/stat"};
  std::string line;
  if (!std::getline(in, line))
    return -1;
  // Fields after the command name (which may hold spaces), field 3 onwards: utime is 14,
  // stime 15.
  auto close = line.rfind(')');
  if (close == std::string::npos)
    return -1;
  std::istringstream rest{line.substr(close + 2)};
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14)
      utime = std::stoull(field);
    if (i == 15)
      stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

} // namespace comb::perf
