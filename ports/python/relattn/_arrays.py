"""Argument checks and numpy-to-C conversions shared by the binding's functions. Every error
names the argument it is about."""
import numbers
import operator
from collections.abc import Mapping

import numpy as np

from . import _capi

TENSOR_DTYPES = {np.dtype(np.float32): _capi.F32, np.dtype(np.float16): _capi.F16}
TABLE_DTYPES = {**TENSOR_DTYPES, np.dtype(np.int8): _capi.I8}
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


ROPE_KEYS = ("pairing", "rotary_dims", "base", "linear_scale")


def rope(value):
    """relattn_rope from the rope= argument: None or "none" (off); "interleaved" or "halves"
    (every dimension, base 10000, no scaling); or a dict {"pairing": "interleaved" | "halves",
    "rotary_dims": int, "base": float, "linear_scale": float}, where an absent key or None
    means the default (rotary_dims head_dim, base 10000, linear_scale 1). Ranges are the
    library's to judge (relattn.Error)."""
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
    rotary_dims, base, linear_scale = (value.get(key) for key in ROPE_KEYS[1:])
    return _capi.Rope(
        _capi.ROPE_PAIRINGS[pairing],
        0 if rotary_dims is None else to_int("rope.rotary_dims", rotary_dims, 0, INT32_MAX),
        0.0 if base is None else to_float("rope.base", base),
        0.0 if linear_scale is None else to_float("rope.linear_scale", linear_scale))


def rope_dict(r, head_dim):
    """The resolved form of a relattn_rope: None when off, else a dict of ROPE_KEYS with the
    defaults filled in (base and linear_scale as the library stores them, float32)."""
    names = {code: name for name, code in _capi.ROPE_PAIRINGS.items()}
    if r.pairing == _capi.ROPE_PAIRINGS["none"]:
        return None
    return {"pairing": names[r.pairing], "rotary_dims": r.rotary_dims or head_dim,
            "base": r.base or 10000.0, "linear_scale": r.linear_scale or 1.0}


def checked_array(name, a, ndim, dtypes, layout):
    if not isinstance(a, np.ndarray):
        raise TypeError("%s: expected a numpy array, got %s" % (name, type(a).__name__))
    if a.dtype not in dtypes:
        raise TypeError("%s: dtype %s is not supported: use %s"
                        % (name, a.dtype, " or ".join(str(d) for d in dtypes)))
    if a.ndim != ndim or 0 in a.shape:
        raise ValueError("%s: expected %s with every dimension >= 1, got shape %s"
                         % (name, layout, a.shape))
    return a


def rows_readable(a):
    """Whether the library reads a [tokens][heads][dim] array's strides as they are."""
    s = a.itemsize
    if a.strides[2] != s or any(st < 0 or st % s for st in a.strides[:2]):
        return False
    axes = sorted((st // s, n) for st, n in zip(a.strides[:2], a.shape[:2]) if n > 1)
    span = a.shape[2]
    for stride, count in axes:  # each axis must step past every row of the smaller one
        if stride < span:
            return False
        span = stride * count
    return True


def tensor(name, a):
    a = checked_array(name, a, 3, TENSOR_DTYPES, "[tokens][heads][head_dim]")
    if not rows_readable(a):
        a = np.ascontiguousarray(a)
    s = a.itemsize
    strides = [st // s if n > 1 else 0 for st, n in zip(a.strides[:2], a.shape[:2])]
    return a, _capi.Tensor(a.ctypes.data, TENSOR_DTYPES[a.dtype], strides[0], strides[1],
                           None, 0, 0)


def table(name, a, shape, dtypes):
    """a as a C-order table of shape (None: any length) and one of dtypes."""
    a = checked_array(name, a, len(shape), dtypes, "a %d-d array" % len(shape))
    for axis, n in enumerate(shape):
        if n is not None and a.shape[axis] != n:
            raise ValueError("%s: expected shape %s, got %s"
                             % (name, tuple("n" if x is None else x for x in shape), a.shape))
    return np.ascontiguousarray(a)


def positions(name, values, start_name, start, n):
    """(array kept alive, relattn_positions) from int64 values [n] or a start."""
    start = to_int(start_name, start)
    if values is None:
        return None, _capi.Positions(None, start)
    if start:
        raise ValueError("%s: give %s or %s, not both" % (name, name, start_name))
    p = np.asarray(values)
    integer = p.dtype.kind == "i" or (p.dtype.kind == "u" and p.dtype.itemsize < 8)
    if not integer or p.shape != (n,):
        raise ValueError("%s: expected %d integer positions, got %s %s"
                         % (name, n, p.dtype, p.shape))
    p = np.ascontiguousarray(p, dtype=np.int64)
    return p, _capi.Positions(p.ctypes.data, 0)
