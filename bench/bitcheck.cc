// relattn-bitcheck: one FNV-1a hash of the output bits of every bench case on
// every compiled and supported SIMD target (one thread), so that two builds of
// the library (before and after a change meant to keep results) can be
// compared line by line: `diff <(old/relattn-bitcheck) <(new/relattn-bitcheck)`.
// The best target runs every bench case of the full run but n 8192; the other
// targets run the n 512 shapes, decode and a few odd shapes (d 80, GQA, n 100).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "bench/cases.h"
#include "hwy/targets.h"

namespace relattn_bench {
namespace {

uint64_t Fnv1a(const void* data, size_t bytes) {
  const unsigned char* p = static_cast<const unsigned char*>(data);
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < bytes; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

std::vector<Shape> CheckShapes(bool best) {
  std::vector<Shape> shapes;
  for (const Shape& s : BenchShapes(false)) {
    if (s.n_q == 8192 || (!best && !s.decode && s.n_q > 512)) continue;
    shapes.push_back(s);
  }
  shapes.push_back({false, 80, 100, 100, 4, 2});
  shapes.push_back({false, 160, 130, 130, 2, 2});
  shapes.push_back({false, 32, 300, 300, 16, 2});
  shapes.push_back({true, 64, 3, 1000, 8, 2});
  shapes.push_back({true, 80, 7, 5000, 4, 4});
  return shapes;
}

int Run() {
  std::vector<int64_t> targets = hwy::SupportedAndGeneratedTargets();
  std::sort(targets.begin(), targets.end());  // Highway: lower bits are better targets
  int failures = 0;
  for (size_t t = 0; t < targets.size(); ++t) {
    hwy::SetSupportedTargetsForTest(targets[t]);
    for (const Shape& shape : CheckShapes(t == 0)) {
      ShapeInputs inputs(shape);
      std::vector<float> out(size_t(shape.n_q) * shape.heads * shape.head_dim);
      for (const Case& c : CasesOf(shape, false)) {
        std::memset(out.data(), 0, out.size() * sizeof(float));
        RelattnCall call(inputs.Desc(c, out.data()), nullptr);
        const relattn::Status status = call.Run();
        if (!status) {
          std::printf("%s %s error %s\n", hwy::TargetName(targets[t]), CaseName(c).c_str(),
                      status.message.c_str());
          ++failures;
          continue;
        }
        std::printf("%s %s %016llx\n", hwy::TargetName(targets[t]), CaseName(c).c_str(),
                    static_cast<unsigned long long>(Fnv1a(out.data(), out.size() * 4)));
      }
    }
  }
  hwy::SetSupportedTargetsForTest(0);
  return failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace relattn_bench

int main() { return relattn_bench::Run(); }
