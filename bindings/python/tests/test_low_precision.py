"""bfloat16 inputs and outputs, and KV caches storing "q4" (ggml's q4_0) or "bfloat16",
against the numpy oracle on the values they hold."""
import numpy as np
import pytest

import numpy_attention as oracle
import relattn

ATOL = 5e-6  # the f32 bound


def q4_0_round_trip(x):
    """x [..., d] (d a multiple of 32) through ggml's quantize_row_q4_0_ref and back."""
    b = np.asarray(x, np.float32).reshape(-1, 32)
    pick = np.argmax(np.abs(b), axis=1)
    m = b[np.arange(len(b)), pick]
    d = (m / np.float32(-8)).astype(np.float32)
    inv = np.where(d != 0, np.float32(1) / np.where(d != 0, d, 1), 0).astype(np.float32)
    nib = np.minimum(15, (b * inv[:, None] + np.float32(8.5)).astype(np.int32))
    d16 = d.astype(np.float16).astype(np.float32)
    return ((nib - 8) * d16[:, None]).astype(np.float32).reshape(np.shape(x))


def test_to_bf16_rounds_to_nearest_even_and_back():
    x = np.array([1.0, 1.00390625, 1.01171875, -0.0, np.inf, 3.4e38], np.float32)
    bits = relattn.to_bf16(x)
    assert bits.dtype == np.uint16
    assert list(bits) == [0x3F80, 0x3F80, 0x3F82, 0x8000, 0x7F80, 0x7F80]
    assert np.isnan(relattn.from_bf16(relattn.to_bf16(np.float32(np.nan))))
    y = np.random.default_rng(1).standard_normal(1000).astype(np.float32)
    r = relattn.from_bf16(relattn.to_bf16(y))
    assert np.all(np.abs(r - y) <= np.abs(y) * 2.0**-8)
    np.testing.assert_array_equal(relattn.to_bf16(r), relattn.to_bf16(y))


@pytest.mark.parametrize("n_q", [1, 3, 40])
def test_bf16_inputs_and_output(n_q):
    rng = np.random.default_rng(n_q)
    q = rng.uniform(-1, 1, (n_q, 4, 32)).astype(np.float32)
    k = rng.uniform(-1, 1, (50, 2, 32)).astype(np.float32)
    v = rng.uniform(-1, 1, (50, 2, 32)).astype(np.float32)
    qb, kb, vb = (relattn.to_bf16(a) for a in (q, k, v))
    args = dict(scheme="alibi", causal=True, q_start=50 - n_q)
    expected = oracle.attention(*(relattn.from_bf16(a) for a in (qb, kb, vb)), **args)
    got = relattn.attention(qb, kb, vb, dtype="bfloat16", **args)
    np.testing.assert_allclose(got, expected, rtol=0, atol=ATOL)
    mixed = relattn.attention(q, kb, v, dtype="bfloat16", **args)  # only k as bf16 bits
    np.testing.assert_allclose(mixed, oracle.attention(q, relattn.from_bf16(kb), v, **args),
                               rtol=0, atol=ATOL)
    out = relattn.attention(qb, kb, vb, dtype="bfloat16", out_dtype="bfloat16", **args)
    assert out.dtype == np.uint16
    np.testing.assert_allclose(relattn.from_bf16(out), expected, rtol=0, atol=2.5e-3)
    with pytest.raises(TypeError, match="uint16"):
        relattn.attention(qb, kb, vb, **args)  # uint16 without dtype="bfloat16"
    with pytest.raises(ValueError, match="bfloat16"):
        relattn.attention(q, k, v, dtype="bf16", **args)


@pytest.mark.parametrize("k_dtype, v_dtype", [("q4", "q4"), ("q4", np.float16),
                                              (np.float16, "q4"), ("bfloat16", "bfloat16"),
                                              (np.int8, "q4")])
@pytest.mark.parametrize("n_q", [1, 5, 40])
def test_cache_storage_dtypes(k_dtype, v_dtype, n_q):
    rng = np.random.default_rng(7 + n_q)
    k = rng.uniform(-1, 1, (70, 2, 64)).astype(np.float32)
    v = rng.uniform(-1, 1, (70, 2, 64)).astype(np.float32)
    q = rng.uniform(-1, 1, (n_q, 4, 64)).astype(np.float32)
    cache = relattn.KVCache(kv_heads=2, head_dim=64, capacity=70, dtype=np.float32,
                            k_dtype=k_dtype, v_dtype=v_dtype)
    cache.append(k, v)
    assert cache.k_dtype == (k_dtype if isinstance(k_dtype, str) else np.dtype(k_dtype))

    def held(x, dtype):
        if isinstance(dtype, str):
            return q4_0_round_trip(x) if dtype == "q4" else relattn.from_bf16(relattn.to_bf16(x))
        return x.astype(dtype).astype(np.float32)

    query = q
    got = cache.attention(q, scheme="alibi", causal=True, q_start=70 - n_q)
    kh = held(k, k_dtype) if k_dtype is not np.int8 else k
    if k_dtype is np.int8:  # int8 K: the oracle on quantize_i8's rows (and, in decode, q's)
        k8, s8 = relattn.quantize_i8(k)
        kh = k8.astype(np.float32) * s8[..., None]
        if n_q <= 7:
            q8, qs = relattn.quantize_i8(q)
            q = q8.astype(np.float32) * qs[..., None]
    expected = oracle.attention(q, kh, held(v, v_dtype), scheme="alibi", causal=True,
                                q_start=70 - n_q)
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-5)
    copy = relattn.KVCache.frombytes(cache.tobytes())
    assert copy.k_dtype == cache.k_dtype and copy.v_dtype == cache.v_dtype
    np.testing.assert_array_equal(
        copy.attention(query, scheme="alibi", causal=True, q_start=70 - n_q), got)


def test_cache_dtype_errors():
    with pytest.raises(TypeError, match="q4"):
        relattn.KVCache(kv_heads=1, head_dim=64, capacity=4, k_dtype="q5")
    with pytest.raises(relattn.Error, match="multiple of 32"):
        relattn.KVCache(kv_heads=1, head_dim=40, capacity=4, k_dtype="q4")
    with pytest.raises(TypeError, match="float32 or float16"):
        relattn.KVCache(kv_heads=1, head_dim=64, capacity=4, dtype="q4")


def test_precision_fast_stays_within_its_bound():
    rng = np.random.default_rng(3)
    q, k, v = (relattn.to_bf16(rng.uniform(-1, 1, (n, h, 64)).astype(np.float32))
               for n, h in ((90, 4), (90, 2), (90, 2)))
    args = dict(scheme="alibi", causal=True, dtype="bfloat16")
    expected = oracle.attention(*(relattn.from_bf16(a) for a in (q, k, v)), scheme="alibi",
                                causal=True)
    fast = relattn.attention(q, k, v, precision="fast", **args)
    np.testing.assert_allclose(fast, expected, rtol=0, atol=4e-3)
    exact = relattn.attention(q, k, v, **args)
    np.testing.assert_allclose(exact, expected, rtol=0, atol=ATOL)
    with pytest.raises(ValueError, match="precision"):
        relattn.attention(q, k, v, precision="quick", **args)
