#include "tools/cli/npy.h"

#include <cstring>
#include <string_view>

#include "tools/cli/files.h"

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

struct DtypeInfo {
  const char* descr;  // NumPy's, as np.save writes it
  NpyDtype dtype;
  const char* name;
  size_t bytes;
};
constexpr DtypeInfo kDtypes[] = {
    {"<f4", NpyDtype::kF32, "float32", 4}, {"<f2", NpyDtype::kF16, "float16", 2},
    {"<i8", NpyDtype::kI64, "int64", 8},   {"<f8", NpyDtype::kF64, "float64", 8},
    {"<u8", NpyDtype::kU64, "uint64", 8},  {"|i1", NpyDtype::kI8, "int8", 1},
    {"|b1", NpyDtype::kBool, "bool", 1},   {"|u1", NpyDtype::kU8, "uint8", 1},
    {"<u2", NpyDtype::kU16, "uint16", 2}};

const DtypeInfo& Info(NpyDtype dtype) {
  for (const DtypeInfo& d : kDtypes) {
    if (d.dtype == dtype) return d;
  }
  return kDtypes[0];
}

bool ParseDescr(const std::string& descr, NpyDtype* dtype, std::string* error) {
  for (const DtypeInfo& d : kDtypes) {
    if (descr == d.descr) return *dtype = d.dtype, true;
  }
  *error = "dtype '" + descr +
           "' is not supported (little-endian float32 '<f4', float16 '<f2', float64 '<f8', int64 "
           "'<i8', uint64 '<u8', int8 '|i1', uint8 '|u1', uint16 '<u2' or bool '|b1' "
           "only)";
  return false;
}

uint32_t LittleEndian(std::string_view s, size_t at, size_t bytes) {
  uint32_t v = 0;
  for (size_t b = 0; b < bytes; ++b) v |= uint32_t(uint8_t(s[at + b])) << (8 * b);
  return v;
}

}  // namespace

const char* NpyDtypeName(NpyDtype dtype) { return Info(dtype).name; }

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    s += (i ? ", " : "") + std::to_string(shape[i]);
  }
  return s + (shape.size() == 1 ? ",)" : ")");
}

bool ReadNpy(const std::string& path, NpyArray* out, std::string* error) {
  AlignedBytes file;
  if (!ReadFile(path, &file, error)) return false;
  const std::string_view s(reinterpret_cast<const char*>(file.data()), file.size());
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
  if (!HeaderParser(std::string(s.substr(text_at, data_at - text_at))).Parse(&h, error))
    return false;
  if (!ParseDescr(h.descr, &out->dtype, error)) return false;
  if (h.fortran_order) {
    *error =
        "fortran_order arrays are not supported: save a C-order array "
        "(numpy.ascontiguousarray)";
    return false;
  }
  int64_t bytes = int64_t(Info(out->dtype).bytes);
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

bool WriteNpy(const std::string& path, const std::vector<int64_t>& shape, NpyDtype dtype,
              const void* data, std::string* error) {
  std::string header = std::string("{'descr': '") + Info(dtype).descr +
                       "', 'fortran_order': False, 'shape': " + ShapeString(shape) + ", }";
  // magic, version, 2-byte length, dict, spaces, '\n': a multiple of 64 bytes.
  const size_t unpadded = kMagicBytes + 2 + 2 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  int64_t elements = 1;
  for (int64_t dim : shape) elements *= dim;

  std::string prefix(kMagic, kMagicBytes);
  prefix += {1, 0, char(header.size() & 0xff), char(header.size() >> 8)};  // v1.0, length
  return WriteFileAtomically(path,
                             {{prefix.data(), prefix.size()},
                              {header.data(), header.size()},
                              {data, size_t(elements) * Info(dtype).bytes}},
                             error);
}

}  // namespace relattn_cli
