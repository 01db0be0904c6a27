"""relattn.attention against the plain numpy oracle: every scheme, mask and dtype."""
import zlib

import numpy as np
import pytest

import numpy_attention as oracle
import relattn
from problems import MASKS, SCHEMES, SIZES, TOLERANCE, random_problem


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize("scheme", SCHEMES)
def test_matches_numpy(scheme, mask, dtype, size):
    rng = np.random.default_rng(zlib.crc32(("%s/%s/%s" % (scheme, mask, size)).encode()))
    n_q, n_kv, q_start = SIZES[size]
    q, k, v = random_problem(rng, n_q, n_kv, dtype)
    kind, bias_args = SCHEMES[scheme](q.shape[1], rng)
    args = dict(scheme=kind, q_start=q_start, **bias_args, **MASKS[mask](n_kv))
    out = relattn.attention(q, k, v, **args)
    assert out.dtype == np.float32 and out.shape == (n_q, 4, 12)
    expected = oracle.attention(q, k, v, **args)
    np.testing.assert_allclose(out, expected, rtol=0, atol=TOLERANCE[np.float32])


def test_int8_table_and_f16_output():
    rng = np.random.default_rng(1)
    q, k, v = random_problem(rng, 17, 17, np.float16)
    table = rng.uniform(-2, 2, (4, 32)).astype(np.float32)
    table_i8, scales = relattn.quantize_table_i8(table)
    args = dict(scheme="t5", table=table_i8, table_scales=scales, causal=True)
    out = relattn.attention(q, k, v, out_dtype=np.float16, **args)
    assert out.dtype == np.float16
    np.testing.assert_allclose(out, oracle.attention(q, k, v, **args), rtol=0,
                               atol=TOLERANCE[np.float16])


def test_strided_views_read_in_place():
    rng = np.random.default_rng(2)
    q, k, v = random_problem(rng, 9, 11, np.float32)
    # [heads][tokens][dim] buffers seen as [tokens][heads][dim], and a sliced head dimension.
    q_hm, k_hm = np.ascontiguousarray(q.transpose(1, 0, 2)), np.ascontiguousarray(
        k.transpose(1, 0, 2))
    v_wide = np.concatenate([v, v], axis=2)
    out = relattn.attention(q_hm.transpose(1, 0, 2), k_hm.transpose(1, 0, 2), v_wide[:, :, :12],
                            scheme="alibi", causal=True)
    np.testing.assert_array_equal(out, relattn.attention(q, k, v, scheme="alibi", causal=True))
    reversed_q = relattn.attention(q[::-1], k, v)  # negative strides: copied
    np.testing.assert_array_equal(reversed_q, relattn.attention(q[::-1].copy(), k, v))


def test_positions_shift_and_explicit_positions():
    rng = np.random.default_rng(3)
    q, k, v = random_problem(rng, 12, 12, np.float32)
    table = rng.uniform(-1, 1, (4, 32)).astype(np.float32)
    base = relattn.attention(q, k, v, scheme="t5", table=table, causal=True)
    far = relattn.attention(q, k, v, scheme="t5", table=table, causal=True,
                            q_start=10**12, k_start=10**12)
    np.testing.assert_array_equal(base, far)
    explicit = relattn.attention(q, k, v, scheme="t5", table=table, causal=True,
                                 q_positions=np.arange(12) + 5, k_positions=np.arange(12) + 5)
    np.testing.assert_array_equal(base, explicit)


def test_threads_give_identical_output():
    rng = np.random.default_rng(4)
    q, k, v = random_problem(rng, 200, 200, np.float16, heads=8, kv_heads=2, d=64, dv=64)
    one = relattn.attention(q, k, v, scheme="alibi", causal=True)
    for threads in (2, 0):
        np.testing.assert_array_equal(
            one, relattn.attention(q, k, v, scheme="alibi", causal=True, threads=threads))


def test_scale_and_query_without_keys():
    rng = np.random.default_rng(5)
    q, k, v = random_problem(rng, 6, 6, np.float32)
    out = relattn.attention(q, k, v, scale=0.3, causal=True, q_start=0, k_start=3)
    np.testing.assert_array_equal(out[:3], 0)  # queries 0..2 precede every key
    np.testing.assert_allclose(out, oracle.attention(q, k, v, scale=0.3, causal=True, k_start=3),
                               atol=TOLERANCE[np.float32], rtol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_t5_hugging_face_layout(dtype):
    # Hugging Face's relative_attention_bias.weight is [num_buckets][heads]; with as many heads
    # as buckets the untransposed weight would have the right shape and a wrong answer.
    rng = np.random.default_rng(71)
    q, k, v = random_problem(rng, 9, 11, np.float32, heads=4, kv_heads=2)
    weight = rng.uniform(-2, 2, (32, 4)).astype(dtype)  # [num_buckets][heads]
    args = dict(scheme="t5", causal=True, max_distance=64)
    expected = oracle.attention(q, k, v, table=weight.T.astype(np.float32), **args)
    got = relattn.attention(q, k, v, table=weight, table_layout="buckets_heads", **args)
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE[np.float32])
    table = relattn.t5_table_from_hf(weight)
    assert table.shape == (4, 32) and table.dtype == dtype and table.flags.c_contiguous
    np.testing.assert_array_equal(relattn.attention(q, k, v, table=table, **args), got)
    with pytest.raises(ValueError, match=r"table_layout='buckets_heads'"):
        relattn.attention(q, k, v, table=weight, **args)  # [32][4] as [heads][buckets]
    with pytest.raises(ValueError, match=r"with 4 heads \(table_layout='buckets_heads'\)"):
        relattn.attention(q, k, v, table=weight.T, table_layout="buckets_heads", **args)
    with pytest.raises(ValueError, match="table_layout: 'hb' is not one of"):
        relattn.attention(q, k, v, table=table, table_layout="hb", **args)
    with pytest.raises(ValueError, match="table_layout: not used by scheme 'alibi'"):
        relattn.attention(q, k, v, scheme="alibi", table_layout="buckets_heads")


def test_heads_tokens_dim_layout_is_the_same_attention():
    rng = np.random.default_rng(73)
    q, k, v = random_problem(rng, 6, 10, np.float32, heads=4, kv_heads=2)
    hq, hk, hv = (np.ascontiguousarray(x.transpose(1, 0, 2)) for x in (q, k, v))  # [H][N][D]
    args = dict(scheme="alibi", causal=True, q_start=4, return_lse=True)
    o, lse = relattn.attention(q, k, v, **args)
    ho, hlse = relattn.attention(hq, hk, hv, layout="heads_tokens_dim", **args)
    assert ho.shape == (4, 6, 12) and hlse.shape == (4, 6)
    np.testing.assert_array_equal(ho, o.transpose(1, 0, 2))
    np.testing.assert_array_equal(hlse, lse.T)
    k8 = relattn.quantize_i8(k)
    hk8 = (np.ascontiguousarray(k8[0].transpose(1, 0, 2)), np.ascontiguousarray(k8[1].T))
    np.testing.assert_array_equal(
        relattn.attention(hq, hk8, hv, layout="heads_tokens_dim"),
        relattn.attention(q, k8, v).transpose(1, 0, 2))
    cache = relattn.KVCache(2, k.shape[2], capacity=16, v_head_dim=12, dtype=np.float32)
    cache.append(k, v)
    np.testing.assert_array_equal(
        cache.attention(hq, causal=True, q_start=4, layout="heads_tokens_dim"),
        cache.attention(q, causal=True, q_start=4).transpose(1, 0, 2))
    with pytest.raises(ValueError, match="layout: 'bhnd' is not one of tokens_heads_dim, "
                                         "heads_tokens_dim"):
        relattn.attention(q, k, v, layout="bhnd")
