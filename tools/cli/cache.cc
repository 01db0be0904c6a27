// relattn cache create|append|truncate|info|attention: a KV cache kept in a file
// (tools/cli/cache_file.h), one library call per command.
#include <cinttypes>
#include <cstdio>
#include <string>

#include "relattn/relattn.hpp"
#include "tools/cli/args.h"
#include "tools/cli/cache_file.h"
#include "tools/cli/commands.h"
#include "tools/cli/rope_scaling.h"
#include "tools/cli/sequence_inputs.h"
#include "tools/cli/tensors.h"

namespace relattn_cli {
namespace {

constexpr char kUsage[] =
    R"(usage: relattn cache <command> --cache C.bin [options]   (relattn cache <command> --help)
A KV cache kept in a file: the library's cache bytes as relattn_kv_cache_init lays them out
(the Python package's KVCache.tobytes() / KVCache.frombytes() read and write the same
bytes). Every command that reads the file checks it (relattn_kv_cache_attach): a corrupted,
truncated or foreign file fails with the library's message, exit status 1. Commands that
change it rewrite it through C.bin.partial and a rename, so a failed one leaves it as it was.
  create     a new, empty cache file
  append     appends K and V tokens (.npy) to the cache
  truncate   keeps the oldest N tokens (rollback)
  info       prints the cache's layout, length and next position, one "name value" per line
  attention  attention of queries (.npy) over the cached tokens, written to an .npy file
)";

constexpr char kCreateUsage[] =
    R"(usage: relattn cache create --out C.bin --kv-heads H --head-dim D --capacity N [options]
Writes a new, empty KV cache (relattn_kv_cache_init) to C.bin; the library checks the values.
  --v-head-dim DV       V's head dimension (default D)
  --dtype T             storage of K and V: f32, f16 (the default, as the Python package's),
                        bf16, i8 (int8 rows with one scale each, quantised when appended)
                        or q4 (ggml's q4_0 blocks; the head dimension a multiple of 32)
  --k-dtype T, --v-dtype T  K's and V's storage apart (default --dtype)
  --ring                a ring buffer: a full cache overwrites its oldest token (a sliding
                        window of N tokens); without it, an append past N fails
  --sink-tokens S       ring: the first S tokens are kept for good (StreamingLLM)
  --sink-positions text|cache  ring with sinks: text (default) keeps each token's position;
                        cache numbers the tokens itself (append takes no positions) and moves
                        the sinks to just before the window as it slides
RoPE: K is rotated as it is appended; attention over the cache uses the same rope.
)";

constexpr char kAppendUsage[] =
    R"(usage: relattn cache append --cache C.bin --k K.npy --v V.npy
                            [--k-start P | --k-positions FILE.npy]
Appends K [tokens][kv_heads][head_dim] and V [tokens][kv_heads][v_head_dim] (float32 or
float16) to the cache, converted to its storage (rotated first with its rope), and rewrites
C.bin. Positions: --k-start P (the first token's), --k-positions FILE.npy (int64 [tokens]), or
neither: continuing after the last appended token (0 for the first).
)";

constexpr char kTruncateUsage[] = R"(usage: relattn cache truncate --cache C.bin --keep N
Keeps the oldest N (0..length) tokens of the cache, in the order they were appended, and
rewrites C.bin: appends without positions then continue after the last kept token.
)";

constexpr char kInfoUsage[] = R"(usage: relattn cache info --cache C.bin
Prints, one "name value" per line: kv_heads, head_dim, v_head_dim, k_dtype, v_dtype,
capacity, length, next_position, ring, sink_tokens, sink_positions, rope (and with a rope:
rotary_dims, rope_base, rope_scale, rope_scaling), bytes (the file's size).
)";

constexpr const char* kScalingNames[] = {"none", "linear",   "ntk",     "llama3",
                                         "yarn", "longrope", "inv_freq"};

// Creates the desc of --kv-heads ... --sink-positions and the rope options (usage checks).
relattn_kv_cache_desc CreateDesc(const Args& args, RopeScalingTables* tables) {
  for (const char* flag : {"--out", "--kv-heads", "--head-dim", "--capacity"}) args.Require(flag);
  relattn_kv_cache_desc d{};
  d.n_kv_heads = int32_t(args.Int64("--kv-heads", 0, INT32_MIN, INT32_MAX));
  d.head_dim = int32_t(args.Int64("--head-dim", 0, INT32_MIN, INT32_MAX));
  d.v_head_dim = int32_t(args.Int64("--v-head-dim", 0, INT32_MIN, INT32_MAX));
  d.capacity = args.Int64("--capacity", 0, INT64_MIN, INT64_MAX);
  const relattn_dtype both = ParseStorageDtype(args, "--dtype", RELATTN_F16);
  d.k_dtype = ParseStorageDtype(args, "--k-dtype", both);
  d.v_dtype = ParseStorageDtype(args, "--v-dtype", both);
  d.ring = args.Has("--ring");
  d.n_sink_tokens = args.Int64("--sink-tokens", 0, INT64_MIN, INT64_MAX);
  const std::string rule = args.String("--sink-positions", "text");
  if (rule != "text" && rule != "cache") {
    args.Usage("--sink-positions '" + rule + "': must be text or cache");
  }
  d.sink_positions = rule == "cache" ? RELATTN_SINK_POSITIONS_CACHE : RELATTN_SINK_POSITIONS_TEXT;
  d.rope = RopeOf(args);
  if (d.rope.pairing != RELATTN_ROPE_NONE) SetRopeScaling(args, tables, &d.rope);
  return d;
}

int Create(int argc, char** argv, int first) {
  const Args args("cache create",
                  Concat({{{"--out", 1},
                           {"--kv-heads", 1},
                           {"--head-dim", 1},
                           {"--v-head-dim", 1},
                           {"--capacity", 1},
                           {"--dtype", 1},
                           {"--k-dtype", 1},
                           {"--v-dtype", 1},
                           {"--ring", 0},
                           {"--sink-tokens", 1},
                           {"--sink-positions", 1}},
                          kRopeOptions}),
                  argc, argv, first);
  if (args.Help()) return std::printf("%s%s", kCreateUsage, kRopeUsage), 0;
  args.NoPositionals();
  RopeScalingTables tables;
  const relattn_kv_cache_desc desc = CreateDesc(args, &tables);
  size_t bytes = 0;
  relattn::Status status = relattn::MakeStatus(relattn_kv_cache_size(&desc, &bytes));
  if (!status) args.Fail(status.ToString());
  CacheFile file;
  file.bytes = AlignedBytes(bytes);
  status = relattn::MakeStatus(relattn_kv_cache_init(&desc, file.bytes.data(), bytes, &file.cache));
  if (!status) args.Fail(status.ToString());
  SaveCache(args, "--out", file);
  return 0;
}

// Fails unless a is [tokens][kv_heads][dim] of the cache.
void CheckKv(const Args& args, const std::string& flag, const NpyArray& a, int64_t tokens,
             int32_t heads, int32_t dim) {
  if (a.shape[0] != tokens || a.shape[1] != heads || a.shape[2] != dim) {
    args.Fail(Describe(args, flag, a) + ": must be [" + std::to_string(tokens) + "][" +
              std::to_string(heads) + "][" + std::to_string(dim) + "] (the cache's kv_heads, " +
              (flag == "--k" ? "head_dim" : "v_head_dim; the tokens of --k") + ")");
  }
}

int Append(int argc, char** argv, int first) {
  const Args args("cache append",
                  {{"--cache", 1}, {"--k", 1}, {"--v", 1}, {"--k-start", 1}, {"--k-positions", 1}},
                  argc, argv, first);
  if (args.Help()) return std::fputs(kAppendUsage, stdout), 0;
  args.NoPositionals();
  for (const char* flag : {"--cache", "--k", "--v"}) args.Require(flag);
  relattn_positions pos{nullptr, args.Int64("--k-start", 0, INT64_MIN, INT64_MAX)};
  CacheFile file;
  LoadCache(args, &file);
  const relattn_kv_cache_desc d = CacheDesc(file.cache);
  NpyArray k, v, positions, unused;
  const relattn_tensor kt = LoadTensor(args, "--k", false, &k, &unused);
  const relattn_tensor vt = LoadTensor(args, "--v", false, &v, &unused);
  CheckKv(args, "--k", k, k.shape[0], d.n_kv_heads, d.head_dim);
  CheckKv(args, "--v", v, k.shape[0], d.n_kv_heads, d.v_head_dim);
  SetPositions(args, "k", k.shape[0], &positions, &pos);
  const bool given = args.Has("--k-start") || args.Has("--k-positions");
  const relattn::Status status = relattn::MakeStatus(
      relattn_kv_cache_append(file.cache, k.shape[0], &kt, &vt, given ? &pos : nullptr));
  if (!status) args.Fail(status.ToString());
  SaveCache(args, "--cache", file);
  return 0;
}

int Truncate(int argc, char** argv, int first) {
  const Args args("cache truncate", {{"--cache", 1}, {"--keep", 1}}, argc, argv, first);
  if (args.Help()) return std::fputs(kTruncateUsage, stdout), 0;
  args.NoPositionals();
  for (const char* flag : {"--cache", "--keep"}) args.Require(flag);
  const int64_t keep = args.Int64("--keep", 0, INT64_MIN, INT64_MAX);
  CacheFile file;
  LoadCache(args, &file);
  const relattn::Status status = relattn::MakeStatus(relattn_kv_cache_truncate(file.cache, keep));
  if (!status) args.Fail(status.ToString());
  SaveCache(args, "--cache", file);
  return 0;
}

void PrintRope(const relattn_kv_cache_desc& d) {
  const relattn_rope& r = d.rope;
  const char* pairing = r.pairing == RELATTN_ROPE_INTERLEAVED ? "interleaved" : "halves";
  std::printf("rope %s\n", r.pairing == RELATTN_ROPE_NONE ? "none" : pairing);
  if (r.pairing == RELATTN_ROPE_NONE) return;
  std::printf("rotary_dims %" PRId32 "\n", r.rotary_dims ? r.rotary_dims : d.head_dim);
  std::printf("rope_base %.9g\n", double(r.base != 0.0f ? r.base : 10000.0f));
  std::printf("rope_scale %.9g\n", double(r.linear_scale != 0.0f ? r.linear_scale : 1.0f));
  const int type = int(r.scaling.type);
  std::printf("rope_scaling %s\n", type >= 0 && type <= 6 ? kScalingNames[type] : "?");
}

int Info(int argc, char** argv, int first) {
  const Args args("cache info", {{"--cache", 1}}, argc, argv, first);
  if (args.Help()) return std::fputs(kInfoUsage, stdout), 0;
  args.NoPositionals();
  args.Require("--cache");
  CacheFile file;
  LoadCache(args, &file);
  const relattn_kv_cache_desc d = CacheDesc(file.cache);
  std::printf("kv_heads %" PRId32 "\nhead_dim %" PRId32 "\nv_head_dim %" PRId32 "\n", d.n_kv_heads,
              d.head_dim, d.v_head_dim);
  std::printf("k_dtype %s\nv_dtype %s\n", StorageDtypeName(d.k_dtype), StorageDtypeName(d.v_dtype));
  std::printf("capacity %" PRId64 "\nlength %" PRId64 "\nnext_position %" PRId64 "\n", d.capacity,
              relattn_kv_cache_length(file.cache), relattn_kv_cache_next_position(file.cache));
  std::printf("ring %d\nsink_tokens %" PRId64 "\nsink_positions %s\n", d.ring ? 1 : 0,
              d.n_sink_tokens, d.sink_positions == RELATTN_SINK_POSITIONS_CACHE ? "cache" : "text");
  PrintRope(d);
  std::printf("bytes %zu\n", file.bytes.size());
  return 0;
}

struct Subcommand {
  const char* name;
  int (*run)(int argc, char** argv, int first);
};
constexpr Subcommand kSubcommands[] = {{"create", Create},
                                       {"append", Append},
                                       {"truncate", Truncate},
                                       {"info", Info},
                                       {"attention", CacheAttentionCommand}};

}  // namespace

int CacheCommand(int argc, char** argv, int first) {
  const std::string name = first < argc ? argv[first] : "";
  if (name == "--help" || name == "-h") return std::fputs(kUsage, stdout), 0;
  for (const Subcommand& s : kSubcommands) {
    if (name == s.name) return s.run(argc, argv, first + 1);
  }
  if (name.empty()) return std::fputs(kUsage, stderr), 2;
  Die("cache", "unknown command '" + name + "' (relattn cache --help lists them)", 2);
}

}  // namespace relattn_cli
