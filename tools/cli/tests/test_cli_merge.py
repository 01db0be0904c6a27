"""relattn merge against relattn.merge (bit-identical) and attention over all the keys; its
errors: exit status, one line on stderr, no output file."""
import numpy as np
import pytest

import relattn
from cli_helpers import fails, ok, save
from problems import TOLERANCE, random_problem


def parts(tmp_path, dtype, split=11):
    """q, k, v and each half of the keys' (o, lse) from relattn run, saved as files."""
    q, k, v = random_problem(np.random.default_rng(31), 7, 25, np.float32)
    paths = save(tmp_path, q=q, k1=k[:split], v1=v[:split], k2=k[split:], v2=v[split:])
    for i, start in ((1, 0), (2, split)):
        ok("run", "--q", paths["q"], "--k", paths["k%d" % i], "--v", paths["v%d" % i],
           "--out", tmp_path / ("o%d.npy" % i), "--lse-out", tmp_path / ("lse%d.npy" % i),
           "--scheme", "alibi", "--causal", "--q-start", 18, "--k-start", start)
        o = np.load(tmp_path / ("o%d.npy" % i))
        np.save(tmp_path / ("o%d.npy" % i), o.astype(dtype))
    return q, k, v


def merge_args(tmp_path, **extra):
    args = ["merge", "--out", tmp_path / "o.npy"]
    for name in ["o1", "lse1", "o2", "lse2"]:
        args += ["--" + name, extra.pop(name, tmp_path / (name + ".npy"))]
    return args + [x for key, value in extra.items() for x in ("--" + key, value)]


@pytest.mark.parametrize("sinks", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_merge_matches_library_and_whole_attention(tmp_path, dtype, sinks):
    q, k, v = parts(tmp_path, dtype)
    sink = np.linspace(-1, 1, 4).astype(np.float32)
    extra = {"sinks": save(tmp_path, sinks=sink)["sinks"]} if sinks else {}
    ok(*merge_args(tmp_path, **extra, **{"lse-out": tmp_path / "lse.npy"}))
    o, lse = np.load(tmp_path / "o.npy"), np.load(tmp_path / "lse.npy")
    loaded = [np.load(tmp_path / (name + ".npy")) for name in ["o1", "lse1", "o2", "lse2"]]
    expected = relattn.merge(*loaded, sinks=sink if sinks else None)
    np.testing.assert_array_equal(o, expected[0])
    np.testing.assert_array_equal(lse, expected[1])
    whole, whole_lse = relattn.attention(q, k, v, scheme="alibi", causal=True, q_start=18,
                                         sinks=sink if sinks else None, return_lse=True)
    np.testing.assert_allclose(o, whole, rtol=0, atol=TOLERANCE[dtype])
    np.testing.assert_allclose(lse, whole_lse, rtol=1e-6)
    ok(*merge_args(tmp_path, out=tmp_path / "o_only.npy"))  # --lse-out is optional


def test_merge_errors(tmp_path):
    parts(tmp_path, np.float32)
    bad = save(tmp_path, short=np.zeros((6, 4, 12), np.float32),
               lse_short=np.zeros((6, 4), np.float32), lse_f16=np.zeros((7, 4), np.float16),
               lse_inf=np.full((7, 4), np.inf, np.float32),
               sinks3=np.zeros(3, np.float32))
    lse_out = {"lse-out": tmp_path / "lse.npy"}
    fails(2, "--lse2 is required", "merge", "--o1", "a", "--lse1", "b", "--o2", "c", "--out", "d")
    fails(2, "unknown option --lse", *merge_args(tmp_path, lse=bad["lse_f16"]))
    fails(1, "--o2 %s (float32 (6, 4, 12)): must have the shape of --o1" % bad["short"],
          *merge_args(tmp_path, o2=bad["short"], **lse_out))
    fails(1, "(float32 (6, 4)): must be float32 [7][4] (the part's tokens and heads)",
          *merge_args(tmp_path, lse1=bad["lse_short"], **lse_out))
    fails(1, "(float16 (7, 4)): must be float32 [7][4]",
          *merge_args(tmp_path, lse2=bad["lse_f16"], **lse_out))
    fails(1, "(float32 (3,)): must be [4] (one row per query head)",
          *merge_args(tmp_path, sinks=bad["sinks3"], **lse_out))
    fails(1, "relattn merge: values too large for f32 scores: lse_a[0] = +inf",
          *merge_args(tmp_path, lse1=bad["lse_inf"], **lse_out))
    fails(1, "missing.npy: cannot open", *merge_args(tmp_path, o1=tmp_path / "missing.npy"))
    assert not (tmp_path / "o.npy").exists() and not (tmp_path / "lse.npy").exists()
    assert not list(tmp_path.glob("*.partial"))
