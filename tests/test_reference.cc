// Tests of the fp64 oracle itself: hand-worked examples for each scheme and mask, softmax
// invariants, GQA, layouts and f16 decoding. Nothing here calls the library.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "lib/reference/reference.h"
#include "relattn/relattn.h"

namespace {

using relattn::reference::Attention;

// A desc over f32 [tokens][heads][dim] tensors, no bias, no mask, positions 0, 1, ...
relattn_attention_desc Desc(int64_t n_q, int64_t n_kv, int32_t n_heads, int32_t n_kv_heads,
                            int32_t head_dim, const void* q, const void* k, const void* v) {
  relattn_attention_desc d = {};
  d.n_q = n_q;
  d.n_kv = n_kv;
  d.n_heads = n_heads;
  d.n_kv_heads = n_kv_heads;
  d.head_dim = head_dim;
  d.q = {q, RELATTN_F32, n_heads * head_dim, head_dim, nullptr, 0, 0};
  d.k = {k, RELATTN_F32, n_kv_heads * head_dim, head_dim, nullptr, 0, 0};
  d.v = {v, RELATTN_F32, n_kv_heads * head_dim, head_dim, nullptr, 0, 0};
  d.mask.n_valid_kv = -1;
  return d;
}

// The 2 x 2 example every scheme below starts from: d = 1, scale 0.5, dot-product scores
// (0.5, -0.5) for query 0 and (1, -1) for query 1; values 10 and 20; queries at positions 10 and
// 11, keys at 10 and 13.
const float kQ[] = {1, 2}, kK[] = {1, -1}, kV[] = {10, 20};
const int64_t kKeyPositions[] = {10, 13};

relattn_attention_desc TwoByTwo() {
  relattn_attention_desc d = Desc(2, 2, 1, 1, 1, kQ, kK, kV);
  d.scale = 0.5f;
  d.q_pos.start = 10;
  d.k_pos.positions = kKeyPositions;
  return d;
}

// softmax(s0, s1) . (10, 20)
double Mix(double s0, double s1) {
  return (10 * std::exp(s0) + 20 * std::exp(s1)) / (std::exp(s0) + std::exp(s1));
}

void CheckTwoByTwo(const relattn_attention_desc& d, double s00, double s01, double s10,
                   double s11) {
  double out[2];
  Attention(d, out);
  CHECK(out[0] == doctest::Approx(Mix(s00, s01)).epsilon(1e-14));
  CHECK(out[1] == doctest::Approx(Mix(s10, s11)).epsilon(1e-14));
}

TEST_CASE("hand-worked 2 x 2: no bias, default scale") {
  CheckTwoByTwo(TwoByTwo(), 0.5, -0.5, 1, -1);
  const float q[] = {1, 1, 1, 1}, k[] = {1, 0, 0, 0, 0, 0, 0, -2}, v[] = {1, 2, 3, 4, 5, 6, 7, 8};
  double out[4];
  Attention(Desc(1, 2, 1, 1, 4, q, k, v), out);  // scale 1/sqrt(4): scores 0.5, -1
  const double w0 = std::exp(0.5) / (std::exp(0.5) + std::exp(-1.0));
  for (int e = 0; e < 4; ++e) CHECK(out[e] == doctest::Approx(w0 * (1 + e) + (1 - w0) * (5 + e)));
}

TEST_CASE("hand-worked 2 x 2: ALiBi, bidirectional, causal form, default slopes") {
  relattn_attention_desc d = TwoByTwo();
  const float slope = 0.5f;
  d.bias.kind = RELATTN_BIAS_ALIBI;
  d.bias.alibi.slopes = &slope;  // |p_q - p_k|: (0, 3) and (1, 2)
  CheckTwoByTwo(d, 0.5 - 0, -0.5 - 1.5, 1 - 0.5, -1 - 1.0);
  d.bias.alibi.causal = 1;  // p_q - p_k: (0, -3) and (1, -2)
  CheckTwoByTwo(d, 0.5 - 0, -0.5 + 1.5, 1 - 0.5, -1 + 1.0);
  d.bias.alibi = {nullptr, 8, 0};  // one head: the paper's slope 2^-8
  CheckTwoByTwo(d, 0.5, -0.5 - 3 / 256.0, 1 - 1 / 256.0, -1 - 2 / 256.0);
}

TEST_CASE("ALiBi default slopes: paper's get_slopes(3) and ggml's max_bias 4 for 3 heads") {
  CHECK(relattn::reference::AlibiSlope(0, 3, 8) == 1 / 16.0f);
  CHECK(relattn::reference::AlibiSlope(1, 3, 8) == 1 / 256.0f);
  CHECK(relattn::reference::AlibiSlope(2, 3, 8) == 1 / 4.0f);
  CHECK(relattn::reference::AlibiSlope(0, 3, 4) == 1 / 4.0f);
  CHECK(relattn::reference::AlibiSlope(1, 3, 4) == 1 / 16.0f);
  CHECK(relattn::reference::AlibiSlope(2, 3, 4) == 1 / 2.0f);
  CHECK(relattn::reference::AlibiSlope(8, 12, 8) == static_cast<float>(std::sqrt(0.5)));
}

TEST_CASE("hand-worked 2 x 2: T5 with f32, f16 and i8 tables") {
  // 4 buckets, bidirectional, max_distance 2: offset 0 -> 0, < 0 -> 1, > 0 -> 3. Offsets
  // key - query are (0, 3) and (-1, 2): buckets (0, 3) and (1, 3).
  const float f32[] = {0.125f, 0.25f, 0.375f, 0.5f};
  const uint16_t f16[] = {0x3000, 0x3400, 0x3600, 0x3800};
  const int8_t i8[] = {1, 2, 3, 4};
  const float scale = 0.125f;
  relattn_attention_desc d = TwoByTwo();
  d.bias.kind = RELATTN_BIAS_T5;
  d.bias.t5 = {f32, RELATTN_F32, nullptr, 4, 2, 1};
  CheckTwoByTwo(d, 0.5 + 0.125, -0.5 + 0.5, 1 + 0.25, -1 + 0.5);
  d.bias.t5 = {f16, RELATTN_F16, nullptr, 4, 2, 1};
  CheckTwoByTwo(d, 0.5 + 0.125, -0.5 + 0.5, 1 + 0.25, -1 + 0.5);
  d.bias.t5 = {i8, RELATTN_I8, &scale, 4, 2, 1};
  CheckTwoByTwo(d, 0.5 + 0.125, -0.5 + 0.5, 1 + 0.25, -1 + 0.5);
}

TEST_CASE("T5 buckets worked by hand from HF's formula") {
  using relattn::reference::T5Bucket;
  // Bidirectional 32 / 128: 16 per side, 8 exact; 8 + (int)(log(n / 8) / log(16) * 8).
  CHECK(T5Bucket(-7, 32, 128, true) == 7);
  CHECK(T5Bucket(-20, 32, 128, true) == 10);  // 8 + (int)2.64
  CHECK(T5Bucket(20, 32, 128, true) == 26);
  CHECK(T5Bucket(-16, 32, 128, true) == 10);  // exactly 2 in fp32
  CHECK(T5Bucket(-15, 32, 128, true) == 9);
  CHECK(T5Bucket(INT64_MIN, 32, 128, true) == 15);
  CHECK(T5Bucket(INT64_MAX, 32, 128, true) == 31);
  // Causal 32 / 128: 16 exact; 16 + (int)(log(n / 16) / log(8) * 16); keys ahead are bucket 0.
  CHECK(T5Bucket(-20, 32, 128, false) == 17);  // 16 + (int)1.72
  CHECK(T5Bucket(5, 32, 128, false) == 0);
  CHECK(T5Bucket(-127, 32, 128, false) == 31);
  // Causal 9 / 128 at -16: log(16 / 4) / log(128 / 4) * 5 is 2; fp32 gets 2, fp64 1.99...
  CHECK(T5Bucket(-16, 9, 128, false) == 6);
}

TEST_CASE("hand-worked 2 x 2: Shaw, k = 1") {
  // Offsets key - query (0, 3) and (-1, 2) clip to columns (1, 2) and (0, 2).
  const float table[] = {0.25f, 0.5f, 0.75f};
  relattn_attention_desc d = TwoByTwo();
  d.bias.kind = RELATTN_BIAS_SHAW;
  d.bias.shaw = {table, 1};
  CheckTwoByTwo(d, 0.5 + 0.5, -0.5 + 0.75, 1 + 0.25, -1 + 0.75);
}

// Attention over n_kv keys at positions 0.. with one-hot values: out[i][e] is key e's weight.
std::vector<double> Weights(relattn_attention_desc d, int64_t n_q, int64_t n_kv) {
  std::vector<float> q(n_q * 3), k(n_kv * 3), v(n_kv * n_kv, 0);
  for (size_t i = 0; i < q.size(); ++i) q[i] = std::sin(1.3 * i);
  for (size_t i = 0; i < k.size(); ++i) k[i] = std::cos(0.7 * i);
  for (int64_t j = 0; j < n_kv; ++j) v[j * n_kv + j] = 1;
  const relattn_attention_desc base = Desc(n_q, n_kv, 1, 1, 3, q.data(), k.data(), v.data());
  d.n_q = n_q;
  d.n_kv = n_kv;
  d.n_heads = d.n_kv_heads = 1;
  d.head_dim = 3;
  d.v_head_dim = static_cast<int32_t>(n_kv);
  d.q = base.q;
  d.k = base.k;
  d.v = {v.data(), RELATTN_F32, n_kv, n_kv, nullptr, 0, 0};
  std::vector<double> out(n_q * n_kv);
  Attention(d, out.data());
  return out;
}

TEST_CASE("softmax rows are probability vectors") {
  relattn_attention_desc d = Desc(1, 1, 1, 1, 1, nullptr, nullptr, nullptr);
  const float slope = 0.3f;
  d.bias.kind = RELATTN_BIAS_ALIBI;
  d.bias.alibi.slopes = &slope;
  const std::vector<double> w = Weights(d, 4, 6);
  for (int i = 0; i < 4; ++i) {
    double sum = 0;
    for (int j = 0; j < 6; ++j) {
      CHECK(w[i * 6 + j] > 0);
      sum += w[i * 6 + j];
    }
    CHECK(sum == doctest::Approx(1).epsilon(1e-14));
  }
}

TEST_CASE("masks: causal, window, valid length; a fully masked row is zeros") {
  relattn_attention_desc d = Desc(1, 1, 1, 1, 1, nullptr, nullptr, nullptr);
  auto visible = [&](int64_t i) {
    const std::vector<double> w = Weights(d, 4, 4);
    std::vector<int> seen;
    for (int j = 0; j < 4; ++j) seen.push_back(w[i * 4 + j] != 0);
    return seen;
  };
  d.mask.causal = 1;
  CHECK(visible(1) == std::vector<int>{1, 1, 0, 0});
  d.mask.window = 2;
  CHECK(visible(3) == std::vector<int>{0, 0, 1, 1});
  d.mask.causal = 0;
  CHECK(visible(2) == std::vector<int>{0, 1, 1, 1});
  d.mask.n_valid_kv = 2;
  CHECK(visible(2) == std::vector<int>{0, 1, 0, 0});
  d.mask = {0, 0, 0, 0};  // n_valid_kv 0: all keys (the zero value)
  CHECK(visible(2) == std::vector<int>{1, 1, 1, 1});
  d.mask = {0, 0, 0, 3};  // left padding: keys before 3 hidden
  CHECK(visible(2) == std::vector<int>{0, 0, 0, 1});
  d.mask = {0, 0, 3, 1};
  CHECK(visible(2) == std::vector<int>{0, 1, 1, 0});
  d.mask = {0, 0, 0, 4};  // first_valid_kv = n_kv: every key hidden
  CHECK(visible(2) == std::vector<int>{0, 0, 0, 0});
  d.mask = {1, 0, -1, 0};
  d.q_pos.start = -1;  // query 0 at -1 sees no key at all
  CHECK(visible(0) == std::vector<int>{0, 0, 0, 0});
  CHECK(visible(1) == std::vector<int>{1, 0, 0, 0});
}

TEST_CASE("GQA: query head h reads KV head h / (n_heads / n_kv_heads)") {
  const float q[4] = {1, 2, 3, 4}, k[2] = {1, 1}, v[2] = {10, 20};
  double out[4];
  Attention(Desc(1, 1, 4, 2, 1, q, k, v), out);
  CHECK(out[0] == 10);
  CHECK(out[1] == 10);
  CHECK(out[2] == 20);
  CHECK(out[3] == 20);
  Attention(Desc(1, 1, 4, 1, 1, q, k, v), out);
  for (const double o : out) CHECK(o == 10);
}

TEST_CASE("[tokens][heads][dim] and [heads][tokens][dim] give the same result") {
  const int64_t n_q = 3, n_kv = 4, heads = 2, dim = 2;
  std::vector<float> q(n_q * heads * dim), k(n_kv * heads * dim), v(n_kv * heads * dim);
  std::vector<float> qt(q.size()), kt(k.size()), vt(v.size());
  for (size_t i = 0; i < q.size(); ++i) q[i] = std::sin(0.9 * i);
  for (size_t i = 0; i < k.size(); ++i) {
    k[i] = std::cos(1.7 * i);
    v[i] = std::sin(2.3 * i + 1);
  }
  auto transpose = [&](const std::vector<float>& a, std::vector<float>& b, int64_t tokens) {
    for (int64_t t = 0; t < tokens; ++t)
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t e = 0; e < dim; ++e)
          b[(h * tokens + t) * dim + e] = a[(t * heads + h) * dim + e];
  };
  transpose(q, qt, n_q);
  transpose(k, kt, n_kv);
  transpose(v, vt, n_kv);
  relattn_attention_desc a = Desc(n_q, n_kv, heads, heads, dim, q.data(), k.data(), v.data());
  relattn_attention_desc b = Desc(n_q, n_kv, heads, heads, dim, qt.data(), kt.data(), vt.data());
  b.q.token_stride = b.k.token_stride = b.v.token_stride = dim;
  b.q.head_stride = n_q * dim;
  b.k.head_stride = b.v.head_stride = n_kv * dim;
  std::vector<double> out_a(n_q * heads * dim), out_b(out_a.size());
  Attention(a, out_a.data());
  Attention(b, out_b.data());
  CHECK(out_a == out_b);
}

TEST_CASE("positions are exact at any distance: a shift by 10^12 changes nothing") {
  const float slope = 0.25f, table[] = {0.5f, -1.0f, 2.0f};
  relattn_attention_desc d = TwoByTwo();
  d.bias.kind = RELATTN_BIAS_ALIBI;
  d.bias.alibi.slopes = &slope;
  const int64_t far_keys[] = {10 + 1'000'000'000'000, 13 + 1'000'000'000'000};
  for (int scheme = 0; scheme < 2; ++scheme) {
    double near[2], far[2];
    Attention(d, near);
    relattn_attention_desc f = d;
    f.q_pos.start += 1'000'000'000'000;
    f.k_pos.positions = far_keys;
    Attention(f, far);
    CHECK(near[0] == far[0]);
    CHECK(near[1] == far[1]);
    d.bias.kind = RELATTN_BIAS_SHAW;
    d.bias.shaw = {table, 1};
  }
}

TEST_CASE("f16 decoding of exact values, directly and through attention") {
  using relattn::reference::F16ToDouble;
  CHECK(F16ToDouble(0x3c00) == 1);
  CHECK(F16ToDouble(0xc000) == -2);
  CHECK(F16ToDouble(0x7bff) == 65504);
  CHECK(F16ToDouble(0x0001) == std::ldexp(1.0, -24));
  CHECK(F16ToDouble(0x0400) == std::ldexp(1.0, -14));
  CHECK(F16ToDouble(0x3555) == 0.333251953125);
  CHECK(F16ToDouble(0x7c00) == INFINITY);
  CHECK(F16ToDouble(0xfc00) == -INFINITY);
  CHECK(std::isnan(F16ToDouble(0x7e00)));
  CHECK(std::signbit(F16ToDouble(0x8000)));
  // One query, one key: the output is the value row itself.
  const uint16_t q[4] = {0x3c00, 0, 0, 0}, k[4] = {0xc000, 0, 0, 0};
  const uint16_t v[4] = {0x3c00, 0xc000, 0x7bff, 0x0001};
  relattn_attention_desc d = Desc(1, 1, 1, 1, 4, q, k, v);
  d.q.dtype = d.k.dtype = d.v.dtype = RELATTN_F16;
  double out[4];
  Attention(d, out);
  CHECK(out[0] == 1);
  CHECK(out[1] == -2);
  CHECK(out[2] == 65504);
  CHECK(out[3] == std::ldexp(1.0, -24));
}

TEST_CASE("int8 tensors read as row scale * value") {
  const int8_t q[2] = {3, -1}, k[2] = {2, 5}, v[2] = {-7, 100};
  const float q_scale = 0.5f, k_scale = 0.25f, v_scale = 0.125f;
  relattn_attention_desc d = Desc(1, 1, 1, 1, 2, q, k, v);
  d.q = {q, RELATTN_I8, 2, 2, &q_scale, 0, 0};
  d.k = {k, RELATTN_I8, 2, 2, &k_scale, 0, 0};
  d.v = {v, RELATTN_I8, 2, 2, &v_scale, 0, 0};
  double out[2];
  Attention(d, out);
  CHECK(out[0] == -7 * 0.125);
  CHECK(out[1] == 100 * 0.125);
}

}  // namespace
