"""KVCache: attention over appended tokens equals attention over the same keys and values
(stored as the cache's dtype) at the same positions, in plain and ring mode."""
import numpy as np
import pytest

import numpy_attention as oracle
import relattn
from problems import TOLERANCE, random_problem


def test_decode_steps_match_full_attention():
    rng = np.random.default_rng(11)
    q, k, v = random_problem(rng, 30, 30, np.float32)
    cache = relattn.KVCache(kv_heads=2, head_dim=16, v_head_dim=12, capacity=32)
    cache.append(k[:20], v[:20])  # prefill, then one token per step
    for t in range(20, 30):
        cache.append(k[t:t + 1], v[t:t + 1])
        got = cache.attention(q[t:t + 1], scheme="alibi", causal=True, q_start=t)
        k16, v16 = k[:t + 1].astype(np.float16), v[:t + 1].astype(np.float16)
        expected = oracle.attention(q[t:t + 1], k16, v16, scheme="alibi", causal=True, q_start=t)
        np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE[np.float32])
    assert len(cache) == 30 and cache.next_position == 30


def test_ring_keeps_the_last_tokens():
    rng = np.random.default_rng(12)
    q, k, v = random_problem(rng, 1, 50, np.float32)
    table = rng.uniform(-1, 1, (4, 32)).astype(np.float32)
    cache = relattn.KVCache(2, 16, capacity=16, v_head_dim=12, dtype=np.float32, ring=True)
    start = 10**12
    for t in range(0, 50, 5):
        cache.append(k[t:t + 5], v[t:t + 5], positions=start + t if t == 0 else None)
    assert len(cache) == 16 and cache.next_position == start + 50
    args = dict(scheme="t5", table=table, causal=True)
    got = cache.attention(q, q_start=start + 49, **args)
    expected = relattn.attention(q, k[34:], v[34:], q_start=start + 49, k_start=start + 34, **args)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_full_cache_and_bad_arguments():
    cache = relattn.KVCache(1, 8, capacity=2)
    k = np.zeros((3, 1, 8), np.float32)
    with pytest.raises(relattn.Error, match="") as info:
        cache.append(k, k)
    assert info.value.status == 15 and len(cache) == 0  # RELATTN_ERR_CACHE_FULL, unchanged
    with pytest.raises(ValueError, match=r"k: shape \(3, 1, 8\): expected \[n\]\[2\]\[8\]"):
        relattn.KVCache(2, 8, capacity=4).append(k, k)
    with pytest.raises(ValueError, match="q: head_dim 4 differs from the cache's 8"):
        cache.attention(np.zeros((1, 1, 4), np.float32))
    with pytest.raises(ValueError, match="not used with a KVCache"):
        cache.attention(np.zeros((1, 1, 8), np.float32), k_start=3)
    with pytest.raises(TypeError, match="dtype: int8 is not supported"):
        relattn.KVCache(1, 8, capacity=2, dtype=np.int8)
    cache.append(k[:2], k[:2], positions=[5, 9])
    assert cache.next_position == 10
    cache.clear()
    assert len(cache) == 0 and cache.next_position == 0
