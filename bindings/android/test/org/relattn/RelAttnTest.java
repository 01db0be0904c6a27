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
 * (F32 and F16), threads, RoPE (against inputs rotated here by the formula, for each scaling
 * family), int8 (against the float call on the dequantised values), KVCache (against the plain
 * call over the same, or the same rounded, K and V), and the error paths. Exits non-zero on
 * the first failure.
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
          if (p.scheme == RelAttn.SHAW_VECTOR) {  // q.(k + a[clip(rel) + shawK])
            final int row = (p.shawPerHead ? h * (2 * p.shawK + 1) : 0)
                + (int) Math.max(-p.shawK, Math.min(p.shawK, rel)) + p.shawK;
            for (int e = 0; e < d; ++e) dot += q[(i * p.heads + h) * d + e] * p.table[row * d + e];
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

  private static short toHalf(float x) {  // for values exact in f16 (random(), roundHalf())
    if (x == 0) return 0;
    final int bits = Float.floatToIntBits(x);
    if (Math.abs(x) < 0x1p-14f) {  // subnormal
      return (short) (((bits >>> 16) & 0x8000) | (int) (Math.abs(x) * 0x1p24f));
    }
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
           "dtype = 2: buffers hold F32 or F16");
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
    testKVCache(rng);

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
