// Whole files in and out, with stdio: read into 64-byte aligned memory (a KV cache's alignment,
// enough for every array the tool reads), and written through PATH.partial renamed over PATH,
// so that PATH is never left partial and a failed write leaves it as it was.
#ifndef RELATTN_TOOLS_CLI_FILES_H_
#define RELATTN_TOOLS_CLI_FILES_H_

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace relattn_cli {

// Bytes at a 64-byte aligned address; zero-filled when created.
class AlignedBytes {
 public:
  AlignedBytes() = default;
  explicit AlignedBytes(size_t size);
  unsigned char* data() const { return data_.get(); }
  size_t size() const { return size_; }

 private:
  struct Free {
    void operator()(unsigned char* p) const;
  };
  std::unique_ptr<unsigned char, Free> data_;
  size_t size_ = 0;
};

// Reads the whole file at path. On failure returns false and sets *error to one line without
// the path ("cannot open: No such file or directory").
bool ReadFile(const std::string& path, AlignedBytes* out, std::string* error);

struct Piece {
  const void* data;
  size_t bytes;
};

// Writes the pieces, in order, to path.partial and renames it over path. On failure returns
// false, sets *error ("cannot write PATH: ...") and removes path.partial.
bool WriteFileAtomically(const std::string& path, const std::vector<Piece>& pieces,
                         std::string* error);

}  // namespace relattn_cli

#endif  // RELATTN_TOOLS_CLI_FILES_H_
