#include "base/cpu_set.hpp"

#include "base/errc.hpp"

#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

namespace comb {

namespace {

caf::error bad_list(std::string_view list, const std::string& why) {
  return make_error(errc::bad_config, "CPU list '" + std::string{list} + "': " + why);
}

} // namespace

caf::expected<std::vector<int>> parse_cpu_list(std::string_view list) {
  std::vector<int> out;
  auto number = [&](std::string_view s, int& v) {
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    return ec == std::errc{} && p == s.data() + s.size() && v >= 0;
  };
  size_t at = 0;
  while (at <= list.size()) {
    auto comma = list.find(',', at);
    auto item = list.substr(at, comma == std::string_view::npos ? list.npos : comma - at);
    if (item.empty())
      return bad_list(list, "an empty item (expected CPU numbers such as 0-3,8)");
    int lo = 0, hi = 0;
    auto dash = item.find('-');
    if (dash == std::string_view::npos) {
      if (!number(item, lo))
        return bad_list(list, "'" + std::string{item} + "' is not a CPU number");
      hi = lo;
    } else if (!number(item.substr(0, dash), lo) || !number(item.substr(dash + 1), hi)) {
      return bad_list(list, "'" + std::string{item} + "' is not a range such as 2-7");
    } else if (hi < lo) {
      return bad_list(list, "the range '" + std::string{item} + "' ends before it starts");
    }
    if (hi >= CPU_SETSIZE)
      return bad_list(list, "CPU " + std::to_string(hi) + " is beyond the "
                              + std::to_string(CPU_SETSIZE) + " CPUs a set holds");
    for (int c = lo; c <= hi; ++c)
      out.push_back(c);
    if (comma == std::string_view::npos)
      break;
    at = comma + 1;
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::string cpu_list_text(const std::vector<int>& cpus) {
  std::string out;
  for (size_t i = 0; i < cpus.size();) {
    size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1)
      ++j;
    if (!out.empty())
      out += ',';
    out += std::to_string(cpus[i]);
    if (j > i)
      out += '-' + std::to_string(cpus[j]);
    i = j + 1;
  }
  return out;
}

std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> out;
  if (sched_getaffinity(0, sizeof set, &set) != 0)
    return out;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set))
      out.push_back(c);
  return out;
}

caf::error run_on_cpus(const std::vector<int>& cpus) {
  if (cpus.empty())
    return make_error(errc::bad_config, "no CPU to run on");
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : cpus)
    if (c >= 0 && c < CPU_SETSIZE)
      CPU_SET(c, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0) {
    int e = errno;
    auto allowed = allowed_cpus();
    return make_error(errc::bad_config,
                      "cannot run on CPUs " + cpu_list_text(cpus) + ": " + std::strerror(e)
                        + (allowed.empty()
                             ? std::string{}
                             : " (this process may use CPUs " + cpu_list_text(allowed) + ")"));
  }
  return {};
}

} // namespace comb
