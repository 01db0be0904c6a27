// relattn run's per-token inputs and extra output: --q-positions / --k-positions FILE.npy
// (int64 [tokens]), --q-segments / --k-segments FILE.npy (packed sequences: int64 ids in the
// int32 range, [tokens]), --first-valid-kv N, and --lse-out FILE.npy (float32
// [tokens][heads], ln of each row's softmax denominator).
#ifndef RELATTN_TOOLS_CLI_SEQUENCE_INPUTS_H_
#define RELATTN_TOOLS_CLI_SEQUENCE_INPUTS_H_

#include <cstdint>
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

// Sets desc's positions, segment ids, first_valid_kv and lse from the options, for the
// n_q, n_kv and n_heads desc already holds; fails (status 1) naming the file whose array
// does not fit. With --q-positions, --q-start is an error (likewise for k).
void SetSequenceInputs(const Args& args, SequenceInputs* in, relattn_attention_desc* desc);

// Writes in.lse to --lse-out if given; fails (status 1) if it cannot.
void WriteLse(const Args& args, const SequenceInputs& in, const relattn_attention_desc& desc);

}  // namespace relattn_cli

#endif  // RELATTN_TOOLS_CLI_SEQUENCE_INPUTS_H_
