"""relattn run's int8 inputs (--q, --k, --v int8 with --q-scales, --k-scales, --v-scales) and
the allowed-pairs mask (--allowed, --allowed-key-offset), against the Python package
(bit-identical) and the numpy oracle."""
import zlib

import numpy as np
import pytest

import numpy_attention as oracle
import relattn
from cli_helpers import flags, ok, save
from problems import SCHEMES, SIZES, TOLERANCE, random_problem


def run_files(tmp_path, q, k, v, *extra):
    """relattn run on q, k, v (each an array or an int8 pair); returns its output."""
    args = ["run", "--out", tmp_path / "o.npy"]
    for name, x in (("q", q), ("k", k), ("v", v)):
        if isinstance(x, tuple):
            paths = save(tmp_path, **{name: x[0], name + "_scales": x[1]})
            args += ["--" + name, paths[name], "--%s-scales" % name, paths[name + "_scales"]]
        else:
            args += ["--" + name, save(tmp_path, **{name: x})[name]]
    ok(*args, *extra)
    return np.load(tmp_path / "o.npy")


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("which", ["k", "qk", "v", "kv", "qkv"])
@pytest.mark.parametrize("scheme", ["alibi", "t5-f16", "shaw-vector"])
def test_run_int8_inputs_match_library_and_numpy(tmp_path, scheme, which, size):
    rng = np.random.default_rng(zlib.crc32(("int8/%s/%s/%s" % (scheme, which, size)).encode()))
    n_q, n_kv, q_start = SIZES[size]
    q, k, v = random_problem(rng, n_q, n_kv, np.float32)
    q, k, v = (relattn.quantize_i8(x) if name in which else x
               for name, x in (("q", q), ("k", k), ("v", v)))
    kind, bias_args = SCHEMES[scheme](4, rng)
    args = dict(scheme=kind, causal=True, q_start=q_start, **bias_args)
    out = run_files(tmp_path, q, k, v, *flags(tmp_path, **args))
    np.testing.assert_array_equal(out, relattn.attention(q, k, v, **args))
    np.testing.assert_allclose(out, oracle.attention(q, k, v, **args), rtol=0,
                               atol=TOLERANCE[np.float32])


def test_run_int8_files_equal_quantize_option(tmp_path):
    q, k, v = random_problem(np.random.default_rng(21), 9, 14, np.float16)
    given = run_files(tmp_path, relattn.quantize_i8(q), relattn.quantize_i8(k), v, "--causal")
    quantized = run_files(tmp_path, q, k, v, "--causal", "--quantize", "qk")
    np.testing.assert_array_equal(given, quantized)


def full_mask(allowed, n_kv, offset):
    """The bool [n_q][n_kv] mask of allowed over the keys from offset on."""
    mask = np.ones((allowed.shape[0], n_kv), bool)
    mask[:, offset:] = allowed
    return mask


def pack(allowed):
    """bool [n_q][n] as uint64 [n_q][words], bit b % 64 of word b // 64."""
    words = max(1, (allowed.shape[1] + 63) // 64)
    packed = np.zeros((allowed.shape[0], words * 8), np.uint8)
    packed[:, :(allowed.shape[1] + 7) // 8] = np.packbits(allowed, axis=1, bitorder="little")
    return packed.view("<u8")


@pytest.mark.parametrize("form", ["bool", "packed"])
@pytest.mark.parametrize("offset, n_kv", [(0, 9), (63, 140), (70, 70)])
def test_run_allowed_pairs_match_library_and_numpy(tmp_path, form, offset, n_kv):
    rng = np.random.default_rng(zlib.crc32(("allowed/%s/%d" % (form, offset)).encode()))
    q, k, v = random_problem(rng, 6, n_kv, np.float32)
    allowed = rng.random((6, n_kv - offset)) < 0.4
    allowed[0] = False  # with offset 0, a query that sees no key
    path = save(tmp_path, allowed=allowed if form == "bool" else pack(allowed))["allowed"]
    out = run_files(tmp_path, q, k, v, "--scheme", "alibi", "--allowed", path,
                    "--allowed-key-offset", offset, "--lse-out", tmp_path / "lse.npy")
    expected, lse = relattn.attention(q, k, v, scheme="alibi", allowed=allowed,
                                      allowed_key_offset=offset, return_lse=True)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(np.load(tmp_path / "lse.npy"), lse)
    np.testing.assert_allclose(
        out, oracle.attention(q, k, v, scheme="alibi", allowed=full_mask(allowed, n_kv, offset)),
        rtol=0, atol=TOLERANCE[np.float32])
    assert (offset == 0) == np.all(out[0] == 0)
