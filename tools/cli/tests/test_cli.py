"""The relattn tool ($RELATTN_CLI) against the library (the Python binding: bit-identical) and
the plain numpy oracle, on .npy files written here; and its error paths: exit status, one
line on stderr, no output file."""
import zlib

import numpy as np
import pytest

import numpy_attention as oracle
import relattn
from cli_helpers import run
from problems import MASKS, SCHEMES, SIZES, TOLERANCE, random_problem


def lines(result):
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_version_and_help():
    assert run("--version").stdout == "relattn %s\ntarget %s\n" % (relattn.__version__,
                                                                  relattn.active_target())
    for command in ["", "slopes", "buckets", "run", "merge", "cache", "bench", "demo"]:
        result = run(*([command] if command else []), "--help")
        assert result.returncode == 0 and result.stdout.startswith("usage: relattn"), command
    run_help = run("run", "--help").stdout
    for option in ["--rope none|interleaved|halves", "--rotary-dims N", "--rope-base B",
                   "--rope-scale S", "--scheme none|alibi|t5|shaw|shaw_vector",
                   "--quantize none|k|qk", "--q-scales FILE.npy", "--allowed FILE.npy",
                   "--allowed-key-offset N"]:
        assert option in run_help, option
    for sub in ["create", "append", "truncate", "info", "attention"]:
        result = run("cache", sub, "--help")
        assert result.returncode == 0 and result.stdout.startswith("usage: relattn cache " + sub)
    cache_help = run("cache", "attention", "--help").stdout
    for option in ["--scheme none|alibi|t5|shaw|shaw_vector", "--rope none|interleaved|halves",
                   "--allowed FILE.npy", "--q-scales FILE.npy"]:
        assert option in cache_help, option
    assert run().returncode == 2 and run("cache").returncode == 2


@pytest.mark.parametrize("heads, max_bias", [(1, None), (5, None), (12, None), (8, 6.0)])
def test_slopes(heads, max_bias):
    args = ["slopes", "--heads", heads] + (["--max-bias", max_bias] if max_bias else [])
    got = np.array([float(x) for x in lines(run(*args))])
    np.testing.assert_array_equal(got, relattn.alibi_slopes(heads, max_bias or 8.0))
    np.testing.assert_allclose(got, oracle.alibi_slopes(heads, max_bias or 8.0), rtol=2**-23)


def test_buckets_default_to_t5s_32_and_128():
    explicit = lines(run("buckets", "--num-buckets", 32, "--max-distance", 128, "--range", -300,
                         300))
    assert lines(run("buckets", "--range", -300, 300)) == explicit


def test_buckets_plain_negative_after_dashes_and_ranges():
    params = ["--num-buckets", 32, "--max-distance", 128]
    got = lines(run("buckets", *params, -200, -5, 7, "--range", -3, 2, "--", -1, -2**63))
    offsets = [-200, -5, 7, -3, -2, -1, 0, 1, 2, -1, -2**63]
    assert [int(x) for x in got] == [relattn.t5_bucket(r) for r in offsets]
    assert [int(x) for x in got[:-1]] == list(oracle.t5_bucket(offsets[:-1]))
    causal = lines(run("buckets", *params, "--causal", "--range", -300, 300))
    expected = oracle.t5_bucket(np.arange(-300, 301), 32, 128, bidirectional=False)
    assert [int(x) for x in causal] == list(expected)
    top = lines(run("buckets", *params, "--range", 2**63 - 2, 2**63 - 1))
    assert top == ["31", "31"]


def run_attention(tmp_path, q, k, v, scheme, bias_args, mask_args, extra=()):
    """Runs `relattn run` on q, k, v with the binding's keyword arguments; returns the output."""
    paths = {name: tmp_path / (name + ".npy") for name in ["q", "k", "v", "out", "table",
                                                          "slopes"]}
    for name, a in (("q", q), ("k", k), ("v", v)):
        np.save(paths[name], a)
    args = ["run", "--q", paths["q"], "--k", paths["k"], "--v", paths["v"], "--out",
            paths["out"], "--scheme", scheme, *extra]
    for key, value in {**bias_args, **mask_args}.items():
        flag = "--" + key.replace("_", "-")
        if key in ("table", "slopes"):
            np.save(paths[key], value)
            args += [flag, paths[key]]
        elif value is True:
            args.append(flag)
        elif value is not False:
            args += [flag, value]
    result = run(*args)
    assert result.returncode == 0, result.stderr
    return np.load(paths["out"])


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize("scheme", SCHEMES)
def test_run_matches_library_and_numpy(tmp_path, scheme, mask, dtype):
    rng = np.random.default_rng(zlib.crc32(("%s/%s" % (scheme, mask)).encode()))
    n_q, n_kv, q_start = SIZES["prefill"]
    q, k, v = random_problem(rng, n_q, n_kv, dtype)
    kind, bias_args = SCHEMES[scheme](q.shape[1], rng)
    mask_args = MASKS[mask](n_kv)
    out = run_attention(tmp_path, q, k, v, kind, bias_args, mask_args)
    assert out.dtype == np.float32 and out.shape == (n_q, 4, 12)
    args = dict(scheme=kind, q_start=q_start, **bias_args, **mask_args)
    np.testing.assert_array_equal(out, relattn.attention(q, k, v, **args))
    np.testing.assert_allclose(out, oracle.attention(q, k, v, **args), rtol=0,
                               atol=TOLERANCE[np.float32])


def test_run_positions_scale_threads(tmp_path):
    rng = np.random.default_rng(3)
    q, k, v = random_problem(rng, 3, 40, np.float16, heads=8, kv_heads=2)
    table = rng.uniform(-1, 1, (8, 2 * 4 + 1)).astype(np.float32)
    extra = ["--q-start", 10**12 + 37, "--k-start", 10**12, "--scale", 0.2, "--threads", 2]
    out = run_attention(tmp_path, q, k, v, "shaw", {"table": table, "shaw_k": 4},
                        {"causal": True}, extra)
    expected = relattn.attention(q, k, v, scheme="shaw", table=table, causal=True, scale=0.2,
                                 q_start=37)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("per_head", [True, False], ids=["per-head", "shared"])
def test_run_shaw_vector_options(tmp_path, per_head):
    rng = np.random.default_rng(6 + per_head)
    q, k, v = random_problem(rng, 3, 40, np.float16, heads=8, kv_heads=2)
    table = rng.uniform(-1, 1, ((8,) if per_head else ()) + (2 * 64 + 1, 16)).astype(np.float32)
    extra = ["--q-start", 10**9 + 37, "--k-start", 10**9, "--scale", 0.2, "--threads", 2,
             "--rope", "interleaved"]
    out = run_attention(tmp_path, q, k, v, "shaw_vector", {"table": table, "shaw_k": 64},
                        {"causal": True}, extra)
    args = dict(scheme="shaw_vector", table=table, causal=True, scale=0.2, rope="interleaved",
                q_start=10**9 + 37, k_start=10**9)
    np.testing.assert_array_equal(out, relattn.attention(q, k, v, **args))
    np.testing.assert_allclose(out, oracle.attention(q, k, v, **args), rtol=0,
                               atol=TOLERANCE[np.float32])


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("which", ["k", "qk"])
@pytest.mark.parametrize("scheme", ["alibi", "t5-f16", "shaw-vector"])
def test_run_quantize_matches_library_and_numpy(tmp_path, scheme, which, size):
    rng = np.random.default_rng(zlib.crc32(("%s/%s/%s" % (scheme, which, size)).encode()))
    n_q, n_kv, q_start = SIZES[size]
    q, k, v = random_problem(rng, n_q, n_kv, np.float16 if which == "k" else np.float32)
    kind, bias_args = SCHEMES[scheme](q.shape[1], rng)
    out = run_attention(tmp_path, q, k, v, kind, bias_args, {"causal": True},
                        ["--quantize", which, "--q-start", q_start])
    q_arg = relattn.quantize_i8(q) if which == "qk" else q
    args = dict(scheme=kind, causal=True, q_start=q_start, **bias_args)
    np.testing.assert_array_equal(out, relattn.attention(q_arg, relattn.quantize_i8(k), v,
                                                         **args))
    # Against the oracle on the dequantised inputs (its own definition of the quantisation).
    np.testing.assert_allclose(
        out, oracle.attention(oracle.quantize_i8(q) if which == "qk" else q,
                              oracle.quantize_i8(k), v, **args),
        rtol=0, atol=TOLERANCE[np.float32])
    none = run_attention(tmp_path, q, k, v, kind, bias_args, {"causal": True},
                         ["--quantize", "none", "--q-start", q_start])
    np.testing.assert_array_equal(none, relattn.attention(q, k, v, **args))


# name -> the binding's rope= argument and the same as `relattn run` options (head_dim 16)
ROPES = {
    "interleaved": ("interleaved", ["--rope", "interleaved"]),
    "halves": ("halves", ["--rope", "halves"]),
    "interleaved-partial-base": ({"pairing": "interleaved", "rotary_dims": 8, "base": 500000.0},
                                 ["--rope", "interleaved", "--rotary-dims", 8, "--rope-base",
                                  500000]),
    "halves-partial-scale": ({"pairing": "halves", "rotary_dims": 12, "linear_scale": 4.0},
                             ["--rope=halves", "--rotary-dims=12", "--rope-scale", 4]),
    "halves-all": ({"pairing": "halves", "rotary_dims": 10, "base": 1e6, "linear_scale": 0.5},
                   ["--rope", "halves", "--rotary-dims", 10, "--rope-base", "1e6",
                    "--rope-scale", 0.5]),
}


@pytest.mark.parametrize("start", [0, 10**9])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("rope", ROPES)
def test_run_rope_matches_library_and_numpy(tmp_path, rope, dtype, size, start):
    rng = np.random.default_rng(zlib.crc32(("%s/%s/%d" % (rope, size, start)).encode()))
    n_q, n_kv, q_start = SIZES[size]
    q, k, v = random_problem(rng, n_q, n_kv, dtype)
    rope_arg, flags = ROPES[rope]
    extra = flags + ["--q-start", start + q_start, "--k-start", start]
    scheme, bias_args = ("alibi", {}) if size == "decode" else ("none", {})
    out = run_attention(tmp_path, q, k, v, scheme, bias_args, {"causal": True}, extra)
    args = dict(scheme=scheme, causal=True, rope=rope_arg, q_start=start + q_start,
                k_start=start)
    np.testing.assert_array_equal(out, relattn.attention(q, k, v, **args))
    np.testing.assert_allclose(out, oracle.attention(q, k, v, **args), rtol=0,
                               atol=TOLERANCE[np.float32])
    assert np.abs(out - oracle.attention(q, k, v, **{**args, "rope": None})).max() > 1e-3


def test_run_rope_none_is_no_rope(tmp_path):
    q, k, v = random_problem(np.random.default_rng(5), 6, 6, np.float32)
    out = run_attention(tmp_path, q, k, v, "t5", {"table": np.ones((4, 8), np.float32)}, {},
                        ["--rope", "none"])
    np.testing.assert_array_equal(out, relattn.attention(q, k, v, scheme="t5",
                                                         table=np.ones((4, 8), np.float32)))


def test_run_reads_npy_format_2(tmp_path):
    q, k, v = random_problem(np.random.default_rng(4), 4, 4, np.float32)
    for name, a in (("q", q), ("k", k), ("v", v)):
        with open(tmp_path / (name + ".npy"), "wb") as f:
            np.lib.format.write_array(f, a, version=(2, 0))
    result = run("run", "--q", tmp_path / "q.npy", "--k", tmp_path / "k.npy", "--v",
                 tmp_path / "v.npy", "--out", tmp_path / "o.npy")
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "o.npy"), relattn.attention(q, k, v))


SCALINGS = {
    "llama3": (["--rope-scaling", "llama3", "--rope-factor", 8, "--rope-low-freq", 1,
                "--rope-high-freq", 4, "--rope-original-max", 64],
               {"type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                "high_freq_factor": 4.0, "original_max_position": 64}),
    "yarn": (["--rope-scaling", "yarn", "--rope-factor", 4, "--rope-original-max", 256,
              "--rope-beta-fast", 32, "--rope-beta-slow", 1, "--rope-attention-factor", 1.2],
             {"type": "yarn", "factor": 4.0, "original_max_position": 256, "beta_fast": 32.0,
              "beta_slow": 1.0, "attention_factor": 1.2}),
    "linear": (["--rope-scaling", "linear", "--rope-factor", 4],
               {"type": "linear", "factor": 4.0}),
    "ntk": (["--rope-scaling", "ntk", "--rope-factor", 4], {"type": "ntk", "factor": 4.0}),
}


@pytest.mark.parametrize("name", sorted(SCALINGS) + ["longrope", "inv_freq"])
def test_run_rope_scaling_matches_library(tmp_path, name):
    rng = np.random.default_rng(zlib.crc32(("scaling/" + name).encode()))
    q, k, v = random_problem(rng, 9, 20, np.float32)
    half = q.shape[2] // 2
    if name == "longrope":
        short, long = rng.uniform(1, 3, half), rng.uniform(2, 6, half)
        np.save(tmp_path / "short.npy", short)
        np.save(tmp_path / "long.npy", long)
        flags = ["--rope-scaling", "longrope", "--rope-short-factor", tmp_path / "short.npy",
                 "--rope-long-factor", tmp_path / "long.npy", "--rope-original-max", 16,
                 "--rope-max-position", 256, "--rope-sequence-length", 100]
        scaling = {"type": "longrope", "short_factor": short, "long_factor": long,
                   "original_max_position": 16, "max_position": 256, "sequence_length": 100}
        rope = {"pairing": "halves", "scaling": scaling}
    elif name == "inv_freq":
        table = np.linspace(0.9, 1e-3, half)
        np.save(tmp_path / "inv.npy", table)
        flags = ["--rope-inv-freq", tmp_path / "inv.npy", "--rope-attention-factor", 1.1]
        rope = {"pairing": "halves", "inv_freq": table, "attention_factor": 1.1}
    else:
        flags, scaling = SCALINGS[name]
        rope = {"pairing": "halves", "scaling": scaling}
    extra = ["--rope", "halves", *flags, "--q-start", 1000, "--k-start", 989]
    out = run_attention(tmp_path, q, k, v, "none", {}, {"causal": True}, extra)
    args = dict(causal=True, rope=rope, q_start=1000, k_start=989)
    np.testing.assert_array_equal(out, relattn.attention(q, k, v, **args))
    np.testing.assert_allclose(out, oracle.attention(q, k, v, **args), rtol=0,
                               atol=TOLERANCE[np.float32])


@pytest.mark.parametrize("scheme", ["alibi", "t5-f32", "shaw-vector"])
def test_run_softcap_and_sinks_match_library(tmp_path, scheme):
    rng = np.random.default_rng(zlib.crc32(("softcap/" + scheme).encode()))
    q, k, v = random_problem(rng, 9, 20, np.float32)
    kind, bias_args = SCHEMES[scheme](q.shape[1], rng)
    sinks = rng.uniform(-1, 1, q.shape[1]).astype(np.float32)
    np.save(tmp_path / "sinks.npy", sinks)
    extra = ["--softcap", 2.5, "--scale", 3, "--sinks", tmp_path / "sinks.npy",
             "--q-start", 11]
    out = run_attention(tmp_path, q, k, v, kind, bias_args, {"causal": True}, extra)
    args = dict(scheme=kind, causal=True, softcap=2.5, scale=3.0, sinks=sinks, q_start=11,
                **bias_args)
    np.testing.assert_array_equal(out, relattn.attention(q, k, v, **args))
    np.testing.assert_allclose(out, oracle.attention(q, k, v, **args), rtol=0,
                               atol=TOLERANCE[np.float32])


def test_run_packed_sequences_positions_and_lse(tmp_path):
    rng = np.random.default_rng(17)
    lengths = [7, 30, 12]
    n = sum(lengths)
    q, k, v = random_problem(rng, n, n, np.float32)
    seg = np.repeat(np.arange(3), lengths).astype(np.int64)
    pos = np.concatenate([np.arange(length) for length in lengths]).astype(np.int64)
    for name, a in (("seg", seg), ("pos", pos)):
        np.save(tmp_path / (name + ".npy"), a)
    extra = ["--q-segments", tmp_path / "seg.npy", "--k-segments", tmp_path / "seg.npy",
             "--q-positions", tmp_path / "pos.npy", "--k-positions", tmp_path / "pos.npy",
             "--first-valid-kv", 2, "--lse-out", tmp_path / "lse.npy"]
    out = run_attention(tmp_path, q, k, v, "alibi", {}, {"causal": True}, extra)
    expected, lse = relattn.attention(q, k, v, scheme="alibi", causal=True, q_segments=seg,
                                      k_segments=seg, q_positions=pos, k_positions=pos,
                                      first_valid_kv=2, return_lse=True)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(np.load(tmp_path / "lse.npy"), lse)
    assert np.all(np.isinf(lse[:2]))  # the first two queries see only hidden keys


def test_run_sequence_inputs_errors(tmp_path):
    q, k, v = random_problem(np.random.default_rng(2), 4, 6, np.float32)
    for name, a in (("q", q), ("k", k), ("v", v), ("short", np.zeros(3, np.int64)),
                    ("big", np.array([0, 0, 0, 2**40], np.int64))):
        np.save(tmp_path / (name + ".npy"), a)
    base = ["run", "--q", tmp_path / "q.npy", "--k", tmp_path / "k.npy", "--v",
            tmp_path / "v.npy", "--out", tmp_path / "out.npy"]
    for extra, status, message in (
            (["--q-positions", tmp_path / "short.npy"], 1, "must be int64 [4], one per token"),
            (["--q-segments", tmp_path / "big.npy"], 2, "give both or neither"),
            (["--q-segments", tmp_path / "big.npy", "--k-segments", tmp_path / "big.npy"], 1,
             "id 1099511627776 of token 3 is outside the int32 range"),
            (["--q-positions", tmp_path / "short.npy", "--q-start", 3], 2, "give one of them")):
        result = run(*base, *extra)
        assert result.returncode == status and message in result.stderr, (extra, result.stderr)
        assert not (tmp_path / "out.npy").exists()


def test_run_t5_table_in_hugging_face_layout(tmp_path):
    """--table-layout buckets_heads takes HF's [num_buckets][heads] weight as it is stored."""
    rng = np.random.default_rng(9)
    q, k, v = random_problem(rng, 6, 6, np.float32)
    table = rng.standard_normal((4, 32)).astype(np.float32)  # [heads][buckets]
    expected = run_attention(tmp_path, q, k, v, "t5", {"table": table}, {"causal": True})
    got = run_attention(tmp_path, q, k, v, "t5", {"table": np.ascontiguousarray(table.T)},
                        {"causal": True}, ["--table-layout", "buckets_heads"])
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(got, relattn.attention(q, k, v, scheme="t5", table=table,
                                                         causal=True))
    np.save(tmp_path / "t.npy", table)
    bad = run("run", "--q", tmp_path / "q.npy", "--k", tmp_path / "k.npy", "--v",
              tmp_path / "v.npy", "--out", tmp_path / "o2.npy", "--scheme", "t5", "--table",
              tmp_path / "t.npy", "--table-layout", "buckets_heads")
    assert bad.returncode == 1 and "[num_buckets][4]" in bad.stderr
    bad = run("run", "--q", tmp_path / "q.npy", "--k", tmp_path / "k.npy", "--v",
              tmp_path / "v.npy", "--out", tmp_path / "o2.npy", "--scheme", "t5", "--table",
              tmp_path / "t.npy", "--table-layout", "rows")
    assert bad.returncode == 2 and "heads_buckets or buckets_heads" in bad.stderr
    assert not (tmp_path / "o2.npy").exists()


def round_bf16(x):
    """x (float32) rounded to bfloat16, nearest even, as float32 (finite inputs)."""
    b = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
    b = (b + 0x7FFF + ((b >> 16) & 1)) & 0xFFFF0000
    return b.astype(np.uint32).view(np.float32)


@pytest.mark.parametrize("file_dtype", [np.float32, np.float16])
def test_run_dtype_bf16_rounds_the_inputs(tmp_path, file_dtype):
    rng = np.random.default_rng(11)
    q, k, v = random_problem(rng, 9, 9, file_dtype)
    got = run_attention(tmp_path, q, k, v, "alibi", {}, {"causal": True}, ["--dtype", "bf16"])
    rounded = [round_bf16(x.astype(np.float32)) for x in (q, k, v)]
    expected = oracle.attention(*rounded, scheme="alibi", causal=True)
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE[np.float32])
    plain = run_attention(tmp_path, q, k, v, "alibi", {}, {"causal": True})
    assert np.abs(got - plain).max() > 1e-4  # the rounding is visible: bf16 was used
    bad = run("run", "--q", tmp_path / "q.npy", "--k", tmp_path / "k.npy", "--v",
              tmp_path / "v.npy", "--out", tmp_path / "o3.npy", "--dtype", "bf17")
    assert bad.returncode == 2 and "must be file or bf16" in bad.stderr


def test_run_precision_fast(tmp_path):
    rng = np.random.default_rng(12)
    q, k, v = random_problem(rng, 40, 40, np.float32)
    got = run_attention(tmp_path, q, k, v, "alibi", {}, {"causal": True},
                        ["--dtype", "bf16", "--precision", "fast"])
    rounded = [round_bf16(x) for x in (q, k, v)]
    np.testing.assert_allclose(got, oracle.attention(*rounded, scheme="alibi", causal=True),
                               rtol=0, atol=4e-3)
    bad = run("run", "--q", tmp_path / "q.npy", "--k", tmp_path / "k.npy", "--v",
              tmp_path / "v.npy", "--out", tmp_path / "o4.npy", "--precision", "quick")
    assert bad.returncode == 2 and "must be exact or fast" in bad.stderr
