package org.relattn;

import java.nio.Buffer;
import java.nio.ByteBuffer;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * The library's KV cache for streaming decode (relattn_kv_cache), in a direct ByteBuffer this
 * object allocates: keys and values appended token by token, stored per KV head as kDtype /
 * vDtype (F32, F16, BF16, I8 or Q4: each row converted once when appended, K after RoPE), each
 * token with its int64 position. ring = true keeps the last capacity tokens in constant memory
 * (positions count on; sinkTokens of them are never overwritten); otherwise an append past
 * capacity throws RelAttnException (status 15) and changes nothing.
 *
 * <pre>
 *   KVCache cache = new KVCache(2, 64, 64, 4096, RelAttn.F16, RelAttn.F16, false, null);
 *   cache.append(k, v);           // k [n][kvHeads][headDim], v [n][kvHeads][vHeadDim]
 *   cache.attention(p, q, out);   // q [p.nQ][p.heads][headDim] at nextPosition(), + 1, ...
 *   byte[] saved = cache.toBytes();              // relocatable: a file, another process
 *   KVCache restored = KVCache.fromBytes(saved); // checked by the library
 * </pre>
 *
 * <p>Thread-safe: attention calls (and length, nextPosition) may run at once; append, truncate
 * and clear wait for them and run alone. A failed call throws and changes nothing: the cache
 * and the output are left as they were.
 */
public final class KVCache {
  static {
    System.loadLibrary("relattn_jni");
  }

  /** The C API's RELATTN_KV_CACHE_ALIGNMENT: the cache's first byte is aligned to it. */
  public static final int ALIGNMENT = 64;

  /** Positions of sink tokens in a ring (relattn_sink_positions): TEXT keeps every token's
   *  appended position; CACHE is StreamingLLM's rule (positions within the cache). */
  public static final int SINK_POSITIONS_TEXT = 0, SINK_POSITIONS_CACHE = 1;

  public final int kvHeads, headDim, vHeadDim, kDtype, vDtype, sinkPositions;
  public final long capacity, sinkTokens;
  public final boolean ring;
  private final RelAttn.Rope rope;  // a copy of the constructor's; the glue reads it
  private final ByteBuffer memory;  // the cache's relattn_kv_cache_size bytes (or more), aligned
  private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();

  /** relattn_kv_cache_desc under the field names the glue reads (those of KVCache): what
   *  nativeSize and nativeInit read, and nativeAttach fills in from a stored header. */
  private static final class Header {
    int kvHeads, headDim, vHeadDim, kDtype, vDtype, sinkPositions;
    long capacity, sinkTokens;
    boolean ring;
    RelAttn.Rope rope = new RelAttn.Rope();
  }

  /** A cache without sink tokens: see the full constructor. */
  public KVCache(int kvHeads, int headDim, int vHeadDim, long capacity, int kDtype, int vDtype,
                 boolean ring, RelAttn.Rope rope) {
    this(kvHeads, headDim, vHeadDim, capacity, kDtype, vDtype, ring, rope, 0,
         SINK_POSITIONS_TEXT);
  }

  /**
   * An empty cache (relattn_kv_cache_init) for kvHeads heads of K headDim and V vHeadDim (0:
   * headDim) wide, capacity tokens, stored as kDtype and vDtype (F32, F16, I8 or Q4; Q4 needs
   * the dimension a multiple of 32). rope (null: off) rotates K when appended, at its position;
   * it is copied. sinkTokens, sinkPositions: ring only. The library checks every field
   * (RelAttnException naming it).
   */
  public KVCache(int kvHeads, int headDim, int vHeadDim, long capacity, int kDtype, int vDtype,
                 boolean ring, RelAttn.Rope rope, long sinkTokens, int sinkPositions) {
    this(header(kvHeads, headDim, vHeadDim, capacity, kDtype, vDtype, ring, rope, sinkTokens,
                sinkPositions), null);
  }

  /** A cache of h's fields in memory (attached), or in new memory it initialises (null). */
  private KVCache(Header h, ByteBuffer attached) {
    kvHeads = h.kvHeads;
    headDim = h.headDim;
    vHeadDim = h.vHeadDim;
    capacity = h.capacity;
    kDtype = h.kDtype;
    vDtype = h.vDtype;
    ring = h.ring;
    rope = h.rope;
    sinkTokens = h.sinkTokens;
    sinkPositions = h.sinkPositions;
    memory = attached != null ? attached : initialised(h);
  }

  private static Header header(int kvHeads, int headDim, int vHeadDim, long capacity, int kDtype,
                               int vDtype, boolean ring, RelAttn.Rope rope, long sinkTokens,
                               int sinkPositions) {
    Header h = new Header();
    h.kvHeads = kvHeads;
    h.headDim = headDim;
    h.vHeadDim = vHeadDim == 0 ? headDim : vHeadDim;
    h.capacity = capacity;
    h.kDtype = kDtype;
    h.vDtype = vDtype;
    h.ring = ring;
    if (rope != null) h.rope = rope.copy();
    h.rope.checkTables(headDim);
    h.sinkTokens = sinkTokens;
    h.sinkPositions = sinkPositions;
    return h;
  }

  /** New memory holding an empty cache of h's fields (relattn_kv_cache_init). */
  private static ByteBuffer initialised(Header h) {
    final long bytes = nativeSize(h);
    ByteBuffer memory = aligned(bytes, "capacity = " + h.capacity);
    nativeInit(h, memory);
    return memory;
  }

  /** A direct buffer of bytes at an address aligned to ALIGNMENT; what: the argument at fault. */
  private static ByteBuffer aligned(long bytes, String what) {
    if (bytes > Integer.MAX_VALUE - ALIGNMENT) {
      throw new IllegalArgumentException(what + ": the cache takes " + bytes
                                         + " bytes, more than a ByteBuffer holds");
    }
    ByteBuffer raw = ByteBuffer.allocateDirect((int) bytes + ALIGNMENT);
    final int offset = nativeAlignOffset(raw);
    raw.position(offset);
    raw.limit(offset + (int) bytes);
    return raw.slice();
  }

  /**
   * A cache made of bytes {@link #toBytes} gave (a file's contents, another process's cache,
   * the Python binding's tobytes()): copied into memory the new cache owns and checked by the
   * library (relattn_kv_cache_attach: magic, layout version, desc, size, positions, every held
   * value), which throws RelAttnException naming the field for bytes that are no such cache,
   * truncated or corrupted (status 18, or 11 when too short). Its fields come from the stored
   * header, its rope too, complete unless its scaling family takes tables (SCALING_LONGROPE,
   * SCALING_INV_FREQ), which are not stored: then use fromBytes(bytes, rope).
   */
  public static KVCache fromBytes(byte[] bytes) {
    return fromBytes(bytes, null);
  }

  /** As fromBytes(bytes), with rope (null: the stored one) the cache was made with: attention
   *  then checks it equals the stored one. */
  public static KVCache fromBytes(byte[] bytes, RelAttn.Rope rope) {
    if (bytes == null) throw new NullPointerException("bytes");
    return attach(ByteBuffer.wrap(bytes), rope);
  }

  /** source's remaining bytes copied into new aligned memory and attached. */
  private static KVCache attach(ByteBuffer source, RelAttn.Rope rope) {
    ByteBuffer memory = aligned(source.remaining(), "bytes");
    memory.put(source);
    memory.clear();
    Header h = new Header();
    nativeAttach(memory, h);
    if (rope != null) {
      rope.checkTables(h.headDim);
      h.rope = rope.copy();
    }
    return new KVCache(h, memory);
  }

  /** The cache's bytes (its header and every region: relocatable, pointer-free), for
   *  {@link #fromBytes}. */
  public byte[] toBytes() {
    lock.readLock().lock();
    try {
      ByteBuffer source = whole();
      byte[] bytes = new byte[source.remaining()];
      source.get(bytes);
      return bytes;
    } finally {
      lock.readLock().unlock();
    }
  }

  /** An independent copy (its own memory, attached: checked as fromBytes checks bytes), with
   *  this cache's rope; appends to either leave the other as it was. */
  public KVCache copy() {
    lock.readLock().lock();
    try {
      return attach(whole(), rope);
    } finally {
      lock.readLock().unlock();
    }
  }

  /** A view of all of memory's bytes. */
  private ByteBuffer whole() {
    ByteBuffer view = memory.duplicate();
    view.clear();
    return view;
  }

  /** The rope K is rotated by (a copy; pairing ROPE_NONE: off). */
  public RelAttn.Rope rope() {
    return rope.copy();
  }

  /** Appends k [n][kvHeads][headDim] and v [n][kvHeads][vHeadDim], n >= 1, at positions
   *  continuing from nextPosition(). */
  public void append(float[] k, float[] v) {
    append(k, v, null);
  }

  /** Appends k and v as above at positions [n] (null: continuing from nextPosition()). */
  public void append(float[] k, float[] v, long[] positions) {
    appendArrays(RelAttn.F32, k, v, positions);
  }

  /** Appends k and v holding F16 or BF16 bits (dtype; shapes as append(k, v)) at positions [n]
   *  (null: continuing from nextPosition()). */
  public void append(int dtype, short[] k, short[] v, long[] positions) {
    if (dtype != RelAttn.F16 && dtype != RelAttn.BF16) {
      throw new IllegalArgumentException("dtype = " + dtype + ": a short[] holds F16 or BF16");
    }
    appendArrays(dtype, k, v, positions);
  }

  /** k, v: float[] (F32) or short[] (dtype F16 / BF16). */
  private void appendArrays(int dtype, Object k, Object v, long[] positions) {
    if (k == null) throw new NullPointerException("k");
    if (v == null) throw new NullPointerException("v");
    final long kLength = RelAttn.length(k), vLength = RelAttn.length(v);
    final long row = (long) kvHeads * headDim, n = kLength / row;
    if (kLength == 0 || kLength % row != 0) {
      throw new IllegalArgumentException("k: " + kLength + " elements: must be n >= 1 tokens of "
                                         + "kvHeads * headDim = " + row);
    }
    if (vLength != n * kvHeads * vHeadDim) {
      throw new IllegalArgumentException("v: " + vLength + " elements, k's " + n
                                         + " tokens need " + n * kvHeads * vHeadDim);
    }
    if (positions != null) RelAttn.checkLength("positions", positions.length, n);
    lock.writeLock().lock();
    try {
      nativeAppend(memory, n, kvHeads, headDim, vHeadDim, dtype, k, v, positions);
    } finally {
      lock.writeLock().unlock();
    }
  }

  /** Appends n >= 1 tokens from direct buffers in native byte order, from their positions:
   *  k [n][kvHeads][headDim] and v [n][kvHeads][vHeadDim] of dtype F32 (ByteBuffer or
   *  FloatBuffer), F16 or BF16 (ByteBuffer or ShortBuffer), at positions continuing from
   *  nextPosition(). */
  public void append(int dtype, long n, Buffer k, Buffer v) {
    append(dtype, n, k, v, null);
  }

  /** As append(dtype, n, k, v), at positions [n] (null: continuing from nextPosition()). */
  public void append(int dtype, long n, Buffer k, Buffer v, long[] positions) {
    if (!RelAttn.isFloat(dtype)) {
      throw new IllegalArgumentException("dtype = " + dtype + ": buffers hold F32, F16 or BF16");
    }
    if (n < 1) throw new IllegalArgumentException("n = " + n + ": must be >= 1");
    final long kOffset = RelAttn.byteOffset("k", k, dtype, n * kvHeads * headDim);
    final long vOffset = RelAttn.byteOffset("v", v, dtype, n * kvHeads * vHeadDim);
    if (positions != null) RelAttn.checkLength("positions", positions.length, n);
    lock.writeLock().lock();
    try {
      nativeAppendBuffers(memory, n, kvHeads, headDim, vHeadDim, dtype, k, kOffset, v, vOffset,
                          positions);
    } finally {
      lock.writeLock().unlock();
    }
  }

  /** Tokens the cache holds (<= capacity). */
  public long length() {
    lock.readLock().lock();
    try {
      return nativeLength(memory);
    } finally {
      lock.readLock().unlock();
    }
  }

  /** The position an append without positions continues from (queries' default start). */
  public long nextPosition() {
    lock.readLock().lock();
    try {
      return nativeNextPosition(memory);
    } finally {
      lock.readLock().unlock();
    }
  }

  /** Keeps the oldest n (0..length()) tokens in the order they were appended and drops the
   *  others; appends without positions then continue after the last kept token, so that
   *  truncating and appending again equals never having appended the dropped tokens. */
  public void truncate(long n) {
    lock.writeLock().lock();
    try {
      nativeTruncate(memory, n);
    } finally {
      lock.writeLock().unlock();
    }
  }

  /** Empties the cache; positions restart at 0. */
  public void clear() {
    lock.writeLock().lock();
    try {
      nativeClear(memory);
    } finally {
      lock.writeLock().unlock();
    }
  }

  /**
   * Attention of q [p.nQ][p.heads][headDim] over the cached tokens at their positions, into
   * out [p.nQ][p.heads][vHeadDim]. The queries follow the cache's last token: query i is at
   * nextPosition() + i (as the Python binding's KVCache.attention; p.qStart must be 0, use the
   * overload with qStart to place them, or p.qPositions to place each). p.nKv is 0 or
   * length(); p.kvHeads, p.headDim, p.vHeadDim 0 or the cache's; p.kStart 0 and p.kPositions
   * null; p.rope ROPE_NONE (the cache's rope) or equal to it; p.validKv, p.firstValidKv and
   * p.kSegments count the cache's slots; p.lse, when given, receives the rows' log-sum-exps.
   */
  public void attention(RelAttn.Params p, float[] q, float[] out) {
    attentionAt(p, false, 0, q, out);
  }

  /** As attention(p, q, out), query i at qStart + i. */
  public void attention(RelAttn.Params p, long qStart, float[] q, float[] out) {
    attentionAt(p, true, qStart, q, out);
  }

  /** int8 queries (RelAttn.quantizeI8) over I8 keys; at nextPosition() + i. */
  public void attention(RelAttn.Params p, RelAttn.Int8 q, float[] out) {
    attentionAt(p, false, 0, q, out);
  }

  /** int8 queries over I8 keys, query i at qStart + i. */
  public void attention(RelAttn.Params p, long qStart, RelAttn.Int8 q, float[] out) {
    attentionAt(p, true, qStart, q, out);
  }

  /** placed: query i at qStart + i, else at p.qPositions[i] or nextPosition() + i. q: float[]
   *  or RelAttn.Int8. */
  private void attentionAt(RelAttn.Params p, boolean placed, long qStart, Object q, float[] out) {
    if (p.dtype != RelAttn.F32 || p.outDtype != RelAttn.F32) {
      throw new IllegalArgumentException("dtype, outDtype: arrays are F32 (or RelAttn.Int8)");
    }
    checkMatches("kvHeads", p.kvHeads, kvHeads);
    checkMatches("headDim", p.headDim, headDim);
    checkMatches("vHeadDim", p.vHeadDim, vHeadDim);
    if (p.kStart != 0 || p.kPositions != null) {
      throw new IllegalArgumentException((p.kStart != 0 ? "kStart = " + p.kStart + ": must be 0"
          : "kPositions: must be null") + " (the cache holds the keys' positions)");
    }
    if (placed && p.qPositions != null) {
      throw new IllegalArgumentException("qStart and qPositions: give one (qPositions places "
                                         + "each query)");
    }
    if (!placed && p.qStart != 0) {
      throw new IllegalArgumentException("qStart = " + p.qStart + ": queries over a KVCache start "
          + "at nextPosition(); pass qStart to attention(p, qStart, q, out) instead");
    }
    RelAttn.checkTensor("q", q, p.dtype, p.nQ, p.heads, headDim);
    RelAttn.checkTensor("out", out, p.outDtype, p.nQ, p.heads, vHeadDim);
    RelAttn.checkTables(p, headDim);
    final RelAttn.Rope r = p.rope.pairing == RelAttn.ROPE_NONE ? rope : p.rope;
    lock.readLock().lock();
    try {
      RelAttn.checkMasks(p, nativeLength(memory));
      final long start = placed ? qStart : nativeNextPosition(memory);
      nativeAttention(p, r, memory, start, headDim, vHeadDim, RelAttn.values(q),
                      RelAttn.scales(q), out);
    } finally {
      lock.readLock().unlock();
    }
  }

  private static void checkMatches(String name, int given, int cache) {
    if (given != 0 && given != cache) {
      throw new IllegalArgumentException(name + " = " + given + ": must be 0 or the cache's "
                                         + cache);
    }
  }

  /** relattn_kv_cache_size of h's fields (kvHeads ... sinkPositions, rope). */
  private static native long nativeSize(Header h);

  /** Bytes from b's address to the next multiple of ALIGNMENT. */
  private static native int nativeAlignOffset(ByteBuffer b);

  /** relattn_kv_cache_init of h's fields in memory (aligned, relattn_kv_cache_size bytes). */
  private static native void nativeInit(Header h, ByteBuffer memory);

  /** relattn_kv_cache_attach of memory's bytes (aligned); h receives the stored desc. */
  private static native void nativeAttach(ByteBuffer memory, Header h);

  /** k, v: float[] (dtype F32) or short[] (F16, BF16); positions null: continuing. */
  private static native void nativeAppend(ByteBuffer memory, long n, int kvHeads, int headDim,
                                          int vHeadDim, int dtype, Object k, Object v,
                                          long[] positions);

  /** k, v at their byte offsets (checked by byteOffset); positions null: continuing. */
  private static native void nativeAppendBuffers(ByteBuffer memory, long n, int kvHeads,
                                                 int headDim, int vHeadDim, int dtype, Buffer k,
                                                 long kOffset, Buffer v, long vOffset,
                                                 long[] positions);

  private static native long nativeLength(ByteBuffer memory);

  private static native long nativeNextPosition(ByteBuffer memory);

  private static native void nativeTruncate(ByteBuffer memory, long n);

  private static native void nativeClear(ByteBuffer memory);

  /** q: float[] with null scales (F32) or byte[] with its row scales (I8); out float[]. */
  private static native void nativeAttention(RelAttn.Params p, RelAttn.Rope rope,
                                             ByteBuffer memory, long qStart, int headDim,
                                             int vHeadDim, Object q, float[] qScales,
                                             Object out);
}
