// The RoPE options of relattn run, relattn cache create and relattn cache attention: --rope,
// --rotary-dims, --rope-base, --rope-scale, and the scaling ones: --rope-scaling
// linear|ntk|llama3|yarn|longrope with
// --rope-factor, --rope-low-freq, --rope-high-freq, --rope-original-max, --rope-beta-fast,
// --rope-beta-slow, --rope-short-factor / --rope-long-factor FILE.npy, --rope-max-position,
// --rope-sequence-length; or --rope-inv-freq FILE.npy; --rope-attention-factor with either.
#ifndef RELATTN_TOOLS_CLI_ROPE_SCALING_H_
#define RELATTN_TOOLS_CLI_ROPE_SCALING_H_

#include <vector>

#include "relattn/relattn.h"
#include "tools/cli/args.h"
#include "tools/cli/npy.h"

namespace relattn_cli {

// The float64 tables a scaling points into; they outlive the descriptor.
struct RopeScalingTables {
  NpyArray inv_freq, short_factor, long_factor;
};

// The options and their help lines.
extern const std::vector<OptionSpec> kRopeOptions;
extern const char kRopeUsage[];

// The rope --rope and its options give, once they fit (checked before any file is read, usage
// errors, status 2; rotary_dims > head_dim is the library's to reject); no scaling tables yet.
relattn_rope RopeOf(const Args& args);

// Sets rope->scaling from the options (after RopeOf), loading the tables.
void SetRopeScaling(const Args& args, RopeScalingTables* tables, relattn_rope* rope);

}  // namespace relattn_cli

#endif  // RELATTN_TOOLS_CLI_ROPE_SCALING_H_
