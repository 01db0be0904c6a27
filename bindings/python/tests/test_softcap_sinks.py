"""Logit soft-capping (softcap=) and learned attention sinks (sinks=) through the binding,
against the numpy oracle: every scheme, prefill and decode, over a KVCache; and the errors."""
import zlib

import numpy as np
import pytest

import numpy_attention as oracle
import relattn
from problems import TOLERANCE, random_problem

SCHEMES = {
    "none": {},
    "alibi": {},
    "t5": {"table": np.random.default_rng(1).uniform(-2, 2, (4, 32)).astype(np.float32)},
    "shaw": {"table": np.random.default_rng(2).uniform(-2, 2, (4, 17)).astype(np.float32)},
    "shaw_vector": {"table": np.random.default_rng(3).uniform(-1, 1, (4, 9, 16))
                    .astype(np.float32)},
}


def rng_for(*parts):
    return np.random.default_rng(zlib.crc32("/".join(map(str, parts)).encode()))


@pytest.mark.parametrize("n_q", [3, 40])
@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_softcap_against_oracle(scheme, n_q):
    rng = rng_for("softcap", scheme, n_q)
    q, k, v = random_problem(rng, n_q, 48, np.float32, d=16)
    args = dict(scheme=scheme, causal=True, q_start=48 - n_q, scale=3.0, softcap=2.0,
                **SCHEMES[scheme])
    got = relattn.attention(q, k, v, **args)
    np.testing.assert_allclose(got, oracle.attention(q, k, v, **args), rtol=0,
                               atol=TOLERANCE[np.float32])
    uncapped = relattn.attention(q, k, v, **dict(args, softcap=None))
    assert np.abs(got - uncapped).max() > 1e-3  # the cap acts (|x| up to ~12 > 2)


@pytest.mark.parametrize("offset", [-30.0, 0.0, 8.0])
@pytest.mark.parametrize("n_q", [2, 40])
@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_sinks_against_oracle(scheme, n_q, offset):
    rng = rng_for("sinks", scheme, n_q, offset)
    q, k, v = random_problem(rng, n_q, 48, np.float32, d=16)
    sinks = (offset + rng.uniform(-2, 2, 4)).astype(np.float32)
    args = dict(scheme=scheme, causal=True, q_start=48 - n_q, sinks=sinks, **SCHEMES[scheme])
    got = relattn.attention(q, k, v, **args)
    np.testing.assert_allclose(got, oracle.attention(q, k, v, **args), rtol=0,
                               atol=TOLERANCE[np.float32])


def test_dominant_sink_gives_near_zero_rows_and_unseen_queries_zero():
    rng = rng_for("dominant")
    q, k, v = random_problem(rng, 6, 10, np.float32, d=16)
    sinks = np.full(4, 40.0, np.float32)
    got = relattn.attention(q, k, v, causal=True, q_start=0, k_start=2, sinks=sinks)
    assert np.all(got[:2] == 0)  # queries 0, 1 see no key: zero rows
    assert np.abs(got[2:]).max() < 1e-15  # e^-40 of each weight


def test_kv_cache_with_softcap_and_sinks():
    rng = rng_for("cache")
    q, k, v = random_problem(rng, 3, 40, np.float32, d=16)
    sinks = rng.uniform(-1, 1, 4).astype(np.float32)
    cache = relattn.KVCache(kv_heads=2, head_dim=16, v_head_dim=12, capacity=64,
                            dtype=np.float32, rope="halves")
    cache.append(k, v)
    got = cache.attention(q, causal=True, q_start=37, scheme="alibi", softcap=5.0,
                          sinks=sinks)
    expected = oracle.attention(q, k, v, causal=True, q_start=37, scheme="alibi",
                                softcap=5.0, sinks=sinks, rope="halves")
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE[np.float32])


@pytest.mark.parametrize("softcap", [-1.0, float("nan"), float("inf"), 1e31])
def test_bad_softcap(softcap):
    q, k, v = random_problem(rng_for("bad"), 2, 4, np.float32, d=16)
    with pytest.raises(relattn.Error) as info:
        relattn.attention(q, k, v, softcap=softcap)
    assert info.value.status == 22  # RELATTN_ERR_BAD_SOFTCAP
    assert "softcap = " in str(info.value)


def test_bad_sinks():
    q, k, v = random_problem(rng_for("bad"), 2, 4, np.float32, d=16)
    with pytest.raises(relattn.Error) as info:
        relattn.attention(q, k, v, sinks=np.array([0, np.nan, 0, 0], np.float32))
    assert info.value.status == 23  # RELATTN_ERR_BAD_SINK
    assert "sinks[1] = nan" in str(info.value)
    with pytest.raises(ValueError, match="sinks: expected shape"):
        relattn.attention(q, k, v, sinks=np.zeros(3, np.float32))
    with pytest.raises(TypeError, match="sinks: dtype float64"):
        relattn.attention(q, k, v, sinks=np.zeros(4))
    with pytest.raises(TypeError, match="softcap: expected a number"):
        relattn.attention(q, k, v, softcap="50")


@pytest.mark.parametrize("rule", ["text", "cache"])
def test_kv_cache_sink_tokens(rule):
    """StreamingLLM: 2 sink tokens and a window of 4 in a ring of 6, after 30 tokens."""
    rng = rng_for("sink tokens", rule)
    _, k, v = random_problem(rng, 1, 30, np.float32, d=16)
    q = rng.uniform(-1, 1, (2, 4, 16)).astype(np.float32)
    cache = relattn.KVCache(kv_heads=2, head_dim=16, v_head_dim=12, capacity=6,
                            dtype=np.float32, ring=True, rope="halves", sink_tokens=2,
                            sink_positions=rule)
    for t in range(30):
        cache.append(k[t:t + 1], v[t:t + 1])
    kept = [0, 1, 26, 27, 28, 29]
    if rule == "text":
        positions, q_start = kept, 30
    else:  # sinks at 0, 1, the window at 2..5, the queries next
        positions, q_start = list(range(6)), 6
    got = cache.attention(q, causal=True, q_start=cache.next_position, scheme="alibi")
    expected = oracle.attention(q, k[kept], v[kept], causal=True, q_start=q_start,
                                k_positions=positions, scheme="alibi", rope="halves")
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE[np.float32])


def test_kv_cache_sink_token_errors():
    with pytest.raises(relattn.Error) as info:
        relattn.KVCache(kv_heads=1, head_dim=8, capacity=4, sink_tokens=2)
    assert info.value.status == 24 and "need ring = 1" in str(info.value)
    with pytest.raises(ValueError, match="sink_positions: 'window'"):
        relattn.KVCache(kv_heads=1, head_dim=8, capacity=4, ring=True, sink_positions="window")
    cache = relattn.KVCache(kv_heads=1, head_dim=8, capacity=4, ring=True, sink_tokens=1,
                            sink_positions="cache")
    with pytest.raises(relattn.Error, match="must be NULL with sink_positions = CACHE"):
        cache.append(np.zeros((1, 1, 8), np.float32), np.zeros((1, 1, 8), np.float32),
                     positions=3)
