"""relattn cache create / append / truncate / info / attention against the Python package's
KVCache (the same bytes: KVCache.frombytes reads the tool's files, the tool reads tobytes());
and the errors: exit status, one line on stderr, the file left as it was."""
import zlib

import numpy as np
import pytest

import numpy_attention as oracle
import relattn
from cli_helpers import fails, flags, ok, save
from problems import TOLERANCE, random_problem

DTYPES = {"f32": np.float32, "f16": np.float16, "bf16": "bfloat16", "i8": np.int8, "q4": "q4"}


def create(path, kv_heads, head_dim, capacity, *extra):
    ok("cache", "create", "--out", path, "--kv-heads", kv_heads, "--head-dim", head_dim,
       "--capacity", capacity, *extra)


def append(tmp_path, path, k, v, *extra):
    files = save(tmp_path, k_new=k, v_new=v)
    ok("cache", "append", "--cache", path, "--k", files["k_new"], "--v", files["v_new"], *extra)


def attention(tmp_path, path, q, *extra):
    """relattn cache attention of q over the cache file; returns its output."""
    ok("cache", "attention", "--cache", path, "--q", save(tmp_path, q_new=q)["q_new"], "--out",
       tmp_path / "o.npy", *extra)
    return np.load(tmp_path / "o.npy")


def info(path):
    return dict(line.split(" ", 1) for line in ok("cache", "info", "--cache", path).splitlines())


def frombytes(path, **kwargs):
    return relattn.KVCache.frombytes(path.read_bytes(), **kwargs)


STORAGES = [("f32", "f32", 16), ("f16", "f16", 16), ("bf16", "f16", 16), ("i8", "i8", 16),
            ("i8", "f32", 16), ("q4", "q4", 32)]


@pytest.mark.parametrize("ring", [False, True])
@pytest.mark.parametrize("k_dtype, v_dtype, dim", STORAGES)
def test_cache_matches_python(tmp_path, k_dtype, v_dtype, dim, ring):
    rng = np.random.default_rng(zlib.crc32(("cache/%s/%s/%d" % (k_dtype, v_dtype, ring)).encode()))
    path = tmp_path / "c.bin"
    create(path, 2, dim, 24, "--k-dtype", k_dtype, "--v-dtype", v_dtype, "--v-head-dim", 32,
           *(["--ring"] if ring else []))
    mine = relattn.KVCache(2, dim, 24, v_head_dim=32, k_dtype=DTYPES[k_dtype],
                           v_dtype=DTYPES[v_dtype], ring=ring)
    for n, start in ((10, None), (1, 100), (9 if ring else 5, None)):
        _, k, v = random_problem(rng, 1, n, np.float32, d=dim, dv=32)
        append(tmp_path, path, k, v, *(["--k-start", start] if start is not None else []))
        mine.append(k, v, start)
    q = rng.uniform(-1, 1, (3, 4, dim)).astype(np.float32)
    out = attention(tmp_path, path, q, "--scheme", "alibi", "--causal")
    np.testing.assert_array_equal(out, mine.attention(q, scheme="alibi", causal=True))
    theirs = frombytes(path)
    assert len(theirs) == len(mine) and theirs.next_position == mine.next_position
    np.testing.assert_array_equal(out, theirs.attention(q, scheme="alibi", causal=True))
    expected = {"kv_heads": "2", "head_dim": str(dim), "v_head_dim": "32", "k_dtype": k_dtype,
                "v_dtype": v_dtype, "capacity": "24", "length": str(len(mine)),
                "next_position": str(mine.next_position), "ring": str(int(ring)),
                "sink_tokens": "0", "sink_positions": "text", "rope": "none",
                "bytes": str(path.stat().st_size)}
    assert info(path) == expected
    assert path.stat().st_size == len(mine.tobytes())


def test_cache_reads_python_bytes_and_attention_options(tmp_path):
    """A cache Python wrote, attention with run's scheme, mask, softcap, sinks, positions,
    allowed pairs and lse options, against KVCache.attention and the numpy oracle."""
    rng = np.random.default_rng(41)
    q, k, v = random_problem(rng, 5, 30, np.float32)
    cache = relattn.KVCache(2, 16, 40, v_head_dim=12, dtype=np.float32)
    cache.append(k, v, 7)
    path = tmp_path / "py.bin"
    path.write_bytes(cache.tobytes())
    table = rng.uniform(-2, 2, (4, 16)).astype(np.float32)
    sinks = rng.uniform(-1, 1, 4).astype(np.float32)
    allowed = rng.random((5, 6)) < 0.5
    args = dict(scheme="t5", table=table, max_distance=40, causal=True, softcap=2.0,
                sinks=sinks, allowed=allowed, allowed_key_offset=24, first_valid_kv=2)
    out = attention(tmp_path, path, q, *flags(tmp_path, **args), "--lse-out", tmp_path / "l.npy")
    expected, lse = cache.attention(q, return_lse=True, **args)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(np.load(tmp_path / "l.npy"), lse)
    mask = np.ones((5, 30), bool)
    mask[:, 24:] = allowed
    mask[:, :2] = False
    plain = {key: value for key, value in args.items()
             if key not in ("allowed", "allowed_key_offset", "first_valid_kv")}
    reference = oracle.attention(q, k, v, q_start=37, k_start=7, allowed=mask, **plain)
    np.testing.assert_allclose(out, reference, rtol=0, atol=TOLERANCE[np.float32])
    positions = np.array([3, 9, 20, 40, 41], np.int64)
    out = attention(tmp_path, path, q, "--q-positions", save(tmp_path, pos=positions)["pos"],
                    "--causal")
    np.testing.assert_array_equal(out, cache.attention(q, q_positions=positions, causal=True))


LLAMA3 = {"type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position": 64}
LLAMA3_FLAGS = ["--rope-scaling", "llama3", "--rope-factor", 8, "--rope-low-freq", 1,
                "--rope-high-freq", 4, "--rope-original-max", 64]


def test_cache_rope_ring_sinks_truncate(tmp_path):
    rng = np.random.default_rng(43)
    path = tmp_path / "c.bin"
    rope = {"pairing": "halves", "base": 500000.0, "scaling": LLAMA3}
    create(path, 2, 16, 12, "--ring", "--sink-tokens", 3, "--sink-positions", "cache",
           "--rope", "halves", "--rope-base", 500000, *LLAMA3_FLAGS)
    mine = relattn.KVCache(2, 16, 12, ring=True, sink_tokens=3, sink_positions="cache",
                           rope=rope)
    for n in (8, 7, 4):
        _, k, v = random_problem(rng, 1, n, np.float16, dv=16)
        append(tmp_path, path, k, v)
        mine.append(k, v)
    fields = info(path)
    assert (fields["rope"], fields["rope_scaling"], fields["rope_base"]) == ("halves", "llama3",
                                                                           "500000")
    assert (fields["sink_tokens"], fields["sink_positions"]) == ("3", "cache")
    q = rng.uniform(-1, 1, (2, 4, 16)).astype(np.float32)
    np.testing.assert_array_equal(attention(tmp_path, path, q, "--causal"),
                                  mine.attention(q, causal=True))
    ok("cache", "truncate", "--cache", path, "--keep", 5)
    mine.truncate(5)
    assert info(path)["length"] == "5" and info(path)["next_position"] == str(mine.next_position)
    np.testing.assert_array_equal(attention(tmp_path, path, q, "--causal"),
                                  mine.attention(q, causal=True))
    # the same rope given again is the cache's; another is the library's to reject
    np.testing.assert_array_equal(
        attention(tmp_path, path, q, "--rope", "halves", "--rope-base", 500000, *LLAMA3_FLAGS),
        mine.attention(q))
    fails(1, "bad RoPE parameter: rope: must equal the kv_cache's rope", "cache", "attention",
          "--cache", path, "--q", tmp_path / "q_new.npy", "--out", tmp_path / "o2.npy",
          "--rope", "halves")


def test_cache_rope_table_given_again(tmp_path):
    """--rope-inv-freq: the cache keeps the thetas, not the table; attention takes it again."""
    rng = np.random.default_rng(47)
    inv = save(tmp_path, inv=np.linspace(0.9, 1e-3, 8))["inv"]
    path = tmp_path / "c.bin"
    create(path, 2, 16, 8, "--rope", "interleaved", "--rope-inv-freq", inv)
    _, k, v = random_problem(rng, 1, 6, np.float32, dv=16)
    append(tmp_path, path, k, v, "--k-positions", save(tmp_path, p=np.arange(6) * 3)["p"])
    q = rng.uniform(-1, 1, (1, 4, 16)).astype(np.float32)
    rope = {"pairing": "interleaved", "inv_freq": np.linspace(0.9, 1e-3, 8)}
    out = attention(tmp_path, path, q, "--rope", "interleaved", "--rope-inv-freq", inv)
    mine = relattn.KVCache(2, 16, 8, rope=rope)
    mine.append(k, v, np.arange(6) * 3)
    np.testing.assert_array_equal(out, mine.attention(q))
    fails(1, "rope.scaling.inv_freq", "cache", "attention", "--cache", path, "--q",
          tmp_path / "q_new.npy", "--out", tmp_path / "o2.npy")


def test_cache_int8_queries(tmp_path):
    rng = np.random.default_rng(53)
    q, k, v = random_problem(rng, 2, 9, np.float32)
    path = tmp_path / "c.bin"
    create(path, 2, 16, 9, "--k-dtype", "i8", "--v-head-dim", 12)
    append(tmp_path, path, k, v)
    q8 = relattn.quantize_i8(q)
    files = save(tmp_path, q8=q8[0], q8s=q8[1])
    ok("cache", "attention", "--cache", path, "--q", files["q8"], "--q-scales", files["q8s"],
       "--out", tmp_path / "o.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "o.npy"), frombytes(path).attention(q8))


def test_cache_errors_leave_the_file(tmp_path):
    rng = np.random.default_rng(59)
    path = tmp_path / "c.bin"
    create(path, 2, 16, 6)
    q, k, v = random_problem(rng, 1, 4, np.float32, dv=16)
    files = save(tmp_path, q=q, k=k, v=v, v5=v[:3], k3=k[:, :1], q8=q[:, :, :8],
                 pos3=np.arange(3))
    fails(1, "kv_cache holds no token", "cache", "attention", "--cache", path, "--q",
          files["q"], "--out", tmp_path / "o.npy")
    append(tmp_path, path, k, v)
    before = path.read_bytes()
    cases = [
        (2, "--capacity is required", "cache", "create", "--out", tmp_path / "n.bin",
         "--kv-heads", 2, "--head-dim", 16),
        (2, "--k-dtype 'int8': must be f32, f16, bf16, i8 or q4", "cache", "create", "--out",
         tmp_path / "n.bin", "--kv-heads", 2, "--head-dim", 16, "--capacity", 4, "--k-dtype",
         "int8"),
        (2, "--sink-positions 'window': must be text or cache", "cache", "create", "--out",
         tmp_path / "n.bin", "--kv-heads", 2, "--head-dim", 16, "--capacity", 4,
         "--sink-positions", "window"),
        (1, "relattn cache create: dimension out of range: n_kv_heads = 0", "cache", "create",
         "--out",
         tmp_path / "n.bin", "--kv-heads", 0, "--head-dim", 16, "--capacity", 4),
        (1, "relattn cache create: ", "cache", "create", "--out", tmp_path / "n.bin",
         "--kv-heads", 2, "--head-dim", 16, "--capacity", 4, "--k-dtype", "q4"),
        (1, "n_sink_tokens", "cache", "create", "--out", tmp_path / "n.bin", "--kv-heads", 2,
         "--head-dim", 16, "--capacity", 4, "--sink-tokens", 2),
        (2, "unknown command 'load'", "cache", "load"),
        (2, "unknown option --q (see relattn cache append --help)", "cache", "append",
         "--cache", path, "--q", files["q"]),
        (1, "cache full", "cache", "append", "--cache", path, "--k", files["k"], "--v",
         files["v"]),
        (1, "(float32 (3, 2, 16)): must be [4][2][16] (the cache's kv_heads, v_head_dim; the "
         "tokens of --k)", "cache", "append", "--cache", path, "--k", files["k"], "--v",
         files["v5"]),
        (1, "(float32 (4, 1, 16)): must be [4][2][16] (the cache's kv_heads, head_dim)",
         "cache", "append", "--cache", path, "--k", files["k3"], "--v", files["v"]),
        (1, "--k-positions %s (int64 (3,)): must be int64 [4]" % files["pos3"], "cache",
         "append", "--cache", path, "--k", files["k"], "--v", files["v"], "--k-positions",
         files["pos3"]),
        (2, "--k-positions and --k-start: give one of them", "cache", "append", "--cache", path,
         "--k", files["k"], "--v", files["v"], "--k-positions", files["pos3"], "--k-start", 1),
        (1, "dimension out of range: ", "cache", "truncate", "--cache", path, "--keep", 5),
        (2, "--keep is required", "cache", "truncate", "--cache", path),
        (1, "(float32 (1, 4, 8)): head_dim must be the cache's 16", "cache", "attention",
         "--cache", path, "--q", files["q8"], "--out", tmp_path / "o.npy"),
        (1, "--cache %s: cannot open" % (tmp_path / "none.bin"), "cache", "info", "--cache",
         tmp_path / "none.bin"),
    ]
    for status, text, *args in cases:
        fails(status, text, *args)
    assert path.read_bytes() == before
    assert not (tmp_path / "n.bin").exists() and not (tmp_path / "o.npy").exists()
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize("damage", ["magic", "length", "value", "truncated", "empty"])
def test_cache_damaged_file_is_refused(tmp_path, damage):
    path = tmp_path / "c.bin"
    create(path, 2, 16, 8, "--dtype", "f32")
    _, k, v = random_problem(np.random.default_rng(61), 1, 5, np.float32, dv=16)
    append(tmp_path, path, k, v)
    data = bytearray(path.read_bytes())
    if damage == "magic":
        data[0] ^= 0xFF
    elif damage == "length":  # the header's length, next slot, next position: 5, 5, 5
        at = data.find(np.array([5, 5, 5], "<i8").tobytes())
        data[at:at + 8] = np.array([9], "<i8").tobytes()  # beyond the capacity
    elif damage == "value":  # a stored V value made infinite
        v_bytes = np.asarray(v[-1, -1, -1], np.float32).tobytes()
        at = data.rfind(v_bytes)
        data[at:at + 4] = np.float32(np.inf).tobytes()
    elif damage == "truncated":
        data = data[:len(data) // 2]
    else:
        data = b""
    bad = tmp_path / "bad.bin"
    bad.write_bytes(bytes(data))
    short = damage in ("truncated", "empty")
    text = "workspace too small" if short else "not an initialised KV cache"
    for args in (["info"], ["truncate", "--keep", 1],
                 ["attention", "--q", save(tmp_path, q=np.zeros((1, 4, 16), np.float32))["q"],
                  "--out", tmp_path / "o.npy"]):
        fails(1, "--cache %s: %s" % (bad, text), "cache", args[0], "--cache", bad, *args[1:])
    assert bad.read_bytes() == bytes(data) and not (tmp_path / "o.npy").exists()
