"""Q4 (q4_0 blocks, uint8 .npy) K and V in relattn run, and --out-dtype f32|f16|bf16 of run,
cache attention and merge, against the Python package (the same library calls: bit-identical)
and the numpy oracle on the dequantised values; and their errors: exit status, one line on
stderr, no output file."""
import numpy as np
import pytest

import numpy_attention as oracle
import relattn
from cli_helpers import fails, ok, run, save
from problems import TOLERANCE

OUT_DTYPES = {"f32": np.float32, "f16": np.float16, "bf16": "bfloat16"}


def problem(seed=5, n_q=6, n_kv=21, heads=4, kv_heads=2, d=64, dv=32):
    rng = np.random.default_rng(seed)
    return (rng.uniform(-1, 1, (n_q, heads, d)).astype(np.float32),
            rng.uniform(-1, 1, (n_kv, kv_heads, d)).astype(np.float32),
            rng.uniform(-1, 1, (n_kv, kv_heads, dv)).astype(np.float32))


def dequantize_q4(blocks, dim):
    """The values q4_0 blocks [tokens][heads][dim / 32 * 18] stand for, float64."""
    b = blocks.reshape(-1, 18)
    d = b[:, :2].copy().view(np.float16).astype(np.float64)
    nibbles = np.concatenate([b[:, 2:] & 15, b[:, 2:] >> 4], axis=1).astype(np.float64)
    return ((nibbles - 8) * d).reshape(blocks.shape[:2] + (dim,))


def run_files(tmp_path, q, k, v, *extra):
    paths = save(tmp_path, q=q, k=k, v=v)
    ok("run", "--q", paths["q"], "--k", paths["k"], "--v", paths["v"], "--out",
       tmp_path / "o.npy", *extra)
    return np.load(tmp_path / "o.npy")


@pytest.mark.parametrize("which", ["k", "v", "kv"])
def test_run_q4_matches_library_and_oracle(tmp_path, which):
    q, k, v = problem()
    k4, v4 = relattn.quantize_q4(k), relattn.quantize_q4(v)
    k_in, v_in = (k4 if "k" in which else k), (v4 if "v" in which else v)
    o = run_files(tmp_path, q, k_in, v_in, "--scheme", "alibi", "--causal", "--q-start", 15)
    expected = relattn.attention(q, relattn.Q4(k4) if "k" in which else k,
                                 relattn.Q4(v4) if "v" in which else v, scheme="alibi",
                                 causal=True, q_start=15)
    np.testing.assert_array_equal(o, expected)
    k_held = dequantize_q4(k4, 64) if "k" in which else k
    v_held = dequantize_q4(v4, 32) if "v" in which else v
    reference = oracle.attention(q, k_held.astype(np.float32), v_held.astype(np.float32),
                                 scheme="alibi", causal=True, q_start=15)
    np.testing.assert_allclose(o, reference, rtol=0, atol=TOLERANCE[np.float32])


def test_run_q4_with_bf16_inputs_and_rope(tmp_path):
    """--dtype bf16 rounds Q (and a float V) and leaves Q4 K as held; RoPE rotates Q4 K."""
    q, k, v = problem(seed=8)
    k4 = relattn.quantize_q4(k)
    o = run_files(tmp_path, q, k4, v, "--dtype", "bf16", "--rope", "halves", "--causal")
    expected = relattn.attention(relattn.to_bf16(q), relattn.Q4(k4), relattn.to_bf16(v),
                                 dtype="bfloat16", rope="halves", causal=True)
    np.testing.assert_array_equal(o, expected)


@pytest.mark.parametrize("name", list(OUT_DTYPES))
def test_run_out_dtype(tmp_path, name):
    q, k, v = problem(seed=11)
    k4 = relattn.quantize_q4(k)
    paths = save(tmp_path, q=q, k=k4, v=v)
    ok("run", "--q", paths["q"], "--k", paths["k"], "--v", paths["v"], "--out",
       tmp_path / "o.npy", "--out-dtype", name, "--lse-out", tmp_path / "lse.npy",
       "--scheme", "alibi")
    o, lse = np.load(tmp_path / "o.npy"), np.load(tmp_path / "lse.npy")
    expected, expected_lse = relattn.attention(q, relattn.Q4(k4), v, scheme="alibi",
                                               out_dtype=OUT_DTYPES[name], return_lse=True)
    assert o.dtype == (np.uint16 if name == "bf16" else OUT_DTYPES[name])
    np.testing.assert_array_equal(o, expected)
    np.testing.assert_array_equal(lse, expected_lse)
    assert lse.dtype == np.float32
    f32 = relattn.attention(q, relattn.Q4(k4), v, scheme="alibi")
    if name == "bf16":  # the f32 result rounded to nearest even
        np.testing.assert_allclose(relattn.from_bf16(o), f32, rtol=2 ** -8, atol=0)
    else:
        np.testing.assert_allclose(o.astype(np.float32), f32, rtol=2 ** -11, atol=1e-7)


@pytest.mark.parametrize("name", ["f16", "bf16"])
def test_cache_attention_out_dtype(tmp_path, name):
    q, k, v = problem(seed=13, dv=64)
    cache = relattn.KVCache(2, 64, 64, k_dtype="q4", v_dtype="q4", dtype=np.float32)
    cache.append(k, v)
    path = tmp_path / "c.bin"
    path.write_bytes(cache.tobytes())
    q_path = save(tmp_path, q_new=q)["q_new"]
    ok("cache", "attention", "--cache", path, "--q", q_path, "--out", tmp_path / "o.npy",
       "--out-dtype", name, "--causal", "--q-start", 18)
    o = np.load(tmp_path / "o.npy")
    f32 = cache.attention(q, causal=True, q_start=18)
    if name == "bf16":
        assert o.dtype == np.uint16
        np.testing.assert_array_equal(o, relattn.to_bf16(f32))
    else:
        assert o.dtype == np.float16
        np.testing.assert_array_equal(o, f32.astype(np.float16))
    # the Q4 cache against Q4 tensors of the same blocks (quantize_q4's, as the cache stores)
    o_run = run_files(tmp_path, q, relattn.quantize_q4(k), relattn.quantize_q4(v), "--causal",
                      "--q-start", 18)
    np.testing.assert_allclose(o_run, f32, rtol=0, atol=TOLERANCE[np.float32])


@pytest.mark.parametrize("name", ["f16", "bf16"])
def test_merge_out_dtype(tmp_path, name):
    q, k, v = problem(seed=17)
    files = {}
    for i, (lo, hi) in enumerate([(0, 9), (9, 21)], 1):
        paths = save(tmp_path, **{"k%d" % i: k[lo:hi], "v%d" % i: v[lo:hi]}, q=q)
        ok("run", "--q", paths["q"], "--k", paths["k%d" % i], "--v", paths["v%d" % i], "--out",
           tmp_path / ("o%d.npy" % i), "--lse-out", tmp_path / ("lse%d.npy" % i),
           "--k-start", lo)
        files.update({"o%d" % i: tmp_path / ("o%d.npy" % i),
                      "lse%d" % i: tmp_path / ("lse%d.npy" % i)})
    ok("merge", *[x for key, path in files.items() for x in ("--" + key, path)], "--out",
       tmp_path / "o.npy", "--out-dtype", name)
    o = np.load(tmp_path / "o.npy")
    loaded = [np.load(files[key]) for key in ["o1", "lse1", "o2", "lse2"]]
    f32, _ = relattn.merge(*loaded)
    if name == "bf16":
        assert o.dtype == np.uint16
        np.testing.assert_array_equal(o, relattn.to_bf16(f32))
    else:
        np.testing.assert_array_equal(o, relattn.merge(*loaded, out_dtype=np.float16)[0])


def test_errors(tmp_path):
    q, k, v = problem()
    k4, v4 = relattn.quantize_q4(k), relattn.quantize_q4(v)
    p = save(tmp_path, q=q, k=k, v=v, k4=k4, v4=v4, q40=np.zeros((6, 4, 40), np.float32),
             k4_short=k4[:, :, :18], v4_odd=k4[:, :, :20],
             k40_4=np.zeros((21, 2, 18), np.uint8))
    out = tmp_path / "o.npy"

    def args(q="q", k="k", v="v", *extra):
        return ["run", "--q", p[q], "--k", p[k], "--v", p[v], "--out", out, *extra]

    fails(1, "--k %s (uint8 (21, 2, 18)): Q4 (uint8) rows must be 36 bytes, head_dim 64 "
          "(q's) / 32 * 18" % p["k4_short"], *args(k="k4_short"))
    fails(1, "--k %s (uint8 (21, 2, 18)): Q4 (uint8) --k needs head_dim 40 (q's) to be a "
          "multiple of 32" % p["k40_4"], *args(q="q40", k="k40_4"))
    fails(1, "--v %s (uint8 (21, 2, 20)): Q4 (uint8) rows must be a multiple of 18 bytes"
          % p["v4_odd"], *args(v="v4_odd"))
    fails(1, "--q %s (uint8 (21, 2, 36)): must be float32 or float16, or int8 with --q-scales"
          % p["k4"], *args(q="k4"))
    fails(2, "--quantize k quantises --k to int8: not with --k %s (uint8 (21, 2, 36)), Q4 "
          "blocks" % p["k4"], *args(k="k4"), "--quantize", "k")
    fails(2, "--k-scales: --k %s (uint8 (21, 2, 36)) is not int8" % p["k4"],
          *args(k="k4"), "--k-scales", p["v"])
    fails(2, "--out-dtype 'f64': must be f32, f16 or bf16", *args(), "--out-dtype", "f64")
    fails(2, "--out-dtype 'i8': must be f32, f16 or bf16", "merge", "--o1", "a", "--lse1", "b",
          "--o2", "c", "--lse2", "d", "--out", out, "--out-dtype", "i8")
    fails(2, "--out-dtype 'bfloat16': must be f32, f16 or bf16", "cache", "attention",
          "--cache", "c", "--q", p["q"], "--out", out, "--out-dtype", "bfloat16")
    assert not out.exists()


def test_help_mentions_options():
    for command in (["run"], ["cache", "attention"], ["merge"]):
        assert "--out-dtype f32|f16|bf16" in run(*command, "--help").stdout, command
    assert "q4_0 blocks" in run("run", "--help").stdout
