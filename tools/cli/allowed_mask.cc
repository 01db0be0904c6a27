#include "tools/cli/allowed_mask.h"

#include <string>

#include "tools/cli/tensors.h"

namespace relattn_cli {
namespace {

// The bool [rows][cols] array a as rows of words uint64 (words >= 1).
std::vector<uint64_t> Pack(const NpyArray& a, int64_t* words) {
  const int64_t rows = a.shape[0], cols = a.shape[1];
  *words = cols > 0 ? (cols + 63) / 64 : 1;
  std::vector<uint64_t> bits(size_t(rows * *words));
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t b = 0; b < cols; ++b) {
      if (a.bytes[size_t(i * cols + b)])
        bits[size_t(i * *words + b / 64)] |= uint64_t(1) << (b % 64);
    }
  }
  return bits;
}

}  // namespace

void SetAllowedMask(const Args& args, int64_t n_q, int64_t n_kv, AllowedMask* allowed,
                    relattn_mask* mask) {
  if (!args.Has("--allowed")) {
    if (args.Has("--allowed-key-offset")) args.Usage("--allowed-key-offset needs --allowed");
    return;
  }
  const int64_t offset = args.Int64("--allowed-key-offset", 0, 0, INT64_MAX);
  const NpyArray& a = allowed->file = Load(args, "--allowed");
  const std::string q = std::to_string(n_q);
  const bool fits = offset > n_kv || (a.shape.size() == 2 && a.shape[1] == n_kv - offset);
  if (a.shape.size() == 2 && a.shape[0] == n_q && a.dtype == NpyDtype::kBool && fits) {
    allowed->packed = Pack(a, &mask->allowed_row_words);
    mask->allowed = allowed->packed.data();
  } else if (a.shape.size() == 2 && a.shape[0] == n_q && a.dtype == NpyDtype::kU64 &&
             a.shape[1] >= 1) {
    mask->allowed = reinterpret_cast<const uint64_t*>(a.bytes.data());
    mask->allowed_row_words = a.shape[1];
  } else {
    args.Fail(Describe(args, "--allowed", a) + ": must be bool [" + q + "][" +
              std::to_string(n_kv - offset) + "] (queries, keys from --allowed-key-offset " +
              std::to_string(offset) + " on) or packed uint64 [" + q + "][words >= 1]");
  }
  mask->allowed_key_offset = offset;
}

}  // namespace relattn_cli
