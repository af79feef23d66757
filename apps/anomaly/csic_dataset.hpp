// comb::anomaly::csic_dataset: the CSIC 2010 HTTP data set read from its published .gz files
// (zlib, no temporary files), framed into single requests and labeled (0 normal, 1 anomalous).
// A plain value owned by its caller; the loader functions are stateless and thread-safe.
#pragma once

#include "apps/anomaly/http_request.hpp"

#include <caf/expected.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace comb::anomaly {

/// One request of the data set: raw bytes as framed, parsed form, label.
struct labeled_request {
  std::string raw;
  http_request request;
  /// 0 = normal, 1 = anomalous.
  int label = 0;
  /// Which file it came from (index into csic_dataset::files).
  uint8_t file = 0;
};

/// The whole data set (or a subset) in file order.
struct csic_dataset {
  std::vector<std::string> files;
  std::vector<labeled_request> requests;
  /// Requests of each label: counts[0] normal, counts[1] anomalous.
  size_t counts[2] = {0, 0};
};

/// The three published file names, in load order, and their labels.
struct csic_file {
  const char* name;
  int label;
};
inline constexpr csic_file csic_files[] = {
  {"normalTrafficTraining.txt.gz", 0},
  {"normalTrafficTest.txt.gz", 0},
  {"anomalousTrafficTest.txt.gz", 1},
};

/// Default data folder: $COMB_CSIC_DIR if set, else `<repo>/../shared/data/csic2010`, where
/// `<repo>` is `repo_root` (the project's root directory).
std::string default_csic_dir(const std::string& repo_root);

/// Reads a whole gzip (or plain) file into memory. Errors: errc::not_found when the file is
/// missing, errc::corrupt_data when it does not inflate, errc::too_large above `max_bytes`.
caf::expected<std::string> read_gzip_file(const std::string& path,
                                          size_t max_bytes = size_t{1} << 31);

/// Splits the text of one CSIC file into raw requests: each starts at a line beginning with
/// "GET http", "POST http" or "PUT http" and runs up to the next such line. Bytes before the
/// first request line are ignored. CRLF and LF line ends are both accepted.
std::vector<std::string_view> frame_requests(std::string_view text);

/// Loads the three files from `dir`. `per_file_limit` (0 = all) keeps only the first n
/// requests of each file, for fast tests. Errors name the missing file and where to get it,
/// or the request (file and number) that does not parse.
caf::expected<csic_dataset> load_csic(const std::string& dir, size_t per_file_limit = 0);

} // namespace comb::anomaly
