"""Bad arguments raise TypeError / ValueError naming the argument; what only the library can
judge raises relattn.Error with its message."""
import numpy as np
import pytest

import relattn

Q = np.zeros((4, 4, 8), np.float32)
K = np.zeros((5, 2, 8), np.float32)
V = np.zeros((5, 2, 6), np.float32)
T5 = np.zeros((4, 32), np.float32)
SV = np.zeros((4, 5, 8), np.float32)  # shaw_vector, k = 2, one table per head
Q8 = (np.zeros((4, 4, 8), np.int8), np.ones((4, 4), np.float32))
K8 = (np.zeros((5, 2, 8), np.int8), np.ones((5, 2), np.float32))

CASES = [
    # (arguments, exception, text the message must contain)
    (dict(q=Q.astype(np.float64)), TypeError, "q: dtype float64 is not supported"),
    (dict(k=[[1.0]]), TypeError, "k: expected a numpy array"),
    (dict(v=V[0]), ValueError, "v: expected [tokens][heads][head_dim]"),
    (dict(q=np.zeros((0, 4, 8), np.float32)), ValueError, "q: expected [tokens][heads]"),
    (dict(k=np.zeros((5, 2, 7), np.float32)), ValueError, "k: head_dim 7 differs from q's 8"),
    (dict(v=np.zeros((6, 2, 6), np.float32)), ValueError, "v: shape (6, 2, 6)"),
    (dict(k=np.zeros((5, 3, 8), np.float32), v=np.zeros((5, 3, 6), np.float32)), ValueError,
     "k: 3 heads do not divide q's 4 heads"),
    (dict(out_dtype=np.int32), TypeError, "out_dtype"),
    (dict(scheme="rope"), ValueError, "scheme: 'rope' is not one of"),
    (dict(scheme="t5"), ValueError, "table: required by scheme 't5'"),
    (dict(table=T5), ValueError, "table: not used by scheme 'none'"),
    (dict(scheme="alibi", slopes=np.ones(3, np.float32)), ValueError, "slopes: expected shape"),
    (dict(scheme="t5", table=T5.astype(np.int8)), ValueError, "table_scales: required"),
    (dict(scheme="t5", table=T5, num_buckets=16), ValueError, "table: expected shape (4, 16)"),
    (dict(scheme="shaw", table=np.zeros((4, 4), np.float32)), ValueError, "table: width 4"),
    (dict(scheme="shaw_vector"), ValueError,
     "table: required by scheme 'shaw_vector' ([heads][2k+1][head_dim] (one per head) or "
     "[2k+1][head_dim] (shared))"),
    (dict(scheme="shaw_vector", table=np.zeros(5, np.float32)), ValueError,
     "table: expected [heads][2k+1][head_dim] (one per head) or [2k+1][head_dim] (shared), "
     "got shape (5,)"),
    (dict(scheme="shaw_vector", table=np.zeros((3, 5, 8), np.float32)), ValueError,
     "table: expected shape (4, n, 8), got (3, 5, 8)"),
    (dict(scheme="shaw_vector", table=np.zeros((4, 5, 7), np.float32)), ValueError,
     "table: expected shape (4, n, 8), got (4, 5, 7)"),
    (dict(scheme="shaw_vector", table=np.zeros((5, 16), np.float32)), ValueError,
     "table: expected shape (n, 8), got (5, 16)"),
    (dict(scheme="shaw_vector", table=np.zeros((4, 4, 8), np.float32)), ValueError,
     "table: 4 offset rows (axis 1) is not 2k+1"),
    (dict(scheme="shaw_vector", table=np.zeros((6, 8), np.float32)), ValueError,
     "table: 6 offset rows (axis 0) is not 2k+1"),
    (dict(scheme="shaw_vector", table=SV, shaw_k=3), ValueError,
     "table: expected shape (4, 7, 8), got (4, 5, 8)"),
    (dict(scheme="shaw_vector", table=SV.astype(np.float16)), TypeError,
     "table: dtype float16 is not supported: use float32"),
    (dict(scheme="shaw_vector", table=SV.tolist()), TypeError, "table: expected a numpy array"),
    (dict(scheme="shaw_vector", table=SV, slopes=np.ones(4, np.float32)), ValueError,
     "slopes: not used by scheme 'shaw_vector'"),
    (dict(q=Q8[0], k=K8), TypeError, "q: an int8 array needs its row scales: pass the pair "
     "(int8 [tokens][heads][head_dim], float32 scales [tokens][heads])"),
    (dict(q=Q8 + (None,), k=K8), ValueError, "q: the int8 form is the pair (int8"),
    (dict(k=(K8[0].astype(np.float32), K8[1])), TypeError,
     "k[0]: dtype float32 is not supported: use int8"),
    (dict(k=(K8[0], K8[1].astype(np.float64))), TypeError,
     "k[1]: dtype float64 is not supported: use float32"),
    (dict(k=(K8[0], K8[1][:4])), ValueError,
     "k[1]: scales of shape (4, 2): expected (5, 2), one per row of k[0]"),
    (dict(k=(K8[0], K8[1].ravel())), ValueError, "k[1]: expected [tokens][heads]"),
    (dict(k=K8, v=np.zeros((5, 2, 6), np.int8)), TypeError,
     "v: an int8 array needs its row scales: pass the pair"),
    (dict(k=K8, v=(np.zeros((5, 2, 6), np.int8), K8[1][:4])), ValueError,
     "v[1]: scales of shape (4, 2): expected (5, 2), one per row of v[0]"),
    (dict(window=-1), ValueError, "window: -1 is outside"),
    (dict(window=1.5), TypeError, "window: expected an int"),
    (dict(q_start=2**63), ValueError, "q_start: 9223372036854775808 is outside"),
    (dict(q_positions=np.arange(3)), ValueError, "q_positions: expected 4 integer positions"),
    (dict(k_positions=np.zeros(5), k_start=1), ValueError, "k_positions: give k_positions or"),
    (dict(threads=-2), ValueError, "threads: -2 is outside"),
    # judged by the library
    (dict(scheme="alibi", max_bias=-1.0), relattn.Error, "max_bias = -1"),
    (dict(scheme="t5", table=T5, max_distance=20000), relattn.Error, "max_distance = 20000"),
    (dict(scheme="shaw_vector", table=np.zeros((131, 8), np.float32)), relattn.Error,
     "bias.shaw_vector.k = 65: must be in 0..64"),
    (dict(scheme="shaw_vector", table=np.full((4, 3, 8), np.nan, np.float32)), relattn.Error,
     "bias.shaw_vector.table"),
    (dict(q=Q8), relattn.Error, "q.dtype = I8 with k.dtype = F32: int8 q needs int8 k"),
    (dict(scale=float("inf")), relattn.Error, "scale = inf: must be finite"),
    (dict(q_start=-2**63), relattn.Error, "overflows int64"),
    (dict(q=np.zeros((2, 1, 300), np.float32), k=np.zeros((2, 1, 300), np.float32),
          v=np.zeros((2, 1, 4), np.float32)), relattn.Error, "head_dim = 300: must be in 1..256"),
]


@pytest.mark.parametrize("args, error, text", CASES, ids=[c[2][:30] for c in CASES])
def test_bad_argument(args, error, text):
    call = {"q": Q, "k": K, "v": V, **args}
    with pytest.raises(error) as info:
        relattn.attention(call.pop("q"), call.pop("k"), call.pop("v"), **call)
    assert text in str(info.value)


def test_library_error_has_status():
    with pytest.raises(relattn.Error) as info:
        relattn.attention(Q, K, V, scale=float("nan"))
    assert info.value.status == 6 and str(info.value).startswith("bad softmax scale: ")


def test_helpers_validate():
    with pytest.raises(ValueError, match="n_heads: 0 is outside"):
        relattn.alibi_slopes(0)
    with pytest.raises(relattn.Error, match="num_buckets = 3"):
        relattn.t5_bucket(1, num_buckets=3)
    with pytest.raises(TypeError, match="relative_position: expected integers"):
        relattn.t5_bucket(1.5)
    with pytest.raises(relattn.Error, match="must be finite"):
        relattn.quantize_table_i8(np.full((2, 8), np.inf, np.float32))
    with pytest.raises(TypeError, match="x: dtype int8 is not supported"):
        relattn.quantize_i8(np.zeros((2, 2, 2), np.int8))
    with pytest.raises(ValueError, match=r"x: expected \[tokens\]\[heads\]\[head_dim\]"):
        relattn.quantize_i8(np.zeros((2, 2), np.float32))
    with pytest.raises(relattn.Error, match="dim = 300: must be in 1..256") as info:
        relattn.quantize_i8(np.zeros((1, 1, 300), np.float32))
    assert info.value.status == 2


def test_non_finite_to_quantise_has_status_17():
    x = np.zeros((2, 3, 4), np.float16)
    x[1, 2, 3] = np.inf
    with pytest.raises(relattn.Error) as info:
        relattn.quantize_i8(x)
    assert info.value.status == 17
    assert str(info.value) == ("non-finite value to quantise: src element (token 1, head 2, 3) "
                               "= inf: must be finite")
