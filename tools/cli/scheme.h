// The position-scheme options of an attention call (relattn run, relattn cache attention):
// --scheme none|alibi|t5|shaw|shaw_vector, --max-bias, --slopes, --table, --table-layout,
// --num-buckets, --max-distance, --shaw-k, --bidirectional.
#ifndef RELATTN_TOOLS_CLI_SCHEME_H_
#define RELATTN_TOOLS_CLI_SCHEME_H_

#include <string>
#include <vector>

#include "relattn/relattn.h"
#include "tools/cli/args.h"
#include "tools/cli/npy.h"

namespace relattn_cli {

// The options and their help lines.
extern const std::vector<OptionSpec> kSchemeOptions;
extern const char kSchemeUsage[];

// A scheme and the options it reads; any other scheme option given is an error.
struct SchemeSpec {
  const char* name;
  relattn_bias_kind kind;
  std::vector<std::string> options;
};

// The tables a bias points into; they outlive the descriptor.
struct SchemeTables {
  NpyArray slopes, table;
};

// The scheme --scheme names, once the options given fit it (checked before any file is read).
const SchemeSpec& SchemeOf(const Args& args);

// Sets desc->bias from the options, loading the tables, for desc's n_heads and head_dim.
void SetBias(const Args& args, const SchemeSpec& spec, SchemeTables* tables,
             relattn_attention_desc* desc);

}  // namespace relattn_cli

#endif  // RELATTN_TOOLS_CLI_SCHEME_H_
