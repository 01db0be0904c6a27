#include "tools/cli/npy.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              ".npy data is read as stored: a big-endian host needs byte swaps");

namespace relattn_cli {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicBytes = 6;

struct Header {
  std::string descr;
  bool fortran_order = false;
  std::vector<int64_t> shape;
  bool has_descr = false, has_fortran_order = false, has_shape = false;
};

// A cursor over the header's Python dict literal:
// {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
class HeaderParser {
 public:
  explicit HeaderParser(const std::string& text) : s_(text) {}

  bool Parse(Header* h, std::string* error) {
    if (!Take('{')) return Fail("header is not a dict", error);
    while (!Take('}')) {
      std::string key;
      if (!String(&key) || !Take(':')) return Fail("header dict is malformed", error);
      bool ok = true;
      if (key == "descr") {
        ok = h->has_descr = String(&h->descr);
      } else if (key == "fortran_order") {
        ok = h->has_fortran_order = Bool(&h->fortran_order);
      } else if (key == "shape") {
        ok = h->has_shape = Shape(&h->shape);
      } else {
        return Fail("header has an unknown key '" + key + "'", error);
      }
      if (!ok) return Fail("header value of '" + key + "' is malformed", error);
      if (!Take(',') && !Peek('}')) return Fail("header dict is malformed", error);
    }
    if (!h->has_descr || !h->has_fortran_order || !h->has_shape) {
      return Fail("header lacks 'descr', 'fortran_order' or 'shape'", error);
    }
    return true;
  }

 private:
  static bool Fail(const std::string& message, std::string* error) {
    *error = message;
    return false;
  }
  void SkipSpace() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\t')) ++i_;
  }
  bool Peek(char c) {
    SkipSpace();
    return i_ < s_.size() && s_[i_] == c;
  }
  bool Take(char c) {
    if (!Peek(c)) return false;
    ++i_;
    return true;
  }
  bool String(std::string* out) {
    if (!Peek('\'') && !Peek('"')) return false;
    const char quote = s_[i_++];
    const size_t end = s_.find(quote, i_);
    if (end == std::string::npos) return false;
    *out = s_.substr(i_, end - i_);
    i_ = end + 1;
    return true;
  }
  bool Word(const char* word) {
    SkipSpace();
    if (s_.compare(i_, std::strlen(word), word) != 0) return false;
    i_ += std::strlen(word);
    return true;
  }
  bool Bool(bool* out) {
    if (Word("True")) return *out = true, true;
    if (Word("False")) return *out = false, true;
    return false;
  }
  bool Shape(std::vector<int64_t>* out) {
    if (!Take('(')) return false;
    while (!Take(')')) {
      SkipSpace();
      int64_t dim = 0;
      size_t digits = 0;
      for (; i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9'; ++i_, ++digits) {
        if (__builtin_mul_overflow(dim, 10, &dim) ||
            __builtin_add_overflow(dim, s_[i_] - '0', &dim))
          return false;
      }
      if (digits == 0) return false;
      out->push_back(dim);
      if (!Take(',') && !Peek(')')) return false;
    }
    return true;
  }

  const std::string& s_;
  size_t i_ = 0;
};

struct Descr {
  const char* text;
  NpyDtype dtype;
};
constexpr Descr kDescrs[] = {{"<f4", NpyDtype::kF32},
                             {"<f2", NpyDtype::kF16},
                             {"<i8", NpyDtype::kI64},
                             {"<f8", NpyDtype::kF64}};

bool ParseDescr(const std::string& descr, NpyDtype* dtype, std::string* error) {
  for (const Descr& d : kDescrs) {
    if (descr == d.text) return *dtype = d.dtype, true;
  }
  *error = "dtype '" + descr +
           "' is not supported (little-endian float32 '<f4', float16 '<f2', float64 '<f8' or int64 "
           "'<i8' only)";
  return false;
}

size_t ItemBytes(NpyDtype dtype) {
  return dtype == NpyDtype::kF32 ? 4 : dtype == NpyDtype::kF16 ? 2 : 8;
}

uint32_t LittleEndian(const std::string& s, size_t at, size_t bytes) {
  uint32_t v = 0;
  for (size_t b = 0; b < bytes; ++b) v |= uint32_t(uint8_t(s[at + b])) << (8 * b);
  return v;
}

}  // namespace

const char* NpyDtypeName(NpyDtype dtype) {
  switch (dtype) {
    case NpyDtype::kF32: return "float32";
    case NpyDtype::kF16: return "float16";
    case NpyDtype::kF64: return "float64";
    default: return "int64";
  }
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    s += (i ? ", " : "") + std::to_string(shape[i]);
  }
  return s + (shape.size() == 1 ? ",)" : ")");
}

bool ReadNpy(const std::string& path, NpyArray* out, std::string* error) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    *error = std::string("cannot open: ") + std::strerror(errno);
    return false;
  }
  const std::string s((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  if (file.bad()) {
    *error = std::string("cannot read: ") + std::strerror(errno);
    return false;
  }
  if (s.size() < kMagicBytes + 2 || s.compare(0, kMagicBytes, kMagic, kMagicBytes) != 0) {
    *error = "not a .npy file (no \\x93NUMPY magic)";
    return false;
  }
  const int major = uint8_t(s[kMagicBytes]);
  if (major < 1 || major > 3) {
    *error = "unsupported .npy format version " + std::to_string(major);
    return false;
  }
  const size_t len_bytes = major == 1 ? 2 : 4, text_at = kMagicBytes + 2 + len_bytes;
  if (s.size() < text_at || s.size() - text_at < LittleEndian(s, kMagicBytes + 2, len_bytes)) {
    *error = "truncated: the file ends inside its header";
    return false;
  }
  const size_t data_at = text_at + LittleEndian(s, kMagicBytes + 2, len_bytes);
  Header h;
  if (!HeaderParser(s.substr(text_at, data_at - text_at)).Parse(&h, error)) return false;
  if (!ParseDescr(h.descr, &out->dtype, error)) return false;
  if (h.fortran_order) {
    *error =
        "fortran_order arrays are not supported: save a C-order array "
        "(numpy.ascontiguousarray)";
    return false;
  }
  int64_t bytes = int64_t(ItemBytes(out->dtype));
  for (int64_t dim : h.shape) {
    if (__builtin_mul_overflow(bytes, dim, &bytes)) {
      *error = "shape " + ShapeString(h.shape) + " is too large";
      return false;
    }
  }
  const size_t stored = s.size() - data_at;
  if (uint64_t(bytes) != stored) {
    *error = std::string(uint64_t(bytes) > stored ? "truncated" : "trailing data") +
             ": the header's shape " + ShapeString(h.shape) + " needs " + std::to_string(bytes) +
             " data bytes, the file has " + std::to_string(stored);
    return false;
  }
  out->shape = h.shape;
  out->bytes.assign(s.begin() + data_at, s.end());
  return true;
}

bool WriteNpyF32(const std::string& path, const std::vector<int64_t>& shape, const float* data,
                 std::string* error) {
  std::string header =
      "{'descr': '<f4', 'fortran_order': False, 'shape': " + ShapeString(shape) + ", }";
  // magic, version, 2-byte length, dict, spaces, '\n': a multiple of 64 bytes.
  const size_t unpadded = kMagicBytes + 2 + 2 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  int64_t elements = 1;
  for (int64_t dim : shape) elements *= dim;

  const std::string partial = path + ".partial";
  FILE* f = std::fopen(partial.c_str(), "wb");
  if (!f) {
    *error = "cannot create " + partial + ": " + std::strerror(errno);
    return false;
  }
  std::string prefix(kMagic, kMagicBytes);
  prefix += {1, 0, char(header.size() & 0xff), char(header.size() >> 8)};  // v1.0, length
  bool ok = std::fwrite(prefix.data(), 1, prefix.size(), f) == prefix.size() &&
            std::fwrite(header.data(), 1, header.size(), f) == header.size() &&
            std::fwrite(data, sizeof(float), size_t(elements), f) == size_t(elements);
  ok = (std::fclose(f) == 0) && ok;
  if (ok && std::rename(partial.c_str(), path.c_str()) == 0) return true;
  *error = "cannot write " + path + ": " + std::strerror(errno);
  unlink(partial.c_str());
  return false;
}

}  // namespace relattn_cli
