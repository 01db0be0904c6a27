// The benchmark's cases: problem shapes, the relattn descriptor of each case,
// their inputs, and how useful work is counted.
#ifndef RELATTN_BENCH_CASES_H_
#define RELATTN_BENCH_CASES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "relattn/relattn.hpp"

namespace relattn_bench {

// Position schemes and logit options; kRope is RoPE (halves pairing, base
// 10000) without a bias, kRopeLlama3 the same with Llama 3.1's scaling
// (base 500000, factor 8, low / high freq factors 1 / 4, original 8192),
// kShawVector the Shaw vector form (k = kShawK, a table per head): these on
// prefill cases only. kSoftcap: no bias, logit soft-cap 50 (Gemma 2); kSinks:
// no bias, learned sinks per head (gpt-oss), uniform in [-1, 1).
enum class Scheme { kNone, kAlibi, kT5, kShaw, kRope, kShawVector, kRopeLlama3, kSoftcap, kSinks };
// "none", "alibi", "t5", "shaw", "rope", "shawvec", "rope_llama3", "softcap", "sinks"
const char* SchemeName(Scheme scheme);

// One problem size. Every case of a shape shares its inputs and its XNNPACK
// peer. Tensors are [tokens][heads][head_dim]; the output is f32.
struct Shape {
  // n_q = 1 query at position n_kv - 1 (causal: sees every key) against a
  // KV cache holding the n_kv tokens (f16 storage, appended once).
  bool decode;
  int32_t head_dim;
  int64_t n_q, n_kv;
  int32_t heads, kv_heads;
  // The XNNPACK anchor shape (n = 1024, d = 64, one head, f32: where the
  // project first timed XNNPACK's unfused attention, 3.09 ms on one core):
  // only the case none / bidirectional / f32, to set the peer's time beside
  // that figure.
  bool anchor = false;
};

// "prefill/d128/n2048" (n_q = n_kv = 2048), "prefill/d64/n1024/h1" (heads
// other than 8 are named) or "decode/d128/m32768".
std::string ShapeName(const Shape& shape);

// Where a decode case's K and V lie: relattn's KV cache, or the caller's
// tensors as engines keep their own caches, [tokens][kv_heads][d] ("thd") or
// [kv_heads][tokens][d] ("htd").
enum class KvSource { kCache, kTokensHeadsDim, kHeadsTokensDim };
const char* KvSourceName(KvSource kv);  // "cache", "thd", "htd"

struct Case {
  Shape shape;
  Scheme scheme;
  bool causal;
  // Of Q, K and V alike; RELATTN_I8: Q and K int8 (per-row scales), V f16 in
  // prefill; K int8 and Q, V f16 in decode (int8 K cache, f16 V).
  relattn_dtype dtype;
  KvSource kv = KvSource::kCache;  // decode only
  bool fast = false;               // precision FAST ("bf16fast", "f16fast")
};

// The dtype part of a case's name: "f16", "bf16", "bf16fast", "f16fast" (precision FAST), ...
std::string CaseDtypeName(const Case& c);

// "prefill/d128/n2048/causal/alibi/f16": shape / mask / scheme / dtype; a
// decode case over tensors names their layout after the shape:
// "decode/d128/m32768/thd/causal/none/f16".
std::string CaseName(const Case& c);
const char* MaskName(bool causal);           // "causal", "bidir"
const char* DtypeName(relattn_dtype dtype);  // "f32", "f16", "i8", "q4"

// The shapes of a run and the cases of each, in measuring order: the anchor,
// prefill (8 heads; d in {64, 128}, n in {512, 2048, 8192}; every scheme and RoPE, both
// masks, f32 and f16; rope_llama3, softcap and sinks in f16), decode (32 heads on 8 KV
// heads, d 128, m in {4096, 32768}, f16, every scheme, softcap and sinks; none and ALiBi
// over f16 tensors in both layouts). quick: d 128, n in {512, 2048}, f16 only; decode m
// 4096 with none, ALiBi, softcap and sinks, none over tensors.
std::vector<Shape> BenchShapes(bool quick);
std::vector<Case> CasesOf(const Shape& shape, bool quick);

// (query, key) pairs the mask leaves visible, with query t at position
// q_start + t and key j at position j.
double VisiblePairs(const Shape& shape, bool causal);
// Useful FLOPs: 4 * head_dim * heads per visible pair (2 for q.k, 2 for p*v);
// a causal prefill counts about half of n_q * n_kv, masked work is not counted.
double UsefulFlops(const Case& c);
// Bytes of K and V in `dtype` (I8: int8 K with its f32 row scales, f16 V),
// each element read once per call (not once per query head): the least memory
// traffic of a decode step.
double KvBytes(const Shape& shape, relattn_dtype dtype);

// Random inputs in [-1, 1) for one shape, stored in f16 and in f32 holding the
// same (f16-rounded) values, so f32 and f16 cases and XNNPACK's f32 attention
// compute the same mathematical problem; plus the T5 and Shaw tables; for a
// decode shape, a KV cache holding K and V.
class ShapeInputs {
 public:
  explicit ShapeInputs(const Shape& shape);
  ShapeInputs(const ShapeInputs&) = delete;
  ShapeInputs& operator=(const ShapeInputs&) = delete;
  ~ShapeInputs();

  const float* q_f32() const { return q_f32_.data(); }
  const float* k_f32() const { return k_f32_.data(); }
  const float* v_f32() const { return v_f32_.data(); }

  // The descriptor of case c (whose shape must be this one) writing f32 into
  // out, [n_q][heads][head_dim].
  relattn_attention_desc Desc(const Case& c, float* out) const;

 private:
  Shape shape_;
  std::vector<float> q_f32_, k_f32_, v_f32_;
  std::vector<uint16_t> q_f16_, k_f16_, v_f16_;
  std::vector<uint16_t> q_bf16_, k_bf16_, v_bf16_;  // the f32 values rounded to bf16
  std::vector<uint16_t> k_htd_f16_, v_htd_f16_;     // decode: K, V as [kv_heads][tokens][d]
  std::vector<float> t5_table_, shaw_table_, shaw_vector_table_, sinks_;
  std::vector<int8_t> q_i8_, k_i8_;  // prefill: int8 Q and K with their row scales
  std::vector<float> q_scales_, k_scales_;
  // Decode: KV caches (f16 K and V; int8 K and f16 V; bf16 K and V) in their memory.
  static constexpr int kCaches = 3;
  static constexpr relattn_dtype kCacheK[kCaches] = {RELATTN_F16, RELATTN_I8, RELATTN_BF16};
  void* cache_memory_[kCaches] = {nullptr, nullptr, nullptr};
  relattn_kv_cache* cache_[kCaches] = {nullptr, nullptr, nullptr};
};

// T5: 32 buckets, max_distance 128, bidirectional for bidirectional cases,
// causal buckets for causal cases; f32 table. Shaw: k = 16, f32 table.
// ALiBi: max_bias 8 (the paper's slopes), causal form for causal cases.
inline constexpr int32_t kT5Buckets = 32;
inline constexpr int32_t kT5MaxDistance = 128;
inline constexpr int32_t kShawK = 16;

// One relattn case ready to run: descriptor, workspace sized for the thread
// count, threads (NULL: the calling thread).
class RelattnCall {
 public:
  RelattnCall(const relattn_attention_desc& desc, const relattn_threads* threads);
  relattn::Status Run();

 private:
  relattn_attention_desc desc_;
  const relattn_threads* threads_;
  relattn::Workspace workspace_;
  relattn::Status reserve_status_;
};

}  // namespace relattn_bench

#endif  // RELATTN_BENCH_CASES_H_
