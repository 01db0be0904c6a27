"""relattn: attention with relative-position biases (ALiBi, T5, Shaw) and RoPE, from numpy.

    import numpy as np, relattn
    o = relattn.attention(q, k, v, scheme="alibi", causal=True)   # q, k, v: [tokens][heads][d]
    o = relattn.attention(q, k, v, causal=True, rope="halves")    # rotary embedding (RoPE)
    o = relattn.attention(q, k, v, scheme="shaw_vector", table=a)  # a: [heads][2k+1][d]
    o = relattn.attention(relattn.quantize_i8(q), relattn.quantize_i8(k), v)   # int8 Q.K
    cache = relattn.KVCache(kv_heads=2, head_dim=64, capacity=4096, ring=True)   # decode
    cache = relattn.KVCache(kv_heads=2, head_dim=64, capacity=4096, k_dtype=np.int8)  # int8 K
    cache = relattn.KVCache(kv_heads=2, head_dim=64, capacity=4096, dtype=np.float16,
                            k_dtype="q4", v_dtype="q4")                  # 4-bit (q4_0) K, V
    o = relattn.attention(q, relattn.Q4(relattn.quantize_q4(k)),
                          relattn.Q4(relattn.quantize_q4(v)))            # q4_0 K, V tensors
    o = relattn.attention(relattn.to_bf16(q), relattn.to_bf16(k), relattn.to_bf16(v),
                          dtype="bfloat16")                              # bfloat16 inputs
    o1, lse1 = relattn.attention(q, k1, v1, return_lse=True)        # a part of the keys ...
    o, lse = relattn.merge(o1, lse1, o2, lse2)                      # ... merged with another
    relattn.active_target()                                         # "AVX3", "NEON", ...
    o = relattn.sdpa(q, k, v, is_causal=True)   # torch SDPA's call: [B][H][N][D], torch tensors

Loads librelattn.so through ctypes: $RELATTN_LIBRARY, else a copy beside this package, else the
system's (ctypes.util.find_library). Calls release the GIL; concurrent calls are safe.
"""
from ._api import (active_target, alibi_slopes, attention, merge, quantize_i8, quantize_q4,
                   quantize_table_i8, t5_bucket, t5_table_from_hf)
from ._arrays import BF16, Q4, from_bf16, to_bf16
from ._kv_cache import KVCache
from ._sdpa import sdpa
from ._capi import Error, lib as _lib

__version__ = _lib.relattn_version_string().decode()
__all__ = ["BF16", "Error", "KVCache", "Q4", "active_target", "alibi_slopes", "attention",
           "from_bf16", "merge", "quantize_i8", "quantize_q4", "quantize_table_i8", "sdpa",
           "t5_bucket", "t5_table_from_hf", "to_bf16"]
