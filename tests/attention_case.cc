#include "tests/attention_case.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <thread>

#include "hwy/targets.h"
#include "lib/common/dtype.h"
#include "lib/common/f16.h"
#include "lib/common/float_element.h"
#include "lib/kernels/attention.h"
#include "lib/reference/bounds.h"
#include "lib/reference/reference.h"

namespace relattn_test {
namespace {

size_t DtypeBytes(relattn_dtype dtype) { return size_t(relattn::DtypeBytes(dtype)); }

const char* FloatName(relattn_dtype dtype) {
  return dtype == RELATTN_F16 ? "f16" : dtype == RELATTN_BF16 ? "bf16" : "f32";
}

// Fills a [tokens][heads][dim] tensor (or [heads][tokens][dim]) with uniform
// values in [-1, 1], stored as dtype; returns the strides through t.
std::vector<uint8_t> RandomTensor(std::mt19937_64& rng, int64_t tokens, int32_t heads, int32_t dim,
                                  relattn_dtype dtype, bool heads_major, relattn_tensor* t) {
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  t->dtype = dtype;
  t->token_stride = heads_major ? dim : int64_t(heads) * dim;
  t->head_stride = heads_major ? tokens * dim : dim;
  // Values are drawn in logical (token, head, dim) order whatever the layout.
  std::vector<uint8_t> bytes(size_t(tokens) * heads * dim * DtypeBytes(dtype));
  for (int64_t i = 0; i < tokens; ++i) {
    for (int32_t h = 0; h < heads; ++h) {
      for (int32_t e = 0; e < dim; ++e) {
        const float x = uniform(rng);
        const size_t at = size_t(i * t->token_stride + h * t->head_stride + e);
        relattn::StoreFloatElement(x, bytes.data(), dtype, int64_t(at));
      }
    }
  }
  t->data = bytes.data();
  return bytes;
}

std::vector<int64_t> Positions(std::mt19937_64& rng, int64_t n, int64_t start, int mode) {
  std::vector<int64_t> pos(n);
  int64_t p = start;
  for (int64_t t = 0; t < n; ++t) {
    pos[t] = p;
    p += 1 + int64_t(rng() % 3);  // gaps of 0..2 positions
  }
  if (mode == 2) std::shuffle(pos.begin(), pos.end(), rng);
  return pos;
}

}  // namespace

std::string CaseSpec::Name() const {
  static const char* kSchemes[] = {"none", "alibi", "t5", "shaw", "shaw_vector"};
  char buf[512];
  std::snprintf(buf, sizeof(buf),
                "nq=%lld nkv=%lld heads=%d/%d d=%d dv=%d %s in=%s out=%s scheme=%s(slopes=%d "
                "acausal=%d t5bi=%d t5dt=%d) causal=%d window=%lld valid=%lld qs=%lld ks=%lld "
                "posarr=%d rope=%d/%d/%g/%g int8=%d outlier=%g softcap=%g sinks=%d/%g",
                (long long)n_q, (long long)n_kv, n_heads, n_kv_heads, head_dim, v_head_dim,
                heads_major ? "HTD" : "THD", FloatName(in_dtype), FloatName(out_dtype),
                kSchemes[scheme], alibi_slopes, alibi_causal, t5_bidirectional, int(t5_dtype),
                causal, (long long)window, (long long)n_valid_kv, (long long)q_start,
                (long long)k_start, position_arrays, int(rope.pairing), rope.rotary_dims,
                (double)rope.base, (double)rope.linear_scale, int8_qk, (double)k_outlier,
                (double)softcap, int(sinks), (double)sink_offset);
  return buf;
}

Case::Case(const CaseSpec& spec) : spec_(spec) {
  std::mt19937_64 rng(spec.seed);
  relattn_attention_desc_init(&desc_);
  desc_.n_q = spec.n_q;
  desc_.n_kv = spec.n_kv;
  desc_.n_heads = spec.n_heads;
  desc_.n_kv_heads = spec.n_kv_heads;
  desc_.head_dim = spec.head_dim;
  desc_.v_head_dim = spec.v_head_dim;
  desc_.scale = spec.scale;
  q_ = RandomTensor(rng, spec.n_q, spec.n_heads, spec.head_dim, spec.in_dtype, spec.heads_major,
                    &desc_.q);
  k_ = RandomTensor(rng, spec.n_kv, spec.n_kv_heads, spec.head_dim, spec.in_dtype, spec.heads_major,
                    &desc_.k);
  v_ = RandomTensor(rng, spec.n_kv, spec.n_kv_heads, dv(), spec.in_dtype, spec.heads_major,
                    &desc_.v);
  desc_.o.dtype = spec.out_dtype;
  desc_.o.token_stride = spec.heads_major ? dv() : int64_t(spec.n_heads) * dv();
  desc_.o.head_stride = spec.heads_major ? spec.n_q * dv() : dv();
  desc_.q_pos.start = spec.q_start;
  desc_.k_pos.start = spec.k_start;
  if (spec.position_arrays) {
    q_pos_ = Positions(rng, spec.n_q, spec.q_start, spec.position_arrays);
    k_pos_ = Positions(rng, spec.n_kv, spec.k_start, spec.position_arrays);
    desc_.q_pos.positions = q_pos_.data();
    desc_.k_pos.positions = k_pos_.data();
  }
  std::uniform_real_distribution<float> table_value(-2.0f, 2.0f);
  relattn_bias& bias = desc_.bias;
  bias.kind = spec.scheme;
  if (spec.scheme == RELATTN_BIAS_ALIBI) {
    bias.alibi.causal = spec.alibi_causal;
    bias.alibi.max_bias = spec.alibi_slopes == 1 ? 4.0f : 8.0f;
    if (spec.alibi_slopes == 2) {
      std::uniform_real_distribution<float> slope(0.0f, 0.5f);
      for (int h = 0; h < spec.n_heads; ++h) slopes_.push_back(slope(rng));
      bias.alibi.slopes = slopes_.data();
    }
  } else if (spec.scheme == RELATTN_BIAS_T5) {
    const size_t n = size_t(spec.n_heads) * spec.t5_buckets;
    for (size_t i = 0; i < n; ++i) table_f32_.push_back(table_value(rng));
    bias.t5.num_buckets = spec.t5_buckets;
    bias.t5.max_distance = spec.t5_max_distance;
    bias.t5.bidirectional = spec.t5_bidirectional;
    bias.t5.table_dtype = spec.t5_dtype;
    if (spec.t5_dtype == RELATTN_F16) {
      for (float x : table_f32_) table_f16_.push_back(relattn::F32ToF16(x));
      bias.t5.table = table_f16_.data();
    } else if (spec.t5_dtype == RELATTN_I8) {
      table_i8_.resize(n);
      table_scales_.resize(spec.n_heads);
      REQUIRE(relattn_quantize_table_i8(table_f32_.data(), spec.n_heads, spec.t5_buckets,
                                        table_i8_.data(), table_scales_.data()) == RELATTN_OK);
      bias.t5.table = table_i8_.data();
      bias.t5.table_scales = table_scales_.data();
    } else {
      bias.t5.table = table_f32_.data();
    }
  } else if (spec.scheme == RELATTN_BIAS_SHAW) {
    for (int64_t i = 0; i < int64_t(spec.n_heads) * (2 * spec.shaw_k + 1); ++i) {
      table_f32_.push_back(table_value(rng));
    }
    bias.shaw.table = table_f32_.data();
    bias.shaw.k = spec.shaw_k;
  } else if (spec.scheme == RELATTN_BIAS_SHAW_VECTOR) {
    const int64_t tables = spec.shaw_vector_per_head ? spec.n_heads : 1;
    std::uniform_real_distribution<float> entry(-1.0f, 1.0f);
    for (int64_t i = 0; i < tables * (2 * spec.shaw_k + 1) * spec.head_dim; ++i) {
      table_f32_.push_back(entry(rng));
    }
    bias.shaw_vector = {table_f32_.data(), spec.shaw_k, spec.shaw_vector_per_head};
  }
  desc_.mask.causal = spec.causal;
  desc_.mask.window = spec.window;
  desc_.mask.n_valid_kv = spec.n_valid_kv;
  desc_.rope = spec.rope;
  desc_.softcap = spec.softcap;
  if (spec.sinks) {
    std::uniform_real_distribution<float> sink(-2.0f, 2.0f);
    for (int32_t h = 0; h < spec.n_heads; ++h) sinks_.push_back(spec.sink_offset + sink(rng));
    desc_.sinks = sinks_.data();
  }
  if (spec.k_outlier != 1.0f) {
    for (int64_t t = 0; t < spec.n_kv; ++t) {
      for (int32_t h = 0; h < spec.n_kv_heads; ++h) {
        for (int32_t e = 3; e < spec.head_dim; e += 8) {
          const int64_t at = t * desc_.k.token_stride + h * desc_.k.head_stride + e;
          const float x = relattn::FloatElement(k_.data(), spec.in_dtype, at) * spec.k_outlier;
          relattn::StoreFloatElement(x, k_.data(), spec.in_dtype, at);
        }
      }
    }
  }
  q_float_ = desc_.q;
  k_float_ = desc_.k;
  if (spec.int8_qk >= 1) {
    k8_.resize(size_t(spec.n_kv) * spec.n_kv_heads * spec.head_dim);
    k8_scales_.resize(size_t(spec.n_kv) * spec.n_kv_heads);
    REQUIRE(relattn_quantize_i8(&k_float_, spec.n_kv, spec.n_kv_heads, spec.head_dim, k8_.data(),
                                k8_scales_.data(), &desc_.k) == RELATTN_OK);
  }
  if (spec.int8_qk >= 2) {
    q8_.resize(size_t(spec.n_q) * spec.n_heads * spec.head_dim);
    q8_scales_.resize(size_t(spec.n_q) * spec.n_heads);
    REQUIRE(relattn_quantize_i8(&q_float_, spec.n_q, spec.n_heads, spec.head_dim, q8_.data(),
                                q8_scales_.data(), &desc_.q) == RELATTN_OK);
  }
}

void Case::ShiftPositions(int64_t delta) {
  desc_.q_pos.start += delta;
  desc_.k_pos.start += delta;
  for (int64_t& p : q_pos_) p += delta;
  for (int64_t& p : k_pos_) p += delta;
}

void Case::SetInput(char tensor, int64_t token, int32_t head, int32_t e, float value) {
  relattn_tensor& t = tensor == 'q' ? desc_.q : tensor == 'k' ? desc_.k : desc_.v;
  std::vector<uint8_t>& bytes = tensor == 'q' ? q_ : tensor == 'k' ? k_ : v_;
  const size_t at = size_t(token * t.token_stride + head * t.head_stride + e);
  relattn::StoreFloatElement(value, bytes.data(), spec_.in_dtype, int64_t(at));
}

relattn_status Case::Run(std::vector<uint8_t>* out, const relattn_threads* threads) {
  out->assign(out_elems() * DtypeBytes(spec_.out_dtype), 0xff);  // NaN in f32 and f16
  desc_.o.data = out->data();
  const int32_t n_threads = threads ? threads->n_threads : 1;
  size_t bytes = 0;
  relattn_status s = relattn_attention_workspace_size(&desc_, n_threads, &bytes);
  if (s != RELATTN_OK) return s;
  std::vector<float> ws(bytes / sizeof(float) + 16);
  void* aligned = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(ws.data()) + 63) & ~63ull);
  return relattn_attention(&desc_, aligned, bytes, threads);
}

std::vector<double> Case::Decode(const std::vector<uint8_t>& out) const {
  const int32_t dv = this->dv();
  std::vector<double> result(out_elems());
  for (int64_t i = 0; i < spec_.n_q; ++i) {
    for (int32_t h = 0; h < spec_.n_heads; ++h) {
      for (int32_t e = 0; e < dv; ++e) {
        const int64_t at = i * desc_.o.token_stride + h * desc_.o.head_stride + e;
        const double x = relattn::FloatElement(out.data(), spec_.out_dtype, at);
        result[(size_t(i) * spec_.n_heads + h) * dv + e] = x;
      }
    }
  }
  return result;
}

std::vector<double> Case::Reference() {
  std::vector<double> out(out_elems());
  relattn::reference::Attention(desc_, out.data());
  return out;
}

std::vector<double> Case::ReferenceOnFloatInputs() {
  relattn_attention_desc d = desc_;
  d.q = q_float_;
  d.k = k_float_;
  std::vector<double> out(out_elems());
  relattn::reference::Attention(d, out.data());
  return out;
}

namespace {

// The compiled targets this CPU supports, as Highway reports them.
std::vector<int64_t> AvailableTargets() {
  std::vector<int64_t> targets = hwy::SupportedAndGeneratedTargets();
#if HWY_ARCH_ARM_V7
  // Highway 1.0.3 looks for HWCAP_NEON, which armhf glibc names
  // HWCAP_ARM_NEON, so it never reports NEON on armv7. The armv7 build has
  // NEON in its compile-time baseline (toolchains/arm-linux-gnueabihf.cmake):
  // then NEON is the only target compiled, the library calls it directly, and
  // this process could not have started on a CPU without it.
  if (targets.empty() && HWY_TARGETS == HWY_STATIC_TARGET && HWY_STATIC_TARGET == HWY_NEON) {
    targets.push_back(HWY_NEON);
  }
#endif
  return targets;
}

std::string Names(const std::vector<int64_t>& targets) {
  std::string names;
  for (int64_t t : targets) names += std::string(names.empty() ? "" : " ") + hwy::TargetName(t);
  return names;
}

// RELATTN_TEST_TARGETS="SVE2,SVE" (set by the cross builds' ctest entries, one
// per emulated CPU model) picks the targets to test; each one must be
// available, so a CPU model that does not provide its target fails.
std::vector<int64_t> Requested(const std::vector<int64_t>& available, const char* list) {
  std::vector<int64_t> targets;
  std::string names = std::string(list) + ",";
  for (size_t begin = 0, end; (end = names.find(',', begin)) != std::string::npos;
       begin = end + 1) {
    const std::string name = names.substr(begin, end - begin);
    if (name.empty()) continue;
    const auto it = std::find_if(available.begin(), available.end(),
                                 [&](int64_t t) { return name == hwy::TargetName(t); });
    REQUIRE_MESSAGE(it != available.end(), "RELATTN_TEST_TARGETS names ", name,
                    ", which is not among the available targets: ", Names(available));
    targets.push_back(*it);
  }
  return targets;
}

}  // namespace

std::vector<int64_t> TargetsUnderTest() {
  hwy::SetSupportedTargetsForTest(0);
  const std::vector<int64_t> available = AvailableTargets();
  const char* requested = std::getenv("RELATTN_TEST_TARGETS");
  const std::vector<int64_t> targets =
      requested && *requested ? Requested(available, requested) : available;
  REQUIRE_MESSAGE(!targets.empty(),
                  "no SIMD target is both compiled and supported: nothing tested");
  static bool printed = false;
  if (!printed) {
    std::printf("SIMD targets under test: %s", Names(targets).c_str());
    if (targets != available) std::printf(" (available: %s)", Names(available).c_str());
    std::printf("\n");
    printed = true;
  }
  return targets;
}

void UseTarget(int64_t target) {
  hwy::SetSupportedTargetsForTest(target);
  if (target != 0) REQUIRE(std::string(relattn::ActiveTargetName()) == hwy::TargetName(target));
}

std::string TargetNameOf(int64_t target) { return hwy::TargetName(target); }

// lib/reference/bounds.h states and derives the bounds.
double ErrorBound(relattn_dtype out_dtype) { return relattn::bounds::Output(out_dtype); }

void StdThreadsParallelFor(void*, size_t n_tasks, relattn_task_fn task, void* task_arg) {
  std::vector<std::thread> workers;
  for (size_t i = 0; i < n_tasks; ++i) workers.emplace_back(task, task_arg, i);
  for (std::thread& w : workers) w.join();
}

WorstErrors::~WorstErrors() {
  for (auto& [label, err] : worst_)
    std::printf("%s: max |error| %s: %.3g\n", suite_, label.c_str(), err);
}

void WorstErrors::Note(const std::string& label, double err) {
  double& w = worst_[label];
  w = std::max(w, err);
}

double CheckAllTargets(const std::function<std::vector<double>()>& run,
                       const std::vector<double>& expected, double bound,
                       const std::string& context) {
  double worst = 0.0;
  ForEachTarget([&](int64_t target) {
    INFO(TargetNameOf(target), " ", context);
    const double err = MaxAbsDiff(run(), expected);
    CHECK(err <= bound);
    worst = std::max(worst, err);
  });
  return worst;
}

double CheckAllTargets(Case& c, const std::vector<double>& expected, double bound,
                       const std::string& context) {
  return CheckAllTargets(
      [&] {
        std::vector<uint8_t> out;
        REQUIRE(c.Run(&out) == RELATTN_OK);
        return c.Decode(out);
      },
      expected, bound, context);
}

double CheckAllTargets(const CaseSpec& spec) {
  Case c(spec);
  const std::vector<double> expected = c.Reference();
  return CheckAllTargets(c, expected, ErrorBound(spec.out_dtype), spec.Name());
}

bool RowHasNaN(const std::vector<double>& out, int64_t i, int32_t h, int32_t heads, int32_t dv) {
  for (int32_t e = 0; e < dv; ++e) {
    if (std::isnan(out[(size_t(i) * heads + h) * dv + e])) return true;
  }
  return false;
}

double MaxAbsDiff(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double worst = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double diff = std::fabs(a[i] - b[i]);
    if (!(diff <= worst)) worst = std::isnan(diff) ? INFINITY : diff;
  }
  return worst;
}

}  // namespace relattn_test
