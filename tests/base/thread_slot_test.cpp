// thread_slot hands out one kept object per thread and Release type, a fresh one to a slot
// taken while it is busy, and readies the kept one with its Release when the slot goes.
#include "base/thread_slot.hpp"

#include <doctest/doctest.h>

#include <string>
#include <thread>

namespace {

int released = 0;

struct clear_kept {
  void operator()(std::string& s) const {
    ++released;
    if (s.capacity() > 1000)
      std::string{}.swap(s);
    else
      s.clear();
  }
};
struct clear_other {
  void operator()(std::string& s) const { s.clear(); }
};

using slot = comb::thread_slot<std::string, clear_kept>;

} // namespace

TEST_SUITE("base.thread_slot") {
  TEST_CASE("a thread_slot reuses the thread's object, cleared by its Release, capacity kept") {
    released = 0;
    const std::string* first = nullptr;
    {
      slot s;
      CHECK(s.reused());
      s.get().assign(100, 'x');
      first = &s.get();
    }
    CHECK(released == 1);
    slot s;
    CHECK(s.reused());
    CHECK(&s.get() == first);
    CHECK(s.get().empty());
    CHECK(s.get().capacity() >= 100);
  }

  TEST_CASE("a thread_slot taken meanwhile gets a fresh object; Release runs only on the kept one") {
    released = 0;
    slot outer;
    outer.get() = "outer value, longer than the short-string buffer";
    {
      slot inner;
      CHECK_FALSE(inner.reused());
      CHECK(&inner.get() != &outer.get());
      CHECK(inner.get().empty());
      inner.get() = "inner";
    }
    CHECK(released == 0);
    CHECK(outer.get() == "outer value, longer than the short-string buffer");
  }

  TEST_CASE("a thread_slot's Release drops capacity it does not keep") {
    {
      slot s;
      s.get().assign(5000, 'y');
    }
    slot s;
    CHECK(s.reused());
    CHECK(s.get().capacity() < 5000);
  }

  TEST_CASE("thread_slots of different Release types or threads hold different objects") {
    slot a;
    comb::thread_slot<std::string, clear_other> b;
    CHECK(a.reused());
    CHECK(b.reused());
    CHECK(&a.get() != &b.get());
    const std::string* there = nullptr;
    bool reused_there = false;
    std::thread t{[&] {
      slot c;
      reused_there = c.reused();
      there = &c.get();
    }};
    t.join();
    CHECK(reused_there); // the other thread's object was free although this one's is taken
    CHECK(there != &a.get());
  }
}
