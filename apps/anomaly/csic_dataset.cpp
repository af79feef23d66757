// Loading and framing of the CSIC 2010 data set (see csic_dataset.hpp).
#include "apps/anomaly/csic_dataset.hpp"

#include "base/errc.hpp"

#include <zlib.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace comb::anomaly {

std::string default_csic_dir(const std::string& repo_root) {
  if (const char* env = std::getenv("COMB_CSIC_DIR"); env != nullptr && *env != '\0')
    return env;
  return (std::filesystem::path{repo_root} / ".." / "shared" / "data" / "csic2010")
    .lexically_normal()
    .string();
}

caf::expected<std::string> read_gzip_file(const std::string& path, size_t max_bytes) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    return make_error(errc::not_found, "file not found: " + path);
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr)
    return make_error(errc::not_found, "cannot open " + path + ": " + std::strerror(errno));
  gzbuffer(f, 1 << 17);
  std::string out;
  char buf[1 << 16];
  for (;;) {
    int n = gzread(f, buf, sizeof(buf));
    if (n < 0) {
      int zerr = 0;
      std::string msg = gzerror(f, &zerr);
      gzclose(f);
      return make_error(errc::corrupt_data, "cannot inflate " + path + ": " + msg);
    }
    if (n == 0)
      break;
    if (out.size() + static_cast<size_t>(n) > max_bytes) {
      gzclose(f);
      return make_error(errc::too_large,
                        path + " inflates to more than " + std::to_string(max_bytes) + " bytes");
    }
    out.append(buf, static_cast<size_t>(n));
  }
  int rc = gzclose(f);
  if (rc != Z_OK)
    return make_error(errc::corrupt_data,
                      "cannot inflate " + path + ": truncated or corrupt gzip stream");
  return out;
}

namespace {

bool starts_request(std::string_view text, size_t pos) {
  auto rest = text.substr(pos);
  return rest.starts_with("GET http") || rest.starts_with("POST http")
         || rest.starts_with("PUT http");
}

} // namespace

std::vector<std::string_view> frame_requests(std::string_view text) {
  std::vector<std::string_view> out;
  size_t start = std::string_view::npos;
  size_t pos = 0;
  while (pos < text.size()) {
    if (starts_request(text, pos)) {
      if (start != std::string_view::npos)
        out.push_back(text.substr(start, pos - start));
      start = pos;
    }
    auto nl = text.find('\n', pos);
    if (nl == std::string_view::npos)
      break;
    pos = nl + 1;
  }
  if (start != std::string_view::npos)
    out.push_back(text.substr(start));
  return out;
}

caf::expected<csic_dataset> load_csic(const std::string& dir, size_t per_file_limit) {
  csic_dataset ds;
  for (auto& f : csic_files) {
    auto path = (std::filesystem::path{dir} / f.name).string();
    auto text = read_gzip_file(path);
    if (!text) {
      if (is(text.error(), errc::not_found))
        return make_error(errc::not_found,
                          "CSIC 2010 file " + path
                            + " is missing; get the data set from the Spanish National "
                              "Research Council (CSIC) and pass its folder with --data or "
                              "COMB_CSIC_DIR");
      return text.error();
    }
    auto file_index = static_cast<uint8_t>(ds.files.size());
    ds.files.push_back(path);
    auto frames = frame_requests(*text);
    if (frames.empty())
      return make_error(errc::corrupt_data, path
                                              + " holds no request (no line starting "
                                                "with 'GET http', 'POST http' or 'PUT http')");
    size_t n = per_file_limit == 0 ? frames.size() : std::min(per_file_limit, frames.size());
    ds.requests.reserve(ds.requests.size() + n);
    for (size_t i = 0; i < n; ++i) {
      auto parsed = parse_http_request(frames[i]);
      if (!parsed)
        return make_error(errc::corrupt_data, path + ", request " + std::to_string(i + 1) + ": "
                                                + describe(parsed.error()));
      labeled_request lr;
      lr.raw.assign(frames[i]);
      lr.request = std::move(*parsed);
      lr.label = f.label;
      lr.file = file_index;
      ds.requests.push_back(std::move(lr));
      ++ds.counts[f.label];
    }
  }
  return ds;
}

} // namespace comb::anomaly
