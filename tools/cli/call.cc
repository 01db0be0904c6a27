#include "tools/cli/call.h"

#include <pthreadpool.h>

#include <cstdio>
#include <string>

#include "relattn/relattn.hpp"
#include "tools/cli/tensors.h"

namespace relattn_cli {

const std::vector<OptionSpec> kCallOptions = {{"--causal", 0},     {"--window", 1},
                                              {"--valid-kv", 1},   {"--first-valid-kv", 1},
                                              {"--q-start", 1},    {"--q-positions", 1},
                                              {"--q-segments", 1}, {"--k-segments", 1},
                                              {"--allowed", 1},    {"--allowed-key-offset", 1},
                                              {"--softcap", 1},    {"--sinks", 1},
                                              {"--lse-out", 1},    {"--scale", 1},
                                              {"--threads", 1},    {"--precision", 1},
                                              {"--out-dtype", 1}};

const char kOutDtypeUsage[] =
    R"(  --out-dtype f32|f16|bf16  the output's dtype: float32 (default), float16, or bfloat16
                        (rounded to nearest even) written as uint16 bits
)";

const char kCallUsage[] =
    R"(  --softcap C           logit soft-capping (Gemma 2: 50): content scores x = scale * q . k
                        become C tanh(x / C) before the bias and the mask (default 0: off)
  --sinks FILE.npy      learned attention sinks (gpt-oss), float32 [heads]: one more logit
                        per head in the softmax's denominator, no value behind it
  --causal              causal mask; also selects the causal bias form unless --bidirectional
  --window W            sliding window: 0 <= q - k < W with --causal, |q - k| < W without
  --valid-kv N          keys N.. are hidden (1..kv_tokens; default all)
  --first-valid-kv N    keys before N are hidden (left padding; default 0)
  --q-start P           int64 position of the first query (default 0; over a KV cache: the
                        position after its last token)
  --q-positions FILE.npy  int64 [tokens]: each query's position (instead of --q-start)
  --q-segments FILE.npy, --k-segments FILE.npy    packed sequences: int64 [tokens] ids
                        (int32 range); a query sees a key only where the ids are equal
  --allowed FILE.npy    allowed pairs (tree attention): bool [tokens][kv_tokens - offset], or
                        packed uint64 [tokens][words] (bit b % 64 of word b / 64): query i
                        sees key offset + b only where bit b of its row is set
  --allowed-key-offset N  the offset: keys before it are not restricted (default 0)
  --lse-out FILE.npy    also write float32 [tokens][heads], ln of each row's softmax
                        denominator (-inf for a row that saw no key)
  --scale S             multiplies q.k (default 1/sqrt(head_dim))
  --threads T           threads (default 1; 0: one per core)
  --precision exact|fast  exact (default): f32 arithmetic; fast: reduced-precision products
                        where the CPU has them (bf16 inputs on AVX512-BF16: P.V in bf16)
)";

relattn_dtype OutDtypeOf(const Args& args) {
  const std::string name = args.String("--out-dtype", "f32");
  if (name == "f32") return RELATTN_F32;
  if (name == "f16") return RELATTN_F16;
  if (name == "bf16") return RELATTN_BF16;
  args.Usage("--out-dtype '" + name + "': must be f32, f16 or bf16");
}

OutputBuffer::OutputBuffer(relattn_dtype dtype, int64_t n_q, int32_t heads, int32_t dim)
    : bytes(size_t(n_q) * size_t(heads) * size_t(dim) * (dtype == RELATTN_F32 ? 4 : 2)),
      o(relattn::OutputTokensHeadsDim(bytes.data(), dtype, heads, dim)) {}

CallPlan ParseCallOptions(const Args& args, relattn_attention_desc* desc) {
  desc->mask.causal = args.Has("--causal");
  desc->mask.window = args.Int64("--window", 0, 0, INT64_MAX);
  desc->mask.n_valid_kv = args.Int64("--valid-kv", 0, 1, INT64_MAX);
  desc->q_pos.start = args.Int64("--q-start", 0, INT64_MIN, INT64_MAX);
  desc->scale = float(args.Double("--scale", 0.0));
  const CallPlan plan{&SchemeOf(args), args.Int64("--threads", 1, 0, 1024), OutDtypeOf(args)};
  desc->rope = RopeOf(args);
  desc->softcap = float(args.Double("--softcap", 0.0));  // its range is the library's to judge
  const std::string precision = args.String("--precision", "exact");
  if (precision != "exact" && precision != "fast") {
    args.Usage("--precision '" + precision + "': must be exact or fast");
  }
  desc->precision = precision == "fast" ? RELATTN_PRECISION_FAST : RELATTN_PRECISION_EXACT;
  return plan;
}

void LoadCallInputs(const Args& args, const CallPlan& plan, int64_t n_kv, CallInputs* in,
                    relattn_attention_desc* desc) {
  SetBias(args, *plan.scheme, &in->scheme, desc);
  if (desc->rope.pairing != RELATTN_ROPE_NONE) SetRopeScaling(args, &in->rope, &desc->rope);
  desc->sinks = LoadSinks(args, desc->n_heads, &in->sinks);
  SetSequenceInputs(args, n_kv, &in->sequence, desc);
  SetAllowedMask(args, desc->n_q, n_kv, &in->allowed, &desc->mask);
}

void RunCall(const Args& args, const CallPlan& plan, relattn_attention_desc* desc) {
  const OutputBuffer out(plan.out_dtype, desc->n_q, desc->n_heads, desc->v_head_dim);
  desc->o = out.o;
  pthreadpool_t pool = plan.threads == 1 ? nullptr : pthreadpool_create(size_t(plan.threads));
  relattn_threads threads{};
  if (pool && relattn_threads_from_pthreadpool(pool, &threads) != RELATTN_OK) {
    pthreadpool_destroy(pool);
    pool = nullptr;
  }
  relattn::Workspace workspace;
  const relattn::Status status = relattn::Attention(*desc, workspace, pool ? &threads : nullptr);
  if (pool) pthreadpool_destroy(pool);
  if (!status) args.Fail(status.ToString());
  WriteOutputs(args, {desc->n_q, desc->n_heads, desc->v_head_dim}, out, desc->lse);
}

void WriteOutputs(const Args& args, const std::vector<int64_t>& shape, const OutputBuffer& out,
                  const float* lse) {
  std::string error;
  if (lse &&
      !WriteNpy(args.String("--lse-out"), {shape[0], shape[1]}, NpyDtype::kF32, lse, &error)) {
    args.Fail("--lse-out: " + error);
  }
  const NpyDtype dtype = out.o.dtype == RELATTN_F32   ? NpyDtype::kF32
                         : out.o.dtype == RELATTN_F16 ? NpyDtype::kF16
                                                      : NpyDtype::kU16;  // bf16 bits
  if (!WriteNpy(args.String("--out"), shape, dtype, out.bytes.data(), &error)) {
    if (lse) std::remove(args.String("--lse-out").c_str());  // nothing written
    args.Fail("--out: " + error);
  }
}

}  // namespace relattn_cli
