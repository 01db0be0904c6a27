// relattn run's RoPE scaling options: --rope-scaling linear|ntk|llama3|yarn|longrope with
// --rope-factor, --rope-low-freq, --rope-high-freq, --rope-original-max, --rope-beta-fast,
// --rope-beta-slow, --rope-short-factor / --rope-long-factor FILE.npy, --rope-max-position,
// --rope-sequence-length; or --rope-inv-freq FILE.npy; --rope-attention-factor with either.
#ifndef RELATTN_TOOLS_CLI_ROPE_SCALING_H_
#define RELATTN_TOOLS_CLI_ROPE_SCALING_H_

#include "relattn/relattn.h"
#include "tools/cli/args.h"
#include "tools/cli/npy.h"

namespace relattn_cli {

// The float64 tables a scaling points into; they outlive the descriptor.
struct RopeScalingTables {
  NpyArray inv_freq, short_factor, long_factor;
};

// Fails (usage, status 2) when an option does not fit the family named, or a scaling option is
// given with --rope none. Reads no file.
void CheckRopeScalingOptions(const Args& args, bool rope_on);

// Sets rope->scaling from the options (after CheckRopeScalingOptions), loading the tables.
void SetRopeScaling(const Args& args, RopeScalingTables* tables, relattn_rope* rope);

}  // namespace relattn_cli

#endif  // RELATTN_TOOLS_CLI_ROPE_SCALING_H_
