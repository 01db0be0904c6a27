"""rope= (rotary position embedding, fused) against the numpy oracle, which rotates q and k in
float64 at their positions: both pairings, partial rotary dimensions, base, linear scaling,
f32 / f16, prefill and decode, positions near 0 and 10^9, with biases and masks, over a
KVCache; and the errors of the rope argument."""
import zlib

import numpy as np
import pytest

import numpy_attention as oracle
import relattn
from problems import TOLERANCE, random_problem

# name -> rope arguments beyond the pairing (head_dim 16)
ROPES = {
    "default": {},
    "partial-8": {"rotary_dims": 8},
    "partial-2": {"rotary_dims": 2},
    "base-500000": {"base": 500000.0},
    "linear-scale-4": {"linear_scale": 4.0},
    "all": {"rotary_dims": 12, "base": 1e6, "linear_scale": 0.5},
}

# name -> (n_q, n_kv, q_start, k_start): prefill and a decode step of 3 queries at the end,
# from position 0 and from about 10^9
STARTS = {
    "prefill": (19, 23, 0, 0),
    "decode": (3, 40, 37, 0),
    "prefill-1e9": (19, 23, 10**9 + 5, 10**9 + 1),
    "decode-1e9": (3, 40, 10**9 + 37, 10**9),
}


def rope_arg(pairing, name):
    return {"pairing": pairing, **ROPES[name]} if ROPES[name] else pairing


@pytest.mark.parametrize("start", STARTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("variant", ROPES)
@pytest.mark.parametrize("pairing", ["interleaved", "halves"])
def test_matches_numpy(pairing, variant, dtype, start):
    rng = np.random.default_rng(zlib.crc32(("%s/%s/%s" % (pairing, variant, start)).encode()))
    n_q, n_kv, q_start, k_start = STARTS[start]
    q, k, v = random_problem(rng, n_q, n_kv, dtype)
    args = dict(rope=rope_arg(pairing, variant), q_start=q_start, k_start=k_start,
                causal=start.startswith("decode"))
    out = relattn.attention(q, k, v, **args)
    assert out.dtype == np.float32 and out.shape == (n_q, 4, 12)
    np.testing.assert_allclose(out, oracle.attention(q, k, v, **args), rtol=0,
                               atol=TOLERANCE[np.float32])


@pytest.mark.parametrize("pairing", ["interleaved", "halves"])
@pytest.mark.parametrize("scheme", ["alibi", "t5", "shaw"])
def test_with_biases_masks_and_f16_output(scheme, pairing):
    rng = np.random.default_rng(zlib.crc32(("%s/%s" % (scheme, pairing)).encode()))
    q, k, v = random_problem(rng, 21, 21, np.float16)
    bias_args = {"alibi": {}, "shaw": {"table": rng.uniform(-2, 2, (4, 13)).astype(np.float32)},
                 "t5": {"table": rng.uniform(-2, 2, (4, 16)).astype(np.float32),
                        "max_distance": 40}}[scheme]
    args = dict(scheme=scheme, causal=True, window=9, rope={"pairing": pairing, "rotary_dims": 8},
                q_start=10**9, k_start=10**9, **bias_args)
    expected = oracle.attention(q, k, v, **args)
    np.testing.assert_allclose(relattn.attention(q, k, v, **args), expected, rtol=0,
                               atol=TOLERANCE[np.float32])
    out16 = relattn.attention(q, k, v, out_dtype=np.float16, **args)
    assert out16.dtype == np.float16
    np.testing.assert_allclose(out16, expected, rtol=0, atol=TOLERANCE[np.float16])


def test_explicit_positions_and_string_and_dict_forms():
    rng = np.random.default_rng(21)
    q, k, v = random_problem(rng, 6, 9, np.float32)
    q_pos = np.array([3, 10**9, -7, 2**40, 5, 5])
    k_pos = np.array([0, 1, 2, 10**9 - 3, -100, 2**40 - 1, 8, 9, 10**6])
    args = dict(q_positions=q_pos, k_positions=k_pos, rope="halves")
    np.testing.assert_allclose(relattn.attention(q, k, v, **args),
                               oracle.attention(q, k, v, **args), rtol=0,
                               atol=TOLERANCE[np.float32])
    # A pairing name is the dict with every default spelt out.
    spelt = {"pairing": "halves", "rotary_dims": 16, "base": 10000.0, "linear_scale": 1.0}
    np.testing.assert_array_equal(relattn.attention(q, k, v, **args),
                                  relattn.attention(q, k, v, **{**args, "rope": spelt}))
    np.testing.assert_array_equal(relattn.attention(q, k, v, rope="none"),
                                  relattn.attention(q, k, v))


def test_rotation_depends_on_offsets_only():
    rng = np.random.default_rng(22)
    q, k, v = random_problem(rng, 10, 10, np.float32)
    base = relattn.attention(q, k, v, rope="interleaved", causal=True)
    far = relattn.attention(q, k, v, rope="interleaved", causal=True, q_start=10**12,
                            k_start=10**12)
    np.testing.assert_allclose(far, base, rtol=0, atol=TOLERANCE[np.float32])
    assert np.abs(relattn.attention(q, k, v, causal=True) - base).max() > 1e-3  # rope acts


@pytest.mark.parametrize("storage", [np.float32, np.float16])
@pytest.mark.parametrize("pairing", ["interleaved", "halves"])
def test_kv_cache_prefill_and_decode(pairing, storage):
    rng = np.random.default_rng(zlib.crc32(("cache/%s/%s" % (pairing, storage)).encode()))
    q, k, v = random_problem(rng, 30, 30, np.float32)
    rope = {"pairing": pairing, "rotary_dims": 12, "base": 500000.0, "linear_scale": 2.0}
    cache = relattn.KVCache(kv_heads=2, head_dim=16, v_head_dim=12, capacity=32, dtype=storage,
                            rope=rope)
    assert cache.rope == rope
    start = 10**9
    cache.append(k[:20], v[:20], positions=start)

    def expected(t0, t1):
        """Queries t0..t1 over keys 0..t1: the cache stores the keys rotated, then rounded to
        its dtype, and V rounded to it."""
        k_pos = start + np.arange(t1)
        k_stored = oracle.rotate(k[:t1], k_pos, rope).astype(storage)
        q_rot = oracle.rotate(q[t0:t1], start + np.arange(t0, t1), rope)
        return oracle.attention(q_rot, k_stored, v[:t1].astype(storage), causal=True,
                                q_start=start + t0, k_start=start)
    # f16 storage rounds the rotated keys: their half ulp is beyond the f32 bound
    tolerance = TOLERANCE[np.float32] if storage == np.float32 else TOLERANCE[np.float16]
    prefill = cache.attention(q[:20], causal=True, q_start=start)  # the cache's rope
    np.testing.assert_allclose(prefill, expected(0, 20), rtol=0, atol=tolerance)
    if storage == np.float32:  # K rotated at append = K rotated in the call
        np.testing.assert_allclose(
            prefill, oracle.attention(q[:20], k[:20], v[:20], causal=True, q_start=start,
                                      k_start=start, rope=rope), rtol=0, atol=tolerance)
    for t in range(20, 30):
        cache.append(k[t:t + 1], v[t:t + 1])
        got = cache.attention(q[t:t + 1], causal=True, q_start=start + t, rope=rope)
        np.testing.assert_allclose(got, expected(t, t + 1), rtol=0, atol=tolerance)


def test_ring_cache_with_rope_equals_attention_over_the_last_tokens():
    rng = np.random.default_rng(23)
    q, k, v = random_problem(rng, 1, 50, np.float32)
    cache = relattn.KVCache(2, 16, capacity=16, v_head_dim=12, dtype=np.float32, ring=True,
                            rope="halves")
    start = 10**9
    for t in range(0, 50, 5):
        cache.append(k[t:t + 5], v[t:t + 5], positions=start + t if t == 0 else None)
    args = dict(scheme="alibi", causal=True, rope="halves", q_start=start + 49)
    got = cache.attention(q, **args)
    expected = oracle.attention(q, k[34:], v[34:], k_start=start + 34, **args)
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE[np.float32])
    np.testing.assert_allclose(got, relattn.attention(q, k[34:], v[34:], k_start=start + 34,
                                                      **args), rtol=0, atol=1e-6)


Q = np.zeros((4, 4, 8), np.float32)
K = np.zeros((5, 2, 8), np.float32)
V = np.zeros((5, 2, 6), np.float32)

ERRORS = [
    # (rope argument, exception, text the message must contain)
    ("half", ValueError, "rope: pairing 'half' is not one of none, interleaved, halves"),
    ({"pairing": "neox"}, ValueError, "rope: pairing 'neox' is not one of"),
    ({"pairing": 2}, ValueError, "rope: pairing 2 is not one of"),
    ({"rotary_dims": 4}, ValueError, "rope: 'pairing' is required"),
    ({"pairing": "halves", "theta": 2.0}, ValueError, "rope: unknown key 'theta'"),
    ({"pairing": "none", "base": 2.0}, ValueError, "rope: base: not used with pairing 'none'"),
    (2, TypeError, "rope: expected None, a pairing name or a dict, got int"),
    ({"pairing": "halves", "rotary_dims": 4.0}, TypeError, "rope.rotary_dims: expected an int"),
    ({"pairing": "halves", "rotary_dims": -2}, ValueError, "rope.rotary_dims: -2 is outside"),
    ({"pairing": "halves", "base": "1e4"}, TypeError, "rope.base: expected a number, got str"),
    ({"pairing": "halves", "linear_scale": True}, TypeError, "rope.linear_scale: expected a"),
    # judged by the library
    ({"pairing": "halves", "rotary_dims": 5}, relattn.Error, "rope.rotary_dims = 5: must be even"),
    ({"pairing": "interleaved", "rotary_dims": 10}, relattn.Error,
     "rope.rotary_dims = 10: must be even and in 2..head_dim = 8"),
    ({"pairing": "halves", "base": 1.0}, relattn.Error, "rope.base = 1: must be finite and > 1"),
    ({"pairing": "halves", "base": float("inf")}, relattn.Error, "rope.base = inf"),
    ({"pairing": "halves", "linear_scale": -1.0}, relattn.Error, "rope.linear_scale = -1"),
]


@pytest.mark.parametrize("rope, error, text", ERRORS, ids=[e[2][:40] for e in ERRORS])
def test_bad_rope(rope, error, text):
    with pytest.raises(error) as info:
        relattn.attention(Q, K, V, rope=rope)
    assert text in str(info.value)
    with pytest.raises(error) as info:  # the cache checks its rope when it is made
        relattn.KVCache(2, 8, capacity=4, rope=rope)
    assert text in str(info.value)


def test_rope_positions_and_cache_mismatch():
    with pytest.raises(relattn.Error, match=r"q_pos: positions .* with rope: must be within"):
        relattn.attention(Q, K, V, rope="halves", q_start=2**53 - 2, k_start=2**53 - 4)
    relattn.attention(Q, K, V, q_start=2**60, k_start=2**60)  # without rope: any int64
    cache = relattn.KVCache(2, 8, capacity=8, rope="halves")
    with pytest.raises(relattn.Error, match="with the cache's rope: must be within"):
        cache.append(K, K, positions=2**53 - 2)
    assert len(cache) == 0
    cache.append(K, K)
    for other in ["interleaved", "none", {"pairing": "halves", "rotary_dims": 4}]:
        with pytest.raises(relattn.Error, match="rope: must equal the kv_cache's rope") as info:
            cache.attention(Q, rope=other)
        assert info.value.status == 21  # RELATTN_ERR_BAD_ROPE
    plain = relattn.KVCache(2, 8, capacity=8)
    plain.append(K, K)
    assert plain.rope is None
    with pytest.raises(relattn.Error, match="must equal the kv_cache's rope"):
        plain.attention(Q, rope="halves")
