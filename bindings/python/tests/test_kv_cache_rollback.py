"""KVCache rollback and save / restore: truncate(n) then appending equals never having appended
the dropped tokens; tobytes / frombytes / copy give an equal, independent cache; corrupted or
short bytes raise relattn.Error; attention's queries follow the cache by default."""
import ctypes

import numpy as np
import pytest

import relattn
from relattn import _capi


def tokens(rng, n, heads=2, dim=16):
    return (rng.uniform(-1, 1, (n, heads, dim)).astype(np.float32),
            rng.uniform(-1, 1, (n, heads, dim)).astype(np.float32))


ARGS = dict(scheme="alibi", causal=True)


@pytest.mark.parametrize("kind", [
    dict(ring=False),
    dict(ring=True),
    dict(ring=True, sink_tokens=3, sink_positions="cache", rope="halves"),
    dict(ring=True, sink_tokens=3, k_dtype=np.int8, rope="interleaved"),
])
def test_truncate_then_append_equals_never_having_appended(kind):
    rng = np.random.default_rng(5)
    k, v = tokens(rng, 40)
    extra_k, extra_v = tokens(rng, 6)
    q = rng.uniform(-1, 1, (1, 4, 16)).astype(np.float32)
    a = relattn.KVCache(2, 16, capacity=32, dtype=np.float32, **kind)
    b = relattn.KVCache(2, 16, capacity=32, dtype=np.float32, **kind)
    a.append(k[:10], v[:10])
    b.append(k[:10], v[:10])
    a.append(extra_k, extra_v)  # dropped again
    a.truncate(10)
    assert len(a) == 10 and a.next_position == 10
    for lo, hi in ((10, 12), (12, 40 if kind["ring"] else 32)):  # the second wraps a ring
        a.append(k[lo:hi], v[lo:hi])
        b.append(k[lo:hi], v[lo:hi])
        assert a.next_position == b.next_position and len(a) == len(b)
        np.testing.assert_array_equal(a.attention(q, **ARGS), b.attention(q, **ARGS))


def test_truncate_of_a_wrapped_ring_keeps_sinks_and_the_oldest_window_tokens():
    rng = np.random.default_rng(6)
    k, v = tokens(rng, 50)
    q = rng.uniform(-1, 1, (2, 4, 16)).astype(np.float32)
    cache = relattn.KVCache(2, 16, capacity=20, dtype=np.float32, ring=True, sink_tokens=4)
    cache.append(k, v)  # holds tokens 0..3 and 34..49
    cache.truncate(9)  # 0..3 and 34..38
    assert len(cache) == 9 and cache.next_position == 39
    kept = np.r_[0:4, 34:39]
    expected = relattn.attention(q, k[kept], v[kept], k_positions=kept, q_start=39, **ARGS)
    np.testing.assert_allclose(cache.attention(q, **ARGS), expected, rtol=0, atol=1e-5)


def test_truncate_edges():
    rng = np.random.default_rng(7)
    k, v = tokens(rng, 5)
    cache = relattn.KVCache(2, 16, capacity=8)
    cache.append(k, v)
    before = cache.tobytes()
    cache.truncate(5)
    assert cache.tobytes() == before
    for n in (-1, 6):
        with pytest.raises(relattn.Error, match="n_tokens = %d: must be in 0..5" % n) as info:
            cache.truncate(n)
        assert info.value.status == 2  # RELATTN_ERR_BAD_DIMENSION
        assert cache.tobytes() == before
    with pytest.raises(ValueError, match="n_tokens"):
        cache.truncate(2**64)
    cache.truncate(0)
    assert len(cache) == 0 and cache.next_position == 0


def test_tobytes_frombytes_and_copy():
    rng = np.random.default_rng(8)
    k, v = tokens(rng, 30)
    q = rng.uniform(-1, 1, (1, 4, 16)).astype(np.float32)
    cache = relattn.KVCache(2, 16, capacity=24, v_head_dim=16, k_dtype=np.int8,
                            v_dtype=np.float16, ring=True, sink_tokens=2,
                            sink_positions="cache", rope={"pairing": "halves", "base": 500.0})
    cache.append(k, v)
    data = cache.tobytes()
    size = ctypes.c_size_t()
    assert isinstance(data, bytes) and len(data) % 64 == 0
    restored = relattn.KVCache.frombytes(data)
    for name in ("kv_heads", "head_dim", "v_head_dim", "capacity", "ring", "sink_tokens",
                 "sink_positions", "k_dtype", "v_dtype", "rope"):
        assert getattr(restored, name) == getattr(cache, name), name
    assert bytes(restored.rope_desc) == bytes(cache.rope_desc)
    assert len(restored) == 24 and restored.next_position == 30
    np.testing.assert_array_equal(restored.attention(q, **ARGS), cache.attention(q, **ARGS))
    copy = cache.copy()
    copy.append(k[:3], v[:3])
    assert cache.tobytes() == data and len(copy) == 24 and copy.next_position == 33
    np.testing.assert_array_equal(restored.attention(q, **ARGS), cache.attention(q, **ARGS))
    # relattn_kv_cache_get_desc of the restored cache gives the desc the cache was made with
    # (v_head_dim resolved, the rope's table pointers NULL).
    desc = _capi.KvCacheDesc()
    _capi.check(_capi.lib.relattn_kv_cache_get_desc(restored.handle, ctypes.byref(desc)))
    assert (desc.n_kv_heads, desc.head_dim, desc.v_head_dim, desc.capacity, desc.ring,
            desc.n_sink_tokens, desc.sink_positions) == (2, 16, 16, 24, 1, 2, 1)
    assert desc.k_dtype == _capi.I8 and desc.v_dtype == _capi.F16
    assert desc.rope.base == 500.0 and desc.rope.scaling.inv_freq is None
    _capi.check(_capi.lib.relattn_kv_cache_size(ctypes.byref(desc), ctypes.byref(size)))
    assert size.value == len(data)
    assert relattn.KVCache.frombytes(bytearray(data)).next_position == 30
    assert relattn.KVCache.frombytes(memoryview(data)[:]).next_position == 30


def test_frombytes_refuses_short_and_corrupted_bytes():
    rng = np.random.default_rng(9)
    k, v = tokens(rng, 4)
    cache = relattn.KVCache(2, 16, capacity=8, dtype=np.float32)
    cache.append(k, v)
    data = cache.tobytes()
    for short in (b"", data[:100], data[:-1]):
        with pytest.raises(relattn.Error, match="cache_bytes") as info:
            relattn.KVCache.frombytes(short)
        assert info.value.status == 11  # RELATTN_ERR_WORKSPACE_TOO_SMALL
    bad_magic = bytes([data[0] ^ 1]) + data[1:]
    with pytest.raises(relattn.Error, match="memory: magic"):
        relattn.KVCache.frombytes(bad_magic)
    with pytest.raises(relattn.Error, match="not a relattn KV cache"):
        relattn.KVCache.frombytes(bytes(len(data)))
    # A V value made NaN (the last region: V rows follow K's groups).
    v_nan = bytearray(data)
    v_bytes = np.frombuffer(v_nan, np.float32)
    where = np.flatnonzero(v_bytes == v[1, 0, 3])
    assert where.size == 1
    v_nan[4 * where[0]:4 * where[0] + 4] = np.float32(np.nan).tobytes()
    with pytest.raises(relattn.Error, match="slot 1 of KV head 0: V value nan is not finite"):
        relattn.KVCache.frombytes(bytes(v_nan))


def test_attention_queries_follow_the_cache_by_default():
    rng = np.random.default_rng(10)
    k, v = tokens(rng, 12)
    q = rng.uniform(-1, 1, (2, 4, 16)).astype(np.float32)
    cache = relattn.KVCache(2, 16, capacity=16, dtype=np.float32, rope="halves")
    cache.append(k, v, positions=100)
    assert cache.next_position == 112
    got = cache.attention(q, **ARGS)
    np.testing.assert_array_equal(got, cache.attention(q, q_start=112, **ARGS))
    expected = relattn.attention(q, k, v, k_start=100, q_start=112, rope="halves", **ARGS)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    assert not np.array_equal(got, cache.attention(q, q_start=0, **ARGS))
    at = np.array([105, 111])
    np.testing.assert_allclose(cache.attention(q, q_positions=at, **ARGS),
                               relattn.attention(q, k, v, k_start=100, q_positions=at,
                                                 rope="halves", **ARGS), rtol=0, atol=1e-5)
