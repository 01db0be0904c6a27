// relattn run's RoPE scaling options (--rope-scaling and its parameters, --rope-inv-freq).
#include "tools/cli/rope_scaling.h"

#include <cmath>
#include <string>
#include <vector>

namespace relattn_cli {
namespace {

struct ScalingSpec {
  const char* name;
  relattn_rope_scaling_type type;
  std::vector<std::string> options;  // those it reads besides --rope-attention-factor
};
const ScalingSpec kScalings[] = {
    {"none", RELATTN_ROPE_SCALING_NONE, {}},
    {"linear", RELATTN_ROPE_SCALING_LINEAR, {"--rope-factor"}},
    {"ntk", RELATTN_ROPE_SCALING_NTK, {"--rope-factor"}},
    {"llama3",
     RELATTN_ROPE_SCALING_LLAMA3,
     {"--rope-factor", "--rope-low-freq", "--rope-high-freq", "--rope-original-max"}},
    {"yarn",
     RELATTN_ROPE_SCALING_YARN,
     {"--rope-factor", "--rope-original-max", "--rope-beta-fast", "--rope-beta-slow"}},
    {"longrope",
     RELATTN_ROPE_SCALING_LONGROPE,
     {"--rope-short-factor", "--rope-long-factor", "--rope-original-max", "--rope-max-position",
      "--rope-sequence-length"}}};
const char* const kParameterOptions[] = {
    "--rope-factor",       "--rope-low-freq",       "--rope-high-freq",    "--rope-original-max",
    "--rope-beta-fast",    "--rope-beta-slow",      "--rope-short-factor", "--rope-long-factor",
    "--rope-max-position", "--rope-sequence-length"};

const ScalingSpec& ScalingOf(const Args& args) {
  const std::string name = args.String("--rope-scaling", "none");
  for (const ScalingSpec& s : kScalings) {
    if (name == s.name) return s;
  }
  args.Usage("--rope-scaling '" + name + "': must be none, linear, ntk, llama3, yarn or longrope");
}

// A float64 [pairs] table from flag's file (pairs = rotary_dims / 2; 0: any length, checked by
// the library against rotary_dims).
const double* LoadTable(const Args& args, const std::string& flag, NpyArray* a) {
  std::string error;
  if (!ReadNpy(args.String(flag), a, &error)) {
    Die("run", flag + " " + args.String(flag) + ": " + error, 1);
  }
  if (a->dtype != NpyDtype::kF64 || a->shape.size() != 1 || a->shape[0] < 1) {
    Die("run",
        flag + " " + args.String(flag) + " (" + NpyDtypeName(a->dtype) + " " +
            ShapeString(a->shape) + "): must be float64 [rotary_dims / 2]",
        1);
  }
  return reinterpret_cast<const double*>(a->bytes.data());
}

}  // namespace

void CheckRopeScalingOptions(const Args& args, bool rope_on) {
  const bool any = args.Has("--rope-scaling") || args.Has("--rope-inv-freq") ||
                   args.Has("--rope-attention-factor");
  if (any && !rope_on) args.Usage("--rope-scaling, --rope-inv-freq: not used by --rope none");
  if (args.Has("--rope-scaling") && args.Has("--rope-inv-freq")) {
    args.Usage("--rope-scaling and --rope-inv-freq exclude each other");
  }
  const ScalingSpec& spec = ScalingOf(args);
  for (const char* option : kParameterOptions) {
    bool used = false;
    for (const std::string& o : spec.options) used = used || o == option;
    if (args.Has(option) && !used) {
      args.Usage(std::string(option) + " is not used by --rope-scaling " + spec.name);
    }
  }
}

void SetRopeScaling(const Args& args, RopeScalingTables* tables, relattn_rope* rope) {
  relattn_rope_scaling& s = rope->scaling;
  s = relattn_rope_scaling{};
  // Values are the library's to judge (each bad one named as rope.scaling.<field>).
  s.attention_factor = float(args.Double("--rope-attention-factor", 0.0));
  if (args.Has("--rope-inv-freq")) {
    s.type = RELATTN_ROPE_SCALING_INV_FREQ;
    s.inv_freq = LoadTable(args, "--rope-inv-freq", &tables->inv_freq);
    return;
  }
  s.type = ScalingOf(args).type;
  s.factor = float(args.Double("--rope-factor", 0.0));
  s.low_freq_factor = float(args.Double("--rope-low-freq", 0.0));
  s.high_freq_factor = float(args.Double("--rope-high-freq", 0.0));
  s.beta_fast = float(args.Double("--rope-beta-fast", 0.0));
  s.beta_slow = float(args.Double("--rope-beta-slow", 0.0));
  s.original_max_position = args.Int64("--rope-original-max", 0, INT64_MIN, INT64_MAX);
  s.max_position = args.Int64("--rope-max-position", 0, INT64_MIN, INT64_MAX);
  s.sequence_length = args.Int64("--rope-sequence-length", 0, INT64_MIN, INT64_MAX);
  if (s.type == RELATTN_ROPE_SCALING_LONGROPE) {
    args.Require("--rope-short-factor");
    args.Require("--rope-long-factor");
    s.short_factor = LoadTable(args, "--rope-short-factor", &tables->short_factor);
    s.long_factor = LoadTable(args, "--rope-long-factor", &tables->long_factor);
  }
}

}  // namespace relattn_cli
