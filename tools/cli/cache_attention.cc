// relattn cache attention: attention of queries from an .npy file over a KV cache file's tokens,
// with run's scheme, rope, mask, softcap and sinks options (tools/cli/call.h).
#include <cstdio>
#include <string>

#include "relattn/relattn.h"
#include "tools/cli/args.h"
#include "tools/cli/cache_file.h"
#include "tools/cli/call.h"
#include "tools/cli/commands.h"
#include "tools/cli/tensors.h"

namespace relattn_cli {
namespace {

constexpr char kUsageHead[] =
    R"(usage: relattn cache attention --cache C.bin --q Q.npy --out O.npy [options]
Attention of Q, [tokens][heads][head_dim] float32 or float16, over the tokens the cache holds,
at their positions; heads must be a multiple of the cache's kv_heads. Writes O,
[tokens][heads][v_head_dim] float32 (or --out-dtype). The queries follow the cache's last token (--q-start
defaults to its next position). --rope defaults to the cache's (give the rope options again
for --rope-inv-freq and longrope, whose tables the cache does not keep); a different one is
the library's to reject. --valid-kv, --first-valid-kv and --k-segments count the cache's
slots.
  --q-scales FILE.npy   an int8 Q (over a cache storing K as i8): its float32
                        [tokens][heads] row scales
Options as in relattn run:
)";

constexpr char kUsageTail[] =
    R"(Exit status: 0 on success, 2 for bad arguments, 1 for unreadable or mismatched files and
errors from the library. On any error nothing is written.
)";

struct Arrays {
  NpyArray q, q_scales;
  CallInputs call;
  CacheFile cache;
};

// Points desc at q and the cache: the cache's head counts and dimensions (q's head_dim must
// be the cache's).
void SetQueriesAndCache(const Args& args, Arrays* in, relattn_attention_desc* desc) {
  const relattn_kv_cache_desc c = CacheDesc(in->cache.cache);
  desc->q = LoadTensor(args, "--q", true, &in->q, &in->q_scales);
  if (in->q.shape[2] != c.head_dim) {
    args.Fail(Describe(args, "--q", in->q) + ": head_dim must be the cache's " +
              std::to_string(c.head_dim));
  }
  desc->n_q = in->q.shape[0];
  desc->n_heads = int32_t(in->q.shape[1]);
  desc->n_kv_heads = c.n_kv_heads;  // the cache's (or 0), as the library takes it
  desc->head_dim = c.head_dim;
  desc->v_head_dim = c.v_head_dim;
  desc->kv_cache = in->cache.cache;
}

}  // namespace

int CacheAttentionCommand(int argc, char** argv, int first) {
  const Args args("cache attention",
                  Concat({{{"--cache", 1}, {"--q", 1}, {"--q-scales", 1}, {"--out", 1}},
                          kSchemeOptions,
                          kRopeOptions,
                          kCallOptions}),
                  argc, argv, first);
  if (args.Help()) {
    std::printf("%s%s%s%s%s%s", kUsageHead, kSchemeUsage, kRopeUsage, kCallUsage, kOutDtypeUsage,
                kUsageTail);
    return 0;
  }
  args.NoPositionals();
  for (const char* flag : {"--cache", "--q", "--out"}) args.Require(flag);
  relattn_attention_desc desc;
  relattn_attention_desc_init(&desc);
  const CallPlan plan = ParseCallOptions(args, &desc);
  Arrays in;
  LoadCache(args, &in.cache);
  SetQueriesAndCache(args, &in, &desc);
  if (!args.Has("--q-start") && !args.Has("--q-positions")) {
    desc.q_pos.start = relattn_kv_cache_next_position(in.cache.cache);
  }
  LoadCallInputs(args, plan, relattn_kv_cache_length(in.cache.cache), &in.call, &desc);
  if (!args.Has("--rope")) desc.rope = CacheDesc(in.cache.cache).rope;
  RunCall(args, plan, &desc);
  return 0;
}

}  // namespace relattn_cli
