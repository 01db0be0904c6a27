package org.relattn;

import java.nio.Buffer;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.ShortBuffer;

/**
 * relattn from Java and Android: attention with a relative-position bias (ALiBi, T5 buckets,
 * Shaw, Shaw's vector form) and optional RoPE over one sequence, computed by librelattn through
 * the JNI glue in librelattn_jni.so. {@link KVCache} holds a KV cache for streaming decode.
 *
 * <p>Q is [nQ][heads][headDim], K [nKv][kvHeads][headDim], V [nKv][kvHeads][vHeadDim] and the
 * output [nQ][heads][vHeadDim], each row-major. Inputs come as float[] arrays (F32), short[]
 * arrays of F16 or BF16 bits ({@link #toBf16}), or as direct buffers in native byte order
 * (ByteBuffer, FloatBuffer for F32, or ShortBuffer for F16 / BF16), read from their position(),
 * without copies. Every method is thread-safe. A failed call throws and leaves the outputs
 * untouched: IllegalArgumentException for arrays and buffers that do not fit the shapes,
 * RelAttnException for what the library rejects (its message names the field).
 *
 * <p>int8: {@link #quantizeI8} makes symmetric int8 rows (relattn_quantize_i8: one float scale
 * per (token, head) row, element = scale * value) as an {@link Int8}; the attention overloads
 * that take Int8 tensors read them in place (I8 Q needs I8 K, as in the C API).
 *
 * <p>4-bit: {@link #quantizeQ4} makes ggml's q4_0 blocks of K or V rows, passed as a
 * {@link Q4Blocks} to the attention overloads that take them (K and V only, dims a multiple
 * of 32).
 *
 * <p>Sequences: {@link Params} carries per-token positions, segment ids (packed prompts), an
 * allowed-pairs bit mask (tree attention) and the first valid key; {@link Params#lse} receives
 * each row's log-sum-exp, and {@link #merge} combines two parts over disjoint keys.
 */
public final class RelAttn {
  static {
    System.loadLibrary("relattn_jni");
  }

  /** Element types (relattn_dtype): F16 is IEEE binary16, stored as 16-bit words; I8 symmetric
   *  int8 with a float scale per row ({@link Int8}); Q4 ggml's q4_0 blocks (KVCache storage);
   *  BF16 bfloat16 (the top 16 bits of a float) in 16-bit words ({@link #toBf16}). */
  public static final int F32 = 0, F16 = 1, I8 = 2, Q4 = 3, BF16 = 4;

  /** How float inputs are multiplied (relattn_precision): EXACT f32 arithmetic on the inputs'
   *  values; FAST allows reduced-precision products (BF16 Q, K, V in prefill on AVX512-BF16
   *  CPUs: probabilities rounded to bf16 for P.V, within 4e-3; elsewhere as EXACT). */
  public static final int PRECISION_EXACT = 0, PRECISION_FAST = 1;

  /** Position schemes (relattn_bias_kind). */
  public static final int NONE = 0, ALIBI = 1, T5 = 2, SHAW = 3, SHAW_VECTOR = 4;

  /** RoPE pairings (relattn_rope_pairing): off, (2i, 2i + 1) (GPT-J), (i, i + rotaryDims / 2)
   *  (GPT-NeoX, Llama, HF rotate_half). */
  public static final int ROPE_NONE = 0, ROPE_INTERLEAVED = 1, ROPE_HALVES = 2;

  /** RoPE frequency families (relattn_rope_scaling_type), as HF transformers' rope_type. */
  public static final int SCALING_NONE = 0, SCALING_LINEAR = 1, SCALING_NTK = 2,
      SCALING_LLAMA3 = 3, SCALING_YARN = 4, SCALING_LONGROPE = 5, SCALING_INV_FREQ = 6;

  /**
   * Rotary position embedding (relattn_rope with its relattn_rope_scaling), field for field;
   * every zero / null is the C API's default and fields a family does not use must stay zero /
   * null (the library names a bad one: RelAttnException, status 21). q and k are rotated at
   * their positions; over a KVCache, k was rotated when appended.
   */
  public static final class Rope {
    /** ROPE_NONE (off), ROPE_INTERLEAVED or ROPE_HALVES. */
    public int pairing = ROPE_NONE;
    /** Even, 2..headDim; 0 means headDim. Dimensions from rotaryDims on are not rotated. */
    public int rotaryDims;
    /** Theta base, > 1; 0 means 10000. */
    public float base;
    /** Thetas are divided by it; 0 means 1. */
    public float linearScale;
    /** SCALING_NONE .. SCALING_INV_FREQ. */
    public int scaling = SCALING_NONE;
    /** LINEAR, NTK, LLAMA3, YARN: the factor (> 0). */
    public float factor;
    /** LLAMA3: low and high frequency factors (0 < low < high). */
    public float lowFreqFactor, highFreqFactor;
    /** YARN: 0 means 32 and 1. */
    public float betaFast, betaSlow;
    /** YARN: keep lo and hi unrounded (HF truncate=False). */
    public boolean noTruncate;
    /** Any family: 0 means the family's default (1 but for YARN and LONGROPE). */
    public float attentionFactor;
    /** LLAMA3, YARN, LONGROPE: the trained context; LONGROPE: max_position_embeddings and the
     *  length served. */
    public long originalMaxPosition, maxPosition, sequenceLength;
    /** LONGROPE: [rotaryDims / 2] each; INV_FREQ: the thetas [rotaryDims / 2]. */
    public double[] shortFactor, longFactor, invFreq;

    public Rope() {}

    /** pairing with every other field at its default (base 10000, all dimensions). */
    public Rope(int pairing) {
      this.pairing = pairing;
    }

    /** Checks the tables hold the rotaryDims / 2 doubles the library reads (headDim: of q, k). */
    void checkTables(int headDim) {
      final long need = (rotaryDims > 0 ? rotaryDims : headDim) / 2;
      if (shortFactor != null) checkLength("rope.shortFactor", shortFactor.length, need);
      if (longFactor != null) checkLength("rope.longFactor", longFactor.length, need);
      if (invFreq != null) checkLength("rope.invFreq", invFreq.length, need);
    }

    /** A copy, its tables cloned. */
    public Rope copy() {
      Rope r = new Rope(pairing);
      r.rotaryDims = rotaryDims;
      r.base = base;
      r.linearScale = linearScale;
      r.scaling = scaling;
      r.factor = factor;
      r.lowFreqFactor = lowFreqFactor;
      r.highFreqFactor = highFreqFactor;
      r.betaFast = betaFast;
      r.betaSlow = betaSlow;
      r.noTruncate = noTruncate;
      r.attentionFactor = attentionFactor;
      r.originalMaxPosition = originalMaxPosition;
      r.maxPosition = maxPosition;
      r.sequenceLength = sequenceLength;
      r.shortFactor = shortFactor == null ? null : shortFactor.clone();
      r.longFactor = longFactor == null ? null : longFactor.clone();
      r.invFreq = invFreq == null ? null : invFreq.clone();
      return r;
    }
  }

  /** Symmetric int8 rows of a [tokens][heads][dim] tensor: values [tokens][heads][dim] and one
   *  scale per row, scales [tokens][heads]; element = scale * value. */
  public static final class Int8 {
    public final byte[] values;
    public final float[] scales;

    public Int8(byte[] values, float[] scales) {
      if (values == null) throw new NullPointerException("values");
      if (scales == null) throw new NullPointerException("scales");
      this.values = values;
      this.scales = scales;
    }
  }

  /** Values per q4_0 block, and its bytes: an f16 scale d, then 16 bytes of nibbles. */
  public static final int Q4_BLOCK_VALUES = 32, Q4_BLOCK_BYTES = 18;

  /** K or V as ggml's q4_0 blocks (RELATTN_Q4), as {@link #quantizeQ4} returns them: blocks
   *  [tokens][heads][dim / 32 * 18] bytes; per 32 values an f16 scale d (2 bytes,
   *  little-endian), then 16 bytes, byte i holding value i in its low nibble and value i + 16
   *  in its high one; value = (nibble - 8) * d. dim must be a multiple of 32. */
  public static final class Q4Blocks {
    public final byte[] blocks;

    public Q4Blocks(byte[] blocks) {
      if (blocks == null) throw new NullPointerException("blocks");
      this.blocks = blocks;
    }
  }

  /** Shapes and options of one call. Defaults are the C API's. */
  public static final class Params {
    public int nQ, nKv, heads, kvHeads, headDim;
    /** Of V and the output; 0 means headDim. */
    public int vHeadDim;
    /** Of q, k, v and of the output: F32 (float[], or a buffer), F16 or BF16 (short[] of bits,
     *  or a buffer); an Int8 tensor is I8 whatever dtype says. */
    public int dtype = F32, outDtype = F32;
    /** PRECISION_EXACT (the default) or PRECISION_FAST. */
    public int precision = PRECISION_EXACT;
    /** NONE, ALIBI, T5, SHAW or SHAW_VECTOR. */
    public int scheme = NONE;
    /** ALiBi: slopes from maxBias (8: the ALiBi paper's), or caller slopes [heads]. */
    public float maxBias = 8f;
    public float[] slopes;
    /** T5: [heads][numBuckets] f32; Shaw: [heads][2 * shawK + 1] f32 (key - query index);
     *  Shaw vector: [heads][2 * shawK + 1][headDim] if shawPerHead, else [2 * shawK + 1][headDim]
     *  shared by every head (score scale * q.(k + a[clip(key - query, -shawK, shawK) + shawK]),
     *  shawK 0..64). */
    public float[] table;
    public int numBuckets = 32, maxDistance = 128, shawK;
    public boolean shawPerHead;
    /** The bias form is bidirectional unless causal; true forces it with causal. */
    public boolean bidirectional;
    /** Masks: causal; window 0 = none; keys from validKv on are hidden (-1: all valid), and
     *  keys before firstValidKv (left padding; 0: none). */
    public boolean causal;
    public long window, validKv = -1, firstValidKv;
    /** Positions of the first query and the first key (int64, any value). */
    public long qStart, kStart;
    /** Per-token positions (int64, any value): qPositions [nQ], kPositions [nKv], or null:
     *  qStart + i, kStart + j (a given array makes its start unused). Over a KVCache the keys'
     *  positions are the cache's: kPositions stays null. */
    public long[] qPositions, kPositions;
    /** Packed sequences: segment ids qSegments [nQ] and kSegments [nKv], both or neither (null);
     *  query i sees key j only where qSegments[i] == kSegments[j], on top of the other masks.
     *  Over a KVCache, kSegments is indexed by slot: [length()]. */
    public int[] qSegments, kSegments;
    /** Allowed pairs (tree attention, speculative decoding): null, or bit rows
     *  [nQ][allowedRowWords]: query i may see key j >= allowedKeyOffset only if bit b % 64 of
     *  word b / 64 of row i is set, b = j - allowedKeyOffset (keys before the offset are not
     *  restricted); allowedRowWords >= ceil((nKv - allowedKeyOffset) / 64). {@link #setAllowed}
     *  fills the three from a boolean matrix. */
    public long[] allowed;
    public long allowedRowWords, allowedKeyOffset;
    /** Multiplies q.k; 0 means 1 / sqrt(headDim). */
    public float scale;
    /** Logit soft-cap (Gemma 2: 50): content scores x become softcap * tanh(x / softcap)
     *  before the bias and the mask; 0 = off. */
    public float softcap;
    /** Learned attention sinks (gpt-oss) [heads], or null: one more logit per head in the
     *  softmax's denominator. */
    public float[] sinks;
    /** 1: the calling thread; n > 1: a pthreadpool of n threads for this call. */
    public int threads = 1;
    /** Rotary embedding of q and k (pairing ROPE_NONE: off). Over a KVCache, ROPE_NONE means
     *  the cache's rope; any other must equal it. */
    public Rope rope = new Rope();
    /** Optional output, null or [nQ][heads]: each row's log-sum-exp, ln(sum_j e^(s_ij) +
     *  e^(sinks[h])) over the keys it sees (-inf for a row that saw none and has no sink),
     *  written with the output (untouched when the call fails); see {@link #merge}. */
    public float[] lse;

    public Params(int nQ, int nKv, int heads, int kvHeads, int headDim) {
      this.nQ = nQ;
      this.nKv = nKv;
      this.heads = heads;
      this.kvHeads = kvHeads;
      this.headDim = headDim;
    }

    int vDim() {
      return vHeadDim == 0 ? headDim : vHeadDim;
    }

    /** Sets allowed (as {@link RelAttn#packAllowed}), allowedRowWords and allowedKeyOffset:
     *  pairs[i][b] true where query i may see key keyOffset + b. */
    public void setAllowed(boolean[][] pairs, long keyOffset) {
      allowed = packAllowed(pairs);
      allowedRowWords = rowWords(pairs);
      allowedKeyOffset = keyOffset;
    }
  }

  private RelAttn() {}

  /** Attention over float[] arrays (F32); dtype and outDtype must be F32. */
  public static void attention(Params p, float[] q, float[] k, float[] v, float[] out) {
    attentionArrays(p, q, k, v, out);
  }

  /** Q, K, V holding F16 or BF16 bits (p.dtype), F32 output (p.outDtype F32). */
  public static void attention(Params p, short[] q, short[] k, short[] v, float[] out) {
    attentionArrays(p, q, k, v, out);
  }

  /** Q, K, V holding F16 or BF16 bits (p.dtype), output of p.outDtype F16 or BF16 (rounded to
   *  nearest even). */
  public static void attention(Params p, short[] q, short[] k, short[] v, short[] out) {
    attentionArrays(p, q, k, v, out);
  }

  /** int8 Q and K (without RoPE their products are summed exactly in integers), F32 V. */
  public static void attention(Params p, Int8 q, Int8 k, float[] v, float[] out) {
    attentionArrays(p, q, k, v, out);
  }

  /** F32 Q over int8 K (multiplied in f32), F32 V. */
  public static void attention(Params p, float[] q, Int8 k, float[] v, float[] out) {
    attentionArrays(p, q, k, v, out);
  }

  /** int8 Q, K and V (V converted to f32 with its row scales block by block). */
  public static void attention(Params p, Int8 q, Int8 k, Int8 v, float[] out) {
    attentionArrays(p, q, k, v, out);
  }

  /** F32 Q over int8 K and V. */
  public static void attention(Params p, float[] q, Int8 k, Int8 v, float[] out) {
    attentionArrays(p, q, k, v, out);
  }

  /** F32 Q over q4_0 K, F32 V. */
  public static void attention(Params p, float[] q, Q4Blocks k, float[] v, float[] out) {
    attentionArrays(p, q, k, v, out);
  }

  /** F32 Q and K over q4_0 V. */
  public static void attention(Params p, float[] q, float[] k, Q4Blocks v, float[] out) {
    attentionArrays(p, q, k, v, out);
  }

  /** F32 Q over q4_0 K and V. */
  public static void attention(Params p, float[] q, Q4Blocks k, Q4Blocks v, float[] out) {
    attentionArrays(p, q, k, v, out);
  }

  /** int8 Q and K over q4_0 V. */
  public static void attention(Params p, Int8 q, Int8 k, Q4Blocks v, float[] out) {
    attentionArrays(p, q, k, v, out);
  }

  /**
   * ggml's q4_0 quantisation (quantize_row_q4_0_ref) of x [tokens][heads][dim], dim a
   * multiple of 32, into blocks [tokens][heads][dim / 32 * 18], exactly as a {@link KVCache}
   * with Q4 storage stores them: per block of 32 values, m = the value of largest |x| (the
   * first such), d = m / -8, id = 1 / d (0 if d == 0), nibble = min(15, (int) (x * id + 8.5f))
   * (0 where that is not finite: a subnormal d), d stored as f16 (nearest even). A NaN or
   * infinity throws RelAttnException status 17 (non-finite value to quantise), |x| >= 524160
   * (d beyond f16) status 20 (value range), each naming the element.
   */
  public static byte[] quantizeQ4(float[] x, int tokens, int heads, int dim) {
    final long elements = (long) tokens * heads * dim;
    if (tokens < 1 || heads < 1 || dim < 1 || elements > Integer.MAX_VALUE) {
      throw new IllegalArgumentException("tokens, heads, dim = " + tokens + ", " + heads + ", "
                                         + dim + ": must be >= 1, their product < 2^31");
    }
    if (dim % Q4_BLOCK_VALUES != 0) {
      throw new IllegalArgumentException("dim = " + dim
          + ": must be a multiple of 32 (q4_0 blocks of 32 values)");
    }
    checkLength("x", x == null ? -1 : x.length, elements);
    final int blocks = (int) (elements / Q4_BLOCK_VALUES), half = Q4_BLOCK_VALUES / 2;
    for (int i = 0; i < elements; ++i) {
      if (!Float.isFinite(x[i])) quantizeError(17, x[i], i, dim, heads, "must be finite");
    }
    final byte[] out = new byte[blocks * Q4_BLOCK_BYTES];
    for (int b = 0; b < blocks; ++b) {
      final int at = b * Q4_BLOCK_VALUES, to = b * Q4_BLOCK_BYTES;
      float amax = 0, m = 0;
      int first = at;
      for (int i = at; i < at + Q4_BLOCK_VALUES; ++i) {
        if (amax < Math.abs(x[i])) {
          amax = Math.abs(x[i]);
          m = x[i];
          first = i;
        }
      }
      final float d = m / -8, id = d != 0 ? 1 / d : 0;
      final short d16 = toF16(d);
      if ((d16 & 0x7c00) == 0x7c00) {
        quantizeError(20, x[first], first, dim, heads,
                      "|x| / 8 overflows the block's float16 scale (|x| must be below 524160)");
      }
      out[to] = (byte) d16;
      out[to + 1] = (byte) (d16 >> 8);
      for (int j = 0; j < half; ++j) {
        out[to + 2 + j] = (byte) (nibble(x[at + j], id) | nibble(x[at + half + j], id) << 4);
      }
    }
    return out;
  }

  /** min(15, (int) (x * id + 8.5f)), 0 where that is not finite (id = 1 / a subnormal d). */
  private static int nibble(float x, float id) {
    final float y = x * id + 8.5f;
    return Float.isFinite(y) ? Math.min(15, (int) y) : 0;
  }

  private static void quantizeError(int status, float value, int index, int dim, int heads,
                                    String what) {
    final int row = index / dim;
    throw new RelAttnException(status, "x (token " + row / heads + ", head " + row % heads + ", "
                               + index % dim + ") = " + value + ": " + what);
  }

  /** Float.floatToFloat16 (Java 20) where the runtime has it, else null. */
  private static final java.lang.reflect.Method FLOAT_TO_FLOAT16 = floatToFloat16();

  private static java.lang.reflect.Method floatToFloat16() {
    try {
      return Float.class.getMethod("floatToFloat16", float.class);
    } catch (NoSuchMethodException e) {
      return null;
    }
  }

  /** x rounded to f16 bits, nearest even: Float.floatToFloat16 where the JDK has it, else
   *  {@link #f32ToF16}. */
  static short toF16(float x) {
    if (FLOAT_TO_FLOAT16 != null) {
      try {
        return (Short) FLOAT_TO_FLOAT16.invoke(null, x);
      } catch (ReflectiveOperationException e) {
        throw new IllegalStateException("Float.floatToFloat16", e);
      }
    }
    return f32ToF16(x);
  }

  /** x rounded to f16 bits, nearest even (overflow to infinity; NaN stays NaN). */
  static short f32ToF16(float x) {
    final int bits = Float.floatToRawIntBits(x), sign = (bits >>> 16) & 0x8000;
    final int abs = bits & 0x7fffffff;
    if (abs > 0x7f800000) return (short) (sign | 0x7e00 | ((abs >>> 13) & 0x3ff));  // NaN
    if (abs >= 0x477ff000) return (short) (sign | 0x7c00);  // >= 65520: infinity
    if (abs < 0x38800000) {  // below 2^-14: a multiple of 2^-24 (1024 of them: 2^-14)
      return (short) (sign | (int) Math.rint(Float.intBitsToFloat(abs) * 0x1p24f));
    }
    int h = ((abs >>> 23) - 127 + 15) << 10 | ((abs >>> 13) & 0x3ff);
    final int rest = abs & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1) != 0)) h++;  // may carry into the exponent
    return (short) (sign | h);
  }

  /**
   * Symmetric int8 quantisation (relattn_quantize_i8) of x [tokens][heads][dim] into values
   * [tokens][heads][dim] and scales [tokens][heads]: scale = max|row| / 127 (0 for a zero row),
   * value = round-half-away-from-zero(x / scale). A NaN or infinity throws RelAttnException
   * (status 17, naming the element) and nothing is written.
   */
  public static void quantizeI8(float[] x, int tokens, int heads, int dim, byte[] values,
                                float[] scales) {
    final long elements = (long) tokens * heads * dim;
    if (tokens < 1 || heads < 1 || dim < 1 || elements > Integer.MAX_VALUE) {
      throw new IllegalArgumentException("tokens, heads, dim = " + tokens + ", " + heads + ", "
                                         + dim + ": must be >= 1, their product < 2^31");
    }
    checkLength("x", x == null ? -1 : x.length, elements);
    checkLength("values", values == null ? -1 : values.length, elements);
    checkLength("scales", scales == null ? -1 : scales.length, (long) tokens * heads);
    nativeQuantizeI8(x, tokens, heads, dim, values, scales);
  }

  /** quantizeI8 into new arrays. */
  public static Int8 quantizeI8(float[] x, int tokens, int heads, int dim) {
    final long elements = (long) tokens * heads * dim;
    if (tokens < 1 || heads < 1 || dim < 1 || elements > Integer.MAX_VALUE) {
      throw new IllegalArgumentException("tokens, heads, dim = " + tokens + ", " + heads + ", "
                                         + dim + ": must be >= 1, their product < 2^31");
    }
    Int8 result = new Int8(new byte[(int) elements], new float[tokens * heads]);
    quantizeI8(x, tokens, heads, dim, result.values, result.scales);
    return result;
  }

  /** Attention over direct buffers in native byte order, from their positions (F32, F16 or
   *  BF16; int8 goes through {@link Int8} arrays). */
  public static void attention(Params p, Buffer q, Buffer k, Buffer v, Buffer out) {
    if (!isFloat(p.dtype) || !isFloat(p.outDtype)) {
      throw new IllegalArgumentException("dtype, outDtype = " + p.dtype + ", " + p.outDtype
          + ": buffers hold F32, F16 or BF16 (int8: the attention overloads taking RelAttn.Int8)");
    }
    checkTables(p);
    checkMasks(p, p.nKv);
    nativeAttentionBuffers(p, p.rope,
        q, byteOffset("q", q, p.dtype, (long) p.nQ * p.heads * p.headDim),
        k, byteOffset("k", k, p.dtype, (long) p.nKv * p.kvHeads * p.headDim),
        v, byteOffset("v", v, p.dtype, (long) p.nKv * p.kvHeads * p.vDim()),
        out, byteOffset("out", out, p.outDtype, (long) p.nQ * p.heads * p.vDim()));
  }

  /**
   * relattn_merge: two partial attentions of the same queries over disjoint sets of keys A and
   * B, oA and oB [nQ][heads][vHeadDim] with their log-sum-exps lseA, lseB [nQ][heads] (as
   * {@link Params#lse} gives them), combined into out, the attention over A and B, and lse
   * (null: not wanted): lse = ln(e^lseA + e^lseB + e^sinks[h]), out = e^(lseA - lse) oA +
   * e^(lseB - lse) oB, in double per row. Sinks (null: none) are counted once, here: compute
   * the parts without them. out may be oA or oB and lse lseA or lseB (merging in place). An
   * lse of +inf throws RelAttnException (status 20); nothing is written on failure.
   */
  public static void merge(int nQ, int heads, int vHeadDim, float[] oA, float[] lseA,
                           float[] oB, float[] lseB, float[] sinks, float[] out, float[] lse) {
    if (nQ < 1 || heads < 1 || vHeadDim < 1) {
      throw new IllegalArgumentException("nQ, heads, vHeadDim = " + nQ + ", " + heads + ", "
                                         + vHeadDim + ": must be >= 1");
    }
    final long rows = (long) nQ * heads;
    checkLength("lseA", length(lseA), rows);
    checkLength("lseB", length(lseB), rows);
    if (lse != null) checkLength("lse", lse.length, rows);
    if (sinks != null) checkLength("sinks", sinks.length, heads);
    checkLength("oA", length(oA), rows * vHeadDim);
    checkLength("oB", length(oB), rows * vHeadDim);
    checkLength("out", length(out), rows * vHeadDim);
    nativeMerge(nQ, heads, vHeadDim, oA, lseA, oB, lseB, sinks, out, lse);
  }

  /** x rounded to bfloat16 bits, to nearest even (a NaN stays a NaN, quiet). */
  public static short toBf16(float x) {
    final int bits = Float.floatToRawIntBits(x);
    if ((bits & 0x7fffffff) > 0x7f800000) return (short) ((bits >>> 16) | 0x40);
    return (short) ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16);
  }

  /** The float bfloat16 bits b hold (exact). */
  public static float fromBf16(short b) {
    return Float.intBitsToFloat((b & 0xffff) << 16);
  }

  /** Each element of x rounded to bfloat16 bits, as toBf16(float). */
  public static short[] toBf16(float[] x) {
    short[] b = new short[x.length];
    for (int i = 0; i < x.length; ++i) b[i] = toBf16(x[i]);
    return b;
  }

  /** The floats the bfloat16 bits in b hold. */
  public static float[] fromBf16(short[] b) {
    float[] x = new float[b.length];
    for (int i = 0; i < b.length; ++i) x[i] = fromBf16(b[i]);
    return x;
  }

  /** pairs [nQ][keys] (rows of one length) as Params.allowed bit rows [nQ][words], words =
   *  max(1, ceil(keys / 64)): bit b % 64 of word b / 64 of row i is pairs[i][b]. */
  public static long[] packAllowed(boolean[][] pairs) {
    final int words = rowWords(pairs);
    long[] bits = new long[pairs.length * words];
    for (int i = 0; i < pairs.length; ++i) {
      for (int b = 0; b < pairs[i].length; ++b) {
        if (pairs[i][b]) bits[i * words + b / 64] |= 1L << (b % 64);
      }
    }
    return bits;
  }

  /** The words of pairs' packed rows; checks its rows have one length. */
  static int rowWords(boolean[][] pairs) {
    if (pairs == null) throw new NullPointerException("pairs");
    final int keys = pairs.length == 0 || pairs[0] == null ? 0 : pairs[0].length;
    for (int i = 0; i < pairs.length; ++i) {
      if (pairs[i] == null || pairs[i].length != keys) {
        throw new IllegalArgumentException("pairs[" + i + "]: " + length(pairs[i])
                                           + " keys, row 0 has " + keys);
      }
    }
    return Math.max(1, (keys + 63) / 64);
  }

  /** The ALiBi slopes of heads heads from maxBias (8: the ALiBi paper's). */
  public static native float[] alibiSlopes(int heads, float maxBias);

  /** T5's bucket of relativePosition = key position - query position. */
  public static native int t5Bucket(long relativePosition, int numBuckets, int maxDistance,
                                    boolean bidirectional);

  /** The library's version, "MAJOR.MINOR.PATCH". */
  public static native String version();

  /** Checks the arrays against p's shapes; q, k, v each a float[] (F32), a short[] (F16 or
   *  BF16 bits), an Int8 (I8) or, k and v, Q4Blocks (Q4); out a float[] or short[]. */
  private static void attentionArrays(Params p, Object q, Object k, Object v, Object out) {
    checkTensor("q", q, p.dtype, p.nQ, p.heads, p.headDim);
    checkTensor("k", k, p.dtype, p.nKv, p.kvHeads, p.headDim);
    checkTensor("v", v, p.dtype, p.nKv, p.kvHeads, p.vDim());
    checkTensor("out", out, p.outDtype, p.nQ, p.heads, p.vDim());
    checkTables(p);
    checkMasks(p, p.nKv);
    nativeAttentionArrays(p, p.rope, values(q), scales(q), values(k), scales(k), values(v),
                          scales(v), out);
  }

  /** A [tokens][heads][dim] array of dtype (float[] F32, short[] F16 / BF16) or Int8 holds
   *  what the shapes need. */
  static void checkTensor(String name, Object t, int dtype, long tokens, long heads, long dim) {
    if (t instanceof Q4Blocks) {
      if (dim % Q4_BLOCK_VALUES != 0) {
        throw new IllegalArgumentException(name + ": Q4 blocks need a dim that is a multiple of"
                                           + " 32, not " + dim);
      }
      checkLength(name + ".blocks", ((Q4Blocks) t).blocks.length,
                  tokens * heads * (dim / Q4_BLOCK_VALUES * Q4_BLOCK_BYTES));
      return;
    }
    if (t instanceof Int8) {
      checkLength(name + ".values", ((Int8) t).values.length, tokens * heads * dim);
      checkLength(name + ".scales", ((Int8) t).scales.length, tokens * heads);
      return;
    }
    if (t != null && (t instanceof float[]) != (dtype == F32)) {
      throw new IllegalArgumentException(name + ": a " + t.getClass().getSimpleName()
          + " does not hold dtype " + dtype + " (float[]: F32, short[]: F16 or BF16 bits)");
    }
    if (t instanceof short[] && !isFloat(dtype)) {
      throw new IllegalArgumentException(name + ": dtype " + dtype
                                         + ": a short[] holds F16 or BF16 bits");
    }
    checkLength(name, length(t), tokens * heads * dim);
  }

  static boolean isFloat(int dtype) {
    return dtype == F32 || dtype == F16 || dtype == BF16;
  }

  /** An array's length, -1 for null. */
  static long length(Object array) {
    return array == null ? -1 : java.lang.reflect.Array.getLength(array);
  }

  /** Lengths of p's positions, segments, allowed bits and lse, nKv keys (a KVCache's length). */
  static void checkMasks(Params p, long nKv) {
    if (p.qPositions != null) checkLength("qPositions", p.qPositions.length, p.nQ);
    if (p.kPositions != null) checkLength("kPositions", p.kPositions.length, nKv);
    if ((p.qSegments == null) != (p.kSegments == null)) {
      throw new IllegalArgumentException((p.qSegments == null ? "qSegments" : "kSegments")
          + " is null: qSegments and kSegments are given together or not at all");
    }
    if (p.qSegments != null) {
      checkLength("qSegments", p.qSegments.length, p.nQ);
      checkLength("kSegments", p.kSegments.length, nKv);
    }
    if (p.allowed != null) {
      if (p.allowedRowWords < 0 || p.allowedRowWords > Integer.MAX_VALUE) {
        throw new IllegalArgumentException("allowedRowWords = " + p.allowedRowWords
                                           + ": must be in 0..2^31 - 1 (64 keys a word)");
      }
      checkLength("allowed", p.allowed.length, p.nQ * p.allowedRowWords);
    }
    if (p.lse != null) checkLength("lse", p.lse.length, (long) p.nQ * p.heads);
  }

  /** The array the glue reads: a float[], an Int8's byte[] values, or a Q4Blocks' blocks. */
  static Object values(Object t) {
    if (t instanceof Q4Blocks) return ((Q4Blocks) t).blocks;
    return t instanceof Int8 ? ((Int8) t).values : t;
  }

  /** An Int8's row scales, null for a float[] (the glue's sign of F32). */
  static float[] scales(Object t) {
    return t instanceof Int8 ? ((Int8) t).scales : null;
  }

  static void checkLength(String name, long have, long need) {
    if (have < 0) throw new NullPointerException(name);
    if (have < need) {
      throw new IllegalArgumentException(name + ": " + have + " elements, the shapes need " + need);
    }
  }

  static void checkTables(Params p) {
    checkTables(p, p.headDim);
  }

  /** Lengths of p's tables, headDim that of q and k (a KVCache's when p.headDim is 0). */
  static void checkTables(Params p, int headDim) {
    if (p.slopes != null) checkLength("slopes", p.slopes.length, p.heads);
    if (p.sinks != null) checkLength("sinks", p.sinks.length, p.heads);
    if (p.rope == null) throw new NullPointerException("rope (new RelAttn.Rope(): off)");
    p.rope.checkTables(headDim);
    if (p.scheme == T5 || p.scheme == SHAW) {
      final long width = p.scheme == T5 ? p.numBuckets : 2L * p.shawK + 1;
      checkLength("table", p.table == null ? -1 : p.table.length, p.heads * width);
    }
    if (p.scheme == SHAW_VECTOR) {
      if (p.shawK < 0 || p.shawK > 64) {
        throw new IllegalArgumentException("shawK = " + p.shawK + ": must be in 0..64");
      }
      final long rows = (p.shawPerHead ? p.heads : 1L) * (2L * p.shawK + 1);
      checkLength("table", p.table == null ? -1 : p.table.length, rows * headDim);
    }
  }

  /** Checks a direct buffer holds `elements` of dtype (F32, F16 or BF16) from its position;
   *  its byte offset. */
  static long byteOffset(String name, Buffer b, int dtype, long elements) {
    if (b == null) throw new NullPointerException(name);
    final int unit;
    final ByteOrder order;
    if (b instanceof ByteBuffer) {
      unit = 1;
      order = ((ByteBuffer) b).order();
    } else if (b instanceof FloatBuffer && dtype == F32) {
      unit = 4;
      order = ((FloatBuffer) b).order();
    } else if (b instanceof ShortBuffer && dtype != F32) {
      unit = 2;
      order = ((ShortBuffer) b).order();
    } else {
      final String kind = b instanceof FloatBuffer ? "FloatBuffer"
          : b instanceof ShortBuffer ? "ShortBuffer" : b.getClass().getSimpleName();
      throw new IllegalArgumentException(name + ": a " + kind + " does not hold "
          + (dtype == F32 ? "F32: use a ByteBuffer or FloatBuffer"
                          : (dtype == F16 ? "F16" : "BF16") + ": use a ByteBuffer or ShortBuffer"));
    }
    if (!b.isDirect()) throw new IllegalArgumentException(name + ": not a direct buffer");
    if (order != ByteOrder.nativeOrder()) {
      throw new IllegalArgumentException(name + ": byte order " + order + ", need "
          + ByteOrder.nativeOrder() + " (order(ByteOrder.nativeOrder()))");
    }
    final long elementBytes = dtype == F32 ? 4 : 2, offset = (long) b.position() * unit;
    if (offset % elementBytes != 0) {
      throw new IllegalArgumentException(name + ": position " + b.position()
          + " is not a multiple of the element size " + elementBytes);
    }
    checkLength(name + " (bytes from its position)", (long) b.remaining() * unit,
                elements * elementBytes);
    return offset;
  }

  /** q, k, v: float[] (F32) or short[] (F16 / BF16) with null scales, byte[] with their row
   *  scales (I8), or byte[] q4_0 blocks with null scales (Q4); out float[] or short[]
   *  (p.outDtype). */
  private static native void nativeAttentionArrays(Params p, Rope rope, Object q,
                                                   float[] qScales, Object k, float[] kScales,
                                                   Object v, float[] vScales, Object out);

  private static native void nativeMerge(int nQ, int heads, int vHeadDim, float[] oA,
                                         float[] lseA, float[] oB, float[] lseB, float[] sinks,
                                         float[] out, float[] lse);

  private static native void nativeQuantizeI8(float[] x, int tokens, int heads, int dim,
                                              byte[] values, float[] scales);

  private static native void nativeAttentionBuffers(Params p, Rope rope, Buffer q, long qOffset,
                                                    Buffer k, long kOffset, Buffer v,
                                                    long vOffset, Buffer out, long outOffset);
}
