"""Bad arguments and malformed or mismatched .npy files: one line on stderr naming the
problem, a non-zero exit status (2: arguments, 1: files and the library), no output file, and
an existing output file left as it was."""
import subprocess

import numpy as np
import pytest

from cli_helpers import CLI


def write(path, data):
    path.write_bytes(data)
    return path


def npy_bytes(a):
    import io
    f = io.BytesIO()
    np.save(f, a)
    return f.getvalue()


def raw_npy(header):
    """A v1.0 .npy file with the given header dict text and 64 bytes of data."""
    text = header.encode() + b"\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + bytes(64)


@pytest.fixture
def files(tmp_path):
    """Good q, k, v files, and makers of bad ones, in tmp_path."""
    q = np.zeros((4, 4, 8), np.float32)
    kv = np.zeros((5, 2, 8), np.float32)
    paths = {"q": tmp_path / "q.npy", "k": tmp_path / "k.npy", "v": tmp_path / "v.npy"}
    for name, a in (("q", q), ("k", kv), ("v", kv)):
        np.save(paths[name], a)
    good = npy_bytes(q)
    bad = {
        "missing": tmp_path / "missing.npy",
        "truncated": write(tmp_path / "truncated.npy", good[:-10]),
        "short_header": write(tmp_path / "short_header.npy", good[:20]),
        "trailing": write(tmp_path / "trailing.npy", good + b"\0\0\0\0"),
        "not_npy": write(tmp_path / "not_npy.npy", b"hello, world\n" * 10),
        "fortran": write(tmp_path / "fortran.npy", npy_bytes(np.asfortranarray(q))),
        "big_endian": write(tmp_path / "big_endian.npy", npy_bytes(q.astype(">f4"))),
        "float64": write(tmp_path / "float64.npy", npy_bytes(q.astype(np.float64))),
        "int64": write(tmp_path / "int64.npy", npy_bytes(q.astype(np.int64))),
        "rank2": write(tmp_path / "rank2.npy", npy_bytes(q[0])),
        "dim7": write(tmp_path / "dim7.npy", npy_bytes(np.zeros((5, 2, 7), np.float32))),
        "tokens6": write(tmp_path / "tokens6.npy", npy_bytes(np.zeros((6, 2, 8), np.float32))),
        "heads3": write(tmp_path / "heads3.npy", npy_bytes(np.zeros((5, 3, 8), np.float32))),
        "table3": write(tmp_path / "table3.npy", npy_bytes(np.zeros((3, 32), np.float32))),
        "slopes3": write(tmp_path / "slopes3.npy", npy_bytes(np.zeros(3, np.float32))),
        "slopes4": write(tmp_path / "slopes4.npy", npy_bytes(np.zeros(4, np.float32))),
        "table_even": write(tmp_path / "table_even.npy", npy_bytes(np.zeros((4, 8), np.float32))),
        "sv_heads3": write(tmp_path / "sv_heads3.npy", npy_bytes(np.zeros((3, 5, 8), np.float32))),
        "sv_dim7": write(tmp_path / "sv_dim7.npy", npy_bytes(np.zeros((4, 5, 7), np.float32))),
        "sv_rank1": write(tmp_path / "sv_rank1.npy", npy_bytes(np.zeros(40, np.float32))),
        "sv_even": write(tmp_path / "sv_even.npy", npy_bytes(np.zeros((4, 4, 8), np.float32))),
        "sv_f16": write(tmp_path / "sv_f16.npy", npy_bytes(np.zeros((5, 8), np.float16))),
        "sv_k65": write(tmp_path / "sv_k65.npy", npy_bytes(np.zeros((131, 8), np.float32))),
        "sv_nan": write(tmp_path / "sv_nan.npy", npy_bytes(np.full((4, 3, 8), np.nan, np.float32))),
        "k_nan": write(tmp_path / "k_nan.npy", npy_bytes(
            np.where(np.arange(80).reshape(5, 2, 8) == 11, np.nan, 0).astype(np.float32))),
        "q_i8": write(tmp_path / "q_i8.npy", npy_bytes(np.zeros((4, 4, 8), np.int8))),
        "k_i8": write(tmp_path / "k_i8.npy", npy_bytes(np.zeros((5, 2, 8), np.int8))),
        "q_scales": write(tmp_path / "q_scales.npy", npy_bytes(np.ones((4, 4), np.float32))),
        "k_scales": write(tmp_path / "k_scales.npy", npy_bytes(np.ones((5, 2), np.float32))),
        "scales_f16": write(tmp_path / "scales_f16.npy", npy_bytes(np.ones((4, 4), np.float16))),
        "allowed": write(tmp_path / "allowed.npy", npy_bytes(np.ones((4, 5), bool))),
        "allowed_u64_0": write(tmp_path / "allowed_u64_0.npy",
                               npy_bytes(np.ones((4, 0), np.uint64))),
        "allowed_u64_1": write(tmp_path / "allowed_u64_1.npy",
                               npy_bytes(np.ones((4, 1), np.uint64))),
        "allowed_i64": write(tmp_path / "allowed_i64.npy", npy_bytes(np.ones((4, 5), np.int64))),
        "bad_shape": write(tmp_path / "bad_shape.npy", raw_npy(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }")),
        "unknown_key": write(tmp_path / "unknown_key.npy", raw_npy(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (16,), 'extra': 1, }")),
    }
    return tmp_path, paths, bad


def base(paths, out, q=None, k=None, v=None):
    return ["run", "--q", q or paths["q"], "--k", k or paths["k"], "--v", v or paths["v"],
            "--out", out]


# (name, argument maker given (paths, bad, out), exit status, text stderr must contain)
CASES = [
    ("bad flag", lambda p, b, o: base(p, o) + ["--frobnicate"], 2,
     "relattn run: unknown option --frobnicate"),
    ("flag without value", lambda p, b, o: base(p, o) + ["--window"], 2, "--window needs 1 value"),
    ("missing --q", lambda p, b, o: ["run", "--k", p["k"], "--v", p["v"], "--out", o], 2,
     "--q is required"),
    ("positional", lambda p, b, o: base(p, o) + ["extra"], 2, "unexpected argument 'extra'"),
    ("bad int", lambda p, b, o: base(p, o) + ["--window", "5x"], 2,
     "--window '5x' is not an integer"),
    ("int64 overflow", lambda p, b, o: base(p, o) + ["--q-start", "9223372036854775808"], 2,
     "--q-start = 9223372036854775808: must be in"),
    ("bad float", lambda p, b, o: base(p, o) + ["--scale", "inf"], 2,
     "--scale 'inf' is not a finite number"),
    ("negative threads", lambda p, b, o: base(p, o) + ["--threads", "-1"], 2,
     "--threads = -1: must be in 0..1024"),
    ("bad scheme", lambda p, b, o: base(p, o, q=b["missing"]) + ["--scheme", "rope"], 2,
     "--scheme 'rope': must be none, alibi, t5, shaw or shaw_vector"),  # before files
    ("table unused", lambda p, b, o: base(p, o) + ["--table", p["q"]], 2,
     "--table is not used by --scheme none"),
    ("slopes and max-bias", lambda p, b, o: base(p, o) + [
        "--scheme", "alibi", "--slopes", p["q"], "--max-bias", "8"], 2, "exclude each other"),
    ("t5 without table", lambda p, b, o: base(p, o) + ["--scheme", "t5"], 2,
     "--table is required"),
    ("missing file", lambda p, b, o: base(p, o, q=b["missing"]), 1,
     "missing.npy: cannot open: No such file or directory"),
    ("truncated", lambda p, b, o: base(p, o, q=b["truncated"]), 1,
     "truncated: the header's shape (4, 4, 8) needs 512 data bytes, the file has 502"),
    ("directory", lambda p, b, o: base(p, o, q=p["q"].parent), 1,
     ": cannot read: Is a directory"),
    ("header cut", lambda p, b, o: base(p, o, k=b["short_header"]), 1,
     "truncated: the file ends inside its header"),
    ("trailing data", lambda p, b, o: base(p, o, q=b["trailing"]), 1, "trailing data"),
    ("not npy", lambda p, b, o: base(p, o, v=b["not_npy"]), 1, "not a .npy file"),
    ("fortran order", lambda p, b, o: base(p, o, q=b["fortran"]), 1,
     "fortran_order arrays are not supported"),
    ("big endian", lambda p, b, o: base(p, o, q=b["big_endian"]), 1,
     "dtype '>f4' is not supported (little-endian float32 '<f4', float16 '<f2', float64 '<f8', "
     "int64 '<i8', uint64 '<u8', int8 '|i1', uint8 '|u1', uint16 '<u2' or bool '|b1' only)"),
    ("float64", lambda p, b, o: base(p, o, q=b["float64"]), 1,
     "(float64 (4, 4, 8)): must be float32 or float16"),
    ("scaling without rope", lambda p, b, o: base(p, o) + ["--rope-scaling", "linear"], 2,
     "--rope-scaling, --rope-inv-freq: not used by --rope none"),
    ("scaling option of another family",
     lambda p, b, o: base(p, o) + ["--rope", "halves", "--rope-scaling", "linear",
                                   "--rope-beta-fast", "3"], 2,
     "--rope-beta-fast is not used by --rope-scaling linear"),
    ("unknown scaling", lambda p, b, o: base(p, o) + ["--rope", "halves", "--rope-scaling",
                                                      "dynamic"], 2,
     "--rope-scaling 'dynamic': must be none, linear, ntk, llama3, yarn or longrope"),
    ("bad rope factor", lambda p, b, o: base(p, o) + ["--rope", "halves", "--rope-scaling",
                                                      "linear", "--rope-factor", "0"], 1,
     "rope.scaling.factor = 0"),
    ("inv_freq not float64", lambda p, b, o: base(p, o) + ["--rope", "halves", "--rope-inv-freq",
                                                           b["slopes4"]], 1,
     "(float32 (4,)): must be float64 [rotary_dims / 2]"),
    ("bad softcap", lambda p, b, o: base(p, o) + ["--softcap", "-1"], 1, "softcap = -1"),
    ("sinks heads", lambda p, b, o: base(p, o) + ["--sinks", b["slopes3"]], 1,
     "(float32 (3,)): must be [4] (one row per query head)"),
    ("int64 q", lambda p, b, o: base(p, o, q=b["int64"]), 1,
     "(int64 (4, 4, 8)): must be float32 or float16, or int8 with --q-scales"),
    ("malformed shape", lambda p, b, o: base(p, o, q=b["bad_shape"]), 1,
     "header value of 'shape' is malformed"),
    ("unknown key", lambda p, b, o: base(p, o, q=b["unknown_key"]), 1,
     "header has an unknown key 'extra'"),
    ("wrong rank", lambda p, b, o: base(p, o, q=b["rank2"]), 1,
     "(float32 (4, 8)): must be [tokens][heads][head_dim]"),
    ("head_dim mismatch", lambda p, b, o: base(p, o, k=b["dim7"]), 1, "head_dim differ"),
    ("token mismatch", lambda p, b, o: base(p, o, v=b["tokens6"]), 1, "token counts differ"),
    ("heads not multiple", lambda p, b, o: base(p, o, k=b["heads3"], v=b["heads3"]), 1,
     "heads must be a multiple of the heads of --k"),
    ("table heads", lambda p, b, o: base(p, o) + ["--scheme", "t5", "--table", b["table3"]], 1,
     "(float32 (3, 32)): must be [4][width]"),
    ("shaw width", lambda p, b, o: base(p, o) + ["--scheme", "shaw", "--table", b["table_even"]],
     1, "width must be 2k+1 (odd)"),
    ("shaw_vector without table", lambda p, b, o: base(p, o) + ["--scheme", "shaw_vector"], 2,
     "--table is required"),
    ("shaw_vector max distance", lambda p, b, o: base(p, o) + [
        "--scheme", "shaw_vector", "--table", b["sv_even"], "--max-distance", "8"], 2,
     "--max-distance is not used by --scheme shaw_vector"),
    ("shaw_vector table heads", lambda p, b, o: base(p, o) + [
        "--scheme", "shaw_vector", "--table", b["sv_heads3"]], 1,
     "(float32 (3, 5, 8)): must be [4][2k+1][8] (one table per query head) or [2k+1][8] "
     "(shared)"),
    ("shaw_vector table head_dim", lambda p, b, o: base(p, o) + [
        "--scheme", "shaw_vector", "--table", b["sv_dim7"]], 1,
     "(float32 (4, 5, 7)): must be [4][2k+1][8]"),
    ("shaw_vector table rank", lambda p, b, o: base(p, o) + [
        "--scheme", "shaw_vector", "--table", b["sv_rank1"]], 1,
     "(float32 (40,)): must be [4][2k+1][8]"),
    ("shaw_vector table dtype", lambda p, b, o: base(p, o) + [
        "--scheme", "shaw_vector", "--table", b["sv_f16"]], 1,
     "(float16 (5, 8)): must be float32"),
    ("shaw_vector even rows", lambda p, b, o: base(p, o) + [
        "--scheme", "shaw_vector", "--table", b["sv_even"]], 1,
     "(float32 (4, 4, 8)): offset rows must be 2k+1 (odd)"),
    ("shaw_vector shaw-k", lambda p, b, o: base(p, o) + [
        "--scheme", "shaw_vector", "--table", b["sv_k65"], "--shaw-k", "3"], 1,
     "(float32 (131, 8)): offset rows must be 2k+1 = 7"),
    ("library: shaw_vector k", lambda p, b, o: base(p, o) + [
        "--scheme", "shaw_vector", "--table", b["sv_k65"]], 1,
     "bad position scheme parameter: bias.shaw_vector.k = 65: must be in 0..64"),
    ("library: shaw_vector nan", lambda p, b, o: base(p, o) + [
        "--scheme", "shaw_vector", "--table", b["sv_nan"]], 1,
     "relattn run: bad position scheme parameter: bias.shaw_vector.table"),
    ("bad quantize", lambda p, b, o: base(p, o, q=b["missing"]) + ["--quantize", "q"], 2,
     "--quantize 'q': must be none, k or qk"),  # arguments before files
    ("library: quantize nan", lambda p, b, o: base(p, o, k=b["k_nan"]) + ["--quantize", "qk"],
     1, "relattn run: --quantize, --k: non-finite value to quantise: src element (token 0, "
     "head 1, 3) = nan: must be finite"),
    ("int8 without scales", lambda p, b, o: base(p, o, q=b["q_i8"], k=b["k_i8"]), 2,
     "(int8 (4, 4, 8)): an int8 --q needs its row scales, --q-scales FILE.npy"),
    ("scales without int8", lambda p, b, o: base(p, o) + ["--k-scales", b["k_scales"]], 2,
     "--k-scales: --k "),
    ("scales shape", lambda p, b, o: base(p, o, k=b["k_i8"]) + ["--k-scales", b["q_scales"]], 1,
     "(float32 (4, 4)): must be float32 [5][2], one scale per (token, head) row"),
    ("scales dtype", lambda p, b, o: base(p, o, q=b["q_i8"], k=b["k_i8"]) + [
        "--q-scales", b["scales_f16"], "--k-scales", b["k_scales"]], 1,
     "(float16 (4, 4)): must be float32 [4][4]"),
    ("library: int8 q, float k", lambda p, b, o: base(p, o, q=b["q_i8"]) + [
        "--q-scales", b["q_scales"]], 1,
     "relattn run: unsupported: q.dtype = I8 with k.dtype = F32"),
    ("quantize and scales", lambda p, b, o: base(p, o, k=b["missing"]) + [
        "--quantize", "k", "--k-scales", b["missing"]], 2,
     "--quantize k quantises --k itself: not with --k-scales"),  # arguments before files
    ("bf16 and scales", lambda p, b, o: base(p, o, v=b["missing"]) + [
        "--dtype", "bf16", "--v-scales", b["missing"]], 2,
     "--dtype bf16 rounds float inputs: not with --v-scales"),
    ("allowed shape", lambda p, b, o: base(p, o) + ["--allowed", b["allowed"],
                                                    "--allowed-key-offset", "1"], 1,
     "(bool (4, 5)): must be bool [4][4] (queries, keys from --allowed-key-offset 1 on) or "
     "packed uint64 [4][words >= 1]"),
    ("allowed dtype", lambda p, b, o: base(p, o) + ["--allowed", b["allowed_i64"]], 1,
     "(int64 (4, 5)): must be bool [4][5]"),
    ("allowed no words", lambda p, b, o: base(p, o) + ["--allowed", b["allowed_u64_0"]], 1,
     "(uint64 (4, 0)): must be bool [4][5]"),
    ("offset without allowed", lambda p, b, o: base(p, o) + ["--allowed-key-offset", "2"], 2,
     "--allowed-key-offset needs --allowed"),
    ("negative offset", lambda p, b, o: base(p, o) + ["--allowed", b["allowed"],
                                                      "--allowed-key-offset", "-1"], 2,
     "--allowed-key-offset = -1: must be in 0.."),
    ("library: offset beyond keys", lambda p, b, o: base(p, o) + [
        "--allowed", b["allowed_u64_1"], "--allowed-key-offset", "6"], 1,
     "bad mask: mask.allowed_key_offset = 6: must be in 0..n_kv = 5"),
    ("buckets mismatch", lambda p, b, o: base(p, o) + [
        "--scheme", "t5", "--table", b["table_even"], "--num-buckets", "16"], 1,
     "width must equal --num-buckets 16"),
    ("library: max_distance", lambda p, b, o: base(p, o) + [
        "--scheme", "t5", "--table", b["table_even"], "--max-distance", "2"], 1,
     "relattn run: bad position scheme parameter: "),
    ("library: overflow", lambda p, b, o: base(p, o) + [
        "--q-start", "-9223372036854775808", "--k-start", "1"], 1, "overflows int64"),
    ("unwritable output", lambda p, b, o: base(p, str(o) + ".d/none/out.npy"), 1,
     "cannot create"),
    ("bad rope", lambda p, b, o: base(p, o, q=b["missing"]) + ["--rope", "neox"], 2,
     "--rope 'neox': must be none, interleaved or halves"),  # arguments before files
    ("rope option without rope", lambda p, b, o: base(p, o) + ["--rotary-dims", "4"], 2,
     "--rotary-dims is not used by --rope none"),
    ("rope base with rope none", lambda p, b, o: base(p, o) + [
        "--rope", "none", "--rope-base", "500000"], 2, "--rope-base is not used by --rope none"),
    ("rope without value", lambda p, b, o: base(p, o) + ["--rope"], 2, "--rope needs 1 value"),
    ("rotary dims odd", lambda p, b, o: base(p, o) + ["--rope", "halves", "--rotary-dims", "5"],
     2, "--rotary-dims = 5: must be even"),
    ("rotary dims range", lambda p, b, o: base(p, o) + [
        "--rope", "halves", "--rotary-dims", "0"], 2, "--rotary-dims = 0: must be in 2..256"),
    ("rotary dims not int", lambda p, b, o: base(p, o) + [
        "--rope", "halves", "--rotary-dims", "4.0"], 2, "--rotary-dims '4.0' is not an integer"),
    ("rope base 1", lambda p, b, o: base(p, o) + ["--rope", "interleaved", "--rope-base", "1"],
     2, "--rope-base = 1: must be > 1"),
    ("rope base beyond float32", lambda p, b, o: base(p, o) + [
        "--rope", "interleaved", "--rope-base", "1e39"], 2, "--rope-base = 1e39: must be > 1"),
    ("rope base not a number", lambda p, b, o: base(p, o) + [
        "--rope", "interleaved", "--rope-base", "ten"], 2, "--rope-base 'ten' is not a finite"),
    ("rope scale 0", lambda p, b, o: base(p, o) + ["--rope", "halves", "--rope-scale", "0"], 2,
     "--rope-scale = 0: must be >= 1e-6"),
    ("rope scale nan", lambda p, b, o: base(p, o) + ["--rope", "halves", "--rope-scale", "nan"],
     2, "--rope-scale 'nan' is not a finite number"),
    ("library: rotary dims > head_dim", lambda p, b, o: base(p, o) + [
        "--rope", "halves", "--rotary-dims", "10"], 1,
     "bad RoPE parameter: rope.rotary_dims = 10: must be even and in 2..head_dim = 8"),
    ("library: rope positions", lambda p, b, o: base(p, o) + [
        "--rope", "halves", "--q-start", str(2**53 - 1)], 1,
     "q_pos: positions 9007199254740991..9007199254740994 with rope: must be within +-2^53"),
    ("slopes: heads", lambda p, b, o: ["slopes", "--heads", "0"], 2, "--heads = 0: must be in"),
    ("buckets: causal odd", lambda p, b, o: [
        "buckets", "--num-buckets", "1", "--max-distance", "8", "--causal", "3"], 1,
     "num_buckets = 1"),
    ("buckets: no offsets", lambda p, b, o: [
        "buckets", "--num-buckets", "32", "--max-distance", "128"], 2, "no OFFSET or --range"),
    ("buckets: reversed range", lambda p, b, o: [
        "buckets", "--num-buckets", "32", "--max-distance", "128", "--range", "3", "-3"], 2,
     "--range 3 -3: A > B"),
    ("buckets: bad offset", lambda p, b, o: [
        "buckets", "--num-buckets", "32", "--max-distance", "128", "--", "-x"], 2,
     "OFFSET '-x' is not an integer"),
    ("unknown command", lambda p, b, o: ["frobnicate"], 2, "unknown command 'frobnicate'"),
]


@pytest.mark.parametrize("name, make, status, text", CASES, ids=[c[0] for c in CASES])
def test_error(files, name, make, status, text):
    tmp_path, paths, bad = files
    out = tmp_path / "out.npy"
    result = subprocess.run([CLI, *map(str, make(paths, bad, out))], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == status, result.stderr
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and text in result.stderr, result.stderr
    assert not out.exists() and not list(tmp_path.glob("*.partial"))


def test_failed_run_leaves_existing_output(files):
    tmp_path, paths, bad = files
    out = write(tmp_path / "out.npy", b"previous contents")
    result = subprocess.run([CLI, *map(str, base(paths, out, q=bad["truncated"]))],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and out.read_bytes() == b"previous contents"
