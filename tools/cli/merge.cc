// relattn merge: relattn_merge over two partial attentions of the same queries (.npy files),
// the result written as .npy files (O float32, float16 or bf16 bits by --out-dtype).
#include <cstdio>
#include <string>
#include <vector>

#include "relattn/relattn.hpp"
#include "tools/cli/args.h"
#include "tools/cli/call.h"
#include "tools/cli/commands.h"
#include "tools/cli/tensors.h"

namespace relattn_cli {
namespace {

constexpr char kUsage[] =
    R"(usage: relattn merge --o1 A.npy --lse1 A_lse.npy --o2 B.npy --lse2 B_lse.npy --out O.npy
                     [--lse-out L.npy] [--sinks FILE.npy] [--out-dtype f32|f16|bf16]
Combines two attentions of the same queries over disjoint sets of keys (relattn run ...
--lse-out over each part) into attention over both (relattn_merge, in double per row):
  lse = ln(e^lse1 + e^lse2 + e^sinks[h]),  O = e^(lse1 - lse) O1 + e^(lse2 - lse) O2.
O1 and O2 are [tokens][heads][v_head_dim] float32 or float16, their lse float32
[tokens][heads]. Writes O float32 [tokens][heads][v_head_dim] (or --out-dtype) and, with
--lse-out, its lse float32 [tokens][heads]. --sinks FILE.npy: learned sinks, float32 [heads],
counted once here (compute the parts without them). Merge more parts by merging the result
again.
)";

constexpr char kUsageTail[] =
    R"(Exit status: 0 on success, 2 for bad arguments, 1 for unreadable or mismatched files and
errors from the library. On any error nothing is written.
)";

const std::vector<OptionSpec> kOptions = {{"--o1", 1},    {"--lse1", 1},     {"--o2", 1},
                                          {"--lse2", 1},  {"--out", 1},      {"--lse-out", 1},
                                          {"--sinks", 1}, {"--out-dtype", 1}};

// The lse of part `flag`, float32 [tokens][heads] as o's.
const float* LoadLse(const Args& args, const std::string& flag, const NpyArray& o, NpyArray* lse) {
  *lse = Load(args, flag);
  if (lse->dtype != NpyDtype::kF32 || lse->shape.size() != 2 || lse->shape[0] != o.shape[0] ||
      lse->shape[1] != o.shape[1]) {
    args.Fail(Describe(args, flag, *lse) + ": must be float32 [" + std::to_string(o.shape[0]) +
              "][" + std::to_string(o.shape[1]) + "] (the part's tokens and heads)");
  }
  return reinterpret_cast<const float*>(lse->bytes.data());
}

}  // namespace

int MergeCommand(int argc, char** argv, int first) {
  const Args args("merge", kOptions, argc, argv, first);
  if (args.Help()) return std::printf("%s%s%s", kUsage, kOutDtypeUsage, kUsageTail), 0;
  args.NoPositionals();
  for (const char* flag : {"--o1", "--lse1", "--o2", "--lse2", "--out"}) args.Require(flag);
  const relattn_dtype out_dtype = OutDtypeOf(args);
  NpyArray o1, o2, lse1, lse2, sinks, unused;
  relattn_merge_desc desc{};
  desc.a = LoadTensor(args, "--o1", false, &o1, &unused);
  desc.b = LoadTensor(args, "--o2", false, &o2, &unused);
  if (o1.shape != o2.shape) {
    args.Fail(Describe(args, "--o2", o2) + ": must have the shape of " +
              Describe(args, "--o1", o1));
  }
  desc.lse_a = LoadLse(args, "--lse1", o1, &lse1);
  desc.lse_b = LoadLse(args, "--lse2", o2, &lse2);
  desc.n_q = o1.shape[0];
  desc.n_heads = int32_t(o1.shape[1]);
  desc.v_head_dim = int32_t(o1.shape[2]);
  desc.sinks = LoadSinks(args, desc.n_heads, &sinks);
  const OutputBuffer out(out_dtype, desc.n_q, desc.n_heads, desc.v_head_dim);
  std::vector<float> lse(size_t(desc.n_q) * desc.n_heads);
  desc.o = out.o;
  desc.lse = lse.data();
  const relattn::Status status = relattn::MakeStatus(relattn_merge(&desc));
  if (!status) args.Fail(status.ToString());
  WriteOutputs(args, o1.shape, out, args.Has("--lse-out") ? lse.data() : nullptr);
  return 0;
}

}  // namespace relattn_cli
