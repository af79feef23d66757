// Where the anomaly suites find CSIC 2010: $COMB_CSIC_DIR or ../shared/data/csic2010 from the
// project root. Suites skip visibly (doctest MESSAGE) when it is absent.
#pragma once

#include "apps/anomaly/csic_dataset.hpp"

#include <filesystem>
#include <string>

namespace comb::anomaly::test {

inline std::string csic_dir() {
  return default_csic_dir(COMB_SOURCE_DIR);
}

inline bool have_csic() {
  std::error_code ec;
  return std::filesystem::exists(std::filesystem::path{csic_dir()} / csic_files[2].name, ec);
}

} // namespace comb::anomaly::test
