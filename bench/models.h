// Decode tokens/s for real model shapes (--model, --heads, ...): the attention of every layer
// for one new token over a KV cache of m tokens, for each K/V storage dtype of the cache.
// The weights and the rest of a model are not run: between two layers a real model streams
// its weights through the CPU's caches, so each layer's K/V is timed cold (caches flushed
// before each call), and a token's time is the sum of its layers' medians.
#ifndef RELATTN_BENCH_MODELS_H_
#define RELATTN_BENCH_MODELS_H_

#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "bench/measure.h"
#include "bench/report.h"
#include "relattn/relattn.h"

namespace relattn_bench {

// The attention of one decoder model (self-attention; T5's cross-attention is left out).
struct ModelShape {
  std::string name;  // "llama3-8b", or "custom" for --heads/--kv-heads/--head-dim
  int32_t layers = 1, heads = 0, kv_heads = 0, head_dim = 0;
  relattn_bias_kind bias = RELATTN_BIAS_NONE;  // ALIBI (BLOOM), T5 (T5), else NONE
  float rope_base = 0.0f;                      // > 0: RoPE (halves pairing) at this base
  float softcap = 0.0f;                        // Gemma 2: 50
  // Gemma 2: every other layer (from the first) is local, seeing the last `window` keys.
  int64_t window = 0;
};

// llama3-8b, llama3.2-1b, qwen2.5-0.5b, gemma2-2b, phi3-mini, bloom-560m, t5-small (its
// decoder), with their published layers, heads, KV heads and head dim.
const std::vector<ModelShape>& NamedModels();
// The named model, or nullptr.
const ModelShape* FindModel(const std::string& name);

// Measures each model at each cache length (tokens) for each cache dtype pair (K/V:
// f32/f32, f16/f16, i8/f16, i8/i8), 1 and all threads, and prints a table per model.
// Records: case "model/<name>/m<len>/k_<dtype>/v_<dtype>", impl "relattn", ms (one token,
// all layers), gbps and bw_fraction (K and V bytes read per token / time), and in `extra`
// tokens_per_s, bytes_per_token, model, layers, heads, kv_heads, head_dim, n_kv, k_dtype,
// v_dtype.
std::vector<Record> MeasureModels(const std::vector<ModelShape>& models,
                                  const std::vector<int64_t>& cache_lens,
                                  const MeasureConfig& config, const Limits& limits, FILE* table);

}  // namespace relattn_bench

#endif  // RELATTN_BENCH_MODELS_H_
