"""alibi_slopes, t5_bucket and quantize_table_i8 against the numpy oracle's definitions."""
import numpy as np
import pytest

import numpy_attention as oracle
import relattn


@pytest.mark.parametrize("heads", [1, 2, 5, 8, 12, 24, 64])
@pytest.mark.parametrize("max_bias", [8.0, 6.0])
def test_alibi_slopes(heads, max_bias):
    got = relattn.alibi_slopes(heads, max_bias)
    assert got.dtype == np.float32 and got.shape == (heads,)
    np.testing.assert_allclose(got, oracle.alibi_slopes(heads, max_bias), rtol=2**-23)


@pytest.mark.parametrize("num_buckets, max_distance, bidirectional",
                         [(32, 128, True), (32, 128, False), (64, 256, True), (8, 20, False)])
def test_t5_bucket(num_buckets, max_distance, bidirectional):
    offsets = np.arange(-600, 601)
    got = relattn.t5_bucket(offsets, num_buckets, max_distance, bidirectional)
    np.testing.assert_array_equal(
        got, oracle.t5_bucket(offsets, num_buckets, max_distance, bidirectional))
    assert relattn.t5_bucket(-5, num_buckets, max_distance, bidirectional) == got[600 - 5]


def test_t5_bucket_extreme_offsets():
    last = 15  # bidirectional 32 buckets: the last bucket of the negative side
    assert relattn.t5_bucket(-2**63) == last
    assert relattn.t5_bucket(-10**15) == last
    assert relattn.t5_bucket(2**63 - 1) == 31
    assert relattn.t5_bucket(np.array([[1, -1]])).shape == (1, 2)


def test_quantize_table_i8():
    table = np.random.default_rng(0).uniform(-3, 3, (4, 32)).astype(np.float32)
    table[2] = 0
    q, scales = relattn.quantize_table_i8(table)
    assert q.dtype == np.int8 and scales.dtype == np.float32 and scales[2] == 0
    np.testing.assert_allclose(scales[[0, 1, 3]], np.abs(table[[0, 1, 3]]).max(axis=1) / 127,
                               rtol=1e-6)
    assert np.abs(q.astype(np.float32) * scales[:, None] - table).max() <= scales.max() / 2 + 1e-7


def test_version():
    assert relattn.__version__.count(".") == 2


def test_active_target():
    assert isinstance(relattn.active_target(), str) and relattn.active_target()
