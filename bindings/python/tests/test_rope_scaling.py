"""RoPE scaling families through the binding, with the issue's exact dict names: each against
the numpy oracle (its own numpy form of HF's definitions), in relattn.attention and a KVCache,
at positions 0 and 10^6; and the binding's own checks of the dict."""
import zlib

import numpy as np
import pytest

import numpy_attention as oracle
import relattn
from problems import TOLERANCE, random_problem

FACTORS = np.random.default_rng(5).uniform(1.0, 4.0, size=(2, 8))
FAMILIES = {
    "llama3": {"pairing": "halves", "base": 500000.0, "rotary_dims": 16,
               "scaling": {"type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                           "high_freq_factor": 4.0, "original_max_position": 8192}},
    "yarn": {"pairing": "halves", "base": 1000000.0,
             "scaling": {"type": "yarn", "factor": 4.0, "original_max_position": 32768,
                         "beta_fast": 32.0, "beta_slow": 1.0}},
    "yarn given": {"pairing": "interleaved",
                   "scaling": {"type": "yarn", "factor": 4.0, "original_max_position": 4096,
                               "attention_factor": 1.3, "truncate": False}},
    "linear": {"pairing": "halves", "scaling": {"type": "linear", "factor": 4.0}},
    "ntk": {"pairing": "halves", "scaling": {"type": "ntk", "factor": 4.0}},
    "longrope": {"pairing": "halves",
                 "scaling": {"type": "longrope", "short_factor": list(FACTORS[0]),
                             "long_factor": FACTORS[1] * 2, "original_max_position": 4096,
                             "max_position": 131072, "sequence_length": 10000}},
    "inv_freq": {"pairing": "halves", "inv_freq": np.linspace(1.0, 1e-3, 8),
                 "attention_factor": 1.1},
}


@pytest.mark.parametrize("start", [0, 10**6])
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_against_oracle(name, start):
    rope = FAMILIES[name]
    rng = np.random.default_rng(zlib.crc32(("%s/%d" % (name, start)).encode()))
    q, k, v = random_problem(rng, 20, 24, np.float32)
    got = relattn.attention(q, k, v, causal=True, q_start=start + 4, k_start=start, rope=rope)
    expected = oracle.attention(q, k, v, causal=True, q_start=start + 4, k_start=start,
                                rope=rope)
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE[np.float32])
    plain = relattn.attention(q, k, v, causal=True, q_start=start + 4, k_start=start,
                              rope={"pairing": rope["pairing"]})
    assert np.abs(got - plain).max() > 1e-4  # the scaling acts


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_in_kv_cache(name):
    rope = FAMILIES[name]
    rng = np.random.default_rng(zlib.crc32(("cache/" + name).encode()))
    q, k, v = random_problem(rng, 24, 24, np.float32)
    cache = relattn.KVCache(kv_heads=k.shape[1], head_dim=k.shape[2], v_head_dim=v.shape[2],
                            capacity=32,
                            dtype=np.float32, rope=rope)
    assert cache.rope["pairing"] == rope["pairing"]
    cache.append(k, v, positions=1000)
    got = cache.attention(q[-1:], causal=True, q_start=1023)  # the cache's rope
    expected = oracle.attention(q[-1:], k, v, causal=True, q_start=1023, k_start=1000,
                                rope=rope)
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE[np.float32])
    with pytest.raises(relattn.Error, match="rope: must equal the kv_cache's rope"):
        cache.attention(q[-1:], causal=True, q_start=1023, rope={"pairing": rope["pairing"]})


def test_scaling_dict_errors():
    q, k, v = random_problem(np.random.default_rng(1), 4, 4, np.float32)
    with pytest.raises(ValueError, match="rope.scaling.type 'dynamic' is not one of"):
        relattn.attention(q, k, v, rope={"pairing": "halves", "scaling": {"type": "dynamic"}})
    with pytest.raises(ValueError, match="key 'beta_fast' is not used by type 'llama3'"):
        relattn.attention(q, k, v, rope={"pairing": "halves", "scaling": {
            "type": "llama3", "beta_fast": 32.0}})
    with pytest.raises(relattn.Error, match="rope.scaling.factor = 0: must be finite and > 0") \
            as info:
        relattn.attention(q, k, v, rope={"pairing": "halves", "scaling": {"type": "linear"}})
    assert info.value.status == 21  # RELATTN_ERR_BAD_ROPE
    with pytest.raises(ValueError, match="either 'inv_freq' or 'scaling'"):
        relattn.attention(q, k, v, rope={"pairing": "halves", "inv_freq": [1.0] * 8,
                                         "scaling": {"type": "linear", "factor": 2.0}})
