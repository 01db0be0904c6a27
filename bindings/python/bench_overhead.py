"""Per-call Python overhead of the binding: the median time of tiny calls whose C work is a few
hundred nanoseconds, so what is measured is the binding's.

    RELATTN_LIBRARY=build/release/librelattn.so PYTHONPATH=bindings/python \
        python3 bindings/python/bench_overhead.py [--calls N]

Prints the median (and 10th / 90th percentiles) in microseconds per call, and the load average:
the numbers mean little on a busy machine. Python puts this file's folder first on sys.path, so
the relattn package beside it is the one measured (copy the file elsewhere to measure another).
"""
import argparse
import time

import numpy as np

import relattn


def _median_us(call, calls):
    """(p10, median, p90) of call()'s wall time in microseconds over `calls` calls."""
    for _ in range(min(calls, 1000)):  # warm up: pools, caches, branch predictors
        call()
    times = np.empty(calls, np.int64)
    clock = time.perf_counter_ns
    for i in range(calls):
        start = clock()
        call()
        times[i] = clock() - start
    return tuple(np.percentile(times, [10, 50, 90]) / 1000.0)


def _cases():
    """(name, zero-argument call) of each measured call."""
    rng = np.random.default_rng(0)
    cache = relattn.KVCache(kv_heads=1, head_dim=64, capacity=64, dtype=np.float32)
    cache.append(rng.standard_normal((16, 1, 64), np.float32),
                 rng.standard_normal((16, 1, 64), np.float32))
    q1 = rng.standard_normal((1, 1, 64), np.float32)
    q, k, v = (rng.standard_normal((n, 1, 64), np.float32) for n in (1, 16, 16))
    qb, kb, vb = (rng.standard_normal((1, 1, n, 64), np.float32) for n in (1, 16, 16))
    cases = [("KVCache decode: 1 query, 1 KV head, d 64, 16 tokens", lambda: cache.attention(q1)),
             ("attention: n_q 1, n_kv 16, 1 head, d 64", lambda: relattn.attention(q, k, v))]
    if hasattr(relattn, "sdpa"):
        cases.append(("sdpa: [1][1][1|16][64]", lambda: relattn.sdpa(qb, kb, vb)))
    return cases


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    calls = parser.parse_args().calls
    for name, call in _cases():
        p10, median, p90 = _median_us(call, calls)
        with open("/proc/loadavg") as f:
            load = f.read().split()[0]
        print("%-55s median %6.2f us (p10 %6.2f, p90 %6.2f)  loadavg %s"
              % (name, median, p10, p90, load))


if __name__ == "__main__":
    main()
