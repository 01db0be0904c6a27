// NumPy .npy files (format versions 1.0, 2.0 and 3.0), the subset relattn exchanges:
// little-endian float32 ('<f4'), float16 ('<f2'), float64 ('<f8'), int64 ('<i8'), uint64 ('<u8'),
// int8 ('|i1'), uint8 ('|u1'), uint16 ('<u2') and bool ('|b1') arrays in C order.
// Fortran order, big-endian data and every other dtype are rejected with a message.
#ifndef RELATTN_TOOLS_CLI_NPY_H_
#define RELATTN_TOOLS_CLI_NPY_H_

#include <cstdint>
#include <string>
#include <vector>

namespace relattn_cli {

enum class NpyDtype { kF32, kF16, kI64, kF64, kU64, kI8, kBool, kU8, kU16 };

struct NpyArray {
  NpyDtype dtype = NpyDtype::kF32;
  std::vector<int64_t> shape;  // () for a scalar
  // Elements in C order, little-endian, as stored; 16-byte aligned (operator new).
  std::vector<unsigned char> bytes;
};

// "float32", "float16", "float64", "int64", "uint64", "int8", "bool", "uint8" or "uint16".
const char* NpyDtypeName(NpyDtype dtype);

// "(2, 3, 4)", "(3,)" or "()", as NumPy prints shapes.
std::string ShapeString(const std::vector<int64_t>& shape);

// Reads the file at path. On failure returns false and sets *error to one line without the path
// ("truncated: the header's shape (2, 3) needs 24 data bytes, the file has 20").
bool ReadNpy(const std::string& path, NpyArray* out, std::string* error);

// Writes a C-order array of dtype (format 1.0, header padded to 64 bytes as NumPy does). Writes
// a temporary file beside path and renames it over path, so that path is never left partial; on
// failure returns false, sets *error and leaves path as it was.
bool WriteNpy(const std::string& path, const std::vector<int64_t>& shape, NpyDtype dtype,
              const void* data, std::string* error);

}  // namespace relattn_cli

#endif  // RELATTN_TOOLS_CLI_NPY_H_
