// Decode tokens/s for real model shapes (see models.h).
#include "bench/models.h"

#include <cstdlib>
#include <deque>
#include <random>

#include "bench/cases.h"
#include "bench/timing.h"
#include "lib/common/f16.h"

namespace relattn_bench {
namespace {

struct KvDtypes {
  relattn_dtype k, v;
};
constexpr KvDtypes kKvDtypes[] = {{RELATTN_F32, RELATTN_F32},
                                  {RELATTN_F16, RELATTN_F16},
                                  {RELATTN_I8, RELATTN_F16},
                                  {RELATTN_I8, RELATTN_I8},
                                  {RELATTN_Q4, RELATTN_Q4}};

// Bytes of one stored row of `dim` elements (an int8 row carries its f32
// scale, a Q4 row is q4_0 blocks: 18 bytes per 32 values).
double RowBytes(relattn_dtype dtype, int32_t dim) {
  if (dtype == RELATTN_I8) return dim + 4.0;
  if (dtype == RELATTN_Q4) return dim / 32 * 18.0;
  return dim * (dtype == RELATTN_F32 ? 4.0 : 2.0);
}

// A KV cache holding m random tokens (f16 inputs in [-1, 1), stored as `dtypes`).
class ModelCache {
 public:
  ModelCache(const ModelShape& model, int64_t m, KvDtypes dtypes) {
    relattn_kv_cache_desc cd{};
    cd.n_kv_heads = model.kv_heads;
    cd.head_dim = model.head_dim;
    cd.capacity = m;
    cd.k_dtype = dtypes.k;
    cd.v_dtype = dtypes.v;
    if (model.rope_base > 0) {
      cd.rope.pairing = RELATTN_ROPE_HALVES;
      cd.rope.base = model.rope_base;
    }
    std::mt19937_64 rng(47);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<uint16_t> kv(size_t(m) * model.kv_heads * model.head_dim);
    for (uint16_t& x : kv) x = relattn::F32ToF16(u(rng));
    size_t bytes = 0;
    status_ = relattn::MakeStatus(relattn_kv_cache_size(&cd, &bytes));
    if (status_) {
      const size_t a = RELATTN_KV_CACHE_ALIGNMENT;
      memory_ = std::aligned_alloc(a, (bytes + a - 1) / a * a);
      status_ = relattn::MakeStatus(relattn_kv_cache_init(&cd, memory_, bytes, &cache_));
    }
    const relattn_tensor t =
        relattn::TokensHeadsDim(kv.data(), RELATTN_F16, model.kv_heads, model.head_dim);
    if (status_) status_ = relattn::MakeStatus(relattn_kv_cache_append(cache_, m, &t, &t, nullptr));
  }
  ModelCache(const ModelCache&) = delete;
  ModelCache& operator=(const ModelCache&) = delete;
  ~ModelCache() { std::free(memory_); }

  const relattn::Status& status() const { return status_; }
  relattn_kv_cache* cache() const { return cache_; }

 private:
  void* memory_ = nullptr;
  relattn_kv_cache* cache_ = nullptr;
  relattn::Status status_;
};

// The inputs of one layer's decode call: the query token and the per-head tables.
struct LayerInputs {
  std::vector<uint16_t> q;
  std::vector<float> out, t5_table;

  explicit LayerInputs(const ModelShape& model) {
    std::mt19937_64 rng(53);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    q.resize(size_t(model.heads) * model.head_dim);
    for (uint16_t& x : q) x = relattn::F32ToF16(u(rng));
    out.resize(q.size());
    t5_table.resize(size_t(model.heads) * kT5Buckets);
    for (float& x : t5_table) x = 2.0f * u(rng);
  }

  // One new token at position m over the cache; local: Gemma 2's sliding window.
  relattn_attention_desc Desc(const ModelShape& model, relattn_kv_cache* cache, int64_t m,
                              bool local) {
    relattn_attention_desc d;
    relattn_attention_desc_init(&d);
    d.n_q = 1;
    d.n_heads = model.heads;
    d.q = relattn::TokensHeadsDim(q.data(), RELATTN_F16, model.heads, model.head_dim);
    d.o = relattn::OutputTokensHeadsDim(out.data(), RELATTN_F32, model.heads, model.head_dim);
    d.q_pos.start = m;
    d.kv_cache = cache;
    d.mask.causal = 1;
    if (local) d.mask.window = model.window;
    d.softcap = model.softcap;
    if (model.rope_base > 0) {
      d.rope.pairing = RELATTN_ROPE_HALVES;
      d.rope.base = model.rope_base;
    }
    d.bias.kind = model.bias;
    if (model.bias == RELATTN_BIAS_ALIBI) {
      d.bias.alibi.max_bias = 8.0f;
      d.bias.alibi.causal = 1;
    } else if (model.bias == RELATTN_BIAS_T5) {
      d.bias.t5 = {t5_table.data(), RELATTN_F32, nullptr, kT5Buckets, kT5MaxDistance, 0};
    }
    return d;
  }
};

// Layers of each kind: {global, local} (local only with a window).
std::vector<int32_t> LayerCounts(const ModelShape& model) {
  if (model.window <= 0) return {model.layers};
  return {model.layers / 2, model.layers - model.layers / 2};
}

std::string CaseNameOf(const ModelShape& model, int64_t m, KvDtypes dt) {
  return "model/" + model.name + "/m" + std::to_string(m) + "/k_" + DtypeName(dt.k) + "/v_" +
         DtypeName(dt.v);
}

// The record of one (model, m, dtypes, threads) from its layer kinds' runners.
Record ModelRecord(const ModelShape& model, int64_t m, KvDtypes dt, int threads,
                   const Runner* kinds, const Limits& limits, const std::string& target) {
  Record r;
  r.case_name = CaseNameOf(model, m, dt);
  r.impl = "relattn";
  r.threads = threads;
  r.target = target;
  const std::vector<int32_t> counts = LayerCounts(model);
  double seconds = 0, bytes = 0;
  const double row_bytes = RowBytes(dt.k, model.head_dim) + RowBytes(dt.v, model.head_dim);
  for (size_t kind = 0; kind < counts.size(); ++kind) {
    if (!kinds[kind].error.empty()) r.error = kinds[kind].error;
    if (r.error.empty()) seconds += counts[kind] * Median(kinds[kind].seconds);
    const int64_t keys = kind == 1 ? std::min(m, model.window) : m;
    bytes += counts[kind] * double(keys) * model.kv_heads * row_bytes;
  }
  if (!r.error.empty()) return r;
  r.ms = seconds * 1e3;
  r.gbps = bytes / seconds * 1e-9;
  if (limits.read_gbps.count(threads)) r.bw_fraction = r.gbps / limits.read_gbps.at(threads);
  char extra[512];
  std::snprintf(extra, sizeof(extra),
                ",\"model\":\"%s\",\"layers\":%d,\"heads\":%d,\"kv_heads\":%d,\"head_dim\":%d,"
                "\"n_kv\":%lld,\"k_dtype\":\"%s\",\"v_dtype\":\"%s\"",
                model.name.c_str(), model.layers, model.heads, model.kv_heads, model.head_dim,
                static_cast<long long>(m), DtypeName(dt.k), DtypeName(dt.v));
  r.extra_json = extra;
  r.tokens_per_s = 1.0 / seconds;
  r.bytes_per_token = bytes;
  return r;
}

// Times one model at one cache length and dtype pair, every thread count.
std::vector<Record> MeasureOne(const ModelShape& model, int64_t m, KvDtypes dt,
                               const MeasureConfig& config, const Limits& limits) {
  const ModelCache cache(model, m, dt);
  LayerInputs inputs(model);
  const size_t n_kinds = LayerCounts(model).size();
  std::deque<RelattnCall> calls;
  std::vector<Runner> runners;  // [threads][kind]
  for (int t : config.thread_counts) {
    for (size_t kind = 0; kind < n_kinds; ++kind) {
      RelattnCall* call = &calls.emplace_back(inputs.Desc(model, cache.cache(), m, kind == 1),
                                              t == 1 ? nullptr : &config.threads);
      runners.emplace_back(
          [call, &cache] {
            if (!cache.status()) return cache.status().ToString();
            const relattn::Status s = call->Run();
            return s ? std::string() : s.ToString();
          },
          true);
    }
  }
  MeasureAlternating(runners, config);
  std::vector<Record> records;
  for (size_t i = 0; i < config.thread_counts.size(); ++i) {
    records.push_back(ModelRecord(model, m, dt, config.thread_counts[i], &runners[i * n_kinds],
                                  limits, config.target));
  }
  return records;
}

void PrintModelHeader(FILE* out, const ModelShape& model) {
  const char* bias = model.bias == RELATTN_BIAS_ALIBI ? ", ALiBi"
                     : model.bias == RELATTN_BIAS_T5  ? ", T5 buckets"
                                                      : "";
  std::fprintf(out, "\nmodel %s: %d layers, %d heads on %d KV heads, d %d%s%s", model.name.c_str(),
               model.layers, model.heads, model.kv_heads, model.head_dim,
               model.rope_base > 0 ? ", RoPE" : "", bias);
  if (model.softcap > 0) std::fprintf(out, ", soft-cap %g", model.softcap);
  if (model.window > 0)
    std::fprintf(out, ", every other layer a %lld-key window",
                 static_cast<long long>(model.window));
  std::fprintf(out, "\n  %-7s %-6s %12s %7s %11s %9s %7s %6s\n", "cache", "K/V", "MB/token",
               "threads", "ms/token", "tokens/s", "GB/s", "DRAM");
}

void PrintModelRow(FILE* out, const Record& r, int64_t m, KvDtypes dt) {
  const std::string kv = std::string(DtypeName(dt.k)) + "/" + DtypeName(dt.v);
  if (!r.error.empty()) {
    std::fprintf(out, "  m%-6lld %-6s error: %s\n", static_cast<long long>(m), kv.c_str(),
                 r.error.c_str());
    return;
  }
  std::fprintf(out, "  m%-6lld %-6s %12.2f %7d %11.3f %9.1f %7.2f %5.0f%%\n",
               static_cast<long long>(m), kv.c_str(), r.bytes_per_token * 1e-6, r.threads, r.ms,
               r.tokens_per_s, r.gbps, r.bw_fraction * 100);
}

}  // namespace

const std::vector<ModelShape>& NamedModels() {
  static const std::vector<ModelShape> models = {
      {"llama3-8b", 32, 32, 8, 128, RELATTN_BIAS_NONE, 500000.0f, 0.0f, 0},
      {"llama3.2-1b", 16, 32, 8, 64, RELATTN_BIAS_NONE, 500000.0f, 0.0f, 0},
      {"qwen2.5-0.5b", 24, 14, 2, 64, RELATTN_BIAS_NONE, 1000000.0f, 0.0f, 0},
      {"gemma2-2b", 26, 8, 4, 256, RELATTN_BIAS_NONE, 10000.0f, 50.0f, 4096},
      {"phi3-mini", 32, 32, 32, 96, RELATTN_BIAS_NONE, 10000.0f, 0.0f, 0},
      {"bloom-560m", 24, 16, 16, 64, RELATTN_BIAS_ALIBI, 0.0f, 0.0f, 0},
      {"t5-small", 6, 8, 8, 64, RELATTN_BIAS_T5, 0.0f, 0.0f, 0},
  };
  return models;
}

const ModelShape* FindModel(const std::string& name) {
  for (const ModelShape& m : NamedModels()) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

std::vector<Record> MeasureModels(const std::vector<ModelShape>& models,
                                  const std::vector<int64_t>& cache_lens,
                                  const MeasureConfig& config, const Limits& limits, FILE* table) {
  std::vector<Record> records;
  for (const ModelShape& model : models) {
    PrintModelHeader(table, model);
    for (int64_t m : cache_lens) {
      for (const KvDtypes& dt : kKvDtypes) {
        std::fprintf(stderr, "measuring %s...\n", CaseNameOf(model, m, dt).c_str());
        for (const Record& r : MeasureOne(model, m, dt, config, limits)) {
          PrintModelRow(table, r, m, dt);
          records.push_back(r);
        }
        std::fflush(table);
      }
    }
  }
  return records;
}

}  // namespace relattn_bench
