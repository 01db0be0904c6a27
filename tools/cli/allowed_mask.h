// The allowed-pairs (tree) mask of an attention call: --allowed FILE.npy, bool
// [n_q][n_kv - offset] (packed here, bit b % 64 of word b / 64 for key offset + b) or uint64
// [n_q][words] already packed, with --allowed-key-offset N (default 0; the keys before it are
// not restricted).
#ifndef RELATTN_TOOLS_CLI_ALLOWED_MASK_H_
#define RELATTN_TOOLS_CLI_ALLOWED_MASK_H_

#include <cstdint>
#include <vector>

#include "relattn/relattn.h"
#include "tools/cli/args.h"
#include "tools/cli/npy.h"

namespace relattn_cli {

// The bits mask.allowed points to; they outlive the descriptor.
struct AllowedMask {
  NpyArray file;
  std::vector<uint64_t> packed;  // the bool form's bits
};

// Sets mask's allowed bits and key offset from the options, for n_q queries over n_kv keys;
// fails naming the file (status 1) if its array does not fit. --allowed-key-offset without
// --allowed is a usage error; an offset beyond n_kv is the library's to reject.
void SetAllowedMask(const Args& args, int64_t n_q, int64_t n_kv, AllowedMask* allowed,
                    relattn_mask* mask);

}  // namespace relattn_cli

#endif  // RELATTN_TOOLS_CLI_ALLOWED_MASK_H_
