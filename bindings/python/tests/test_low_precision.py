"""bfloat16 inputs and outputs, KV caches storing "q4" (ggml's q4_0) or "bfloat16", and
q4_0 K and V tensors (relattn.quantize_q4, relattn.Q4), against the numpy oracle on the values
they hold."""
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


# --------------------------------------------------------------- q4_0 K and V tensors


def q4_0_blocks(x):
    """x [tokens][heads][d] (d a multiple of 32) through ggml's quantize_row_q4_0_ref, one
    float32 operation at a time as its C loop does, as uint8 [tokens][heads][d / 32 * 18]:
    per block the float16 d (machine byte order), then byte j = nibble j | nibble (j + 16) << 4.
    """
    x = np.asarray(x, np.float32)
    out = bytearray()
    for block in x.reshape(-1, 32):
        amax, vmax = np.float32(0), np.float32(0)
        for value in block:
            if amax < abs(value):
                amax, vmax = abs(value), value
        d = np.float32(vmax / np.float32(-8))
        inv = np.float32(1) / d if d else np.float32(0)
        out += np.float16(d).tobytes()
        for j in range(16):
            x0 = np.float32(block[j] * inv) + np.float32(8.5)
            x1 = np.float32(block[j + 16] * inv) + np.float32(8.5)
            out.append(min(15, int(x0)) | min(15, int(x1)) << 4)
    return np.frombuffer(bytes(out), np.uint8).reshape(x.shape[:2] + (x.shape[2] // 32 * 18,))


def q4_0_values(blocks):
    """The values uint8 q4_0 blocks [tokens][heads][bytes] hold, from the definition:
    (nibble - 8) * d, the low nibble of byte i value i of its block, the high one value i + 16."""
    b = np.asarray(blocks, np.uint8).reshape(-1, 18)
    d = b[:, :2].copy().view(np.float16).astype(np.float32)  # [blocks][1]
    low, high = (b[:, 2:] & 15).astype(np.float32), (b[:, 2:] >> 4).astype(np.float32)
    values = np.concatenate([low, high], axis=1) - 8
    return (values * d).astype(np.float32).reshape(blocks.shape[:2] + (-1,))


def q4_problem(rng, n_kv, kv_heads=2, dim=64, v_dim=64):
    k = rng.uniform(-1, 1, (n_kv, kv_heads, dim)).astype(np.float32)
    v = rng.uniform(-1, 1, (n_kv, kv_heads, v_dim)).astype(np.float32)
    return k, v


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_quantize_q4_matches_ggml_byte_for_byte(dtype):
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((6, 3, 96)) * 3).astype(dtype)
    x[0, 0, :32] = 0
    x[0, 0, 0] = -0.0  # an all-zero block: ggml's max stays +0, so d = -0
    x[1, 2, 32:64] = 1.5
    x[1, 2, 40] = -1.5  # ties of |x|: the first is kept (d = 1.5 / -8)
    x[2, 1, 64:] = rng.uniform(-5e5, 5e5, 32) if dtype == np.float32 else 6e4
    blocks = relattn.quantize_q4(x)
    assert blocks.dtype == np.uint8 and blocks.shape == (6, 3, 3 * 18)
    np.testing.assert_array_equal(blocks, q4_0_blocks(x))
    assert blocks[0, 0, :2].view(np.float16)[0] == 0 and np.signbit(
        blocks[0, 0, :2].view(np.float16)[0])
    np.testing.assert_array_equal(q4_0_values(blocks), q4_0_round_trip(x.astype(np.float32)))
    # A strided view ([heads][tokens][dim] memory) quantises as its values do.
    view = np.ascontiguousarray(x.transpose(1, 0, 2)).transpose(1, 0, 2)
    np.testing.assert_array_equal(relattn.quantize_q4(view), blocks)


def test_quantize_q4_is_what_a_q4_cache_stores():
    """The library's own rule: a cache with k_dtype = v_dtype = "q4" holds, per KV head, the
    rows of quantize_q4 (K and V each a run of capacity rows per head), tiny and zero blocks
    included. (Where those runs lie in the cache's bytes is the library's business: the test
    only finds each once.)"""
    rng = np.random.default_rng(12)
    k, v = q4_problem(rng, 24, kv_heads=2, dim=64, v_dim=96)
    k[0, 0, :32] = 0
    k[0, 0, 0] = -0.0
    k[1, 1, :32] *= np.float32(1e-39)  # a subnormal d: 1 / d overflows
    k[1, 1, 3] = 0
    v[2, 0, 32:64] *= np.float32(1e-37)
    v[3, 1, :32] *= np.float32(1e-5)  # d a float16 subnormal
    cache = relattn.KVCache(2, 64, capacity=24, v_head_dim=96, dtype=np.float32, k_dtype="q4",
                            v_dtype="q4")
    cache.append(k, v)
    data = cache.tobytes()
    for name, x in (("k", k), ("v", v)):
        per_head = relattn.quantize_q4(x).transpose(1, 0, 2).tobytes()
        assert data.count(per_head) == 1, name


@pytest.mark.parametrize("k_form, v_form", [("q4", "q4"), ("q4", "f32"), ("f16", "q4"),
                                            ("q4", "i8")])
@pytest.mark.parametrize("n_q", [1, 3, 40])
def test_q4_tensors_against_the_oracle(k_form, v_form, n_q):
    """Prefill (40 queries) and decode (1, 3) over q4_0 K and / or V tensors: the oracle on
    the values the blocks hold."""
    rng = np.random.default_rng(20 + n_q)
    k, v = q4_problem(rng, 70, v_dim=32)
    q = rng.uniform(-1, 1, (n_q, 4, 64)).astype(np.float32)

    def given(x, form):
        if form == "q4":
            return relattn.Q4(relattn.quantize_q4(x)), q4_0_values(relattn.quantize_q4(x))
        if form == "i8":
            pair = relattn.quantize_i8(x)
            return pair, pair
        x = x.astype(np.float16 if form == "f16" else np.float32)
        return x, x.astype(np.float32)

    (k_arg, k_held), (v_arg, v_held) = given(k, k_form), given(v, v_form)
    args = dict(scheme="alibi", causal=True, q_start=70 - n_q)
    got = relattn.attention(q, k_arg, v_arg, **args)
    expected = oracle.attention(q, k_held, v_held, **args)
    np.testing.assert_allclose(got, expected, rtol=0, atol=ATOL)


@pytest.mark.parametrize("n_q", [1, 40])
def test_q4_tensors_with_rope_layouts_and_bf16(n_q):
    rng = np.random.default_rng(30 + n_q)
    k, v = q4_problem(rng, 50)
    q = rng.uniform(-1, 1, (n_q, 4, 64)).astype(np.float32)
    kb, vb = relattn.quantize_q4(k), relattn.quantize_q4(v)
    kh, vh = q4_0_values(kb), q4_0_values(vb)
    args = dict(scheme="t5", table=rng.uniform(-1, 1, (4, 32)).astype(np.float32),
                causal=True, q_start=50 - n_q, rope="halves")
    expected = oracle.attention(q, kh, vh, **args)
    got = relattn.attention(q, relattn.Q4(kb), relattn.Q4(vb), **args)
    np.testing.assert_allclose(got, expected, rtol=0, atol=ATOL)
    # [heads][tokens][dim] layout: the blocks [heads][tokens][bytes], read in place.
    heads_major = relattn.attention(
        np.ascontiguousarray(q.transpose(1, 0, 2)),
        relattn.Q4(np.ascontiguousarray(kb.transpose(1, 0, 2))),
        relattn.Q4(np.ascontiguousarray(vb.transpose(1, 0, 2))), layout="heads_tokens_dim",
        **args)
    np.testing.assert_array_equal(heads_major.transpose(1, 0, 2), got)
    # Blocks at an odd address (a Q4 element is a byte: no alignment to keep).
    odd = np.frombuffer(b"x" + kb.tobytes(), np.uint8)[1:].reshape(kb.shape)
    assert odd.ctypes.data % 2 == 1
    np.testing.assert_array_equal(relattn.attention(q, relattn.Q4(odd), relattn.Q4(vb), **args),
                                  got)
    # bfloat16 queries beside Q4 keys and values.
    qb = relattn.to_bf16(q)
    np.testing.assert_allclose(
        relattn.attention(qb, relattn.Q4(kb), relattn.Q4(vb), dtype="bfloat16", **args),
        oracle.attention(relattn.from_bf16(qb), kh, vh, **args), rtol=0, atol=ATOL)


def test_q4_tensors_agree_with_a_q4_cache():
    """Decode over Q4 tensors and over a Q4 cache holding the same blocks."""
    rng = np.random.default_rng(40)
    k, v = q4_problem(rng, 33)
    q = rng.uniform(-1, 1, (2, 4, 64)).astype(np.float32)
    cache = relattn.KVCache(2, 64, capacity=40, dtype=np.float32, k_dtype="q4", v_dtype="q4")
    cache.append(k, v)
    args = dict(scheme="alibi", causal=True, q_start=33)
    tensors = relattn.attention(q, relattn.Q4(relattn.quantize_q4(k)),
                                relattn.Q4(relattn.quantize_q4(v)), **args)
    np.testing.assert_allclose(cache.attention(q, **args), tensors, rtol=0, atol=ATOL)


def test_q4_errors():
    rng = np.random.default_rng(50)
    k, v = q4_problem(rng, 8)
    q = rng.uniform(-1, 1, (2, 4, 64)).astype(np.float32)
    kb = relattn.quantize_q4(k)
    with pytest.raises(ValueError, match="x: dim 40 .*multiple of 32"):
        relattn.quantize_q4(np.zeros((2, 2, 40), np.float32))
    with pytest.raises(TypeError, match="x: dtype int8"):
        relattn.quantize_q4(np.zeros((2, 2, 32), np.int8))
    with pytest.raises(ValueError, match=r"x: expected \[tokens\]\[heads\]\[dim\]"):
        relattn.quantize_q4(np.zeros((2, 64), np.float32))
    bad = k.copy()
    bad[3, 1, 7] = np.nan
    with pytest.raises(relattn.Error, match=r"x element \(token 3, head 1, 7\) = nan") as info:
        relattn.quantize_q4(bad)
    assert info.value.status == 17
    bad[3, 1, 7] = 6e5  # d = 6e5 / 8 overflows float16
    with pytest.raises(relattn.Error, match=r"\(token 3, head 1, 7\) = 600000.*float16") as info:
        relattn.quantize_q4(bad)
    assert info.value.status == 20
    with pytest.raises(ValueError, match="k: Q4 rows of 34 bytes .*multiple of 18"):
        relattn.attention(q, relattn.Q4(kb[:, :, :34]), v)
    with pytest.raises(ValueError, match=r"k: head_dim 32 \(Q4 rows of 18 bytes\) differs from "
                                         "q's 64"):
        relattn.attention(q, relattn.Q4(kb[:, :, :18]), v)
    with pytest.raises(ValueError, match="v: shape .*tokens and heads must match"):
        relattn.attention(q, relattn.Q4(kb), relattn.Q4(relattn.quantize_q4(v[:5])))
    with pytest.raises(TypeError, match="v: Q4 blocks of dtype int8: expected uint8"):
        relattn.attention(q, k, relattn.Q4(kb.view(np.int8)))
    with pytest.raises(ValueError, match="k: Q4 blocks of shape"):
        relattn.attention(q, relattn.Q4(kb[0]), v)
    with pytest.raises(TypeError, match="q: relattn.Q4 blocks are for k and v only"):
        relattn.attention(relattn.Q4(relattn.quantize_q4(q)), relattn.Q4(kb), v)
    with pytest.raises(relattn.Error, match="int8 q needs int8 k"):
        relattn.attention(relattn.quantize_i8(q), relattn.Q4(kb), v)
    cache = relattn.KVCache(2, 64, capacity=8, k_dtype="q4")
    with pytest.raises(TypeError, match="k: relattn.Q4 blocks are not supported here"):
        cache.append(relattn.Q4(kb), v)
    o = relattn.attention(q, k, v)
    with pytest.raises(TypeError, match="o1: relattn.Q4 blocks are not supported here"):
        relattn.merge(relattn.Q4(kb), np.zeros((8, 2), np.float32), o, np.zeros((2, 4),
                                                                              np.float32))
