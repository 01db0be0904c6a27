package org.relattn;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.ShortBuffer;
import java.util.Arrays;
import java.util.Random;

/**
 * The JNI glue under the host JDK (run by ctest): RelAttn against a plain Java reference in
 * double for every scheme, both masks, arrays and direct buffers (F32 and F16), threads, and
 * the error paths. Exits non-zero on the first failure.
 */
public final class RelAttnTest {
  private static int checks;

  private static void check(boolean ok, String what) {
    checks++;
    if (!ok) throw new AssertionError(what);
  }

  private static RelAttn.Params params(int scheme, boolean causal) {
    RelAttn.Params p = new RelAttn.Params(7, 7, 4, 2, 8);
    p.vHeadDim = 6;
    p.scheme = scheme;
    p.causal = causal;
    return p;
  }

  private static float[] random(Random rng, int n) {
    float[] a = new float[n];
    for (int i = 0; i < n; ++i) a[i] = (rng.nextInt(513) - 256) / 256f;  // exact in f16
    return a;
  }

  /** Bias for offset rel = key - query. T5 cases stay within the exact buckets (|rel| < 8). */
  private static double bias(RelAttn.Params p, int h, long rel) {
    final boolean bidirectional = !p.causal || p.bidirectional;
    switch (p.scheme) {
      case RelAttn.ALIBI:
        double m = p.slopes != null ? p.slopes[h] : Math.pow(2, -8.0 * (h + 1) / p.heads);
        return bidirectional ? -m * Math.abs(rel) : m * rel;
      case RelAttn.T5:
        int bucket = bidirectional ? (rel > 0 ? p.numBuckets / 2 + (int) rel : (int) -rel)
                                   : (int) Math.max(-rel, 0);
        return p.table[h * p.numBuckets + bucket];
      case RelAttn.SHAW:
        long clipped = Math.max(-p.shawK, Math.min(p.shawK, rel));
        return p.table[h * (2 * p.shawK + 1) + (int) clipped + p.shawK];
      default:
        return 0;
    }
  }

  private static double[] reference(RelAttn.Params p, float[] q, float[] k, float[] v) {
    final int d = p.headDim, vd = p.vDim(), group = p.heads / p.kvHeads;
    final double scale = p.scale != 0 ? p.scale : 1 / Math.sqrt(d);
    double[] out = new double[p.nQ * p.heads * vd];
    for (int i = 0; i < p.nQ; ++i) {
      for (int h = 0; h < p.heads; ++h) {
        final int kh = h / group;
        double[] s = new double[p.nKv];
        double max = Double.NEGATIVE_INFINITY;
        for (int j = 0; j < p.nKv; ++j) {
          final long rel = (p.kStart + j) - (p.qStart + i);
          boolean visible = !(p.causal && rel > 0) && !(p.validKv >= 0 && j >= p.validKv);
          if (p.window > 0) visible &= p.causal ? -rel < p.window : Math.abs(rel) < p.window;
          double dot = 0;
          for (int e = 0; e < d; ++e) {
            dot += q[(i * p.heads + h) * d + e] * k[(j * p.kvHeads + kh) * d + e];
          }
          double content = scale * dot;
          if (p.softcap > 0) content = p.softcap * Math.tanh(content / p.softcap);
          s[j] = visible ? content + bias(p, h, rel) : Double.NEGATIVE_INFINITY;
          max = Math.max(max, s[j]);
        }
        if (max == Double.NEGATIVE_INFINITY) continue;  // sees no key: zeros
        final double sink = p.sinks != null ? p.sinks[h] : Double.NEGATIVE_INFINITY;
        max = Math.max(max, sink);
        double sum = Math.exp(sink - max);
        for (int j = 0; j < p.nKv; ++j) sum += (s[j] = Math.exp(s[j] - max));
        for (int j = 0; j < p.nKv; ++j) {
          for (int e = 0; e < vd; ++e) {
            out[(i * p.heads + h) * vd + e] += s[j] / sum * v[(j * p.kvHeads + kh) * vd + e];
          }
        }
      }
    }
    return out;
  }

  private static double maxError(float[] got, double[] expected) {
    double err = 0;
    for (int i = 0; i < got.length; ++i) err = Math.max(err, Math.abs(got[i] - expected[i]));
    return err;
  }

  private static short toHalf(float x) {  // exact for the k/256 values random() makes
    if (x == 0) return 0;
    final int bits = Float.floatToIntBits(x);
    final int exponent = ((bits >>> 23) & 0xff) - 127 + 15;
    return (short) (((bits >>> 16) & 0x8000) | (exponent << 10) | ((bits >>> 13) & 0x3ff));
  }

  private static float fromHalf(short h) {
    final int exponent = (h >>> 10) & 0x1f, fraction = h & 0x3ff;
    final float magnitude = exponent == 0 ? fraction * 0x1p-24f
        : Float.intBitsToFloat((exponent - 15 + 127) << 23 | fraction << 13);
    return (h & 0x8000) != 0 ? -magnitude : magnitude;
  }

  private static ByteBuffer direct(int bytes) {
    return ByteBuffer.allocateDirect(bytes).order(ByteOrder.nativeOrder());
  }

  private static <T extends Throwable> T expect(Class<T> type, Runnable call, String text) {
    try {
      call.run();
    } catch (Throwable e) {
      check(type.isInstance(e) && e.getMessage() != null && e.getMessage().contains(text),
            "expected " + type.getSimpleName() + " with '" + text + "', got " + e);
      return type.cast(e);
    }
    throw new AssertionError("no " + type.getSimpleName() + " for '" + text + "'");
  }

  public static void main(String[] args) throws Exception {
    final Random rng = new Random(42);
    final float[] q = random(rng, 7 * 4 * 8), k = random(rng, 7 * 2 * 8);
    final float[] v = random(rng, 7 * 2 * 6);

    // Every scheme under both masks, float[] arrays.
    for (int scheme : new int[] {RelAttn.NONE, RelAttn.ALIBI, RelAttn.T5, RelAttn.SHAW}) {
      for (boolean causal : new boolean[] {false, true}) {
        RelAttn.Params p = params(scheme, causal);
        if (scheme == RelAttn.T5) p.table = random(rng, 4 * 32);
        if (scheme == RelAttn.SHAW) {
          p.shawK = 3;
          p.table = random(rng, 4 * 7);
        }
        float[] out = new float[7 * 4 * 6];
        RelAttn.attention(p, q, k, v, out);
        double err = maxError(out, reference(p, q, k, v));
        check(err <= 5e-6, "scheme " + scheme + " causal " + causal + ": error " + err);
      }
    }

    // Window, valid keys, caller slopes and a position shift of 10^12 (bit-identical).
    RelAttn.Params p = params(RelAttn.ALIBI, true);
    p.window = 3;
    p.validKv = 5;
    p.slopes = new float[] {0.5f, 0.25f, 0.125f, 0.0625f};
    float[] base = new float[7 * 4 * 6], shifted = new float[7 * 4 * 6];
    RelAttn.attention(p, q, k, v, base);
    check(maxError(base, reference(p, q, k, v)) <= 5e-6, "window / validKv / slopes");
    p.qStart = p.kStart = 1_000_000_000_000L;
    RelAttn.attention(p, q, k, v, shifted);
    check(Arrays.equals(base, shifted), "position shift changes the output");

    // Logit soft-capping (saturated: scores up to ~8 against a cap of 2) and learned sinks.
    p = params(RelAttn.ALIBI, true);
    p.scale = 3f;
    p.softcap = 2f;
    p.sinks = new float[] {0.5f, -1f, 2f, 0f};
    float[] capped = new float[7 * 4 * 6];
    RelAttn.attention(p, q, k, v, capped);
    check(maxError(capped, reference(p, q, k, v)) <= 5e-6, "softcap and sinks");
    p.sinks = new float[] {0f, Float.NaN, 0f, 0f};
    final RelAttn.Params badSink = p;
    expect(RelAttnException.class, () -> RelAttn.attention(badSink, q, k, v, capped),
           "sinks[1] = nan");

    // Direct buffers: F16 inputs in ByteBuffers, F32 output in a FloatBuffer from position 5.
    p = params(RelAttn.ALIBI, true);
    p.dtype = RelAttn.F16;
    ByteBuffer qb = direct(q.length * 2), kb = direct(k.length * 2), vb = direct(v.length * 2);
    for (float x : q) qb.putShort(toHalf(x));
    for (float x : k) kb.putShort(toHalf(x));
    for (float x : v) vb.putShort(toHalf(x));
    qb.flip();
    kb.flip();
    vb.flip();
    FloatBuffer ob = direct((5 + 7 * 4 * 6) * 4).asFloatBuffer();
    ob.position(5);
    RelAttn.attention(p, qb, kb, vb, ob);
    float[] fromBuffer = new float[7 * 4 * 6];
    ob.get(fromBuffer);
    float[] fromArrays = new float[7 * 4 * 6];
    RelAttn.Params pf = params(RelAttn.ALIBI, true);
    RelAttn.attention(pf, q, k, v, fromArrays);
    check(Arrays.equals(fromBuffer, fromArrays), "F16 buffers differ from F32 arrays");
    // F16 output in a ShortBuffer.
    p.outDtype = RelAttn.F16;
    ShortBuffer hb = direct(7 * 4 * 6 * 2).asShortBuffer();
    RelAttn.attention(p, qb, kb, vb, hb);
    float[] halves = new float[7 * 4 * 6];
    for (int i = 0; i < halves.length; ++i) halves[i] = fromHalf(hb.get(i));
    check(maxError(halves, reference(pf, q, k, v)) <= 2.5e-4, "F16 output");

    // Threads: bit-identical to one thread; concurrent calls from Java threads.
    RelAttn.Params big = new RelAttn.Params(96, 96, 8, 2, 32);
    big.scheme = RelAttn.ALIBI;
    big.causal = true;
    final float[] bq = random(rng, 96 * 8 * 32), bk = random(rng, 96 * 2 * 32);
    final float[] one = new float[96 * 8 * 32], three = new float[96 * 8 * 32];
    RelAttn.attention(big, bq, bk, bk, one);
    big.threads = 3;
    RelAttn.attention(big, bq, bk, bk, three);
    check(Arrays.equals(one, three), "threads = 3 differs from 1 thread");
    final RelAttn.Params shared = big;
    Thread[] workers = new Thread[4];
    final boolean[] same = new boolean[workers.length];
    for (int t = 0; t < workers.length; ++t) {
      final int index = t;
      workers[t] = new Thread(() -> {
        float[] out = new float[96 * 8 * 32];
        boolean ok = true;
        for (int n = 0; n < 10; ++n) {
          RelAttn.attention(shared, bq, bk, bk, out);
          ok &= Arrays.equals(out, one);
        }
        same[index] = ok;
      });
      workers[t].start();
    }
    for (Thread w : workers) w.join();
    for (boolean ok : same) check(ok, "a concurrent call differs");

    // Helpers.
    final float[] slopes = {0.25f, 0.0625f, 0.015625f, 0.00390625f};
    check(Arrays.equals(RelAttn.alibiSlopes(4, 8f), slopes), "alibiSlopes");
    check(RelAttn.t5Bucket(-200, 32, 128, true) == 15 && RelAttn.t5Bucket(5, 32, 128, true) == 21
          && RelAttn.t5Bucket(Long.MIN_VALUE, 32, 128, true) == 15, "t5Bucket");
    check(RelAttn.version().equals(System.getProperty("relattn.version")), "version");

    // Errors: thrown, naming the argument, output untouched.
    final RelAttn.Params ok = params(RelAttn.NONE, false);
    final float[] out = new float[7 * 4 * 6];
    Arrays.fill(out, 42f);
    expect(IllegalArgumentException.class,
           () -> RelAttn.attention(ok, Arrays.copyOf(q, 10), k, v, out), "q: 10 elements");
    final RelAttn.Params wide = params(RelAttn.NONE, false);
    wide.headDim = 300;
    wide.nQ = wide.nKv = 1;
    final float[] w = new float[4 * 300];
    RelAttnException e = expect(RelAttnException.class,
                                () -> RelAttn.attention(wide, w, w, w, out), "head_dim = 300");
    check(e.status == 2, "status of a bad head_dim");
    final RelAttn.Params t5 = params(RelAttn.T5, false);
    t5.table = new float[4 * 32];
    t5.maxDistance = -1;
    expect(RelAttnException.class, () -> RelAttn.attention(t5, q, k, v, out), "max_distance = -1");
    final RelAttn.Params f16 = params(RelAttn.NONE, false);
    f16.dtype = RelAttn.F16;
    final ByteBuffer heap = ByteBuffer.allocate(1024).order(ByteOrder.nativeOrder());
    expect(IllegalArgumentException.class, () -> RelAttn.attention(f16, heap, kb, vb, ob),
           "not a direct buffer");
    expect(IllegalArgumentException.class, () -> RelAttn.attention(f16,
        ByteBuffer.allocateDirect(1024).order(ByteOrder.BIG_ENDIAN == ByteOrder.nativeOrder()
            ? ByteOrder.LITTLE_ENDIAN : ByteOrder.BIG_ENDIAN), kb, vb, ob), "byte order");
    expect(IllegalArgumentException.class, () -> RelAttn.attention(f16,
        direct(1024).asFloatBuffer(), kb, vb, ob), "FloatBuffer does not hold F16");
    expect(IllegalArgumentException.class, () -> RelAttn.attention(f16,
        (ByteBuffer) direct(1024).position(1), kb, vb, ob), "not a multiple of the element size");
    expect(IllegalArgumentException.class, () -> RelAttn.attention(f16, qb, kb,
        direct(10), ob), "v (bytes from its position): 10 elements");
    final RelAttn.Params zero = params(RelAttn.NONE, false);
    zero.threads = 0;
    expect(IllegalArgumentException.class, () -> RelAttn.attention(zero, q, k, v, out),
           "threads: must be >= 1");
    expect(RelAttnException.class, () -> RelAttn.alibiSlopes(0, 8f), "n_heads = 0");
    boolean untouched = true;
    for (float x : out) untouched &= x == 42f;
    check(untouched, "a failed call wrote the output");

    System.out.println("RelAttnTest: " + checks + " checks passed (relattn " + RelAttn.version()
                       + ")");
  }
}
