"""Objects exposing __array_interface__ or __dlpack__ (torch CPU tensors, ...) are read in place
wherever an array is taken; float64 needs cast=True. Small wrapper classes stand for the
frameworks, so the paths are tested without them; torch itself when it is installed."""
import numpy as np
import pytest

import relattn
from problems import TOLERANCE, random_problem
from relattn import _arrays

OVERLAP = 16  # RELATTN_ERR_OVERLAP


class ArrayInterface:
    """An object exposing its memory through __array_interface__ alone."""

    def __init__(self, a):
        self._a = a

    @property
    def __array_interface__(self):
        return self._a.__array_interface__


class DLPack:
    """An object exposing its memory through __dlpack__ alone (as a torch CPU tensor does,
    besides __array__)."""

    def __init__(self, a):
        self._a = a

    def __dlpack__(self, stream=None):
        return self._a.__dlpack__()

    def __dlpack_device__(self):
        return self._a.__dlpack_device__()


class BoolTensor(DLPack):
    """A bool tensor whose DLPack export fails (numpy 1.24 has no DLPack bool), read through
    __array__ as torch's would be."""

    def __dlpack__(self, stream=None):
        raise BufferError("DLPack only supports signed/unsigned integers, float and complex")

    def __array__(self, dtype=None):
        return self._a


class Unreadable(DLPack):
    """A tensor numpy cannot read (a GPU tensor's export fails so)."""

    def __dlpack__(self, stream=None):
        raise BufferError("Unsupported device in DLTensor.")


WRAPPERS = [ArrayInterface, DLPack]


@pytest.mark.parametrize("wrap", WRAPPERS)
def test_read_in_place_with_strides(wrap):
    a = np.random.default_rng(0).uniform(-1, 1, (3, 5, 8)).astype(np.float32).transpose(1, 0, 2)
    view = _arrays.as_array("q", wrap(a))
    assert np.shares_memory(view, a) and view.strides == a.strides
    assert _arrays.as_array("q", a) is a


@pytest.mark.parametrize("wrap", WRAPPERS)
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_attention_over_wrapped_arrays(wrap, dtype):
    rng = np.random.default_rng(1)
    q, k, v = random_problem(rng, 7, 9, dtype)
    heads_major = [np.ascontiguousarray(x.transpose(1, 0, 2)) for x in (q, k, v)]
    sinks = rng.uniform(-1, 1, 4).astype(np.float32)
    positions = np.arange(9) * 2
    args = dict(scheme="alibi", causal=True, sinks=sinks, q_positions=positions[2:])
    want = relattn.attention(q, k, v, k_positions=positions, **args)
    got = relattn.attention(*(wrap(x) for x in (q, k, v)), k_positions=wrap(positions),
                            **dict(args, sinks=wrap(sinks)))
    np.testing.assert_array_equal(got, want)
    strided = relattn.attention(*(wrap(x) for x in heads_major), layout="heads_tokens_dim",
                                k_positions=positions, **args)
    np.testing.assert_array_equal(strided, want.transpose(1, 0, 2))
    k8 = relattn.quantize_i8(wrap(k))
    np.testing.assert_array_equal(relattn.attention(q, (wrap(k8[0]), wrap(k8[1])), v),
                                  relattn.attention(q, k8, v))


@pytest.mark.parametrize("wrap", WRAPPERS)
def test_wrapped_input_is_not_copied(wrap):
    # The library rejects an output that shares memory with an input: it sees q's own memory.
    buffer = np.random.default_rng(2).uniform(-1, 1, (4, 4, 16)).astype(np.float32)
    k = v = buffer[:, :2]
    with pytest.raises(relattn.Error) as info:
        relattn.attention(wrap(buffer), k, v, out=buffer[:, :, :16])
    assert info.value.status == OVERLAP
    assert relattn.attention(wrap(buffer[::2]), k, v).shape == (2, 4, 16)


@pytest.mark.parametrize("wrap", WRAPPERS)
def test_kv_cache_merge_and_tables_take_wrapped_arrays(wrap):
    rng = np.random.default_rng(3)
    q, k, v = random_problem(rng, 3, 6, np.float32)
    plain, wrapped = (relattn.KVCache(2, 16, capacity=8, v_head_dim=12) for _ in range(2))
    plain.append(k, v, positions=np.arange(6))
    wrapped.append(wrap(k), wrap(v), positions=wrap(np.arange(6)))
    assert wrapped.next_position == 6
    np.testing.assert_array_equal(wrapped.attention(q, causal=True),
                                  plain.attention(q, causal=True))
    table = rng.uniform(-1, 1, (4, 32)).astype(np.float32)
    np.testing.assert_array_equal(
        relattn.attention(q, k, v, scheme="t5", table=wrap(table)),
        relattn.attention(q, k, v, scheme="t5", table=table))
    o1, lse1 = relattn.attention(q, k[:3], v[:3], return_lse=True)
    o2, lse2 = relattn.attention(q, k[3:], v[3:], k_start=3, return_lse=True)
    o, lse = relattn.merge(wrap(o1), wrap(lse1), wrap(o2), wrap(lse2))
    np.testing.assert_array_equal(o, relattn.merge(o1, lse1, o2, lse2)[0])


def test_bool_through_array_fallback():
    rng = np.random.default_rng(4)
    q, k, v = random_problem(rng, 5, 8, np.float32)
    allowed = rng.random((5, 8)) < 0.5
    np.testing.assert_array_equal(relattn.attention(q, k, v, allowed=BoolTensor(allowed)),
                                  relattn.attention(q, k, v, allowed=allowed))
    qb, kb, vb = (x.transpose(1, 0, 2)[None] for x in (q, k, v))
    np.testing.assert_array_equal(relattn.sdpa(qb, kb, vb, BoolTensor(allowed), enable_gqa=True),
                                  relattn.sdpa(qb, kb, vb, allowed, enable_gqa=True))


def test_unreadable_and_non_arrays_raise_type_error():
    q, k, v = random_problem(np.random.default_rng(5), 2, 2, np.float32)
    with pytest.raises(TypeError, match="q: Unreadable: numpy cannot read its memory in place: "
                                        "Unsupported device"):
        relattn.attention(Unreadable(q), k, v)
    with pytest.raises(TypeError, match="k: expected a numpy array, got list"):
        relattn.attention(q, k.tolist(), v)
    with pytest.raises(TypeError, match="k: expected a numpy array, got list"):
        relattn.KVCache(2, 16, capacity=4, v_head_dim=12).append(k.tolist(), v)


def test_float64_is_an_error_unless_cast():
    rng = np.random.default_rng(6)
    q, k, v = random_problem(rng, 4, 6, np.float64)
    f32 = [x.astype(np.float32) for x in (q, k, v)]
    for args in (dict(), dict(layout="heads_tokens_dim")):
        with pytest.raises(TypeError, match="q: dtype float64 is not supported"):
            relattn.attention(q, k, v, **args)
    with pytest.raises(TypeError, match="k: dtype float64 is not supported"):
        relattn.attention(f32[0], k, v)
    got = relattn.attention(q, DLPack(k), v, cast=True)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, relattn.attention(*f32))
    np.testing.assert_array_equal(
        relattn.attention(*(x.transpose(1, 0, 2) for x in (q, k, v)), cast=True,
                          layout="heads_tokens_dim"),
        relattn.attention(*f32).transpose(1, 0, 2))
    half = [x.astype(np.float16) for x in (q, k, v)]  # cast leaves float16 as it is
    np.testing.assert_array_equal(relattn.attention(*half, cast=True), relattn.attention(*half))
    cache = relattn.KVCache(2, 16, capacity=8, v_head_dim=12, dtype=np.float32)
    with pytest.raises(TypeError, match="k: dtype float64 is not supported"):
        cache.append(k, v)
    cache.append(k, v, cast=True)
    np.testing.assert_allclose(cache.attention(f32[0], q_start=0), relattn.attention(*f32),
                               rtol=0, atol=TOLERANCE[np.float32])


def test_torch_cpu_tensors():
    torch = pytest.importorskip("torch", reason="torch not installed: the __dlpack__ path is "
                                                "tested through the wrapper classes only")
    rng = np.random.default_rng(7)
    for dtype in (np.float32, np.float16):
        q, k, v = random_problem(rng, 6, 9, dtype)
        tq, tk, tv = (torch.from_numpy(x) for x in (q, k, v))
        assert np.shares_memory(_arrays.as_array("q", tq), q)
        np.testing.assert_array_equal(relattn.attention(tq, tk, tv, causal=True),
                                      relattn.attention(q, k, v, causal=True))
        heads_major = [t.transpose(0, 1) for t in (tq, tk, tv)]  # strided views
        np.testing.assert_array_equal(
            relattn.attention(*heads_major, layout="heads_tokens_dim"),
            relattn.attention(q, k, v).transpose(1, 0, 2))
        cache = relattn.KVCache(2, 16, capacity=16, v_head_dim=12, dtype=np.float32)
        cache.append(tk, tv)
        np.testing.assert_allclose(cache.attention(tq, q_start=0), relattn.attention(q, k, v),
                                   rtol=0, atol=TOLERANCE[np.float32])
    with pytest.raises(TypeError, match="q: dtype float64 is not supported"):
        relattn.attention(tq.double(), tk, tv)
    allowed = torch.from_numpy(rng.random((6, 9)) < 0.5)
    np.testing.assert_array_equal(relattn.attention(tq, tk, tv, allowed=allowed),
                                  relattn.attention(q, k, v, allowed=allowed.numpy()))
