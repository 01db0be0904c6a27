// Table and JSON-lines output (see report.h).
#include "bench/report.h"

#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <utility>

namespace relattn_bench {
namespace {

std::string Quote(const std::string& s) {
  std::string q = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') q += '\\';
    q += (c == '\n' || c == '\t') ? ' ' : c;
  }
  return q + "\"";
}

void AddNumber(std::string& json, const char* key, double value) {
  if (!std::isfinite(value)) return;
  char buf[64];
  std::snprintf(buf, sizeof(buf), ",\"%s\":%.6g", key, value);
  json += buf;
}

void AddString(std::string& json, const char* key, const std::string& value) {
  if (!value.empty()) json += ",\"" + std::string(key) + "\":" + Quote(value);
}

// "  12.3" or blanks of the same width when the value does not apply.
std::string Cell(const char* format, double value, int width) {
  char buf[32];
  if (std::isfinite(value)) {
    std::snprintf(buf, sizeof(buf), format, value);
  } else {
    std::snprintf(buf, sizeof(buf), "%*s", width, "-");
  }
  return buf;
}

const Record* Find(const std::vector<const Record*>& row, int threads) {
  for (const Record* r : row) {
    if (r->threads == threads) return r;
  }
  return nullptr;
}

// Exit code of a shell command, -1 if it did not exit normally.
int Shell(const std::string& command) {
  const int status = std::system(command.c_str());
  return status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

std::string ToJson(const Record& r) {
  std::string json = "{\"case\":" + Quote(r.case_name) + ",\"impl\":" + Quote(r.impl) +
                     ",\"threads\":" + std::to_string(r.threads);
  AddNumber(json, "ms", r.ms);
  AddNumber(json, "gflops", r.gflops);
  AddNumber(json, "peak_fraction", r.peak_fraction);
  AddString(json, "limit", r.limit);
  AddNumber(json, "limit_fraction", r.limit_fraction);
  AddNumber(json, "gbps", r.gbps);
  AddNumber(json, "bw_fraction", r.bw_fraction);
  AddNumber(json, "vs_xnnpack", r.vs_xnnpack);
  AddNumber(json, "vs_separate", r.vs_separate);
  AddNumber(json, "tokens_per_s", r.tokens_per_s);
  AddNumber(json, "bytes_per_token", r.bytes_per_token);
  AddNumber(json, "create_ms", r.create_ms);
  AddNumber(json, "max_abs_diff", r.max_abs_diff);
  AddNumber(json, "others_load", r.others_load);
  if (r.repeats > 0) json += ",\"repeats\":" + std::to_string(r.repeats);
  AddString(json, "target", r.target);
  if (r.has_case) {
    const Case& c = r.kase;
    json += std::string(",\"kind\":") + (c.shape.decode ? "\"decode\"" : "\"prefill\"");
    json += ",\"head_dim\":" + std::to_string(c.shape.head_dim);
    json += ",\"n_q\":" + std::to_string(c.shape.n_q) + ",\"n_kv\":" + std::to_string(c.shape.n_kv);
    json += ",\"heads\":" + std::to_string(c.shape.heads);
    json += ",\"kv_heads\":" + std::to_string(c.shape.kv_heads);
    AddString(json, "mask", MaskName(c.causal));
    AddString(json, "scheme", SchemeName(c.scheme));
    AddString(json, "dtype", CaseDtypeName(c).c_str());
    if (c.shape.decode) AddString(json, "kv", KvSourceName(c.kv));
  }
  json += r.extra_json;
  AddString(json, "error", r.error);
  return json + "}";
}

void PrintLimits(FILE* out, const std::vector<Record>& limits) {
  std::vector<std::pair<std::string, std::string>> rows;  // (impl, target), first-seen order
  std::vector<int> threads;
  for (const Record& r : limits) {
    if (std::find(rows.begin(), rows.end(), std::make_pair(r.impl, r.target)) == rows.end()) {
      rows.emplace_back(r.impl, r.target);
    }
    if (std::find(threads.begin(), threads.end(), r.threads) == threads.end()) {
      threads.push_back(r.threads);
    }
  }
  std::fprintf(out, "%-34s", "machine limits (best of repeats)");
  for (int t : threads) std::fprintf(out, " %11d thr", t);
  std::fprintf(out, "\n");
  for (const auto& [impl, target] : rows) {
    const bool peak = impl != "dram_read";
    const char* kind = impl == "fma_peak"        ? "FP32 FMA peak, "
                       : impl == "bf16_dot_peak" ? "bf16 dot peak, "
                       : impl == "int8_dot_peak" ? "int8 dot peak, "
                                                 : "DRAM read 1 GiB, ";
    const std::string label = kind + target;
    std::fprintf(out, "%-34s", label.c_str());
    for (int t : threads) {
      double value = kUnset;
      for (const Record& r : limits) {
        if (r.impl == impl && r.target == target && r.threads == t)
          value = peak ? r.gflops : r.gbps;
      }
      const char* unit = impl == "int8_dot_peak" ? "GOP/s  " : peak ? "GFLOP/s" : "GB/s   ";
      std::fprintf(out, " %s %s", Cell("%8.1f", value, 8).c_str(), unit);
    }
    std::fprintf(out, "\n");
  }
}

void PrintShapeTable(FILE* out, const Shape& shape, const std::vector<Record>& records,
                     const std::vector<int>& thread_counts) {
  // Rows keyed by (mask, scheme, dtype, impl) in measuring order.
  std::vector<std::string> keys;
  std::map<std::string, std::vector<const Record*>> rows;
  for (const Record& r : records) {
    if (!r.has_case) continue;
    const std::string kv =
        r.kase.kv == KvSource::kCache ? "" : std::string("/") + KvSourceName(r.kase.kv);
    const std::string key = std::string(MaskName(r.kase.causal)) + "  " +
                            SchemeName(r.kase.scheme) + "  " + CaseDtypeName(r.kase) + kv + "  " +
                            r.impl;
    if (!rows.count(key)) keys.push_back(key);
    rows[key].push_back(&r);
  }
  const bool decode = shape.decode;
  std::fprintf(out, "\n%s: n_q %lld, n_kv %lld, %d heads on %d KV heads, d %d\n",
               ShapeName(shape).c_str(), (long long)shape.n_q, (long long)shape.n_kv, shape.heads,
               shape.kv_heads, shape.head_dim);
  std::fprintf(out, "%-30s", "mask  scheme  dtype  impl");
  for (int t : thread_counts) {
    std::fprintf(out, " | %d thr:%7s %7s %5s", t, "ms", "GFLOP/s", "peak");
    if (!decode) std::fprintf(out, " %5s", "limit");
    if (decode) std::fprintf(out, " %6s %5s", "GB/s", "bw");
    std::fprintf(out, " %7s", "vs XNN");
  }
  if (thread_counts.size() > 1) std::fprintf(out, " | %d/1 thr", thread_counts.back());
  std::fprintf(out, "\n");
  for (const std::string& key : keys) {
    const std::vector<const Record*>& row = rows[key];
    std::fprintf(out, "%-30s", key.c_str());
    for (int t : thread_counts) {
      const Record* r = Find(row, t);
      if (r && !r->error.empty()) {
        std::fprintf(out, " | error: %s", r->error.c_str());
        continue;
      }
      const Record blank;
      const Record& x = r ? *r : blank;
      std::fprintf(out, " | %s %s %s%%", Cell("%12.3f", x.ms, 12).c_str(),
                   Cell("%7.1f", x.gflops, 7).c_str(),
                   Cell("%4.0f", x.peak_fraction * 100, 4).c_str());
      if (!decode) std::fprintf(out, " %s%%", Cell("%4.0f", x.limit_fraction * 100, 4).c_str());
      if (decode) {
        std::fprintf(out, " %s %s%%", Cell("%6.1f", x.gbps, 6).c_str(),
                     Cell("%4.0f", x.bw_fraction * 100, 4).c_str());
      }
      std::fprintf(out, " %s%s", Cell("%6.2f", x.vs_xnnpack, 6).c_str(),
                   std::isfinite(x.vs_xnnpack) ? "x" : " ");
    }
    const Record* first = Find(row, thread_counts.front());
    const Record* last = Find(row, thread_counts.back());
    if (thread_counts.size() > 1 && first && last && first->error.empty() && last->error.empty()) {
      std::fprintf(out, " | %6.2fx", first->ms / last->ms);
    }
    std::fprintf(out, "\n");
  }
}

// Runs bench/plot.py with the first python3 that has matplotlib: the one on
// PATH, else Debian's /usr/bin/python3 (where python3-matplotlib installs,
// when PATH leads to another python, e.g. pyenv). None: a note, not a failure.
void DrawChart(const std::string& json_path, const std::string& png_path) {
  const std::string script = std::string(RELATTN_SOURCE_DIR) + "/bench/plot.py";
  if (json_path.find('\'') != std::string::npos || png_path.find('\'') != std::string::npos) {
    std::printf("chart: paths with a quote are not supported; no chart written\n");
    return;
  }
  for (const char* python : {"python3", "/usr/bin/python3"}) {
    if (Shell(std::string(python) + " -c 'import matplotlib' >/dev/null 2>&1") != 0) continue;
    const int code =
        Shell(std::string(python) + " '" + script + "' '" + json_path + "' '" + png_path + "'");
    if (code == 0)
      std::printf("chart: %s\n", png_path.c_str());
    else
      std::printf("chart: %s failed (exit %d); no chart written\n", script.c_str(), code);
    return;
  }
  std::printf(
      "chart: python3-matplotlib is not installed (apt-get install python3-matplotlib); "
      "no chart written\n");
}

}  // namespace relattn_bench
