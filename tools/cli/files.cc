#include "tools/cli/files.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace relattn_cli {
namespace {

constexpr size_t kAlignment = 64;

std::string Errno() { return std::strerror(errno); }

// The rest of f (a pipe, a device) in chunks.
bool ReadStream(FILE* f, AlignedBytes* out) {
  std::string data;
  char chunk[1 << 16];
  for (size_t n; (n = std::fread(chunk, 1, sizeof(chunk), f)) > 0;) data.append(chunk, n);
  if (std::ferror(f)) return false;
  *out = AlignedBytes(data.size());
  std::memcpy(out->data(), data.data(), data.size());
  return true;
}

}  // namespace

AlignedBytes::AlignedBytes(size_t size) : size_(size) {
  const size_t rounded = (size + kAlignment - 1) / kAlignment * kAlignment;
  data_.reset(static_cast<unsigned char*>(std::aligned_alloc(kAlignment, rounded ? rounded : 64)));
  if (!data_) {
    std::fputs("relattn: out of memory\n", stderr);
    std::exit(1);
  }
  std::memset(data_.get(), 0, rounded);
}

void AlignedBytes::Free::operator()(unsigned char* p) const { std::free(p); }

bool ReadFile(const std::string& path, AlignedBytes* out, std::string* error) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return *error = "cannot open: " + Errno(), false;
  struct stat st;
  errno = 0;
  bool ok = fstat(fileno(f), &st) == 0 && !S_ISDIR(st.st_mode);
  if (!ok && S_ISDIR(st.st_mode)) errno = EISDIR;
  if (ok && S_ISREG(st.st_mode)) {
    AlignedBytes bytes{size_t(st.st_size)};
    ok = std::fread(bytes.data(), 1, bytes.size(), f) == bytes.size() && std::fgetc(f) == EOF;
    if (ok) *out = std::move(bytes);
  } else if (ok) {
    ok = ReadStream(f, out);
  }
  if (!ok) *error = "cannot read: " + (errno ? Errno() : std::string("the file changed"));
  std::fclose(f);
  return ok;
}

bool WriteFileAtomically(const std::string& path, const std::vector<Piece>& pieces,
                         std::string* error) {
  const std::string partial = path + ".partial";
  FILE* f = std::fopen(partial.c_str(), "wb");
  if (!f) return *error = "cannot create " + partial + ": " + Errno(), false;
  bool ok = true;
  for (const Piece& p : pieces) ok = ok && std::fwrite(p.data, 1, p.bytes, f) == p.bytes;
  ok = (std::fclose(f) == 0) && ok;
  if (ok && std::rename(partial.c_str(), path.c_str()) == 0) return true;
  *error = "cannot write " + path + ": " + Errno();
  unlink(partial.c_str());
  return false;
}

}  // namespace relattn_cli
