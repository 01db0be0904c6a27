"""Argument checks and numpy-to-C conversions shared by the binding's functions. Every error
names the argument it is about."""
import numbers
import operator
from collections.abc import Mapping

import numpy as np

from . import _capi

TENSOR_DTYPES = {np.dtype(np.float32): _capi.F32, np.dtype(np.float16): _capi.F16}
TABLE_DTYPES = {**TENSOR_DTYPES, np.dtype(np.int8): _capi.I8}
# bfloat16, which numpy lacks: uint16 arrays of its bits, named by the string.
BF16 = "bfloat16"
BF16_DTYPES = {np.dtype(np.uint16): _capi.BF16}
# A KV cache stores K and V as float32, float16, int8, "bfloat16" or "q4" (ggml's q4_0
# blocks: 4.5 bits a value, head dims a multiple of 32).
CACHE_DTYPES = {**TABLE_DTYPES, BF16: _capi.BF16, "q4": _capi.Q4}
# ggml's q4_0 block: 32 values in 18 bytes (a float16 scale d, then 16 bytes of nibbles).
Q4_BLOCK_VALUES, Q4_BLOCK_BYTES = 32, 18
Q4_FORM = "relattn.Q4(uint8 [tokens][heads][dim / 32 * 18]), as relattn.quantize_q4 returns"


class Q4:
    """K or V given to relattn.attention as ggml's q4_0 blocks: Q4(blocks), blocks a uint8
    array [tokens][heads][dim / 32 * 18] (relattn.quantize_q4's; or an object exposing
    __array_interface__ or __dlpack__), read in place when its rows are contiguous. Each row
    of dim values is dim / 32 blocks of 18 bytes: a float16 scale d, then 16 bytes, byte i
    holding value i in its low nibble and value i + 16 in its high one; value = (nibble - 8)
    * d. Only k and v may be Q4 (q is float, bfloat16 bits or the int8 pair)."""

    __slots__ = ("blocks",)

    def __init__(self, blocks):
        self.blocks = blocks

    def __repr__(self):
        return "relattn.Q4(%s)" % (getattr(self.blocks, "shape", type(self.blocks).__name__),)


def cache_dtype(name, d):
    """The CACHE_DTYPES key of a storage dtype argument (a numpy dtype, "bfloat16", "q4")."""
    key = d if isinstance(d, str) and d in CACHE_DTYPES else None
    if key is None and not isinstance(d, str):
        key = np.dtype(d)
    if key not in CACHE_DTYPES:
        raise TypeError("%s: %s is not supported: use %s" % (name, key if key is not None else d,
                                                             " or ".join(map(str, CACHE_DTYPES))))
    return key


def to_bf16(x):
    """x (any float array) as uint16 bfloat16 bits, rounded to nearest even (a NaN stays a
    NaN): the form relattn takes with dtype="bfloat16"."""
    b = np.array(x, np.float32, ndmin=1).view(np.uint32).astype(np.uint64)
    u = np.uint64
    nan = (b & u(0x7FFFFFFF)) > u(0x7F800000)
    rounded = ((b + u(0x7FFF) + ((b >> u(16)) & u(1))) >> u(16)) & u(0xFFFF)
    out = np.where(nan, (b >> u(16)) | u(0x40), rounded).astype(np.uint16)
    return out.reshape(np.shape(x))


def from_bf16(bits):
    """uint16 bfloat16 bits as float32 (exact)."""
    b = np.array(bits, np.uint16, ndmin=1).astype(np.uint32) << np.uint32(16)
    return b.view(np.float32).reshape(np.shape(bits))
INT64_MIN, INT64_MAX, INT32_MAX = -2**63, 2**63 - 1, 2**31 - 1


def to_int(name, value, lo=INT64_MIN, hi=INT64_MAX):
    """value as a Python int in [lo, hi]; ctypes would wrap it silently."""
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError("%s: expected an int, got %s" % (name, type(value).__name__)) from None
    if not lo <= value <= hi:
        raise ValueError("%s: %d is outside %d..%d" % (name, value, lo, hi))
    return value


def to_float(name, value):
    """value as a Python float (a real number, not a bool); the library judges its range."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError("%s: expected a number, got %s" % (name, type(value).__name__))
    return float(value)


ROPE_KEYS = ("pairing", "rotary_dims", "base", "linear_scale", "scaling", "inv_freq",
             "attention_factor")
# scaling keys per type (besides "type" and the optional "attention_factor").
SCALING_KEYS = {
    "none": (), "linear": ("factor",), "ntk": ("factor",),
    "llama3": ("factor", "low_freq_factor", "high_freq_factor", "original_max_position"),
    "yarn": ("factor", "original_max_position", "beta_fast", "beta_slow", "truncate"),
    "longrope": ("short_factor", "long_factor", "original_max_position", "max_position",
                 "sequence_length"),
    "inv_freq": ("inv_freq",),
}
SCALING_TABLES = ("short_factor", "long_factor", "inv_freq")


def _table(name, values):
    """A contiguous float64 copy of a 1-D table (kept alive by the caller)."""
    a = np.ascontiguousarray(as_values(name, values), dtype=np.float64)
    if a.ndim != 1 or a.size == 0:
        raise ValueError("%s: expected a 1-D sequence of rotary_dims / 2 numbers, got shape %s"
                         % (name, a.shape))
    return a


def rope_scaling(value, keep):
    """relattn_rope_scaling from a scaling dict {"type": ..., ...} (SCALING_KEYS); tables are
    appended to keep, which must outlive every call that reads the struct."""
    s = _capi.RopeScaling()
    if value is None:
        return s
    if not isinstance(value, Mapping) or not isinstance(value.get("type"), str):
        raise TypeError("rope.scaling: expected a dict with a 'type' (%s)"
                        % ", ".join(SCALING_KEYS))
    kind = value["type"]
    if kind not in SCALING_KEYS:
        raise ValueError("rope.scaling.type %r is not one of %s" % (kind, ", ".join(SCALING_KEYS)))
    allowed = SCALING_KEYS[kind] + ("type", "attention_factor")
    for key in value:
        if key not in allowed:
            raise ValueError("rope.scaling: key %r is not used by type %r (its keys: %s)"
                             % (key, kind, ", ".join(allowed)))
    s.type = _capi.ROPE_SCALINGS[kind]
    for key, v in value.items():
        if key == "type" or v is None:
            continue
        name = "rope.scaling." + key
        if key in SCALING_TABLES:
            keep.append(_table(name, v))
            setattr(s, key, keep[-1].ctypes.data)
        elif key == "truncate":
            s.no_truncate = 0 if v else 1
        elif key in ("original_max_position", "max_position", "sequence_length"):
            setattr(s, key, to_int(name, v, 0, 1 << 40))
        else:
            setattr(s, key, to_float(name, v))
    return s


def rope(value, keep):
    """relattn_rope from the rope= argument: None or "none" (off); "interleaved" or "halves"
    (every dimension, base 10000, no scaling); or a dict {"pairing": "interleaved" | "halves",
    "rotary_dims": int, "base": float, "linear_scale": float, "scaling": {...}} where an absent
    key or None means the default (rotary_dims head_dim, base 10000, linear_scale 1, no
    scaling); {"inv_freq": array, "attention_factor": float} at the top level is the same as
    "scaling": {"type": "inv_freq", ...}. Tables are appended to keep, which must outlive the
    calls that read the struct. Ranges are the library's to judge (relattn.Error)."""
    if value is None:
        return _capi.Rope(_capi.ROPE_PAIRINGS["none"], 0, 0.0, 0.0)
    if isinstance(value, str):
        value = {"pairing": value}
    if not isinstance(value, Mapping):
        raise TypeError("rope: expected None, a pairing name or a dict, got %s"
                        % type(value).__name__)
    for key in value:
        if key not in ROPE_KEYS:
            raise ValueError("rope: unknown key %r (keys: %s)" % (key, ", ".join(ROPE_KEYS)))
    if "pairing" not in value:
        raise ValueError("rope: 'pairing' is required (interleaved or halves)")
    pairing = value["pairing"]
    if not isinstance(pairing, str) or pairing not in _capi.ROPE_PAIRINGS:
        raise ValueError("rope: pairing %r is not one of %s"
                         % (pairing, ", ".join(_capi.ROPE_PAIRINGS)))
    given = [key for key in ROPE_KEYS[1:] if value.get(key) is not None]
    if pairing == "none" and given:
        raise ValueError("rope: %s: not used with pairing 'none'" % given[0])
    scaling = value.get("scaling")
    if value.get("inv_freq") is not None:
        if scaling is not None:
            raise ValueError("rope: give either 'inv_freq' or 'scaling', not both")
        scaling = {"type": "inv_freq", "inv_freq": value["inv_freq"],
                   "attention_factor": value.get("attention_factor")}
    elif value.get("attention_factor") is not None:
        raise ValueError("rope: a top-level 'attention_factor' goes with 'inv_freq' (else "
                         "inside 'scaling')")
    rotary_dims, base, linear_scale = (value.get(key) for key in ROPE_KEYS[1:4])
    return _capi.Rope(
        _capi.ROPE_PAIRINGS[pairing],
        0 if rotary_dims is None else to_int("rope.rotary_dims", rotary_dims, 0, INT32_MAX),
        0.0 if base is None else to_float("rope.base", base),
        0.0 if linear_scale is None else to_float("rope.linear_scale", linear_scale),
        rope_scaling(scaling, keep))


def rope_dict(r, head_dim, given):
    """The resolved form of a relattn_rope: None when off, else a dict with the defaults filled
    in (base and linear_scale as the library stores them, float32) and, with a scaling family,
    the "scaling" dict as given."""
    names = {code: name for name, code in _capi.ROPE_PAIRINGS.items()}
    if r.pairing == _capi.ROPE_PAIRINGS["none"]:
        return None
    out = {"pairing": names[r.pairing], "rotary_dims": r.rotary_dims or head_dim,
           "base": r.base or 10000.0, "linear_scale": r.linear_scale or 1.0}
    if isinstance(given, Mapping):
        for key in ("scaling", "inv_freq", "attention_factor"):
            if given.get(key) is not None:
                out[key] = given[key]
    return out


def _numpy_view(a):
    """The numpy array over the memory of a, which has __array_interface__ or __dlpack__."""
    if hasattr(a, "__array_interface__"):
        return np.asarray(a)
    try:
        return np.from_dlpack(a)
    except (BufferError, TypeError, RuntimeError):
        if not hasattr(a, "__array__"):
            raise
        return np.asarray(a)  # a dtype DLPack did not carry (numpy 1.24 reads no bool)


def as_array(name, a):
    """a when it is a numpy array; else the numpy array over the memory of an object exposing
    __array_interface__ (read through np.asarray) or __dlpack__ (np.from_dlpack: a torch CPU
    tensor, ...), never a copy; when DLPack cannot carry its dtype, through the object's
    __array__ (a torch CPU tensor's is a view). TypeError naming the argument for anything
    else, or for an object whose memory numpy cannot read (a GPU tensor, a dtype numpy lacks
    such as bfloat16)."""
    if isinstance(a, np.ndarray):
        return a
    if not array_like(a):
        raise TypeError("%s: expected a numpy array, got %s (objects with __array_interface__ "
                        "or __dlpack__ are read in place too)" % (name, type(a).__name__))
    try:
        return _numpy_view(a)
    except (TypeError, ValueError, BufferError, RuntimeError) as e:
        raise TypeError("%s: %s: numpy cannot read its memory in place: %s"
                        % (name, type(a).__name__, e)) from None


def array_like(a):
    """Whether as_array reads a: a numpy array, or an object with __array_interface__ or
    __dlpack__."""
    return (isinstance(a, np.ndarray) or hasattr(a, "__array_interface__")
            or hasattr(a, "__dlpack__"))


def as_values(name, a):
    """as_array(a) for an array or an object as_array reads; else np.asarray(a) (a list, a
    number, ...)."""
    return as_array(name, a) if array_like(a) else np.asarray(a)


def checked_array(name, a, ndim, dtypes, layout):
    """as_array(a), once its dtype is one of dtypes and it has ndim dimensions, none empty."""
    a = as_array(name, a)
    if a.dtype not in dtypes:
        raise TypeError("%s: dtype %s is not supported: use %s"
                        % (name, a.dtype, " or ".join(str(d) for d in dtypes)))
    if a.ndim != ndim or 0 in a.shape:
        raise ValueError("%s: expected %s with every dimension >= 1, got shape %s"
                         % (name, layout, a.shape))
    return a


def steps_readable(a, span):
    """Whether the library reads the first two axes of a (rows of span elements, contiguous
    when span > 1) as they are: non-negative whole-element strides that never let two rows
    overlap."""
    s = a.itemsize
    if (span > 1 and a.strides[2] != s) or any(st < 0 or st % s for st in a.strides[:2]):
        return False
    axes = sorted((st // s, n) for st, n in zip(a.strides[:2], a.shape[:2]) if n > 1)
    for stride, count in axes:  # each axis must step past every row of the smaller one
        if stride < span:
            return False
        span = stride * count
    return True


def rows_readable(a):
    """Whether the library reads a [tokens][heads][dim] array's strides as they are (always
    so for a C-contiguous one)."""
    return a.flags.c_contiguous or steps_readable(a, a.shape[2])


def element_strides(a):
    """The first two strides of a in elements (0 for an axis of length 1)."""
    (s0, s1), (n0, n1), size = a.strides[:2], a.shape[:2], a.itemsize
    return (s0 // size if n0 > 1 else 0), (s1 // size if n1 > 1 else 0)


I8_FORM = "(int8 [tokens][heads][head_dim], float32 scales [tokens][heads])"


def cast_float(a):
    """a (an array) as float32 when its dtype is a float the library does not take (float64,
    longdouble): the copy cast=True makes; else a itself."""
    if a.dtype.kind == "f" and a.dtype not in TENSOR_DTYPES:
        return a.astype(np.float32)
    return a


def tensor(name, a, keep=None, cast=False, bf16=False, q4=False):
    """(array, relattn_tensor) of a float32 / float16 [tokens][heads][dim] array (or an object
    as_array reads), read in place when its strides allow; cast=True first converts another
    float dtype to float32 (a copy). With keep (a list of arrays the call keeps alive), a may
    also be the int8 form of q, k or v: a pair (int8 array, float32 row scales) as quantize_i8
    returns, element (t, h, e) standing for scales[t, h] * int8[t, h, e]; the scales are
    appended to keep. bf16=True: a uint16 array holds bfloat16 bits. q4=True: a may be a Q4
    (its uint8 blocks array is returned: tensor_shape gives the values' shape)."""
    if isinstance(a, Q4):
        if not q4:
            raise TypeError("%s: relattn.Q4 blocks are not supported here: only relattn."
                            "attention's k and v may be Q4" % name)
        return q4_tensor(name, a)
    if keep is not None and isinstance(a, tuple):
        return int8_tensor(name, a, keep)
    a = as_array(name, a)
    if a.dtype == np.int8:
        if keep is None:
            raise TypeError("%s: dtype int8 is not supported: use float32 or float16" % name)
        raise TypeError("%s: an int8 array needs its row scales: pass the pair %s, as "
                        "relattn.quantize_i8 returns" % (name, I8_FORM))
    if cast:
        a = cast_float(a)
    dtypes = {**TENSOR_DTYPES, **BF16_DTYPES} if bf16 else TENSOR_DTYPES
    a = checked_array(name, a, 3, dtypes, "[tokens][heads][head_dim]")
    if not rows_readable(a):
        a = np.ascontiguousarray(a)
    t_stride, h_stride = element_strides(a)
    return a, _capi.Tensor(a.ctypes.data, dtypes[a.dtype], t_stride, h_stride, None, 0, 0)


def int8_tensor(name, pair, keep):
    """(int8 array, relattn_tensor) of the pair (int8 [tokens][heads][dim], float32 scales
    [tokens][heads]), each read in place when its strides allow; the scales go into keep."""
    if len(pair) != 2:
        raise ValueError("%s: the int8 form is the pair %s, got %d items"
                         % (name, I8_FORM, len(pair)))
    data, scales = pair
    data = checked_array(name + "[0]", data, 3, [np.dtype(np.int8)], "[tokens][heads][head_dim]")
    scales = checked_array(name + "[1]", scales, 2, [np.dtype(np.float32)], "[tokens][heads]")
    if scales.shape != data.shape[:2]:
        raise ValueError("%s[1]: scales of shape %s: expected %s, one per row of %s[0]"
                         % (name, scales.shape, data.shape[:2], name))
    if not rows_readable(data):
        data = np.ascontiguousarray(data)
    if not steps_readable(scales, 1):
        scales = np.ascontiguousarray(scales)
    keep.append(scales)
    (t_stride, h_stride), (st_stride, sh_stride) = element_strides(data), element_strides(scales)
    return data, _capi.Tensor(data.ctypes.data, _capi.I8, t_stride, h_stride, scales.ctypes.data,
                              st_stride, sh_stride)


def q4_tensor(name, q4):
    """(uint8 array, relattn_tensor) of a Q4: its blocks [tokens][heads][dim / 32 * 18], read
    in place when each row's bytes are contiguous (strides in bytes, as RELATTN_Q4 counts)."""
    blocks = as_array(name, q4.blocks)
    if blocks.dtype != np.uint8:
        raise TypeError("%s: Q4 blocks of dtype %s: expected uint8 (%s)"
                        % (name, blocks.dtype, Q4_FORM))
    if blocks.ndim != 3 or 0 in blocks.shape:
        raise ValueError("%s: Q4 blocks of shape %s: expected [tokens][heads][dim / 32 * 18] "
                         "with every dimension >= 1 (%s)" % (name, blocks.shape, Q4_FORM))
    if blocks.shape[2] % Q4_BLOCK_BYTES:
        raise ValueError("%s: Q4 rows of %d bytes (shape %s): expected a multiple of %d, dim / "
                         "32 blocks of %d bytes (%s)" % (name, blocks.shape[2], blocks.shape,
                                                         Q4_BLOCK_BYTES, Q4_BLOCK_BYTES, Q4_FORM))
    if not rows_readable(blocks):
        blocks = np.ascontiguousarray(blocks)
    t_stride, h_stride = element_strides(blocks)
    return blocks, _capi.Tensor(blocks.ctypes.data, _capi.Q4, t_stride, h_stride, None, 0, 0)


def tensor_shape(a, t):
    """The [tokens][heads][dim] shape of the values relattn_tensor t over array a stands for
    (a Q4 row of dim / 32 * 18 bytes holds dim values)."""
    if t.dtype == _capi.Q4:
        return a.shape[:2] + (a.shape[2] // Q4_BLOCK_BYTES * Q4_BLOCK_VALUES,)
    return a.shape


def table(name, a, shape, dtypes):
    """a as a C-order table of shape (None: any length) and one of dtypes."""
    a = checked_array(name, a, len(shape), dtypes, "a %d-d array" % len(shape))
    for axis, n in enumerate(shape):
        if n is not None and a.shape[axis] != n:
            wanted = ["n" if x is None else str(x) for x in shape]
            raise ValueError("%s: expected shape (%s%s), got %s" % (
                name, ", ".join(wanted), "," if len(wanted) == 1 else "", a.shape))
    return np.ascontiguousarray(a)


def positions(name, values, start_name, start, n):
    """(array kept alive, relattn_positions) from int64 values [n] or a start."""
    start = to_int(start_name, start)
    if values is None:
        return None, _capi.Positions(None, start)
    if start:
        raise ValueError("%s: give %s or %s, not both" % (name, name, start_name))
    p = as_values(name, values)
    integer = p.dtype.kind == "i" or (p.dtype.kind == "u" and p.dtype.itemsize < 8)
    if not integer or p.shape != (n,):
        raise ValueError("%s: expected %d integer positions, got %s %s"
                         % (name, n, p.dtype, p.shape))
    p = np.ascontiguousarray(p, dtype=np.int64)
    return p, _capi.Positions(p.ctypes.data, 0)
