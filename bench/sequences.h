// The sequence benchmarks (issue: sequences as engines hold them): a packed
// batch of prompts in one call against one call per prompt, and a tree-mask
// step verifying draft tokens over a KV cache in one call against one decode
// step per draft token. Same work, same results; the ratio is the point.
#ifndef RELATTN_BENCH_SEQUENCES_H_
#define RELATTN_BENCH_SEQUENCES_H_

#include <string>
#include <vector>

#include "bench/measure.h"
#include "bench/report.h"

namespace relattn_bench {

// "packed/d128/8x256/causal/alibi/f16" and "tree/d128/m4096/t16/causal/alibi/f16".
std::vector<std::string> SequenceCaseNames();

// Measures the cases whose names `selected` accepts: per thread count, impl
// "relattn" (the one call) and "relattn_separate" (the calls it replaces,
// in sequence), medians of alternating rounds; vs_separate = separate ms /
// one-call ms (> 1: the one call is faster).
std::vector<Record> MeasureSequences(const MeasureConfig& config,
                                     bool (*selected)(const std::string& name, const void* ctx),
                                     const void* ctx);

// Prints the records as a small table.
void PrintSequenceTable(FILE* out, const std::vector<Record>& records);

}  // namespace relattn_bench

#endif  // RELATTN_BENCH_SEQUENCES_H_
