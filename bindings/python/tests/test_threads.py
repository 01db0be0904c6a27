"""Concurrent calls from Python threads: ctypes releases the GIL, every call has its own
workspace, and relattn_last_error() is per thread, so results and error messages stay apart."""
import threading

import numpy as np

import relattn
from problems import random_problem

THREADS, CALLS = 8, 12


def run_threads(work):
    errors = []

    def guarded(index):
        try:
            work(index)
        except Exception as e:  # reported on the main thread
            errors.append(e)
    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_concurrent_calls_match_sequential():
    rng = np.random.default_rng(7)
    problems = [random_problem(rng, 64, 64, np.float16, d=32, dv=32) for _ in range(THREADS)]
    tables = [rng.uniform(-1, 1, (4, 32)).astype(np.float32) for _ in range(THREADS)]

    def call(i, threads=1):
        return relattn.attention(*problems[i], scheme="t5", table=tables[i], causal=True,
                                 threads=threads)
    expected = [call(i) for i in range(THREADS)]

    def work(i):
        for n in range(CALLS):
            np.testing.assert_array_equal(call(i, threads=1 + n % 3), expected[i])
    run_threads(work)


def test_concurrent_errors_keep_their_own_message():
    q, k, v = random_problem(np.random.default_rng(8), 8, 8, np.float32)

    def work(i):
        for _ in range(CALLS):
            relattn.attention(q, k, v, scheme="alibi", causal=True)  # succeeds in between
            try:
                relattn.attention(q, k, v, scheme="alibi", max_bias=-1.0 - i)
            except relattn.Error as e:
                assert "max_bias = %g" % (-1.0 - i) in str(e), str(e)
            else:
                raise AssertionError("no error for thread %d" % i)
    run_threads(work)
