#include "tools/cli/tensors.h"

#include "relattn/relattn.hpp"

namespace relattn_cli {
namespace {

// Fails unless a is float32 [tokens][heads], the row scales of data.
void CheckScales(const Args& args, const std::string& flag, const NpyArray& a,
                 const NpyArray& data) {
  if (a.dtype != NpyDtype::kF32 || a.shape.size() != 2 || a.shape[0] != data.shape[0] ||
      a.shape[1] != data.shape[1]) {
    args.Fail(Describe(args, flag, a) + ": must be float32 [" + std::to_string(data.shape[0]) +
              "][" + std::to_string(data.shape[1]) + "], one scale per (token, head) row");
  }
}

relattn_tensor Int8Tensor(const Args& args, const std::string& flag, const NpyArray& data,
                          NpyArray* scales) {
  const std::string scales_flag = flag + "-scales";
  if (!args.Has(scales_flag)) {
    args.Usage(Describe(args, flag, data) + ": an int8 " + flag + " needs its row scales, " +
               scales_flag + " FILE.npy (float32 [tokens][heads])");
  }
  *scales = Load(args, scales_flag);
  CheckScales(args, scales_flag, *scales, data);
  relattn_tensor t = relattn::TokensHeadsDim(data.bytes.data(), RELATTN_I8, int32_t(data.shape[1]),
                                             int32_t(data.shape[2]));
  t.row_scales = reinterpret_cast<const float*>(scales->bytes.data());
  t.scale_token_stride = data.shape[1];
  t.scale_head_stride = 1;
  return t;
}

constexpr int64_t kQ4BlockValues = 32, kQ4BlockBytes = 18;

// A uint8 file as RELATTN_Q4 blocks, rows of dim values (any whole number of blocks if dim is
// kAnyQ4Dim).
relattn_tensor Q4Tensor(const Args& args, const std::string& flag, const NpyArray& a, int64_t dim) {
  const std::string form = "q4_0 blocks [tokens][heads][dim / 32 * 18]";
  if (dim != kAnyQ4Dim && dim % kQ4BlockValues != 0) {
    args.Fail(Describe(args, flag, a) + ": Q4 (uint8) " + flag + " needs head_dim " +
              std::to_string(dim) + " (q's) to be a multiple of 32 (" + form + ")");
  }
  if (dim != kAnyQ4Dim && a.shape[2] != dim / kQ4BlockValues * kQ4BlockBytes) {
    args.Fail(Describe(args, flag, a) + ": Q4 (uint8) rows must be " +
              std::to_string(dim / kQ4BlockValues * kQ4BlockBytes) + " bytes, head_dim " +
              std::to_string(dim) + " (q's) / 32 * 18 (" + form + ")");
  }
  if (a.shape[2] % kQ4BlockBytes != 0) {
    args.Fail(Describe(args, flag, a) + ": Q4 (uint8) rows must be a multiple of 18 bytes, " +
              "dim / 32 blocks (" + form + ")");
  }
  return relattn::TokensHeadsDim(a.bytes.data(), RELATTN_Q4, int32_t(a.shape[1]),
                                 int32_t(a.shape[2]));
}

}  // namespace

int64_t ValueDim(const NpyArray& a, const relattn_tensor& t) {
  return t.dtype == RELATTN_Q4 ? a.shape[2] / kQ4BlockBytes * kQ4BlockValues : a.shape[2];
}

NpyArray Load(const Args& args, const std::string& flag) {
  NpyArray a;
  std::string error;
  if (!ReadNpy(args.String(flag), &a, &error))
    args.Fail(flag + " " + args.String(flag) + ": " + error);
  return a;
}

std::string Describe(const Args& args, const std::string& flag, const NpyArray& a) {
  return flag + " " + args.String(flag) + " (" + NpyDtypeName(a.dtype) + " " +
         ShapeString(a.shape) + ")";
}

relattn_tensor LoadTensor(const Args& args, const std::string& flag, bool int8_ok, NpyArray* data,
                          NpyArray* scales, int64_t q4_dim) {
  const NpyArray& a = *data = Load(args, flag);
  if (a.shape.size() != 3 || a.shape[0] < 1 || a.shape[1] < 1 || a.shape[2] < 1) {
    args.Fail(Describe(args, flag, a) + ": must be [tokens][heads][head_dim], each >= 1");
  }
  if (a.shape[1] > INT32_MAX || a.shape[2] > INT32_MAX) {
    args.Fail(Describe(args, flag, a) + ": heads and head_dim must fit in int32");
  }
  if (int8_ok && a.dtype == NpyDtype::kI8) return Int8Tensor(args, flag, a, scales);
  if (int8_ok && args.Has(flag + "-scales")) {
    args.Usage(flag + "-scales: " + Describe(args, flag, a) +
               " is not int8 (row scales go with an int8 " + flag + ")");
  }
  if (q4_dim != kNoQ4 && a.dtype == NpyDtype::kU8) return Q4Tensor(args, flag, a, q4_dim);
  if (a.dtype != NpyDtype::kF32 && a.dtype != NpyDtype::kF16) {
    args.Fail(Describe(args, flag, a) + ": must be float32 or float16" +
              (int8_ok ? ", or int8 with " + flag + "-scales" : "") +
              (q4_dim != kNoQ4 ? ", or uint8 q4_0 blocks" : ""));
  }
  const relattn_dtype dtype = a.dtype == NpyDtype::kF32 ? RELATTN_F32 : RELATTN_F16;
  return relattn::TokensHeadsDim(a.bytes.data(), dtype, int32_t(a.shape[1]), int32_t(a.shape[2]));
}

void CheckTable(const Args& args, const std::string& flag, const NpyArray& a, int64_t heads,
                int64_t* width_out, bool f16_ok) {
  const size_t rank = width_out ? 2 : 1;
  if (a.shape.size() != rank || a.shape[0] != heads) {
    args.Fail(Describe(args, flag, a) + ": must be [" + std::to_string(heads) + "]" +
              (width_out ? "[width]" : "") + " (one row per query head)");
  }
  if (a.dtype != NpyDtype::kF32 && !(f16_ok && a.dtype == NpyDtype::kF16)) {
    args.Fail(Describe(args, flag, a) + ": must be float32" + (f16_ok ? " or float16" : ""));
  }
  if (width_out) *width_out = a.shape[1];
}

const float* LoadSinks(const Args& args, int64_t heads, NpyArray* a) {
  if (!args.Has("--sinks")) return nullptr;
  *a = Load(args, "--sinks");
  CheckTable(args, "--sinks", *a, heads, nullptr, false);
  return reinterpret_cast<const float*>(a->bytes.data());
}

}  // namespace relattn_cli
