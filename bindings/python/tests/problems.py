"""Random attention problems and the grid of schemes and masks the binding and tool tests run."""
import numpy as np

# Stated bounds against the fp64 oracle for inputs in [-1, 1] (README: error bounds).
TOLERANCE = {np.float32: 5e-6, np.float16: 2.5e-4}

# head_dim of random_problem's q and k, which the shaw_vector tables match
HEAD_DIM = 16

# name -> (scheme, bias keyword arguments, given heads and a numpy Generator)
SCHEMES = {
    "none": lambda heads, rng: ("none", {}),
    "alibi": lambda heads, rng: ("alibi", {}),
    "alibi-max-bias-6": lambda heads, rng: ("alibi", {"max_bias": 6.0}),
    "alibi-slopes": lambda heads, rng: (
        "alibi", {"slopes": rng.uniform(0.01, 1, heads).astype(np.float32)}),
    "t5-f32": lambda heads, rng: (
        "t5", {"table": rng.uniform(-2, 2, (heads, 16)).astype(np.float32), "max_distance": 40}),
    "t5-f16": lambda heads, rng: (
        "t5", {"table": rng.uniform(-2, 2, (heads, 16)).astype(np.float16), "max_distance": 40}),
    "shaw": lambda heads, rng: (
        "shaw", {"table": rng.uniform(-2, 2, (heads, 2 * 6 + 1)).astype(np.float32)}),
    "shaw-vector": lambda heads, rng: (
        "shaw_vector", {"table": rng.uniform(-1, 1, (heads, 2 * 4 + 1, HEAD_DIM))
                        .astype(np.float32)}),
    "shaw-vector-shared": lambda heads, rng: (
        "shaw_vector", {"table": rng.uniform(-1, 1, (2 * 7 + 1, HEAD_DIM)).astype(np.float32)}),
}

# name -> mask keyword arguments, given n_kv
MASKS = {
    "none": lambda n_kv: {},
    "causal": lambda n_kv: {"causal": True},
    "causal-window-5": lambda n_kv: {"causal": True, "window": 5},
    "window-4": lambda n_kv: {"window": 4},
    "valid-kv": lambda n_kv: {"valid_kv": n_kv * 3 // 4},
    "causal-bidirectional": lambda n_kv: {"causal": True, "bidirectional": True},
}

# name -> (n_q, n_kv, q_start): a prefill, and a decode step of 3 queries at the end
SIZES = {"prefill": (19, 23, 0), "decode": (3, 40, 37)}


def random_problem(rng, n_q, n_kv, dtype, heads=4, kv_heads=2, d=HEAD_DIM, dv=12):
    """q, k, v in [-1, 1], [tokens][heads][dim]."""
    def uniform(*shape):
        return rng.uniform(-1, 1, shape).astype(dtype)
    return uniform(n_q, heads, d), uniform(n_kv, kv_heads, d), uniform(n_kv, kv_heads, dv)
