// Measuring one shape (see measure.h).
#include "bench/measure.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <functional>
#include <utility>

#include "bench/peer_xnnpack.h"
#include "bench/timing.h"

namespace relattn_bench {
namespace {

double At(const std::map<int, double>& m, int threads) {
  const auto it = m.find(threads);
  return it == m.end() ? 0.0 : it->second;
}

// The limit of the instructions a relattn prefill case runs on (AVX3 with
// the CPU's dot products: Q.K in bf16 for bf16 Q/K and f16 FAST, int8 for
// i8; P.V in bf16 with FAST), its name and GFLOP/s; 0 where unmeasured.
std::pair<std::string, double> LimitOf(const Case& c, const Record& r, const Limits& limits) {
  const double fma = At(limits.peak_gflops, r.threads);
  const bool avx3 = r.target.rfind("AVX3", 0) == 0;
  const double bf16 = avx3 ? At(limits.bf16_dot_gflops, r.threads) : 0.0;
  const double int8 = avx3 ? At(limits.int8_dot_gops, r.threads) : 0.0;
  const auto mix = [&](double a) { return 2.0 / (1.0 / a + 1.0 / fma); };
  const bool bf16_qk = c.dtype == RELATTN_BF16 || (c.dtype == RELATTN_F16 && c.fast);
  if (bf16_qk && bf16 > 0 && c.fast) return {"bf16_dot_peak", bf16};
  if (bf16_qk && bf16 > 0) return {"bf16_dot_peak+fma_peak", mix(bf16)};
  if (c.dtype == RELATTN_I8 && int8 > 0) return {"int8_dot_peak+fma_peak", mix(int8)};
  return {"fma_peak", fma};
}

// Fills the fields derived from a median time.
void Derive(Record& r, double seconds, const Case& c, const Limits& limits, bool xnnpack) {
  r.ms = seconds * 1e3;
  r.gflops = UsefulFlops(c) / seconds * 1e-9;
  if (limits.peak_gflops.count(r.threads)) {
    r.peak_fraction = r.gflops / limits.peak_gflops.at(r.threads);
  }
  if (!c.shape.decode && !xnnpack) {
    const auto [name, gflops] = LimitOf(c, r, limits);
    if (gflops > 0) {
      r.limit = name;
      r.limit_fraction = r.gflops / gflops;
    }
  }
  if (c.shape.decode) {
    r.gbps = KvBytes(c.shape, xnnpack ? RELATTN_F32 : c.dtype) / seconds * 1e-9;
    if (limits.read_gbps.count(r.threads)) r.bw_fraction = r.gbps / limits.read_gbps.at(r.threads);
  }
}

double MaxAbsDiff(const std::vector<float>& a, const std::vector<float>& b) {
  double worst = 0.0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(double(a[i]) - b[i]));
  return worst;
}

}  // namespace

// Warms each runner up once (a failing runner keeps its error and is not
// timed), then runs rounds in which every runner runs once, in order.
int MeasureAlternating(std::vector<Runner>& runners, const MeasureConfig& config) {
  double round_s = 0.0;
  for (Runner& r : runners) {
    if (r.cold_caches && config.flush) config.flush->Flush();
    round_s += TimeSeconds([&] { r.error = r.run(); });
  }
  int rounds = config.fixed_rounds;
  if (rounds <= 0) {
    rounds = int(std::lround(config.budget_s / std::max(round_s, 1e-9)));
    rounds = std::clamp(rounds, config.min_rounds, config.max_rounds);
  }
  for (int round = 0; round < rounds; ++round) {
    for (Runner& r : runners) {
      if (!r.error.empty()) continue;
      if (r.cold_caches && config.flush) config.flush->Flush();
      std::string error;
      r.seconds.push_back(TimeSeconds([&] { error = r.run(); }));
      if (!error.empty()) r.error = error;
    }
  }
  return rounds;
}

ShapeResult MeasureShape(const Shape& shape, const std::vector<Case>& cases,
                         const MeasureConfig& config, const Limits& limits) {
  ShapeResult result;
  const ShapeInputs inputs(shape);
  const size_t out_elems = size_t(shape.n_q) * shape.heads * shape.head_dim;
  std::vector<float> out(out_elems), xnn_out(out_elems);
  auto pool_for = [&](int t) { return t == 1 ? nullptr : config.pool; };

  std::deque<RelattnCall> calls;  // stable addresses for the runners
  std::vector<Runner> runners;
  std::vector<Record> records;  // parallel to runners
  for (const Case& c : cases) {
    for (int t : config.thread_counts) {
      RelattnCall* call =
          &calls.emplace_back(inputs.Desc(c, out.data()), t == 1 ? nullptr : &config.threads);
      runners.emplace_back(
          [call] {
            const relattn::Status s = call->Run();
            return s.ok() ? std::string() : s.ToString();
          },
          shape.decode);
      Record r;
      r.case_name = CaseName(c);
      r.impl = "relattn";
      r.threads = t;
      r.target = config.target;
      r.has_case = true;
      r.kase = c;
      records.push_back(r);
    }
  }

  // The peer: one measurement per thread count, reported once per mask (its
  // work does not depend on the mask; its useful FLOPs do).
  XnnpackAttention xnn;
  std::string xnn_error;
  const size_t first_xnn = runners.size();
  if (config.with_xnnpack && xnn.Create(shape, inputs.q_f32(), inputs.k_f32(), inputs.v_f32(),
                                        xnn_out.data(), config.xnnpack_scratch_bytes, &xnn_error)) {
    result.xnnpack_create_ms = xnn.create_seconds() * 1e3;
    result.xnnpack_rows_per_block = xnn.rows_per_block();
    for (int t : config.thread_counts) {
      runners.emplace_back(
          [&xnn, pool = pool_for(t)] {
            std::string error;
            xnn.Run(pool, &error);
            return error;
          },
          shape.decode);
    }
  }
  result.rounds = MeasureAlternating(runners, config);

  std::map<int, double> xnn_seconds;
  for (size_t i = first_xnn; i < runners.size(); ++i) {
    if (runners[i].error.empty()) {
      xnn_seconds[config.thread_counts[i - first_xnn]] = Median(runners[i].seconds);
    }
  }
  for (size_t i = 0; i < first_xnn; ++i) {
    Record& r = records[i];
    r.repeats = int(runners[i].seconds.size());
    r.error = runners[i].error;
    if (!r.error.empty()) continue;
    const double seconds = Median(runners[i].seconds);
    Derive(r, seconds, r.kase, limits, false);
    if (xnn_seconds.count(r.threads)) r.vs_xnnpack = xnn_seconds[r.threads] / seconds;
  }
  result.records = records;

  // XNNPACK's records: one per mask the cases use, scheme none, f32.
  std::vector<bool> masks;
  for (const Case& c : cases) {
    if (std::find(masks.begin(), masks.end(), c.causal) == masks.end()) masks.push_back(c.causal);
  }
  for (bool causal : masks) {
    const Case peer_case{shape, Scheme::kNone, causal, RELATTN_F32};
    for (size_t i = first_xnn; i < runners.size(); ++i) {
      Record r;
      r.case_name = CaseName(peer_case);
      r.impl = "xnnpack";
      r.threads = config.thread_counts[i - first_xnn];
      r.has_case = true;
      r.kase = peer_case;
      r.create_ms = result.xnnpack_create_ms;
      r.repeats = int(runners[i].seconds.size());
      r.error = runners[i].error;
      if (r.error.empty()) Derive(r, xnn_seconds[r.threads], peer_case, limits, true);
      result.records.push_back(r);
    }
  }

  // The check: the peer computes the same attention as relattn (no bias; a
  // decode query sees every key, so its causal mask hides nothing).
  result.check.impl = "xnnpack";
  const Case check_case{shape, Scheme::kNone, shape.decode,
                        shape.decode ? RELATTN_F16 : RELATTN_F32};
  result.check.case_name = CaseName(check_case);
  result.check.has_case = true;
  result.check.kase = check_case;
  if (!config.with_xnnpack) return result;
  if (!xnn_error.empty() || !xnn.Run(nullptr, &xnn_error)) {
    result.check.error = xnn_error;
    return result;
  }
  RelattnCall call(inputs.Desc(check_case, out.data()), nullptr);
  const relattn::Status s = call.Run();
  if (!s.ok()) {
    result.check.error = "relattn: " + s.ToString();
  } else {
    result.check.max_abs_diff = MaxAbsDiff(out, xnn_out);
  }
  return result;
}

}  // namespace relattn_bench
