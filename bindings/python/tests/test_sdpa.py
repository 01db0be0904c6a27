"""relattn.sdpa, torch SDPA's call in numpy, against the numpy oracle run per batch element
(and against torch itself when it is installed)."""
import numpy as np
import pytest

import numpy_attention as oracle
import relattn
from problems import TOLERANCE


def bhnd(rng, dtype, batch, heads, kv_heads, n_q, n_kv, d, dv):
    """query, key, value in [-1, 1]: [B][H][N][D], [B][H_kv][M][D], [B][H_kv][M][D_v]."""
    def uniform(*shape):
        return rng.uniform(-1, 1, shape).astype(dtype)
    return (uniform(batch, heads, n_q, d), uniform(batch, kv_heads, n_kv, d),
            uniform(batch, kv_heads, n_kv, dv))


def expected(q, k, v, allowed=None, **args):
    """The oracle's float64 [B][H][N][D_v] over [B][H][N][D] inputs; allowed [B][N][M] or None."""
    def tokens_major(x):
        return x.transpose(1, 0, 2)
    return np.stack([tokens_major(oracle.attention(
        tokens_major(q[b]), tokens_major(k[b]), tokens_major(v[b]),
        allowed=None if allowed is None else allowed[b], **args)) for b in range(q.shape[0])])


# (heads, kv_heads, n_q, n_kv, d, dv): MHA, GQA, MQA, a decode step, N > M
SHAPES = [(4, 4, 9, 9, 16, 16), (8, 2, 7, 13, 32, 24), (6, 1, 5, 11, 16, 8),
          (4, 2, 1, 17, 64, 64), (2, 2, 12, 5, 8, 8)]


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_numpy(shape, is_causal, dtype):
    heads, kv_heads, n_q, n_kv, d, dv = shape
    rng = np.random.default_rng(sum(shape) * 2 + is_causal)
    q, k, v = bhnd(rng, dtype, 2, heads, kv_heads, n_q, n_kv, d, dv)
    out = relattn.sdpa(q, k, v, is_causal=is_causal, enable_gqa=heads != kv_heads)
    assert out.shape == (2, heads, n_q, dv) and out.dtype == dtype and out.flags.c_contiguous
    np.testing.assert_allclose(out, expected(q, k, v, causal=is_causal), rtol=0,
                               atol=TOLERANCE[dtype])


def test_without_batch_and_scale():
    rng = np.random.default_rng(1)
    q, k, v = bhnd(rng, np.float32, 1, 4, 2, 6, 8, 16, 12)
    out = relattn.sdpa(q[0], k[0], v[0], is_causal=True, scale=0.3, enable_gqa=True)
    assert out.shape == (4, 6, 12)
    np.testing.assert_array_equal(out, relattn.sdpa(q, k, v, is_causal=True, scale=0.3,
                                                    enable_gqa=True)[0])
    np.testing.assert_allclose(out, expected(q, k, v, causal=True, scale=0.3)[0], rtol=0,
                               atol=TOLERANCE[np.float32])


def test_causal_is_top_left_and_q_start_aligns_bottom_right():
    rng = np.random.default_rng(2)
    q, k, v = bhnd(rng, np.float32, 2, 2, 2, 3, 10, 16, 16)
    top_left = relattn.sdpa(q, k, v, is_causal=True)
    np.testing.assert_allclose(top_left[:, :, 0], v[:, :, 0], rtol=0, atol=1e-6)  # sees key 0
    bottom_right = relattn.sdpa(q, k, v, is_causal=True, q_start=7)
    np.testing.assert_allclose(bottom_right, expected(q, k, v, causal=True, q_start=7), rtol=0,
                               atol=TOLERANCE[np.float32])


@pytest.mark.parametrize("mask_shape", [(6, 9), (1, 6, 9), (2, 1, 6, 9), (2, 1, 1, 9),
                                        (1, 1, 6, 1)])
@pytest.mark.parametrize("is_causal", [False, True])
def test_bool_attn_mask(mask_shape, is_causal):
    rng = np.random.default_rng(len(mask_shape) * 10 + mask_shape[-1] + is_causal)
    q, k, v = bhnd(rng, np.float32, 2, 4, 2, 6, 9, 16, 8)
    mask = rng.random(mask_shape) < 0.6
    out = relattn.sdpa(q, k, v, mask, is_causal=is_causal, enable_gqa=True)
    full = np.broadcast_to(mask.reshape((1,) * (4 - mask.ndim) + mask.shape), (2, 1, 6, 9))
    np.testing.assert_allclose(out, expected(q, k, v, full[:, 0], causal=is_causal), rtol=0,
                               atol=TOLERANCE[np.float32])


def test_fully_masked_query_gets_zeros():
    rng = np.random.default_rng(3)
    q, k, v = bhnd(rng, np.float32, 2, 2, 2, 4, 5, 8, 8)
    mask = np.ones((4, 5), bool)
    mask[2] = False
    out = relattn.sdpa(q, k, v, attn_mask=mask)
    np.testing.assert_array_equal(out[:, :, 2], 0)
    assert np.abs(out[:, :, 1]).max() > 0


def test_relattn_keywords_pass_through():
    rng = np.random.default_rng(4)
    q, k, v = bhnd(rng, np.float16, 2, 4, 2, 7, 7, 16, 16)
    args = dict(scheme="alibi", softcap=30.0)
    out, lse = relattn.sdpa(q, k, v, is_causal=True, enable_gqa=True, return_lse=True,
                            out_dtype=np.float32, **args)
    assert out.dtype == np.float32 and lse.shape == (2, 4, 7)
    np.testing.assert_allclose(out, expected(q, k, v, causal=True, **args), rtol=0,
                               atol=TOLERANCE[np.float32])
    for b in range(2):
        o_b, lse_b = relattn.attention(q[b], k[b], v[b], causal=True, return_lse=True,
                                       layout="heads_tokens_dim", **args)
        np.testing.assert_array_equal(out[b], o_b)
        np.testing.assert_array_equal(lse[b], lse_b)


def test_float64_needs_cast():
    rng = np.random.default_rng(5)
    q, k, v = bhnd(rng, np.float64, 2, 2, 2, 3, 4, 8, 8)
    with pytest.raises(TypeError, match="q: dtype float64 is not supported"):
        relattn.sdpa(q, k, v)
    out = relattn.sdpa(q, k, v, cast=True)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, relattn.sdpa(*(x.astype(np.float32) for x in (q, k, v))))


Q, K, V = bhnd(np.random.default_rng(6), np.float32, 2, 4, 2, 3, 5, 8, 8)


@pytest.mark.parametrize("args, error, message", [
    (dict(attn_bias=np.zeros((2, 4, 3, 5), np.float32)), TypeError,
     "attn_bias: only None is supported: relattn has no dense bias input"),
    (dict(attn_mask=np.zeros((3, 5), np.float32)), TypeError,
     "attn_mask: dtype float32: only a bool mask"),
    (dict(attn_mask=np.ones((2, 4, 3, 5), bool)), ValueError,
     r"attn_mask: shape \(2, 4, 3, 5\): one mask must serve every head"),
    (dict(attn_mask=np.ones((3, 3, 5), bool)), ValueError,
     "attn_mask: shape .* one mask must serve every head"),
    (dict(attn_mask=np.ones((3, 1, 3, 5), bool)), ValueError,
     r"attn_mask: shape \(3, 1, 3, 5\) does not broadcast to \[2\]\[1\]\[3\]\[5\]"),
    (dict(attn_mask=np.ones((1, 1, 1, 3, 5), bool)), ValueError, "at most 4 dimensions"),
    (dict(attn_mask=[[True]]), TypeError, "attn_mask: expected a numpy array"),
    (dict(dropout_p=0.1), ValueError, "dropout_p: 0.1: only 0 is supported"),
    (dict(enable_gqa=False), ValueError, "key: 2 heads, query 4: pass enable_gqa=True"),
    (dict(causal=True), TypeError, "causal: not an sdpa argument .*is_causal"),
    (dict(layout="tokens_heads_dim"), TypeError, "layout: not an sdpa argument"),
    (dict(allowed=np.ones((3, 5), bool)), TypeError, "allowed: not an sdpa argument"),
    (dict(query=Q[0, 0]), ValueError, r"query: expected \[B\]\[H\]\[N\]\[D\] or \[H\]\[N\]\[D\]"),
    (dict(key=K[0]), ValueError, "query, key, value: 4, 3, 4 dimensions: all with a batch"),
    (dict(value=V[:1]), ValueError, "key, value: batch 2, 1: must be query's 2"),
    (dict(out_dtype=np.int8), TypeError, "out_dtype: int8 is not supported"),
    (dict(scheme="t5"), ValueError, "table: required by scheme 't5'"),
])
def test_errors(args, error, message):
    call = dict(query=Q, key=K, value=V, enable_gqa=True)
    call.update(args)
    with pytest.raises(error, match=message):
        relattn.sdpa(**call)


def test_matches_torch():
    torch = pytest.importorskip("torch", reason="torch not installed: sdpa checked against the "
                                                "numpy oracle only")
    functional = torch.nn.functional
    if not hasattr(functional, "scaled_dot_product_attention"):
        pytest.skip("torch %s has no scaled_dot_product_attention (2.0 on)" % torch.__version__)
    rng = np.random.default_rng(7)
    q, k, v = (torch.from_numpy(x) for x in bhnd(rng, np.float32, 2, 8, 2, 6, 9, 32, 16))
    k4, v4 = (x.repeat_interleave(4, dim=1) for x in (k, v))  # GQA as torch < 2.5 spells it
    mask = torch.from_numpy(rng.random((2, 1, 6, 9)) < 0.7)
    mask[..., 0] = True  # torch gives NaN to a query that sees no key
    for args in (dict(is_causal=True), dict(attn_mask=mask), dict(scale=0.2)):
        want = functional.scaled_dot_product_attention(q, k4, v4, **args)
        got = relattn.sdpa(q, k, v, enable_gqa=True, **args)
        np.testing.assert_allclose(got, want.numpy(), rtol=0, atol=2e-6)
