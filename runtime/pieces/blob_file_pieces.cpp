// Reading a pinned blob from its segment file in the compute process (see
// blob_file_pieces.hpp).
#include "runtime/pieces/blob_file_pieces.hpp"

#include "base/errc.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace comb::runtime {

namespace {

std::string sys_reason() { return std::strerror(errno); }

} // namespace

bool valid_blob_file_path(std::string_view path) {
  if (path.empty() || path.front() != '/' || path.size() > 4096)
    return false;
  // No "." or ".." component, no empty one (a doubled slash), no NUL.
  size_t start = 1;
  while (start <= path.size()) {
    auto end = path.find('/', start);
    if (end == std::string_view::npos)
      end = path.size();
    auto part = path.substr(start, end - start);
    if (part.empty() || part == "." || part == ".." || part.find('\0') != std::string_view::npos)
      return false;
    if (end == path.size()) {
      if (part.size() != 21 || part.substr(16) != ".blob")
        return false;
      for (char c : part.substr(0, 16))
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
          return false;
    }
    start = end + 1;
  }
  return true;
}

caf::expected<std::vector<char>> read_blob_file(const blob_file_ref& ref,
                                                std::vector<char> buffer) {
  if (!valid_blob_file_path(ref.path))
    return make_error(errc::protocol_error,
                      "blob-file piece names '" + ref.path.substr(0, 200)
                        + "', which is not an absolute path to a blob segment "
                          "(<16 hex digits>.blob)");
  int fd = ::open(ref.path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return make_error(errno == ENOENT ? errc::not_found : errc::unsupported,
                      "cannot open blob segment " + ref.path + ": " + sys_reason());
  struct closer {
    int fd;
    ~closer() { ::close(fd); }
  } guard{fd};
  struct stat st{};
  if (::fstat(fd, &st) != 0)
    return make_error(errc::unsupported, "cannot stat blob segment " + ref.path + ": "
                                           + sys_reason());
  if (!S_ISREG(st.st_mode) || st.st_uid != ::geteuid())
    return make_error(errc::unsupported, "blob segment " + ref.path
                                           + " is not a regular file of this process's user");
  auto file_size = static_cast<uint64_t>(st.st_size);
  if (ref.offset > file_size || file_size - ref.offset < ref.size)
    return make_error(errc::protocol_error,
                      "blob-file piece: " + std::to_string(ref.size) + " bytes at offset "
                        + std::to_string(ref.offset) + " lie outside " + ref.path + " ("
                        + std::to_string(file_size) + " bytes)");
  // resize() zeroes only what lies past the buffer's old size: a recycled buffer of at
  // least ref.size bytes is read into as it is.
  auto& out = buffer;
  out.resize(ref.size);
  // Hashed a chunk at a time right after its read, while the chunk is still in the cache
  // (the streaming XXH3 gives the one-shot digest the blob store recorded).
  constexpr uint64_t chunk = uint64_t{256} << 10;
  XXH3_state_t hash;
  XXH3_64bits_reset(&hash);
  uint64_t done = 0;
  while (done < ref.size) {
    auto want = std::min<uint64_t>(chunk, ref.size - done);
    auto n = ::pread(fd, out.data() + done, want, static_cast<off_t>(ref.offset + done));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return make_error(errc::storage_error,
                        "read of blob segment " + ref.path + " at offset "
                          + std::to_string(ref.offset + done) + ": "
                          + (n == 0 ? std::string{"the file ends early"} : sys_reason()));
    XXH3_64bits_update(&hash, out.data() + done, static_cast<size_t>(n));
    done += static_cast<uint64_t>(n);
  }
  if (XXH3_64bits_digest(&hash) != ref.xxh3)
    return make_error(errc::corrupt_data, "blob in " + ref.path + " at offset "
                                            + std::to_string(ref.offset)
                                            + ": the bytes do not match their recorded hash");
  return std::move(buffer);
}

} // namespace comb::runtime
