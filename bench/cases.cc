// The benchmark's cases (see cases.h).
#include "bench/cases.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <utility>

#include "lib/common/bf16.h"
#include "lib/common/f16.h"

namespace relattn_bench {

const char* SchemeName(Scheme scheme) {
  switch (scheme) {
    case Scheme::kNone: return "none";
    case Scheme::kAlibi: return "alibi";
    case Scheme::kT5: return "t5";
    case Scheme::kShaw: return "shaw";
    case Scheme::kRope: return "rope";
    case Scheme::kShawVector: return "shawvec";
    case Scheme::kRopeLlama3: return "rope_llama3";
    case Scheme::kSoftcap: return "softcap";
    case Scheme::kSinks: return "sinks";
  }
  return "?";
}

const char* MaskName(bool causal) { return causal ? "causal" : "bidir"; }

const char* DtypeName(relattn_dtype dtype) {
  switch (dtype) {
    case RELATTN_F32: return "f32";
    case RELATTN_F16: return "f16";
    case RELATTN_BF16: return "bf16";
    case RELATTN_Q4: return "q4";
    default: return "i8";
  }
}

std::string ShapeName(const Shape& shape) {
  const std::string d = "/d" + std::to_string(shape.head_dim);
  if (shape.decode) return "decode" + d + "/m" + std::to_string(shape.n_kv);
  const std::string heads = shape.heads == 8 ? "" : "/h" + std::to_string(shape.heads);
  return "prefill" + d + "/n" + std::to_string(shape.n_q) + heads;
}

const char* KvSourceName(KvSource kv) {
  switch (kv) {
    case KvSource::kCache: return "cache";
    case KvSource::kTokensHeadsDim: return "thd";
    case KvSource::kHeadsTokensDim: return "htd";
  }
  return "?";
}

std::string CaseDtypeName(const Case& c) {
  return std::string(DtypeName(c.dtype)) + (c.fast ? "fast" : "");
}

std::string CaseName(const Case& c) {
  const std::string kv = c.kv == KvSource::kCache ? "" : std::string("/") + KvSourceName(c.kv);
  return ShapeName(c.shape) + kv + "/" + MaskName(c.causal) + "/" + SchemeName(c.scheme) + "/" +
         CaseDtypeName(c);
}

std::vector<Shape> BenchShapes(bool quick) {
  std::vector<Shape> shapes = {{false, 64, 1024, 1024, 1, 1, /*anchor=*/true}};
  const std::vector<int32_t> dims =
      quick ? std::vector<int32_t>{128} : std::vector<int32_t>{64, 128};
  const std::vector<int64_t> lengths =
      quick ? std::vector<int64_t>{512, 2048} : std::vector<int64_t>{512, 2048, 8192};
  for (int32_t d : dims) {
    for (int64_t n : lengths) shapes.push_back({false, d, n, n, 8, 8});
  }
  const std::vector<int64_t> caches =
      quick ? std::vector<int64_t>{4096} : std::vector<int64_t>{4096, 32768};
  for (int64_t m : caches) shapes.push_back({true, 128, 1, m, 32, 8});
  return shapes;
}

std::vector<Case> CasesOf(const Shape& shape, bool quick) {
  const Scheme all[] = {Scheme::kNone, Scheme::kAlibi, Scheme::kT5, Scheme::kShaw};
  std::vector<Case> cases;
  if (shape.anchor) return {{shape, Scheme::kNone, false, RELATTN_F32}};
  if (shape.decode) {
    for (relattn_dtype dtype : {RELATTN_F16, RELATTN_I8, RELATTN_BF16}) {
      for (Scheme s : all) {
        const bool few = quick || dtype == RELATTN_BF16;
        if (!few || s == Scheme::kNone || s == Scheme::kAlibi) {
          cases.push_back({shape, s, true, dtype});
        }
      }
    }
    for (Scheme s : {Scheme::kSoftcap, Scheme::kSinks})
      cases.push_back({shape, s, true, RELATTN_F16});
    for (KvSource kv : {KvSource::kTokensHeadsDim, KvSource::kHeadsTokensDim}) {
      for (Scheme s : {Scheme::kNone, Scheme::kAlibi}) {
        if (!quick || s == Scheme::kNone) cases.push_back({shape, s, true, RELATTN_F16, kv});
      }
    }
    return cases;
  }
  const std::vector<relattn_dtype> dtypes =
      quick ? std::vector<relattn_dtype>{RELATTN_F16}
            : std::vector<relattn_dtype>{RELATTN_F32, RELATTN_F16};
  for (relattn_dtype dtype : dtypes) {
    for (bool causal : {false, true}) {
      for (Scheme s : all) cases.push_back({shape, s, causal, dtype});
      cases.push_back({shape, Scheme::kRope, causal, dtype});
      cases.push_back({shape, Scheme::kShawVector, causal, dtype});
      if (dtype != RELATTN_F16) continue;
      for (Scheme s : {Scheme::kRopeLlama3, Scheme::kSoftcap, Scheme::kSinks}) {
        cases.push_back({shape, s, causal, dtype});
      }
    }
  }
  for (bool causal : {false, true}) {
    cases.push_back({shape, Scheme::kNone, causal, RELATTN_I8});
    cases.push_back({shape, Scheme::kAlibi, causal, RELATTN_I8});
    if (!quick || causal) {
      cases.push_back({shape, Scheme::kAlibi, causal, RELATTN_BF16});
      cases.push_back({shape, Scheme::kAlibi, causal, RELATTN_BF16, KvSource::kCache, true});
      cases.push_back({shape, Scheme::kAlibi, causal, RELATTN_F16, KvSource::kCache, true});
    }
  }
  return cases;
}

double VisiblePairs(const Shape& shape, bool causal) {
  if (!causal) return double(shape.n_q) * double(shape.n_kv);
  const int64_t q_start = shape.decode ? shape.n_kv - 1 : 0;
  double pairs = 0.0;
  for (int64_t t = 0; t < shape.n_q; ++t) pairs += double(std::min(shape.n_kv, q_start + t + 1));
  return pairs;
}

double UsefulFlops(const Case& c) {
  return 4.0 * c.shape.head_dim * c.shape.heads * VisiblePairs(c.shape, c.causal);
}

double KvBytes(const Shape& shape, relattn_dtype dtype) {
  const double rows = double(shape.n_kv) * shape.kv_heads;
  if (dtype == RELATTN_I8) return rows * (shape.head_dim * 3.0 + 4.0);
  const double elem_bytes = dtype == RELATTN_F32 ? 4.0 : 2.0;
  return 2.0 * rows * shape.head_dim * elem_bytes;
}

namespace {

// x [tokens][heads][d] rearranged as [heads][tokens][d].
std::vector<uint16_t> HeadsTokensDim(const std::vector<uint16_t>& x, int64_t tokens, int32_t heads,
                                     int32_t d) {
  std::vector<uint16_t> out(x.size());
  for (int64_t t = 0; t < tokens; ++t) {
    for (int32_t h = 0; h < heads; ++h) {
      std::copy_n(x.begin() + (t * heads + h) * d, d, out.begin() + (h * tokens + t) * d);
    }
  }
  return out;
}

}  // namespace

ShapeInputs::ShapeInputs(const Shape& shape) : shape_(shape) {
  std::mt19937 rng(uint32_t(shape.head_dim * 1000003 + shape.n_kv));
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  auto fill = [&](size_t n, std::vector<uint16_t>& f16, std::vector<float>& f32) {
    f16.resize(n);
    f32.resize(n);
    for (size_t i = 0; i < n; ++i) {
      f16[i] = relattn::F32ToF16(uniform(rng));
      f32[i] = relattn::F16ToF32(f16[i]);
    }
  };
  const size_t d = size_t(shape.head_dim);
  fill(size_t(shape.n_q) * shape.heads * d, q_f16_, q_f32_);
  fill(size_t(shape.n_kv) * shape.kv_heads * d, k_f16_, k_f32_);
  fill(size_t(shape.n_kv) * shape.kv_heads * d, v_f16_, v_f32_);
  for (const auto& [f32, bf16] :
       {std::pair{&q_f32_, &q_bf16_}, std::pair{&k_f32_, &k_bf16_}, std::pair{&v_f32_, &v_bf16_}}) {
    for (float x : *f32) bf16->push_back(relattn::F32ToBF16(x));
  }
  t5_table_.resize(size_t(shape.heads) * kT5Buckets);
  shaw_table_.resize(size_t(shape.heads) * (2 * kShawK + 1));
  for (float& x : t5_table_) x = 2.0f * uniform(rng);
  for (float& x : shaw_table_) x = 2.0f * uniform(rng);
  shaw_vector_table_.resize(size_t(shape.heads) * (2 * kShawK + 1) * shape.head_dim);
  for (float& x : shaw_vector_table_) x = uniform(rng);
  sinks_.resize(size_t(shape.heads));
  for (float& x : sinks_) x = uniform(rng);
  if (!shape.decode) {
    const auto quantize = [&](const std::vector<float>& x, int64_t n, int32_t heads,
                              std::vector<int8_t>& q, std::vector<float>& scales) {
      q.resize(x.size());
      scales.resize(size_t(n) * heads);
      const relattn_tensor t =
          relattn::TokensHeadsDim(x.data(), RELATTN_F32, heads, shape.head_dim);
      relattn_tensor out;
      if (relattn_quantize_i8(&t, n, heads, shape.head_dim, q.data(), scales.data(), &out) !=
          RELATTN_OK) {
        std::fprintf(stderr, "relattn-bench: quantize: %s\n", relattn_last_error());
        std::exit(1);
      }
    };
    quantize(q_f32_, shape.n_q, shape.heads, q_i8_, q_scales_);
    quantize(k_f32_, shape.n_kv, shape.kv_heads, k_i8_, k_scales_);
    return;
  }
  k_htd_f16_ = HeadsTokensDim(k_f16_, shape.n_kv, shape.kv_heads, shape.head_dim);
  v_htd_f16_ = HeadsTokensDim(v_f16_, shape.n_kv, shape.kv_heads, shape.head_dim);
  for (int c = 0; c < kCaches; ++c) {
    relattn_kv_cache_desc cache_desc{};
    cache_desc.n_kv_heads = shape.kv_heads;
    cache_desc.head_dim = shape.head_dim;
    cache_desc.capacity = shape.n_kv;
    cache_desc.k_dtype = kCacheK[c];
    cache_desc.v_dtype = c == 2 ? RELATTN_BF16 : RELATTN_F16;
    size_t bytes = 0;
    relattn_status status = relattn_kv_cache_size(&cache_desc, &bytes);
    if (status == RELATTN_OK) {
      const size_t rounded = (bytes + RELATTN_KV_CACHE_ALIGNMENT - 1) / RELATTN_KV_CACHE_ALIGNMENT *
                             RELATTN_KV_CACHE_ALIGNMENT;
      cache_memory_[c] = std::aligned_alloc(RELATTN_KV_CACHE_ALIGNMENT, rounded);
      status = relattn_kv_cache_init(&cache_desc, cache_memory_[c], bytes, &cache_[c]);
    }
    if (status == RELATTN_OK) {
      const relattn_tensor k =
          relattn::TokensHeadsDim(k_f16_.data(), RELATTN_F16, shape.kv_heads, shape.head_dim);
      const relattn_tensor v =
          relattn::TokensHeadsDim(v_f16_.data(), RELATTN_F16, shape.kv_heads, shape.head_dim);
      status = relattn_kv_cache_append(cache_[c], shape.n_kv, &k, &v, nullptr);
    }
    if (status != RELATTN_OK) {
      std::fprintf(stderr, "relattn-bench: KV cache: %s\n", relattn_last_error());
      std::exit(1);
    }
  }
}

ShapeInputs::~ShapeInputs() {
  for (void* memory : cache_memory_) std::free(memory);
}

relattn_attention_desc ShapeInputs::Desc(const Case& c, float* out) const {
  const Shape& s = shape_;
  const bool f32 = c.dtype == RELATTN_F32;
  relattn_attention_desc desc;
  relattn_attention_desc_init(&desc);
  desc.n_q = s.n_q;
  desc.n_kv = s.n_kv;
  desc.n_heads = s.heads;
  desc.n_kv_heads = s.kv_heads;
  desc.head_dim = s.head_dim;
  const bool bf16 = c.dtype == RELATTN_BF16;
  const void* q = f32    ? static_cast<const void*>(q_f32_.data())
                  : bf16 ? q_bf16_.data()
                         : q_f16_.data();
  const void* k = f32    ? static_cast<const void*>(k_f32_.data())
                  : bf16 ? k_bf16_.data()
                         : k_f16_.data();
  const void* v = f32    ? static_cast<const void*>(v_f32_.data())
                  : bf16 ? v_bf16_.data()
                         : v_f16_.data();
  const relattn_dtype float_dtype = c.dtype == RELATTN_I8 ? RELATTN_F16 : c.dtype;
  desc.q = relattn::TokensHeadsDim(q, float_dtype, s.heads, s.head_dim);
  desc.k = relattn::TokensHeadsDim(k, float_dtype, s.kv_heads, s.head_dim);
  desc.v = relattn::TokensHeadsDim(v, float_dtype, s.kv_heads, s.head_dim);
  if (c.dtype == RELATTN_I8 && !s.decode) {
    desc.q = relattn::TokensHeadsDim(q_i8_.data(), RELATTN_I8, s.heads, s.head_dim);
    desc.q.row_scales = q_scales_.data();
    desc.q.scale_token_stride = s.heads;
    desc.q.scale_head_stride = 1;
    desc.k = relattn::TokensHeadsDim(k_i8_.data(), RELATTN_I8, s.kv_heads, s.head_dim);
    desc.k.row_scales = k_scales_.data();
    desc.k.scale_token_stride = s.kv_heads;
    desc.k.scale_head_stride = 1;
  }
  desc.o = relattn::OutputTokensHeadsDim(out, RELATTN_F32, s.heads, s.head_dim);
  desc.q_pos.start = s.decode ? s.n_kv - 1 : 0;
  if (s.decode && c.kv == KvSource::kHeadsTokensDim) {
    desc.k = relattn::HeadsTokensDim(k_htd_f16_.data(), RELATTN_F16, s.n_kv, s.head_dim);
    desc.v = relattn::HeadsTokensDim(v_htd_f16_.data(), RELATTN_F16, s.n_kv, s.head_dim);
  } else if (s.decode && c.kv == KvSource::kCache) {
    // K, V, their positions and shape come from the cache
    desc.n_kv = desc.n_kv_heads = desc.head_dim = 0;
    desc.k = desc.v = relattn_tensor{};
    desc.kv_cache = cache_[c.dtype == RELATTN_I8 ? 1 : c.dtype == RELATTN_BF16 ? 2 : 0];
  }
  desc.mask.causal = c.causal;
  if (c.fast) desc.precision = RELATTN_PRECISION_FAST;
  switch (c.scheme) {
    case Scheme::kNone: break;
    case Scheme::kAlibi:
      desc.bias.kind = RELATTN_BIAS_ALIBI;
      desc.bias.alibi.max_bias = 8.0f;
      desc.bias.alibi.causal = c.causal;
      break;
    case Scheme::kT5:
      desc.bias.kind = RELATTN_BIAS_T5;
      desc.bias.t5 = {t5_table_.data(), RELATTN_F32,    nullptr,
                      kT5Buckets,       kT5MaxDistance, !c.causal};
      break;
    case Scheme::kShaw:
      desc.bias.kind = RELATTN_BIAS_SHAW;
      desc.bias.shaw = {shaw_table_.data(), kShawK};
      break;
    case Scheme::kRope: desc.rope.pairing = RELATTN_ROPE_HALVES; break;
    case Scheme::kShawVector:
      desc.bias.kind = RELATTN_BIAS_SHAW_VECTOR;
      desc.bias.shaw_vector = {shaw_vector_table_.data(), kShawK, 1};
      break;
    case Scheme::kRopeLlama3:
      desc.rope.pairing = RELATTN_ROPE_HALVES;
      desc.rope.base = 500000.0f;
      desc.rope.scaling.type = RELATTN_ROPE_SCALING_LLAMA3;
      desc.rope.scaling.factor = 8.0f;
      desc.rope.scaling.low_freq_factor = 1.0f;
      desc.rope.scaling.high_freq_factor = 4.0f;
      desc.rope.scaling.original_max_position = 8192;
      break;
    case Scheme::kSoftcap: desc.softcap = 50.0f; break;
    case Scheme::kSinks: desc.sinks = sinks_.data(); break;
  }
  return desc;
}

RelattnCall::RelattnCall(const relattn_attention_desc& desc, const relattn_threads* threads)
    : desc_(desc), threads_(threads) {
  reserve_status_ = workspace_.Reserve(desc_, threads ? threads->n_threads : 1);
}

relattn::Status RelattnCall::Run() {
  if (!reserve_status_) return reserve_status_;
  return relattn::MakeStatus(
      relattn_attention(&desc_, workspace_.data(), workspace_.bytes(), threads_));
}

}  // namespace relattn_bench
