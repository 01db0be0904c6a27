// relattn run: one attention call on .npy arrays, output written as a float32 (float16, bf16) .npy.
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "lib/common/bf16.h"
#include "lib/common/f16.h"
#include "relattn/relattn.hpp"
#include "tools/cli/args.h"
#include "tools/cli/call.h"
#include "tools/cli/commands.h"
#include "tools/cli/npy.h"
#include "tools/cli/tensors.h"

namespace relattn_cli {
namespace {

constexpr char kUsageHead[] =
    R"(usage: relattn run --q Q.npy --k K.npy --v V.npy --out O.npy [options]
Runs one attention call. Q is [tokens][heads][head_dim], K [kv_tokens][kv_heads][head_dim], V
[kv_tokens][kv_heads][v_head_dim], each float32 or float16 in C order, or int8 with its row
scales; K and V may also be uint8 q4_0 blocks, [kv_tokens][kv_heads][dim / 32 * 18] (per 32
values an f16 scale d and 16 bytes of nibbles, value (nibble - 8) d; the Python package's
quantize_q4 writes them; K's rows hold q's head_dim). heads must be a multiple of kv_heads.
Writes O, [tokens][heads][v_head_dim] float32 (or --out-dtype). On any error nothing is
written.
)";

constexpr char kUsageTail[] = R"(  --k-start P           int64 position of the first key (default 0)
  --k-positions FILE.npy  int64 [kv_tokens]: each key's position (instead of --k-start)
  --q-scales FILE.npy, --k-scales FILE.npy, --v-scales FILE.npy  an int8 --q, --k or --v
                        (as relattn_quantize_i8 writes it) stands for scale[t][h] x int8
                        row (t, h): its float32 [tokens][heads] row scales. int8 Q needs
                        int8 K (the library says what it takes)
  --dtype file|bf16     file: Q, K, V as the files hold them (default); bf16: rounded to
                        bfloat16 (nearest even) and passed as RELATTN_BF16 (Q4 K, V as held)
  --quantize none|k|qk  int8 Q.K: K, or Q and K, quantised per (token, head) row before the
                        call (scale = max|row| / 127, round half away from zero); the
                        library multiplies the int8 values exactly (default none)
Exit status: 0 on success, 2 for bad arguments, 1 for unreadable or mismatched files and
errors from the library.
)";

const std::vector<OptionSpec> kRunOptions = {
    {"--q", 1},        {"--k", 1},           {"--v", 1},        {"--out", 1},
    {"--k-start", 1},  {"--k-positions", 1}, {"--q-scales", 1}, {"--k-scales", 1},
    {"--v-scales", 1}, {"--dtype", 1},       {"--quantize", 1}};

// The arrays a call reads; they outlive the descriptor that points into them.
struct Arrays {
  NpyArray q, k, v, q_scales, k_scales, v_scales;
  CallInputs call;
  std::vector<uint16_t> q_bf16, k_bf16, v_bf16;  // --dtype bf16: the inputs rounded
  std::vector<int8_t> q_i8, k_i8;                // --quantize: the int8 rows and their scales
  std::vector<float> q_i8_scales, k_i8_scales;
};

// How Q, K and V are passed: as the files hold them, rounded to bf16, or Q.K quantised.
struct Conversion {
  bool bf16 = false, quantize_q = false, quantize_k = false;
};

// --dtype and --quantize (checked before any file is read).
Conversion ConversionOf(const Args& args) {
  const std::string dtype = args.String("--dtype", "file");
  if (dtype != "file" && dtype != "bf16") {
    args.Usage("--dtype '" + dtype + "': must be file or bf16");
  }
  const std::string which = args.String("--quantize", "none");
  if (which != "none" && which != "k" && which != "qk") {
    args.Usage("--quantize '" + which + "': must be none, k or qk");
  }
  const Conversion c{dtype == "bf16", which == "qk", which != "none"};
  for (const char* x : {"q", "k", "v"}) {
    const std::string scales = std::string("--") + x + "-scales";
    if (!args.Has(scales)) continue;
    if (c.bf16) args.Usage("--dtype bf16 rounds float inputs: not with " + scales);
    if ((x[0] == 'q' && c.quantize_q) || (x[0] == 'k' && c.quantize_k)) {
      args.Usage("--quantize " + which + " quantises --" + x + " itself: not with " + scales);
    }
  }
  return c;
}

// *t (F32 or F16, [tokens][heads][dim] packed) rounded to bf16 into *bits, and *t pointed there.
void RoundToBf16(int64_t tokens, int32_t heads, int64_t dim, std::vector<uint16_t>* bits,
                 relattn_tensor* t) {
  bits->resize(size_t(tokens) * size_t(heads) * size_t(dim));
  for (size_t i = 0; i < bits->size(); ++i) {
    const float x = t->dtype == RELATTN_F16
                        ? relattn::F16ToF32(static_cast<const uint16_t*>(t->data)[i])
                        : static_cast<const float*>(t->data)[i];
    (*bits)[i] = relattn::F32ToBF16(x);
  }
  *t = relattn::TokensHeadsDim(bits->data(), RELATTN_BF16, heads, dim);
}

// Replaces *t, n tokens of heads rows of dim, by its int8 rows (in *rows, *scales).
void QuantizeRows(const Args& args, const std::string& flag, int64_t n, int32_t heads, int32_t dim,
                  std::vector<int8_t>* rows, std::vector<float>* scales, relattn_tensor* t) {
  rows->resize(size_t(n) * heads * dim);
  scales->resize(size_t(n) * heads);
  const relattn_tensor source = *t;
  const relattn::Status status = relattn::MakeStatus(
      relattn_quantize_i8(&source, n, heads, dim, rows->data(), scales->data(), t));
  if (!status) args.Fail("--quantize, " + flag + ": " + status.ToString());
}

// Q4 K or V stays as it is under --dtype bf16; --quantize of a Q4 K is a usage error.
void Convert(const Args& args, const Conversion& c, Arrays* in, relattn_attention_desc* desc) {
  if (c.bf16) {
    RoundToBf16(desc->n_q, desc->n_heads, desc->head_dim, &in->q_bf16, &desc->q);
    if (desc->k.dtype != RELATTN_Q4) {
      RoundToBf16(desc->n_kv, desc->n_kv_heads, desc->head_dim, &in->k_bf16, &desc->k);
    }
    if (desc->v.dtype != RELATTN_Q4) {
      RoundToBf16(desc->n_kv, desc->n_kv_heads, desc->v_head_dim, &in->v_bf16, &desc->v);
    }
  }
  if (c.quantize_k && desc->k.dtype == RELATTN_Q4) {
    args.Usage("--quantize " + args.String("--quantize") + " quantises --k to int8: not with " +
               Describe(args, "--k", in->k) + ", Q4 blocks");
  }
  if (c.quantize_q) {
    QuantizeRows(args, "--q", desc->n_q, desc->n_heads, desc->head_dim, &in->q_i8, &in->q_i8_scales,
                 &desc->q);
  }
  if (c.quantize_k) {
    QuantizeRows(args, "--k", desc->n_kv, desc->n_kv_heads, desc->head_dim, &in->k_i8,
                 &in->k_i8_scales, &desc->k);
  }
}

void CheckShapes(const Args& args, const Arrays& in, const relattn_tensor& k) {
  const auto mismatch = [&](const char* what, const char* f1, const NpyArray& a1, const char* f2,
                            const NpyArray& a2) {
    args.Fail(Describe(args, f1, a1) + " and " + Describe(args, f2, a2) + ": " + what + " differ");
  };
  if (in.q.shape[2] != ValueDim(in.k, k)) mismatch("head_dim", "--q", in.q, "--k", in.k);
  if (in.k.shape[0] != in.v.shape[0]) mismatch("token counts", "--k", in.k, "--v", in.v);
  if (in.k.shape[1] != in.v.shape[1]) mismatch("head counts", "--k", in.k, "--v", in.v);
  if (in.q.shape[1] % in.k.shape[1] != 0) {
    args.Fail(Describe(args, "--q", in.q) + ": heads must be a multiple of the heads of " +
              Describe(args, "--k", in.k));
  }
}

void LoadQkv(const Args& args, Arrays* in, relattn_attention_desc* desc) {
  desc->q = LoadTensor(args, "--q", true, &in->q, &in->q_scales);
  desc->k = LoadTensor(args, "--k", true, &in->k, &in->k_scales, in->q.shape[2]);
  desc->v = LoadTensor(args, "--v", true, &in->v, &in->v_scales, kAnyQ4Dim);
  CheckShapes(args, *in, desc->k);
  desc->n_q = in->q.shape[0];
  desc->n_kv = in->k.shape[0];
  desc->n_heads = int32_t(in->q.shape[1]);
  desc->n_kv_heads = int32_t(in->k.shape[1]);
  desc->head_dim = int32_t(in->q.shape[2]);
  desc->v_head_dim = int32_t(ValueDim(in->v, desc->v));
}

}  // namespace

int RunCommand(int argc, char** argv, int first) {
  const Args args("run", Concat({kRunOptions, kSchemeOptions, kRopeOptions, kCallOptions}), argc,
                  argv, first);
  if (args.Help()) {
    std::printf("%s%s%s%s%s%s", kUsageHead, kSchemeUsage, kRopeUsage, kCallUsage, kOutDtypeUsage,
                kUsageTail);
    return 0;
  }
  args.NoPositionals();
  for (const char* flag : {"--q", "--k", "--v", "--out"}) args.Require(flag);
  relattn_attention_desc desc;
  relattn_attention_desc_init(&desc);
  const CallPlan plan = ParseCallOptions(args, &desc);
  desc.k_pos.start = args.Int64("--k-start", 0, INT64_MIN, INT64_MAX);
  const Conversion conversion = ConversionOf(args);

  Arrays in;
  LoadQkv(args, &in, &desc);
  LoadCallInputs(args, plan, desc.n_kv, &in.call, &desc);
  Convert(args, conversion, &in, &desc);
  RunCall(args, plan, &desc);
  return 0;
}

}  // namespace relattn_cli
