package org.relattn;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.ShortBuffer;
import java.util.Arrays;
import java.util.Random;

/**
 * The JNI glue under the host JDK (run by ctest): RelAttn against a plain Java reference in
 * double for every scheme (Shaw's vector form included), both masks, arrays and direct buffers
 * (F32, F16 and BF16), threads, RoPE (against inputs rotated here by the formula, for each
 * scaling family), int8 (against the float call on the dequantised values), position arrays,
 * segment ids, allowed pairs, first valid key and lse (against the reference), merge (against
 * the whole call), KVCache (against the plain call over the same, or the same rounded, K and
 * V; saved and restored bit for bit; corrupted bytes rejected), and the error paths. Exits
 * non-zero on the first failure.
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

  private static long qPosition(RelAttn.Params p, int i) {
    return p.qPositions != null ? p.qPositions[i] : p.qStart + i;
  }

  private static long kPosition(RelAttn.Params p, int j) {
    return p.kPositions != null ? p.kPositions[j] : p.kStart + j;
  }

  /** p's masks: may query i see key j, rel = key position - query position? */
  private static boolean visible(RelAttn.Params p, int i, int j, long rel) {
    boolean visible = !(p.causal && rel > 0) && !(p.validKv > 0 && j >= p.validKv)
        && j >= p.firstValidKv;
    if (p.window > 0) visible &= p.causal ? -rel < p.window : Math.abs(rel) < p.window;
    if (p.qSegments != null) visible &= p.qSegments[i] == p.kSegments[j];
    if (p.allowed != null && j >= p.allowedKeyOffset) {
      final long b = j - p.allowedKeyOffset;
      visible &= (p.allowed[(int) (i * p.allowedRowWords + b / 64)] >>> (b % 64) & 1) != 0;
    }
    return visible;
  }

  private static double[] reference(RelAttn.Params p, float[] q, float[] k, float[] v) {
    return reference(p, q, k, v, null);
  }

  /** The attention p describes in double; lse (null: not wanted) [nQ][heads] receives each
   *  row's ln(sum of e^score + e^sink). */
  private static double[] reference(RelAttn.Params p, float[] q, float[] k, float[] v,
                                    double[] lse) {
    final int d = p.headDim, vd = p.vDim(), group = p.heads / p.kvHeads;
    final double scale = p.scale != 0 ? p.scale : 1 / Math.sqrt(d);
    double[] out = new double[p.nQ * p.heads * vd];
    for (int i = 0; i < p.nQ; ++i) {
      for (int h = 0; h < p.heads; ++h) {
        final int kh = h / group;
        double[] s = new double[p.nKv];
        double max = Double.NEGATIVE_INFINITY;
        for (int j = 0; j < p.nKv; ++j) {
          final long rel = kPosition(p, j) - qPosition(p, i);
          double dot = 0;
          for (int e = 0; e < d; ++e) {
            dot += q[(i * p.heads + h) * d + e] * k[(j * p.kvHeads + kh) * d + e];
          }
          if (p.scheme == RelAttn.SHAW_VECTOR) {  // q.(k + a[clip(rel) + shawK])
            final int row = (p.shawPerHead ? h * (2 * p.shawK + 1) : 0)
                + (int) Math.max(-p.shawK, Math.min(p.shawK, rel)) + p.shawK;
            for (int e = 0; e < d; ++e) dot += q[(i * p.heads + h) * d + e] * p.table[row * d + e];
          }
          double content = scale * dot;
          if (p.softcap > 0) content = p.softcap * Math.tanh(content / p.softcap);
          s[j] = visible(p, i, j, rel) ? content + bias(p, h, rel) : Double.NEGATIVE_INFINITY;
          max = Math.max(max, s[j]);
        }
        final double sink = p.sinks != null ? p.sinks[h] : Double.NEGATIVE_INFINITY;
        if (max == Double.NEGATIVE_INFINITY) {  // sees no key: zeros
          if (lse != null) lse[i * p.heads + h] = sink;
          continue;
        }
        max = Math.max(max, sink);
        double sum = Math.exp(sink - max);
        for (int j = 0; j < p.nKv; ++j) sum += (s[j] = Math.exp(s[j] - max));
        if (lse != null) lse[i * p.heads + h] = max + Math.log(sum);
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

  private static short toHalf(float x) {  // for values exact in f16 (random(), roundHalf())
    if (x == 0) return 0;
    final int bits = Float.floatToIntBits(x);
    if (Math.abs(x) < 0x1p-14f) {  // subnormal
      return (short) (((bits >>> 16) & 0x8000) | (int) (Math.abs(x) * 0x1p24f));
    }
    final int exponent = ((bits >>> 23) & 0xff) - 127 + 15;
    return (short) (((bits >>> 16) & 0x8000) | (exponent << 10) | ((bits >>> 13) & 0x3ff));
  }

  private static short[] halves(float[] x) {
    short[] h = new short[x.length];
    for (int i = 0; i < x.length; ++i) h[i] = toHalf(x[i]);
    return h;
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

  private static float[] uniform(Random rng, int n) {  // not exact in f16 or int8: rounding shows
    float[] a = new float[n];
    for (int i = 0; i < n; ++i) a[i] = rng.nextFloat() * 2 - 1;
    return a;
  }

  private static float maxError(float[] got, float[] expected) {
    float err = 0;
    for (int i = 0; i < got.length; ++i) err = Math.max(err, Math.abs(got[i] - expected[i]));
    return err;
  }

  /** x rounded to the nearest binary16 (ties to even), subnormals included. */
  private static float roundHalf(float x) {
    if (x == 0) return x;
    final double ulp = Math.scalb(1.0, Math.max(Math.getExponent(x), -14) - 10);
    return (float) (Math.rint(x / ulp) * ulp);
  }

  /** The thetas of rope's family as relattn.h defines them, d = rotary dims, in double. */
  private static double[] thetas(RelAttn.Rope r, int d) {
    double base = r.base != 0 ? r.base : 10000;
    if (r.scaling == RelAttn.SCALING_NTK) base *= Math.pow(r.factor, d / (d - 2.0));
    final double L = r.originalMaxPosition;
    double lo = 0, hi = 0;
    if (r.scaling == RelAttn.SCALING_YARN) {
      final double fast = r.betaFast != 0 ? r.betaFast : 32;
      final double slow = r.betaSlow != 0 ? r.betaSlow : 1, ln = 2 * Math.log(base);
      lo = Math.max(Math.floor(d * Math.log(L / (2 * Math.PI * fast)) / ln), 0);
      hi = Math.min(Math.ceil(d * Math.log(L / (2 * Math.PI * slow)) / ln), d - 1);
      if (hi == lo) hi += 0.001;
    }
    double[] theta = new double[d / 2];
    for (int i = 0; i < d / 2; ++i) {
      final double t0 = Math.pow(base, -2.0 * i / d), w = 2 * Math.PI / t0;
      double t = t0;
      switch (r.scaling) {
        case RelAttn.SCALING_LINEAR:
          t = t0 / r.factor;
          break;
        case RelAttn.SCALING_LLAMA3:
          if (w > L / r.lowFreqFactor) {
            t = t0 / r.factor;
          } else if (w >= L / r.highFreqFactor) {
            final double s = (L / w - r.lowFreqFactor) / (r.highFreqFactor - r.lowFreqFactor);
            t = (1 - s) * t0 / r.factor + s * t0;
          }
          break;
        case RelAttn.SCALING_LONGROPE:
          t = t0 / (r.sequenceLength > L ? r.longFactor : r.shortFactor)[i];
          break;
        case RelAttn.SCALING_INV_FREQ:
          t = r.invFreq[i];
          break;
        case RelAttn.SCALING_YARN:
          final double ramp = Math.max(0, Math.min(1, (i - lo) / (hi - lo)));
          t = ramp * t0 / r.factor + (1 - ramp) * t0;
          break;
        default:
          break;
      }
      theta[i] = t / (r.linearScale != 0 ? r.linearScale : 1);
    }
    return theta;
  }

  /** x [tokens][heads][dim] rotated by rope at positions start + t, in double. */
  private static float[] rotate(float[] x, int heads, int dim, long start, RelAttn.Rope r) {
    final int rd = r.rotaryDims != 0 ? r.rotaryDims : dim, half = rd / 2;
    final double[] theta = thetas(r, rd);
    final double L = r.originalMaxPosition, s = (double) r.maxPosition / L;
    final double g = r.attentionFactor != 0 ? r.attentionFactor
        : r.scaling == RelAttn.SCALING_YARN && r.factor > 1 ? 0.1 * Math.log(r.factor) + 1
        : r.scaling == RelAttn.SCALING_LONGROPE && s > 1 ? Math.sqrt(1 + Math.log(s) / Math.log(L))
        : 1;
    float[] y = x.clone();
    for (int row = 0; row < x.length / dim; ++row) {
      final long position = start + row / heads;
      for (int i = 0; i < half; ++i) {
        final int a = row * dim + (r.pairing == RelAttn.ROPE_HALVES ? i : 2 * i);
        final int b = row * dim + (r.pairing == RelAttn.ROPE_HALVES ? i + half : 2 * i + 1);
        final double angle = position * theta[i], c = Math.cos(angle), sn = Math.sin(angle);
        y[a] = (float) (g * (x[a] * c - x[b] * sn));
        y[b] = (float) (g * (x[a] * sn + x[b] * c));
      }
    }
    return y;
  }

  /** An Int8's values times their row scales, as floats. */
  private static float[] dequantize(RelAttn.Int8 t, int dim) {
    float[] x = new float[t.values.length];
    for (int i = 0; i < x.length; ++i) x[i] = t.scales[i / dim] * t.values[i];
    return x;
  }

  /** x's rows of dim (a multiple of 32) through ggml's q4_0 as relattn.h describes it:
   *  d = m / -8 (m the value of largest |x| in the block), stored as f16; nibble =
   *  min(15, int(x / d + 8.5)); value = (nibble - 8) * d. */
  private static float[] q4(float[] x) {
    float[] y = new float[x.length];
    for (int b = 0; b < x.length; b += 32) {
      float m = 0;
      for (int i = b; i < b + 32; ++i) if (Math.abs(x[i]) > Math.abs(m)) m = x[i];
      final float d = m / -8, id = d != 0 ? 1 / d : 0, stored = roundHalf(d);
      for (int i = b; i < b + 32; ++i) y[i] = (Math.min(15, (int) (x[i] * id + 8.5f)) - 8) * stored;
    }
    return y;
  }

  /** q4_0 blocks [rows][dim / 32 * 18] decoded by relattn.h's description: value i of a block
   *  is (nibble - 8) * d, its low nibble in byte i, value i + 16 in the high one. */
  private static float[] dequantizeQ4(byte[] blocks) {
    float[] x = new float[blocks.length / 18 * 32];
    for (int b = 0; b < blocks.length / 18; ++b) {
      final float d = fromHalf((short) ((blocks[b * 18] & 0xff) | (blocks[b * 18 + 1] & 0xff) << 8));
      for (int i = 0; i < 16; ++i) {
        final int byt = blocks[b * 18 + 2 + i] & 0xff;
        x[b * 32 + i] = ((byt & 15) - 8) * d;
        x[b * 32 + 16 + i] = ((byt >> 4) - 8) * d;
      }
    }
    return x;
  }

  /** Where needle occurs in haystack, -1 if nowhere. */
  private static int indexOf(byte[] haystack, byte[] needle) {
    outer:
    for (int i = 0; i + needle.length <= haystack.length; ++i) {
      for (int j = 0; j < needle.length; ++j) {
        if (haystack[i + j] != needle[j]) continue outer;
      }
      return i;
    }
    return -1;
  }

  private static void testQ4(Random rng) throws Exception {
    // f16 rounding of the block scales: nearest even, subnormals, overflow; and the JDK's
    // Float.floatToFloat16 where it has one (Java 20).
    final float[] ties = {1 + 0x1p-11f, 1 + 3 * 0x1p-11f, 0x1p-25f, 3 * 0x1p-25f, 65519.99f,
                          65520f, -65504f, 0x1p-14f, 0x1.ff8p-15f, 0x1.ffcp-15f, 0f, -0f, 1e-30f, 3e5f};
    final short[] expectedTies = {0x3c00, 0x3c02, 0, 2, 0x7bff, 0x7c00, (short) 0xfbff, 0x400,
                                  0x3ff, 0x400, 0, (short) 0x8000, 0, 0x7c00};
    for (int i = 0; i < ties.length; ++i) {
      check(RelAttn.f32ToF16(ties[i]) == expectedTies[i], "f32ToF16(" + ties[i] + ")");
    }
    java.lang.reflect.Method jdk = null;
    try {
      jdk = Float.class.getMethod("floatToFloat16", float.class);
    } catch (NoSuchMethodException e) {
      // Java < 20: f32ToF16 alone
    }
    for (int i = 0; i < 200000; ++i) {
      final float x = Float.intBitsToFloat(rng.nextInt()) % 70000f;
      if (!Float.isFinite(x)) continue;
      final short h = RelAttn.f32ToF16(x);
      final float r = roundHalf(x);
      final short expected = Math.abs(x) >= 65520f ? (short) (x < 0 ? 0xfc00 : 0x7c00)
          : r == 0 ? (short) (Float.floatToRawIntBits(x) < 0 ? 0x8000 : 0) : toHalf(r);
      check(h == expected, "f32ToF16(" + x + ") = " + h + ", expected " + expected);
      if (jdk != null) check((Short) jdk.invoke(null, x) == h, "Float.floatToFloat16(" + x + ")");
    }
    // quantizeQ4 against a Q4 cache's stored rows (the library's quantisation), byte for byte:
    // a zero block, a tie of |max| (the first wins), f16-rounded scales.
    final int n = 5, d = 64, row = d / 32 * 18;
    final float[] k = uniform(rng, n * 2 * d), v = uniform(rng, n * 2 * d);
    Arrays.fill(k, 32, 64, 0f);
    for (int i = 64; i < 96; ++i) k[i] *= 0.5f;
    k[70] = 0.75f;
    k[75] = -0.75f;
    final byte[] kb = RelAttn.quantizeQ4(k, n, 2, d), vb = RelAttn.quantizeQ4(v, n, 2, d);
    check(kb.length == n * 2 * row && vb.length == n * 2 * row, "quantizeQ4 length");
    KVCache cache = new KVCache(2, d, d, 8, RelAttn.Q4, RelAttn.Q4, false, null);
    cache.append(k, v);
    final byte[] stored = cache.toBytes();
    for (int r = 0; r < n * 2; ++r) {
      check(indexOf(stored, Arrays.copyOfRange(kb, r * row, (r + 1) * row)) >= 0,
            "quantizeQ4 K row " + r + " is not among the cache's bytes");
      check(indexOf(stored, Arrays.copyOfRange(vb, r * row, (r + 1) * row)) >= 0,
            "quantizeQ4 V row " + r + " is not among the cache's bytes");
    }
    // ... and against relattn.h's rule applied in this test (q4()), decoded independently.
    check(Arrays.equals(dequantizeQ4(kb), q4(k)), "quantizeQ4 K values");
    check(Arrays.equals(dequantizeQ4(vb), q4(v)), "quantizeQ4 V values");
    check(kb[18] == 0 && kb[19] == (byte) 0x80, "zero block: d = -0");
    check(dequantizeQ4(kb)[70] == 0.75f && dequantizeQ4(kb)[75] == -0.65625f,
          "tie of |max|: m is the first (d = -0.75 / 8: nibbles 0 and 15)");
    // Attention with Q4 K and / or V against the reference on the values they hold.
    final int vd = 32;
    final float[] q = uniform(rng, 3 * 4 * d), v32 = uniform(rng, n * 2 * vd);
    final byte[] v32b = RelAttn.quantizeQ4(v32, n, 2, vd);
    final float[] kq = dequantizeQ4(kb), vq = dequantizeQ4(v32b);
    RelAttn.Params p = new RelAttn.Params(3, n, 4, 2, d);
    p.vHeadDim = vd;
    p.scheme = RelAttn.ALIBI;
    p.causal = true;
    p.qStart = 2;
    float[] out = new float[3 * 4 * vd];
    final RelAttn.Q4Blocks k4 = new RelAttn.Q4Blocks(kb), v4 = new RelAttn.Q4Blocks(v32b);
    RelAttn.attention(p, q, k4, v4, out);
    check(maxError(out, reference(p, q, kq, vq)) <= 1e-5, "Q4 k, v: error "
          + maxError(out, reference(p, q, kq, vq)));
    RelAttn.attention(p, q, k4, v32, out);
    check(maxError(out, reference(p, q, kq, v32)) <= 1e-5, "Q4 k: error "
          + maxError(out, reference(p, q, kq, v32)));
    RelAttn.attention(p, q, k, v4, out);
    check(maxError(out, reference(p, q, k, vq)) <= 1e-5, "Q4 v: error "
          + maxError(out, reference(p, q, k, vq)));
    final RelAttn.Int8 qi = RelAttn.quantizeI8(q, 3, 4, d), ki = RelAttn.quantizeI8(k, n, 2, d);
    RelAttn.attention(p, qi, ki, v4, out);
    check(maxError(out, reference(p, dequantize(qi, d), dequantize(ki, d), vq)) <= 1e-5,
          "I8 q, k, Q4 v: error " + maxError(out, reference(p, dequantize(qi, d),
                                                             dequantize(ki, d), vq)));
    // The Q4 cache against the Q4 tensors of the same blocks.
    RelAttn.Params pc = new RelAttn.Params(3, 0, 4, 0, 0);
    pc.scheme = RelAttn.ALIBI;
    pc.causal = true;
    float[] fromCache = new float[3 * 4 * d], fromTensors = new float[3 * 4 * d];
    cache.attention(pc, 2, q, fromCache);
    RelAttn.Params pt = new RelAttn.Params(3, n, 4, 2, d);
    pt.scheme = RelAttn.ALIBI;
    pt.causal = true;
    pt.qStart = 2;
    RelAttn.attention(pt, q, k4, new RelAttn.Q4Blocks(vb), fromTensors);
    check(maxError(fromCache, fromTensors) <= 1e-5, "Q4 cache against Q4 tensors: error "
          + maxError(fromCache, fromTensors));
    // Errors: thrown, naming the argument; nothing written.
    expect(IllegalArgumentException.class, () -> RelAttn.quantizeQ4(new float[40], 1, 1, 40),
           "dim = 40: must be a multiple of 32");
    expect(IllegalArgumentException.class, () -> RelAttn.quantizeQ4(new float[60], 1, 2, 32),
           "x: 60 elements, the shapes need 64");
    expect(NullPointerException.class, () -> RelAttn.quantizeQ4(null, 1, 2, 32), "x");
    final float[] bad = k.clone();
    bad[d + 3] = Float.NaN;
    RelAttnException e = expect(RelAttnException.class, () -> RelAttn.quantizeQ4(bad, n, 2, d),
                                "x (token 0, head 1, 3) = NaN: must be finite");
    check(e.status == 17, "status of a non-finite value to quantise");
    bad[d + 3] = 6e5f;
    e = expect(RelAttnException.class, () -> RelAttn.quantizeQ4(bad, n, 2, d),
               "x (token 0, head 1, 3) = 600000.0: |x| / 8 overflows");
    check(e.status == 20, "status of a value beyond the f16 scale");
    Arrays.fill(out, 42f);
    final float[] o = out;
    expect(IllegalArgumentException.class, () -> RelAttn.attention(p, q,
        new RelAttn.Q4Blocks(Arrays.copyOf(kb, 100)), v32, o), "k.blocks: 100 elements");
    final RelAttn.Params p8 = params(RelAttn.NONE, false);
    expect(IllegalArgumentException.class, () -> RelAttn.attention(p8, new float[7 * 4 * 8],
        new RelAttn.Q4Blocks(new byte[1000]), new float[7 * 2 * 6], new float[7 * 4 * 6]),
        "k: Q4 blocks need a dim that is a multiple of 32, not 8");
    expect(NullPointerException.class, () -> new RelAttn.Q4Blocks(null), "blocks");
    for (float x : out) check(x == 42f, "a failed Q4 call wrote the output");
  }

  private static void testRope(Random rng) {
    final float[] q = uniform(rng, 7 * 4 * 8), k = uniform(rng, 7 * 2 * 8);
    final float[] v = uniform(rng, 7 * 2 * 6);
    RelAttn.Rope[] ropes = new RelAttn.Rope[9];
    for (int i = 0; i < ropes.length; ++i) ropes[i] = new RelAttn.Rope(RelAttn.ROPE_HALVES);
    ropes[1].pairing = RelAttn.ROPE_INTERLEAVED;
    ropes[1].rotaryDims = 4;  // partial
    ropes[1].base = 500f;
    ropes[2].scaling = RelAttn.SCALING_LINEAR;
    ropes[2].factor = 4f;
    ropes[3].scaling = RelAttn.SCALING_NTK;
    ropes[3].factor = 3f;
    ropes[4].scaling = RelAttn.SCALING_LLAMA3;
    ropes[4].factor = 8f;
    ropes[4].lowFreqFactor = 1f;
    ropes[4].highFreqFactor = 4f;
    ropes[4].originalMaxPosition = 64;
    ropes[5].scaling = RelAttn.SCALING_YARN;
    ropes[5].factor = 4f;
    ropes[5].originalMaxPosition = 64;
    ropes[6].linearScale = 2f;
    ropes[6].attentionFactor = 1.25f;
    ropes[7].scaling = RelAttn.SCALING_LONGROPE;
    ropes[7].shortFactor = new double[] {1, 1.5, 2, 4};
    ropes[7].longFactor = new double[] {1, 2, 8, 16};
    ropes[7].originalMaxPosition = 64;
    ropes[7].maxPosition = 256;
    ropes[7].sequenceLength = 128;  // > 64: the long factors
    ropes[8].scaling = RelAttn.SCALING_INV_FREQ;
    ropes[8].invFreq = new double[] {1, 0.3, 0.05, 0.001};
    for (int i = 0; i < ropes.length; ++i) {
      for (long start : new long[] {5, 1_000_000_000L}) {
        RelAttn.Params p = params(RelAttn.ALIBI, true);
        p.qStart = start;
        p.kStart = start - 2;
        p.rope = ropes[i];
        float[] got = new float[7 * 4 * 6], expected = new float[7 * 4 * 6];
        RelAttn.attention(p, q, k, v, got);
        p.rope = new RelAttn.Rope();
        RelAttn.attention(p, rotate(q, 4, 8, p.qStart, ropes[i]),
                          rotate(k, 2, 8, p.kStart, ropes[i]), v, expected);
        final float err = maxError(got, expected);
        check(err <= 1e-5, "rope " + i + " at " + start + ": error " + err);
      }
    }
    // Errors: the library names the field; the output stays untouched.
    final float[] out = new float[7 * 4 * 6];
    Arrays.fill(out, 42f);
    final RelAttn.Params odd = params(RelAttn.NONE, false);
    odd.rope = new RelAttn.Rope(RelAttn.ROPE_HALVES);
    odd.rope.rotaryDims = 5;
    RelAttnException e = expect(RelAttnException.class, () -> RelAttn.attention(odd, q, k, v, out),
                                "rotary_dims = 5");
    check(e.status == 21, "status of a bad rotary_dims");
    odd.rope = new RelAttn.Rope(RelAttn.ROPE_HALVES);
    odd.rope.scaling = RelAttn.SCALING_LINEAR;  // factor 0
    expect(RelAttnException.class, () -> RelAttn.attention(odd, q, k, v, out),
           "rope.scaling.factor = 0");
    odd.rope.pairing = 9;
    expect(RelAttnException.class, () -> RelAttn.attention(odd, q, k, v, out), "rope.pairing = 9");
    odd.rope.pairing = RelAttn.ROPE_HALVES;
    odd.rope.scaling = RelAttn.SCALING_INV_FREQ;
    expect(RelAttnException.class, () -> RelAttn.attention(odd, q, k, v, out), "inv_freq");
    odd.rope.invFreq = new double[] {1, 0.5, 0.25};  // 4 pairs
    expect(IllegalArgumentException.class, () -> RelAttn.attention(odd, q, k, v, out),
           "rope.invFreq: 3 elements, the shapes need 4");
    expect(IllegalArgumentException.class, () -> new KVCache(2, 8, 8, 4, RelAttn.F32,
        RelAttn.F32, false, odd.rope), "rope.invFreq: 3 elements, the shapes need 4");
    odd.rope = null;
    expect(NullPointerException.class, () -> RelAttn.attention(odd, q, k, v, out), "rope");
    for (float x : out) check(x == 42f, "a failed rope call wrote the output");
  }

  private static void testShawVector(Random rng) {
    final float[] q = random(rng, 7 * 4 * 8), k = random(rng, 7 * 2 * 8);
    final float[] v = random(rng, 7 * 2 * 6);
    for (boolean perHead : new boolean[] {false, true}) {
      for (boolean causal : new boolean[] {false, true}) {
        RelAttn.Params p = params(RelAttn.SHAW_VECTOR, causal);
        p.shawK = 2;
        p.shawPerHead = perHead;
        p.table = random(rng, (perHead ? 4 : 1) * 5 * 8);
        float[] out = new float[7 * 4 * 6];
        RelAttn.attention(p, q, k, v, out);
        double err = maxError(out, reference(p, q, k, v));
        check(err <= 5e-6, "shaw vector perHead " + perHead + " causal " + causal + ": " + err);
      }
    }
    final float[] out = new float[7 * 4 * 6];
    Arrays.fill(out, 42f);
    final RelAttn.Params p = params(RelAttn.SHAW_VECTOR, false);
    p.shawK = 65;
    p.table = new float[131 * 8];
    expect(IllegalArgumentException.class, () -> RelAttn.attention(p, q, k, v, out),
           "shawK = 65: must be in 0..64");
    p.shawK = 2;
    p.shawPerHead = true;
    p.table = new float[5 * 8];
    expect(IllegalArgumentException.class, () -> RelAttn.attention(p, q, k, v, out),
           "table: 40 elements, the shapes need 160");
    p.table = new float[4 * 5 * 8];
    p.table[17] = Float.NaN;
    expect(RelAttnException.class, () -> RelAttn.attention(p, q, k, v, out),
           "bias.shaw_vector.table[17] = nan");
    for (float x : out) check(x == 42f, "a failed Shaw vector call wrote the output");
  }

  private static void testInt8(Random rng) {
    final float[] q = uniform(rng, 7 * 4 * 8), k = uniform(rng, 7 * 2 * 8);
    final float[] v = uniform(rng, 7 * 2 * 6);
    final RelAttn.Int8 qi = RelAttn.quantizeI8(q, 7, 4, 8), ki = RelAttn.quantizeI8(k, 7, 2, 8);
    final RelAttn.Int8 vi = RelAttn.quantizeI8(v, 7, 2, 6);
    // quantizeI8 by its definition: scale = max|row| / 127, |x - scale * value| <= scale / 2.
    for (int row = 0; row < 7 * 4; ++row) {
      float max = 0;
      for (int e = 0; e < 8; ++e) max = Math.max(max, Math.abs(q[row * 8 + e]));
      check(Math.abs(qi.scales[row] - max / 127) <= 1e-7 * max, "quantizeI8 scale");
      for (int e = 0; e < 8; ++e) {
        final float err = Math.abs(q[row * 8 + e] - qi.scales[row] * qi.values[row * 8 + e]);
        check(err <= qi.scales[row] * 0.5001f, "quantizeI8 rounding");
      }
    }
    final float[] qd = dequantize(qi, 8), kd = dequantize(ki, 8), vd = dequantize(vi, 6);
    for (boolean causal : new boolean[] {false, true}) {
      RelAttn.Params p = params(RelAttn.ALIBI, causal);
      float[] got = new float[7 * 4 * 6], expected = new float[7 * 4 * 6];
      RelAttn.attention(p, qd, kd, v, expected);
      RelAttn.attention(p, qi, ki, v, got);
      check(maxError(got, expected) <= 1e-5, "I8 q, k: error " + maxError(got, expected));
      RelAttn.attention(p, qi, ki, vi, got);
      RelAttn.attention(p, qd, kd, vd, expected);
      check(maxError(got, expected) <= 1e-5, "I8 q, k, v: error " + maxError(got, expected));
      RelAttn.attention(p, q, ki, vi, got);
      RelAttn.attention(p, q, kd, vd, expected);
      check(maxError(got, expected) <= 1e-5, "F32 q, I8 k, v: error " + maxError(got, expected));
      RelAttn.attention(p, q, ki, v, got);
      RelAttn.attention(p, q, kd, v, expected);
      check(maxError(got, expected) <= 1e-5, "F32 q, I8 k: error " + maxError(got, expected));
    }
    // Errors: nothing written.
    final float[] bad = q.clone();
    bad[9] = Float.POSITIVE_INFINITY;
    final byte[] values = new byte[q.length];
    final float[] scales = new float[7 * 4];
    Arrays.fill(values, (byte) 5);
    Arrays.fill(scales, 42f);
    RelAttnException e = expect(RelAttnException.class,
        () -> RelAttn.quantizeI8(bad, 7, 4, 8, values, scales), "(token 0, head 1, 1) = inf");
    check(e.status == 17, "status of a non-finite value to quantise");
    for (byte b : values) check(b == 5, "a failed quantizeI8 wrote values");
    for (float x : scales) check(x == 42f, "a failed quantizeI8 wrote scales");
    expect(IllegalArgumentException.class, () -> RelAttn.quantizeI8(q, 7, 4, 8, values,
        new float[3]), "scales: 3 elements, the shapes need 28");
    final float[] out = new float[7 * 4 * 6];
    Arrays.fill(out, 42f);
    final RelAttn.Params p = params(RelAttn.NONE, false);
    expect(IllegalArgumentException.class, () -> RelAttn.attention(p, qi,
        new RelAttn.Int8(ki.values, new float[5]), v, out), "k.scales: 5 elements");
    final float[] hugeScales = ki.scales.clone();
    hugeScales[3] = 1e36f;  // 127 x 1e36 > 2^125: beyond the value range
    RelAttnException range = expect(RelAttnException.class, () -> RelAttn.attention(p, qi,
        new RelAttn.Int8(ki.values, hugeScales), v, out), "max|k| = 1.27e+38");
    check(range.status == 20, "status of an int8 k beyond the value range");
    for (float x : out) check(x == 42f, "a failed int8 call wrote the output");
  }

  /** Plain attention of q [nQ][4][d] at qStart over k, v [n][2][d] at 0..n-1, ALiBi causal. */
  private static float[] plain(int nQ, long qStart, int n, int d, float[] q, float[] k, float[] v,
                               RelAttn.Rope rope) {
    RelAttn.Params p = new RelAttn.Params(nQ, n, 4, 2, d);
    p.scheme = RelAttn.ALIBI;
    p.causal = true;
    p.qStart = qStart;
    if (rope != null) p.rope = rope;
    float[] out = new float[nQ * 4 * d];
    RelAttn.attention(p, q, k, v, out);
    return out;
  }

  /** Decode over cache: nQ queries at nextPosition(), ALiBi causal. */
  private static float[] decode(KVCache cache, int nQ, float[] q) {
    RelAttn.Params p = new RelAttn.Params(nQ, 0, 4, 0, 0);
    p.scheme = RelAttn.ALIBI;
    p.causal = true;
    float[] out = new float[nQ * 4 * cache.vHeadDim];
    cache.attention(p, q, out);
    return out;
  }

  private static float[] rows(float[] x, int from, int to, int row) {
    return Arrays.copyOfRange(x, from * row, to * row);
  }

  private static void testKVCache(Random rng) throws Exception {
    final int n = 9, d = 32;
    final float[] k = uniform(rng, n * 2 * d), v = uniform(rng, n * 2 * d);
    final float[] q = uniform(rng, 2 * 4 * d);
    // F32 storage, appended in two parts: decode equals the plain call over the same K, V.
    KVCache f32 = new KVCache(2, d, 0, 16, RelAttn.F32, RelAttn.F32, false, null);
    f32.append(rows(k, 0, 5, 2 * d), rows(v, 0, 5, 2 * d));
    f32.append(rows(k, 5, n, 2 * d), rows(v, 5, n, 2 * d));
    check(f32.length() == n && f32.nextPosition() == n && f32.vHeadDim == d, "length");
    float err = maxError(decode(f32, 2, q), plain(2, n, n, d, q, k, v, null));
    check(err <= 1e-6, "F32 cache: error " + err);
    RelAttn.Params at = new RelAttn.Params(1, n, 4, 2, d);  // explicit qStart and shapes
    at.scheme = RelAttn.ALIBI;
    at.causal = true;
    float[] out = new float[4 * d];
    f32.attention(at, 3, rows(q, 0, 1, 4 * d), out);
    err = maxError(out, plain(1, 3, n, d, rows(q, 0, 1, 4 * d), k, v, null));
    check(err <= 1e-6, "F32 cache at qStart 3: error " + err);
    // F16 storage: the plain call over K, V rounded to f16.
    final float[] kh = k.clone(), vh = v.clone();
    for (int i = 0; i < kh.length; ++i) {
      kh[i] = roundHalf(k[i]);
      vh[i] = roundHalf(v[i]);
    }
    KVCache f16 = new KVCache(2, d, d, 16, RelAttn.F16, RelAttn.F16, false, null);
    f16.append(k, v);
    err = maxError(decode(f16, 2, q), plain(2, n, n, d, q, kh, vh, null));
    check(err <= 1e-6, "F16 cache: error " + err);
    // RoPE: K rotated at append; attention defaults to the cache's rope.
    final RelAttn.Rope rope = new RelAttn.Rope(RelAttn.ROPE_HALVES);
    KVCache roped = new KVCache(2, d, d, 16, RelAttn.F32, RelAttn.F32, false, rope);
    roped.append(k, v);
    err = maxError(decode(roped, 2, q), plain(2, n, n, d, q, k, v, rope));
    check(err <= 1e-5, "RoPE cache: error " + err);
    check(roped.rope().pairing == RelAttn.ROPE_HALVES, "rope()");
    // I8 K and V: decode (<= 7 queries) quantises q per row: the plain int8 call.
    KVCache i8 = new KVCache(2, d, d, 16, RelAttn.I8, RelAttn.I8, false, null);
    i8.append(k, v);
    RelAttn.Params pi = new RelAttn.Params(2, n, 4, 2, d);
    pi.scheme = RelAttn.ALIBI;
    pi.causal = true;
    pi.qStart = n;
    float[] expected = new float[2 * 4 * d];
    RelAttn.attention(pi, RelAttn.quantizeI8(q, 2, 4, d), RelAttn.quantizeI8(k, n, 2, d),
                      RelAttn.quantizeI8(v, n, 2, d), expected);
    err = maxError(decode(i8, 2, q), expected);
    check(err <= 1e-5, "I8 cache: error " + err);
    out = new float[2 * 4 * d];
    RelAttn.Params pd = new RelAttn.Params(2, 0, 4, 0, 0);
    pd.scheme = RelAttn.ALIBI;
    pd.causal = true;
    i8.attention(pd, RelAttn.quantizeI8(q, 2, 4, d), out);
    err = maxError(out, expected);
    check(err <= 1e-5, "I8 queries over an I8 cache: error " + err);
    // Q4 K and V: the plain call over K, V through q4_0.
    KVCache q4 = new KVCache(2, d, d, 16, RelAttn.Q4, RelAttn.Q4, false, null);
    q4.append(k, v);
    err = maxError(decode(q4, 2, q), plain(2, n, n, d, q, q4(k), q4(v), null));
    check(err <= 1e-5, "Q4 cache: error " + err);
    // Truncate then append equals never having appended (bit for bit), F16 and ring alike.
    for (boolean ring : new boolean[] {false, true}) {
      KVCache a = new KVCache(2, d, d, 16, RelAttn.F16, RelAttn.F32, ring, rope);
      KVCache b = new KVCache(2, d, d, 16, RelAttn.F16, RelAttn.F32, ring, rope);
      a.append(rows(k, 0, 6, 2 * d), rows(v, 0, 6, 2 * d));
      a.append(uniform(rng, 2 * 2 * d), uniform(rng, 2 * 2 * d));
      a.truncate(6);
      check(a.length() == 6 && a.nextPosition() == 6, "truncate: length, nextPosition");
      a.append(rows(k, 6, n, 2 * d), rows(v, 6, n, 2 * d));
      b.append(k, v);
      check(Arrays.equals(decode(a, 2, q), decode(b, 2, q)), "truncate then append, ring " + ring);
      a.clear();
      check(a.length() == 0 && a.nextPosition() == 0, "clear");
    }
    // Ring: the last capacity tokens at their positions.
    KVCache ring = new KVCache(2, d, d, 4, RelAttn.F32, RelAttn.F32, true, null);
    ring.append(k, v);
    check(ring.length() == 4 && ring.nextPosition() == n, "ring length");
    RelAttn.Params pr = new RelAttn.Params(2, 4, 4, 2, d);
    pr.scheme = RelAttn.ALIBI;
    pr.causal = true;
    pr.qStart = n;
    pr.kStart = n - 4;
    RelAttn.attention(pr, q, rows(k, n - 4, n, 2 * d), rows(v, n - 4, n, 2 * d), expected);
    err = maxError(decode(ring, 2, q), expected);
    check(err <= 1e-6, "ring: error " + err);
    // F16 direct buffers (a ShortBuffer and a ByteBuffer) append as the f32 arrays do.
    KVCache fromBuffers = new KVCache(2, d, d, 16, RelAttn.F16, RelAttn.F16, false, null);
    ShortBuffer kb = direct(kh.length * 2).asShortBuffer();
    ByteBuffer vb = direct(vh.length * 2);
    for (int i = 0; i < kh.length; ++i) {
      kb.put(toHalf(kh[i]));
      vb.putShort(toHalf(vh[i]));
    }
    kb.flip();
    vb.flip();
    fromBuffers.append(RelAttn.F16, n, kb, vb);
    check(Arrays.equals(decode(fromBuffers, 2, q), decode(f16, 2, q)), "F16 buffer append");
    expect(IllegalArgumentException.class, () -> fromBuffers.append(RelAttn.F16, 1,
        direct(64).asShortBuffer(), vb), "k (bytes from its position): 64 elements");
    expect(IllegalArgumentException.class, () -> fromBuffers.append(RelAttn.I8, 1, kb, vb),
           "dtype = 2: buffers hold F32, F16 or BF16");
    check(fromBuffers.length() == n, "a failed buffer append changed the cache");
    // Ring with a sink token: token 0 and the last 3 (no bias: positions do not matter).
    KVCache sunk = new KVCache(2, d, d, 4, RelAttn.F32, RelAttn.F32, true, null, 1,
                               KVCache.SINK_POSITIONS_TEXT);
    sunk.append(k, v);
    final float[] ks = new float[4 * 2 * d], vs = new float[4 * 2 * d];
    System.arraycopy(k, 0, ks, 0, 2 * d);
    System.arraycopy(k, (n - 3) * 2 * d, ks, 2 * d, 3 * 2 * d);
    System.arraycopy(v, 0, vs, 0, 2 * d);
    System.arraycopy(v, (n - 3) * 2 * d, vs, 2 * d, 3 * 2 * d);
    RelAttn.Params none = new RelAttn.Params(2, 4, 4, 2, d);
    RelAttn.attention(none, q, ks, vs, expected);
    out = new float[2 * 4 * d];
    sunk.attention(new RelAttn.Params(2, 0, 4, 0, 0), q, out);
    err = maxError(out, expected);
    check(sunk.length() == 4 && err <= 1e-6, "ring with a sink token: error " + err);
    // Explicit positions.
    KVCache placed = new KVCache(2, d, d, 16, RelAttn.F32, RelAttn.F32, false, null);
    long[] positions = new long[n];
    for (int i = 0; i < n; ++i) positions[i] = 100 + i;
    placed.append(k, v, positions);
    check(placed.nextPosition() == 100 + n, "positions: nextPosition");
    check(Arrays.equals(decode(placed, 2, q), decode(f32, 2, q)), "positions shift nothing");
    // Concurrent attention calls while another thread appends and truncates.
    final KVCache shared = new KVCache(2, d, d, 64, RelAttn.F16, RelAttn.F16, false, null);
    shared.append(k, v);
    final float[] reference = new float[2 * 4 * d];
    RelAttn.Params before = new RelAttn.Params(2, 0, 4, 0, 0);  // queries at n - 2, n - 1
    before.scheme = RelAttn.ALIBI;
    before.causal = true;
    shared.attention(before, n - 2, q, reference);
    final boolean[] same = {true, true, true};
    Thread[] workers = new Thread[3];
    for (int t = 0; t < workers.length; ++t) {
      final int index = t;
      workers[t] = new Thread(() -> {
        for (int i = 0; i < 50; ++i) {
          if (index == 0) {
            shared.append(rows(k, 0, 1, 2 * d), rows(v, 0, 1, 2 * d));
            shared.truncate(n);
          } else {
            float[] o = new float[2 * 4 * d];
            shared.attention(before, n - 2, q, o);  // causal: the token at n is hidden
            same[index] &= Arrays.equals(o, reference);
          }
        }
      });
      workers[t].start();
    }
    for (Thread w : workers) w.join();
    for (boolean ok : same) check(ok, "attention during appends differs");

    // Errors: IllegalArgumentException for shapes, RelAttnException naming the field; a
    // failed call changes neither the cache nor the output.
    final KVCache small = new KVCache(2, d, d, 4, RelAttn.F32, RelAttn.F32, false, null);
    final float[] kq = rows(k, 0, 3, 2 * d), vq = rows(v, 0, 3, 2 * d);
    small.append(kq, vq);
    RelAttnException e =
        expect(RelAttnException.class, () -> small.append(kq, vq), "KV cache full");
    check(e.status == 15 && small.length() == 3, "append past capacity");
    expect(IllegalArgumentException.class, () -> small.append(new float[10], vq),
           "k: 10 elements");
    expect(IllegalArgumentException.class, () -> small.append(kq, new float[10]),
           "v: 10 elements");
    expect(IllegalArgumentException.class, () -> small.append(kq, vq, new long[1]),
           "positions: 1 elements");
    e = expect(RelAttnException.class, () -> small.truncate(5), "n_tokens = 5");
    check(e.status == 2 && small.length() == 3, "truncate past length");
    e = expect(RelAttnException.class,
               () -> new KVCache(2, 8, 8, 4, RelAttn.Q4, RelAttn.F32, false, null),
               "k_dtype = RELATTN_Q4 with head_dim = 8");
    check(e.status == 2, "status of Q4 with head_dim 8");
    expect(RelAttnException.class,
           () -> new KVCache(2, d, d, 4, 7, RelAttn.F32, false, null), "k_dtype = 7");
    expect(RelAttnException.class,
           () -> new KVCache(2, d, d, 0, RelAttn.F32, RelAttn.F32, false, null), "capacity = 0");
    final float[] o = new float[2 * 4 * d];
    Arrays.fill(o, 42f);
    final RelAttn.Params wrong = new RelAttn.Params(2, 0, 4, 0, 16);
    expect(IllegalArgumentException.class, () -> small.attention(wrong, q, o),
           "headDim = 16: must be 0 or the cache's 32");
    final RelAttn.Params placedQ = new RelAttn.Params(2, 0, 4, 0, 0);
    placedQ.qStart = 7;
    expect(IllegalArgumentException.class, () -> small.attention(placedQ, q, o),
           "qStart = 7: queries over a KVCache start at nextPosition()");
    final RelAttn.Params other = new RelAttn.Params(2, 0, 4, 0, 0);
    other.rope = new RelAttn.Rope(RelAttn.ROPE_INTERLEAVED);
    e = expect(RelAttnException.class, () -> roped.attention(other, q, o),
               "rope: must equal the kv_cache's rope");
    check(e.status == 21, "status of a rope that differs from the cache's");
    final RelAttn.Params gqa = new RelAttn.Params(2, 0, 3, 0, 0);
    expect(RelAttnException.class, () -> small.attention(gqa, q, o), "n_heads = 3");
    final RelAttn.Params nkv = new RelAttn.Params(2, 5, 4, 0, 0);
    expect(RelAttnException.class, () -> small.attention(nkv, q, o),
           "n_kv = 5: must be 0 or the kv_cache's 3");
    expect(IllegalArgumentException.class, () -> small.attention(other, q, new float[3]),
           "out: 3 elements");
    small.clear();
    expect(RelAttnException.class, () -> small.attention(new RelAttn.Params(2, 0, 4, 0, 0), q, o),
           "holds no token");
    for (float x : o) check(x == 42f, "a failed cache call wrote the output");
  }

  /** float[] a against double[] b, -inf equal to -inf. */
  private static double lseError(float[] got, double[] expected) {
    double err = 0;
    for (int i = 0; i < got.length; ++i) {
      if (got[i] == expected[i]) continue;  // both -inf
      err = Math.max(err, Math.abs(got[i] - expected[i]));
    }
    return err;
  }

  /** The nearest bfloat16 of x by the definition (the two candidates compared in double, ties
   *  to the even one), for finite x. */
  private static short nearestBf16(float x) {
    final int t = Float.floatToRawIntBits(x) >>> 16;
    final double below = RelAttn.fromBf16((short) t);
    final double above = (t & 0x7fff) == 0x7f7f ? Math.copySign(0x1p128, x)
                                                : RelAttn.fromBf16((short) (t + 1));
    final double dBelow = Math.abs(x - below), dAbove = Math.abs(above - x);
    final int pick = dBelow < dAbove || (dBelow == dAbove && (t & 1) == 0) ? t : t + 1;
    return (short) pick;
  }

  private static void testBf16(Random rng) {
    // toBf16: round to nearest even by definition, ties, overflow, NaN; fromBf16 exact.
    check(RelAttn.toBf16(1f + 0x1p-8f) == 0x3f80, "bf16 tie to even (down)");
    check(RelAttn.toBf16(1f + 0x3p-8f) == 0x3f82, "bf16 tie to even (up)");
    check(RelAttn.toBf16(Float.MAX_VALUE) == 0x7f80, "bf16 overflow to inf");
    check(Float.isNaN(RelAttn.fromBf16(RelAttn.toBf16(Float.intBitsToFloat(0x7f800001)))),
          "bf16 of a NaN is a NaN");
    check(RelAttn.fromBf16((short) 0xc049) == -3.140625f, "fromBf16");
    boolean nearest = true;
    for (int n = 0; n < 200000; ++n) {
      final float x = Float.intBitsToFloat(rng.nextInt());
      if (Float.isNaN(x) || Float.isInfinite(x)) continue;
      nearest &= RelAttn.toBf16(x) == nearestBf16(x);
    }
    check(nearest, "toBf16 is the nearest bfloat16 (ties to even)");

    // BF16 Q, K, V: the reference on the values held; F32 and BF16 outputs.
    final short[] q = RelAttn.toBf16(uniform(rng, 7 * 4 * 8));
    final short[] k = RelAttn.toBf16(uniform(rng, 7 * 2 * 8));
    final short[] v = RelAttn.toBf16(uniform(rng, 7 * 2 * 6));
    final float[] qf = RelAttn.fromBf16(q), kf = RelAttn.fromBf16(k), vf = RelAttn.fromBf16(v);
    for (boolean causal : new boolean[] {false, true}) {
      RelAttn.Params p = params(RelAttn.ALIBI, causal);
      p.dtype = RelAttn.BF16;
      final double[] expected = reference(p, qf, kf, vf);
      float[] out = new float[7 * 4 * 6];
      RelAttn.attention(p, q, k, v, out);
      check(maxError(out, expected) <= 5e-6, "BF16 inputs, causal " + causal + ": "
            + maxError(out, expected));
      p.outDtype = RelAttn.BF16;
      short[] bits = new short[7 * 4 * 6];
      RelAttn.attention(p, q, k, v, bits);
      boolean rounded = true;  // the f32 result rounded to nearest even
      for (int i = 0; i < bits.length; ++i) rounded &= bits[i] == RelAttn.toBf16(out[i]);
      check(rounded, "BF16 output is the F32 one rounded, causal " + causal);
      p.precision = RelAttn.PRECISION_FAST;  // AVX512-BF16: P rounded to bf16 for P.V
      p.outDtype = RelAttn.F32;
      RelAttn.attention(p, q, k, v, out);
      check(maxError(out, expected) <= 4e-3, "PRECISION_FAST: " + maxError(out, expected));
    }
    // F16 bits in short[] arrays give the F32 call's bits on the same values.
    final float[] qh = random(rng, 7 * 4 * 8), kh = random(rng, 7 * 2 * 8);
    final float[] vh = random(rng, 7 * 2 * 6);
    final short[] q16 = halves(qh), k16 = halves(kh), v16 = halves(vh);
    RelAttn.Params ph = params(RelAttn.T5, true);
    ph.table = random(rng, 4 * 32);
    float[] fromHalves = new float[7 * 4 * 6], fromFloats = new float[7 * 4 * 6];
    RelAttn.attention(ph, qh, kh, vh, fromFloats);
    ph.dtype = RelAttn.F16;
    RelAttn.attention(ph, q16, k16, v16, fromHalves);
    check(Arrays.equals(fromHalves, fromFloats), "F16 short[] arrays differ from F32");
    // BF16 direct buffers (ShortBuffer in, ByteBuffer BF16 out) equal the arrays.
    RelAttn.Params pb = params(RelAttn.ALIBI, true);
    pb.dtype = pb.outDtype = RelAttn.BF16;
    ShortBuffer qb = direct(q.length * 2).asShortBuffer().put(q);
    ShortBuffer kb = direct(k.length * 2).asShortBuffer().put(k);
    ShortBuffer vb = direct(v.length * 2).asShortBuffer().put(v);
    qb.flip();
    kb.flip();
    vb.flip();
    ByteBuffer ob = direct(7 * 4 * 6 * 2);
    RelAttn.attention(pb, qb, kb, vb, ob);
    short[] fromBuffers = new short[7 * 4 * 6], fromArrays = new short[7 * 4 * 6];
    ob.asShortBuffer().get(fromBuffers);
    RelAttn.attention(pb, q, k, v, fromArrays);
    check(Arrays.equals(fromBuffers, fromArrays), "BF16 buffers differ from BF16 arrays");

    // Errors: arrays of the wrong type, bad precision; the output untouched.
    final float[] out = new float[7 * 4 * 6];
    Arrays.fill(out, 42f);
    final RelAttn.Params p = params(RelAttn.NONE, false);
    expect(IllegalArgumentException.class, () -> RelAttn.attention(p, q, k, v, out),
           "q: a short[] does not hold dtype 0");
    p.dtype = RelAttn.BF16;
    expect(IllegalArgumentException.class, () -> RelAttn.attention(p, qf, kf, vf, out),
           "q: a float[] does not hold dtype 4");
    p.outDtype = RelAttn.BF16;
    expect(IllegalArgumentException.class, () -> RelAttn.attention(p, q, k, v, out),
           "out: a float[] does not hold dtype 4");
    p.outDtype = RelAttn.F32;
    p.dtype = RelAttn.I8;
    expect(IllegalArgumentException.class, () -> RelAttn.attention(p, q, k, v, out),
           "q: dtype 2: a short[] holds F16 or BF16 bits");
    p.dtype = RelAttn.BF16;
    p.outDtype = RelAttn.BF16;
    expect(IllegalArgumentException.class, () -> RelAttn.attention(p, qb, kb, vb,
        direct(1024).asFloatBuffer()), "out: a FloatBuffer does not hold BF16");
    p.outDtype = RelAttn.F32;
    p.precision = 5;
    RelAttnException e = expect(RelAttnException.class, () -> RelAttn.attention(p, q, k, v, out),
                                "precision = 5");
    check(e.status == 13, "status of a bad precision");
    for (float x : out) check(x == 42f, "a failed bf16 call wrote the output");
  }

  private static void testSequences(Random rng) {
    final float[] q = random(rng, 7 * 4 * 8), k = random(rng, 7 * 2 * 8);
    final float[] v = random(rng, 7 * 2 * 6);
    // Position arrays: starts written out are bit for bit the starts; any order otherwise.
    RelAttn.Params p = params(RelAttn.ALIBI, true);
    p.qStart = 40;
    p.kStart = 37;
    float[] fromStarts = new float[7 * 4 * 6], out = new float[7 * 4 * 6];
    RelAttn.attention(p, q, k, v, fromStarts);
    p.qPositions = new long[7];
    p.kPositions = new long[7];
    for (int i = 0; i < 7; ++i) {
      p.qPositions[i] = 40 + i;
      p.kPositions[i] = 37 + i;
    }
    p.qStart = p.kStart = 5;  // unused with the arrays
    RelAttn.attention(p, q, k, v, out);
    check(Arrays.equals(out, fromStarts), "position arrays equal to their starts");
    for (int scheme : new int[] {RelAttn.ALIBI, RelAttn.T5, RelAttn.SHAW}) {
      p = params(scheme, scheme != RelAttn.SHAW);
      p.table = random(rng, 4 * 32);
      p.shawK = 3;
      p.qPositions = new long[] {5, 3, 4, 7, 6, 1, 2};  // |key - query| < 8: T5's exact buckets
      p.kPositions = new long[] {2, 8, 3, 6, 5, 5, 1};
      RelAttn.attention(p, q, k, v, out);
      check(maxError(out, reference(p, q, k, v)) <= 5e-6, "position arrays, scheme " + scheme);
      for (int i = 0; i < 7; ++i) {
        p.qPositions[i] += 1_000_000_000_000L;
        p.kPositions[i] += 1_000_000_000_000L;
      }
      float[] shifted = new float[7 * 4 * 6];
      RelAttn.attention(p, q, k, v, shifted);
      check(Arrays.equals(out, shifted), "position arrays shifted by 10^12, scheme " + scheme);
    }
    // Packed sequences: ids 0, 0, 0, 1, 1, 2, 2, positions restarting: each sequence alone.
    p = params(RelAttn.ALIBI, true);
    p.qSegments = p.kSegments = new int[] {0, 0, 0, 1, 1, 2, 2};
    p.qPositions = p.kPositions = new long[] {0, 1, 2, 0, 1, 0, 1};
    RelAttn.attention(p, q, k, v, out);
    check(maxError(out, reference(p, q, k, v)) <= 5e-6, "segments against the reference");
    final int[] starts = {0, 3, 5, 7};
    for (int s = 0; s < 3; ++s) {
      final int a = starts[s], b = starts[s + 1];
      RelAttn.Params one = new RelAttn.Params(b - a, b - a, 4, 2, 8);
      one.vHeadDim = 6;
      one.scheme = RelAttn.ALIBI;
      one.causal = true;
      float[] alone = new float[(b - a) * 4 * 6];
      RelAttn.attention(one, rows(q, a, b, 4 * 8), rows(k, a, b, 2 * 8), rows(v, a, b, 2 * 6),
                        alone);
      check(maxError(rows(out, a, b, 4 * 6), alone) <= 1e-6, "segment " + s + " alone");
    }
    // Allowed pairs from key 2 on, and the first valid key (left padding).
    boolean[][] pairs = new boolean[7][5];
    for (boolean[] row : pairs) for (int b = 0; b < 5; ++b) row[b] = rng.nextBoolean();
    final long[] packed = RelAttn.packAllowed(pairs);
    boolean same = packed.length == 7;
    for (int i = 0; i < 7; ++i) {
      for (int b = 0; b < 5; ++b) same &= ((packed[i] >>> b & 1) != 0) == pairs[i][b];
    }
    check(same, "packAllowed: bit b of row i");
    for (boolean causal : new boolean[] {false, true}) {
      p = params(RelAttn.ALIBI, causal);
      p.setAllowed(pairs, 2);
      p.firstValidKv = 1;
      RelAttn.attention(p, q, k, v, out);
      check(p.allowedRowWords == 1 && maxError(out, reference(p, q, k, v)) <= 5e-6,
            "allowed pairs and firstValidKv, causal " + causal);
    }
    // Rows of two words: 70 keys.
    final float[] q70 = random(rng, 3 * 8), k70 = random(rng, 70 * 8), v70 = random(rng, 70 * 8);
    pairs = new boolean[3][70];
    for (boolean[] row : pairs) for (int b = 0; b < 70; ++b) row[b] = rng.nextInt(3) == 0;
    p = new RelAttn.Params(3, 70, 1, 1, 8);
    p.setAllowed(pairs, 0);
    float[] o70 = new float[3 * 8];
    RelAttn.attention(p, q70, k70, v70, o70);
    check(p.allowedRowWords == 2 && maxError(o70, reference(p, q70, k70, v70)) <= 5e-6,
          "allowed rows of two words");

    // Errors: lengths checked in Java, ranges by the library; the output untouched.
    Arrays.fill(out, 42f);
    final RelAttn.Params bad = params(RelAttn.NONE, false);
    bad.qPositions = new long[6];
    expect(IllegalArgumentException.class, () -> RelAttn.attention(bad, q, k, v, out),
           "qPositions: 6 elements, the shapes need 7");
    bad.qPositions = null;
    bad.kPositions = new long[] {0, 1, 2, 3, 4, 5, Long.MIN_VALUE};
    bad.qStart = 10;
    RelAttnException e = expect(RelAttnException.class, () -> RelAttn.attention(bad, q, k, v,
                                out), "overflow");
    check(e.status == 10, "status of positions whose difference overflows");
    bad.kPositions = null;
    bad.qSegments = new int[7];
    expect(IllegalArgumentException.class, () -> RelAttn.attention(bad, q, k, v, out),
           "kSegments is null: qSegments and kSegments are given together or not at all");
    bad.kSegments = new int[3];
    expect(IllegalArgumentException.class, () -> RelAttn.attention(bad, q, k, v, out),
           "kSegments: 3 elements, the shapes need 7");
    bad.qSegments = bad.kSegments = null;
    bad.allowed = new long[7];
    bad.allowedRowWords = 1;
    bad.allowedKeyOffset = 8;
    e = expect(RelAttnException.class, () -> RelAttn.attention(bad, q, k, v, out),
               "mask.allowed_key_offset = 8: must be in 0..n_kv = 7");
    check(e.status == 9, "status of a bad allowed_key_offset");
    bad.allowedKeyOffset = 0;
    bad.allowedRowWords = 0;
    expect(RelAttnException.class, () -> RelAttn.attention(bad, q, k, v, out),
           "mask.allowed_row_words = 0: must be >= 1");
    bad.allowedRowWords = 2;
    expect(IllegalArgumentException.class, () -> RelAttn.attention(bad, q, k, v, out),
           "allowed: 7 elements, the shapes need 14");
    bad.allowedRowWords = -1;
    expect(IllegalArgumentException.class, () -> RelAttn.attention(bad, q, k, v, out),
           "allowedRowWords = -1: must be in 0..2^31 - 1");
    bad.allowed = null;
    bad.firstValidKv = 8;
    expect(RelAttnException.class, () -> RelAttn.attention(bad, q, k, v, out),
           "mask.first_valid_kv = 8: must be in 0..n_kv = 7");
    expect(IllegalArgumentException.class, () -> RelAttn.packAllowed(new boolean[][] {
        new boolean[3], new boolean[2]}), "pairs[1]: 2 keys, row 0 has 3");
    for (float x : out) check(x == 42f, "a failed masked call wrote the output");
  }

  private static void testLseMerge(Random rng) {
    final float[] q = random(rng, 7 * 4 * 8), k = random(rng, 7 * 2 * 8);
    final float[] v = random(rng, 7 * 2 * 6);
    // lse against the reference's, sinks included; a row that sees no key: -inf or its sink.
    RelAttn.Params p = params(RelAttn.ALIBI, true);
    p.sinks = new float[] {0.5f, -1f, 2f, 0f};
    p.lse = new float[7 * 4];
    float[] out = new float[7 * 4 * 6];
    double[] lse = new double[7 * 4];
    RelAttn.attention(p, q, k, v, out);
    double[] expected = reference(p, q, k, v, lse);
    check(maxError(out, expected) <= 5e-6 && lseError(p.lse, lse) <= 1e-5, "lse with sinks: "
          + lseError(p.lse, lse));
    p.sinks = null;
    p.firstValidKv = 3;  // query 0..2 see no key
    RelAttn.attention(p, q, k, v, out);
    reference(p, q, k, v, lse);
    check(p.lse[0] == Float.NEGATIVE_INFINITY && lseError(p.lse, lse) <= 1e-5,
          "lse of rows that see no key");
    // Direct buffers fill lse too.
    p.firstValidKv = 0;
    FloatBuffer qb = direct(q.length * 4).asFloatBuffer().put(q);
    FloatBuffer kb = direct(k.length * 4).asFloatBuffer().put(k);
    FloatBuffer vb = direct(v.length * 4).asFloatBuffer().put(v);
    qb.flip();
    kb.flip();
    vb.flip();
    Arrays.fill(p.lse, 42f);
    RelAttn.attention(p, qb, kb, vb, direct(7 * 4 * 6 * 4).asFloatBuffer());
    reference(p, q, k, v, lse);
    check(lseError(p.lse, lse) <= 1e-5, "lse from buffers");

    // merge: keys [0, 4) and [4, 7) without sinks, merged with them, equal the whole call.
    for (boolean causal : new boolean[] {false, true}) {
      final float[] sinks = {0.5f, -1f, 2f, 0f};
      RelAttn.Params whole = params(RelAttn.ALIBI, causal);
      whole.sinks = sinks;
      whole.lse = new float[7 * 4];
      float[] o = new float[7 * 4 * 6];
      RelAttn.attention(whole, q, k, v, o);
      RelAttn.Params a = params(RelAttn.ALIBI, causal), b = params(RelAttn.ALIBI, causal);
      a.nKv = 4;
      b.nKv = 3;
      b.kStart = 4;
      a.lse = new float[7 * 4];
      b.lse = new float[7 * 4];
      float[] oa = new float[7 * 4 * 6], ob = new float[7 * 4 * 6];
      RelAttn.attention(a, q, rows(k, 0, 4, 16), rows(v, 0, 4, 12), oa);
      RelAttn.attention(b, q, rows(k, 4, 7, 16), rows(v, 4, 7, 12), ob);
      float[] merged = new float[7 * 4 * 6], mergedLse = new float[7 * 4];
      RelAttn.merge(7, 4, 6, oa, a.lse, ob, b.lse, sinks, merged, mergedLse);
      check(maxError(merged, o) <= 1e-6 && maxError(mergedLse, whole.lse) <= 1e-5,
            "merge equals the whole call, causal " + causal + ": " + maxError(merged, o));
      RelAttn.merge(7, 4, 6, oa, a.lse, ob, b.lse, sinks, oa, a.lse);  // in place
      check(Arrays.equals(oa, merged) && Arrays.equals(a.lse, mergedLse), "merge in place");
      RelAttn.merge(7, 4, 6, ob, b.lse, ob, b.lse, null, merged, null);  // lse not wanted
    }

    // Errors: nothing written.
    final float[] o = new float[7 * 4 * 6], l = new float[7 * 4];
    Arrays.fill(o, 42f);
    Arrays.fill(l, 42f);
    final float[] part = new float[7 * 4 * 6], inf = new float[7 * 4];
    inf[5] = Float.POSITIVE_INFINITY;
    RelAttnException e = expect(RelAttnException.class,
        () -> RelAttn.merge(7, 4, 6, part, inf, part, new float[28], null, o, l), "lse_a");
    check(e.status == 20, "status of an lse of +inf");
    expect(IllegalArgumentException.class,
           () -> RelAttn.merge(7, 4, 6, part, l, part, new float[27], null, o, l),
           "lseB: 27 elements, the shapes need 28");
    expect(IllegalArgumentException.class,
           () -> RelAttn.merge(7, 4, 6, part, l, new float[5], l, null, o, l),
           "oB: 5 elements, the shapes need 168");
    expect(IllegalArgumentException.class,
           () -> RelAttn.merge(7, 4, 6, part, l, part, l, new float[3], o, l),
           "sinks: 3 elements, the shapes need 4");
    expect(IllegalArgumentException.class,
           () -> RelAttn.merge(0, 4, 6, part, l, part, l, null, o, l), "nQ, heads, vHeadDim");
    expect(RelAttnException.class,
           () -> RelAttn.merge(7, 4, 300, new float[7 * 4 * 300], l, new float[7 * 4 * 300], l,
                               null, new float[7 * 4 * 300], null), "v_head_dim = 300");
    expect(NullPointerException.class,
           () -> RelAttn.merge(7, 4, 6, part, null, part, l, null, o, l), "lseA");
    final RelAttn.Params p2 = params(RelAttn.NONE, false);
    p2.lse = new float[27];
    expect(IllegalArgumentException.class, () -> RelAttn.attention(p2, q, k, v, o),
           "lse: 27 elements, the shapes need 28");
    p2.lse = l;
    p2.headDim = 300;
    expect(RelAttnException.class, () -> RelAttn.attention(p2, new float[7 * 4 * 300],
        new float[7 * 2 * 300], new float[7 * 2 * 6], o), "head_dim = 300");
    for (float x : o) check(x == 42f, "a failed merge wrote the output");
    for (float x : l) check(x == 42f, "a failed call wrote lse");
  }

  private static short[] rows(short[] x, int from, int to, int row) {
    return Arrays.copyOfRange(x, from * row, to * row);
  }

  private static void testKVCacheBf16AndBytes(Random rng) {
    final int n = 9, d = 32;
    final float[] k = uniform(rng, n * 2 * d), v = uniform(rng, n * 2 * d);
    final float[] q = uniform(rng, 2 * 4 * d);
    // BF16 storage: the plain call over K, V rounded to bfloat16.
    final short[] kb = RelAttn.toBf16(k), vb = RelAttn.toBf16(v);
    final float[] kr = RelAttn.fromBf16(kb), vr = RelAttn.fromBf16(vb);
    KVCache bf16 = new KVCache(2, d, d, 16, RelAttn.BF16, RelAttn.BF16, false, null);
    bf16.append(k, v);
    float err = maxError(decode(bf16, 2, q), plain(2, n, n, d, q, kr, vr, null));
    check(err <= 1e-6, "BF16 cache: error " + err);
    // BF16 bits appended from short[] and from ShortBuffers (with positions) equal the floats.
    KVCache bits = new KVCache(2, d, d, 16, RelAttn.F32, RelAttn.F16, false, null);
    KVCache floats = new KVCache(2, d, d, 16, RelAttn.F32, RelAttn.F16, false, null);
    bits.append(RelAttn.BF16, rows(kb, 0, 5, 2 * d), rows(vb, 0, 5, 2 * d), null);
    ShortBuffer kBuffer = direct(4 * 2 * d * 2).asShortBuffer().put(rows(kb, 5, n, 2 * d));
    ShortBuffer vBuffer = direct(4 * 2 * d * 2).asShortBuffer().put(rows(vb, 5, n, 2 * d));
    kBuffer.flip();
    vBuffer.flip();
    bits.append(RelAttn.BF16, 4, kBuffer, vBuffer, new long[] {5, 6, 7, 8});
    floats.append(kr, vr);
    check(Arrays.equals(decode(bits, 2, q), decode(floats, 2, q)), "BF16 appends");
    expect(IllegalArgumentException.class, () -> bits.append(RelAttn.F32, kb, vb, null),
           "dtype = 0: a short[] holds F16 or BF16");
    expect(IllegalArgumentException.class, () -> bits.append(RelAttn.BF16, 4, kBuffer, vBuffer,
        new long[3]), "positions: 3 elements");
    expect(IllegalArgumentException.class, () -> bits.append(RelAttn.BF16, 4,
        direct(4096).asFloatBuffer(), vBuffer), "k: a FloatBuffer does not hold BF16");

    // Save and restore: the fields, the answers bit for bit, and independence.
    final RelAttn.Rope rope = new RelAttn.Rope(RelAttn.ROPE_HALVES);
    rope.scaling = RelAttn.SCALING_YARN;
    rope.factor = 4f;
    rope.originalMaxPosition = 64;
    KVCache saved = new KVCache(2, d, 16, 12, RelAttn.I8, RelAttn.BF16, true, rope, 2,
                                KVCache.SINK_POSITIONS_CACHE);
    final float[] v16 = uniform(rng, n * 2 * 16);
    saved.append(k, v16);
    final byte[] bytes = saved.toBytes();
    KVCache restored = KVCache.fromBytes(bytes);
    check(restored.kvHeads == 2 && restored.headDim == d && restored.vHeadDim == 16
          && restored.capacity == 12 && restored.kDtype == RelAttn.I8
          && restored.vDtype == RelAttn.BF16 && restored.ring && restored.sinkTokens == 2
          && restored.sinkPositions == KVCache.SINK_POSITIONS_CACHE, "fromBytes: fields");
    final RelAttn.Rope back = restored.rope();
    check(back.pairing == RelAttn.ROPE_HALVES && back.scaling == RelAttn.SCALING_YARN
          && back.factor == 4f && back.originalMaxPosition == 64, "fromBytes: rope");
    check(restored.length() == saved.length() && restored.nextPosition() == saved.nextPosition(),
          "fromBytes: length, nextPosition");
    check(Arrays.equals(decode(restored, 2, q), decode(saved, 2, q)), "fromBytes: attention");
    KVCache copied = saved.copy();
    check(Arrays.equals(decode(copied, 2, q), decode(saved, 2, q)), "copy: attention");
    final float[] before = decode(saved, 2, q);
    copied.append(rows(k, 0, 3, 2 * d), rows(v16, 0, 3, 2 * 16));
    restored.truncate(4);
    check(Arrays.equals(decode(saved, 2, q), before) && copied.nextPosition() == n + 3
          && restored.length() == 4 && Arrays.equals(saved.toBytes(), bytes),
          "copies are independent");
    // A family with tables: not stored, given again.
    final RelAttn.Rope table = new RelAttn.Rope(RelAttn.ROPE_INTERLEAVED);
    table.scaling = RelAttn.SCALING_INV_FREQ;
    table.invFreq = new double[d / 2];
    for (int i = 0; i < d / 2; ++i) table.invFreq[i] = Math.pow(0.7, i);
    KVCache tabled = new KVCache(2, d, d, 16, RelAttn.F32, RelAttn.F32, false, table);
    tabled.append(k, v);
    final byte[] tabledBytes = tabled.toBytes();
    expect(RelAttnException.class, () -> decode(KVCache.fromBytes(tabledBytes), 2, q),
           "inv_freq");
    check(Arrays.equals(decode(KVCache.fromBytes(tabledBytes, table), 2, q), decode(tabled, 2, q)),
          "fromBytes with the rope's tables");

    // Bytes that are no cache: RelAttnException naming the problem, never a crash.
    RelAttnException e = expect(RelAttnException.class,
        () -> KVCache.fromBytes(Arrays.copyOf(bytes, bytes.length - 1)),
        "cache_bytes = " + (bytes.length - 1) + ": the cache's desc needs " + bytes.length);
    check(e.status == 11, "status of truncated bytes");
    e = expect(RelAttnException.class, () -> KVCache.fromBytes(Arrays.copyOf(bytes, 40)),
               "less than a cache's header");
    expect(RelAttnException.class, () -> KVCache.fromBytes(new byte[0]),
           "less than a cache's header");
    final byte[] magic = bytes.clone();
    magic[3] ^= 0x10;
    e = expect(RelAttnException.class, () -> KVCache.fromBytes(magic), "magic");
    check(e.status == 18, "status of a flipped magic byte");
    final byte[] heads = bytes.clone();  // n_kv_heads (after the magic) 2 -> 3: a larger cache
    heads[ByteOrder.nativeOrder() == ByteOrder.LITTLE_ENDIAN ? 8 : 11] ^= 0x01;
    e = expect(RelAttnException.class, () -> KVCache.fromBytes(heads),
               "cache_bytes = " + bytes.length + ": the cache's desc needs");
    check(e.status == 11, "status of a flipped n_kv_heads byte");
    final byte[] noise = new byte[bytes.length];
    new Random(7).nextBytes(noise);
    expect(RelAttnException.class, () -> KVCache.fromBytes(noise), "not a relattn KV cache");
    expect(NullPointerException.class, () -> KVCache.fromBytes(null), "bytes");
    int rejected = 0;  // each of the first 256 bytes flipped: rejected, or a cache that works
    for (int i = 0; i < 256; ++i) {
      final byte[] flipped = bytes.clone();
      flipped[i] ^= (byte) 0x80;
      final KVCache c;
      try {
        c = KVCache.fromBytes(flipped);
      } catch (RelAttnException x) {
        rejected++;
        continue;
      }
      try {
        decode(c, 2, q);
      } catch (RelAttnException | IllegalArgumentException x) {
        // a cache of other fields: the call's checks name them
      }
    }
    check(rejected > 0, "flipped header bytes rejected: " + rejected);
  }

  private static void testKVCacheMasks(Random rng) {
    final int n = 9, d = 32;
    final float[] k = uniform(rng, n * 2 * d), v = uniform(rng, n * 2 * d);
    final float[] q = uniform(rng, 3 * 4 * d);
    KVCache cache = new KVCache(2, d, d, 16, RelAttn.F32, RelAttn.F32, false, null);
    cache.append(k, v);
    // Each mask and position array over the cache equals the plain call with them.
    RelAttn.Params plain = new RelAttn.Params(3, n, 4, 2, d);
    RelAttn.Params cached = new RelAttn.Params(3, 0, 4, 0, 0);
    for (RelAttn.Params p : new RelAttn.Params[] {plain, cached}) {
      p.scheme = RelAttn.ALIBI;
      p.causal = true;
      p.qPositions = new long[] {12, 7, 9};
      p.qSegments = new int[] {1, 0, 1};
      p.kSegments = new int[] {0, 0, 0, 0, 1, 1, 1, 1, 1};
      p.setAllowed(new boolean[][] {{true, false, true}, {true, true, true}, {false, true, true}},
                   n - 3);
      p.firstValidKv = 1;
      p.lse = new float[3 * 4];
    }
    float[] expected = new float[3 * 4 * d], got = new float[3 * 4 * d];
    RelAttn.attention(plain, q, k, v, expected);
    cache.attention(cached, q, got);
    check(maxError(got, expected) <= 1e-6 && maxError(cached.lse, plain.lse) <= 1e-5,
          "cache with positions, segments, allowed, firstValidKv, lse: " + maxError(got, expected));
    // Errors: the keys' positions are the cache's; kSegments counts its slots.
    Arrays.fill(got, 42f);
    final float[] out = got;
    expect(IllegalArgumentException.class, () -> cache.attention(cached, 5, q, out),
           "qStart and qPositions: give one");
    cached.kPositions = new long[n];
    expect(IllegalArgumentException.class, () -> cache.attention(cached, q, out),
           "kPositions: must be null");
    cached.kPositions = null;
    cached.kSegments = new int[n - 1];
    expect(IllegalArgumentException.class, () -> cache.attention(cached, q, out),
           "kSegments: 8 elements, the shapes need 9");
    cached.kSegments = new int[n];
    cached.allowedKeyOffset = n + 1;
    expect(RelAttnException.class, () -> cache.attention(cached, q, out),
           "mask.allowed_key_offset = 10: must be in 0..n_kv = 9");
    cached.allowedKeyOffset = 0;
    cached.allowedRowWords = 0;
    expect(RelAttnException.class, () -> cache.attention(cached, q, out),
           "mask.allowed_row_words = 0: must be >= 1");
    for (float x : out) check(x == 42f, "a failed masked cache call wrote the output");
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

    testRope(rng);
    testShawVector(rng);
    testInt8(rng);
    testQ4(rng);
    testKVCache(rng);
    testBf16(rng);
    testSequences(rng);
    testLseMerge(rng);
    testKVCacheBf16AndBytes(rng);
    testKVCacheMasks(rng);

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
