// One attention call's options that relattn run and relattn cache attention share (with
// kSchemeOptions and kRopeOptions): the mask, the queries' positions and segments, the allowed
// pairs, soft-capping, sinks, --lse-out, --scale, --threads, --precision and --out-dtype; and
// the call itself, its output written to --out (and --lse-out).
#ifndef RELATTN_TOOLS_CLI_CALL_H_
#define RELATTN_TOOLS_CLI_CALL_H_

#include <cstdint>
#include <vector>

#include "relattn/relattn.h"
#include "tools/cli/allowed_mask.h"
#include "tools/cli/args.h"
#include "tools/cli/npy.h"
#include "tools/cli/rope_scaling.h"
#include "tools/cli/scheme.h"
#include "tools/cli/sequence_inputs.h"

namespace relattn_cli {

extern const std::vector<OptionSpec> kCallOptions;
extern const char kCallUsage[];  // the help lines of kCallOptions but --out-dtype

// The arrays the descriptor points into; they outlive it.
struct CallInputs {
  SchemeTables scheme;
  RopeScalingTables rope;
  NpyArray sinks;
  SequenceInputs sequence;
  AllowedMask allowed;
};

// What the options say before any file is read.
struct CallPlan {
  const SchemeSpec* scheme;
  int64_t threads;
  relattn_dtype out_dtype;  // --out-dtype
};

// --out-dtype f32|f16|bf16 (default f32): RELATTN_F32, RELATTN_F16 or RELATTN_BF16, written
// as a float32, float16 or uint16 (bf16 bits) .npy; a usage error otherwise.
relattn_dtype OutDtypeOf(const Args& args);
extern const char kOutDtypeUsage[];

// An output of dtype for shape [n_q][heads][dim]: its bytes, and the relattn_output over them.
struct OutputBuffer {
  OutputBuffer(relattn_dtype dtype, int64_t n_q, int32_t heads, int32_t dim);
  std::vector<unsigned char> bytes;
  relattn_output o;
};

// Checks the options that need no file (usage errors, status 2) and sets desc's mask, query
// start (when --q-start is given), scale, softcap, precision and rope (no scaling tables yet).
CallPlan ParseCallOptions(const Args& args, relattn_attention_desc* desc);

// Once desc holds n_q, the head counts and dimensions: loads the files the options name (bias
// tables, rope scaling tables, sinks, positions, segments, allowed pairs) for n_kv keys.
void LoadCallInputs(const Args& args, const CallPlan& plan, int64_t n_kv, CallInputs* in,
                    relattn_attention_desc* desc);

// Runs the call into a new [n_q][n_heads][v_head_dim] output of plan.out_dtype and writes it
// to --out (and the lse to --lse-out); fails (status 1) with the library's message.
void RunCall(const Args& args, const CallPlan& plan, relattn_attention_desc* desc);

// Writes out (shape [n_q][heads][dim]) to --out and, when lse is not null, lse ([n_q][heads])
// to --lse-out: lse first, removed again if out fails, so a failed command leaves neither.
void WriteOutputs(const Args& args, const std::vector<int64_t>& shape, const OutputBuffer& out,
                  const float* lse);

}  // namespace relattn_cli

#endif  // RELATTN_TOOLS_CLI_CALL_H_
