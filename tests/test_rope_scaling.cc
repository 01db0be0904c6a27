// RoPE frequency families (relattn_rope_scaling): each family's theta table
// in the reference against the published definition computed here a second
// way; the library against the reference on every SIMD target at positions
// 0, 10^6 and 2^40, with biases, GQA, f16, decode and the KV cache (which
// keeps its own copy of the tables); and every bad field.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "lib/reference/reference.h"
#include "tests/attention_case.h"

namespace relattn_test {
namespace {

constexpr double kPi = 3.14159265358979323846;

WorstErrors error_log("rope scaling");

struct Family {
  const char* name;
  relattn_rope rope;
};

// Per-pair tables the families below point to (rotary_dims 64: 32 pairs).
struct Tables {
  std::vector<double> short_factor, long_factor, inv_freq;
  Tables() {
    std::mt19937 rng(3);
    std::uniform_real_distribution<double> factor(1.0, 8.0), freq(1e-4, 1.0);
    for (int i = 0; i < 32; ++i) {
      short_factor.push_back(factor(rng));
      long_factor.push_back(factor(rng) * 4);
      inv_freq.push_back(freq(rng));
    }
  }
};
const Tables& TablesOnce() {
  static const Tables tables;
  return tables;
}

relattn_rope Halves(float base, relattn_rope_scaling scaling) {
  relattn_rope r{};
  r.pairing = RELATTN_ROPE_HALVES;
  r.base = base;
  r.scaling = scaling;
  return r;
}

std::vector<Family> Families() {
  const Tables& t = TablesOnce();
  relattn_rope_scaling linear{}, ntk{}, llama3{}, yarn{}, yarn_given{}, long_rope{}, short_rope{},
      inv{};
  linear.type = RELATTN_ROPE_SCALING_LINEAR;
  linear.factor = 4.0f;
  ntk.type = RELATTN_ROPE_SCALING_NTK;
  ntk.factor = 4.0f;
  llama3.type = RELATTN_ROPE_SCALING_LLAMA3;  // Llama 3.1's
  llama3.factor = 8.0f;
  llama3.low_freq_factor = 1.0f;
  llama3.high_freq_factor = 4.0f;
  llama3.original_max_position = 8192;
  yarn.type = RELATTN_ROPE_SCALING_YARN;  // Qwen2.5's long-context form
  yarn.factor = 4.0f;
  yarn.original_max_position = 4096;
  yarn_given = yarn;  // gpt-oss style: no truncation, explicit beta and attention factor
  yarn_given.beta_fast = 16.0f;
  yarn_given.beta_slow = 2.0f;
  yarn_given.no_truncate = 1;
  yarn_given.attention_factor = 1.25f;
  long_rope.type = RELATTN_ROPE_SCALING_LONGROPE;  // Phi-3's shape
  long_rope.original_max_position = 4096;
  long_rope.max_position = 131072;
  long_rope.sequence_length = 8192;
  long_rope.short_factor = t.short_factor.data();
  long_rope.long_factor = t.long_factor.data();
  short_rope = long_rope;
  short_rope.sequence_length = 0;
  inv.type = RELATTN_ROPE_SCALING_INV_FREQ;
  inv.inv_freq = t.inv_freq.data();
  inv.attention_factor = 1.2f;
  return {{"linear", Halves(0.0f, linear)},
          {"ntk", Halves(0.0f, ntk)},
          {"llama3", Halves(500000.0f, llama3)},
          {"yarn", Halves(1000000.0f, yarn)},
          {"yarn given", Halves(150000.0f, yarn_given)},
          {"longrope long", Halves(10000.0f, long_rope)},
          {"longrope short", Halves(10000.0f, short_rope)},
          {"inv_freq", Halves(0.0f, inv)}};
}

// The published definitions again, written as HF writes them (masks over
// the whole table, not a per-pair branch), for rotary_dims d.
std::vector<double> Theta0(double base, int d) {
  std::vector<double> t;
  for (int j = 0; j < d; j += 2) t.push_back(1.0 / std::pow(base, double(j) / d));
  return t;
}

std::vector<double> ExpectedThetas(const relattn_rope& r, int d, double* gain) {
  const relattn_rope_scaling& s = r.scaling;
  const double base = r.base != 0 ? r.base : 10000.0;
  std::vector<double> t = Theta0(base, d);
  *gain = 1.0;
  const size_t n = t.size();
  switch (s.type) {
    case RELATTN_ROPE_SCALING_LINEAR:
      for (double& x : t) x /= s.factor;
      break;
    case RELATTN_ROPE_SCALING_NTK: t = Theta0(base * std::pow(s.factor, d / (d - 2.0)), d); break;
    case RELATTN_ROPE_SCALING_LLAMA3: {
      const double L = double(s.original_max_position);
      for (size_t i = 0; i < n; ++i) {
        const double w = 2 * kPi / t[i];
        const double low = t[i] / s.factor;
        const bool low_band = w > L / s.low_freq_factor, high_band = w < L / s.high_freq_factor;
        const double smooth =
            (L / w - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        t[i] = high_band ? t[i] : low_band ? low : (1 - smooth) * low + smooth * t[i];
      }
      break;
    }
    case RELATTN_ROPE_SCALING_YARN: {
      const double L = double(s.original_max_position);
      const double fast = s.beta_fast ? s.beta_fast : 32, slow = s.beta_slow ? s.beta_slow : 1;
      double lo = d * std::log(L / (fast * 2 * kPi)) / (2 * std::log(base));
      double hi = d * std::log(L / (slow * 2 * kPi)) / (2 * std::log(base));
      if (!s.no_truncate) lo = std::floor(lo), hi = std::ceil(hi);
      lo = std::max(lo, 0.0);
      hi = std::min(hi, d - 1.0);
      for (size_t i = 0; i < n; ++i) {
        const double ramp = std::clamp((double(i) - lo) / (hi - lo), 0.0, 1.0);
        t[i] = t[i] * (1 - ramp) + t[i] / s.factor * ramp;
      }
      *gain = 0.1 * std::log(s.factor) + 1;
      break;
    }
    case RELATTN_ROPE_SCALING_LONGROPE: {
      const double* f =
          s.sequence_length > s.original_max_position ? s.long_factor : s.short_factor;
      for (size_t i = 0; i < n; ++i) t[i] /= f[i];
      const double scale = double(s.max_position) / s.original_max_position;
      *gain = std::sqrt(1 + std::log(scale) / std::log(double(s.original_max_position)));
      break;
    }
    case RELATTN_ROPE_SCALING_INV_FREQ: t.assign(s.inv_freq, s.inv_freq + n); break;
    default: break;
  }
  if (s.attention_factor != 0) *gain = s.attention_factor;
  return t;
}

TEST_CASE("rope scaling: the reference's theta tables are the published definitions") {
  for (const Family& f : Families()) {
    CAPTURE(f.name);
    double gain = 0, expected_gain = 0;
    const std::vector<double> theta = relattn::reference::RopeThetas(f.rope, 64, &gain);
    const std::vector<double> expected = ExpectedThetas(f.rope, 64, &expected_gain);
    REQUIRE(theta.size() == 32);
    for (size_t i = 0; i < 32; ++i) {
      CAPTURE(i);
      CHECK(std::fabs(theta[i] - expected[i]) <= 1e-14 * expected[i]);
    }
    CHECK(std::fabs(gain - expected_gain) <= 1e-15);
  }
  // Worked values: Llama 3.1 keeps its fastest pair and divides its slowest by 8.
  const relattn_rope llama3 = Families()[2].rope;
  double gain = 0;
  const std::vector<double> t = relattn::reference::RopeThetas(llama3, 128, &gain);
  CHECK(t[0] == 1.0);
  CHECK(t[63] == doctest::Approx(std::pow(500000.0, -126.0 / 128) / 8).epsilon(1e-15));
  CHECK(gain == 1.0);
}

void* Aligned64(uint64_t* p) {
  return reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(p) + 63) & ~uintptr_t{63});
}

CaseSpec SpecFor(const relattn_rope& rope, int64_t start, int64_t n_q, int index) {
  CaseSpec spec;
  spec.seed = 900 + index;
  spec.n_q = n_q;
  spec.n_kv = 96;
  spec.q_start = start + 96 - n_q;
  spec.k_start = start;
  spec.n_heads = 4;
  spec.n_kv_heads = index % 2 ? 2 : 4;
  spec.head_dim = 64;
  spec.in_dtype = index % 3 == 1 ? RELATTN_F16 : RELATTN_F32;
  spec.scheme = relattn_bias_kind(index % 4);
  spec.alibi_causal = true;
  spec.t5_bidirectional = false;
  spec.causal = true;
  spec.rope = rope;
  return spec;
}

// The reference's angles p * theta are long double: where that is only
// double (armv7), p = 2^40 loses ~2^-13 rad in the oracle itself, so that
// start is left out there (the library reduces in double-double everywhere).
constexpr int64_t kFarStart =
    std::numeric_limits<long double>::digits > 53 ? int64_t{1} << 40 : 1'000'000;

TEST_CASE("rope scaling: every family matches the reference at positions 0, 10^6 and 2^40") {
  int index = 0;
  for (const Family& f : Families()) {
    for (int64_t start : {int64_t{0}, int64_t{1'000'000}, kFarStart}) {
      for (int64_t n_q : {int64_t{40}, int64_t{3}}) {
        const CaseSpec spec = SpecFor(f.rope, start, n_q, index++);
        const double err = CheckAllTargets(spec);
        error_log.Note(std::string(f.name), err);
        INFO(f.name, " start ", start, " n_q ", n_q);
        CHECK(err <= ErrorBound(RELATTN_F32));
      }
    }
  }
}

TEST_CASE("rope scaling: shifting every position by up to 2^40 stays within the f32 bound") {
  for (const Family& f : Families()) {
    Case c(SpecFor(f.rope, 0, 33, 0));
    std::vector<uint8_t> out;
    REQUIRE(c.Run(&out) == RELATTN_OK);
    const std::vector<double> at_zero = c.Decode(out);
    c.ShiftPositions(int64_t{1} << 40);
    REQUIRE(c.Run(&out) == RELATTN_OK);
    const double diff = MaxAbsDiff(c.Decode(out), at_zero);
    error_log.Note(std::string(f.name) + " (translation by 2^40)", diff);
    INFO(f.name);
    CHECK(diff <= ErrorBound(RELATTN_F32));
  }
}

// A cache with f's rope, filled with c's K and V; the family's tables are
// copied at init (the caller's arrays are overwritten before the attention).
TEST_CASE("rope scaling: a KV cache keeps its own tables; the attention must name the same rope") {
  for (const Family& f : Families()) {
    CAPTURE(f.name);
    Case c(SpecFor(f.rope, 1'000'000, 1, 1));
    const relattn_attention_desc& d = c.desc();
    relattn_kv_cache_desc cd{};
    cd.n_kv_heads = d.n_kv_heads;
    cd.head_dim = d.head_dim;
    cd.capacity = 128;
    cd.k_dtype = cd.v_dtype = RELATTN_F32;
    std::vector<double> table(32, 0.5);  // a copy the cache desc points to, then spoiled
    cd.rope = d.rope;
    double** field =
        f.rope.scaling.inv_freq ? const_cast<double**>(&cd.rope.scaling.inv_freq) : nullptr;
    if (field) {
      std::copy(f.rope.scaling.inv_freq, f.rope.scaling.inv_freq + 32, table.begin());
      *field = table.data();
    }
    size_t bytes = 0;
    REQUIRE(relattn_kv_cache_size(&cd, &bytes) == RELATTN_OK);
    std::vector<uint64_t> memory(bytes / 8 + 8);
    relattn_kv_cache* cache = nullptr;
    REQUIRE(relattn_kv_cache_init(&cd, Aligned64(memory.data()), bytes, &cache) == RELATTN_OK);
    relattn_tensor k = d.k, v = d.v;
    REQUIRE(relattn_kv_cache_append(cache, d.n_kv, &k, &v, &d.k_pos) == RELATTN_OK);
    std::fill(table.begin(), table.end(), 7.0);  // the cache must not read it again
    relattn_attention_desc over = d;
    over.n_kv = over.n_kv_heads = over.head_dim = 0;
    over.k = over.v = relattn_tensor{};
    over.k_pos = relattn_positions{};
    over.kv_cache = cache;
    std::vector<uint8_t> out(c.out_elems() * 4, 0xff);
    over.o.data = out.data();
    std::vector<uint64_t> ws(1 << 18);
    size_t ws_bytes = 0;
    REQUIRE(relattn_attention_workspace_size(&over, 1, &ws_bytes) == RELATTN_OK);
    REQUIRE(ws_bytes + 64 <= ws.size() * 8);
    REQUIRE(relattn_attention(&over, Aligned64(ws.data()), ws_bytes, nullptr) == RELATTN_OK);
    CHECK(MaxAbsDiff(c.Decode(out), c.Reference()) <= ErrorBound(RELATTN_F32));
    over.rope.scaling.attention_factor = 1.5f;  // another rope: refused
    CHECK(relattn_attention_workspace_size(&over, 1, &ws_bytes) == RELATTN_ERR_BAD_ROPE);
    CHECK(std::string(relattn_last_error()).find("kv_cache's rope") != std::string::npos);
  }
}

TEST_CASE("rope scaling: every bad field fails with RELATTN_ERR_BAD_ROPE naming it") {
  const std::vector<Family> families = Families();
  struct Bad {
    int family;  // index into Families()
    void (*spoil)(relattn_rope_scaling&);
    relattn_status status;
    const char* message;
  } const bad[] = {
      {0, [](relattn_rope_scaling& s) { s.factor = 0; }, RELATTN_ERR_BAD_ROPE,
       "scaling.factor = 0"},
      {0, [](relattn_rope_scaling& s) { s.factor = -2; }, RELATTN_ERR_BAD_ROPE,
       "scaling.factor = -2"},
      {1, [](relattn_rope_scaling& s) { s.factor = NAN; }, RELATTN_ERR_BAD_ROPE,
       "scaling.factor = nan"},
      {2, [](relattn_rope_scaling& s) { s.low_freq_factor = 0; }, RELATTN_ERR_BAD_ROPE,
       "scaling.low_freq_factor = 0"},
      {2, [](relattn_rope_scaling& s) { s.high_freq_factor = 1; }, RELATTN_ERR_BAD_ROPE,
       "scaling.high_freq_factor = 1: must be finite and > low_freq_factor"},
      {2, [](relattn_rope_scaling& s) { s.original_max_position = 0; }, RELATTN_ERR_BAD_ROPE,
       "scaling.original_max_position = 0"},
      {2, [](relattn_rope_scaling& s) { s.beta_fast = 3; }, RELATTN_ERR_BAD_ROPE,
       "scaling.beta_fast is set"},
      {3, [](relattn_rope_scaling& s) { s.beta_slow = -1; }, RELATTN_ERR_BAD_ROPE,
       "scaling.beta_slow = -1"},
      {3, [](relattn_rope_scaling& s) { s.original_max_position = -5; }, RELATTN_ERR_BAD_ROPE,
       "scaling.original_max_position = -5"},
      {3, [](relattn_rope_scaling& s) { s.attention_factor = -1; }, RELATTN_ERR_BAD_ROPE,
       "scaling.attention_factor = -1"},
      {5, [](relattn_rope_scaling& s) { s.long_factor = nullptr; }, RELATTN_ERR_NULL_ARGUMENT,
       "scaling.long_factor is NULL"},
      {5, [](relattn_rope_scaling& s) { s.max_position = int64_t{1} << 41; }, RELATTN_ERR_BAD_ROPE,
       "scaling.max_position = 2199023255552"},
      {5, [](relattn_rope_scaling& s) { s.factor = 2; }, RELATTN_ERR_BAD_ROPE,
       "scaling.factor is set"},
      {7, [](relattn_rope_scaling& s) { s.inv_freq = nullptr; }, RELATTN_ERR_NULL_ARGUMENT,
       "scaling.inv_freq is NULL"},
      {7, [](relattn_rope_scaling& s) { s.type = relattn_rope_scaling_type(-3); },
       RELATTN_ERR_BAD_ROPE, "scaling.type = -3"},
      {1, [](relattn_rope_scaling& s) { s.type = relattn_rope_scaling_type(7); },
       RELATTN_ERR_BAD_ROPE, "scaling.type = 7"},
  };
  for (const Bad& b : bad) {
    relattn_rope rope = families[b.family].rope;
    b.spoil(rope.scaling);
    Case c(SpecFor(rope, 0, 3, 0));
    std::vector<uint8_t> out;
    INFO(b.message);
    CHECK(c.Run(&out) == b.status);
    CHECK(std::string(relattn_last_error()).find(b.message) != std::string::npos);
    CHECK(std::all_of(out.begin(), out.end(), [](uint8_t x) { return x == 0xff; }));
  }
  // A bad table entry names its index; NTK needs rotary_dims >= 4.
  std::vector<double> table(TablesOnce().inv_freq);
  table[5] = 0.0;
  relattn_rope rope = families[7].rope;
  rope.scaling.inv_freq = table.data();
  Case c(SpecFor(rope, 0, 3, 0));
  std::vector<uint8_t> out;
  CHECK(c.Run(&out) == RELATTN_ERR_BAD_ROPE);
  CHECK(std::string(relattn_last_error()).find("scaling.inv_freq[5] = 0") != std::string::npos);
  rope = families[1].rope;
  rope.rotary_dims = 2;
  Case ntk(SpecFor(rope, 0, 3, 0));
  CHECK(ntk.Run(&out) == RELATTN_ERR_BAD_ROPE);
  CHECK(std::string(relattn_last_error()).find("rotary_dims >= 4") != std::string::npos);
}

}  // namespace
}  // namespace relattn_test
