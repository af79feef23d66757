// Shared-memory pieces (runtime/pieces/shm_pieces.hpp): the writer's regions (first fit,
// coalescing, full), the reader's checks (names, bounds, tickets of reused regions), retired
// segments, and segments of dead processes removed. Real POSIX shared memory in /dev/shm.
#include "runtime/pieces/shm_pieces.hpp"

#include "base/errc.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

using namespace comb;
using namespace comb::runtime;

namespace {

std::vector<char> bytes_of(size_t n, char seed) {
  std::vector<char> v(n);
  std::iota(v.begin(), v.end(), seed);
  return v;
}

bool exists(const std::string& segment) {
  return ::access(("/dev/shm" + segment).c_str(), F_OK) == 0;
}

} // namespace

TEST_SUITE("runtime.pieces.shm_pieces") {
  TEST_CASE("segment names and loopback hosts") {
    CHECK(valid_shm_segment_name("/comb-pieces-123-0123456789abcdef"));
    CHECK_FALSE(valid_shm_segment_name("comb-pieces-123-0123456789abcdef"));
    CHECK_FALSE(valid_shm_segment_name("/comb-pieces--0123456789abcdef"));
    CHECK_FALSE(valid_shm_segment_name("/comb-pieces-12a-0123456789abcdef"));
    CHECK_FALSE(valid_shm_segment_name("/comb-pieces-123-0123456789ABCDEF"));
    CHECK_FALSE(valid_shm_segment_name("/comb-pieces-123-0123456789abcde"));
    CHECK_FALSE(valid_shm_segment_name("/comb-pieces-123-0123456789abcdef/../x"));
    CHECK_FALSE(valid_shm_segment_name("/PostgreSQL.1234"));
    CHECK(is_loopback_host("127.0.0.1"));
    CHECK(is_loopback_host("127.3.2.1"));
    CHECK(is_loopback_host("localhost"));
    CHECK(is_loopback_host("::1"));
    CHECK_FALSE(is_loopback_host("10.0.0.1"));
    CHECK_FALSE(is_loopback_host("128.0.0.1"));
    CHECK_FALSE(is_loopback_host("compute.example"));
  }

  TEST_CASE("a region written by the arena reads back whole in the reader") {
    auto a = shm_arena::create(size_t{1} << 20);
    REQUIRE_MESSAGE(a, describe(a.error()));
    auto& arena = **a;
    CHECK(valid_shm_segment_name(arena.name()));
    CHECK(exists(arena.name()));
    auto in = bytes_of(300000, 3);
    auto r = arena.put(in.data(), in.size());
    REQUIRE(r);
    CHECK(r->size == in.size());
    shm_reader reader;
    auto out = reader.read(*r);
    REQUIRE_MESSAGE(out, describe(out.error()));
    CHECK(*out == in);
    // An empty payload is a region too.
    auto e = arena.put(nullptr, 0);
    REQUIRE(e);
    auto eout = reader.read(*e);
    REQUIRE(eout);
    CHECK(eout->empty());
    CHECK(reader.mapped() == 1);
  }

  TEST_CASE("regions: first fit, full gives nothing, released regions coalesce") {
    auto a = shm_arena::create(size_t{1} << 20);
    REQUIRE(a);
    auto& arena = **a;
    auto chunk = bytes_of((size_t{1} << 18) - 64, 1); // with its header: exactly 256 KiB
    std::vector<shm_ref> refs;
    for (int i = 0; i < 4; ++i) {
      auto r = arena.put(chunk.data(), chunk.size());
      REQUIRE(r);
      refs.push_back(*r);
    }
    CHECK(arena.used() == arena.capacity());
    CHECK_FALSE(arena.put(chunk.data(), 1));
    // Free two neighbours in the middle: one region of twice the size fits there.
    arena.release(refs[1]);
    arena.release(refs[2]);
    auto big = bytes_of(2 * chunk.size(), 5);
    auto r = arena.put(big.data(), big.size());
    REQUIRE(r);
    CHECK(r->offset == refs[1].offset);
    shm_reader reader;
    auto out = reader.read(*r);
    REQUIRE(out);
    CHECK(*out == big);
    arena.release(*r);
    arena.release(refs[0]);
    arena.release(refs[3]);
    CHECK(arena.used() == 0);
    // Everything coalesced back into one free range: the largest region fits again.
    auto whole = bytes_of(arena.capacity() - shm_region_header, 9);
    CHECK(arena.put(whole.data(), whole.size()));
  }

  TEST_CASE("the reader refuses what it must not read: bad names, other bounds, reused regions") {
    auto a = shm_arena::create(size_t{1} << 16);
    REQUIRE(a);
    auto& arena = **a;
    auto in = bytes_of(1000, 7);
    auto r = arena.put(in.data(), in.size());
    REQUIRE(r);
    shm_reader reader;

    auto bad_name = *r;
    bad_name.segment = "/PostgreSQL.1";
    auto e1 = reader.read(bad_name);
    REQUIRE_FALSE(e1);
    CHECK(is(e1.error(), errc::protocol_error));
    CHECK(describe(e1.error()).find("not of the form") != std::string::npos);

    auto missing = *r;
    missing.segment = "/comb-pieces-1-0000000000000000";
    auto e2 = reader.read(missing);
    REQUIRE_FALSE(e2);
    CHECK(is(e2.error(), errc::unsupported)); // the sender falls back to TCP
    CHECK(describe(e2.error()).find("cannot open") != std::string::npos);

    auto beyond = *r;
    beyond.size = arena.capacity();
    auto e3 = reader.read(beyond);
    REQUIRE_FALSE(e3);
    CHECK(is(e3.error(), errc::protocol_error));
    CHECK(describe(e3.error()).find("outside segment") != std::string::npos);

    auto unaligned = *r;
    unaligned.offset += 1;
    CHECK_FALSE(reader.read(unaligned));

    auto wrong_ticket = *r;
    wrong_ticket.ticket += 1;
    auto e4 = reader.read(wrong_ticket);
    REQUIRE_FALSE(e4);
    CHECK(describe(e4.error()).find("no longer holds") != std::string::npos);

    // Released, then reused for another task: the old reference no longer reads.
    REQUIRE(reader.read(*r));
    arena.release(*r);
    CHECK_FALSE(reader.read(*r));
    auto other = bytes_of(1000, 11);
    auto r2 = arena.put(other.data(), other.size());
    REQUIRE(r2);
    CHECK(r2->offset == r->offset);
    CHECK_FALSE(reader.read(*r));
    auto ok = reader.read(*r2);
    REQUIRE(ok);
    CHECK(*ok == other);
  }

  TEST_CASE("view: the region's bytes in place, intact until the writer releases or reuses it") {
    auto a = shm_arena::create(size_t{1} << 16);
    REQUIRE(a);
    auto& arena = **a;
    auto in = bytes_of(3000, 5);
    auto r = arena.reserve(in.size());
    REQUIRE(r);
    std::memcpy(r->second, in.data(), in.size());
    shm_reader reader;
    auto w = reader.view(r->first);
    REQUIRE(w);
    CHECK(w->external());
    CHECK(w->size() == in.size());
    CHECK(std::equal(w->begin(), w->end(), in.begin(), in.end()));
    CHECK(w->intact());
    // In place: the writer's bytes, not a copy (the reader's mapping shows a change at once).
    r->second[17] = static_cast<char>(r->second[17] + 1);
    CHECK(w->data()[17] == r->second[17]);
    CHECK(w->intact());
    // Released: no longer intact (nothing computed from it may be answered) ...
    arena.release(r->first);
    CHECK_FALSE(w->intact());
    CHECK_FALSE(reader.view(r->first));
    // ... nor once the region holds another task's bytes, even of the same size.
    auto other = bytes_of(3000, 9);
    auto r2 = arena.put(other.data(), other.size());
    REQUIRE(r2);
    CHECK(r2->offset == r->first.offset);
    CHECK_FALSE(w->intact());
    auto w2 = reader.view(*r2);
    REQUIRE(w2);
    CHECK(w2->intact());
    CHECK(std::equal(w2->begin(), w2->end(), other.begin(), other.end()));

    // The checks read() makes before it copies: names, bounds, tickets.
    auto bad_name = *r2;
    bad_name.segment = "/PostgreSQL.1";
    CHECK_FALSE(reader.view(bad_name));
    auto beyond = *r2;
    beyond.size = arena.capacity();
    auto e = reader.view(beyond);
    REQUIRE_FALSE(e);
    CHECK(describe(e.error()).find("outside segment") != std::string::npos);
    auto wrong_ticket = *r2;
    wrong_ticket.ticket += 1;
    CHECK_FALSE(reader.view(wrong_ticket));
    auto wrong_size = *r2;
    wrong_size.size -= 1;
    CHECK_FALSE(reader.view(wrong_size));
  }

  TEST_CASE("a window keeps its segment mapped past the reader's own mapping and the reader") {
    auto a = shm_arena::create(size_t{1} << 16);
    auto b = shm_arena::create(size_t{1} << 16);
    REQUIRE(a);
    REQUIRE(b);
    auto in = bytes_of(4096, 3);
    auto ra = (*a)->put(in.data(), in.size());
    auto rb = (*b)->put(in.data(), in.size());
    REQUIRE(ra);
    REQUIRE(rb);
    caf::expected<payload_buffer> w{payload_buffer{}};
    {
      shm_reader reader{1}; // one mapping kept: b's pushes a's out
      w = reader.view(*ra);
      REQUIRE(w);
      REQUIRE(reader.view(*rb));
      CHECK(reader.mapped() == 1);
      CHECK(std::equal(w->begin(), w->end(), in.begin(), in.end()));
    }
    // The reader is gone; the window still reads (and checks) a's region.
    CHECK(std::equal(w->begin(), w->end(), in.begin(), in.end()));
    CHECK(w->intact());
    (*a)->release(*ra);
    CHECK_FALSE(w->intact());
  }

  TEST_CASE("a retired segment: its name is gone, a reader that mapped it still reads, and drops "
            "it when the writer's next segment arrives") {
    shm_reader reader;
    auto a = shm_arena::create(size_t{1} << 16);
    REQUIRE(a);
    auto in = bytes_of(5000, 2);
    auto r = (*a)->put(in.data(), in.size());
    REQUIRE(r);
    REQUIRE(reader.read(*r));
    (*a)->retire();
    CHECK_FALSE(exists((*a)->name()));
    auto again = reader.read(*r);
    REQUIRE(again);
    CHECK(*again == in);
    auto b = shm_arena::create(size_t{1} << 16);
    REQUIRE(b);
    auto r2 = (*b)->put(in.data(), in.size());
    REQUIRE(r2);
    REQUIRE(reader.read(*r2));
    CHECK(reader.mapped() == 1);
    // The destructor removes the name of a segment still linked.
    auto name = (*b)->name();
    b->reset();
    CHECK_FALSE(exists(name));
  }

  TEST_CASE("segments of a process that died (kill -9, no unlink) are removed by the next "
            "arena") {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    auto pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::close(fds[0]);
      auto a = shm_arena::create(size_t{1} << 16);
      std::string name = a ? (*a)->name() : std::string{};
      [[maybe_unused]] auto n = ::write(fds[1], name.data(), name.size());
      ::close(fds[1]);
      ::_exit(0); // no destructors: as after kill -9
    }
    ::close(fds[1]);
    char buf[128] = {};
    auto n = ::read(fds[0], buf, sizeof buf - 1);
    ::close(fds[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    REQUIRE(n > 0);
    std::string name{buf, static_cast<size_t>(n)};
    REQUIRE(exists(name));
    auto a = shm_arena::create(size_t{1} << 16);
    REQUIRE(a);
    CHECK_FALSE(exists(name));
    CHECK(exists((*a)->name()));
  }
}
