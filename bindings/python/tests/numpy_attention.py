"""Plain numpy attention with relative-position biases: the oracle the Python binding and the
relattn tool are checked against. Written from the papers' definitions (ALiBi's get_slopes,
ggml's max_bias form, HF T5's _relative_position_bucket, Shaw's clip and vector form, RoPE's
rotation of q and k, symmetric per-row int8) in float64, full score matrix, sharing nothing
with the library.
"""
import decimal
import math

import numpy as np


def alibi_slopes(n_heads, max_bias=8.0):
    """float32 slopes, as the library stores them."""
    p = 2 ** math.floor(math.log2(n_heads))
    if max_bias == 8.0:  # the ALiBi paper's get_slopes()
        def power_of_2(n):
            start = 2 ** (-2 ** -(math.log2(n) - 3))
            return [start * start ** i for i in range(n)]
        slopes = power_of_2(p) + power_of_2(2 * p)[0::2][:n_heads - p]
    else:  # ggml / BLOOM: m0 = 2^(-max_bias / P), m1 = 2^(-max_bias / 2P)
        m0, m1 = 2.0 ** (-max_bias / p), 2.0 ** (-max_bias / 2 / p)
        slopes = [m0 ** (h + 1) if h < p else m1 ** (2 * (h - p) + 1) for h in range(n_heads)]
    return np.array(slopes, np.float32)


def t5_bucket(relative_position, num_buckets=32, max_distance=128, bidirectional=True):
    """HF T5's bucket of key - query, in float32 as torch computes it."""
    rel = np.asarray(relative_position, np.int64)
    bucket = np.zeros_like(rel)
    if bidirectional:
        num_buckets //= 2
        bucket += (rel > 0) * num_buckets
        n = np.abs(rel)
    else:
        n = -np.minimum(rel, 0)
    max_exact = num_buckets // 2
    with np.errstate(divide="ignore", invalid="ignore"):  # log(0): small n, unused
        large = max_exact + (np.log(n.astype(np.float32) / np.float32(max_exact))
                             / np.float32(math.log(max_distance / max_exact))
                             * np.float32(num_buckets - max_exact)).astype(np.int64)
    large = np.minimum(large, num_buckets - 1)
    return bucket + np.where(n < max_exact, n, large)


def bias(scheme, rel, head, heads, bidirectional, max_bias=8.0, slopes=None, table=None,
         table_scales=None, max_distance=128):
    """The bias of one head for offsets rel = key - query (none for shaw_vector, whose offset
    term enters the content product: shaw_vector_products)."""
    if scheme in ("none", "shaw_vector"):
        return np.zeros(rel.shape)
    if scheme == "alibi":
        m = float((alibi_slopes(heads, max_bias) if slopes is None else slopes)[head])
        return -m * np.abs(rel) if bidirectional else m * rel  # causal form: -m (q - k)
    row = np.asarray(table[head], np.float64)
    if table_scales is not None:
        row = row * float(table_scales[head])
    if scheme == "t5":
        return row[t5_bucket(rel, table.shape[1], max_distance, bidirectional)]
    k = (table.shape[1] - 1) // 2  # shaw
    return row[np.clip(rel, -k, k) + k]


def shaw_vector_products(q_h, rel, table, head):
    """Shaw et al.'s vector term of one head, q_i . a[clip(key - query, -k, k) + k] for every
    query i and key j ([n_q][n_kv], float64); q_h [n_q][d] as the scores use it (after RoPE),
    table [heads][2k+1][d] (one per head) or [2k+1][d] (shared)."""
    a = np.asarray(table, np.float64)
    a = a[head] if a.ndim == 3 else a
    k = (a.shape[0] - 1) // 2
    products = q_h @ a.T  # [n_q][2k+1]
    return np.take_along_axis(products, np.clip(rel, -k, k) + k, axis=1)


def quantize_i8(x):
    """Symmetric int8 quantisation of the rows of x [tokens][heads][dim] (float32 or float16),
    from the definition: scale = max|row| / 127 in float32 (0 for an all-zero row), int8 =
    round-half-away-from-zero(x / scale), the quotient in float32, clamped to [-127, 127].
    Returns (int8 array, float32 scales [tokens][heads])."""
    x = np.asarray(x, np.float32)
    scales = np.abs(x).max(axis=2) / np.float32(127)
    safe = np.where(scales == 0, np.float32(1), scales)
    quotient = (x / safe[:, :, None]).astype(np.float64)  # the float32 quotient, exactly
    rounded = np.sign(quotient) * np.floor(np.abs(quotient) + 0.5)  # halves away from zero
    q = np.where(scales[:, :, None] == 0, 0, np.clip(rounded, -127, 127))
    return q.astype(np.int8), scales.astype(np.float32)


def dequantize(x):
    """A q / k / v operand as float64: the int8 pair (int8 [tokens][heads][d], float32 scales
    [tokens][heads]) as scales * int8, any other array as it is."""
    if isinstance(x, tuple):
        data, scales = x
        return np.asarray(data, np.float64) * np.asarray(scales, np.float64)[:, :, None]
    return np.asarray(x, np.float64)


def _two_pi():
    """2 pi to 80 digits (the decimal module documentation's pi recipe)."""
    with decimal.localcontext() as ctx:
        ctx.prec = 84
        three = decimal.Decimal(3)
        lasts, t, s, n, na, d, da = 0, three, 3, 1, 0, 0, 24
        while s != lasts:
            lasts = s
            n, na = n + na, na + 8
            d, da = d + da, da + 32
            t = (t * n) / d
            s += t
        return 2 * s


TWO_PI = _two_pi()


def rope_angle(position, theta):
    """position * theta reduced to [-pi, pi], exactly in decimal, as a float: the same
    accuracy at position 10^12 as at 10."""
    with decimal.localcontext() as ctx:
        ctx.prec = 80
        angle = decimal.Decimal(int(position)) * decimal.Decimal(float(theta))
        turns = (angle / TWO_PI).to_integral_value(decimal.ROUND_HALF_EVEN)
        return float(angle - turns * TWO_PI)


def scaled_thetas(scaling, base, rotary):
    """theta_i of a scaling dict (HF's rope_type definitions, numpy over the whole table) and
    its attention factor; float32 scalars as the library stores them."""
    f32 = lambda key, default=0.0: float(np.float32(scaling.get(key) or default))
    kind = scaling["type"]
    if kind == "ntk":
        base = base * f32("factor") ** (rotary / (rotary - 2.0))
    theta = base ** (-np.arange(0, rotary, 2, dtype=np.float64) / rotary)
    gain = 1.0
    if kind == "linear":
        theta = theta / f32("factor")
    elif kind == "llama3":
        factor, low, high = f32("factor"), f32("low_freq_factor"), f32("high_freq_factor")
        context = float(scaling["original_max_position"])
        wavelength = 2 * np.pi / theta
        smooth = (context / wavelength - low) / (high - low)
        blended = (1 - smooth) * theta / factor + smooth * theta
        theta = np.where(wavelength < context / high, theta,
                         np.where(wavelength > context / low, theta / factor, blended))
    elif kind == "yarn":
        factor, context = f32("factor"), float(scaling["original_max_position"])
        dim = lambda rotations: (rotary * np.log(context / (rotations * 2 * np.pi))
                                 / (2 * np.log(base)))
        lo, hi = dim(f32("beta_fast", 32.0)), dim(f32("beta_slow", 1.0))
        if scaling.get("truncate", True):
            lo, hi = np.floor(lo), np.ceil(hi)
        lo, hi = max(lo, 0.0), min(hi, rotary - 1.0)
        ramp = np.clip((np.arange(rotary // 2) - lo) / (hi - lo), 0, 1)
        theta = theta / factor * ramp + theta * (1 - ramp)
        gain = 0.1 * np.log(factor) + 1 if factor > 1 else 1.0
    elif kind == "longrope":
        context = scaling["original_max_position"]
        use_long = (scaling.get("sequence_length") or 0) > context
        theta = theta / np.asarray(scaling["long_factor" if use_long else "short_factor"])
        ratio = (scaling.get("max_position") or 0) / context
        gain = np.sqrt(1 + np.log(ratio) / np.log(context)) if ratio > 1 else 1.0
    elif kind == "inv_freq":
        theta = np.asarray(scaling["inv_freq"], np.float64)
    if scaling.get("attention_factor"):
        gain = f32("attention_factor")
    return list(theta), float(gain)


def rope_params(rope, head_dim):
    """(interleaved, rotary_dims, thetas, gain) of the binding's rope= form, None when off:
    theta_i = base^(-2i / rotary_dims) (or its scaling family's) / linear_scale in float64,
    base and linear_scale rounded to float32 as the library stores them; gain the attention
    factor multiplying cos and sin."""
    if rope is None or rope == "none":
        return None
    rope = {"pairing": rope} if isinstance(rope, str) else rope
    rotary = rope.get("rotary_dims") or head_dim
    base = float(np.float32(rope.get("base") or 10000.0))
    linear_scale = float(np.float32(rope.get("linear_scale") or 1.0))
    scaling = rope.get("scaling")
    if rope.get("inv_freq") is not None:
        scaling = {"type": "inv_freq", "inv_freq": rope["inv_freq"],
                   "attention_factor": rope.get("attention_factor")}
    thetas, gain = scaled_thetas(scaling or {"type": "none"}, base, rotary)
    thetas = [t / linear_scale for t in thetas]
    return rope["pairing"] == "interleaved", rotary, thetas, gain


def rotate(x, positions, rope):
    """x [tokens][heads][d] rotated as RoPE does for tokens at positions (int64 [tokens]):
    pair i, (2i, 2i+1) interleaved or (i, i + rotary_dims/2) halves, turned by
    position * theta_i and scaled by the attention factor g:
    (x0, x1) -> g (x0 cos - x1 sin, x0 sin + x1 cos). Float64."""
    x = np.array(x, np.float64)
    params = rope_params(rope, x.shape[2])
    if params is None:
        return x
    interleaved, rotary, thetas, gain = params
    half = rotary // 2
    first = np.arange(0, rotary, 2) if interleaved else np.arange(half)
    second = first + 1 if interleaved else first + half
    angles = np.array([[rope_angle(p, theta) for theta in thetas] for p in positions])
    cos, sin = gain * np.cos(angles)[:, None, :], gain * np.sin(angles)[:, None, :]
    x0, x1 = x[:, :, first].copy(), x[:, :, second].copy()
    x[:, :, first] = x0 * cos - x1 * sin
    x[:, :, second] = x0 * sin + x1 * cos
    return x


def attention(q, k, v, scheme="none", causal=False, window=0, valid_kv=None, bidirectional=None,
              q_start=0, k_start=0, q_positions=None, k_positions=None, scale=None, rope=None,
              softcap=None, sinks=None, allowed=None, **bias_args):
    """q [n_q][heads][d], k [n_kv][kv_heads][d], v [n_kv][kv_heads][dv] -> float64
    [n_q][heads][dv]; a query that sees no key gets zeros. q and k may be the int8 pair
    (int8 array, float32 row scales), dequantised first. Positions: q_start + t or q_positions
    (likewise k); rope: the binding's form, q and k rotated at their positions (after
    dequantisation). scheme "shaw_vector": score = scale * q_i . (k_j + a[clip(key - query,
    -k, k) + k]), table= [heads][2k+1][d] or [2k+1][d]. softcap c: the content score x
    becomes c tanh(x / c) before the bias (Gemma 2); sinks [heads]: one more logit per head in
    the denominator (gpt-oss). allowed: bool [n_q][n_kv], the pairs that may attend (torch
    SDPA's bool attn_mask), besides the other masks."""
    q, k, v = dequantize(q), dequantize(k), dequantize(v)
    (n_q, heads, d), (n_kv, kv_heads, _) = q.shape, k.shape
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    bidirectional = (not causal) if bidirectional is None else bidirectional
    q_pos = q_start + np.arange(n_q, dtype=np.int64) if q_positions is None else \
        np.asarray(q_positions, np.int64)
    k_pos = k_start + np.arange(n_kv, dtype=np.int64) if k_positions is None else \
        np.asarray(k_positions, np.int64)
    q, k = rotate(q, q_pos, rope), rotate(k, k_pos, rope)
    rel = k_pos[None, :] - q_pos[:, None]
    visible = np.ones(rel.shape, bool)
    if causal:
        visible &= rel <= 0
    if window:
        visible &= (-rel < window) if causal else (np.abs(rel) < window)
    if valid_kv is not None:
        visible[:, valid_kv:] = False
    if allowed is not None:
        visible &= np.asarray(allowed, bool)
    out = np.zeros((n_q, heads, v.shape[2]))
    for h in range(heads):
        kv = h // (heads // kv_heads)
        scores = scale * q[:, h] @ k[:, kv].T
        if scheme == "shaw_vector":
            scores += scale * shaw_vector_products(q[:, h], rel, bias_args["table"], h)
        if softcap:
            scores = softcap * np.tanh(scores / softcap)
        scores = scores + bias(scheme, rel, h, heads, bidirectional, **bias_args)
        scores = np.where(visible, scores, -np.inf)
        seen = visible.any(axis=1)
        sink = -np.inf if sinks is None else float(sinks[h])
        top = np.where(seen, np.maximum(scores.max(axis=1), sink), 0.0)[:, None]
        p = np.where(visible, np.exp(scores - top), 0.0)
        total = np.where(seen, p.sum(axis=1) + np.exp(sink - top[:, 0]), 1.0)[:, None]
        out[:, h] = (p / total) @ v[:, kv]
    return out
