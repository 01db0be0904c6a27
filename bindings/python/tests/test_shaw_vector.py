"""scheme="shaw_vector" (Shaw et al.'s vector form, score = scale * q . (k + a[clip(key -
query, -k, k) + k])) against the numpy oracle: one table per head and one shared, k from 0 to
the limit 64, prefill and decode, with RoPE (q rotated before its products with the table),
f16 output, over a KVCache; the errors of its table argument are in test_errors.py."""
import zlib

import numpy as np
import pytest

import numpy_attention as oracle
import relattn
from problems import HEAD_DIM, SIZES, TOLERANCE, random_problem


def shaw_table(rng, k, per_head, heads=4):
    shape = ((heads,) if per_head else ()) + (2 * k + 1, HEAD_DIM)
    return rng.uniform(-1, 1, shape).astype(np.float32)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("rope", [None, "interleaved", "halves"])
@pytest.mark.parametrize("k", [0, 1, 5, 64])
@pytest.mark.parametrize("per_head", [True, False], ids=["per-head", "shared"])
def test_matches_numpy(per_head, k, rope, size):
    rng = np.random.default_rng(zlib.crc32(("%s/%d/%s/%s" % (per_head, k, rope, size)).encode()))
    n_q, n_kv, q_start = SIZES[size]
    q, k_, v = random_problem(rng, n_q, n_kv, np.float16)
    args = dict(scheme="shaw_vector", table=shaw_table(rng, k, per_head), q_start=q_start,
                causal=size == "decode", rope=rope)
    out = relattn.attention(q, k_, v, **args)
    assert out.dtype == np.float32 and out.shape == (n_q, 4, 12)
    np.testing.assert_allclose(out, oracle.attention(q, k_, v, **args), rtol=0,
                               atol=TOLERANCE[np.float32])


def test_far_offsets_are_clipped_and_positions_shift():
    rng = np.random.default_rng(21)
    q, k, v = random_problem(rng, 9, 300, np.float32)
    args = dict(scheme="shaw_vector", table=shaw_table(rng, 3, True), window=200)
    near = relattn.attention(q, k, v, q_start=150, **args)
    np.testing.assert_allclose(near, oracle.attention(q, k, v, q_start=150, **args), rtol=0,
                               atol=TOLERANCE[np.float32])
    far = relattn.attention(q, k, v, q_start=10**12 + 150, k_start=10**12, **args)
    np.testing.assert_array_equal(near, far)


def test_f16_output_and_threads():
    rng = np.random.default_rng(22)
    q, k, v = random_problem(rng, 150, 150, np.float16)
    args = dict(scheme="shaw_vector", table=shaw_table(rng, 8, False), causal=True)
    out = relattn.attention(q, k, v, out_dtype=np.float16, **args)
    assert out.dtype == np.float16
    np.testing.assert_allclose(out, oracle.attention(q, k, v, **args), rtol=0,
                               atol=TOLERANCE[np.float16])
    one = relattn.attention(q, k, v, **args)
    np.testing.assert_array_equal(one, relattn.attention(q, k, v, threads=2, **args))


def test_shared_table_equals_the_same_table_per_head():
    rng = np.random.default_rng(23)
    q, k, v = random_problem(rng, 19, 23, np.float32)
    shared = shaw_table(rng, 4, False)
    got = relattn.attention(q, k, v, scheme="shaw_vector", table=shared)
    np.testing.assert_array_equal(
        got, relattn.attention(q, k, v, scheme="shaw_vector", table=np.stack([shared] * 4)))
    np.testing.assert_array_equal(got, relattn.attention(q, k, v, scheme="shaw_vector",
                                                         table=shared, shaw_k=4))


def test_zero_table_is_no_bias():
    rng = np.random.default_rng(24)
    q, k, v = random_problem(rng, 19, 23, np.float32)
    zeros = np.zeros((4, 2 * 6 + 1, HEAD_DIM), np.float32)
    np.testing.assert_allclose(relattn.attention(q, k, v, scheme="shaw_vector", table=zeros),
                               relattn.attention(q, k, v), rtol=0, atol=1e-6)


@pytest.mark.parametrize("dtype, rope", [(np.float32, "halves"), (np.float16, None)])
def test_kv_cache_decode_and_prefill(dtype, rope):
    rng = np.random.default_rng(zlib.crc32(str(np.dtype(dtype)).encode()))
    q, k, v = random_problem(rng, 30, 30, np.float32)
    cache = relattn.KVCache(2, HEAD_DIM, capacity=32, v_head_dim=12, dtype=dtype, rope=rope)
    cache.append(k, v)
    for per_head, n_q in ((True, 1), (False, 3), (True, 20)):
        args = dict(scheme="shaw_vector", table=shaw_table(rng, 5, per_head), causal=True,
                    q_start=30 - n_q)
        got = cache.attention(q[:n_q], **args)
        expected = oracle.attention(q[:n_q], k.astype(dtype), v.astype(dtype), rope=rope,
                                    **args)
        np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE[np.float32])
