// The RoPE options: --rope and its pairs, --rope-scaling and its parameters, --rope-inv-freq.
#include "tools/cli/rope_scaling.h"

#include <cmath>
#include <string>
#include <vector>

namespace relattn_cli {

const std::vector<OptionSpec> kRopeOptions = {{"--rope", 1},
                                              {"--rotary-dims", 1},
                                              {"--rope-base", 1},
                                              {"--rope-scale", 1},
                                              {"--rope-scaling", 1},
                                              {"--rope-factor", 1},
                                              {"--rope-low-freq", 1},
                                              {"--rope-high-freq", 1},
                                              {"--rope-original-max", 1},
                                              {"--rope-beta-fast", 1},
                                              {"--rope-beta-slow", 1},
                                              {"--rope-attention-factor", 1},
                                              {"--rope-inv-freq", 1},
                                              {"--rope-short-factor", 1},
                                              {"--rope-long-factor", 1},
                                              {"--rope-max-position", 1},
                                              {"--rope-sequence-length", 1}};

const char kRopeUsage[] =
    R"(  --rope none|interleaved|halves  rotary position embedding of q and k (default none),
                        fused with any --scheme: pair i, (2i, 2i+1) interleaved (GPT-J) or
                        (i, i + rotary_dims/2) halves (GPT-NeoX, Llama), is turned by
                        p * rope-base^(-2i / rotary_dims) / rope-scale at position p;
                        positions must be within +-2^53
  --rotary-dims N       rope: the first N dimensions are rotated, N even (default head_dim)
  --rope-base B         rope: theta base, > 1 (default 10000)
  --rope-scale S        rope: linear scaling, positions divided by S >= 1e-6 (default 1)
  --rope-scaling linear|ntk|llama3|yarn|longrope  rope: HF's rope_type frequency families
                        (relattn.h); their parameters:
    --rope-factor F             linear, ntk, llama3, yarn
    --rope-low-freq F, --rope-high-freq F   llama3 (low_freq_factor, high_freq_factor)
    --rope-original-max N       llama3, yarn, longrope: original_max_position
    --rope-beta-fast B, --rope-beta-slow B  yarn (default 32, 1)
    --rope-short-factor FILE.npy, --rope-long-factor FILE.npy  longrope: float64
                                [rotary_dims / 2]
    --rope-max-position N, --rope-sequence-length N  longrope: the long factors apply when
                                the sequence length exceeds --rope-original-max
  --rope-inv-freq FILE.npy  rope: the caller's theta table, float64 [rotary_dims / 2]
  --rope-attention-factor A  rope: multiplies cos and sin (default: the family's)
)";

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
  if (!ReadNpy(args.String(flag), a, &error))
    args.Fail(flag + " " + args.String(flag) + ": " + error);
  if (a->dtype != NpyDtype::kF64 || a->shape.size() != 1 || a->shape[0] < 1) {
    args.Fail(flag + " " + args.String(flag) + " (" + NpyDtypeName(a->dtype) + " " +
              ShapeString(a->shape) + "): must be float64 [rotary_dims / 2]");
  }
  return reinterpret_cast<const double*>(a->bytes.data());
}

// Fails (usage, status 2) when an option does not fit the family named, or a scaling option is
// given with --rope none. Reads no file.
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

relattn_rope_pairing PairingOf(const Args& args) {
  const std::string pairing = args.String("--rope", "none");
  if (pairing == "interleaved") return RELATTN_ROPE_INTERLEAVED;
  if (pairing == "halves") return RELATTN_ROPE_HALVES;
  if (pairing != "none")
    args.Usage("--rope '" + pairing + "': must be none, interleaved or halves");
  return RELATTN_ROPE_NONE;
}

}  // namespace

relattn_rope RopeOf(const Args& args) {
  relattn_rope rope{};
  rope.pairing = PairingOf(args);
  for (const char* option : {"--rotary-dims", "--rope-base", "--rope-scale"}) {
    if (args.Has(option) && rope.pairing == RELATTN_ROPE_NONE) {
      args.Usage(std::string(option) + " is not used by --rope none");
    }
  }
  const int64_t dims = args.Int64("--rotary-dims", 0, 2, RELATTN_MAX_HEAD_DIM);
  if (dims % 2 != 0) args.Usage("--rotary-dims = " + std::to_string(dims) + ": must be even");
  rope.rotary_dims = int32_t(dims);  // 0: head_dim
  // 0 would mean the default to the library: an explicit value must be in range itself.
  rope.base = float(args.Double("--rope-base", 0.0));
  if (args.Has("--rope-base") && !(rope.base > 1.0f && std::isfinite(rope.base))) {
    args.Usage("--rope-base = " + args.String("--rope-base") + ": must be > 1 (and fit float32)");
  }
  rope.linear_scale = float(args.Double("--rope-scale", 0.0));
  if (args.Has("--rope-scale") &&
      !(rope.linear_scale >= 1e-6f && std::isfinite(rope.linear_scale))) {
    args.Usage("--rope-scale = " + args.String("--rope-scale") +
               ": must be >= 1e-6 (and fit float32)");
  }
  CheckRopeScalingOptions(args, rope.pairing != RELATTN_ROPE_NONE);
  return rope;
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
