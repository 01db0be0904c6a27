// The public API's contract: every bad field gets its own status and a message
// naming it, and a failed call leaves the output untouched.
#include <doctest/doctest.h>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "tests/attention_case.h"

namespace relattn_test {
namespace {

struct BadInput {
  const char* what;
  std::function<void(relattn_attention_desc&)> mutate;
  relattn_status status;
  const char* message;  // must appear in relattn_last_error()
};

const int64_t kNegativePositions[] = {INT64_MIN, 0, 1, 2, 3, 4, 5, 6};
const int64_t kPositivePositions[] = {INT64_MAX, 1, 2, 3, 4, 5, 6, 7};
const float kNanSlopes[] = {0.5f, NAN, 0.1f, 0.1f};
const float kHugeValues[] = {0.5f, FLT_MAX, 0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 0.1f};
const float kHugeScales[] = {0.1f, 0.1f, 3e36f, 0.1f};
uint16_t kF16InfTable[4 * 32];
const float kF32Scales[4096] = {};

std::vector<BadInput> BadInputs() {
  using D = relattn_attention_desc;
  std::fill(std::begin(kF16InfTable), std::end(kF16InfTable), uint16_t(0x7c00));
  return {
      {"n_q", [](D& d) { d.n_q = 0; }, RELATTN_ERR_BAD_DIMENSION,
       "n_q = 0: must be in 1..1099511627776"},
      // Counts beyond any buffer: named, not blamed on strides or overlaps.
      {"n_q 2^62", [](D& d) { d.n_q = int64_t{1} << 62; }, RELATTN_ERR_BAD_DIMENSION,
       "n_q = 4611686018427387904: must be in 1..1099511627776"},
      {"n_kv INT64_MAX", [](D& d) { d.n_kv = INT64_MAX; }, RELATTN_ERR_BAD_DIMENSION,
       "n_kv = 9223372036854775807: must be in 1..1099511627776"},
      // o == v where k's span covers v's start (K and V interleaved in one buffer).
      {"o is v inside k's span",
       [](D& d) {
         d.v.data = static_cast<const float*>(d.k.data) + 16;
         d.o.data = const_cast<void*>(d.v.data);
       },
       RELATTN_ERR_OVERLAP, "o overlaps v:"},
      {"q position beyond 2^53 with rope",
       [](D& d) {
         d.rope.pairing = RELATTN_ROPE_HALVES;
         d.q_pos.start = (int64_t{1} << 53) + 1;
         d.k_pos.start = 0;
       },
       RELATTN_ERR_POSITION_OVERFLOW, "q_pos: positions 9007199254740993.."},
      // The output shares memory with an input it is computed from.
      {"o aliases q_pos",
       [](D& d) { d.q_pos.positions = static_cast<const int64_t*>(d.o.data) + 3; },
       RELATTN_ERR_OVERLAP, "o overlaps q_pos.positions"},
      {"o aliases k_pos", [](D& d) { d.k_pos.positions = static_cast<const int64_t*>(d.o.data); },
       RELATTN_ERR_OVERLAP, "o overlaps k_pos.positions"},
      {"o aliases ALiBi slopes",
       [](D& d) {
         d.bias.kind = RELATTN_BIAS_ALIBI;
         d.bias.alibi.slopes = static_cast<const float*>(d.o.data) + 100;
       },
       RELATTN_ERR_OVERLAP, "o overlaps bias.alibi.slopes"},
      {"o aliases the T5 table",
       [](D& d) {
         d.bias.kind = RELATTN_BIAS_T5;
         d.bias.t5.table = static_cast<const float*>(d.o.data) + 7;
         d.bias.t5.table_dtype = RELATTN_F32;
         d.bias.t5.num_buckets = 32;
         d.bias.t5.max_distance = 128;
       },
       RELATTN_ERR_OVERLAP, "o overlaps bias.t5.table"},
      {"o aliases the T5 table scales",
       [](D& d) {
         static const int8_t table[4 * 32] = {};
         d.bias.kind = RELATTN_BIAS_T5;
         d.bias.t5.table = table;
         d.bias.t5.table_dtype = RELATTN_I8;
         d.bias.t5.table_scales = static_cast<const float*>(d.o.data) + 50;
         d.bias.t5.num_buckets = 32;
         d.bias.t5.max_distance = 128;
       },
       RELATTN_ERR_OVERLAP, "o overlaps bias.t5.table_scales"},
      {"o aliases the Shaw table",
       [](D& d) {
         d.bias.kind = RELATTN_BIAS_SHAW;
         d.bias.shaw.table = static_cast<const float*>(d.o.data) + 1;
         d.bias.shaw.k = 4;
       },
       RELATTN_ERR_OVERLAP, "o overlaps bias.shaw.table"},
      {"n_kv", [](D& d) { d.n_kv = -3; }, RELATTN_ERR_BAD_DIMENSION, "n_kv = -3"},
      {"n_heads", [](D& d) { d.n_heads = 5000; }, RELATTN_ERR_BAD_DIMENSION,
       "n_heads = 5000: must be in 1..4096"},
      {"n_kv_heads", [](D& d) { d.n_kv_heads = 0; }, RELATTN_ERR_BAD_DIMENSION,
       "n_kv_heads = 0: must be in 1..4"},
      {"gqa ratio", [](D& d) { d.n_kv_heads = 3; }, RELATTN_ERR_BAD_GQA_RATIO,
       "n_heads = 4: must be a multiple of n_kv_heads = 3"},
      {"head_dim", [](D& d) { d.head_dim = 300; }, RELATTN_ERR_BAD_DIMENSION,
       "head_dim = 300: must be in 1..256"},
      {"v_head_dim", [](D& d) { d.v_head_dim = -1; }, RELATTN_ERR_BAD_DIMENSION,
       "v_head_dim = -1: must be in 0..256"},
      {"q.data", [](D& d) { d.q.data = nullptr; }, RELATTN_ERR_NULL_ARGUMENT, "q.data is NULL"},
      {"k.data", [](D& d) { d.k.data = nullptr; }, RELATTN_ERR_NULL_ARGUMENT, "k.data is NULL"},
      {"v.data", [](D& d) { d.v.data = nullptr; }, RELATTN_ERR_NULL_ARGUMENT, "v.data is NULL"},
      {"o.data", [](D& d) { d.o.data = nullptr; }, RELATTN_ERR_NULL_ARGUMENT, "o.data is NULL"},
      {"q.dtype", [](D& d) { d.q.dtype = relattn_dtype(9); }, RELATTN_ERR_BAD_DTYPE, "q.dtype = 9"},
      // Negative values are valid values of every public enum (MIN_ENUM):
      // rejected with their number, no undefined behaviour (UBSan runs this).
      {"q.dtype negative", [](D& d) { d.q.dtype = relattn_dtype(-3); }, RELATTN_ERR_BAD_DTYPE,
       "q.dtype = -3"},
      {"v.dtype INT_MIN", [](D& d) { d.v.dtype = RELATTN_DTYPE_MIN_ENUM; }, RELATTN_ERR_BAD_DTYPE,
       "v.dtype = -2147483648"},
      {"o.dtype negative", [](D& d) { d.o.dtype = relattn_dtype(-1); }, RELATTN_ERR_BAD_DTYPE,
       "o.dtype = unknown (-1)"},
      {"bias.kind negative", [](D& d) { d.bias.kind = relattn_bias_kind(-1); },
       RELATTN_ERR_BAD_BIAS_KIND, "bias.kind = -1"},
      {"rope.pairing negative", [](D& d) { d.rope.pairing = relattn_rope_pairing(-2); },
       RELATTN_ERR_BAD_ROPE, "pairing = -2"},
      {"k.dtype int8 without scales", [](D& d) { d.k.dtype = RELATTN_I8; },
       RELATTN_ERR_NULL_ARGUMENT, "k.row_scales is NULL"},
      {"q int8 with float k",
       [](D& d) {
         d.q.dtype = RELATTN_I8;
         d.q.row_scales = kF32Scales;
         d.q.scale_token_stride = d.n_heads;
         d.q.scale_head_stride = 1;
       },
       RELATTN_ERR_UNSUPPORTED, "int8 q needs int8 k"},
      {"v.dtype int8 without scales", [](D& d) { d.v.dtype = RELATTN_I8; },
       RELATTN_ERR_NULL_ARGUMENT, "v.row_scales is NULL"},
      {"k int8 scales overlap",
       [](D& d) {
         d.k.dtype = RELATTN_I8;
         d.k.row_scales = kF32Scales;
       },
       RELATTN_ERR_BAD_STRIDE, "k.row_scales"},
      {"o.dtype", [](D& d) { d.o.dtype = RELATTN_I8; }, RELATTN_ERR_BAD_DTYPE, "o.dtype = I8"},
      {"q.token_stride", [](D& d) { d.q.token_stride = -1; }, RELATTN_ERR_BAD_STRIDE,
       "q strides (token -1, head 16): must be >= 0"},
      {"k.head_stride < head_dim", [](D& d) { d.k.head_stride = 8; }, RELATTN_ERR_BAD_STRIDE,
       "k.head_stride = 8: rows overlap, must be >= 16"},
      {"v.token_stride overlaps heads", [](D& d) { d.v.token_stride = 16; }, RELATTN_ERR_BAD_STRIDE,
       "v.head_stride = 16: rows overlap"},
      {"o.head_stride", [](D& d) { d.o.head_stride = 3; }, RELATTN_ERR_BAD_STRIDE,
       "o.head_stride = 3: rows overlap"},
      {"scale", [](D& d) { d.scale = INFINITY; }, RELATTN_ERR_BAD_SCALE, "scale = inf"},
      // Finite but beyond what log2 units hold in f32: rejected, not a NaN row.
      {"scale 3e38", [](D& d) { d.scale = 3e38f; }, RELATTN_ERR_BAD_SCALE,
       "scale = 3e+38: must be finite, |scale| <= 2^127"},
      {"alibi slope FLT_MAX",
       [](D& d) {
         d.bias.kind = RELATTN_BIAS_ALIBI;
         d.bias.alibi.slopes = kHugeValues;
       },
       RELATTN_ERR_BAD_BIAS_PARAMETER, "bias.alibi.slopes[1] = 3.40282e+38: must be finite"},
      {"t5 entry FLT_MAX",
       [](D& d) {
         d.bias.kind = RELATTN_BIAS_T5;
         d.bias.t5.table = kHugeValues;
         d.bias.t5.table_dtype = RELATTN_F32;
         d.bias.t5.num_buckets = 2;
         d.bias.t5.max_distance = 128;
       },
       RELATTN_ERR_BAD_BIAS_PARAMETER, "bias.t5.table[1] = 3.40282e+38"},
      {"t5 int8 scale x 127 beyond f32",
       [](D& d) {
         static const int8_t table[4 * 32] = {};
         d.bias.kind = RELATTN_BIAS_T5;
         d.bias.t5.table = table;
         d.bias.t5.table_dtype = RELATTN_I8;
         d.bias.t5.table_scales = kHugeScales;
         d.bias.t5.num_buckets = 32;
         d.bias.t5.max_distance = 128;
       },
       RELATTN_ERR_BAD_BIAS_PARAMETER, "bias.t5.table_scales[2] = 3e+36"},
      {"shaw entry near FLT_MAX",
       [](D& d) {
         d.bias.kind = RELATTN_BIAS_SHAW;
         d.bias.shaw.table = kHugeValues;
         d.bias.shaw.k = 0;
       },
       RELATTN_ERR_BAD_BIAS_PARAMETER, "bias.shaw.table[1] = 3.40282e+38"},
      {"q_pos.start", [](D& d) { d.q_pos.start = INT64_MAX - 2; }, RELATTN_ERR_POSITION_OVERFLOW,
       "q_pos.start = 9223372036854775805"},
      {"positions differ by > INT64_MAX",
       [](D& d) {
         d.q_pos.positions = kNegativePositions;
         d.k_pos.positions = kPositivePositions;
       },
       RELATTN_ERR_POSITION_OVERFLOW, "differ by more than INT64_MAX"},
      {"bias.kind", [](D& d) { d.bias.kind = relattn_bias_kind(7); }, RELATTN_ERR_BAD_BIAS_KIND,
       "bias.kind = 7"},
      {"alibi max_bias",
       [](D& d) {
         d.bias.kind = RELATTN_BIAS_ALIBI;
         d.bias.alibi.max_bias = -1.0f;
       },
       RELATTN_ERR_BAD_BIAS_PARAMETER, "bias.alibi.max_bias = -1"},
      {"alibi slopes nan",
       [](D& d) {
         d.bias.kind = RELATTN_BIAS_ALIBI;
         d.bias.alibi.slopes = kNanSlopes;
       },
       RELATTN_ERR_BAD_BIAS_PARAMETER, "bias.alibi.slopes[1] = nan"},
      {"t5 table", [](D& d) { d.bias.kind = RELATTN_BIAS_T5; }, RELATTN_ERR_NULL_ARGUMENT,
       "bias.kind = T5 needs bias.t5.table: it is NULL"},
      {"t5 num_buckets",
       [](D& d) {
         d.bias.kind = RELATTN_BIAS_T5;
         d.bias.t5.table = kF16InfTable;
         d.bias.t5.num_buckets = 2000;
         d.bias.t5.max_distance = 128;
       },
       RELATTN_ERR_BAD_BIAS_PARAMETER, "bias.t5.num_buckets = 2000"},
      {"t5 max_distance",
       [](D& d) {
         d.bias.kind = RELATTN_BIAS_T5;
         d.bias.t5.table = kF16InfTable;
         d.bias.t5.num_buckets = 32;
         d.bias.t5.max_distance = -3;
       },
       RELATTN_ERR_BAD_BIAS_PARAMETER, "bias.t5.max_distance = -3"},
      {"t5 f16 inf entry",
       [](D& d) {
         d.bias.kind = RELATTN_BIAS_T5;
         d.bias.t5.table = kF16InfTable;
         d.bias.t5.table_dtype = RELATTN_F16;
         d.bias.t5.num_buckets = 32;
         d.bias.t5.max_distance = 128;
       },
       RELATTN_ERR_BAD_BIAS_PARAMETER, "bias.t5.table[0]"},
      {"t5 i8 without scales",
       [](D& d) {
         d.bias.kind = RELATTN_BIAS_T5;
         d.bias.t5.table = kF16InfTable;
         d.bias.t5.table_dtype = RELATTN_I8;
         d.bias.t5.num_buckets = 32;
         d.bias.t5.max_distance = 128;
       },
       RELATTN_ERR_NULL_ARGUMENT, "bias.t5.table_scales is NULL"},
      {"t5 table dtype",
       [](D& d) {
         d.bias.kind = RELATTN_BIAS_T5;
         d.bias.t5.table = kF16InfTable;
         d.bias.t5.table_dtype = relattn_dtype(5);
         d.bias.t5.num_buckets = 32;
         d.bias.t5.max_distance = 128;
       },
       RELATTN_ERR_BAD_DTYPE, "bias.t5.table_dtype = 5"},
      {"t5 table dtype negative",
       [](D& d) {
         d.bias.kind = RELATTN_BIAS_T5;
         d.bias.t5.table = kF16InfTable;
         d.bias.t5.table_dtype = relattn_dtype(-7);
         d.bias.t5.num_buckets = 32;
         d.bias.t5.max_distance = 128;
       },
       RELATTN_ERR_BAD_DTYPE, "bias.t5.table_dtype = -7"},
      {"shaw table", [](D& d) { d.bias.kind = RELATTN_BIAS_SHAW; }, RELATTN_ERR_NULL_ARGUMENT,
       "bias.kind = SHAW needs bias.shaw.table: it is NULL"},
      {"shaw vector table", [](D& d) { d.bias.kind = RELATTN_BIAS_SHAW_VECTOR; },
       RELATTN_ERR_NULL_ARGUMENT,
       "bias.kind = SHAW_VECTOR needs bias.shaw_vector.table: it is NULL"},
      {"shaw k",
       [](D& d) {
         d.bias.kind = RELATTN_BIAS_SHAW;
         d.bias.shaw.table = kNanSlopes;
         d.bias.shaw.k = -1;
       },
       RELATTN_ERR_BAD_BIAS_PARAMETER, "bias.shaw.k = -1: must be in 0..16384"},
      {"mask.window", [](D& d) { d.mask.window = -2; }, RELATTN_ERR_BAD_MASK, "mask.window = -2"},
      {"mask.n_valid_kv", [](D& d) { d.mask.n_valid_kv = 9; }, RELATTN_ERR_BAD_MASK,
       "mask.n_valid_kv = 9: must be in 1..n_kv = 8"},
      {"misaligned q", [](D& d) { d.q.data = static_cast<const char*>(d.q.data) + 2; },
       RELATTN_ERR_BAD_ALIGNMENT, "must be aligned to 4 bytes"},
      {"misaligned positions",
       [](D& d) {
         d.k_pos.positions = reinterpret_cast<const int64_t*>(
             reinterpret_cast<const char*>(kPositivePositions) + 4);
       },
       RELATTN_ERR_BAD_ALIGNMENT, "k_pos.positions"},
      {"misaligned alibi slopes",
       [](D& d) {
         d.bias.kind = RELATTN_BIAS_ALIBI;
         d.bias.alibi.slopes =
             reinterpret_cast<const float*>(reinterpret_cast<const char*>(kNanSlopes) + 1);
       },
       RELATTN_ERR_BAD_ALIGNMENT, "bias.alibi.slopes"},
      {"output overlaps v", [](D& d) { d.o.data = const_cast<void*>(d.v.data); },
       RELATTN_ERR_OVERLAP, "o overlaps v"},
      {"output overlaps q partially",
       [](D& d) { d.o.data = static_cast<float*>(const_cast<void*>(d.q.data)) + 100; },
       RELATTN_ERR_OVERLAP, "o overlaps q"},
  };
}

CaseSpec ValidSpec() {
  CaseSpec spec;
  spec.n_q = 8;
  spec.n_kv = 8;
  spec.n_heads = 4;
  spec.n_kv_heads = 2;
  spec.head_dim = 16;
  return spec;
}

TEST_CASE("every bad descriptor field: its own status and message, output untouched") {
  for (const BadInput& bad : BadInputs()) {
    Case c(ValidSpec());
    std::vector<uint8_t> out;
    REQUIRE(c.Run(&out) == RELATTN_OK);  // valid as built
    const std::vector<uint8_t> poison(out.size(), 0xa5);
    out = poison;
    relattn_attention_desc desc = c.desc();
    desc.o.data = out.data();
    bad.mutate(desc);
    alignas(64) static float workspace[1 << 18];
    const relattn_status status = relattn_attention(&desc, workspace, sizeof(workspace), nullptr);
    INFO(bad.what, ": ", relattn_last_error());
    CHECK(status == bad.status);
    CHECK(std::string(relattn_last_error()).find(bad.message) != std::string::npos);
    CHECK(out == poison);
    size_t bytes = 0;
    CHECK(relattn_attention_workspace_size(&desc, 1, &bytes) == bad.status);
    CHECK(std::string(relattn_status_string(status)) != "unknown status");
  }
}

TEST_CASE("the workspace shares no byte with the output or an input") {
  Case c(ValidSpec());
  std::vector<uint8_t> out;
  REQUIRE(c.Run(&out) == RELATTN_OK);
  size_t bytes = 0;
  REQUIRE(relattn_attention_workspace_size(&c.desc(), 1, &bytes) == RELATTN_OK);
  alignas(64) static float workspace[1 << 18];
  REQUIRE(bytes <= sizeof(workspace) / 2);
  relattn_attention_desc desc = c.desc();
  // q copied into the workspace's second half, then the call given all of it.
  std::vector<float> q_copy(static_cast<const float*>(desc.q.data),
                            static_cast<const float*>(desc.q.data) + 8 * 4 * 16);
  float* inside = workspace + sizeof(workspace) / sizeof(float) - q_copy.size();
  std::copy(q_copy.begin(), q_copy.end(), inside);
  desc.q.data = inside;
  CHECK(relattn_attention(&desc, workspace, sizeof(workspace), nullptr) == RELATTN_OK);  // unused
  CHECK(relattn_attention(&desc, inside - bytes / sizeof(float) + 16, bytes, nullptr) ==
        RELATTN_ERR_OVERLAP);
  CHECK(std::string(relattn_last_error()).rfind("workspace overlaps q: workspace spans bytes", 0) ==
        0);
  desc = c.desc();
  desc.o.data = workspace + 64;
  CHECK(relattn_attention(&desc, workspace, bytes, nullptr) == RELATTN_ERR_OVERLAP);
  CHECK(std::string(relattn_last_error()).rfind("workspace overlaps o: workspace spans bytes", 0) ==
        0);
  CHECK(std::string(relattn_last_error()).find("they must not share memory") != std::string::npos);
}

TEST_CASE("status strings: every int is a status value, unknown ones say so") {
  CHECK(std::string(relattn_status_string(RELATTN_ERR_OVERLAP)) == "output overlaps an input");
  CHECK(std::string(relattn_status_string(RELATTN_ERR_BUSY)) ==
        "KV cache busy with another append");
  CHECK(std::string(relattn_status_string(RELATTN_ERR_VALUE_RANGE)) ==
        "values too large for f32 scores");
  CHECK(std::string(relattn_status_string(RELATTN_ERR_BAD_SINK)) == "bad attention sink logit");
  for (int v : {-1, 25, -2147483647 - 1, 2147483647}) {
    CHECK(std::string(relattn_status_string(relattn_status(v))) == "unknown status");
  }
}

TEST_CASE("workspace, threads and NULL arguments") {
  Case c(ValidSpec());
  std::vector<uint8_t> out;
  REQUIRE(c.Run(&out) == RELATTN_OK);
  const std::vector<uint8_t> poison(out.size(), 0xa5);
  out = poison;
  relattn_attention_desc desc = c.desc();
  desc.o.data = out.data();
  size_t bytes = 0;
  REQUIRE(relattn_attention_workspace_size(&desc, 1, &bytes) == RELATTN_OK);
  alignas(64) static uint8_t workspace[1 << 20];
  REQUIRE(bytes <= sizeof(workspace));

  CHECK(relattn_attention(nullptr, workspace, bytes, nullptr) == RELATTN_ERR_NULL_ARGUMENT);
  CHECK(std::string(relattn_last_error()) == "desc is NULL");
  CHECK(relattn_attention(&desc, nullptr, bytes, nullptr) == RELATTN_ERR_NULL_ARGUMENT);
  CHECK(relattn_attention(&desc, workspace + 4, bytes, nullptr) == RELATTN_ERR_BAD_ALIGNMENT);
  CHECK(relattn_attention(&desc, workspace, bytes - 1, nullptr) == RELATTN_ERR_WORKSPACE_TOO_SMALL);
  CHECK(std::string(relattn_last_error()).find("workspace_bytes = " + std::to_string(bytes - 1)) !=
        std::string::npos);
  const relattn_threads no_fn{nullptr, nullptr, 2};
  CHECK(relattn_attention(&desc, workspace, bytes, &no_fn) == RELATTN_ERR_NULL_ARGUMENT);
  const relattn_threads zero{[](void*, size_t, relattn_task_fn, void*) {}, nullptr, 0};
  CHECK(relattn_attention(&desc, workspace, bytes, &zero) == RELATTN_ERR_BAD_THREADS);
  CHECK(relattn_attention_workspace_size(&desc, -1, &bytes) == RELATTN_ERR_BAD_THREADS);
  size_t zero_threads = 0, one_thread = 0;  // 0: the calling thread, as 1
  CHECK(relattn_attention_workspace_size(&desc, 0, &zero_threads) == RELATTN_OK);
  CHECK(relattn_attention_workspace_size(&desc, 1, &one_thread) == RELATTN_OK);
  CHECK(zero_threads == one_thread);
  // A thread count beyond RELATTN_MAX_THREADS is an error, not a 26 TB workspace.
  size_t huge = 0;
  CHECK(relattn_attention_workspace_size(&desc, INT32_MAX, &huge) == RELATTN_ERR_BAD_THREADS);
  CHECK(std::string(relattn_last_error()) == "n_threads = 2147483647: must be in 1..1024 (0: 1)");
  CHECK(huge == 0);
  const relattn_threads too_many{[](void*, size_t, relattn_task_fn, void*) {}, nullptr, 1025};
  CHECK(relattn_attention(&desc, workspace, bytes, &too_many) == RELATTN_ERR_BAD_THREADS);
  CHECK(std::string(relattn_last_error()) == "threads->n_threads = 1025: must be in 1..1024");
  CHECK(relattn_attention_workspace_size(&desc, 1, nullptr) == RELATTN_ERR_NULL_ARGUMENT);
  // Two threads need twice the workspace.
  const relattn_threads two{[](void*, size_t, relattn_task_fn, void*) {}, nullptr, 2};
  CHECK(relattn_attention(&desc, workspace, bytes, &two) == RELATTN_ERR_WORKSPACE_TOO_SMALL);
  CHECK(out == poison);
  CHECK(relattn_attention(&desc, workspace, bytes, nullptr) == RELATTN_OK);
  CHECK(std::string(relattn_last_error()).empty());
  CHECK(out != poison);
}

TEST_CASE("version") {
  CHECK(relattn_version() == RELATTN_VERSION);
  CHECK(std::string(relattn_version_string()) == "0.3.0");
}

TEST_CASE("active target") {
  const char* target = relattn_active_target();
  REQUIRE(target != nullptr);
  CHECK(std::strlen(target) > 0);
}

}  // namespace
}  // namespace relattn_test
