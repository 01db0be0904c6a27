"""attention(..., out=): the result written into the caller's array, strided or not, and the
errors for an array it cannot be written to."""
import numpy as np
import pytest

import relattn
from problems import random_problem

OVERLAP = 16  # RELATTN_ERR_OVERLAP


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_out_is_written_and_returned(dtype):
    rng = np.random.default_rng(1)
    q, k, v = random_problem(rng, 6, 8, np.float32)
    out = np.full((6, 4, 12), 7, dtype)
    got, lse = relattn.attention(q, k, v, causal=True, out=out, return_lse=True)
    assert got is out
    want, want_lse = relattn.attention(q, k, v, causal=True, out_dtype=dtype, return_lse=True)
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(lse, want_lse)
    relattn.attention(q, k, v, out=out, out_dtype=dtype)  # a matching out_dtype is accepted


def test_strided_out_writes_only_its_elements():
    rng = np.random.default_rng(2)
    q, k, v = random_problem(rng, 5, 5, np.float32)
    wide = np.full((4, 5, 30), 3, np.float32)  # [heads][tokens][2 * 12 + 6]
    got = relattn.attention(q, k, v, scheme="alibi", out=wide.transpose(1, 0, 2)[:, :, 6:18])
    assert np.shares_memory(got, wide)
    np.testing.assert_array_equal(wide[:, :, 6:18].transpose(1, 0, 2),
                                  relattn.attention(q, k, v, scheme="alibi"))
    assert (wide[:, :, :6] == 3).all() and (wide[:, :, 18:] == 3).all()


def test_out_in_heads_tokens_dim_layout():
    rng = np.random.default_rng(3)
    q, k, v = (np.ascontiguousarray(x.transpose(1, 0, 2))
               for x in random_problem(rng, 4, 6, np.float32))
    out = np.empty((4, 4, 12), np.float32)  # [heads][n_q][v_head_dim]
    got = relattn.attention(q, k, v, layout="heads_tokens_dim", out=out)
    assert np.shares_memory(got, out) and got.shape == out.shape
    np.testing.assert_array_equal(out, relattn.attention(q, k, v, layout="heads_tokens_dim"))


def test_out_errors():
    q, k, v = random_problem(np.random.default_rng(4), 3, 3, np.float32)
    out = np.zeros((3, 4, 12), np.float32)
    with pytest.raises(ValueError, match=r"out: expected shape \(3, 4, 12\), got \(3, 4, 11\)"):
        relattn.attention(q, k, v, out=out[:, :, :11])
    with pytest.raises(TypeError, match="out_dtype: float16 differs from out's float32"):
        relattn.attention(q, k, v, out=out, out_dtype=np.float16)
    with pytest.raises(TypeError, match="out: dtype float64 is not supported"):
        relattn.attention(q, k, v, out=out.astype(np.float64))
    with pytest.raises(ValueError, match="out: strides .*: rows must be contiguous"):
        relattn.attention(q, k, v, out=np.zeros((3, 4, 24), np.float32)[:, :, ::2])
    read_only = out.copy()
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="out: is read-only"):
        relattn.attention(q, k, v, out=read_only)
    with pytest.raises(relattn.Error) as info:  # the library checks out against the inputs
        relattn.attention(q, k, v, out=q[:, :, :12])
    assert info.value.status == OVERLAP
