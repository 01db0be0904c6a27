"""The workspace each thread keeps between attention calls: reused while large enough, replaced
by a larger one when the library finds it too small, never kept past KEPT_WORKSPACE_BYTES."""
import threading

import numpy as np

import relattn
from problems import random_problem
from relattn import _api


def kept():
    """The calling thread's kept (buffer, address, bytes), or None."""
    return getattr(_api._kept, "workspace", None)


def test_reused_then_grown(monkeypatch):
    monkeypatch.setattr(_api._kept, "workspace", None, raising=False)  # as a new thread's
    rng = np.random.default_rng(1)
    small = random_problem(rng, 2, 8, np.float32)
    large = random_problem(rng, 300, 300, np.float32, heads=8, kv_heads=2, d=64, dv=64)
    relattn.attention(*small)
    first = kept()
    assert first is not None and first[1] % 64 == 0
    relattn.attention(*small)
    assert kept() is first
    want = relattn.attention(*large)
    assert kept()[2] > first[2]  # grown for the larger call
    monkeypatch.setattr(_api._kept, "workspace", first)  # too small: the size is asked again
    np.testing.assert_array_equal(relattn.attention(*large), want)
    np.testing.assert_array_equal(relattn.attention(*small), relattn.attention(*small))


def test_large_workspace_not_kept(monkeypatch):
    rng = np.random.default_rng(2)
    q, k, v = random_problem(rng, 200, 200, np.float32, d=64, dv=64)
    want = relattn.attention(q, k, v)
    monkeypatch.setattr(_api._kept, "workspace", None, raising=False)
    monkeypatch.setattr(_api, "KEPT_WORKSPACE_BYTES", 64)
    np.testing.assert_array_equal(relattn.attention(q, k, v), want)
    assert kept() is None


def test_each_thread_keeps_its_own():
    relattn.attention(*random_problem(np.random.default_rng(3), 2, 4, np.float32))
    seen = []
    worker = threading.Thread(target=lambda: (
        relattn.attention(*random_problem(np.random.default_rng(4), 2, 4, np.float32)),
        seen.append(kept())))
    worker.start()
    worker.join()
    assert seen[0] is not None and seen[0][0] is not kept()[0]
