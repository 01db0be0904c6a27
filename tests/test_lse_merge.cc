// The log-sum-exp output (desc.lse) against the fp64 reference on every SIMD
// target (prefill, decode, the split-K merge; every scheme; sinks, soft-cap,
// ALiBi's anchored frame at 10^9); relattn_merge of 2..8 key ranges against
// one call over all keys; left padding (mask.first_valid_kv); and the zero
// values of the descriptor.
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

WorstErrors error_log("lse merge");

#ifdef RELATTN_TEST_EMULATED
constexpr bool kEmulated = true;
#else
constexpr bool kEmulated = false;
#endif

// |got - expected| for lse values: equal infinities count 0, NaN or a
// one-sided infinity 1e30.
double LseError(float got, double expected) {
  if (std::isinf(expected) || std::isinf(got)) return double(got) == expected ? 0.0 : 1e30;
  if (std::isnan(got) || std::isnan(expected)) return 1e30;
  return std::fabs(double(got) - expected);
}

std::vector<CaseSpec> LseSpecs() {
  std::vector<CaseSpec> specs;
  const relattn_bias_kind schemes[] = {RELATTN_BIAS_NONE, RELATTN_BIAS_ALIBI, RELATTN_BIAS_T5,
                                       RELATTN_BIAS_SHAW, RELATTN_BIAS_SHAW_VECTOR};
  const int64_t n_qs[] = {1, 3, 70};
  const int64_t n_kvs[] = {40, kEmulated ? 700 : 3000};  // the long one splits decode's keys
  uint64_t seed = 100;
  for (relattn_bias_kind scheme : schemes) {
    for (int64_t n_q : n_qs) {
      for (int64_t n_kv : n_kvs) {
        CaseSpec s;
        s.n_q = n_q;
        s.n_kv = n_kv;
        s.n_heads = 4;
        s.n_kv_heads = 2;
        s.head_dim = 32;
        s.scheme = scheme;
        s.alibi_causal = seed % 2 == 0;
        s.causal = seed % 3 != 0;
        s.q_start = n_kv - n_q;
        s.sinks = seed % 4 == 1;
        s.softcap = seed % 5 == 2 ? 30.0f : 0.0f;
        s.seed = ++seed;
        specs.push_back(s);
      }
    }
  }
  return specs;
}

TEST_CASE("lse: within the bound of the fp64 reference on every target") {
  std::vector<CaseSpec> specs = LseSpecs();
  CaseSpec far = specs[7];  // ALiBi at 10^9: the anchored frame taken out again
  far.scheme = RELATTN_BIAS_ALIBI;
  far.q_start += 1000000000;
  far.k_start = 1000000000;
  specs.push_back(far);
  for (bool causal_form : {false, true}) {  // queries 500+ past the keys: a large frame shift
    CaseSpec beyond = specs[9];
    beyond.scheme = RELATTN_BIAS_ALIBI;
    beyond.alibi_causal = causal_form;
    beyond.causal = false;
    beyond.q_start = beyond.n_kv + 500;
    beyond.sinks = causal_form;
    specs.push_back(beyond);
  }
  CaseSpec blind = specs[0];  // queries before every key: -inf (no sink) rows
  blind.causal = true;
  blind.sinks = false;
  blind.q_start = -5;
  specs.push_back(blind);
  for (const CaseSpec& spec : specs) {
    Case c(spec);
    const size_t n_rows = size_t(spec.n_q) * spec.n_heads;
    std::vector<double> ref_o(c.out_elems()), ref_lse(n_rows);
    relattn::reference::Attention(c.desc(), ref_o.data(), ref_lse.data());
    std::vector<float> lse(n_rows);
    c.desc().lse = lse.data();
    ForEachTarget([&](int64_t target) {
      std::fill(lse.begin(), lse.end(), 12345.0f);
      std::vector<uint8_t> out;
      REQUIRE(c.Run(&out) == RELATTN_OK);
      double worst = 0;
      for (size_t r = 0; r < n_rows; ++r) {
        // The lse bound: absolute, plus relative for the large ALiBi sums.
        const double bound = relattn::bounds::kLse * (1.0 + std::fabs(ref_lse[r]));
        const double err = LseError(lse[r], ref_lse[r]);
        if (err > bound) {
          FAIL_CHECK(spec.Name() << " on " << TargetNameOf(target) << ": row " << r << " lse "
                                 << lse[r] << ", reference " << ref_lse[r]);
          break;
        }
        if (std::isfinite(ref_lse[r])) worst = std::max(worst, err / (1.0 + std::fabs(ref_lse[r])));
      }
      CHECK(MaxAbsDiff(c.Decode(out), ref_o) <= relattn::bounds::kF32Output);
      error_log.Note("lse (relative to 1 + |lse|)", worst);
    });
    if (spec.q_start == -5) CHECK(std::isinf(lse[0]));
  }
}

// Attention of one spec over keys [j0, j1) only: a desc pointing into c's
// buffers (k, v from key j0; k_pos shifted likewise), no sinks.
relattn_attention_desc KeyRange(Case& c, int64_t j0, int64_t j1) {
  relattn_attention_desc d = c.desc();
  const relattn_attention_desc& all = c.desc();
  const size_t k_bytes = all.k.dtype == RELATTN_F16 ? 2 : 4,
               v_bytes = all.v.dtype == RELATTN_F16 ? 2 : 4;
  d.n_kv = j1 - j0;
  d.k.data = static_cast<const char*>(all.k.data) + j0 * all.k.token_stride * k_bytes;
  d.v.data = static_cast<const char*>(all.v.data) + j0 * all.v.token_stride * v_bytes;
  if (all.k_pos.positions) {
    d.k_pos.positions = all.k_pos.positions + j0;
  } else {
    d.k_pos.start = all.k_pos.start + j0;
  }
  d.sinks = nullptr;
  return d;
}

relattn_status RunDesc(const relattn_attention_desc& d) {
  size_t bytes = 0;
  REQUIRE(relattn_attention_workspace_size(&d, 1, &bytes) == RELATTN_OK);
  std::vector<uint8_t> ws(bytes + 64);
  void* aligned = ws.data() + (-reinterpret_cast<uintptr_t>(ws.data()) % 64);
  return relattn_attention(&d, aligned, bytes, nullptr);
}

TEST_CASE("merge: 2..8 key ranges merged equal one call over all keys") {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < (kEmulated ? 6 : 24); ++trial) {
    CaseSpec spec;
    spec.n_q = trial % 3 == 0 ? 2 : 37;
    spec.n_kv = 300 + trial * 53;
    spec.n_heads = 4;
    spec.n_kv_heads = trial % 2 ? 4 : 1;
    spec.head_dim = 24;
    spec.scheme = trial % 4 == 0   ? RELATTN_BIAS_ALIBI
                  : trial % 4 == 1 ? RELATTN_BIAS_T5
                                   : RELATTN_BIAS_NONE;
    spec.causal = trial % 2 == 0;
    spec.q_start = spec.n_kv - spec.n_q;
    spec.sinks = trial % 3 == 1;
    spec.out_dtype = trial % 5 == 4 ? RELATTN_F16 : RELATTN_F32;
    spec.seed = 500 + trial;
    Case c(spec);
    const int n_ranges = 2 + trial % 7;
    std::vector<int64_t> cuts = {0, spec.n_kv};
    while (int(cuts.size()) < n_ranges + 1) cuts.push_back(1 + int64_t(rng() % (spec.n_kv - 1)));
    std::sort(cuts.begin(), cuts.end());
    cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
    const int32_t dv = c.dv();
    const size_t n_rows = size_t(spec.n_q) * spec.n_heads, elems = n_rows * dv;
    const size_t o_bytes = spec.out_dtype == RELATTN_F16 ? 2 : 4;
    std::vector<uint8_t> acc(elems * o_bytes), part(elems * o_bytes);
    std::vector<float> acc_lse(n_rows), part_lse(n_rows);
    for (size_t r = 0; r + 1 < cuts.size(); ++r) {
      relattn_attention_desc d = KeyRange(c, cuts[r], cuts[r + 1]);
      d.o.data = r == 0 ? acc.data() : part.data();
      d.lse = r == 0 ? acc_lse.data() : part_lse.data();
      REQUIRE(RunDesc(d) == RELATTN_OK);
      if (r == 0) continue;
      relattn_merge_desc m{};
      m.n_q = spec.n_q;
      m.n_heads = spec.n_heads;
      m.v_head_dim = dv;
      m.a = relattn_tensor{acc.data(), d.o.dtype, d.o.token_stride, d.o.head_stride, nullptr, 0, 0};
      m.b =
          relattn_tensor{part.data(), d.o.dtype, d.o.token_stride, d.o.head_stride, nullptr, 0, 0};
      m.lse_a = acc_lse.data();
      m.lse_b = part_lse.data();
      m.sinks = r + 2 == cuts.size() ? c.desc().sinks : nullptr;  // once, at the last merge
      m.o = relattn_output{acc.data(), d.o.dtype, d.o.token_stride, d.o.head_stride};  // in place
      m.lse = acc_lse.data();
      REQUIRE(relattn_merge(&m) == RELATTN_OK);
    }
    std::vector<double> ref(elems), ref_lse(n_rows);
    relattn::reference::Attention(c.desc(), ref.data(), ref_lse.data());
    const double err = MaxAbsDiff(c.Decode(acc), ref);
    INFO(spec.Name(), " in ", cuts.size() - 1, " ranges");
    CHECK(err <= relattn::bounds::Output(spec.out_dtype));
    double lse_err = 0;
    for (size_t r = 0; r < n_rows; ++r) {
      lse_err = std::max(lse_err, LseError(acc_lse[r], ref_lse[r]) / (1 + std::fabs(ref_lse[r])));
    }
    CHECK(lse_err <= relattn::bounds::kLse);
    error_log.Note(spec.out_dtype == RELATTN_F16 ? "merged o (f16)" : "merged o (f32)", err);
    error_log.Note("merged lse", lse_err);
  }
}

// A merge desc of two f32 parts [2][2][4] in the given buffers.
struct MergeFixture {
  std::vector<float> a = std::vector<float>(16, 0.5f), b = std::vector<float>(16, -0.5f);
  std::vector<float> lse_a = {0.0f, 1.0f, -HUGE_VALF, 2.0f},
                     lse_b = {0.0f, -HUGE_VALF, -HUGE_VALF, 3.0f};
  std::vector<float> o = std::vector<float>(16, 7.0f), lse = std::vector<float>(4, 7.0f);
  relattn_merge_desc Desc() {
    relattn_merge_desc m{};
    m.n_q = 2;
    m.n_heads = 2;
    m.v_head_dim = 4;
    m.a = relattn_tensor{a.data(), RELATTN_F32, 8, 4, nullptr, 0, 0};
    m.b = relattn_tensor{b.data(), RELATTN_F32, 8, 4, nullptr, 0, 0};
    m.lse_a = lse_a.data();
    m.lse_b = lse_b.data();
    m.o = relattn_output{o.data(), RELATTN_F32, 8, 4};
    m.lse = lse.data();
    return m;
  }
};

TEST_CASE("merge: rows by hand, and bad arguments write nothing") {
  MergeFixture f;
  relattn_merge_desc m = f.Desc();
  REQUIRE(relattn_merge(&m) == RELATTN_OK);
  CHECK(f.o[0] == 0.0f);  // equal weights: the mean
  CHECK(f.o[4] == 0.5f);  // b saw no key: a's row
  CHECK(f.o[8] == 0.0f);  // neither saw a key: zeros, -inf
  CHECK(f.lse[2] == -HUGE_VALF);
  CHECK(std::fabs(f.lse[0] - std::log(2.0f)) < 1e-6f);
  CHECK(std::fabs(f.lse[3] - (3.0f + std::log1p(std::exp(-1.0f)))) < 1e-6f);
  const float sink[2] = {1.0f, 0.0f};
  m.sinks = sink;
  REQUIRE(relattn_merge(&m) == RELATTN_OK);
  CHECK(std::fabs(f.o[0] - 0.0f) < 1e-7f);
  CHECK(std::fabs(f.lse[0] - std::log(2.0f + std::exp(1.0f))) < 1e-6f);
  CHECK(std::fabs(f.o[4] - 0.5f * std::exp(1.0f) / (std::exp(1.0f) + 1.0f)) < 1e-6f);
  CHECK(f.o[8] == 0.0f);  // no key, a sink: zeros, lse = the sink
  CHECK(f.lse[2] == 1.0f);

  struct Bad {
    const char* what;
    void (*spoil)(relattn_merge_desc&, MergeFixture&);
    relattn_status status;
    const char* message;
  } bad[] = {
      {"NULL lse_a", [](relattn_merge_desc& d, MergeFixture&) { d.lse_a = nullptr; },
       RELATTN_ERR_NULL_ARGUMENT, "lse_a is NULL"},
      {"+inf lse", [](relattn_merge_desc&, MergeFixture& x) { x.lse_b[1] = HUGE_VALF; },
       RELATTN_ERR_VALUE_RANGE, "lse_b[1] = +inf"},
      {"n_q 0", [](relattn_merge_desc& d, MergeFixture&) { d.n_q = 0; }, RELATTN_ERR_BAD_DIMENSION,
       "n_q = 0"},
      {"I8 part", [](relattn_merge_desc& d, MergeFixture&) { d.b.dtype = RELATTN_I8; },
       RELATTN_ERR_UNSUPPORTED, "b"},
      {"o inside b, shifted",
       [](relattn_merge_desc& d, MergeFixture& x) {
         d.o.data = x.b.data() + 1;
         d.o.token_stride = 4;
         d.o.head_stride = 2;
         d.v_head_dim = 2;
         d.a.token_stride = 4;
         d.a.head_stride = 2;
         d.b.token_stride = 4;
         d.b.head_stride = 2;
       },
       RELATTN_ERR_OVERLAP, "o overlaps b"},
      {"lse on lse_a, shifted",
       [](relattn_merge_desc& d, MergeFixture& x) { d.lse = x.lse_a.data() + 1; },
       RELATTN_ERR_OVERLAP, "lse overlaps lse_a"},
      {"bad sink",
       [](relattn_merge_desc& d, MergeFixture&) {
         static const float s[2] = {NAN, 0};
         d.sinks = s;
       },
       RELATTN_ERR_BAD_SINK, "sinks[0]"},
      {"misaligned lse",
       [](relattn_merge_desc& d, MergeFixture& x) {
         d.lse = reinterpret_cast<float*>(reinterpret_cast<char*>(x.lse.data()) + 1);
       },
       RELATTN_ERR_BAD_ALIGNMENT, "lse"},
  };
  for (const Bad& b : bad) {
    MergeFixture g;
    std::vector<float> o_before = g.o, lse_before = g.lse;
    std::vector<float> a_before = g.a, b_before = g.b, la_before = g.lse_a;
    relattn_merge_desc d = g.Desc();
    b.spoil(d, g);
    INFO(b.what, ": ", relattn_last_error());
    CHECK(relattn_merge(&d) == b.status);
    CHECK(std::string(relattn_last_error()).find(b.message) != std::string::npos);
    CHECK(g.o == o_before);
    CHECK(g.lse == lse_before);
    CHECK(g.b == b_before);
    CHECK(g.lse_a.size() == la_before.size());
  }
  CHECK(relattn_merge(nullptr) == RELATTN_ERR_NULL_ARGUMENT);
}

TEST_CASE("mask.first_valid_kv: left padding equals attention over the keys after it") {
  for (int64_t first : {int64_t{0}, int64_t{1}, int64_t{63}, int64_t{64}, int64_t{130},
                        int64_t{256}, int64_t{399}}) {
    for (int64_t n_q : {int64_t{1}, int64_t{5}, int64_t{90}}) {
      CaseSpec spec;
      spec.n_q = n_q;
      spec.n_kv = 400;
      spec.n_heads = 2;
      spec.head_dim = 16;
      spec.scheme = first % 2 ? RELATTN_BIAS_ALIBI : RELATTN_BIAS_T5;
      spec.alibi_causal = true;
      spec.causal = true;
      spec.q_start = spec.n_kv - n_q;
      spec.seed = uint64_t(first * 10 + n_q);
      Case c(spec);
      c.desc().mask.first_valid_kv = first;
      std::vector<double> ref(c.out_elems());
      relattn::reference::Attention(c.desc(), ref.data());
      INFO(spec.Name(), " first_valid_kv ", first);
      const double err = CheckAllTargets(c, ref, relattn::bounds::kF32Output, "first_valid_kv");
      error_log.Note("first_valid_kv", err);
      // Blocks of 64 keys line up with the suffix call's: the same bits.
      if (first % 64 == 0) {
        std::vector<uint8_t> padded, suffix(c.out_elems() * 4);
        REQUIRE(c.Run(&padded) == RELATTN_OK);
        relattn_attention_desc d = KeyRange(c, first, spec.n_kv);
        d.mask.first_valid_kv = 0;
        d.o.data = suffix.data();
        REQUIRE(RunDesc(d) == RELATTN_OK);
        CHECK(padded == suffix);
      }
    }
  }
  CaseSpec spec;  // first_valid_kv = n_kv hides every key: zero rows, -inf lse
  spec.n_q = 3;
  spec.n_kv = 9;
  Case c(spec);
  c.desc().mask.first_valid_kv = 9;
  std::vector<float> lse(3);
  c.desc().lse = lse.data();
  std::vector<uint8_t> out;
  REQUIRE(c.Run(&out) == RELATTN_OK);
  for (double x : c.Decode(out)) CHECK(x == 0.0);
  for (float x : lse) CHECK(x == -HUGE_VALF);
  c.desc().mask.first_valid_kv = 10;
  CHECK(c.Run(&out) == RELATTN_ERR_BAD_MASK);
  CHECK(std::string(relattn_last_error()).find("mask.first_valid_kv = 10") != std::string::npos);
}

TEST_CASE("zero values: a zero-filled descriptor is the default one") {
  CaseSpec spec;
  spec.n_q = 6;
  spec.n_kv = 11;
  spec.n_heads = 2;
  spec.head_dim = 8;
  spec.scheme = RELATTN_BIAS_ALIBI;
  Case c(spec);
  std::vector<uint8_t> expected, got;
  c.desc().mask.n_valid_kv = -1;
  REQUIRE(c.Run(&expected) == RELATTN_OK);
  c.desc().mask.n_valid_kv = 0;         // all keys, not none
  c.desc().bias.alibi.max_bias = 0.0f;  // 8
  relattn_threads zeroed{};             // the calling thread
  REQUIRE(c.Run(&got, &zeroed) == RELATTN_OK);
  CHECK(got == expected);
  bool any_nonzero = false;
  for (double x : c.Decode(got)) any_nonzero = any_nonzero || x != 0.0;
  CHECK(any_nonzero);
  size_t bytes_0 = 0, bytes_1 = 0;
  CHECK(relattn_attention_workspace_size(&c.desc(), 0, &bytes_0) == RELATTN_OK);
  CHECK(relattn_attention_workspace_size(&c.desc(), 1, &bytes_1) == RELATTN_OK);
  CHECK(bytes_0 == bytes_1);

  CaseSpec t5 = spec;  // T5 num_buckets 0 and max_distance 0: 32 and 128
  t5.scheme = RELATTN_BIAS_T5;
  Case c5(t5);
  REQUIRE(c5.Run(&expected) == RELATTN_OK);
  c5.desc().bias.t5.num_buckets = 0;
  c5.desc().bias.t5.max_distance = 0;
  REQUIRE(c5.Run(&got) == RELATTN_OK);
  CHECK(got == expected);

  relattn_attention_desc d;
  std::memset(&d, 0x5a, sizeof(d));
  relattn_attention_desc_init(&d);
  relattn_attention_desc zero;
  std::memset(&zero, 0, sizeof(zero));
  CHECK(std::memcmp(&d, &zero, sizeof(d)) == 0);
}

}  // namespace
}  // namespace relattn_test
