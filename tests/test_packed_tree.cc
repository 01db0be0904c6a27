// Masks by token index against the fp64 reference on every SIMD target:
// packed batches (mask.q_segments / k_segments) of 1..16 sequences of
// 1..700 tokens with every scheme, positions restarting per sequence, equal
// to each sequence alone; tree masks (mask.allowed) of 8..64 draft tokens
// over 10^4 keys, tensors and a KV cache; and their argument errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "lib/reference/bounds.h"
#include "lib/reference/reference.h"
#include "tests/attention_case.h"

namespace relattn_test {
namespace {

WorstErrors error_log("packed tree");

#ifdef RELATTN_TEST_EMULATED
constexpr bool kEmulated = true;
#else
constexpr bool kEmulated = false;
#endif

// Inputs of one call, [tokens][heads][dim] f32, and the tables the schemes read.
struct Problem {
  int32_t heads = 4, kv_heads = 2, d = 32;
  std::vector<float> q, k, v, slopes, table, sinks;
  std::vector<int64_t> q_pos, k_pos;
  std::vector<int32_t> q_seg, k_seg;
  std::vector<uint64_t> allowed;

  Problem(int64_t n_q, int64_t n_kv, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (auto* x : {&q, &k, &v}) {
      const int64_t n = x == &q ? n_q * heads : n_kv * kv_heads;
      x->resize(size_t(n) * d);
      for (float& e : *x) e = u(rng);
    }
    table.resize(size_t(heads) * 64);
    for (float& e : table) e = u(rng);
    sinks.resize(size_t(heads));
    for (float& e : sinks) e = u(rng);
  }

  // A descriptor over queries [i0, i0 + n_q) and keys [j0, j0 + n_kv) of
  // the buffers, at positions q_pos / k_pos from there.
  relattn_attention_desc Desc(relattn_bias_kind scheme, int64_t i0, int64_t n_q, int64_t j0,
                              int64_t n_kv, float* o) const {
    relattn_attention_desc desc;
    relattn_attention_desc_init(&desc);
    desc.n_q = n_q;
    desc.n_kv = n_kv;
    desc.n_heads = heads;
    desc.n_kv_heads = kv_heads;
    desc.head_dim = d;
    desc.q = {q.data() + i0 * heads * d, RELATTN_F32, heads * d, d, nullptr, 0, 0};
    desc.k = {k.data() + j0 * kv_heads * d, RELATTN_F32, kv_heads * d, d, nullptr, 0, 0};
    desc.v = {v.data() + j0 * kv_heads * d, RELATTN_F32, kv_heads * d, d, nullptr, 0, 0};
    desc.o = {o, RELATTN_F32, heads * d, d};
    desc.q_pos.positions = q_pos.data() + i0;
    desc.k_pos.positions = k_pos.data() + j0;
    desc.bias.kind = scheme;
    desc.bias.alibi.causal = 1;
    desc.bias.t5 = {table.data(), RELATTN_F32, nullptr, 32, 128, 1};
    desc.bias.shaw = {table.data(), 31};
    return desc;
  }
};

std::vector<double> Reference(const relattn_attention_desc& d) {
  std::vector<double> out(size_t(d.n_q) * d.n_heads * d.head_dim);
  relattn::reference::Attention(d, out.data());
  return out;
}

std::vector<double> RunOnTarget(relattn_attention_desc d, const relattn_threads* threads) {
  size_t bytes = 0;
  REQUIRE(relattn_attention_workspace_size(&d, threads ? threads->n_threads : 1, &bytes) ==
          RELATTN_OK);
  std::vector<uint8_t> ws(bytes + 64);
  void* aligned = ws.data() + (-reinterpret_cast<uintptr_t>(ws.data()) % 64);
  float* o = static_cast<float*>(d.o.data);
  const size_t n = size_t(d.n_q) * d.n_heads * d.head_dim;
  std::fill(o, o + n, NAN);
  REQUIRE(relattn_attention(&d, aligned, bytes, threads) == RELATTN_OK);
  return std::vector<double>(o, o + n);
}

// Sequence lengths for a packed batch: 1..16 sequences, 1..max_len tokens.
std::vector<int64_t> Lengths(std::mt19937_64& rng, int n_seqs, int64_t max_len) {
  std::vector<int64_t> lengths;
  for (int s = 0; s < n_seqs; ++s) lengths.push_back(1 + int64_t(rng() % max_len));
  return lengths;
}

TEST_CASE("packed batches: each sequence as if alone, every scheme") {
  std::mt19937_64 rng(11);
  const relattn_bias_kind schemes[] = {RELATTN_BIAS_NONE, RELATTN_BIAS_ALIBI, RELATTN_BIAS_T5,
                                       RELATTN_BIAS_SHAW};
  const int trials = kEmulated ? 4 : 16;
  for (int trial = 0; trial < trials; ++trial) {
    const int n_seqs = 1 + trial % 16;
    const std::vector<int64_t> lengths = Lengths(rng, n_seqs, trial % 3 == 0 ? 700 : 90);
    int64_t n = 0;
    for (int64_t l : lengths) n += l;
    Problem p(n, n, 900 + trial);
    for (int s = 0; s < n_seqs; ++s) {
      for (int64_t t = 0; t < lengths[s]; ++t) {
        p.q_pos.push_back(t);  // positions restart per sequence
        p.q_seg.push_back(s * 3 + 1);
      }
    }
    p.k_pos = p.q_pos;
    p.k_seg = p.q_seg;
    const relattn_bias_kind scheme = schemes[trial % 4 == 1 ? 1 : trial % 4];
    std::vector<float> o(size_t(n) * p.heads * p.d), alone(o.size());
    relattn_attention_desc packed = p.Desc(scheme, 0, n, 0, n, o.data());
    packed.mask.causal = trial % 2 == 0 || trial % 8 == 1;
    packed.bias.alibi.causal = trial % 8 != 5;
    packed.mask.q_segments = p.q_seg.data();
    packed.mask.k_segments = p.k_seg.data();
    packed.sinks = trial % 5 == 3 ? p.sinks.data() : nullptr;
    if (trial % 4 == 1) {  // global positions 0..n-1: the same distances within a sequence
      packed.q_pos = packed.k_pos = relattn_positions{nullptr, 0};
    }
    const std::vector<double> ref = Reference(packed);
    INFO("trial ", trial, ": ", n_seqs, " sequences, ", n, " tokens, scheme ", int(scheme));
    const double err = CheckAllTargets(
        [&] {
          const relattn_threads threads{StdThreadsParallelFor, nullptr, 1 + trial % 3};
          return RunOnTarget(packed, &threads);
        },
        ref, relattn::bounds::kF32Output, "packed");
    error_log.Note("packed batch", err);
    // Each sequence alone, against the packed rows.
    const std::vector<double> got = RunOnTarget(packed, nullptr);
    int64_t at = 0;
    double worst = 0;
    for (int s = 0; s < n_seqs; ++s) {
      relattn_attention_desc one = p.Desc(scheme, at, lengths[s], at, lengths[s], alone.data());
      one.mask.causal = packed.mask.causal;
      one.bias.alibi.causal = packed.bias.alibi.causal;
      one.sinks = packed.sinks;
      const std::vector<double> single = RunOnTarget(one, nullptr);
      const size_t row = size_t(p.heads) * p.d;
      for (size_t e = 0; e < single.size(); ++e) {
        worst = std::max(worst, std::fabs(single[e] - got[at * row + e]));
      }
      at += lengths[s];
    }
    CHECK(worst <= 2 * relattn::bounds::kF32Output);
    error_log.Note("packed vs alone", worst);
  }
}

TEST_CASE("packed batches: sequences on 64-key blocks give the bits of each alone") {
  const std::vector<int64_t> lengths = {128, 64, 192, 64};
  int64_t n = 0;
  for (int64_t l : lengths) n += l;
  Problem p(n, n, 77);
  for (size_t s = 0; s < lengths.size(); ++s) {
    for (int64_t t = 0; t < lengths[s]; ++t) {
      p.q_pos.push_back(t);
      p.q_seg.push_back(int32_t(s));
    }
  }
  p.k_pos = p.q_pos;
  p.k_seg = p.q_seg;
  std::vector<float> o(size_t(n) * p.heads * p.d), alone(o.size());
  relattn_attention_desc packed = p.Desc(RELATTN_BIAS_T5, 0, n, 0, n, o.data());
  packed.mask.causal = 1;
  packed.mask.q_segments = p.q_seg.data();
  packed.mask.k_segments = p.k_seg.data();
  ForEachTarget([&](int64_t target) {
    const std::vector<double> got = RunOnTarget(packed, nullptr);
    int64_t at = 0;
    for (int64_t len : lengths) {
      relattn_attention_desc one = p.Desc(RELATTN_BIAS_T5, at, len, at, len, alone.data());
      one.mask.causal = 1;
      const std::vector<double> single = RunOnTarget(one, nullptr);
      const size_t row = size_t(p.heads) * p.d;
      INFO(TargetNameOf(target), " sequence at ", at);
      CHECK(std::equal(single.begin(), single.end(), got.begin() + at * row));
      at += len;
    }
  });
}

// A random draft tree of n tokens: parent[t] < t (token 0 the root); bits
// [n][words]: token t sees its ancestors and itself.
std::vector<uint64_t> TreeBits(std::mt19937_64& rng, int64_t n, int64_t words,
                               std::vector<int64_t>* depth) {
  std::vector<int64_t> parent(size_t(n), -1);
  depth->assign(size_t(n), 0);
  std::vector<uint64_t> bits(size_t(n * words), 0);
  for (int64_t t = 0; t < n; ++t) {
    if (t > 0) {
      parent[t] = int64_t(rng() % uint64_t(t));
      (*depth)[t] = (*depth)[parent[t]] + 1;
      std::copy_n(&bits[parent[t] * words], words, &bits[t * words]);
    }
    bits[t * words + t / 64] |= uint64_t{1} << (t % 64);
  }
  return bits;
}

TEST_CASE("tree masks: 8..64 draft tokens over 10^4 keys, tensors and a KV cache") {
  std::mt19937_64 rng(3);
  const int64_t prefix = kEmulated ? 2000 : 10000;
  for (int64_t n_draft : {int64_t{8}, int64_t{16}, int64_t{33}, int64_t{64}}) {
    const int64_t n_kv = prefix + n_draft, words = (n_draft + 63) / 64 + (n_draft % 3 == 0);
    Problem p(n_draft, n_kv, uint64_t(n_draft));
    std::vector<int64_t> depth;
    p.allowed = TreeBits(rng, n_draft, words, &depth);
    for (int64_t j = 0; j < prefix; ++j) p.k_pos.push_back(j);
    for (int64_t t = 0; t < n_draft; ++t) p.k_pos.push_back(prefix + depth[t]);
    p.q_pos.assign(p.k_pos.begin() + prefix, p.k_pos.end());
    std::vector<float> o(size_t(n_draft) * p.heads * p.d);
    relattn_attention_desc d = p.Desc(RELATTN_BIAS_ALIBI, 0, n_draft, 0, n_kv, o.data());
    d.mask.allowed = p.allowed.data();
    d.mask.allowed_row_words = words;
    d.mask.allowed_key_offset = prefix;
    const std::vector<double> ref = Reference(d);
    INFO(n_draft, " draft tokens");
    const double err = CheckAllTargets([&] { return RunOnTarget(d, nullptr); }, ref,
                                       relattn::bounds::kF32Output, "tree");
    error_log.Note("tree mask", err);

    // The same over a KV cache holding the prefix and the draft (f32, no ring).
    relattn_kv_cache_desc cd{};
    cd.n_kv_heads = p.kv_heads;
    cd.head_dim = p.d;
    cd.capacity = n_kv;
    size_t bytes = 0;
    REQUIRE(relattn_kv_cache_size(&cd, &bytes) == RELATTN_OK);
    std::vector<uint8_t> memory(bytes + 64);
    void* aligned = memory.data() + (-reinterpret_cast<uintptr_t>(memory.data()) % 64);
    relattn_kv_cache* cache = nullptr;
    REQUIRE(relattn_kv_cache_init(&cd, aligned, bytes, &cache) == RELATTN_OK);
    const relattn_positions pos{p.k_pos.data(), 0};
    REQUIRE(relattn_kv_cache_append(cache, n_kv, &d.k, &d.v, &pos) == RELATTN_OK);
    relattn_attention_desc over = d;  // the key side from the cache
    over.n_kv = 0;
    over.k = over.v = relattn_tensor{};
    over.k_pos = relattn_positions{};
    over.kv_cache = cache;
    const double cache_err = CheckAllTargets([&] { return RunOnTarget(over, nullptr); }, ref,
                                             relattn::bounds::kF32Output, "tree over a cache");
    error_log.Note("tree mask over a cache", cache_err);
  }
}

TEST_CASE("index masks: argument errors name the field and write nothing") {
  Problem p(4, 70, 5);
  p.q_pos = {0, 1, 2, 3};
  for (int64_t j = 0; j < 70; ++j) p.k_pos.push_back(j);
  p.q_seg = {0, 0, 1, 1};
  p.k_seg.assign(70, 0);
  p.allowed.assign(8, ~uint64_t{0});
  std::vector<float> o(size_t(4) * p.heads * p.d, 7.0f);
  struct Bad {
    const char* what;
    void (*spoil)(relattn_attention_desc&, Problem&, std::vector<float>&);
    relattn_status status;
    const char* message;
  } bad[] = {
      {"k_segments missing",
       [](relattn_attention_desc& d, Problem& x, std::vector<float>&) {
         d.mask.q_segments = x.q_seg.data();
       },
       RELATTN_ERR_NULL_ARGUMENT, "mask.k_segments is NULL"},
      {"misaligned q_segments",
       [](relattn_attention_desc& d, Problem& x, std::vector<float>&) {
         d.mask.q_segments =
             reinterpret_cast<const int32_t*>(reinterpret_cast<const char*>(x.q_seg.data()) + 1);
         d.mask.k_segments = x.k_seg.data();
       },
       RELATTN_ERR_BAD_ALIGNMENT, "mask.q_segments"},
      {"row words too few",
       [](relattn_attention_desc& d, Problem& x, std::vector<float>&) {
         d.mask.allowed = x.allowed.data();
         d.mask.allowed_row_words = 1;  // 70 keys need 2
       },
       RELATTN_ERR_BAD_MASK, "mask.allowed_row_words = 1: must be >= 2"},
      {"offset past n_kv",
       [](relattn_attention_desc& d, Problem& x, std::vector<float>&) {
         d.mask.allowed = x.allowed.data();
         d.mask.allowed_row_words = 2;
         d.mask.allowed_key_offset = 71;
       },
       RELATTN_ERR_BAD_MASK, "mask.allowed_key_offset = 71"},
      {"o over the bits",
       [](relattn_attention_desc& d, Problem& x, std::vector<float>&) {
         d.mask.allowed = x.allowed.data();
         d.mask.allowed_row_words = 2;
         d.o.data = x.allowed.data();
         d.o.token_stride = d.o.head_stride = 0;
         d.n_q = 1;
         d.n_heads = 1;
         d.n_kv_heads = 1;
       },
       RELATTN_ERR_OVERLAP, "o overlaps mask.allowed"},
  };
  for (const Bad& b : bad) {
    Problem x(4, 70, 5);
    x.q_pos = p.q_pos;
    x.k_pos = p.k_pos;
    x.q_seg = p.q_seg;
    x.k_seg = p.k_seg;
    x.allowed = p.allowed;
    std::vector<float> out(o);
    relattn_attention_desc d = x.Desc(RELATTN_BIAS_NONE, 0, 4, 0, 70, out.data());
    b.spoil(d, x, out);
    std::vector<uint8_t> ws(1 << 22);
    void* aligned = ws.data() + (-reinterpret_cast<uintptr_t>(ws.data()) % 64);
    const std::vector<uint64_t> bits_before = x.allowed;
    INFO(b.what);
    CHECK(relattn_attention(&d, aligned, ws.size() - 64, nullptr) == b.status);
    CHECK(std::string(relattn_last_error()).find(b.message) != std::string::npos);
    CHECK(out == o);
    CHECK(x.allowed == bits_before);
  }
}

}  // namespace
}  // namespace relattn_test
