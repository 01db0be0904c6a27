"""attention(), alibi_slopes(), t5_bucket(), quantize_table_i8(), quantize_i8(),
quantize_q4() and active_target() over the C API."""
import atexit
import ctypes
import threading

import numpy as np

from . import _arrays as arrays
from . import _capi
from ._capi import check, lib
from ._kv_cache import KVCache


def _shaw_width(shaw_k):
    """2k+1 for a given shaw_k, None when not given."""
    if shaw_k is None:
        return None
    return 2 * arrays.to_int("shaw_k", shaw_k, 0, arrays.INT32_MAX // 2) + 1


def _shaw_vector_table(table, heads, head_dim, shaw_k):
    """The shaw_vector table as C-order float32 and whether it has one table per head:
    [heads][2k+1][head_dim] (per head) or [2k+1][head_dim] (shared by every head)."""
    layouts = "[heads][2k+1][head_dim] (one per head) or [2k+1][head_dim] (shared)"
    if table is None:
        raise ValueError("table: required by scheme 'shaw_vector' (%s)" % layouts)
    if isinstance(table, np.ndarray) and table.ndim not in (2, 3):
        raise ValueError("table: expected %s, got shape %s" % (layouts, table.shape))
    per_head = not isinstance(table, np.ndarray) or table.ndim == 3
    shape = ((heads,) if per_head else ()) + (_shaw_width(shaw_k), head_dim)
    t = arrays.table("table", table, shape, [np.dtype(np.float32)])
    if t.shape[-2] % 2 == 0:
        raise ValueError("table: %d offset rows (axis %d) is not 2k+1" % (t.shape[-2], t.ndim - 2))
    return t, per_head


T5_LAYOUTS = ("heads_buckets", "buckets_heads")


def t5_table_from_hf(weight):
    """relattn's T5 table [heads][num_buckets] (float32, float16 or int8 as given) from Hugging
    Face's relative_attention_bias.weight, which is [num_buckets][heads] (nn.Embedding over the
    buckets): the transpose, C-contiguous. Same as attention(..., table=weight,
    table_layout="buckets_heads")."""
    w = arrays.checked_array("weight", weight, 2, list(arrays.TABLE_DTYPES),
                             "[num_buckets][heads] (Hugging Face's layout)")
    return np.ascontiguousarray(w.T)


def _t5_table(table, table_layout, heads, num_buckets):
    """The T5 table as [heads][num_buckets], from either layout."""
    if table_layout not in T5_LAYOUTS:
        raise ValueError("table_layout: %r is not one of %s" % (table_layout, ", ".join(T5_LAYOUTS)))
    if table is None:
        raise ValueError("table: required by scheme 't5' (%s)" % (
            "[heads][num_buckets], table_layout='heads_buckets'" if table_layout == T5_LAYOUTS[0]
            else "[num_buckets][heads], table_layout='buckets_heads' (Hugging Face's)"))
    if table_layout == "buckets_heads":
        w = arrays.checked_array("table", table, 2, list(arrays.TABLE_DTYPES),
                                 "[num_buckets][heads] (table_layout='buckets_heads')")
        if w.shape[1] != heads:
            raise ValueError("table: expected [num_buckets][heads] with %d heads "
                             "(table_layout='buckets_heads'), got shape %s" % (heads, w.shape))
        table = w.T
    try:
        return arrays.table("table", table, (heads, num_buckets), list(arrays.TABLE_DTYPES))
    except ValueError as e:
        raise ValueError("%s: [heads][num_buckets] expected (table_layout='heads_buckets'; "
                         "Hugging Face's relative_attention_bias.weight is [num_buckets][heads]: "
                         "pass table_layout='buckets_heads')" % e) from None


def _set_bias(desc, keep, scheme, heads, head_dim, bidirectional, max_bias, slopes, table,
              table_scales, num_buckets, max_distance, shaw_k, table_layout):
    """Fills desc.bias (zero, scheme "none", as created) from attention's bias arguments."""
    if (scheme == "none" and slopes is None and table is None and table_scales is None
            and num_buckets is None and shaw_k is None and table_layout == "heads_buckets"):
        return  # nothing to check or set
    if scheme not in _capi.BIAS_KINDS:
        raise ValueError("scheme: %r is not one of %s" % (scheme, ", ".join(_capi.BIAS_KINDS)))
    used = {"none": (), "alibi": ("slopes",), "t5": ("table", "table_scales", "num_buckets"),
            "shaw": ("table", "shaw_k"), "shaw_vector": ("table", "shaw_k")}[scheme]
    given = {"slopes": slopes, "table": table, "table_scales": table_scales,
             "num_buckets": num_buckets, "shaw_k": shaw_k}
    for name, value in given.items():
        if value is not None and name not in used:
            raise ValueError("%s: not used by scheme %r" % (name, scheme))
    if table_layout != "heads_buckets" and scheme != "t5":
        raise ValueError("table_layout: not used by scheme %r (T5 tables only)" % scheme)
    f32 = [np.dtype(np.float32)]
    bias = desc.bias
    bias.kind = _capi.BIAS_KINDS[scheme]
    if scheme == "alibi":
        bias.alibi.max_bias = max_bias
        bias.alibi.causal = int(not bidirectional)
        if slopes is not None:
            keep.append(arrays.table("slopes", slopes, (heads,), f32))
            bias.alibi.slopes = keep[-1].ctypes.data
    elif scheme == "t5":
        t = _t5_table(table, table_layout, heads, num_buckets)
        keep.append(t)
        bias.t5.table, bias.t5.table_dtype = t.ctypes.data, arrays.TABLE_DTYPES[t.dtype]
        bias.t5.num_buckets = t.shape[1]
        bias.t5.max_distance = arrays.to_int("max_distance", max_distance, 0, arrays.INT32_MAX)
        bias.t5.bidirectional = int(bidirectional)
        if (table_scales is None) != (t.dtype != np.int8):
            raise ValueError("table_scales: required with an int8 table, and only then")
        if table_scales is not None:
            keep.append(arrays.table("table_scales", table_scales, (heads,), f32))
            bias.t5.table_scales = keep[-1].ctypes.data
    elif scheme == "shaw":
        if table is None:
            raise ValueError("table: required by scheme 'shaw' ([heads][2k+1])")
        t = arrays.table("table", table, (heads, _shaw_width(shaw_k)), f32)
        if t.shape[1] % 2 == 0:
            raise ValueError("table: width %d is not 2k+1" % t.shape[1])
        keep.append(t)
        bias.shaw.table, bias.shaw.k = t.ctypes.data, (t.shape[1] - 1) // 2
    elif scheme == "shaw_vector":
        t, per_head = _shaw_vector_table(table, heads, head_dim, shaw_k)
        keep.append(t)
        sv = bias.shaw_vector
        sv.table, sv.k, sv.per_head = t.ctypes.data, (t.shape[-2] - 1) // 2, int(per_head)


_pools = {}
_pools_lock = threading.Lock()


@atexit.register
def _destroy_pools():
    with _pools_lock:
        for pool in _pools.values():
            lib.pthreadpool_destroy(pool)
        _pools.clear()


def _threads(n):
    """relattn_threads over a pthreadpool of n threads (0: one per core), kept for reuse;
    None for the calling thread alone. pthreadpool runs one parallel call at a time per pool."""
    if arrays.to_int("threads", n, 0, 1024) == 1:
        return None
    with _pools_lock:
        if n not in _pools:
            pool = lib.pthreadpool_create(n)
            if not pool:
                raise MemoryError("threads: pthreadpool_create(%d) failed" % n)
            _pools[n] = pool
        pool = _pools[n]
    threads = _capi.Threads()
    check(lib.relattn_threads_from_pthreadpool(pool, ctypes.byref(threads)))
    return threads


PRECISIONS = {"exact": 0, "fast": 1}  # relattn_precision


def bf16_inputs(dtype):
    """Whether a dtype argument (None or "bfloat16") says uint16 arrays hold bfloat16 bits."""
    if dtype not in (None, arrays.BF16):
        raise ValueError("dtype: %r: must be None (the arrays' own) or \"bfloat16\" (uint16 "
                         "arrays of bfloat16 bits, relattn.to_bf16)" % (dtype,))
    return dtype == arrays.BF16


def _set_keys(desc, keep, q, k, v, k_start, k_positions, cast, bf16=False):
    """Points desc at explicit k, v (float, bf16 bits, the int8 pair or Q4 blocks); returns
    (kv_heads, v_head_dim)."""
    k, desc.k = arrays.tensor("k", k, keep, cast, bf16, q4=True)
    v, desc.v = arrays.tensor("v", v, keep, cast, bf16, q4=True)
    keep += [k, v]
    k_shape, v_shape = arrays.tensor_shape(k, desc.k), arrays.tensor_shape(v, desc.v)
    if k_shape[2] != q.shape[2]:
        raise ValueError("k: head_dim %d%s differs from q's %d" % (
            k_shape[2], " (Q4 rows of %d bytes)" % k.shape[2] if desc.k.dtype == _capi.Q4
            else "", q.shape[2]))
    if k_shape[:2] != v_shape[:2]:
        raise ValueError("v: shape %s: tokens and heads must match k's %s" % (v_shape, k_shape))
    desc.n_kv, desc.n_kv_heads, desc.head_dim, desc.v_head_dim = k_shape + v_shape[2:]
    p, desc.k_pos = arrays.positions("k_positions", k_positions, "k_start", k_start, k.shape[0])
    keep.append(p)
    return k_shape[1], v_shape[2]


# A workspace up to this size is kept for the thread that allocated it and reused by its later
# calls (one call in flight per thread); a larger one serves its call alone.
KEPT_WORKSPACE_BYTES = 4 << 20
_kept = threading.local()  # .workspace: the calling thread's (buffer, aligned address, bytes)


def _new_workspace(desc, pool):
    """(buffer, aligned address, bytes) of workspace for desc over pool (None: one thread),
    kept for the calling thread when small enough."""
    n_bytes = ctypes.c_size_t()
    check(lib.relattn_attention_workspace_size(ctypes.byref(desc), pool.n_threads if pool else 1,
                                               ctypes.byref(n_bytes)))
    buffer = np.empty(n_bytes.value + _capi.WORKSPACE_ALIGNMENT, np.uint8)
    address = buffer.ctypes.data + -buffer.ctypes.data % _capi.WORKSPACE_ALIGNMENT
    workspace = (buffer, address, n_bytes.value)
    if n_bytes.value <= KEPT_WORKSPACE_BYTES:
        _kept.workspace = workspace
    return workspace


def _compute(desc, threads):
    """relattn_attention over desc in the calling thread's kept workspace; when the library
    finds it too small (or there is none yet), in a new one of the size it asks for."""
    pool = _threads(threads)
    pool_ref = ctypes.byref(pool) if pool else None
    workspace = getattr(_kept, "workspace", None)
    status = _capi.WORKSPACE_TOO_SMALL
    if workspace is not None:
        status = lib.relattn_attention(ctypes.byref(desc), workspace[1], workspace[2], pool_ref)
    if status == _capi.WORKSPACE_TOO_SMALL:
        workspace = _new_workspace(desc, pool)
        status = lib.relattn_attention(ctypes.byref(desc), workspace[1], workspace[2], pool_ref)
    check(status)


def _segments(name, ids, n):
    ids = arrays.as_values(name, ids)
    if ids.shape != (n,) or ids.dtype.kind not in "iu":
        raise ValueError("%s: expected integer ids of shape (%d,), got %s %s"
                         % (name, n, ids.dtype, ids.shape))
    if ids.size and (ids.min() < -2**31 or ids.max() >= 2**31):
        raise ValueError("%s: ids must fit in int32" % name)
    return np.ascontiguousarray(ids, np.int32)


def _allowed_bits(allowed, n_q, n_keys):
    """(uint64 [n_q][words] C-order, words) from a bool [n_q][n_keys] or packed uint64 array."""
    a = arrays.as_values("allowed", allowed)
    if a.dtype == np.uint64 and a.ndim == 2 and a.shape[0] == n_q:
        if a.shape[1] * 64 < n_keys:
            raise ValueError("allowed: %d words per row cover %d keys, %d needed"
                             % (a.shape[1], a.shape[1] * 64, n_keys))
        return np.ascontiguousarray(a), a.shape[1]
    if a.dtype != np.bool_ or a.shape != (n_q, n_keys):
        raise ValueError("allowed: expected bool [%d][%d] (n_q, n_kv - allowed_key_offset) or "
                         "packed uint64 [%d][words], got %s %s" % (n_q, n_keys, n_q, a.dtype,
                                                                   a.shape))
    words = max(1, (n_keys + 63) // 64)
    packed = np.zeros((n_q, words * 8), np.uint8)
    packed[:, :(n_keys + 7) // 8] = np.packbits(a, axis=1, bitorder="little")
    return packed.view("<u8").astype(np.uint64), words


def _set_index_masks(mask, keep, n_q, n_kv, q_segments, k_segments, allowed, key_offset):
    """Fills the segment and allowed-pair parts of mask (zero, none, as created)."""
    if (q_segments is None and k_segments is None and allowed is None
            and isinstance(key_offset, int) and key_offset == 0):
        return  # nothing to check or set
    if (q_segments is None) != (k_segments is None):
        raise ValueError("q_segments, k_segments: give both or neither")
    if q_segments is not None:
        keep.extend((_segments("q_segments", q_segments, n_q),
                     _segments("k_segments", k_segments, n_kv)))
        mask.q_segments, mask.k_segments = keep[-2].ctypes.data, keep[-1].ctypes.data
    key_offset = arrays.to_int("allowed_key_offset", key_offset, 0, n_kv)
    if allowed is not None:
        bits, words = _allowed_bits(allowed, n_q, n_kv - key_offset)
        keep.append(bits)
        mask.allowed, mask.allowed_row_words = bits.ctypes.data, words
        mask.allowed_key_offset = key_offset


LAYOUTS = ("tokens_heads_dim", "heads_tokens_dim")


def _tokens_major(name, x):
    """A [heads][tokens][dim] array (or int8 pair, scales [heads][tokens]; or an object
    arrays.as_array reads) as the [tokens][heads][dim] view of the same memory; anything else
    as it is (checked later)."""
    if isinstance(x, arrays.Q4):
        blocks = arrays.as_array(name, x.blocks) if arrays.array_like(x.blocks) else x.blocks
        if isinstance(blocks, np.ndarray) and blocks.ndim == 3:
            return arrays.Q4(blocks.transpose(1, 0, 2))
        return x
    if isinstance(x, tuple) and len(x) == 2:
        data, scales = (arrays.as_array("%s[%d]" % (name, i), a) if arrays.array_like(a) else a
                        for i, a in enumerate(x))
        if isinstance(data, np.ndarray) and isinstance(scales, np.ndarray):
            return (data.transpose(1, 0, 2) if data.ndim == 3 else data,
                    scales.T if scales.ndim == 2 else scales)
        return x
    if arrays.array_like(x):
        x = arrays.as_array(name, x)
        return x.transpose(1, 0, 2) if x.ndim == 3 else x
    return x


def _output(out, out_dtype, shape):
    """(array, relattn_output) the call writes its result to: a new C-order array of shape and
    out_dtype (None: float32; "bfloat16": uint16 bits), or out, a writeable float32 / float16
    array of shape whose rows are contiguous (token and head strides the library checks for
    overlap), of out_dtype when that is given."""
    if out is None and out_dtype == arrays.BF16:
        out = np.empty(shape, np.uint16)
        return out, _capi.Output(out.ctypes.data, _capi.BF16, shape[1] * shape[2], shape[2])
    if out is None:
        dtype = np.dtype(np.float32 if out_dtype is None else out_dtype)
        if dtype not in arrays.TENSOR_DTYPES:
            raise TypeError("out_dtype: %s is not supported: use float32, float16 or "
                            "\"bfloat16\"" % dtype)
        out = np.empty(shape, dtype)
        return out, _capi.Output(out.ctypes.data, arrays.TENSOR_DTYPES[dtype],
                                 shape[1] * shape[2], shape[2])
    out = arrays.checked_array("out", out, 3, arrays.TENSOR_DTYPES, "[n_q][heads][v_head_dim]")
    if out.shape != shape:
        raise ValueError("out: expected shape %s, got %s" % (shape, out.shape))
    if out_dtype is not None and np.dtype(out_dtype) != out.dtype:
        raise TypeError("out_dtype: %s differs from out's %s" % (np.dtype(out_dtype), out.dtype))
    if not out.flags.writeable:
        raise ValueError("out: is read-only")
    if not arrays.rows_readable(out):
        raise ValueError("out: strides %s: rows must be contiguous, with non-negative token and "
                         "head strides that keep them apart" % (out.strides,))
    t_stride, h_stride = arrays.element_strides(out)
    return out, _capi.Output(out.ctypes.data, arrays.TENSOR_DTYPES[out.dtype], t_stride, h_stride)


def attention(q, k, v, *, scheme="none", causal=False, window=0, valid_kv=None,
              first_valid_kv=0, bidirectional=None, max_bias=8.0, slopes=None, table=None,
              table_scales=None, table_layout="heads_buckets", num_buckets=None,
              max_distance=128, shaw_k=None, q_start=0,
              k_start=0, q_positions=None, k_positions=None, scale=None, rope=None,
              softcap=None, sinks=None, q_segments=None, k_segments=None, allowed=None,
              allowed_key_offset=0, return_lse=False, out_dtype=None, out=None, threads=1,
              layout="tokens_heads_dim", cast=False, dtype=None, precision="exact"):
    """Attention with a relative-position bias over one sequence; returns a new array, or
    (o, lse) with return_lse=True.

    q: [n_q][heads][head_dim], k: [n_kv][kv_heads][head_dim], v: [n_kv][kv_heads][v_head_dim],
    float32 or float16 (any strides with contiguous rows are read without a copy); heads a
    multiple of kv_heads. k may instead be a KVCache, with v None (KVCache.attention).
    Returns [n_q][heads][v_head_dim] of out_dtype (None: float32; or float16), or writes it to
    out, a writeable float32 / float16 array of that shape whose rows are contiguous (its
    dtype is the output's), and returns out.

    Every array argument may also be an object exposing __array_interface__ or __dlpack__
    (a torch CPU tensor, ...): numpy reads its memory in place (np.asarray, np.from_dlpack).
    float64 q, k, v raise TypeError; cast=True converts them (and other float dtypes numpy
    has) to float32, a copy.

    bfloat16, which numpy lacks: dtype="bfloat16" reads every uint16 array among q, k, v as
    bfloat16 bits (relattn.to_bf16 rounds floats to them, relattn.from_bf16 reads them back);
    out_dtype="bfloat16" returns uint16 bits. The library computes on bf16 inputs in f32 (on
    AVX-512 BF16 CPUs prefill multiplies Q.K with vdpbf16ps: the same products).

    int8: q, k and v may each be given as a pair (int8 array [tokens][heads][head_dim],
    float32 row scales [tokens][heads]), as quantize_i8 returns, standing for scales[t, h] *
    int8[t, h, :]: attention(quantize_i8(q), quantize_i8(k), quantize_i8(v)), or k or v
    alone. An int8 q needs an int8 k (or a KVCache storing K as int8). The library
    multiplies the int8 values of q and k exactly and applies the two row scales to each dot
    product, and scales each int8 value row by its scale, so the result is that of the
    dequantised rows up to float32 rounding.

    4-bit: k and v may each be given as relattn.Q4(blocks), blocks a uint8 array
    [tokens][heads][head_dim / 32 * 18] of ggml's q4_0 blocks (quantize_q4 makes them; head
    dims a multiple of 32): attention(q, Q4(quantize_q4(k)), Q4(quantize_q4(v))), or k or v
    alone. The library converts each block to float32, so the result is that of the
    dequantised values ((nibble - 8) * d) up to float32 rounding. q cannot be Q4, and an int8
    q needs an int8 k.

    scheme: "none"; "alibi" (slopes from max_bias, 8 = the ALiBi paper's, or `slopes`
    float32 [heads]); "t5" (`table` [heads][num_buckets] float32, float16 or int8 with
    `table_scales` float32 [heads]; `max_distance`; Hugging Face's
    relative_attention_bias.weight is [num_buckets][heads]: pass it with
    table_layout="buckets_heads", or t5_table_from_hf(weight)); "shaw" (`table` float32 [heads][2k+1],
    indexed by clip(key - query, -k, k) + k); "shaw_vector" (Shaw et al.'s vector form:
    score = scale * q . (k + a[clip(key - query, -k, k) + k]), q after rope; `table` float32
    [heads][2k+1][head_dim], one per head, or [2k+1][head_dim] shared by every head; k in
    0..64 is read from the shape). shaw_k, for shaw and shaw_vector, is checked against the
    table's 2k+1 when given. bidirectional: the bias form; by default bidirectional unless
    causal. Mask: causal, window (0: none), valid_kv (None: all keys; else 1..n_kv, the keys
    from it on are hidden), first_valid_kv (0..n_kv: the keys before it are hidden, left
    padding; n_kv hides every key). Positions: q_start / k_start, or integer arrays
    q_positions / k_positions. scale: None is 1/sqrt(head_dim); any other value must be
    non-zero. threads: 1 = the calling thread, n > 1 a pthreadpool.

    Packed sequences: q_segments [n_q] and k_segments [n_kv] integer ids (int32 range); query
    i sees key j only where the ids are equal (positions restart per sequence through
    q_positions / k_positions). Tree masks: allowed, bool [n_q][n_kv - allowed_key_offset]
    (or already packed: uint64 [n_q][words], bit b % 64 of word b // 64 for key
    allowed_key_offset + b): query i sees key j >= allowed_key_offset only where it is set;
    keys before the offset are not restricted. Both combine with every other mask.

    return_lse: also return lse float32 [n_q][heads], ln of each row's softmax denominator
    (ln sum_j e^(score_j), sinks included; -inf for a row that saw no key), for merge().

    rope: rotary position embedding of q and k, fused (combines with any scheme and mask):
    None or "none" (off); "interleaved" (pairs (2i, 2i+1): GPT-J) or "halves" (pairs
    (i, i + rotary_dims/2): GPT-NeoX, Llama); or a dict {"pairing": "interleaved" | "halves",
    "rotary_dims": int, "base": float, "linear_scale": float} whose absent keys take the
    defaults (rotary_dims = head_dim, even; base 10000; linear_scale 1). Pair i of a row at
    position p turns by p * base^(-2i/rotary_dims) / linear_scale; dimensions from rotary_dims
    on are not rotated. Positions must lie within +-2^53. Over a KVCache, rope=None means the
    cache's rope (its keys were rotated when appended); a rope given must equal it.
    "scaling" (HF's rope_type families, relattn.h): {"type": "linear" | "ntk", "factor": f};
    {"type": "llama3", "factor", "low_freq_factor", "high_freq_factor",
    "original_max_position"}; {"type": "yarn", "factor", "original_max_position",
    "beta_fast" (32), "beta_slow" (1), "attention_factor" (0.1 ln(factor) + 1), "truncate"
    (True)}; {"type": "longrope", "short_factor": [...], "long_factor": [...],
    "original_max_position", "max_position", "sequence_length" (> original: the long
    factors)}; or "inv_freq": float64 [rotary_dims/2] with an optional "attention_factor"
    beside "pairing". The attention factor multiplies cos and sin (q . k by its square).
    E.g. Llama 3.1: rope={"pairing": "halves", "base": 500000.0, "scaling": {"type":
    "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
    "original_max_position": 8192}}.

    softcap: logit soft-capping (Gemma 2: 50.0): the content score x = scale * q . k becomes
    softcap * tanh(x / softcap) before the bias and the mask are added; None or 0: off.
    precision: "exact" (f32 arithmetic on the inputs' values) or "fast" (reduced-precision
    products where the CPU has them: with bfloat16 q, k, v in prefill on AVX512-BF16, the
    probabilities rounded to bfloat16 for P.V, within 4e-3 of the exact result; elsewhere as
    "exact").
    sinks: learned attention sinks (gpt-oss), float32 [heads]: head h's softmax gets one more
    logit sinks[h] that no value follows (the weights of the keys then sum to less than 1).

    layout: "tokens_heads_dim" (the default: q, k, v and the output [tokens][heads][dim], lse
    [n_q][heads]) or "heads_tokens_dim" (all [heads][tokens][dim], lse [heads][n_q]; int8
    pairs' scales [heads][tokens]), read in place and returned as views, no copies. torch
    SDPA's [B][H][N][D] is one heads_tokens_dim call per batch element b: q[b], k[b], v[b].
    Shapes in error messages are those of the tokens-major view.

    Raises TypeError / ValueError naming the argument, relattn.Error for what the library
    rejects. The GIL is released during the computation.
    """
    if layout not in LAYOUTS:
        raise ValueError("layout: %r is not one of %s" % (layout, ", ".join(LAYOUTS)))
    if isinstance(q, arrays.Q4):
        raise TypeError("q: relattn.Q4 blocks are for k and v only (q: float32, float16, "
                        "bfloat16 bits or the int8 pair of quantize_i8)")
    if layout == "heads_tokens_dim":
        q, v = _tokens_major("q", q), _tokens_major("v", v)
        k = k if isinstance(k, KVCache) else _tokens_major("k", k)
        out = None if out is None else _tokens_major("out", out)
    keep = []  # arrays the descriptor points into
    bf16 = bf16_inputs(dtype)
    q, q_t = arrays.tensor("q", q, keep, cast, bf16)
    keep.append(q)
    desc = _capi.AttentionDesc()  # ctypes zero-fills it, as relattn_attention_desc_init does
    cache = k if isinstance(k, KVCache) else None
    if cache is None:
        kv_heads, v_dim = _set_keys(desc, keep, q, k, v, k_start, k_positions, cast, bf16)
    else:
        if v is not None or k_start or k_positions is not None:
            raise ValueError("v, k_start, k_positions: not used with a KVCache (it holds them)")
        kv_heads, v_dim = cache.check_queries(q)
    (n_q, heads, _) = q.shape
    if heads % kv_heads:
        raise ValueError("k: %d heads do not divide q's %d heads" % (kv_heads, heads))
    out, desc.o = _output(out, out_dtype, (n_q, heads, v_dim))
    desc.n_q, desc.n_heads, desc.q = n_q, heads, q_t
    if q_positions is None:
        desc.q_pos.start = arrays.to_int("q_start", q_start)
    else:
        p, desc.q_pos = arrays.positions("q_positions", q_positions, "q_start", q_start, n_q)
        keep.append(p)
    if scale is not None:
        if arrays.to_float("scale", scale) == 0.0:
            raise ValueError("scale = 0: None means 1/sqrt(head_dim); give a non-zero scale")
        desc.scale = scale
    lse = np.empty((n_q, heads), np.float32) if return_lse else None
    if lse is not None:
        desc.lse = lse.ctypes.data
    if softcap is not None:
        desc.softcap = arrays.to_float("softcap", softcap)
    if precision not in PRECISIONS:
        raise ValueError("precision: %r: must be \"exact\" or \"fast\"" % (precision,))
    desc.precision = PRECISIONS[precision]
    if sinks is not None:
        keep.append(arrays.table("sinks", sinks, (heads,), [np.dtype(np.float32)]))
        desc.sinks = keep[-1].ctypes.data
    mask = desc.mask
    mask.causal, mask.window = int(bool(causal)), arrays.to_int("window", window, 0)
    if valid_kv is not None:
        mask.n_valid_kv = arrays.to_int("valid_kv", valid_kv, 1)
    mask.first_valid_kv = arrays.to_int("first_valid_kv", first_valid_kv, 0)
    n_kv = len(cache) if cache is not None else desc.n_kv
    _set_index_masks(mask, keep, n_q, n_kv, q_segments, k_segments, allowed, allowed_key_offset)
    if bidirectional is None:
        bidirectional = not causal
    _set_bias(desc, keep, scheme, heads, q.shape[2], bidirectional, max_bias, slopes, table,
              table_scales, num_buckets, max_distance, shaw_k, table_layout)
    rope_tables = []  # the scaling tables desc.rope points to, alive for the call
    if cache is not None and rope is None:
        desc.rope = cache.rope_desc
    elif rope is not None:
        desc.rope = arrays.rope(rope, rope_tables)
    if cache is None:
        _compute(desc, threads)
    else:
        with cache.lock:  # no append while the call reads the cache
            desc.kv_cache = cache.handle
            _compute(desc, threads)
    if layout == "heads_tokens_dim":
        out, lse = out.transpose(1, 0, 2), lse.T if lse is not None else None
    return (out, lse) if return_lse else out


def merge(o1, lse1, o2, lse2, *, sinks=None, out_dtype=np.float32):
    """Combines two attentions of the same queries over disjoint key sets, each with its lse
    (attention(..., return_lse=True)), into attention over both: returns (o, lse), o
    [n_q][heads][v_head_dim] of out_dtype, lse float32 [n_q][heads]. sinks (float32 [heads]):
    learned sinks, counted once here (compute the parts without them). Merge more parts by
    merging the result again (sinks at one of the merges)."""
    keep = []
    o1, a = arrays.tensor("o1", o1, keep)
    o2, b = arrays.tensor("o2", o2, keep)
    if o1.shape != o2.shape:
        raise ValueError("o2: shape %s differs from o1's %s" % (o2.shape, o1.shape))
    n_q, heads, dim = o1.shape
    lses = [arrays.table(name, x, (n_q, heads), [np.dtype(np.float32)])
            for name, x in (("lse1", lse1), ("lse2", lse2))]
    out_dtype = np.dtype(out_dtype)
    if out_dtype not in arrays.TENSOR_DTYPES:
        raise TypeError("out_dtype: %s is not supported: use float32 or float16" % out_dtype)
    out, lse = np.empty((n_q, heads, dim), out_dtype), np.empty((n_q, heads), np.float32)
    desc = _capi.MergeDesc()
    desc.n_q, desc.n_heads, desc.v_head_dim, desc.a, desc.b = n_q, heads, dim, a, b
    desc.lse_a, desc.lse_b = lses[0].ctypes.data, lses[1].ctypes.data
    if sinks is not None:
        keep.append(arrays.table("sinks", sinks, (heads,), [np.dtype(np.float32)]))
        desc.sinks = keep[-1].ctypes.data
    desc.o = _capi.Output(out.ctypes.data, arrays.TENSOR_DTYPES[out_dtype], heads * dim, dim)
    desc.lse = lse.ctypes.data
    check(lib.relattn_merge(ctypes.byref(desc)))
    return out, lse


def alibi_slopes(n_heads, max_bias=8.0):
    """The library's ALiBi slopes of n_heads heads (float32 [n_heads]); max_bias 8 gives the
    ALiBi paper's, other values the max_bias form of BLOOM / ggml."""
    n_heads = arrays.to_int("n_heads", n_heads, 1, _capi.MAX_HEADS)
    slopes = np.empty(n_heads, np.float32)
    check(lib.relattn_alibi_slopes(n_heads, max_bias, slopes.ctypes.data))
    return slopes


def t5_bucket(relative_position, num_buckets=32, max_distance=128, bidirectional=True):
    """T5's bucket of relative_position = key position - query position (any int64); an int
    for an int, an int32 array of the same shape for an array."""
    r = arrays.as_values("relative_position", relative_position)
    if r.dtype.kind not in "iu":
        raise TypeError("relative_position: expected integers, got %s" % r.dtype)
    params = (arrays.to_int("num_buckets", num_buckets, 0, arrays.INT32_MAX),
              arrays.to_int("max_distance", max_distance, 0, arrays.INT32_MAX),
              int(bool(bidirectional)))
    bucket = ctypes.c_int32()
    out = np.empty(r.shape, np.int32)
    for index, value in np.ndenumerate(r):
        check(lib.relattn_t5_bucket(arrays.to_int("relative_position", value), *params,
                                    ctypes.byref(bucket)))
        out[index] = bucket.value
    return int(out) if r.ndim == 0 else out


def quantize_table_i8(table):
    """Symmetric int8 quantisation of a float32 [heads][num_buckets] T5 table, one scale per
    head: returns (int8 table, float32 scales) for attention(..., table=, table_scales=)."""
    t = arrays.table("table", table, (None, None), [np.dtype(np.float32)])
    table_i8 = np.empty(t.shape, np.int8)
    scales = np.empty(t.shape[0], np.float32)
    check(lib.relattn_quantize_table_i8(t.ctypes.data, t.shape[0], t.shape[1],
                                        table_i8.ctypes.data, scales.ctypes.data))
    return table_i8, scales


def quantize_i8(x):
    """Symmetric int8 quantisation of the rows of x, a float32 or float16 [tokens][heads][dim]
    array, one scale per (token, head) row: scale = max|row| / 127 (0 for an all-zero row),
    int8 = round-half-away-from-zero(x / scale), in [-127, 127] (the library's
    relattn_quantize_i8). Returns (int8 [tokens][heads][dim], float32 scales [tokens][heads]):
    the pair attention takes for q and k. A NaN or infinity raises relattn.Error with status 17
    (non-finite value to quantise), naming the element."""
    x, t = arrays.tensor("x", x)
    n, heads, dim = x.shape
    out = np.empty(x.shape, np.int8)
    scales = np.empty((n, heads), np.float32)
    quantized = _capi.Tensor()
    check(lib.relattn_quantize_i8(ctypes.byref(t), n,
                                  arrays.to_int("x: heads", heads, 0, arrays.INT32_MAX),
                                  arrays.to_int("x: dim", dim, 0, arrays.INT32_MAX),
                                  out.ctypes.data, scales.ctypes.data, ctypes.byref(quantized)))
    return out, scales


def quantize_q4(x):
    """ggml's q4_0 quantisation of the rows of x, a float32 or float16 [tokens][heads][dim]
    array with dim a multiple of 32, exactly as a KVCache with k_dtype / v_dtype "q4" stores
    them (ggml's quantize_row_q4_0_ref): per block of 32 values, m = the value of largest |x|
    (the first such, its sign kept; +0 for an all-zero block), d = m / -8 and inv = 1 / d (0
    when d is 0) in float32, nibble = min(15, int(x * inv + 8.5)), d stored as float16.
    Returns uint8 [tokens][heads][dim / 32 * 18]: per block the float16 d (2 bytes, in the
    machine's byte order, as the library writes it), then 16 bytes, byte i holding value i in
    its low nibble and value i + 16 in its high one; value = (nibble - 8) * d. Pass it to
    attention as relattn.Q4(blocks). A NaN or infinity raises relattn.Error with status 17
    (non-finite value to quantise), a value so large that d overflows float16 (|x| >= 524160)
    status 20 (value range), each naming the element."""
    x = arrays.checked_array("x", x, 3, arrays.TENSOR_DTYPES, "[tokens][heads][dim]")
    n, heads, dim = x.shape
    if dim % arrays.Q4_BLOCK_VALUES:
        raise ValueError("x: dim %d (shape %s): must be a multiple of 32 (q4_0 blocks of 32 "
                         "values)" % (dim, x.shape))
    f = np.ascontiguousarray(x, np.float32)
    bad = np.flatnonzero(~np.isfinite(f))
    if bad.size:
        _quantize_error(17, f, bad[0], "must be finite")
    b = f.reshape(-1, arrays.Q4_BLOCK_VALUES)
    first_max = np.argmax(np.abs(b), axis=1)  # the first value of largest |x|, as ggml's loop
    m = b[np.arange(len(b)), first_max]
    m = np.where(m == 0, np.float32(0), m)  # ggml's max starts at +0: an all-zero block's d is -0
    d = m / np.float32(-8)
    with np.errstate(over="ignore"):
        d16 = d.astype(np.float16)
    overflow = np.flatnonzero(~np.isfinite(d16))
    if overflow.size:
        block = overflow[0]
        _quantize_error(20, f, block * arrays.Q4_BLOCK_VALUES + first_max[block],
                        "|x| / 8 overflows the block's float16 scale (|x| must be below 524160)")
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        inv = np.where(d != 0, np.float32(1) / np.where(d != 0, d, np.float32(1)),
                       np.float32(0)).astype(np.float32)
        y = b * inv[:, None] + np.float32(8.5)  # float32: x * inv rounded, then + 8.5 rounded
    # Finite but for a subnormal d (|x| below 2^-125), whose 1 / d overflows: the float16 d is
    # then 0 and every value 0; those nibbles are 0, as the library's conversion leaves them
    # on x86.
    y = np.where(np.isfinite(y), y, np.float32(0))
    nibbles = np.minimum(15, y.astype(np.int32)).astype(np.uint8)
    half = arrays.Q4_BLOCK_VALUES // 2
    out = np.empty((len(b), arrays.Q4_BLOCK_BYTES), np.uint8)
    out[:, :2] = d16.view(np.uint8).reshape(-1, 2)
    out[:, 2:] = nibbles[:, :half] | (nibbles[:, half:] << np.uint8(4))
    return out.reshape(n, heads, dim // arrays.Q4_BLOCK_VALUES * arrays.Q4_BLOCK_BYTES)


def _quantize_error(status, f, flat_index, what):
    """Raises relattn.Error(status) naming element flat_index of the [tokens][heads][dim] f."""
    t, h, e = np.unravel_index(flat_index, f.shape)
    raise _capi.Error(status, "%s: x element (token %d, head %d, %d) = %g: %s" % (
        lib.relattn_status_string(status).decode(), t, h, e, f[t, h, e], what))


def active_target():
    """Name of the SIMD target the library's kernels dispatch to now ("AVX3", "AVX2", "NEON",
    "SVE2", ...: relattn_active_target)."""
    return lib.relattn_active_target().decode()
