// The arrays of an attention call, loaded from the .npy files options name: Q, K, V tensors
// ([tokens][heads][dim] float32, float16, or int8 with float32 [tokens][heads] row scales from
// --q-scales, --k-scales, --v-scales; K and V also uint8 q4_0 blocks) and [heads] or
// [heads][width] tables.
#ifndef RELATTN_TOOLS_CLI_TENSORS_H_
#define RELATTN_TOOLS_CLI_TENSORS_H_

#include <cstdint>
#include <string>

#include "relattn/relattn.h"
#include "tools/cli/args.h"
#include "tools/cli/npy.h"

namespace relattn_cli {

// The array in the file option `flag` names; fails (status 1) if it cannot be read.
NpyArray Load(const Args& args, const std::string& flag);

// "--q q.npy (float32 (2, 3, 4))", for messages about one array.
std::string Describe(const Args& args, const std::string& flag, const NpyArray& a);

// What LoadTensor makes of a uint8 file: an error (kNoQ4), or RELATTN_Q4 blocks
// [tokens][heads][dim / 32 * 18] whose rows hold any whole number of blocks (kAnyQ4Dim) or,
// given a dim > 0, exactly dim values (dim / 32 * 18 bytes; dim a multiple of 32).
constexpr int64_t kNoQ4 = -1, kAnyQ4Dim = 0;

// The [tokens][heads][dim] tensor of file `flag`, loaded into *data, each extent >= 1 and heads
// and dim in the int32 range. float32 or float16; with int8_ok also int8, whose row scales
// come from flag + "-scales" into *scales (an int8 file without them, or them without an int8
// file, is a usage error); with q4_dim >= 0 also uint8 q4_0 blocks (strides in bytes), checked
// as kNoQ4 says (status 1 if the rows do not fit).
relattn_tensor LoadTensor(const Args& args, const std::string& flag, bool int8_ok, NpyArray* data,
                          NpyArray* scales, int64_t q4_dim = kNoQ4);

// The number of values in a row of t, loaded from a: a's last extent, or for Q4 blocks the
// values they hold (32 per 18 bytes).
int64_t ValueDim(const NpyArray& a, const relattn_tensor& t);

// Fails unless a is [heads][width] (or [heads] when width_out is null), float32 (or float16
// when f16_ok), one row per query head; sets *width_out.
void CheckTable(const Args& args, const std::string& flag, const NpyArray& a, int64_t heads,
                int64_t* width_out, bool f16_ok);

// --sinks FILE.npy, float32 [heads], loaded into *a; nullptr when the option is absent.
const float* LoadSinks(const Args& args, int64_t heads, NpyArray* a);

}  // namespace relattn_cli

#endif  // RELATTN_TOOLS_CLI_TENSORS_H_
