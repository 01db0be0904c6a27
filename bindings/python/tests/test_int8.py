"""int8 Q.K: relattn.quantize_i8 against the numpy oracle's definition (bit for bit);
attention with q and k as (int8, scales) pairs against the oracle run on the dequantised
inputs (the float32 bound: the library multiplies the int8 values exactly and applies the row
scales to each product), for every scheme, with RoPE, strided views; int8 V pairs; a KVCache
storing K, V or both as int8; and the errors (status 17 for a NaN or infinity to quantise)."""
import zlib

import numpy as np
import pytest

import numpy_attention as oracle
import relattn
from problems import HEAD_DIM, MASKS, SCHEMES, SIZES, TOLERANCE, random_problem

# Against the float oracle on the inputs before quantisation, inputs in [-1, 1], d = 16: the
# quantisation error itself (the library's own tests use 5e-3 for d up to 256).
QUANTISED_BOUND = 5e-3


def pair_of(a):
    """The oracle's int8 pair of a, checked to be the library's."""
    data, scales = relattn.quantize_i8(a)
    expected = oracle.quantize_i8(a)
    np.testing.assert_array_equal(data, expected[0])
    np.testing.assert_array_equal(scales, expected[1])
    return data, scales


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("shape", [(1, 1, 1), (7, 3, 16), (5, 2, 129), (2, 4, 256)])
def test_quantize_i8_matches_numpy(shape, dtype):
    rng = np.random.default_rng(zlib.crc32(str(shape).encode()))
    x = (rng.uniform(-1, 1, shape) * rng.uniform(0, 100, shape[:2] + (1,))).astype(dtype)
    x[0, 0] = 0  # an all-zero row: scale 0, int8 0
    data, scales = pair_of(x)
    assert data.dtype == np.int8 and data.shape == shape
    assert scales.dtype == np.float32 and scales.shape == shape[:2] and scales[0, 0] == 0
    assert data.min() >= -127 and data.max() <= 127
    dequantised = oracle.dequantize((data, scales))
    assert np.all(np.abs(dequantised - x) <= scales[:, :, None] / 2 * (1 + 1e-6))


def test_quantize_i8_rounds_halves_away_from_zero():
    x = np.array([[[127, 2.5, -2.5, 0.5, -0.5, 126.5, -127, 0]]], np.float32)  # scale 1
    data, scales = relattn.quantize_i8(x)
    assert scales[0, 0] == 1
    assert data[0, 0].tolist() == [127, 3, -3, 1, -1, 127, -127, 0]


def test_quantize_i8_reads_strided_views():
    rng = np.random.default_rng(31)
    x = rng.uniform(-3, 3, (4, 6, 20)).astype(np.float32)
    head_major = np.ascontiguousarray(x.transpose(1, 0, 2)).transpose(1, 0, 2)
    for view in (head_major, x[::-1], x[:, ::2, :10]):
        data, scales = relattn.quantize_i8(view)
        expected = oracle.quantize_i8(np.ascontiguousarray(view))
        np.testing.assert_array_equal(data, expected[0])
        np.testing.assert_array_equal(scales, expected[1])


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_quantize_i8_rejects_non_finite(value, dtype):
    x = np.ones((3, 2, 5), dtype)
    x[1, 1, 2] = value
    with pytest.raises(relattn.Error) as info:
        relattn.quantize_i8(x)
    assert info.value.status == 17  # RELATTN_ERR_NON_FINITE
    assert str(info.value).startswith("non-finite value to quantise: ")
    assert "(token 1, head 1, 2)" in str(info.value) and "must be finite" in str(info.value)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("int8", ["qk", "k"])
@pytest.mark.parametrize("mask", ["none", "causal", "causal-window-5", "valid-kv"])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_matches_numpy_on_dequantised_inputs(scheme, mask, int8, size):
    rng = np.random.default_rng(zlib.crc32(("%s/%s/%s/%s" % (scheme, mask, int8, size))
                                           .encode()))
    n_q, n_kv, q_start = SIZES[size]
    dtype = np.float16 if int8 == "k" else np.float32  # of v and of a float q
    q, k, v = random_problem(rng, n_q, n_kv, dtype)
    q_arg = pair_of(q) if int8 == "qk" else q
    k_arg = pair_of(k)
    kind, bias_args = SCHEMES[scheme](q.shape[1], rng)
    args = dict(scheme=kind, q_start=q_start, **bias_args, **MASKS[mask](n_kv))
    out = relattn.attention(q_arg, k_arg, v, **args)
    assert out.dtype == np.float32 and out.shape == (n_q, 4, 12)
    np.testing.assert_allclose(out, oracle.attention(q_arg, k_arg, v, **args), rtol=0,
                               atol=TOLERANCE[np.float32])
    np.testing.assert_allclose(out, oracle.attention(q, k, v, **args), rtol=0,
                               atol=QUANTISED_BOUND)


@pytest.mark.parametrize("rope", ["interleaved", {"pairing": "halves", "rotary_dims": 8}])
@pytest.mark.parametrize("size", SIZES)
def test_rope_rotates_the_dequantised_rows(size, rope):
    rng = np.random.default_rng(zlib.crc32(("%s/%s" % (size, rope)).encode()))
    n_q, n_kv, q_start = SIZES[size]
    q, k, v = random_problem(rng, n_q, n_kv, np.float32)
    args = dict(scheme="alibi", causal=True, rope=rope, q_start=q_start + 10**9,
                k_start=10**9)
    out = relattn.attention(pair_of(q), pair_of(k), v, **args)
    np.testing.assert_allclose(out, oracle.attention(pair_of(q), pair_of(k), v, **args),
                               rtol=0, atol=TOLERANCE[np.float32])


def test_f16_output_and_threads():
    rng = np.random.default_rng(32)
    q, k, v = random_problem(rng, 120, 120, np.float16, heads=8, kv_heads=2, d=64, dv=64)
    table = rng.uniform(-2, 2, (8, 32)).astype(np.float32)
    args = dict(scheme="t5", table=table, causal=True)
    q8, k8 = relattn.quantize_i8(q), relattn.quantize_i8(k)
    out = relattn.attention(q8, k8, v, out_dtype=np.float16, **args)
    assert out.dtype == np.float16
    np.testing.assert_allclose(out, oracle.attention(q8, k8, v, **args), rtol=0,
                               atol=TOLERANCE[np.float16])
    one = relattn.attention(q8, k8, v, **args)
    for threads in (2, 0):
        np.testing.assert_array_equal(one, relattn.attention(q8, k8, v, threads=threads, **args))


def test_strided_pairs_read_in_place():
    rng = np.random.default_rng(33)
    q, k, v = random_problem(rng, 9, 11, np.float32)
    (q8, qs), (k8, ks) = relattn.quantize_i8(q), relattn.quantize_i8(k)
    expected = relattn.attention((q8, qs), (k8, ks), v, scheme="alibi", causal=True)

    def head_major(a):  # a [heads][tokens]... buffer seen as [tokens][heads]...
        return np.ascontiguousarray(np.swapaxes(a, 0, 1)).swapaxes(0, 1)
    got = relattn.attention((head_major(q8), head_major(qs)), (k8, head_major(ks)), v,
                            scheme="alibi", causal=True)
    np.testing.assert_array_equal(got, expected)
    wide = np.repeat(qs, 2, axis=1)[:, ::2]  # strided scales, read in place
    np.testing.assert_array_equal(
        relattn.attention((q8, wide), (k8, ks), v, scheme="alibi", causal=True), expected)
    reversed_q = relattn.attention((q8[::-1], qs[::-1]), (k8, ks), v)  # copied
    np.testing.assert_array_equal(
        reversed_q, relattn.attention((q8[::-1].copy(), qs[::-1].copy()), (k8, ks), v))


def test_scales_multiply_each_row():
    rng = np.random.default_rng(34)
    q, k, v = random_problem(rng, 6, 8, np.float32)
    (q8, qs), (k8, ks) = relattn.quantize_i8(q), relattn.quantize_i8(k)
    qs2, ks2 = qs * 3, ks.copy()
    ks2[2, 1] = 0  # a zero scale: every score with that key is 0
    out = relattn.attention((q8, qs2), (k8, ks2), v)
    np.testing.assert_allclose(out, oracle.attention((q8, qs2), (k8, ks2), v), rtol=0,
                               atol=TOLERANCE[np.float32])


@pytest.mark.parametrize("v_dtype", [np.float32, np.float16])
def test_kv_cache_int8_keys(v_dtype):
    rng = np.random.default_rng(zlib.crc32(str(np.dtype(v_dtype)).encode()))
    q, k, v = random_problem(rng, 30, 30, np.float32)
    cache = relattn.KVCache(2, HEAD_DIM, capacity=32, v_head_dim=12, dtype=v_dtype,
                            k_dtype=np.int8)
    assert cache.k_dtype == np.int8 and cache.v_dtype == v_dtype
    cache.append(k[:20], v[:20])
    for t in range(20, 30, 3):  # decode steps: K quantised at append as quantize_i8 does
        cache.append(k[t:t + 3], v[t:t + 3])
        n = min(t + 3, 30)
        stored_k, stored_v = pair_of(k[:n]), v[:n].astype(v_dtype)
        step = q[n - 1:n]
        # Up to 7 queries over an int8 K cache take the decode pipeline, which quantises a
        # float q per row too: the result is that of quantize_i8(q) and quantize_i8(k).
        expected = oracle.attention(pair_of(step), stored_k, stored_v, scheme="alibi",
                                    causal=True, q_start=n - 1)
        got = cache.attention(step, scheme="alibi", causal=True, q_start=n - 1)
        np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE[np.float32])
        got_i8 = cache.attention(relattn.quantize_i8(step), scheme="alibi", causal=True,
                                 q_start=n - 1)
        np.testing.assert_allclose(got_i8, expected, rtol=0, atol=TOLERANCE[np.float32])
    # A prefill over the cache (more than 7 queries) takes q as given.
    table = rng.uniform(-1, 1, (4, 2 * 5 + 1, HEAD_DIM)).astype(np.float32)
    for q_arg in (q, pair_of(q)):
        args = dict(scheme="shaw_vector", table=table, causal=True, q_start=0)
        got = cache.attention(q_arg, **args)
        np.testing.assert_allclose(got, oracle.attention(q_arg, pair_of(k), v.astype(v_dtype),
                                                         **args),
                                   rtol=0, atol=TOLERANCE[np.float32])
    assert len(cache) == 30


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("k_int8", [False, True])
def test_int8_values_match_numpy_on_dequantised_inputs(k_int8, size):
    rng = np.random.default_rng(zlib.crc32(("v/%s/%s" % (k_int8, size)).encode()))
    n_q, n_kv, q_start = SIZES[size]
    q, k, v = random_problem(rng, n_q, n_kv, np.float32)
    k_arg, v_arg = pair_of(k) if k_int8 else k, pair_of(v)
    args = dict(scheme="alibi", causal=True, q_start=q_start)
    out = relattn.attention(q, k_arg, v_arg, **args)
    np.testing.assert_allclose(out, oracle.attention(q, k_arg, v_arg, **args), rtol=0,
                               atol=TOLERANCE[np.float32])
    np.testing.assert_allclose(out, oracle.attention(q, k, v, **args), rtol=0,
                               atol=QUANTISED_BOUND)


@pytest.mark.parametrize("k_dtype", [np.float16, np.int8])
def test_kv_cache_int8_values(k_dtype):
    rng = np.random.default_rng(zlib.crc32(("cache-v/%s" % np.dtype(k_dtype)).encode()))
    q, k, v = random_problem(rng, 30, 30, np.float32)
    cache = relattn.KVCache(2, HEAD_DIM, capacity=32, v_head_dim=12, k_dtype=k_dtype,
                            v_dtype=np.int8)
    assert cache.k_dtype == k_dtype and cache.v_dtype == np.int8
    cache.append(k[:20], v[:20])
    for t in range(20, 30, 3):  # V quantised at append as quantize_i8 does
        cache.append(k[t:t + 3], v[t:t + 3])
        n = min(t + 3, 30)
        stored_k = pair_of(k[:n]) if k_dtype == np.int8 else k[:n].astype(np.float16)
        step = q[n - 1:n]
        q_ref = pair_of(step) if k_dtype == np.int8 else step
        expected = oracle.attention(q_ref, stored_k, pair_of(v[:n]), scheme="alibi",
                                    causal=True, q_start=n - 1)
        got = cache.attention(step, scheme="alibi", causal=True)  # q after the last token
        np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE[np.float32])
    copy = relattn.KVCache.frombytes(cache.tobytes())
    assert copy.v_dtype == np.int8
    np.testing.assert_array_equal(copy.attention(q[29:], causal=True),
                                  cache.attention(q[29:], causal=True))


def test_kv_cache_int8_keys_ring_and_rope():
    rng = np.random.default_rng(35)
    q, k, v = random_problem(rng, 1, 50, np.float32)
    start = 10**12
    cache = relattn.KVCache(2, HEAD_DIM, capacity=16, v_head_dim=12, dtype=np.float32,
                            k_dtype=np.int8, ring=True)
    for t in range(0, 50, 5):
        cache.append(k[t:t + 5], v[t:t + 5], positions=start + t if t == 0 else None)
    assert len(cache) == 16 and cache.next_position == start + 50
    args = dict(scheme="t5", table=rng.uniform(-1, 1, (4, 32)).astype(np.float32),
                causal=True, q_start=start + 49)
    got = cache.attention(q, **args)
    expected = oracle.attention(pair_of(q), pair_of(k[34:]), v[34:], k_start=start + 34,
                                **args)
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE[np.float32])
    # With rope the cache quantises the rotated keys (rotated in float32 by the library): only
    # the quantisation bound against the float oracle applies.
    roped = relattn.KVCache(2, HEAD_DIM, capacity=64, v_head_dim=12, dtype=np.float32,
                            k_dtype=np.int8, rope="halves")
    roped.append(k, v, positions=start)
    got = roped.attention(q, scheme="alibi", causal=True, q_start=start + 49)
    np.testing.assert_allclose(got, oracle.attention(q, k, v, scheme="alibi", causal=True,
                                                     rope="halves", q_start=start + 49,
                                                     k_start=start),
                               rtol=0, atol=QUANTISED_BOUND)


def test_kv_cache_dtype_errors():
    with pytest.raises(TypeError, match="dtype: int8 is not supported: use float32 or float16 "
                                        r"\(k_dtype=np.int8"):
        relattn.KVCache(1, 8, capacity=2, dtype=np.int8)
    with pytest.raises(TypeError, match="v_dtype: float64 is not supported: use float32 or "
                                        "float16 or int8"):
        relattn.KVCache(1, 8, capacity=2, v_dtype=np.float64)
    with pytest.raises(TypeError, match="k_dtype: float64 is not supported: use float32 or "
                                        "float16 or int8"):
        relattn.KVCache(1, 8, capacity=2, k_dtype=np.float64)
    cache = relattn.KVCache(1, 8, capacity=2, k_dtype=np.int8)
    k = np.ones((1, 1, 8), np.float32)
    with pytest.raises(TypeError, match="k: expected a numpy array, got tuple"):
        cache.append(relattn.quantize_i8(k), k)  # the cache quantises K itself
    f16 = relattn.KVCache(1, 8, capacity=2)
    f16.append(k, k)
    with pytest.raises(relattn.Error, match="int8 q needs int8 k") as info:
        f16.attention(relattn.quantize_i8(k))
    assert info.value.status == 13  # RELATTN_ERR_UNSUPPORTED
