// comb::parse_cpu_list, cpu_list_text, allowed_cpus and run_on_cpus: taskset's list syntax,
// named errors for malformed lists, and a thread placed on one CPU stays there.
#include "base/cpu_set.hpp"

#include "base/errc.hpp"

#include <doctest/doctest.h>

#include <sched.h>

#include <thread>
#include <vector>

using comb::parse_cpu_list;

TEST_CASE("CPU lists parse as taskset writes them") {
  CHECK(*parse_cpu_list("1") == std::vector<int>{1});
  CHECK(*parse_cpu_list("0,2") == std::vector<int>{0, 2});
  CHECK(*parse_cpu_list("2-5") == std::vector<int>{2, 3, 4, 5});
  CHECK(*parse_cpu_list("8,0-2,1") == std::vector<int>{0, 1, 2, 8});
  CHECK(comb::cpu_list_text({0, 1, 2, 8}) == "0-2,8");
  CHECK(comb::cpu_list_text({1}) == "1");
  CHECK(comb::cpu_list_text({0, 2, 3}) == "0,2-3");
  CHECK(comb::cpu_list_text({}) == "");
}

TEST_CASE("a malformed CPU list is a bad_config error that names the list and the fault") {
  struct bad {
    const char* list;
    const char* says;
  };
  for (auto b : std::vector<bad>{{"", "an empty item"},
                                 {"1,", "an empty item"},
                                 {"x", "'x' is not a CPU number"},
                                 {"-1", "'-1' is not a range"},
                                 {"3-1", "ends before it starts"},
                                 {"1-", "'1-' is not a range"},
                                 {"0-99999", "beyond the"},
                                 {"1.5", "'1.5' is not a CPU number"}}) {
    CAPTURE(b.list);
    auto r = parse_cpu_list(b.list);
    REQUIRE(!r);
    CHECK(comb::is(r.error(), comb::errc::bad_config));
    auto text = comb::describe(r.error());
    CHECK(text.find(std::string{"CPU list '"} + b.list + "'") != std::string::npos);
    CHECK(text.find(b.says) != std::string::npos);
  }
}

TEST_CASE("run_on_cpus places the calling thread; threads it starts inherit the set") {
  auto all = comb::allowed_cpus();
  REQUIRE(!all.empty());
  std::thread t{[&] {
    auto last = std::vector<int>{all.back()};
    REQUIRE(!comb::run_on_cpus(last));
    CHECK(comb::allowed_cpus() == last);
    std::vector<int> child;
    std::thread inner{[&] { child = comb::allowed_cpus(); }};
    inner.join();
    CHECK(child == last);
  }};
  t.join();
  CHECK(comb::allowed_cpus() == all); // the other thread's placement is its own
  // A CPU that is not there is refused with the reason and the CPUs this process may use.
  auto err = comb::run_on_cpus({CPU_SETSIZE - 1});
  REQUIRE(err);
  CHECK(comb::describe(err).find("cannot run on CPUs " + std::to_string(CPU_SETSIZE - 1))
        != std::string::npos);
  CHECK(comb::describe(err).find("this process may use CPUs " + comb::cpu_list_text(all))
        != std::string::npos);
  CHECK(comb::run_on_cpus({}));
  CHECK(comb::allowed_cpus() == all);
}
