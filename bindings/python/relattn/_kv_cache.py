"""KVCache: the library's KV cache for streaming decode, in memory this object owns."""
import ctypes
import threading

import numpy as np

from . import _api  # for attention(): _api imports this module before defining it
from . import _arrays as arrays
from . import _capi
from ._capi import check, lib


class KVCache:
    """Keys and values appended token by token, stored per KV head as `dtype` (float16 or
    float32; k_dtype and v_dtype, when given, choose K's and V's apart, and either may be
    int8), each token with its int64 position. ring=True keeps the last `capacity` tokens in
    constant memory (positions count on); otherwise an append past capacity raises
    relattn.Error and changes nothing. A lock makes appends wait for attention calls reading
    the cache, and the other way round.

        cache = relattn.KVCache(kv_heads=2, head_dim=64, capacity=4096, ring=True)
        cache.append(k, v)                         # [tokens][kv_heads][head_dim]
        o = cache.attention(q, scheme="alibi", causal=True)  # q at next_position, next_position + 1..

    attention places the queries after the cache's last token (q_start=cache.next_position)
    unless given q_start or q_positions.

    Rollback and save / restore: cache.truncate(n) keeps the oldest n tokens in the order
    they were appended (speculative decoding, beam search: appending again then equals never
    having appended the dropped ones; a wrapped ring keeps its sinks and oldest window
    tokens). cache.tobytes() is the cache as bytes (pointer-free: write it to a file);
    KVCache.frombytes(b) checks such bytes (relattn.Error naming the field if they are not a
    cache this library wrote, or were corrupted) and makes a cache of them; cache.copy() is
    an independent copy (appends to one leave the other as it was).

    rope (as relattn.attention's: None, "interleaved", "halves" or a dict with "pairing",
    "rotary_dims", "base", "linear_scale") rotates K when it is appended, at its position;
    attention over the cache then uses the same rope unless given another (an error). The
    `rope` attribute is None or the dict with its defaults filled in. With dtype float16 the
    rotated keys are what is rounded to float16.

    k_dtype=np.int8 stores each K row as int8 with one float32 scale per (token, KV head),
    quantised when appended (after rope) as quantize_i8 does: attention over the cache is
    then attention over quantize_i8(k) (rotated first with rope). Queries may be float or
    the int8 pair of quantize_i8; a decode step (up to 7 queries) quantises a float q per row
    too, as quantize_i8 does, while a longer prefill takes it as given. v_dtype=np.int8
    stores V the same way (one scale per row, quantised when appended): attention over the
    cache is then attention over quantize_i8(v). k_dtype / v_dtype "q4" store ggml's q4_0
    blocks (32 values in 18 bytes: one float16 scale; head dims a multiple of 32, quantised
    when appended as ggml's quantize_row_q4_0_ref), "bfloat16" rounds to bfloat16. Bytes per
    token per KV head: K head_dim x (4, 2, 1, 18 / 32) + 4 for int8's scale, V v_head_dim x
    (4, 2, 1, 18 / 32) + 4 for int8, + 1 flag byte, + 8 per token for its position
    (bfloat16: 2 a value).

    sink_tokens (ring only): the first sink_tokens tokens appended are never overwritten
    (StreamingLLM's attention sinks); the ring wraps over the other capacity - sink_tokens
    slots. sink_positions="text" (default) keeps every token at the position it was appended
    at; "cache" is StreamingLLM's rule, positions within the cache: the cache numbers its
    tokens (append takes no positions), the sinks move to just before the window's oldest
    token as it slides, and the query goes next (q_start=cache.next_position), so distances
    are those of sinks at 0..S-1, the window after them and the query last.
    """

    SINK_POSITIONS = {"text": 0, "cache": 1}

    def __init__(self, kv_heads, head_dim, capacity, *, v_head_dim=None, dtype=np.float16,
                 k_dtype=None, v_dtype=None, ring=False, rope=None, sink_tokens=0,
                 sink_positions="text"):
        if arrays.cache_dtype("dtype", dtype) not in arrays.TENSOR_DTYPES:
            raise TypeError("dtype: %s is not supported: use float32 or float16 (k_dtype=np.int8, "
                            "v_dtype=np.int8 store K, V as int8; \"q4\", \"bfloat16\" as "
                            "4-bit q4_0, bfloat16)" % arrays.cache_dtype("dtype", dtype))
        k_dtype = arrays.cache_dtype("k_dtype", dtype if k_dtype is None else k_dtype)
        v_dtype = arrays.cache_dtype("v_dtype", dtype if v_dtype is None else v_dtype)
        v_head_dim = head_dim if v_head_dim is None else v_head_dim
        self._rope_tables = []  # the scaling tables rope_desc points to
        desc = _capi.KvCacheDesc(
            arrays.to_int("kv_heads", kv_heads, 0, arrays.INT32_MAX),
            arrays.to_int("head_dim", head_dim, 0, arrays.INT32_MAX),
            arrays.to_int("v_head_dim", v_head_dim, 0, arrays.INT32_MAX),
            arrays.to_int("capacity", capacity, 0), arrays.CACHE_DTYPES[k_dtype],
            arrays.CACHE_DTYPES[v_dtype], int(bool(ring)), arrays.rope(rope, self._rope_tables),
            arrays.to_int("sink_tokens", sink_tokens), self._sink_rule(sink_positions))
        size = ctypes.c_size_t()
        check(lib.relattn_kv_cache_size(ctypes.byref(desc), ctypes.byref(size)))
        self._memory = np.empty(size.value + _capi.KV_CACHE_ALIGNMENT, np.uint8)
        offset = -self._memory.ctypes.data % _capi.KV_CACHE_ALIGNMENT
        self.handle = ctypes.c_void_p()
        check(lib.relattn_kv_cache_init(ctypes.byref(desc), self._memory.ctypes.data + offset,
                                        size.value, ctypes.byref(self.handle)))
        self._size = size.value
        self.lock = threading.Lock()
        self.kv_heads, self.head_dim, self.v_head_dim = desc.n_kv_heads, desc.head_dim, v_head_dim
        self.capacity, self.ring = desc.capacity, bool(ring)
        self.sink_tokens, self.sink_positions = desc.n_sink_tokens, sink_positions
        self.k_dtype, self.v_dtype = k_dtype, v_dtype
        self.rope_desc = _capi.Rope.from_buffer_copy(desc.rope)  # the relattn_rope, for attention
        self.rope = arrays.rope_dict(desc.rope, self.head_dim, rope)

    @classmethod
    def frombytes(cls, data, *, rope=None):
        """A cache made of bytes tobytes() gave (a bytes-like object, e.g. a file's contents):
        copied into memory the new cache owns, checked by the library (relattn.Error naming
        the field when they are not such a cache, were truncated or corrupted, or come from a
        library of another layout version). Its attributes come from the stored header. rope:
        None uses the stored rope, complete unless its scaling family takes tables (inv_freq,
        longrope), which are not stored: then give the rope the cache was made with."""
        view = memoryview(data).cast("B")
        src = np.frombuffer(view, np.uint8) if view.nbytes else np.zeros(0, np.uint8)
        self = cls.__new__(cls)
        self._rope_tables = []
        self._attach(src)
        desc = self._desc()
        self.kv_heads, self.head_dim, self.v_head_dim = desc.n_kv_heads, desc.head_dim, \
            desc.v_head_dim
        self.capacity, self.ring, self.sink_tokens = desc.capacity, bool(desc.ring), \
            desc.n_sink_tokens
        self.sink_positions = {v: k for k, v in cls.SINK_POSITIONS.items()}[desc.sink_positions]
        self.k_dtype = {v: k for k, v in arrays.CACHE_DTYPES.items()}[desc.k_dtype]
        self.v_dtype = {v: k for k, v in arrays.CACHE_DTYPES.items()}[desc.v_dtype]
        self.rope_desc = (_capi.Rope.from_buffer_copy(desc.rope) if rope is None
                          else arrays.rope(rope, self._rope_tables))
        self.rope = arrays.rope_dict(self.rope_desc, self.head_dim, rope)
        return self

    def _attach(self, src):
        """Copies the uint8 array src into new aligned memory and attaches it."""
        self._size = src.size
        self._memory = np.empty(src.size + _capi.KV_CACHE_ALIGNMENT, np.uint8)
        self._offset = -self._memory.ctypes.data % _capi.KV_CACHE_ALIGNMENT
        self._memory[self._offset:self._offset + src.size] = src
        self.handle = ctypes.c_void_p()
        self.lock = threading.Lock()
        check(lib.relattn_kv_cache_attach(self._memory.ctypes.data + self._offset, src.size,
                                          ctypes.byref(self.handle)))

    def _desc(self):
        """The relattn_kv_cache_desc the cache was made with (relattn_kv_cache_get_desc:
        v_head_dim resolved, the rope's table pointers NULL)."""
        desc = _capi.KvCacheDesc()
        check(lib.relattn_kv_cache_get_desc(self.handle, ctypes.byref(desc)))
        return desc

    def tobytes(self):
        """The cache's relattn_kv_cache_size bytes (header and every region) as bytes."""
        with self.lock:
            return ctypes.string_at(self.handle, self._size)

    def copy(self):
        """A new KVCache holding the same bytes (attached: checked as frombytes checks them),
        with this one's attributes; appends to either leave the other as it was."""
        other = self.__class__.__new__(self.__class__)
        other.__dict__.update({key: value for key, value in self.__dict__.items()
                               if key not in ("_memory", "handle", "lock")})
        other._attach(np.frombuffer(self.tobytes(), np.uint8))
        return other

    def truncate(self, n_tokens):
        """Keeps the oldest n_tokens (0..len(self)) in the order they were appended and drops
        the others; appends without positions then continue after the last kept token."""
        n_tokens = arrays.to_int("n_tokens", n_tokens)
        with self.lock:
            check(lib.relattn_kv_cache_truncate(self.handle, n_tokens))

    @classmethod
    def _sink_rule(cls, sink_positions):
        if sink_positions not in cls.SINK_POSITIONS:
            raise ValueError("sink_positions: %r: must be 'text' or 'cache'" % (sink_positions,))
        return cls.SINK_POSITIONS[sink_positions]

    def append(self, k, v, positions=None, *, cast=False, dtype=None):
        """Appends k [n][kv_heads][head_dim] and v [n][kv_heads][v_head_dim] (float32 or
        float16, numpy arrays or objects with __array_interface__ or __dlpack__, read in place;
        cast=True converts float64 ones to float32 first) at positions: None continues from
        next_position, an int starts there, an integer array [n] gives each token's.
        dtype="bfloat16": uint16 k and v hold bfloat16 bits (relattn.to_bf16)."""
        bf16 = _api.bf16_inputs(dtype)
        k, k_t = arrays.tensor("k", k, cast=cast, bf16=bf16)
        v, v_t = arrays.tensor("v", v, cast=cast, bf16=bf16)
        for name, a, dim in (("k", k, self.head_dim), ("v", v, self.v_head_dim)):
            if a.shape[1:] != (self.kv_heads, dim):
                raise ValueError("%s: shape %s: expected [n][%d][%d]"
                                 % (name, a.shape, self.kv_heads, dim))
        if v.shape[0] != k.shape[0]:
            raise ValueError("v: %d tokens, k has %d" % (v.shape[0], k.shape[0]))
        pos = None  # NULL: the library continues from next_position
        if arrays.array_like(positions):
            positions = arrays.as_array("positions", positions)
        if positions is not None and np.ndim(positions) == 0:
            _, pos = arrays.positions("positions", None, "positions", positions, k.shape[0])
        elif positions is not None:
            p, pos = arrays.positions("positions", positions, "start", 0, k.shape[0])
        with self.lock:
            check(lib.relattn_kv_cache_append(self.handle, k.shape[0], ctypes.byref(k_t),
                                              ctypes.byref(v_t),
                                              ctypes.byref(pos) if pos else None))

    def attention(self, q, **options):
        """relattn.attention(q, self, None, **options): q [n_q][heads][head_dim] (float, or
        the int8 pair of quantize_i8 when K is stored as int8) over the cached tokens at their
        positions; the same keyword arguments but k_start and k_positions. mask.valid_kv counts
        the cache's slots; rope defaults to the cache's. Without q_start and q_positions the
        queries follow the cache's last token: q_start = next_position (read when called)."""
        if options.get("q_positions") is None:
            options.setdefault("q_start", self.next_position)
        return _api.attention(q, self, None, **options)

    def check_queries(self, q):
        """(kv_heads, v_head_dim) for q, once its head_dim matches."""
        if q.shape[2] != self.head_dim:
            raise ValueError("q: head_dim %d differs from the cache's %d"
                             % (q.shape[2], self.head_dim))
        return self.kv_heads, self.v_head_dim

    def __len__(self):
        return lib.relattn_kv_cache_length(self.handle)

    @property
    def next_position(self):
        """The position an append without positions continues from."""
        return lib.relattn_kv_cache_next_position(self.handle)

    def clear(self):
        """Empties the cache; positions restart at 0."""
        with self.lock:
            lib.relattn_kv_cache_clear(self.handle)
