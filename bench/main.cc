// relattn-bench: relattn against XNNPACK's unfused attention and against the
// machine's measured limits, in one run. `relattn-bench --help` for options.
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/cases.h"
#include "bench/cpu_load.h"
#include "bench/limits.h"
#include "bench/limits_kernels.h"
#include "bench/measure.h"
#include "bench/models.h"
#include "bench/peer_xnnpack.h"
#include "bench/report.h"
#include "bench/sequences.h"
#include "relattn/relattn.h"

namespace relattn_bench {
namespace {

constexpr char kUsage[] = R"(usage: relattn-bench [options]
Times relattn (1 and all threads) against XNNPACK's unfused attention and the
machine's measured FP32 FMA peak and DRAM read bandwidth, in one run.
  --quick           short run (under a minute): d 128, n 512 and 2048, f16,
                    decode m 4096 (none, ALiBi; none over tensors), 3..7 rounds
  --case SUBSTRING  only cases whose name contains SUBSTRING (repeatable: any
                    matches); names look like prefill/d128/n2048/causal/alibi/f16
                    and decode/d128/m32768/causal/none/f16, over tensors
                    decode/d128/m32768/thd/causal/none/f16 (--list shows them)
  --target NAME     force relattn's SIMD target: AVX3, AVX2, SSE4, SSSE3, SCALAR
                    (of those compiled and supported); limits are always measured
                    for every target, fractions use the best target's peak
  --json FILE       also write one JSON object per measurement, one per line, to
                    FILE ('-': stdout; the table then goes to stderr)
  --chart FILE.png  draw GFLOP/s against n with bench/plot.py (python3-matplotlib;
                    if it is missing, a note is printed and the run goes on)
  --rounds N        timed rounds per shape (default: what fits in a time budget)
  --no-xnnpack      skip the XNNPACK peer
  --xnnpack-block-kib K  XNNPACK processes query rows in blocks whose scores
                    take about K KiB, so they stay in cache between its three
                    operators (default 0: the fastest of 256 KiB, 1, 4, 16 MiB,
                    timed per shape; a K above n*m/256: all rows at once)
  --model NAME      decode tokens/s of a model's attention, all layers, instead of
                    the cases (repeatable; 'all': every name): llama3-8b,
                    llama3.2-1b, qwen2.5-0.5b, gemma2-2b, phi3-mini, bloom-560m,
                    t5-small (its decoder); each cache length, each cache K/V dtype
                    (f32/f32, f16/f16, i8/f16, i8/i8, q4/q4), K/V cold for every layer
  --heads H --kv-heads K --head-dim D [--layers L]
                    the same for any shape (named "custom"; K defaults to H)
  --cache-len M     cache lengths for --model (repeatable; default 1024 8192 32768)
  --list            print the case names and exit
  --help            this text
JSON objects: case, impl (relattn, xnnpack, fma_peak, bf16_dot_peak, int8_dot_peak,
dram_read), threads, ms,
and where they apply gflops (useful), peak_fraction, limit and limit_fraction (prefill:
the peak of the instructions it runs on, as the table's limit column), gbps, bw_fraction,
vs_xnnpack (XNNPACK ms / relattn ms), create_ms, max_abs_diff (XNNPACK's check),
repeats, target, others_load (CPU share other processes took meanwhile), error,
and the case's kind, head_dim, n_q, n_kv, heads, kv_heads, mask, scheme, dtype, and
for decode kv (cache: relattn's KV cache; thd, htd: the caller's f16 tensors
[tokens][heads][d], [heads][tokens][d]).
--model objects: case model/NAME/mM/k_DTYPE/v_DTYPE, ms (one token, all layers),
tokens_per_s, bytes_per_token (K and V read), gbps, bw_fraction, model, layers,
heads, kv_heads, head_dim, n_kv, k_dtype, v_dtype.
The limits are objects with case "limits". The sequence cases (packed/..., tree/...)
have impl relattn (one call) and relattn_separate (the calls it replaces), repeats
(how many), and vs_separate (separate ms / one-call ms) on the one call's object.
)";

struct Options {
  bool quick = false, list = false, with_xnnpack = true;
  std::vector<std::string> case_filters;
  std::string target, json_path, chart_path;
  int rounds = 0;
  long xnnpack_block_kib = 0;
  std::vector<ModelShape> models;  // --model, or the custom shape
  ModelShape custom{"custom"};
  std::vector<int64_t> cache_lens;
};

[[noreturn]] void Usage(const char* error) {
  std::fprintf(stderr, "relattn-bench: %s\n%s", error, kUsage);
  std::exit(2);
}

// value as an integer in 1..max, else a usage error naming flag.
int PositiveInt(const std::string& flag, const std::string& value, long max) {
  char* end = nullptr;
  const long x = std::strtol(value.c_str(), &end, 10);
  if (value.empty() || *end != '\0' || x < 1 || x > max) {
    Usage((flag + " takes an integer in 1.." + std::to_string(max) + ", not '" + value + "'")
              .c_str());
  }
  return int(x);
}

// The named model ('all': every one) appended to models, else a usage error.
void AddModels(const std::string& name, std::vector<ModelShape>& models) {
  if (name == "all") {
    models.insert(models.end(), NamedModels().begin(), NamedModels().end());
    return;
  }
  if (const ModelShape* m = FindModel(name)) {
    models.push_back(*m);
    return;
  }
  std::string names;
  for (const ModelShape& m : NamedModels()) names += " " + m.name;
  Usage(("unknown --model '" + name + "'; the names are all" + names).c_str());
}

Options Parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Usage((flag + " needs a value").c_str());
      return argv[++i];
    };
    if (flag == "--help" || flag == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (flag == "--quick") {
      o.quick = true;
    } else if (flag == "--list") {
      o.list = true;
    } else if (flag == "--no-xnnpack") {
      o.with_xnnpack = false;
    } else if (flag == "--case") {
      o.case_filters.push_back(value());
    } else if (flag == "--target") {
      o.target = value();
    } else if (flag == "--json") {
      o.json_path = value();
    } else if (flag == "--chart") {
      o.chart_path = value();
    } else if (flag == "--rounds") {
      o.rounds = std::atoi(value().c_str());
    } else if (flag == "--xnnpack-block-kib") {
      o.xnnpack_block_kib = std::atol(value().c_str());
    } else if (flag == "--model") {
      AddModels(value(), o.models);
    } else if (flag == "--heads") {
      o.custom.heads = PositiveInt(flag, value(), RELATTN_MAX_HEADS);
    } else if (flag == "--kv-heads") {
      o.custom.kv_heads = PositiveInt(flag, value(), RELATTN_MAX_HEADS);
    } else if (flag == "--head-dim") {
      o.custom.head_dim = PositiveInt(flag, value(), 256);
    } else if (flag == "--layers") {
      o.custom.layers = PositiveInt(flag, value(), 1000);
    } else if (flag == "--cache-len") {
      o.cache_lens.push_back(PositiveInt(flag, value(), 1 << 24));
    } else {
      Usage(("unknown option " + flag).c_str());
    }
  }
  if (o.custom.heads || o.custom.kv_heads || o.custom.head_dim) {
    if (!o.custom.heads || !o.custom.head_dim) Usage("a custom shape needs --heads and --head-dim");
    if (!o.custom.kv_heads) o.custom.kv_heads = o.custom.heads;
    if (o.custom.heads % o.custom.kv_heads)
      Usage("--kv-heads must divide --heads (grouped-query attention)");
    o.models.push_back(o.custom);
  }
  if (!o.models.empty() && o.cache_lens.empty()) o.cache_lens = {1024, 8192, 32768};
  return o;
}

bool SelectedName(const Options& o, const std::string& name) {
  if (o.case_filters.empty()) return true;
  return std::any_of(o.case_filters.begin(), o.case_filters.end(),
                     [&](const std::string& f) { return name.find(f) != std::string::npos; });
}

bool Selected(const Options& o, const Case& c) { return SelectedName(o, CaseName(c)); }

bool SelectedSequence(const std::string& name, const void* options) {
  return SelectedName(*static_cast<const Options*>(options), name);
}

std::string CpuModel() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown CPU";
}

// FMA peak per target and thread count, DRAM read bandwidth on 1 GiB.
std::vector<Record> MeasureLimits(const Options& o, const MeasureConfig& config, Limits& limits) {
  std::vector<Record> records;
  const double seconds = o.quick ? 0.1 : 0.25;
  for (const Target& target : AvailableTargets()) {
    ForceTarget(&target);
    for (int t : config.thread_counts) {
      Record r;
      r.case_name = "limits";
      r.impl = "fma_peak";
      r.threads = t;
      r.target = target.name;
      r.gflops = MeasureFmaPeakGflops(t == 1 ? nullptr : config.pool, t, seconds, 3);
      limits.peak_gflops[t] = std::max(limits.peak_gflops[t], r.gflops);
      records.push_back(r);
    }
  }
  ForceTarget(nullptr);
  const struct {
    const char* impl;
    const char* target;
    double (*measure)(pthreadpool_t, int, double, int);
    std::map<int, double> Limits::*limit;
  } dots[] = {{"bf16_dot_peak", "AVX512_BF16", MeasureBf16DotPeakGflops, &Limits::bf16_dot_gflops},
              {"int8_dot_peak", "AVX512_VNNI", MeasureInt8DotPeakGops, &Limits::int8_dot_gops}};
  for (const auto& dot : dots) {
    for (int t : config.thread_counts) {
      Record r;
      r.case_name = "limits";
      r.impl = dot.impl;
      r.threads = t;
      r.target = dot.target;
      r.gflops = dot.measure(t == 1 ? nullptr : config.pool, t, seconds, 3);
      if (r.gflops <= 0) continue;
      records.push_back(r);
      (limits.*dot.limit)[t] = r.gflops;
    }
  }
  const BigBuffer buffer(size_t{1} << 30);
  if (!buffer.ok()) {
    std::fprintf(stderr, "relattn-bench: cannot allocate 1 GiB: no bandwidth figures\n");
    return records;
  }
  for (int t : config.thread_counts) {
    Record r;
    r.case_name = "limits";
    r.impl = "dram_read";
    r.threads = t;
    r.target = LimitsTargetName();
    r.gbps = buffer.MeasureReadGbps(t == 1 ? nullptr : config.pool, t, o.quick ? 3 : 5);
    limits.read_gbps[t] = r.gbps;
    records.push_back(r);
  }
  return records;
}

// Notes in the table, and in every record, how much CPU other processes took
// while these were measured; above 5% the times are not trustworthy.
void WarnIfDisturbed(FILE* table, double others_load, std::vector<Record>& records) {
  if (others_load < 0) return;
  for (Record& r : records) r.others_load = others_load;
  if (others_load > 0.05) {
    std::fprintf(table,
                 "  WARNING: other processes took %.0f%% of the CPUs meanwhile: these "
                 "times are disturbed\n",
                 others_load * 100);
  }
}

int Main(int argc, char** argv) {
  const Options o = Parse(argc, argv);
  std::vector<std::pair<Shape, std::vector<Case>>> plan;
  for (const Shape& shape : BenchShapes(o.quick)) {
    std::vector<Case> cases;
    for (const Case& c : CasesOf(shape, o.quick)) {
      if (Selected(o, c)) cases.push_back(c);
    }
    if (!cases.empty()) plan.emplace_back(shape, cases);
  }
  if (o.list) {
    for (const auto& [shape, cases] : plan) {
      for (const Case& c : cases) std::printf("%s\n", CaseName(c).c_str());
    }
    for (const std::string& name : SequenceCaseNames()) {
      if (SelectedName(o, name)) std::printf("%s\n", name.c_str());
    }
    return 0;
  }
  const std::vector<Target> targets = AvailableTargets();
  const Target* forced = o.target.empty() ? nullptr : FindTarget(targets, o.target);
  if (!o.target.empty() && forced == nullptr)
    Usage(("target " + o.target + " is not available").c_str());

  FILE* table = o.json_path == "-" ? stderr : stdout;
  std::string json_path = o.json_path;
  if (json_path.empty() && !o.chart_path.empty()) {
    char temp[] = "/tmp/relattn-bench-XXXXXX";
    const int fd = mkstemp(temp);
    if (fd >= 0) close(fd);
    json_path = temp;
  }
  FILE* json = json_path.empty()  ? nullptr
               : json_path == "-" ? stdout
                                  : std::fopen(json_path.c_str(), "w");
  if (!json_path.empty() && json == nullptr) Usage(("cannot write " + json_path).c_str());
  auto emit = [&](const Record& r) {
    if (json) std::fprintf(json, "%s\n", ToJson(r).c_str());
  };

  MeasureConfig config;
  const int n_threads = int(std::max(1u, std::thread::hardware_concurrency()));
  config.thread_counts = n_threads > 1 ? std::vector<int>{1, n_threads} : std::vector<int>{1};
  config.pool = n_threads > 1 ? pthreadpool_create(size_t(n_threads)) : nullptr;
  if (config.pool) relattn_threads_from_pthreadpool(config.pool, &config.threads);
  config.with_xnnpack = o.with_xnnpack;
  config.xnnpack_scratch_bytes = size_t(std::max(0L, o.xnnpack_block_kib)) << 10;
  config.budget_s = o.quick ? 1.5 : 8.0;
  config.max_rounds = o.quick ? 7 : 11;
  config.fixed_rounds = o.rounds;

  std::fprintf(table, "relattn-bench: relattn %s on %s, %d threads\n", relattn_version_string(),
               CpuModel().c_str(), n_threads);
  std::fflush(table);
  std::fprintf(stderr, "measuring the machine's limits...\n");
  Limits limits;
  const OthersLoad limits_load;
  std::vector<Record> limit_records = MeasureLimits(o, config, limits);
  PrintLimits(table, limit_records);
  WarnIfDisturbed(table, limits_load.Fraction(), limit_records);
  for (const Record& r : limit_records) emit(r);

  ForceTarget(forced);
  config.target = relattn_active_target();
  auto finish = [&] {
    if (json && json != stdout) std::fclose(json);
    if (!o.chart_path.empty()) DrawChart(json_path, o.chart_path);
    if (o.json_path.empty() && !json_path.empty()) std::remove(json_path.c_str());
    if (config.pool) pthreadpool_destroy(config.pool);
    return 0;
  };
  if (!o.models.empty()) {
    std::fprintf(table,
                 "\nrelattn SIMD target %s%s. Decode of one token, every layer's attention "
                 "(q f16, output f32) over its KV cache of m tokens; each layer's call is "
                 "timed with the CPU caches flushed before it (a model streams its weights "
                 "between layers), median of alternating rounds; ms/token = the sum over "
                 "layers. MB/token: K and V bytes read (int8 rows with their f32 scale); "
                 "DRAM: GB/s over the measured DRAM read bandwidth, same threads.\n",
                 config.target.c_str(), forced ? " (forced)" : "");
    const BigBuffer flush(size_t{256} << 20);
    config.flush = &flush;
    config.budget_s = o.quick ? 0.5 : 2.0;
    const OthersLoad load;
    std::vector<Record> records = MeasureModels(o.models, o.cache_lens, config, limits, table);
    WarnIfDisturbed(table, load.Fraction(), records);
    for (const Record& r : records) emit(r);
    return finish();
  }
  std::string error;
  if (config.with_xnnpack && !InitializeXnnpack(&error)) {
    std::fprintf(stderr, "relattn-bench: %s; XNNPACK left out\n", error.c_str());
    config.with_xnnpack = false;
  }
  const bool any_decode =
      std::any_of(plan.begin(), plan.end(), [](const auto& p) { return p.first.decode; });
  const BigBuffer flush(any_decode ? size_t{256} << 20 : 4096);
  config.flush = &flush;
  std::fprintf(table,
               "\nrelattn SIMD target %s%s. Each time: median of one call over rounds that "
               "alternate every implementation, after a warm-up call.\n"
               "GFLOP/s counts useful work: 4*d*heads FLOPs per visible query-key pair (a causal "
               "prefill has n(n+1)/2, about half of n*m).\n"
               "peak: fraction of the measured FP32 FMA peak (best target, same thread count). "
               "limit: of the peak of the instructions the case runs on (bf16 dot for bf16 and "
               "*fast Q.K and fast P.V, int8 dot for i8 Q.K, FMA for the rest; mixed: harmonic "
               "mean). "
               "vs XNN: XNNPACK ms / relattn ms, same threads (> 1: relattn faster).\n"
               "XNNPACK: f32 inputs (its 2022 snapshot has no usable f16 path), no bias (favours "
               "it), no mask: its causal row times the full unmasked n*m attention,\n"
               "counted on the causal useful FLOPs. Decode: caches flushed before each call; "
               "GB/s = K+V bytes in the impl's dtype (XNNPACK f32) read once, per second.\n",
               config.target.c_str(), forced ? " (forced)" : "");
  for (const auto& [shape, cases] : plan) {
    std::fflush(table);
    std::fprintf(stderr, "measuring %s (%zu cases)...\n", ShapeName(shape).c_str(), cases.size());
    const OthersLoad load;
    ShapeResult result = MeasureShape(shape, cases, config, limits);
    PrintShapeTable(table, shape, result.records, config.thread_counts);
    if (config.with_xnnpack) {
      std::fprintf(table,
                   "  XNNPACK: operators created (K, V packed) in %.2f ms, %lld query rows "
                   "per block; check vs relattn on %s: ",
                   result.xnnpack_create_ms, result.xnnpack_rows_per_block,
                   result.check.case_name.c_str());
      if (result.check.error.empty()) {
        std::fprintf(table, "max |diff| = %.3g\n", result.check.max_abs_diff);
      } else {
        std::fprintf(table, "%s\n", result.check.error.c_str());
      }
      emit(result.check);
    }
    std::fprintf(table, "  %d rounds\n", result.rounds);
    WarnIfDisturbed(table, load.Fraction(), result.records);
    for (const Record& r : result.records) emit(r);
    if (json) std::fflush(json);
    std::fflush(table);
  }
  {
    std::fprintf(stderr, "measuring the sequence cases...\n");
    const OthersLoad load;
    std::vector<Record> records = MeasureSequences(config, SelectedSequence, &o);
    PrintSequenceTable(table, records);
    WarnIfDisturbed(table, load.Fraction(), records);
    for (const Record& r : records) emit(r);
  }
  return finish();
}

}  // namespace
}  // namespace relattn_bench

int main(int argc, char** argv) { return relattn_bench::Main(argc, argv); }
