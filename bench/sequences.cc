// The sequence benchmarks (see sequences.h).
#include "bench/sequences.h"

#include <cstdint>
#include <cstdlib>
#include <deque>
#include <random>
#include <string>
#include <vector>

#include "bench/cases.h"
#include "bench/timing.h"
#include "lib/common/f16.h"

namespace relattn_bench {
namespace {

constexpr int32_t kD = 128;
// Packed: kPrompts prompts of kPromptLen tokens, 8 heads (the prefill shapes').
constexpr int64_t kPrompts = 8, kPromptLen = 256;
constexpr int32_t kPackedHeads = 8;
// Tree: kDraft draft tokens after kPrefix cached ones, 32 heads on 8 KV heads
// (the decode shapes').
constexpr int64_t kPrefix = 4096, kDraft = 16;
constexpr int32_t kTreeHeads = 32, kTreeKvHeads = 8;

std::vector<uint16_t> RandomF16(std::mt19937_64& rng, size_t n) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<uint16_t> x(n);
  for (uint16_t& e : x) e = relattn::F32ToF16(u(rng));
  return x;
}

relattn_attention_desc BaseDesc(int32_t heads, int32_t kv_heads) {
  relattn_attention_desc d;
  relattn_attention_desc_init(&d);
  d.n_heads = heads;
  d.n_kv_heads = kv_heads;
  d.head_dim = kD;
  d.bias.kind = RELATTN_BIAS_ALIBI;
  d.bias.alibi.causal = 1;
  d.mask.causal = 1;
  return d;
}

// kPrompts prompts packed along the tokens, f16, positions restarting per prompt.
struct Packed {
  std::vector<uint16_t> q, k, v;
  std::vector<int64_t> positions;
  std::vector<int32_t> segments;
  std::vector<float> out;

  Packed() {
    std::mt19937_64 rng(41);
    const size_t n = size_t(kPrompts * kPromptLen) * kPackedHeads * kD;
    q = RandomF16(rng, n);
    k = RandomF16(rng, n);
    v = RandomF16(rng, n);
    out.resize(n);
    for (int64_t p = 0; p < kPrompts; ++p) {
      for (int64_t t = 0; t < kPromptLen; ++t) {
        positions.push_back(t);
        segments.push_back(int32_t(p));
      }
    }
  }

  // Tokens [t0, t0 + n) as one call; packed: with their segment ids.
  relattn_attention_desc Desc(int64_t t0, int64_t n, bool packed) {
    relattn_attention_desc d = BaseDesc(kPackedHeads, kPackedHeads);
    d.n_q = d.n_kv = n;
    const int64_t at = t0 * kPackedHeads * kD;
    d.q = relattn::TokensHeadsDim(q.data() + at, RELATTN_F16, kPackedHeads, kD);
    d.k = relattn::TokensHeadsDim(k.data() + at, RELATTN_F16, kPackedHeads, kD);
    d.v = relattn::TokensHeadsDim(v.data() + at, RELATTN_F16, kPackedHeads, kD);
    d.o = relattn::OutputTokensHeadsDim(out.data() + at, RELATTN_F32, kPackedHeads, kD);
    if (packed) {
      d.q_pos.positions = d.k_pos.positions = positions.data() + t0;
      d.mask.q_segments = d.mask.k_segments = segments.data() + t0;
    }
    return d;
  }
};

// A KV cache (f16) holding kPrefix tokens and a random tree of kDraft draft
// tokens after them (token t's parent < t, at position kPrefix + depth), the
// drafts' queries and the tree's allowed bits (ancestors and self).
struct Tree {
  std::vector<uint16_t> q;
  std::vector<int64_t> q_positions;
  std::vector<uint64_t> allowed;
  std::vector<float> out;
  std::vector<uint8_t> memory;  // the cache's memory, from a 64-byte aligned offset
  relattn_kv_cache* cache = nullptr;
  relattn::Status status;

  Tree() {
    std::mt19937_64 rng(43);
    const int64_t n_kv = kPrefix + kDraft;
    const std::vector<uint16_t> k = RandomF16(rng, size_t(n_kv) * kTreeKvHeads * kD);
    const std::vector<uint16_t> v = RandomF16(rng, k.size());
    q = RandomF16(rng, size_t(kDraft) * kTreeHeads * kD);
    out.resize(q.size());
    std::vector<int64_t> positions(static_cast<size_t>(n_kv), 0);
    std::vector<int64_t> depth(static_cast<size_t>(kDraft), 0);
    for (int64_t j = 0; j < kPrefix; ++j) positions[j] = j;
    allowed.assign(size_t(kDraft), 0);
    for (int64_t t = 0; t < kDraft; ++t) {
      if (t > 0) {
        const int64_t parent = int64_t(rng() % uint64_t(t));
        depth[t] = depth[parent] + 1;
        allowed[t] = allowed[parent];
      }
      allowed[t] |= uint64_t{1} << t;
      positions[kPrefix + t] = kPrefix + depth[t];
      q_positions.push_back(kPrefix + depth[t]);
    }
    relattn_kv_cache_desc cd{};
    cd.n_kv_heads = kTreeKvHeads;
    cd.head_dim = kD;
    cd.capacity = n_kv;
    cd.k_dtype = cd.v_dtype = RELATTN_F16;
    size_t bytes = 0;
    status = relattn::MakeStatus(relattn_kv_cache_size(&cd, &bytes));
    memory.resize(bytes + RELATTN_KV_CACHE_ALIGNMENT);
    uint8_t* aligned =
        memory.data() + (-reinterpret_cast<uintptr_t>(memory.data()) % RELATTN_KV_CACHE_ALIGNMENT);
    if (status) status = relattn::MakeStatus(relattn_kv_cache_init(&cd, aligned, bytes, &cache));
    const relattn_tensor kt = relattn::TokensHeadsDim(k.data(), RELATTN_F16, kTreeKvHeads, kD);
    const relattn_tensor vt = relattn::TokensHeadsDim(v.data(), RELATTN_F16, kTreeKvHeads, kD);
    const relattn_positions pos{positions.data(), 0};
    if (status) status = relattn::MakeStatus(relattn_kv_cache_append(cache, n_kv, &kt, &vt, &pos));
  }

  // Draft tokens [t0, t0 + n) as one call over the cache.
  relattn_attention_desc Desc(int64_t t0, int64_t n) {
    relattn_attention_desc d = BaseDesc(kTreeHeads, 0);
    d.n_q = n;
    const int64_t at = t0 * kTreeHeads * kD;
    d.q = relattn::TokensHeadsDim(q.data() + at, RELATTN_F16, kTreeHeads, kD);
    d.o = relattn::OutputTokensHeadsDim(out.data() + at, RELATTN_F32, kTreeHeads, kD);
    d.q_pos.positions = q_positions.data() + t0;
    d.kv_cache = cache;
    d.mask.allowed = allowed.data() + t0;
    d.mask.allowed_row_words = 1;
    d.mask.allowed_key_offset = kPrefix;
    return d;
  }
};

// Times the one call against the separate calls at each thread count.
std::vector<Record> Compare(const std::string& name, const MeasureConfig& config,
                            const relattn_attention_desc& one,
                            const std::vector<relattn_attention_desc>& parts, bool cold) {
  std::deque<RelattnCall> calls;
  std::vector<Runner> runners;
  for (int t : config.thread_counts) {
    const relattn_threads* threads = t == 1 ? nullptr : &config.threads;
    RelattnCall* whole = &calls.emplace_back(one, threads);
    runners.emplace_back(
        [whole] {
          const relattn::Status s = whole->Run();
          return s ? std::string() : s.ToString();
        },
        cold);
    std::vector<RelattnCall*> each;
    for (const relattn_attention_desc& p : parts) each.push_back(&calls.emplace_back(p, threads));
    runners.emplace_back(
        [each] {
          for (RelattnCall* c : each) {
            const relattn::Status s = c->Run();
            if (!s) return s.ToString();
          }
          return std::string();
        },
        cold);
  }
  MeasureAlternating(runners, config);
  std::vector<Record> records;
  for (size_t i = 0; i < runners.size(); ++i) {
    Record r;
    r.case_name = name;
    r.impl = i % 2 ? "relattn_separate" : "relattn";
    r.threads = config.thread_counts[i / 2];
    r.target = config.target;
    r.error = runners[i].error;
    r.repeats = int(parts.size());
    if (r.error.empty()) r.ms = Median(runners[i].seconds) * 1e3;
    records.push_back(r);
  }
  for (size_t i = 0; i + 1 < records.size(); i += 2) {
    records[i].vs_separate = records[i + 1].ms / records[i].ms;
  }
  return records;
}

}  // namespace

std::vector<std::string> SequenceCaseNames() {
  return {"packed/d128/8x256/causal/alibi/f16", "tree/d128/m4096/t16/causal/alibi/f16"};
}

std::vector<Record> MeasureSequences(const MeasureConfig& config,
                                     bool (*selected)(const std::string& name, const void* ctx),
                                     const void* ctx) {
  const std::vector<std::string> names = SequenceCaseNames();
  std::vector<Record> records;
  if (selected(names[0], ctx)) {
    Packed p;
    std::vector<relattn_attention_desc> parts;
    for (int64_t s = 0; s < kPrompts; ++s)
      parts.push_back(p.Desc(s * kPromptLen, kPromptLen, false));
    const std::vector<Record> r =
        Compare(names[0], config, p.Desc(0, kPrompts * kPromptLen, true), parts, false);
    records.insert(records.end(), r.begin(), r.end());
  }
  if (selected(names[1], ctx)) {
    Tree tree;
    std::vector<relattn_attention_desc> steps;
    for (int64_t t = 0; t < kDraft; ++t) steps.push_back(tree.Desc(t, 1));
    std::vector<Record> r = Compare(names[1], config, tree.Desc(0, kDraft), steps, true);
    if (!tree.status) {
      for (Record& x : r) x.error = tree.status.ToString();
    }
    records.insert(records.end(), r.begin(), r.end());
  }
  return records;
}

void PrintSequenceTable(FILE* out, const std::vector<Record>& records) {
  if (records.empty()) return;
  std::fprintf(out,
               "\nSequences: one call against the calls it replaces (8 prompts one by one; 16 "
               "decode steps, caches flushed once before each run), ms, threads:\n");
  for (size_t i = 0; i + 1 < records.size(); i += 2) {
    const Record& one = records[i];
    const Record& separate = records[i + 1];
    if (!one.error.empty() || !separate.error.empty()) {
      std::fprintf(out, "  %-40s %dt  error: %s\n", one.case_name.c_str(), one.threads,
                   (one.error.empty() ? separate.error : one.error).c_str());
      continue;
    }
    std::fprintf(out, "  %-40s %dt  one call %8.3f   separate %8.3f   %5.2fx\n",
                 one.case_name.c_str(), one.threads, one.ms, separate.ms, one.vs_separate);
  }
}

}  // namespace relattn_bench
