// Writes the console's test store (tests/apps/console/console_fixture.hpp) for the browser
// test: make_fixture FILE ROWS.
#include "tests/apps/console/console_fixture.hpp"

#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s FILE ROWS\n", argv[0]);
    return 2;
  }
  try {
    comb::test::console::make_store(argv[1], std::atoi(argv[2]));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_fixture: %s\n", e.what());
    return 1;
  }
  return 0;
}
