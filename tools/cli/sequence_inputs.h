// The per-token inputs and extra output of an attention call (relattn run, cache attention):
// --q-positions / --k-positions FILE.npy (int64 [tokens]), --q-segments / --k-segments FILE.npy
// (packed sequences: int64 ids in the int32 range, [tokens]), --first-valid-kv N, and --lse-out
// FILE.npy (float32 [tokens][heads], ln of each row's softmax denominator).
#ifndef RELATTN_TOOLS_CLI_SEQUENCE_INPUTS_H_
#define RELATTN_TOOLS_CLI_SEQUENCE_INPUTS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "relattn/relattn.h"
#include "tools/cli/args.h"
#include "tools/cli/npy.h"

namespace relattn_cli {

// The arrays desc points into; they outlive it.
struct SequenceInputs {
  NpyArray q_positions, k_positions;
  std::vector<int32_t> q_segments, k_segments;
  std::vector<float> lse;  // --lse-out: [n_q][n_heads]
};

// Sets *pos from --<which>-positions FILE.npy (int64 [n]) if given, loaded into *array; with
// --<which>-start too, a usage error.
void SetPositions(const Args& args, const std::string& which, int64_t n, NpyArray* array,
                  relattn_positions* pos);

// Sets desc's positions, segment ids, first_valid_kv and lse from the options, for the
// n_q and n_heads desc already holds and n_kv keys (a KV cache's length: desc->n_kv is 0
// then); fails (status 1) naming the file whose array does not fit. With --q-positions,
// --q-start is an error (likewise for k).
void SetSequenceInputs(const Args& args, int64_t n_kv, SequenceInputs* in,
                       relattn_attention_desc* desc);

}  // namespace relattn_cli

#endif  // RELATTN_TOOLS_CLI_SEQUENCE_INPUTS_H_
