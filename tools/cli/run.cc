// relattn run: one attention call on .npy arrays, output written as a float32 .npy.
#include <pthreadpool.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "lib/common/bf16.h"
#include "lib/common/f16.h"
#include "relattn/relattn.hpp"
#include "tools/cli/args.h"
#include "tools/cli/commands.h"
#include "tools/cli/npy.h"
#include "tools/cli/rope_scaling.h"
#include "tools/cli/sequence_inputs.h"

namespace relattn_cli {
namespace {

constexpr char kUsage[] = R"(usage: relattn run --q Q.npy --k K.npy --v V.npy --out O.npy [options]
Runs one attention call. Q is [tokens][heads][head_dim], K [kv_tokens][kv_heads][head_dim], V
[kv_tokens][kv_heads][v_head_dim], each float32 or float16 in C order; heads must be a multiple
of kv_heads. Writes O, [tokens][heads][v_head_dim] float32. On any error nothing is written.
  --scheme none|alibi|t5|shaw|shaw_vector  position scheme (default none)
  --max-bias B          ALiBi slopes from max_bias (default 8: the ALiBi paper's slopes)
  --slopes FILE.npy     ALiBi: caller slopes instead, float32 [heads]
  --table FILE.npy      t5: [heads][num_buckets] float32 or float16;
                        shaw: [heads][2k+1] float32, indexed by clip(key - query, -k, k) + k;
                        shaw_vector: [heads][2k+1][head_dim] float32 (one per head) or
                        [2k+1][head_dim] (shared), Shaw et al.'s vector form:
                        score = scale * q . (k + a[clip(key - query, -k, k) + k]), k <= 64
  --table-layout L      t5: heads_buckets (the default, [heads][num_buckets]) or
                        buckets_heads (Hugging Face's relative_attention_bias.weight,
                        [num_buckets][heads], transposed on load)
  --num-buckets NB      t5: checked against the table (default: the table's width)
  --max-distance MD     t5: default 128
  --shaw-k K            shaw, shaw_vector: checked against the table (default: from its
                        2k+1 rows)
  --bidirectional       bidirectional bias form (ALiBi -m|q - k|, T5 buckets split by sign)
                        with --causal too; without --causal it is the default (none,
                        shaw and shaw_vector have one form)
  --rope none|interleaved|halves  rotary position embedding of q and k (default none),
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
  --softcap C           logit soft-capping (Gemma 2: 50): content scores x = scale * q . k
                        become C tanh(x / C) before the bias and the mask (default 0: off)
  --sinks FILE.npy      learned attention sinks (gpt-oss), float32 [heads]: one more logit
                        per head in the softmax's denominator, no value behind it
  --causal              causal mask; also selects the causal bias form unless --bidirectional
  --window W            sliding window: 0 <= q - k < W with --causal, |q - k| < W without
  --valid-kv N          keys N.. are hidden (1..kv_tokens; default all)
  --first-valid-kv N    keys before N are hidden (left padding; default 0)
  --q-start P           int64 position of the first query (default 0)
  --k-start P           int64 position of the first key (default 0)
  --q-positions FILE.npy, --k-positions FILE.npy  int64 [tokens]: each token's position
                        (instead of --q-start / --k-start)
  --q-segments FILE.npy, --k-segments FILE.npy    packed sequences: int64 [tokens] ids
                        (int32 range); a query sees a key only where the ids are equal
  --lse-out FILE.npy    also write float32 [tokens][heads], ln of each row's softmax
                        denominator (-inf for a row that saw no key)
  --scale S             multiplies q.k (default 1/sqrt(head_dim))
  --threads T           threads (default 1; 0: one per core)
  --dtype file|bf16     file: Q, K, V as the files hold them (default); bf16: rounded to
                        bfloat16 (nearest even) and passed as RELATTN_BF16
  --precision exact|fast  exact (default): f32 arithmetic; fast: reduced-precision products
                        where the CPU has them (bf16 inputs on AVX512-BF16: P.V in bf16)
  --quantize none|k|qk  int8 Q.K: K, or Q and K, quantised per (token, head) row before the
                        call (scale = max|row| / 127, round half away from zero); the
                        library multiplies the int8 values exactly (default none)
Exit status: 0 on success, 2 for bad arguments, 1 for unreadable or mismatched files and
errors from the library.
)";

const std::vector<OptionSpec> kOptions = {{"--q", 1},
                                          {"--k", 1},
                                          {"--v", 1},
                                          {"--out", 1},
                                          {"--scheme", 1},
                                          {"--max-bias", 1},
                                          {"--slopes", 1},
                                          {"--table", 1},
                                          {"--table-layout", 1},
                                          {"--num-buckets", 1},
                                          {"--max-distance", 1},
                                          {"--shaw-k", 1},
                                          {"--bidirectional", 0},
                                          {"--causal", 0},
                                          {"--window", 1},
                                          {"--valid-kv", 1},
                                          {"--q-start", 1},
                                          {"--k-start", 1},
                                          {"--scale", 1},
                                          {"--threads", 1},
                                          {"--rope", 1},
                                          {"--rotary-dims", 1},
                                          {"--rope-base", 1},
                                          {"--rope-scale", 1},
                                          {"--quantize", 1},
                                          {"--dtype", 1},
                                          {"--precision", 1},
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
                                          {"--rope-sequence-length", 1},
                                          {"--softcap", 1},
                                          {"--sinks", 1},
                                          {"--q-positions", 1},
                                          {"--k-positions", 1},
                                          {"--q-segments", 1},
                                          {"--k-segments", 1},
                                          {"--first-valid-kv", 1},
                                          {"--lse-out", 1}};

// The options each scheme reads; any other scheme option given is an error.
struct SchemeSpec {
  const char* name;
  relattn_bias_kind kind;
  std::vector<std::string> options;
};
const std::vector<std::string> kSchemeOptions = {
    "--max-bias",    "--slopes",       "--table", "--table-layout",
    "--num-buckets", "--max-distance", "--shaw-k"};
const SchemeSpec kSchemes[] = {
    {"none", RELATTN_BIAS_NONE, {}},
    {"alibi", RELATTN_BIAS_ALIBI, {"--max-bias", "--slopes"}},
    {"t5", RELATTN_BIAS_T5, {"--table", "--table-layout", "--num-buckets", "--max-distance"}},
    {"shaw", RELATTN_BIAS_SHAW, {"--table", "--shaw-k"}},
    {"shaw_vector", RELATTN_BIAS_SHAW_VECTOR, {"--table", "--shaw-k"}}};

// The arrays a call reads; they outlive the descriptor that points into them.
struct Arrays {
  NpyArray q, k, v, slopes, table, sinks;
  RopeScalingTables rope;
  std::vector<uint16_t> q_bf16, k_bf16, v_bf16;  // --dtype bf16: the inputs rounded
  std::vector<int8_t> q_i8, k_i8;                // --quantize: the int8 rows and their scales
  std::vector<float> q_scales, k_scales;
};

[[noreturn]] void Fail(const std::string& message) { Die("run", message, 1); }

NpyArray Load(const Args& args, const std::string& flag) {
  NpyArray a;
  std::string error;
  if (!ReadNpy(args.String(flag), &a, &error)) Fail(flag + " " + args.String(flag) + ": " + error);
  return a;
}

// "--q q.npy (float32 (2, 3, 4))", for messages about one array.
std::string Describe(const Args& args, const std::string& flag, const NpyArray& a) {
  return flag + " " + args.String(flag) + " (" + NpyDtypeName(a.dtype) + " " +
         ShapeString(a.shape) + ")";
}

relattn_tensor Tensor(const Args& args, const std::string& flag, const NpyArray& a) {
  if (a.shape.size() != 3 || a.shape[0] < 1 || a.shape[1] < 1 || a.shape[2] < 1) {
    Fail(Describe(args, flag, a) + ": must be [tokens][heads][head_dim], each >= 1");
  }
  if (a.shape[1] > INT32_MAX || a.shape[2] > INT32_MAX) {
    Fail(Describe(args, flag, a) + ": heads and head_dim must fit in int32");
  }
  if (a.dtype != NpyDtype::kF32 && a.dtype != NpyDtype::kF16) {
    Fail(Describe(args, flag, a) + ": must be float32 or float16");
  }
  const relattn_dtype dtype = a.dtype == NpyDtype::kF32 ? RELATTN_F32 : RELATTN_F16;
  return relattn::TokensHeadsDim(a.bytes.data(), dtype, int32_t(a.shape[1]), int32_t(a.shape[2]));
}

// Whether --dtype asks for bf16 inputs (checked before any file is read).
bool Bf16Inputs(const Args& args) {
  const std::string dtype = args.String("--dtype", "file");
  if (dtype != "file" && dtype != "bf16")
    args.Usage("--dtype '" + dtype + "': must be file or bf16");
  return dtype == "bf16";
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

void CheckShapes(const Args& args, const Arrays& in) {
  const auto mismatch = [&](const char* what, const char* f1, const NpyArray& a1, const char* f2,
                            const NpyArray& a2) {
    Fail(Describe(args, f1, a1) + " and " + Describe(args, f2, a2) + ": " + what + " differ");
  };
  if (in.q.shape[2] != in.k.shape[2]) mismatch("head_dim", "--q", in.q, "--k", in.k);
  if (in.k.shape[0] != in.v.shape[0]) mismatch("token counts", "--k", in.k, "--v", in.v);
  if (in.k.shape[1] != in.v.shape[1]) mismatch("head counts", "--k", in.k, "--v", in.v);
  if (in.q.shape[1] % in.k.shape[1] != 0) {
    Fail(Describe(args, "--q", in.q) + ": heads must be a multiple of the heads of " +
         Describe(args, "--k", in.k));
  }
}

// A [heads][width] table (or [heads] when width_out is null) of the call's head count.
void CheckTable(const Args& args, const std::string& flag, const NpyArray& a, int64_t heads,
                int64_t* width_out, bool f16_ok) {
  const size_t rank = width_out ? 2 : 1;
  if (a.shape.size() != rank || a.shape[0] != heads) {
    Fail(Describe(args, flag, a) + ": must be [" + std::to_string(heads) + "]" +
         (width_out ? "[width]" : "") + " (one row per query head)");
  }
  if (a.dtype != NpyDtype::kF32 && !(f16_ok && a.dtype == NpyDtype::kF16)) {
    Fail(Describe(args, flag, a) + ": must be float32" + (f16_ok ? " or float16" : ""));
  }
  if (width_out) *width_out = a.shape[1];
}

// a, a [rows][cols] table of 4- or 2-byte elements, as [cols][rows].
void Transpose2d(NpyArray* a) {
  const int64_t rows = a->shape[0], cols = a->shape[1];
  const size_t elem = a->dtype == NpyDtype::kF32 ? 4 : 2;
  std::vector<unsigned char> out(a->bytes.size());
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      std::memcpy(&out[(c * rows + r) * elem], &a->bytes[(r * cols + c) * elem], elem);
    }
  }
  a->bytes.swap(out);
  a->shape = {cols, rows};
}

// --table of t5 in --table-layout: buckets_heads tables (Hugging Face's
// [num_buckets][heads]) transposed to [heads][num_buckets].
void ApplyTableLayout(const Args& args, int64_t heads, NpyArray* table) {
  const std::string layout = args.String("--table-layout", "heads_buckets");
  if (layout == "heads_buckets") return;
  if (layout != "buckets_heads") {
    args.Usage("--table-layout " + layout + ": must be heads_buckets or buckets_heads");
  }
  if (table->shape.size() != 2 || table->shape[1] != heads) {
    Fail(Describe(args, "--table", *table) +
         ": with --table-layout buckets_heads must be "
         "[num_buckets][" +
         std::to_string(heads) + "] (Hugging Face's relative_attention_bias.weight)");
  }
  Transpose2d(table);
}

// --table for shaw_vector: [heads][2k+1][head_dim] (per head) or [2k+1][head_dim] (shared),
// float32; returns 2k+1 and sets *per_head.
int64_t CheckShawVectorTable(const Args& args, const NpyArray& a, int64_t heads, int64_t head_dim,
                             int* per_head) {
  const std::string h = std::to_string(heads), d = std::to_string(head_dim);
  const size_t rank = a.shape.size();
  if ((rank != 3 && rank != 2) || (rank == 3 && a.shape[0] != heads) ||
      a.shape[rank - 1] != head_dim || a.shape[rank - 2] < 1) {
    Fail(Describe(args, "--table", a) + ": must be [" + h + "][2k+1][" + d +
         "] (one table per query head) or [2k+1][" + d + "] (shared)");
  }
  if (a.dtype != NpyDtype::kF32) Fail(Describe(args, "--table", a) + ": must be float32");
  *per_head = rank == 3;
  return a.shape[rank - 2];
}

// The scheme --scheme names, once the options given fit it (checked before any file is read).
const SchemeSpec& SchemeOf(const Args& args) {
  const std::string scheme = args.String("--scheme", "none");
  const SchemeSpec* spec = nullptr;
  for (const SchemeSpec& s : kSchemes) {
    if (scheme == s.name) spec = &s;
  }
  if (!spec) {
    args.Usage("--scheme '" + scheme + "': must be none, alibi, t5, shaw or shaw_vector");
  }
  for (const std::string& option : kSchemeOptions) {
    bool used = false;
    for (const std::string& o : spec->options) used = used || o == option;
    if (args.Has(option) && !used) args.Usage(option + " is not used by --scheme " + scheme);
  }
  if (args.Has("--slopes") && args.Has("--max-bias")) {
    args.Usage("--slopes and --max-bias exclude each other");
  }
  if (spec->kind != RELATTN_BIAS_NONE && spec->kind != RELATTN_BIAS_ALIBI) {
    args.Require("--table");
  }
  return *spec;
}

// The rope --rope and its options give, once they fit (checked before any file is read;
// rotary_dims > head_dim is the library's to reject).
relattn_rope RopeOf(const Args& args) {
  relattn_rope rope{};
  const std::string pairing = args.String("--rope", "none");
  if (pairing == "interleaved") {
    rope.pairing = RELATTN_ROPE_INTERLEAVED;
  } else if (pairing == "halves") {
    rope.pairing = RELATTN_ROPE_HALVES;
  } else if (pairing != "none") {
    args.Usage("--rope '" + pairing + "': must be none, interleaved or halves");
  }
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
  return rope;
}

void SetBias(const Args& args, const SchemeSpec& spec, Arrays* in, relattn_attention_desc* desc) {
  relattn_bias& bias = desc->bias;
  bias.kind = spec.kind;
  const int bidirectional = !args.Has("--causal") || args.Has("--bidirectional");
  const int64_t heads = desc->n_heads;
  if (spec.kind == RELATTN_BIAS_ALIBI) {
    bias.alibi.causal = !bidirectional;
    bias.alibi.max_bias = float(args.Double("--max-bias", 8.0));
    if (args.Has("--slopes")) {
      in->slopes = Load(args, "--slopes");
      CheckTable(args, "--slopes", in->slopes, heads, nullptr, false);
      bias.alibi.slopes = reinterpret_cast<const float*>(in->slopes.bytes.data());
    }
  } else if (spec.kind != RELATTN_BIAS_NONE) {
    in->table = Load(args, "--table");
    if (spec.kind == RELATTN_BIAS_T5) ApplyTableLayout(args, heads, &in->table);
    int64_t width = 0;
    int per_head = 0;
    if (spec.kind == RELATTN_BIAS_SHAW_VECTOR) {
      width = CheckShawVectorTable(args, in->table, heads, desc->head_dim, &per_head);
    } else {
      CheckTable(args, "--table", in->table, heads, &width, spec.kind == RELATTN_BIAS_T5);
    }
    const std::string what = Describe(args, "--table", in->table);
    if (spec.kind == RELATTN_BIAS_T5) {
      const int64_t nb = args.Int64("--num-buckets", width, 2, 1024);
      if (nb != width) Fail(what + ": width must equal --num-buckets " + std::to_string(nb));
      bias.t5.table = in->table.bytes.data();
      bias.t5.table_dtype = in->table.dtype == NpyDtype::kF32 ? RELATTN_F32 : RELATTN_F16;
      bias.t5.num_buckets = int32_t(nb);
      bias.t5.max_distance = int32_t(args.Int64("--max-distance", 128, 1, 16384));
      bias.t5.bidirectional = bidirectional;
    } else {
      const int64_t k = args.Int64("--shaw-k", (width - 1) / 2, 0, 16384);
      if (width != 2 * k + 1) {
        const char* extent = spec.kind == RELATTN_BIAS_SHAW ? ": width" : ": offset rows";
        Fail(what + extent + " must be 2k+1" +
             (args.Has("--shaw-k") ? " = " + std::to_string(2 * k + 1) : " (odd)"));
      }
      const float* table = reinterpret_cast<const float*>(in->table.bytes.data());
      if (spec.kind == RELATTN_BIAS_SHAW) {
        bias.shaw.table = table;
        bias.shaw.k = int32_t(k);
      } else {  // k > 64 is the library's to reject
        bias.shaw_vector.table = table;
        bias.shaw_vector.k = int32_t(k);
        bias.shaw_vector.per_head = per_head;
      }
    }
  }
}

// Which of q and k --quantize names (checked before any file is read).
struct Quantize {
  bool q = false, k = false;
};
Quantize QuantizeOf(const Args& args) {
  const std::string which = args.String("--quantize", "none");
  if (which != "none" && which != "k" && which != "qk") {
    args.Usage("--quantize '" + which + "': must be none, k or qk");
  }
  return Quantize{which == "qk", which != "none"};
}

// Replaces *t, n tokens of heads rows of dim, by its int8 rows (in *rows, *scales).
void QuantizeRows(const std::string& flag, int64_t n, int32_t heads, int32_t dim,
                  std::vector<int8_t>* rows, std::vector<float>* scales, relattn_tensor* t) {
  rows->resize(size_t(n) * heads * dim);
  scales->resize(size_t(n) * heads);
  const relattn_tensor source = *t;
  const relattn::Status status = relattn::MakeStatus(
      relattn_quantize_i8(&source, n, heads, dim, rows->data(), scales->data(), t));
  if (!status) Fail("--quantize, " + flag + ": " + status.ToString());
}

}  // namespace

int RunCommand(int argc, char** argv, int first) {
  const Args args("run", kOptions, argc, argv, first);
  if (args.Help()) return std::fputs(kUsage, stdout), 0;
  for (const Args::Item& item : args.Items()) {
    if (item.name.empty()) args.Usage("unexpected argument '" + item.values[0] + "'");
  }
  for (const char* flag : {"--q", "--k", "--v", "--out"}) args.Require(flag);

  relattn_attention_desc desc;
  relattn_attention_desc_init(&desc);
  desc.mask.causal = args.Has("--causal");
  desc.mask.window = args.Int64("--window", 0, 0, INT64_MAX);
  desc.mask.n_valid_kv = args.Int64("--valid-kv", 0, 1, INT64_MAX);
  desc.q_pos.start = args.Int64("--q-start", 0, INT64_MIN, INT64_MAX);
  desc.k_pos.start = args.Int64("--k-start", 0, INT64_MIN, INT64_MAX);
  desc.scale = float(args.Double("--scale", 0.0));
  const int64_t n_threads = args.Int64("--threads", 1, 0, 1024);
  const SchemeSpec& scheme = SchemeOf(args);
  desc.rope = RopeOf(args);
  CheckRopeScalingOptions(args, desc.rope.pairing != RELATTN_ROPE_NONE);
  desc.softcap = float(args.Double("--softcap", 0.0));  // its range is the library's to judge
  const std::string precision = args.String("--precision", "exact");
  if (precision != "exact" && precision != "fast") {
    args.Usage("--precision '" + precision + "': must be exact or fast");
  }
  desc.precision = precision == "fast" ? RELATTN_PRECISION_FAST : RELATTN_PRECISION_EXACT;
  const Quantize quantize = QuantizeOf(args);
  const bool bf16 = Bf16Inputs(args);

  Arrays in;
  in.q = Load(args, "--q");
  in.k = Load(args, "--k");
  in.v = Load(args, "--v");
  desc.q = Tensor(args, "--q", in.q);
  desc.k = Tensor(args, "--k", in.k);
  desc.v = Tensor(args, "--v", in.v);
  CheckShapes(args, in);
  desc.n_q = in.q.shape[0];
  desc.n_kv = in.k.shape[0];
  desc.n_heads = int32_t(in.q.shape[1]);
  desc.n_kv_heads = int32_t(in.k.shape[1]);
  desc.head_dim = int32_t(in.q.shape[2]);
  desc.v_head_dim = int32_t(in.v.shape[2]);
  SetBias(args, scheme, &in, &desc);
  if (desc.rope.pairing != RELATTN_ROPE_NONE) SetRopeScaling(args, &in.rope, &desc.rope);
  if (args.Has("--sinks")) {
    in.sinks = Load(args, "--sinks");
    CheckTable(args, "--sinks", in.sinks, desc.n_heads, nullptr, false);
    desc.sinks = reinterpret_cast<const float*>(in.sinks.bytes.data());
  }
  SequenceInputs sequence;
  SetSequenceInputs(args, &sequence, &desc);
  if (bf16) {
    RoundToBf16(desc.n_q, desc.n_heads, desc.head_dim, &in.q_bf16, &desc.q);
    RoundToBf16(desc.n_kv, desc.n_kv_heads, desc.head_dim, &in.k_bf16, &desc.k);
    RoundToBf16(desc.n_kv, desc.n_kv_heads, desc.v_head_dim, &in.v_bf16, &desc.v);
  }
  if (quantize.q) {
    QuantizeRows("--q", desc.n_q, desc.n_heads, desc.head_dim, &in.q_i8, &in.q_scales, &desc.q);
  }
  if (quantize.k) {
    QuantizeRows("--k", desc.n_kv, desc.n_kv_heads, desc.head_dim, &in.k_i8, &in.k_scales, &desc.k);
  }

  const std::vector<int64_t> out_shape = {desc.n_q, desc.n_heads, desc.v_head_dim};
  std::vector<float> out(size_t(desc.n_q) * desc.n_heads * desc.v_head_dim);
  desc.o = relattn::OutputTokensHeadsDim(out.data(), RELATTN_F32, desc.n_heads, desc.v_head_dim);

  pthreadpool_t pool = n_threads == 1 ? nullptr : pthreadpool_create(size_t(n_threads));
  relattn_threads threads{};
  if (pool && relattn_threads_from_pthreadpool(pool, &threads) != RELATTN_OK) pool = nullptr;
  relattn::Workspace workspace;
  const relattn::Status status = relattn::Attention(desc, workspace, pool ? &threads : nullptr);
  if (pool) pthreadpool_destroy(pool);
  if (!status) Fail(status.ToString());

  std::string error;
  WriteLse(args, sequence, desc);
  if (!WriteNpyF32(args.String("--out"), out_shape, out.data(), &error)) {
    if (args.Has("--lse-out")) std::remove(args.String("--lse-out").c_str());  // nothing written
    Fail("--out: " + error);
  }
  return 0;
}

}  // namespace relattn_cli
