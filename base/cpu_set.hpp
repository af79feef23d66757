// comb base: CPU sets for placing a process or a thread on chosen cores (`comb compute
// --cpus 1`, `perf_serving --cores=split`). A list is Linux's cpuset syntax: "1", "0,2",
// "2-7", "0-3,8".
#pragma once

#include <caf/expected.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace comb {

/// The CPUs of a list such as "0-3,8", sorted, each once. A malformed list, a CPU beyond the
/// kernel's set size or an empty list is a bad_config error that names the list.
caf::expected<std::vector<int>> parse_cpu_list(std::string_view list);

/// The list's text ("0-3,8") for messages.
std::string cpu_list_text(const std::vector<int>& cpus);

/// The CPUs the calling thread may run on (its affinity), sorted; empty when unknown.
std::vector<int> allowed_cpus();

/// Restricts the calling thread to `cpus` (threads it starts later inherit this). An error
/// names the CPUs and why (a CPU that is offline or outside the process's cpuset).
caf::error run_on_cpus(const std::vector<int>& cpus);

} // namespace comb
