#include "tools/cli/scheme.h"

#include <cstring>

#include "tools/cli/tensors.h"

namespace relattn_cli {

const std::vector<OptionSpec> kSchemeOptions = {
    {"--scheme", 1},       {"--max-bias", 1},     {"--slopes", 1},
    {"--table", 1},        {"--table-layout", 1}, {"--num-buckets", 1},
    {"--max-distance", 1}, {"--shaw-k", 1},       {"--bidirectional", 0}};

const char kSchemeUsage[] =
    R"(  --scheme none|alibi|t5|shaw|shaw_vector  position scheme (default none)
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
)";

namespace {

const std::vector<std::string> kTableOptions = {"--max-bias",     "--slopes",      "--table",
                                                "--table-layout", "--num-buckets", "--max-distance",
                                                "--shaw-k"};
const SchemeSpec kSchemes[] = {
    {"none", RELATTN_BIAS_NONE, {}},
    {"alibi", RELATTN_BIAS_ALIBI, {"--max-bias", "--slopes"}},
    {"t5", RELATTN_BIAS_T5, {"--table", "--table-layout", "--num-buckets", "--max-distance"}},
    {"shaw", RELATTN_BIAS_SHAW, {"--table", "--shaw-k"}},
    {"shaw_vector", RELATTN_BIAS_SHAW_VECTOR, {"--table", "--shaw-k"}}};

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
    args.Fail(Describe(args, "--table", *table) +
              ": with --table-layout buckets_heads must be [num_buckets][" + std::to_string(heads) +
              "] (Hugging Face's relative_attention_bias.weight)");
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
    args.Fail(Describe(args, "--table", a) + ": must be [" + h + "][2k+1][" + d +
              "] (one table per query head) or [2k+1][" + d + "] (shared)");
  }
  if (a.dtype != NpyDtype::kF32) args.Fail(Describe(args, "--table", a) + ": must be float32");
  *per_head = rank == 3;
  return a.shape[rank - 2];
}

void SetAlibi(const Args& args, int bidirectional, SchemeTables* tables,
              relattn_attention_desc* desc) {
  relattn_alibi& alibi = desc->bias.alibi;
  alibi.causal = !bidirectional;
  alibi.max_bias = float(args.Double("--max-bias", 8.0));
  if (args.Has("--slopes")) {
    tables->slopes = Load(args, "--slopes");
    CheckTable(args, "--slopes", tables->slopes, desc->n_heads, nullptr, false);
    alibi.slopes = reinterpret_cast<const float*>(tables->slopes.bytes.data());
  }
}

void SetT5(const Args& args, int bidirectional, const NpyArray& table, int64_t width,
           relattn_t5* t5) {
  const int64_t nb = args.Int64("--num-buckets", width, 2, 1024);
  if (nb != width) {
    args.Fail(Describe(args, "--table", table) + ": width must equal --num-buckets " +
              std::to_string(nb));
  }
  t5->table = table.bytes.data();
  t5->table_dtype = table.dtype == NpyDtype::kF32 ? RELATTN_F32 : RELATTN_F16;
  t5->num_buckets = int32_t(nb);
  t5->max_distance = int32_t(args.Int64("--max-distance", 128, 1, 16384));
  t5->bidirectional = bidirectional;
}

void SetShaw(const Args& args, relattn_bias_kind kind, const NpyArray& table, int64_t width,
             int per_head, relattn_bias* bias) {
  const int64_t k = args.Int64("--shaw-k", (width - 1) / 2, 0, 16384);
  if (width != 2 * k + 1) {
    const char* extent = kind == RELATTN_BIAS_SHAW ? ": width" : ": offset rows";
    args.Fail(Describe(args, "--table", table) + extent + " must be 2k+1" +
              (args.Has("--shaw-k") ? " = " + std::to_string(2 * k + 1) : " (odd)"));
  }
  const float* data = reinterpret_cast<const float*>(table.bytes.data());
  if (kind == RELATTN_BIAS_SHAW) {
    bias->shaw.table = data;
    bias->shaw.k = int32_t(k);
  } else {  // k > 64 is the library's to reject
    bias->shaw_vector.table = data;
    bias->shaw_vector.k = int32_t(k);
    bias->shaw_vector.per_head = per_head;
  }
}

}  // namespace

const SchemeSpec& SchemeOf(const Args& args) {
  const std::string scheme = args.String("--scheme", "none");
  const SchemeSpec* spec = nullptr;
  for (const SchemeSpec& s : kSchemes) {
    if (scheme == s.name) spec = &s;
  }
  if (!spec) {
    args.Usage("--scheme '" + scheme + "': must be none, alibi, t5, shaw or shaw_vector");
  }
  for (const std::string& option : kTableOptions) {
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

void SetBias(const Args& args, const SchemeSpec& spec, SchemeTables* tables,
             relattn_attention_desc* desc) {
  desc->bias.kind = spec.kind;
  const int bidirectional = !args.Has("--causal") || args.Has("--bidirectional");
  if (spec.kind == RELATTN_BIAS_ALIBI) return SetAlibi(args, bidirectional, tables, desc);
  if (spec.kind == RELATTN_BIAS_NONE) return;
  NpyArray& table = tables->table = Load(args, "--table");
  if (spec.kind == RELATTN_BIAS_T5) ApplyTableLayout(args, desc->n_heads, &table);
  int64_t width = 0;
  int per_head = 0;
  if (spec.kind == RELATTN_BIAS_SHAW_VECTOR) {
    width = CheckShawVectorTable(args, table, desc->n_heads, desc->head_dim, &per_head);
  } else {
    CheckTable(args, "--table", table, desc->n_heads, &width, spec.kind == RELATTN_BIAS_T5);
  }
  if (spec.kind == RELATTN_BIAS_T5) return SetT5(args, bidirectional, table, width, &desc->bias.t5);
  SetShaw(args, spec.kind, table, width, per_head, &desc->bias);
}

}  // namespace relattn_cli
