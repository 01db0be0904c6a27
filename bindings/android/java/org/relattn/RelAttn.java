package org.relattn;

import java.nio.Buffer;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.ShortBuffer;

/**
 * relattn from Java and Android: attention with a relative-position bias (ALiBi, T5 buckets,
 * Shaw) over one sequence, computed by librelattn through the JNI glue in librelattn_jni.so.
 *
 * <p>Q is [nQ][heads][headDim], K [nKv][kvHeads][headDim], V [nKv][kvHeads][vHeadDim] and the
 * output [nQ][heads][vHeadDim], each row-major. Inputs come as float[] arrays, or as direct
 * buffers in native byte order (ByteBuffer, FloatBuffer, or ShortBuffer for F16), read from
 * their position(), without copies. Every method is thread-safe. A failed call throws and
 * leaves the output untouched: IllegalArgumentException for arrays and buffers that do not fit
 * the shapes, RelAttnException for what the library rejects (its message names the field).
 */
public final class RelAttn {
  static {
    System.loadLibrary("relattn_jni");
  }

  /** Element types (relattn_dtype): F16 is IEEE binary16, stored as 16-bit words. */
  public static final int F32 = 0, F16 = 1;

  /** Position schemes (relattn_bias_kind). */
  public static final int NONE = 0, ALIBI = 1, T5 = 2, SHAW = 3;

  /** Shapes and options of one call. Defaults are the C API's. */
  public static final class Params {
    public int nQ, nKv, heads, kvHeads, headDim;
    /** Of V and the output; 0 means headDim. */
    public int vHeadDim;
    /** Of q, k, v in buffers (float[] arrays are always F32), and of the output buffer. */
    public int dtype = F32, outDtype = F32;
    /** NONE, ALIBI, T5 or SHAW. */
    public int scheme = NONE;
    /** ALiBi: slopes from maxBias (8: the ALiBi paper's), or caller slopes [heads]. */
    public float maxBias = 8f;
    public float[] slopes;
    /** T5: [heads][numBuckets] f32; Shaw: [heads][2 * shawK + 1] f32 (key - query index). */
    public float[] table;
    public int numBuckets = 32, maxDistance = 128, shawK;
    /** The bias form is bidirectional unless causal; true forces it with causal. */
    public boolean bidirectional;
    /** Masks: causal; window 0 = none; keys from validKv on are hidden (-1: all valid). */
    public boolean causal;
    public long window, validKv = -1;
    /** Positions of the first query and the first key (int64, any value). */
    public long qStart, kStart;
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
  }

  private RelAttn() {}

  /** Attention over float[] arrays (F32); dtype and outDtype must be F32. */
  public static void attention(Params p, float[] q, float[] k, float[] v, float[] out) {
    if (p.dtype != F32 || p.outDtype != F32) {
      throw new IllegalArgumentException("dtype, outDtype: float[] arrays are F32");
    }
    checkLength("q", q == null ? -1 : q.length, (long) p.nQ * p.heads * p.headDim);
    checkLength("k", k == null ? -1 : k.length, (long) p.nKv * p.kvHeads * p.headDim);
    checkLength("v", v == null ? -1 : v.length, (long) p.nKv * p.kvHeads * p.vDim());
    checkLength("out", out == null ? -1 : out.length, (long) p.nQ * p.heads * p.vDim());
    checkTables(p);
    nativeAttentionArrays(p, q, k, v, out);
  }

  /** Attention over direct buffers in native byte order, from their positions. */
  public static void attention(Params p, Buffer q, Buffer k, Buffer v, Buffer out) {
    checkTables(p);
    nativeAttentionBuffers(p,
        q, byteOffset("q", q, p.dtype, (long) p.nQ * p.heads * p.headDim),
        k, byteOffset("k", k, p.dtype, (long) p.nKv * p.kvHeads * p.headDim),
        v, byteOffset("v", v, p.dtype, (long) p.nKv * p.kvHeads * p.vDim()),
        out, byteOffset("out", out, p.outDtype, (long) p.nQ * p.heads * p.vDim()));
  }

  /** The ALiBi slopes of heads heads from maxBias (8: the ALiBi paper's). */
  public static native float[] alibiSlopes(int heads, float maxBias);

  /** T5's bucket of relativePosition = key position - query position. */
  public static native int t5Bucket(long relativePosition, int numBuckets, int maxDistance,
                                    boolean bidirectional);

  /** The library's version, "MAJOR.MINOR.PATCH". */
  public static native String version();

  private static void checkLength(String name, long have, long need) {
    if (have < 0) throw new NullPointerException(name);
    if (have < need) {
      throw new IllegalArgumentException(name + ": " + have + " elements, the shapes need " + need);
    }
  }

  private static void checkTables(Params p) {
    if (p.slopes != null) checkLength("slopes", p.slopes.length, p.heads);
    if (p.sinks != null) checkLength("sinks", p.sinks.length, p.heads);
    if (p.scheme == T5 || p.scheme == SHAW) {
      final long width = p.scheme == T5 ? p.numBuckets : 2L * p.shawK + 1;
      checkLength("table", p.table == null ? -1 : p.table.length, p.heads * width);
    }
  }

  /** Checks a direct buffer holds `elements` of dtype from its position; its byte offset. */
  private static long byteOffset(String name, Buffer b, int dtype, long elements) {
    if (b == null) throw new NullPointerException(name);
    final int unit;
    final ByteOrder order;
    if (b instanceof ByteBuffer) {
      unit = 1;
      order = ((ByteBuffer) b).order();
    } else if (b instanceof FloatBuffer && dtype == F32) {
      unit = 4;
      order = ((FloatBuffer) b).order();
    } else if (b instanceof ShortBuffer && dtype == F16) {
      unit = 2;
      order = ((ShortBuffer) b).order();
    } else {
      final String kind = b instanceof FloatBuffer ? "FloatBuffer"
          : b instanceof ShortBuffer ? "ShortBuffer" : b.getClass().getSimpleName();
      throw new IllegalArgumentException(name + ": a " + kind + " does not hold "
          + (dtype == F16 ? "F16: use a ByteBuffer or ShortBuffer"
                          : "F32: use a ByteBuffer or FloatBuffer"));
    }
    if (!b.isDirect()) throw new IllegalArgumentException(name + ": not a direct buffer");
    if (order != ByteOrder.nativeOrder()) {
      throw new IllegalArgumentException(name + ": byte order " + order + ", need "
          + ByteOrder.nativeOrder() + " (order(ByteOrder.nativeOrder()))");
    }
    final long elementBytes = dtype == F16 ? 2 : 4, offset = (long) b.position() * unit;
    if (offset % elementBytes != 0) {
      throw new IllegalArgumentException(name + ": position " + b.position()
          + " is not a multiple of the element size " + elementBytes);
    }
    checkLength(name + " (bytes from its position)", (long) b.remaining() * unit,
                elements * elementBytes);
    return offset;
  }

  private static native void nativeAttentionArrays(Params p, float[] q, float[] k, float[] v,
                                                   float[] out);

  private static native void nativeAttentionBuffers(Params p, Buffer q, long qOffset, Buffer k,
                                                    long kOffset, Buffer v, long vOffset,
                                                    Buffer out, long outOffset);
}
