"""attention(return_lse=True), merge(), first_valid_kv and the scale / valid_kv defaults
against the numpy float64 reference."""
import numpy as np
import pytest

import relattn
import numpy_attention as oracle

RNG = np.random.default_rng(5)


def inputs(n_q, n_kv, heads=4, kv_heads=2, d=16):
    q = RNG.uniform(-1, 1, (n_q, heads, d)).astype(np.float32)
    k = RNG.uniform(-1, 1, (n_kv, kv_heads, d)).astype(np.float32)
    v = RNG.uniform(-1, 1, (n_kv, kv_heads, d)).astype(np.float32)
    return q, k, v


def numpy_lse(q, k, scale=None, causal=False, q_start=0):
    """ln sum_j e^(scale q.k) per (query, head), no bias."""
    group = q.shape[1] // k.shape[1]
    kk = np.repeat(k.astype(np.float64), group, axis=1)
    s = np.einsum("ihd,jhd->ihj", q.astype(np.float64), kk)
    s *= scale if scale is not None else 1 / np.sqrt(q.shape[2])
    if causal:
        hidden = np.arange(k.shape[0])[None, :] > (q_start + np.arange(q.shape[0]))[:, None]
        s[np.broadcast_to(hidden[:, None, :], s.shape)] = -np.inf
    m = s.max(axis=2, keepdims=True)
    return (m + np.log(np.exp(s - m).sum(axis=2, keepdims=True)))[..., 0]


def test_lse_matches_numpy():
    q, k, v = inputs(20, 50)
    o, lse = relattn.attention(q, k, v, causal=True, q_start=30, return_lse=True)
    assert lse.shape == (20, 4) and lse.dtype == np.float32
    assert np.abs(lse - numpy_lse(q, k, causal=True, q_start=30)).max() < 1e-5
    assert np.array_equal(o, relattn.attention(q, k, v, causal=True, q_start=30))


def test_merge_of_key_ranges_equals_one_call():
    q, k, v = inputs(9, 120)
    sinks = RNG.uniform(-1, 1, 4).astype(np.float32)
    cuts = [0, 17, 64, 100, 120]
    o, lse = relattn.attention(q, k[:17], v[:17], k_start=0, scheme="alibi", return_lse=True)
    for a, b in zip(cuts[1:-1], cuts[2:]):
        o2, lse2 = relattn.attention(q, k[a:b], v[a:b], k_start=a, scheme="alibi",
                                     return_lse=True)
        o, lse = relattn.merge(o, lse, o2, lse2, sinks=sinks if b == 120 else None)
    whole, whole_lse = relattn.attention(q, k, v, scheme="alibi", sinks=sinks, return_lse=True)
    assert np.abs(o - whole).max() < 1e-5
    assert np.abs(lse - whole_lse).max() < 1e-5
    o16, _ = relattn.merge(o, lse, o2, np.full_like(lse, -np.inf), out_dtype=np.float16)
    assert o16.dtype == np.float16 and np.abs(o16 - o).max() < 1e-3


def test_merge_errors():
    o = np.zeros((2, 2, 4), np.float32)
    lse = np.zeros((2, 2), np.float32)
    with pytest.raises(ValueError, match="o2: shape"):
        relattn.merge(o, lse, np.zeros((2, 2, 3), np.float32), lse)
    with pytest.raises(ValueError, match="lse2: expected shape"):
        relattn.merge(o, lse, o, np.zeros((2, 3), np.float32))
    bad = lse.copy()
    bad[1, 1] = np.inf
    with pytest.raises(relattn.Error, match=r"lse_b\[3\] = \+inf"):
        relattn.merge(o, lse, o, bad)


def test_first_valid_kv_is_left_padding():
    q, k, v = inputs(5, 80)
    o = relattn.attention(q, k, v, first_valid_kv=30, k_start=0, q_start=70)
    expected = oracle.attention(q, k[30:], v[30:], k_start=30, q_start=70)
    assert np.abs(o - expected).max() < 1e-5
    o, lse = relattn.attention(q, k, v, first_valid_kv=80, return_lse=True)
    assert not o.any() and np.all(lse == -np.inf)


def test_scale_zero_and_valid_kv_zero_are_errors():
    q, k, v = inputs(2, 3)
    with pytest.raises(ValueError, match="scale = 0"):
        relattn.attention(q, k, v, scale=0.0)
    with pytest.raises(ValueError, match="valid_kv"):
        relattn.attention(q, k, v, valid_kv=0)


def test_packed_sequences_equal_each_alone():
    lengths = [5, 40, 1, 23]
    n = sum(lengths)
    q, k, v = inputs(n, n)
    seg = np.repeat(np.arange(len(lengths)), lengths)
    pos = np.concatenate([np.arange(length) for length in lengths])
    o = relattn.attention(q, k, v, scheme="alibi", causal=True, q_segments=seg, k_segments=seg,
                          q_positions=pos, k_positions=pos)
    at = 0
    for length in lengths:
        alone = relattn.attention(q[at:at + length], k[at:at + length], v[at:at + length],
                                  scheme="alibi", causal=True)
        assert np.abs(o[at:at + length] - alone).max() < 1e-5
        at += length


def test_tree_mask_bool_and_packed():
    prefix, draft = 100, 12
    q, k, v = inputs(draft, prefix + draft)
    rng = np.random.default_rng(1)
    parent = [-1] + [int(rng.integers(0, t)) for t in range(1, draft)]
    allowed = np.eye(draft, dtype=bool)
    for t in range(1, draft):
        allowed[t] |= allowed[parent[t]]
    o = relattn.attention(q, k, v, allowed=allowed, allowed_key_offset=prefix)
    for t in range(draft):
        keys = list(range(prefix)) + [prefix + j for j in np.flatnonzero(allowed[t])]
        alone = oracle.attention(q[t:t + 1], k[keys], v[keys], q_start=0, k_positions=keys)
        assert np.abs(o[t] - alone[0]).max() < 1e-5
    packed = np.zeros((draft, 1), np.uint64)
    for t in range(draft):
        packed[t, 0] = sum(1 << int(j) for j in np.flatnonzero(allowed[t]))
    assert np.array_equal(o, relattn.attention(q, k, v, allowed=packed,
                                               allowed_key_offset=prefix))
    with pytest.raises(ValueError, match="allowed: expected bool"):
        relattn.attention(q, k, v, allowed=allowed[:, :5], allowed_key_offset=prefix)
    with pytest.raises(ValueError, match="give both or neither"):
        relattn.attention(q, k, v, q_segments=np.zeros(draft, int))
