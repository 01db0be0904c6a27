/* relattn — attention with relative-position biases for CPUs at the edge.
 *
 * One call computes, for every head h and query i of one sequence,
 *
 *   o_i = sum_j softmax_j( scale * q_i . k_j + b_h(p_i - p_j) + mask(i, j) ) * v_j
 *
 * with a fused, streaming kernel: the n_q x n_kv score matrix is never stored;
 * working memory is the caller's workspace, whose size depends on the head
 * dimensions, the tile sizes and the bias table, never on n_q or n_kv.
 *
 * Conventions used by every function in this header:
 *  - Strides are in ELEMENTS of the tensor's dtype, never bytes.
 *  - Positions are int64 absolute token positions; biases depend only on
 *    differences, computed exactly in int64.
 *  - T5 buckets and Shaw tables are indexed by key position - query position
 *    (the references' convention); ALiBi uses |query - key| (bidirectional)
 *    or query - key (causal form).
 *  - Every function returns a relattn_status; on failure the output buffer is
 *    left untouched and relattn_last_error() names the argument at fault.
 *  - Nothing here allocates memory in the compute call or throws.
 */
#ifndef RELATTN_RELATTN_H_
#define RELATTN_RELATTN_H_

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32) && defined(RELATTN_SHARED_BUILD)
#define RELATTN_API __declspec(dllexport)
#elif defined(__GNUC__)
#define RELATTN_API __attribute__((visibility("default")))
#else
#define RELATTN_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define RELATTN_VERSION_MAJOR 0
#define RELATTN_VERSION_MINOR 3
#define RELATTN_VERSION_PATCH 0
/* MAJOR * 10000 + MINOR * 100 + PATCH: what relattn_version() returns. */
#define RELATTN_VERSION \
  (RELATTN_VERSION_MAJOR * 10000 + RELATTN_VERSION_MINOR * 100 + RELATTN_VERSION_PATCH)

/* Version of the linked library, encoded as RELATTN_VERSION. */
RELATTN_API int relattn_version(void);
/* "MAJOR.MINOR.PATCH" of the linked library; static storage. */
RELATTN_API const char* relattn_version_string(void);
/* Name of the SIMD target the kernels dispatch to now: the best of those
 * compiled in that this CPU supports, chosen at run time (Highway's names:
 * "AVX3", "AVX2", "SSE4", "SSSE3", "SCALAR"; "NEON", "SVE", "SVE2", ...).
 * A static string, never NULL (for logs and benchmark reports). */
RELATTN_API const char* relattn_active_target(void);

/* ------------------------------------------------------------------ errors */

typedef enum relattn_status {
  RELATTN_OK = 0,
  RELATTN_ERR_NULL_ARGUMENT = 1,      /* a required pointer is NULL */
  RELATTN_ERR_BAD_DIMENSION = 2,      /* n_q, n_kv, heads, head dims out of range */
  RELATTN_ERR_BAD_GQA_RATIO = 3,      /* n_heads not a multiple of n_kv_heads */
  RELATTN_ERR_BAD_STRIDE = 4,         /* a stride lets rows overlap or is negative */
  RELATTN_ERR_BAD_DTYPE = 5,          /* dtype unknown or not allowed for that tensor */
  RELATTN_ERR_BAD_SCALE = 6,          /* softmax scale not finite or beyond 2^127 */
  RELATTN_ERR_BAD_BIAS_KIND = 7,      /* unknown position scheme */
  RELATTN_ERR_BAD_BIAS_PARAMETER = 8, /* slopes, buckets, distances, Shaw k out of range */
  RELATTN_ERR_BAD_MASK = 9,           /* window or valid key count out of range */
  RELATTN_ERR_POSITION_OVERFLOW =
      10, /* a difference of two positions (either order) overflows int64 */
  RELATTN_ERR_WORKSPACE_TOO_SMALL = 11,
  RELATTN_ERR_BAD_THREADS = 12,   /* thread count < 1 or no parallel_for */
  RELATTN_ERR_UNSUPPORTED = 13,   /* valid but not implemented (e.g. int8 v) */
  RELATTN_ERR_BAD_ALIGNMENT = 14, /* workspace or cache memory misaligned */
  RELATTN_ERR_CACHE_FULL = 15,    /* append past the capacity of a non-ring KV cache */
  RELATTN_ERR_OVERLAP = 16,       /* the output's memory overlaps an input's */
  RELATTN_ERR_NON_FINITE = 17,    /* a value to quantise is a NaN or an infinity */
  RELATTN_ERR_BAD_CACHE = 18,     /* not a KV cache relattn_kv_cache_init laid out */
  RELATTN_ERR_BUSY = 19,          /* another call is appending to the same KV cache */
  RELATTN_ERR_VALUE_RANGE = 20, /* finite inputs so large that scores or sums would overflow f32 */
  RELATTN_ERR_BAD_ROPE = 21,    /* a RoPE field (pairing, dims, base, scaling) out of range */
  RELATTN_ERR_BAD_SOFTCAP = 22, /* softcap negative, not finite or out of 1e-6..1e30 */
  RELATTN_ERR_BAD_SINK = 23,    /* a sink logit not finite or beyond 2^126, or sinks misaligned */
  RELATTN_ERR_BAD_SINK_TOKENS = 24, /* n_sink_tokens or sink_positions of a KV cache out of range */
  RELATTN_STATUS_MIN_ENUM = -0x7fffffff - 1, /* any int is a valid value (status_string) */
  RELATTN_STATUS_MAX_ENUM = 0x7fffffff
} relattn_status;

/* Short fixed text for a status ("workspace too small"); static storage. */
RELATTN_API const char* relattn_status_string(relattn_status status);

/* The message of the last failed call on this thread, naming the argument and
 * the expected range ("head_dim = 300: must be in 1..256"); "" if none.
 * Valid until the next relattn call on the same thread. */
RELATTN_API const char* relattn_last_error(void);

/* ------------------------------------------------------------------ tensors */

typedef enum relattn_dtype {
  RELATTN_F32 = 0,
  RELATTN_F16 = 1, /* IEEE binary16 */
  /* Symmetric int8 with one f32 scale per (token, head) row (relattn_tensor
   * row_scales): element = scale * int8. Q, K and V (Q int8 needs K int8;
   * int8 V is converted to f32 with its row scales block by block, except in
   * decode over a KV cache, which reads it in place with each row's scale
   * folded into its probabilities). */
  RELATTN_I8 = 2,
  /* 4-bit, ggml's q4_0 blocks (K and V only: tensors and KV cache storage).
   * A row of dim values (dim a multiple of 32) is dim / 32 blocks of 18
   * bytes: an f16 scale d, then 16 bytes, byte i holding value i in its low
   * nibble and value i + 16 in its high one; value = (nibble - 8) * d. For
   * Q4 the element of a tensor is a BYTE: strides count bytes (a row takes
   * dim / 32 * 18), and row_scales is ignored. Converted to f32 block by
   * block. A KV cache quantises as ggml's quantize_row_q4_0 does: per block,
   * d = m / -8 with m the value of largest |x|, nibble = min(15, int(x / d +
   * 8.5)). */
  RELATTN_Q4 = 3,
  /* bfloat16 (the top 16 bits of an IEEE binary32), for Q, K, V, the output
   * and KV cache storage. Inputs are exact in f32 and computed in f32 as f16
   * ones are; the output and a cache's storage round to nearest even. */
  RELATTN_BF16 = 4,
  /* MIN and MAX keep every int a valid value of the type (no undefined
   * behaviour in C or C++ for any int stored here); validation rejects them. */
  RELATTN_DTYPE_MIN_ENUM = -0x7fffffff - 1,
  RELATTN_DTYPE_MAX_ENUM = 0x7fffffff
} relattn_dtype;

/* A [tokens][heads][dim] tensor of one sequence, with element strides, so that
 * both [tokens][heads][dim] (token_stride = heads * dim, head_stride = dim)
 * and [heads][tokens][dim] (token_stride = dim, head_stride = tokens * dim)
 * are described without copies. The innermost (dim) stride is 1.
 * Element (t, h, e) is at data[t * token_stride + h * head_stride + e].
 * row_scales (I8 only, else ignored): one float per (token, head) row, at
 * row_scales[t * scale_token_stride + h * scale_head_stride] (distinct rows,
 * distinct scales); a non-finite scale counts as a non-finite row. The row
 * scales are applied to each dot product. With Q and K in I8 (no RoPE), and
 * in decode (n_q <= 7) over a KV cache with I8 keys (which quantises each
 * query row as relattn_quantize_i8 would, after RoPE, and uses that row for
 * every product: q . k and the Shaw vector form's q . a), the int8 products
 * are summed exactly (integers below 2^24, exact in f32 and int32 alike):
 * every SIMD target gets the same integer scores, and on one target the
 * integer ISA kernels (VNNI, vpmaddwd, SDOT) and the portable path give the
 * same output bits (across targets the softmax rounds apart, within the
 * bound). Float Q with I8 K multiplies in f32; RoPE rotates the values, which
 * then are no longer integers. */
typedef struct relattn_tensor {
  const void* data;
  relattn_dtype dtype;
  int64_t token_stride;
  int64_t head_stride;
  const float* row_scales;
  int64_t scale_token_stride;
  int64_t scale_head_stride;
} relattn_tensor;

/* The output, [n_q][n_heads][v_head_dim] with the same stride rules; dtype
 * RELATTN_F32 or RELATTN_F16. Its address range (first to last element) must
 * not overlap that of any input (RELATTN_ERR_OVERLAP). Every data pointer is
 * aligned to its element size (RELATTN_ERR_BAD_ALIGNMENT). */
typedef struct relattn_output {
  void* data;
  relattn_dtype dtype;
  int64_t token_stride;
  int64_t head_stride;
} relattn_output;

/* Token t is at positions[t] if positions is not NULL, else at start + t. */
typedef struct relattn_positions {
  const int64_t* positions;
  int64_t start;
} relattn_positions;

/* ------------------------------------------------------- position schemes */

/* Value range. Every bias value a scheme holds (ALiBi slopes, table
 * entries, a T5 int8 table's scale times 127) and the softmax scale: finite
 * with |x| <= 2^127 (RELATTN_ERR_BAD_BIAS_PARAMETER / RELATTN_ERR_BAD_SCALE),
 * as scores are kept in log2 units in f32. The content scores and the P.V
 * sums must stay in f32 too: with each maximum over the finite elements
 * (NaN and infinities propagate to the rows they reach, as in exact
 * arithmetic), a call needs
 *   |scale| * head_dim * max|q| * (max|k| + max|a|) <= 2^125,
 *   n_kv * max|v| <= 2^125, and max|q|, max|k| <= 2^125
 * (a: the Shaw vector table; an I8 tensor's max is 127 x its largest row
 * scale), else it fails with RELATTN_ERR_VALUE_RANGE and writes nothing.
 * Every call scans q; it scans f32 k and v (f16 ones only when 65504 does
 * not already meet the bound), one read of each; over a KV cache it uses the
 * maxima the cache recorded as tokens were appended (since the last clear).
 * For scale 1 / sqrt(256), |q|, |k| <= 1e18 always pass. */

typedef enum relattn_bias_kind {
  RELATTN_BIAS_NONE = 0,
  RELATTN_BIAS_ALIBI = 1,       /* b_h(r) = -m_h * |r| or -m_h * r, r = p_q - p_k */
  RELATTN_BIAS_T5 = 2,          /* b_h = table[h][t5_bucket(p_k - p_q)] */
  RELATTN_BIAS_SHAW = 3,        /* b_h = table[h][clip(p_k - p_q, -k, k) + k] */
  RELATTN_BIAS_SHAW_VECTOR = 4, /* b = scale * q . a_h[clip(p_k - p_q, -k, k) + k] */
  RELATTN_BIAS_KIND_MIN_ENUM = -0x7fffffff - 1, /* as relattn_dtype's: any int is valid */
  RELATTN_BIAS_KIND_MAX_ENUM = 0x7fffffff
} relattn_bias_kind;

typedef struct relattn_alibi {
  /* [n_heads] caller slopes, or NULL: slopes from max_bias by
   * relattn_alibi_slopes() (max_bias = 8 is the ALiBi paper's rule). */
  const float* slopes;
  float max_bias; /* finite, > 0; 0 means 8 */
  /* 0: b = -m * |p_q - p_k| (bidirectional); 1: b = -m * (p_q - p_k). */
  int causal;
} relattn_alibi;

typedef struct relattn_t5 {
  /* [n_heads][num_buckets] learned biases, row stride num_buckets.
   * dtype F32, F16, or I8 with one float scale per head in table_scales
   * (bias = scale[h] * table[h][b]). */
  const void* table;
  relattn_dtype table_dtype;
  const float* table_scales;
  int32_t num_buckets; /* 2..1024; even and >= 4 when bidirectional; 0 means 32 */
  /* 1..16384 and > max_exact, the exact buckets per direction
   * (num_buckets / 4 bidirectional, num_buckets / 2 causal); 0 means 128. */
  int32_t max_distance;
  int bidirectional; /* 1: buckets split by the sign of p_k - p_q */
} relattn_t5;

typedef struct relattn_shaw {
  /* [n_heads][2k+1] biases, f32: table[h][clip(p_k - p_q, -k, k) + k]. */
  const float* table;
  int32_t k; /* 0..16384 */
} relattn_shaw;

/* Shaw et al.'s vector form: the offset enters the content product,
 * s_ij = scale * q_i . (k_j + a[clip(p_k - p_q, -k, k) + k]), with q_i as the
 * kernel uses it (after RoPE, if on). Per query block the kernel computes the
 * 2k+1 products q_i . a[r] once and reads them like a scalar Shaw table. */
typedef struct relattn_shaw_vector {
  /* [n_heads][2k+1][head_dim] f32 (per_head), or [2k+1][head_dim] shared by
   * every head; finite. */
  const float* table;
  int32_t k; /* 0..64 */
  int per_head;
} relattn_shaw_vector;

typedef struct relattn_bias {
  relattn_bias_kind kind;
  relattn_alibi alibi;
  relattn_t5 t5;
  relattn_shaw shaw;
  relattn_shaw_vector shaw_vector;
} relattn_bias;

/* ------------------------------------------------------------------ RoPE */

/* Rotary position embedding, fused: q and k are rotated by the angle
 * p * theta_i in each of the rotary_dims / 2 pairs of dimensions i, so that
 * q . k depends on p_q - p_k only. theta_i comes from the scaling family
 * (relattn_rope_scaling; default theta_i = base^(-2i / rotary_dims)), then
 * is divided by linear_scale. The pairs are (2i, 2i + 1) (INTERLEAVED:
 * GPT-J, ggml mode 0) or (i, i + rotary_dims / 2) (HALVES: GPT-NeoX, Llama,
 * HF rotate_half); dimensions >= rotary_dims are not rotated (partial
 * rotary). Rotation r(x, a) of a pair (x0, x1):
 * g * (x0 cos a - x1 sin a, x0 sin a + x1 cos a), g the family's attention
 * factor (1 unless YaRN / longrope / given: HF multiplies cos and sin by it,
 * so the rotated part of q . k scales by g^2).
 * Q is rotated as it is loaded into the query block, K when it is packed
 * for prefill or appended to a KV cache; angles are reduced in double from
 * the exact int64 position, so position 10^9 keeps the accuracy of 10^3.
 * Combines with every bias kind and mask. */
typedef enum relattn_rope_pairing {
  RELATTN_ROPE_NONE = 0,
  RELATTN_ROPE_INTERLEAVED = 1,
  RELATTN_ROPE_HALVES = 2,
  RELATTN_ROPE_PAIRING_MIN_ENUM = -0x7fffffff - 1, /* as relattn_dtype's: any int is valid */
  RELATTN_ROPE_PAIRING_MAX_ENUM = 0x7fffffff
} relattn_rope_pairing;

/* RoPE frequency families, as HF transformers' rope_type values define them
 * (d = rotary_dims, theta0_i = base^(-2i / d), i < d / 2), each computed in
 * double once per call (or once per KV cache):
 *  NONE      theta_i = theta0_i (HF "default").
 *  LINEAR    theta0_i / factor (HF "linear"; the same as linear_scale).
 *  NTK       static NTK-aware: base * factor^(d / (d - 2)) in place of base
 *            (d >= 4).
 *  LLAMA3    with wavelength w_i = 2 pi / theta0_i, L = original_max_position:
 *            theta0_i where w_i < L / high_freq_factor; theta0_i / factor
 *            where w_i > L / low_freq_factor; between, the blend
 *            (1 - s) theta0_i / factor + s theta0_i,
 *            s = (L / w_i - low_freq_factor) / (high_freq_factor - low_freq_factor).
 *  YARN      with c(b) = d ln(L / (2 pi b)) / (2 ln base), lo = max(floor(c(beta_fast)), 0),
 *            hi = min(ceil(c(beta_slow)), d - 1) (no_truncate: not rounded),
 *            r_i = clamp((i - lo) / (hi - lo), 0, 1) (hi += 0.001 if equal):
 *            theta_i = r_i theta0_i / factor + (1 - r_i) theta0_i; attention
 *            factor default 0.1 ln(factor) + 1 (1 if factor <= 1).
 *  LONGROPE  theta_i = theta0_i / f_i, f = long_factor if sequence_length >
 *            original_max_position, else short_factor; attention factor
 *            default sqrt(1 + ln(s) / ln(original_max_position)),
 *            s = max_position / original_max_position (1 if s <= 1).
 *  INV_FREQ  theta_i = inv_freq[i], the caller's table (any other family).
 * attention_factor (any family): 0 means the family's default (1 but for
 * YARN and LONGROPE); else finite and > 0. Fields a family does not use must
 * be 0 / NULL. Each bad field fails with RELATTN_ERR_BAD_ROPE naming it. */
typedef enum relattn_rope_scaling_type {
  RELATTN_ROPE_SCALING_NONE = 0,
  RELATTN_ROPE_SCALING_LINEAR = 1,
  RELATTN_ROPE_SCALING_NTK = 2,
  RELATTN_ROPE_SCALING_LLAMA3 = 3,
  RELATTN_ROPE_SCALING_YARN = 4,
  RELATTN_ROPE_SCALING_LONGROPE = 5,
  RELATTN_ROPE_SCALING_INV_FREQ = 6,
  RELATTN_ROPE_SCALING_MIN_ENUM = -0x7fffffff - 1, /* as relattn_dtype's: any int is valid */
  RELATTN_ROPE_SCALING_MAX_ENUM = 0x7fffffff
} relattn_rope_scaling_type;

typedef struct relattn_rope_scaling {
  relattn_rope_scaling_type type;
  float factor;           /* LINEAR, NTK, LLAMA3, YARN: finite, > 0 */
  float low_freq_factor;  /* LLAMA3: finite, > 0 */
  float high_freq_factor; /* LLAMA3: finite, > low_freq_factor */
  float beta_fast;        /* YARN: finite, > 0; 0 means 32 */
  float beta_slow;        /* YARN: finite, > 0; 0 means 1 */
  int no_truncate;        /* YARN: 1 keeps lo and hi unrounded (HF truncate=False, gpt-oss) */
  float attention_factor; /* any: 0 means the family's default */
  /* LLAMA3, YARN, LONGROPE: the context the model was trained at, 1..2^40. */
  int64_t original_max_position;
  int64_t max_position;       /* LONGROPE: max_position_embeddings, 0..2^40 (0: no extension) */
  int64_t sequence_length;    /* LONGROPE: the length the caller serves, 0..2^40 (0: short) */
  const double* short_factor; /* LONGROPE: [rotary_dims / 2], finite, > 0 */
  const double* long_factor;  /* LONGROPE: [rotary_dims / 2], finite, > 0 */
  const double* inv_freq;     /* INV_FREQ: [rotary_dims / 2], finite, > 0 */
} relattn_rope_scaling;

typedef struct relattn_rope {
  relattn_rope_pairing pairing;
  int32_t rotary_dims; /* even, 2..head_dim; 0 means head_dim (which must be even) */
  float base;          /* theta base > 1, finite; 0 means 10000 */
  float linear_scale;  /* theta is divided by it (positions by it), >= 1e-6, finite; 0 means 1 */
  relattn_rope_scaling scaling; /* zero: NONE */
} relattn_rope;

/* ------------------------------------------------------------------ masks */

typedef struct relattn_mask {
  /* 1: key j is hidden from query i when p_k > p_q. */
  int causal;
  /* 0: no window. W >= 1: with causal, query i sees keys with
   * 0 <= p_q - p_k < W (W keys including itself); without causal, keys with
   * |p_q - p_k| < W (a symmetric local window). */
  int64_t window;
  /* Keys j >= n_valid_kv are hidden (right padding, a prefix of a cache):
   * 1..n_kv; 0 (the zero value) or -1 means all n_kv keys are valid. */
  int64_t n_valid_kv;
  /* Keys j < first_valid_kv are hidden (left padding): 0..n_kv; 0 (the zero
   * value) hides none. Hiding every key takes first_valid_kv = n_kv (or
   * first_valid_kv >= n_valid_kv): then every output row is zero. */
  int64_t first_valid_kv;
  /* Packed sequences (varlen attention: several prompts in one call, one
   * thread-pool dispatch): NULL, or both q_segments [n_q] and k_segments
   * [n_kv] int32 segment ids (aligned to 4 bytes); query i sees key j only
   * where q_segments[i] == k_segments[j], on top of the other masks. Tiles
   * whose query and key id ranges do not meet are skipped whole, so ids
   * that increase along the tokens (sequence after sequence) cost nothing
   * across sequences. Positions restart per sequence through q_pos / k_pos
   * as the model needs. Over a KV cache, k_segments is indexed by slot. */
  const int32_t* q_segments;
  const int32_t* k_segments;
  /* Explicit allowed pairs (tree attention, speculative decoding): NULL, or
   * a bit matrix [n_q][allowed_row_words] of uint64, aligned to 8 bytes:
   * for keys j >= allowed_key_offset (0..n_kv), query i may see key j only
   * if bit b % 64 of word b / 64 of row i is set, b = j -
   * allowed_key_offset; keys before the offset are not restricted (the bits
   * cover only the last keys: a draft tree after a long cache). ANDed with
   * the other masks. allowed_row_words >= ceil((n_kv - allowed_key_offset)
   * / 64), its memory n_q * allowed_row_words * 8 bytes: meant for short
   * query blocks (8..64 draft tokens) over long caches. */
  const uint64_t* allowed;
  int64_t allowed_row_words;
  int64_t allowed_key_offset;
} relattn_mask;

/* --------------------------------------------------------------- KV cache */

/* A KV cache in caller memory for streaming decode: tokens are appended as
 * they are generated, converted once to the storage dtype and stored per KV
 * head, each with its int64 position: V as rows [n_kv_heads][capacity][dim],
 * K in groups of 16 tokens with each channel's 16 values contiguous (decode
 * loads them straight into vector lanes), so a decode step streams both
 * sequentially and converts nothing. In ring mode a full cache
 * overwrites its oldest token: a sliding window of `capacity` tokens in
 * constant memory, positions counting on (never wrapping or resetting); with
 * n_sink_tokens, the oldest token after the sinks. */
/* Positions in a ring cache with sink tokens (StreamingLLM):
 *  TEXT   every token keeps the position it was appended at: exact text
 *         distances (ALiBi, T5, Shaw and RoPE alike). No cost per step.
 *  CACHE  StreamingLLM's rule: positions within the cache. The cache numbers
 *         its tokens itself (append takes positions NULL: token n of the
 *         sequence since the last clear gets position n, the window's tokens
 *         keep theirs), and whenever the window moves, the sink tokens move to
 *         the positions just before its oldest token (sink s at oldest - S + s),
 *         so every distance is that of sinks at 0..S-1, the window after them
 *         in order and the query next (query at relattn_kv_cache_next_position
 *         + t). With RoPE, the cache keeps the sinks' K unrotated (S x
 *         n_kv_heads x head_dim f32 more memory) and re-rotates those S rows
 *         at each append that moves the window: S x n_kv_heads rows of work per
 *         decode step, none at attention. */
typedef enum relattn_sink_positions {
  RELATTN_SINK_POSITIONS_TEXT = 0,
  RELATTN_SINK_POSITIONS_CACHE = 1,
  RELATTN_SINK_POSITIONS_MIN_ENUM = -0x7fffffff - 1, /* as relattn_dtype's: any int is valid */
  RELATTN_SINK_POSITIONS_MAX_ENUM = 0x7fffffff
} relattn_sink_positions;

typedef struct relattn_kv_cache_desc {
  int32_t n_kv_heads;    /* 1..RELATTN_MAX_HEADS */
  int32_t head_dim;      /* 1..256, of K */
  int32_t v_head_dim;    /* 1..256, of V; 0 means head_dim */
  int64_t capacity;      /* 1..2^40 tokens */
  relattn_dtype k_dtype; /* storage: F32, F16, BF16 (rounded to nearest even),
                            I8 (each row quantised at append, after RoPE, as
                            relattn_quantize_i8 does) or Q4 (in q4_0 blocks,
                            after RoPE; head_dim a multiple of 32) */
  relattn_dtype v_dtype; /* storage: F32, F16, BF16, I8 (each row quantised at
                            append as relattn_quantize_i8 does) or Q4
                            (v_head_dim a multiple of 32). Bytes per token per
                            KV head: K head_dim x (4, 2, 2, 1, 18 / 32) + 4 for
                            an I8 row scale, V v_head_dim x (4, 2, 2, 1, 18 / 32)
                            + 4 for I8, + 1 flag byte (+ 8 per token for its
                            position); at 128: f16 K+V 513, int8 K+V 265, Q4
                            K+V 145 */
  int ring;              /* 0: append past capacity fails; 1: ring buffer */
  relattn_rope rope;     /* K is rotated by it when appended (pairing NONE: off) */
  /* Ring only: the first n_sink_tokens tokens appended (0..capacity - 1) are
   * never overwritten (StreamingLLM's attention sinks); the ring wraps over
   * the other capacity - n_sink_tokens slots, the sliding window. */
  int64_t n_sink_tokens;
  relattn_sink_positions sink_positions; /* TEXT or CACHE (ring only): see above */
} relattn_kv_cache_desc;

typedef struct relattn_kv_cache relattn_kv_cache; /* opaque; lives in caller memory */

/* The memory alignment a cache needs. */
#define RELATTN_KV_CACHE_ALIGNMENT 64

/* Bytes of memory a cache for desc needs. */
RELATTN_API relattn_status relattn_kv_cache_size(const relattn_kv_cache_desc* desc,
                                                 size_t* cache_bytes);

/* Lays out an empty cache in memory (cache_bytes >= relattn_kv_cache_size,
 * aligned to RELATTN_KV_CACHE_ALIGNMENT); *cache points into memory, which
 * the caller owns and keeps alive. Allocates nothing.
 * The cache holds no pointer: a byte copy of its relattn_kv_cache_size bytes
 * to other memory aligned as above is a cache of its own (appending to the
 * copy leaves the original as it was). Every call that takes a cache checks
 * its header (RELATTN_ERR_BAD_CACHE: not laid out by this function, or its
 * length and slots no longer consistent with its desc).
 * Threads: any number of attention calls may read one cache at once while no
 * append to it runs. Appends to one cache must not overlap: a second one that
 * starts while one runs fails with RELATTN_ERR_BUSY and stores nothing, as
 * does an attention call that starts while an append runs (an append that
 * starts during an attention call is not detected: the caller orders those). */
RELATTN_API relattn_status relattn_kv_cache_init(const relattn_kv_cache_desc* desc, void* memory,
                                                 size_t cache_bytes, relattn_kv_cache** cache);

/* Appends n_tokens (1..RELATTN_MAX_TOKENS) tokens: k
 * [n_tokens][n_kv_heads][head_dim] and v [n_tokens][n_kv_heads][v_head_dim]
 * (f32 or f16), at positions (NULL: continuing from the last appended
 * position + 1, or 0 for the first token). k and v are checked as
 * relattn_attention checks its tensors (alignment, strides, extent), and
 * they and the positions array must not overlap the cache's memory. A
 * failed append changes nothing; non-ring: RELATTN_ERR_CACHE_FULL if the
 * tokens do not fit. */
RELATTN_API relattn_status relattn_kv_cache_append(relattn_kv_cache* cache, int64_t n_tokens,
                                                   const relattn_tensor* k, const relattn_tensor* v,
                                                   const relattn_positions* positions);

/* Tokens the cache holds now (<= capacity). */
RELATTN_API int64_t relattn_kv_cache_length(const relattn_kv_cache* cache);

/* Position the next append continues from when given no positions. */
RELATTN_API int64_t relattn_kv_cache_next_position(const relattn_kv_cache* cache);

/* Copies into *desc the desc the cache was made with (init's, or the one
 * attach found), so that a program holding only a cache's bytes learns its
 * heads, dims, dtypes, capacity, ring, sinks and rope. v_head_dim 0 reads
 * back as head_dim; a RoPE scaling family's table pointers are NULL there:
 * the cache keeps the tables resolved, not the caller's arrays. Checks the cache as append does
 * (RELATTN_ERR_BAD_CACHE); desc NULL: RELATTN_ERR_NULL_ARGUMENT; *desc is
 * written only on success. */
RELATTN_API relattn_status relattn_kv_cache_get_desc(const relattn_kv_cache* cache,
                                                     relattn_kv_cache_desc* desc);

/* Empties the cache (positions restart at 0). */
RELATTN_API void relattn_kv_cache_clear(relattn_kv_cache* cache);

/* Rollback (speculative decoding, beam search): keeps the oldest n_tokens
 * (0..length) of the tokens the cache holds, in the order they were
 * appended, and drops the others; n_tokens = length changes nothing, 0 is
 * clear. Appends without positions then continue from the last kept
 * token's position + 1, so that truncating and appending again equals never
 * having appended the dropped tokens. Ring mode included: a ring that has
 * wrapped keeps its sink tokens and the oldest window tokens (it moves the
 * kept window tokens into slot order: O(capacity) rows of work; otherwise
 * O(1)); with CACHE sink positions, sinks left alone (n_tokens <=
 * n_sink_tokens) return to positions 0..n_tokens - 1. The value maxima the
 * cache records (relattn_attention's value range) are kept, an upper bound.
 * Checks the cache as append does (RELATTN_ERR_BAD_CACHE, RELATTN_ERR_BUSY);
 * n_tokens out of range: RELATTN_ERR_BAD_DIMENSION; nothing changes then. */
RELATTN_API relattn_status relattn_kv_cache_truncate(relattn_kv_cache* cache, int64_t n_tokens);

/* Save and restore (llama.cpp's prompt cache): a cache is its
 * relattn_kv_cache_size bytes, pointer-free, so it can be written to a file
 * or copied as bytes. attach takes cache_bytes bytes at memory (aligned to
 * RELATTN_KV_CACHE_ALIGNMENT) that should hold such a cache, validates them
 * and sets *cache: the magic and layout version; the desc, checked as init
 * checks it; cache_bytes >= its relattn_kv_cache_size
 * (RELATTN_ERR_WORKSPACE_TOO_SMALL); the length, slots and positions in
 * range; no append marked running (RELATTN_ERR_BUSY); and every held
 * token's stored values (K, V and row scales finite and within the maxima
 * the header records, so that bytes edited or corrupted on disk cannot
 * break the value-range guarantee): O(length) reads, no writes. Anything
 * else is RELATTN_ERR_BAD_CACHE naming the field; *cache is set only on
 * success. Random bytes, a truncated file or a cache of another version get
 * a status, never a crash or a wrong answer. */
RELATTN_API relattn_status relattn_kv_cache_attach(void* memory, size_t cache_bytes,
                                                   relattn_kv_cache** cache);

/* ------------------------------------------------------------- descriptor */

#define RELATTN_MAX_HEAD_DIM 256
#define RELATTN_MAX_HEADS 4096
/* Tokens in one call (n_q, n_kv, n_tokens of an append) or a cache: 2^40. */
#define RELATTN_MAX_TOKENS (INT64_C(1) << 40)

/* One attention call over all heads of one sequence. Zero-initialise (or
 * relattn_attention_desc_init), then fill: the zero values are named below. */
/* How float inputs are multiplied (relattn_attention_desc.precision). */
typedef enum relattn_precision {
  RELATTN_PRECISION_EXACT = 0,
  RELATTN_PRECISION_FAST = 1,
  RELATTN_PRECISION_MIN_ENUM = -0x7fffffff - 1, /* as relattn_dtype's: any int is valid */
  RELATTN_PRECISION_MAX_ENUM = 0x7fffffff
} relattn_precision;

typedef struct relattn_attention_desc {
  int64_t n_q;        /* 1..RELATTN_MAX_TOKENS queries */
  int64_t n_kv;       /* 1..RELATTN_MAX_TOKENS keys / values */
  int32_t n_heads;    /* 1..RELATTN_MAX_HEADS query heads */
  int32_t n_kv_heads; /* divides n_heads; query head h reads KV head h / (n_heads / n_kv_heads) */
  int32_t head_dim;   /* 1..256, of Q and K */
  int32_t v_head_dim; /* 1..256, of V and O; 0 means head_dim */
  relattn_tensor q, k, v;
  relattn_output o;
  relattn_positions q_pos, k_pos;
  /* Multiplies q . k. 0 means the default 1 / sqrt(head_dim); finite, |scale| <= 2^127. */
  float scale;
  relattn_bias bias;
  /* Rotary embedding of q and k (pairing NONE: off). With kv_cache, must equal
   * the cache's rope (its keys were rotated when appended). */
  relattn_rope rope;
  relattn_mask mask;
  /* Optional: attend over the tokens of a KV cache instead of k, v. Then
   * n_kv, n_kv_heads, head_dim, v_head_dim, k, v and k_pos come from the
   * cache and must be left 0 / NULL (n_kv_heads may also equal the cache's).
   * n_kv = the cache's length; mask.n_valid_kv and first_valid_kv count its
   * slots. */
  const relattn_kv_cache* kv_cache;
  /* Logit soft-capping (Gemma 2; ggml's logit_softcap): with softcap = c > 0,
   * the content score x = scale * q . k (the Shaw vector form's q . a
   * included) becomes c * tanh(x / c); then the position bias is added and
   * the mask applied, HF Gemma 2's order. 0: off; else finite, in
   * 1e-6..1e30 (RELATTN_ERR_BAD_SOFTCAP). tanh is evaluated in f32 by a
   * rational approximation within 5 ulp (plus the rounding of x / c;
   * tests/test_softcap_sinks.cc measures it on every target). */
  float softcap;
  /* Learned attention sinks (gpt-oss): NULL (none) or [n_heads] f32 logits,
   * each finite with |x| <= 2^126, aligned to 4 bytes (RELATTN_ERR_BAD_SINK).
   * Head h's softmax gains one logit that no value follows:
   *   o_i = sum_j e^(s_ij - m) v_j / (sum_j e^(s_ij - m) + e^(sinks[h] - m)),
   *   m = max(max_j s_ij, sinks[h]),
   * s_ij the full score (bias and soft-capping included; the sink is neither
   * biased nor capped). A query that sees no key still gets a zero row.
   * Applied once per query row when it is finalised (prefill, decode, and
   * after the split-K merge). */
  const float* sinks;
  /* Optional output: NULL, or lse[n_q][n_heads] f32 (row i at lse + i *
   * n_heads), aligned to 4 bytes: the natural log of each row's softmax
   * denominator, in the units of the scores,
   *   lse_ih = ln( sum_j e^(s_ij) + e^(sinks[h]) )  (sum over visible keys),
   * -inf for a row that saw no key and has no sink, NaN where the output row
   * is NaN. Computed in f32 from the row's running max and sum (within
   * 2^-20 relative of the fp64 value, plus the scores' own bound).
   * relattn_merge combines attention over several key ranges with it. It
   * shares no byte with o, the inputs or the workspace (RELATTN_ERR_OVERLAP). */
  float* lse;
  /* EXACT (0, the default): f32 arithmetic on the inputs' values, within the
   * stated bounds. FAST: reduced-precision products where the CPU has them;
   * now in prefill over tensors on AVX512-BF16 CPUs (vdpbf16ps), elsewhere
   * FAST computes as EXACT:
   * - bf16 Q, K and V: the probabilities are rounded to bf16 for P.V; the
   *   output is within 4e-3 of the fp64 reference for |v| <= 1 (a
   *   probability's bf16 rounding is 2^-9 relative).
   * - f16 Q and K (no RoPE, head_dim even): Q and K are rounded to bf16
   *   (nearest even) for Q.K, and f16 or bf16 V and the probabilities to
   *   bf16 for P.V. A score moves by at most delta = 2^-8 |scale| sum_e
   *   |q_e k_e|, so the output by at most (e^(2 delta) - 1) max|v| plus
   *   2^-9 max|v| + 4e-3 (lib/reference/bounds.h F16FastOutput). Measured
   *   (d 40, |q|, |k|, |v| <= 1): 1.8e-3 (bound 0.025); every 8th K channel
   *   20x larger: 7.6e-3 (bound 0.11). */
  relattn_precision precision;
} relattn_attention_desc;

/* Zero values: every field's zero is a valid default (n_valid_kv = 0: all
 * keys; first_valid_kv 0; scale 0: 1 / sqrt(head_dim); v_head_dim 0:
 * head_dim; bias kind NONE; rope pairing NONE; softcap 0: off; sinks, lse,
 * kv_cache NULL; positions starting at 0; dtypes F32; precision EXACT), but n_q, n_kv, the
 * head counts and dimensions and the tensors' data and strides, which the
 * caller sets. relattn_attention_desc_init() zero-fills desc. */
RELATTN_API void relattn_attention_desc_init(relattn_attention_desc* desc);

/* ---------------------------------------------------------------- threads */

/* A parallel-for supplied by the caller: runs task(task_arg, i) once for each
 * i in [0, n_tasks), possibly concurrently, and returns when all are done.
 * relattn calls it with n_tasks <= the thread count it was given; each task
 * uses its own slice of the workspace. A parallel_for that runs fewer or more
 * tasks, an index out of range, or (among the first 1024) one index twice
 * makes the call fail with RELATTN_ERR_BAD_THREADS: a task that would share a
 * slice or leave it does not run, but the output may then be incomplete. */
typedef void (*relattn_task_fn)(void* task_arg, size_t index);
typedef void (*relattn_parallel_for_fn)(void* context, size_t n_tasks, relattn_task_fn task,
                                        void* task_arg);

#define RELATTN_MAX_THREADS 1024

typedef struct relattn_threads {
  relattn_parallel_for_fn parallel_for;
  void* context;
  int32_t n_threads; /* 1..RELATTN_MAX_THREADS: concurrency the workspace is sized for;
                        0 with parallel_for NULL (a zeroed struct): the calling thread */
} relattn_threads;

/* Ready default over a pthreadpool_t (from <pthreadpool.h>), which the caller
 * creates and destroys; n_threads = pthreadpool_get_threads_count(pool). */
RELATTN_API relattn_status relattn_threads_from_pthreadpool(void* pthreadpool,
                                                            relattn_threads* threads);

/* -------------------------------------------------------------- workspace */

/* The workspace pointer must be aligned to this many bytes. */
#define RELATTN_WORKSPACE_ALIGNMENT 64

/* Bytes of workspace relattn_attention needs for desc with n_threads threads
 * (1, or 0, for the calling thread alone). Validates desc as relattn_attention does. */
RELATTN_API relattn_status relattn_attention_workspace_size(const relattn_attention_desc* desc,
                                                            int32_t n_threads,
                                                            size_t* workspace_bytes);

/* ---------------------------------------------------------------- compute */

/* Computes attention for desc into desc->o. threads NULL: the calling thread.
 * workspace: workspace_bytes >= relattn_attention_workspace_size(desc,
 * threads ? threads->n_threads : 1), aligned to RELATTN_WORKSPACE_ALIGNMENT.
 * Queries that see no key get a zero output row. Allocates nothing.
 * Aliasing: o shares no byte with q, k, v, their row scales, the position
 * arrays, the ALiBi slopes, the bias tables and their scales, or the KV
 * cache's memory; the workspace (one per call in flight) shares none with
 * o, q, k or v; each is checked (RELATTN_ERR_OVERLAP). Inputs may alias
 * each other (q and k may be one tensor). */
RELATTN_API relattn_status relattn_attention(const relattn_attention_desc* desc, void* workspace,
                                             size_t workspace_bytes,
                                             const relattn_threads* threads);

/* ------------------------------------------------------------- merging */

/* Two partial attentions of the same queries over disjoint sets of keys A
 * and B (chunked context, a prefix cache and a fresh one, another engine's
 * split-K), each with its lse, combined into attention over A and B:
 *   lse = ln(e^lse_a + e^lse_b + e^sinks[h]),
 *   o = (e^(lse_a - lse) o_a + e^(lse_b - lse) o_b),
 * per query row and head, computed in double per row, as exact as the
 * library's own split-K merge. Learned sinks are counted once, here: compute
 * the parts without sinks and pass them to the merge (NULL: none). A row
 * that neither part saw a key of (lse -inf) gives o = 0 and lse -inf (or its
 * sink); a NaN in an lse gives a NaN row. More ranges: merge repeatedly. */
typedef struct relattn_merge_desc {
  int64_t n_q;        /* 1..RELATTN_MAX_TOKENS query rows */
  int32_t n_heads;    /* 1..RELATTN_MAX_HEADS */
  int32_t v_head_dim; /* 1..256 */
  /* The parts: [n_q][n_heads][v_head_dim] F32 or F16 with the stride rules of
   * relattn_tensor (row_scales unused), and their lse [n_q][n_heads] f32 as
   * relattn_attention writes them (NaN or < +inf; +inf fails with
   * RELATTN_ERR_VALUE_RANGE). */
  relattn_tensor a, b;
  const float *lse_a, *lse_b;
  const float* sinks; /* NULL or [n_heads], as relattn_attention_desc.sinks */
  /* The result: o (F32 or F16) and lse (NULL: not wanted). Each may be
   * exactly a part's own memory (same data, dtype and strides, or the same
   * lse pointer): merging in place; otherwise it must not overlap an input
   * (RELATTN_ERR_OVERLAP). */
  relattn_output o;
  float* lse;
} relattn_merge_desc;

/* Merges desc->a and desc->b into desc->o, desc->lse. Allocates nothing;
 * single-threaded (n_q * n_heads * v_head_dim multiply-adds). */
RELATTN_API relattn_status relattn_merge(const relattn_merge_desc* desc);

/* --------------------------------------------------------- scheme helpers */

/* ALiBi slopes for n_heads heads (1..RELATTN_MAX_HEADS) from max_bias > 0:
 * with P = the largest power of two <= n_heads, head h < P gets
 * 2^(-max_bias * (h + 1) / P) and head h >= P gets
 * 2^(-max_bias * (2 * (h - P) + 1) / (2 * P)). max_bias = 8 is the ALiBi
 * paper's get_slopes(); other values are the max_bias form of BLOOM / ggml. */
RELATTN_API relattn_status relattn_alibi_slopes(int32_t n_heads, float max_bias, float* slopes);

/* The T5 bucket of relative_position = key position - query position, exactly
 * as T5's _relative_position_bucket (fp32 log, truncation), for any int64:
 * distances T5's own arithmetic would overflow on (INT64_MIN) get the last
 * bucket of their direction, as every distance >= max_distance does.
 * Parameters as in relattn_t5. */
RELATTN_API relattn_status relattn_t5_bucket(int64_t relative_position, int32_t num_buckets,
                                             int32_t max_distance, int bidirectional,
                                             int32_t* bucket);

/* Symmetric int8 quantisation of a [n_heads][num_buckets] f32 table, one
 * scale per head: scale = max|row| / 127 (0 for an all-zero row),
 * q = round-half-away-from-zero(x / scale), in [-127, 127]. num_buckets in
 * 2..1024 (RELATTN_ERR_BAD_DIMENSION); a non-finite entry is rejected
 * (RELATTN_ERR_BAD_BIAS_PARAMETER) and nothing is written. */
RELATTN_API relattn_status relattn_quantize_table_i8(const float* table, int32_t n_heads,
                                                     int32_t num_buckets, int8_t* table_i8,
                                                     float* scales);

/* Symmetric int8 quantisation of the rows of src, a [n_tokens][n_heads][dim]
 * F32 or F16 tensor, one scale per (token, head) row: scale = max|row| / 127
 * (0 for an all-zero row), q = round-half-away-from-zero(x / scale), in
 * [-127, 127]. Writes q contiguous [n_tokens][n_heads][dim] to out and the
 * scales [n_tokens][n_heads] to out_scales, and describes them in *quantized
 * (dtype I8, ready for desc.q or desc.k). A NaN or infinity fails
 * (RELATTN_ERR_NON_FINITE, naming the element) and nothing is written. */
RELATTN_API relattn_status relattn_quantize_i8(const relattn_tensor* src, int64_t n_tokens,
                                               int32_t n_heads, int32_t dim, int8_t* out,
                                               float* out_scales, relattn_tensor* quantized);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* RELATTN_RELATTN_H_ */
