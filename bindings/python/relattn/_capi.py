"""ctypes mirror of include/relattn/relattn.h and the loaded librelattn.so.

The structures below copy the header's field order and types; tests/test_layout.py checks every
offset against the C compiler's. Functions called through ctypes.CDLL release the GIL.
"""
import ctypes
import ctypes.util
import glob
import os

F32, F16, I8, Q4, BF16 = 0, 1, 2, 3, 4  # relattn_dtype
BIAS_KINDS = {"none": 0, "alibi": 1, "t5": 2, "shaw": 3, "shaw_vector": 4}  # relattn_bias_kind
ROPE_PAIRINGS = {"none": 0, "interleaved": 1, "halves": 2}  # relattn_rope_pairing
ROPE_SCALINGS = {"none": 0, "linear": 1, "ntk": 2, "llama3": 3, "yarn": 4, "longrope": 5,
                 "inv_freq": 6}  # relattn_rope_scaling_type
WORKSPACE_ALIGNMENT = 64
WORKSPACE_TOO_SMALL = 11  # RELATTN_ERR_WORKSPACE_TOO_SMALL
KV_CACHE_ALIGNMENT = 64
MAX_HEADS = 4096

c_int64, c_int32, c_int, c_float, c_void_p = (
    ctypes.c_int64, ctypes.c_int32, ctypes.c_int, ctypes.c_float, ctypes.c_void_p)


class Tensor(ctypes.Structure):
    _fields_ = [("data", c_void_p), ("dtype", c_int), ("token_stride", c_int64),
                ("head_stride", c_int64), ("row_scales", c_void_p),
                ("scale_token_stride", c_int64), ("scale_head_stride", c_int64)]


class Output(ctypes.Structure):
    _fields_ = [("data", c_void_p), ("dtype", c_int), ("token_stride", c_int64),
                ("head_stride", c_int64)]


class Positions(ctypes.Structure):
    _fields_ = [("positions", c_void_p), ("start", c_int64)]


class Alibi(ctypes.Structure):
    _fields_ = [("slopes", c_void_p), ("max_bias", c_float), ("causal", c_int)]


class T5(ctypes.Structure):
    _fields_ = [("table", c_void_p), ("table_dtype", c_int), ("table_scales", c_void_p),
                ("num_buckets", c_int32), ("max_distance", c_int32), ("bidirectional", c_int)]


class Shaw(ctypes.Structure):
    _fields_ = [("table", c_void_p), ("k", c_int32)]


class ShawVector(ctypes.Structure):
    _fields_ = [("table", c_void_p), ("k", c_int32), ("per_head", c_int)]


class Bias(ctypes.Structure):
    _fields_ = [("kind", c_int), ("alibi", Alibi), ("t5", T5), ("shaw", Shaw),
                ("shaw_vector", ShawVector)]


class RopeScaling(ctypes.Structure):
    _fields_ = [("type", c_int), ("factor", c_float), ("low_freq_factor", c_float),
                ("high_freq_factor", c_float), ("beta_fast", c_float), ("beta_slow", c_float),
                ("no_truncate", c_int), ("attention_factor", c_float),
                ("original_max_position", c_int64), ("max_position", c_int64),
                ("sequence_length", c_int64), ("short_factor", c_void_p),
                ("long_factor", c_void_p), ("inv_freq", c_void_p)]


class Rope(ctypes.Structure):
    _fields_ = [("pairing", c_int), ("rotary_dims", c_int32), ("base", c_float),
                ("linear_scale", c_float), ("scaling", RopeScaling)]


class Mask(ctypes.Structure):
    _fields_ = [("causal", c_int), ("window", c_int64), ("n_valid_kv", c_int64),
                ("first_valid_kv", c_int64), ("q_segments", c_void_p), ("k_segments", c_void_p),
                ("allowed", c_void_p), ("allowed_row_words", c_int64),
                ("allowed_key_offset", c_int64)]


class AttentionDesc(ctypes.Structure):
    _fields_ = [("n_q", c_int64), ("n_kv", c_int64), ("n_heads", c_int32),
                ("n_kv_heads", c_int32), ("head_dim", c_int32), ("v_head_dim", c_int32),
                ("q", Tensor), ("k", Tensor), ("v", Tensor), ("o", Output),
                ("q_pos", Positions), ("k_pos", Positions), ("scale", c_float),
                ("bias", Bias), ("rope", Rope), ("mask", Mask), ("kv_cache", c_void_p),
                ("softcap", c_float), ("sinks", c_void_p), ("lse", c_void_p),
                ("precision", c_int32)]


class MergeDesc(ctypes.Structure):
    _fields_ = [("n_q", c_int64), ("n_heads", c_int32), ("v_head_dim", c_int32),
                ("a", Tensor), ("b", Tensor), ("lse_a", c_void_p), ("lse_b", c_void_p),
                ("sinks", c_void_p), ("o", Output), ("lse", c_void_p)]


class KvCacheDesc(ctypes.Structure):
    _fields_ = [("n_kv_heads", c_int32), ("head_dim", c_int32), ("v_head_dim", c_int32),
                ("capacity", c_int64), ("k_dtype", c_int), ("v_dtype", c_int), ("ring", c_int),
                ("rope", Rope), ("n_sink_tokens", c_int64), ("sink_positions", c_int)]


class Threads(ctypes.Structure):
    _fields_ = [("parallel_for", c_void_p), ("context", c_void_p), ("n_threads", c_int32)]


class Error(ValueError):
    """A relattn call failed; .status is the relattn_status code (relattn.h: 8 a bias
    parameter, 13 unsupported, 15 a full KV cache, 17 a NaN or infinity to quantise, ...),
    str() the library's text of it and its message naming the argument."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def _candidates():
    env = os.environ.get("RELATTN_LIBRARY")
    if env:
        return [env]
    here = os.path.dirname(os.path.abspath(__file__))
    found = sorted(glob.glob(os.path.join(here, "librelattn.so*")))
    system = ctypes.util.find_library("relattn")
    return found + ([system] if system else [])


def _load():
    paths = _candidates()
    if paths:
        return ctypes.CDLL(paths[0])
    raise OSError("relattn: librelattn.so not found ($RELATTN_LIBRARY unset, none in %s, none "
                  "found by ctypes.util.find_library): set RELATTN_LIBRARY to its path (a build "
                  "has it at <build>/librelattn.so), or install the package with the library "
                  "inside it: pip install --no-index --no-build-isolation "
                  "<relattn>/bindings/python, in a venv (bindings/README.md)"
                  % os.path.dirname(os.path.abspath(__file__)))


lib = _load()
P = ctypes.POINTER
_prototypes = {
    "relattn_version_string": (ctypes.c_char_p, []),
    "relattn_active_target": (ctypes.c_char_p, []),
    "relattn_status_string": (ctypes.c_char_p, [c_int]),
    "relattn_last_error": (ctypes.c_char_p, []),
    "relattn_attention_desc_init": (None, [P(AttentionDesc)]),
    "relattn_attention_workspace_size":
        (c_int, [P(AttentionDesc), c_int32, P(ctypes.c_size_t)]),
    "relattn_attention": (c_int, [P(AttentionDesc), c_void_p, ctypes.c_size_t, P(Threads)]),
    "relattn_threads_from_pthreadpool": (c_int, [c_void_p, P(Threads)]),
    "relattn_merge": (c_int, [P(MergeDesc)]),
    "relattn_alibi_slopes": (c_int, [c_int32, c_float, c_void_p]),
    "relattn_t5_bucket": (c_int, [c_int64, c_int32, c_int32, c_int, P(c_int32)]),
    "relattn_quantize_table_i8": (c_int, [c_void_p, c_int32, c_int32, c_void_p, c_void_p]),
    "relattn_quantize_i8":
        (c_int, [P(Tensor), c_int64, c_int32, c_int32, c_void_p, c_void_p, P(Tensor)]),
    "relattn_kv_cache_size": (c_int, [P(KvCacheDesc), P(ctypes.c_size_t)]),
    "relattn_kv_cache_init":
        (c_int, [P(KvCacheDesc), c_void_p, ctypes.c_size_t, P(c_void_p)]),
    "relattn_kv_cache_append": (c_int, [c_void_p, c_int64, P(Tensor), P(Tensor), P(Positions)]),
    "relattn_kv_cache_length": (c_int64, [c_void_p]),
    "relattn_kv_cache_next_position": (c_int64, [c_void_p]),
    "relattn_kv_cache_clear": (None, [c_void_p]),
    "relattn_kv_cache_truncate": (c_int, [c_void_p, c_int64]),
    "relattn_kv_cache_attach": (c_int, [c_void_p, ctypes.c_size_t, P(c_void_p)]),
    "relattn_kv_cache_get_desc": (c_int, [c_void_p, P(KvCacheDesc)]),
    # pthreadpool, which librelattn.so links: found through the same handle.
    "pthreadpool_create": (c_void_p, [ctypes.c_size_t]),
    "pthreadpool_destroy": (None, [c_void_p]),
}
for _name, (_restype, _argtypes) in _prototypes.items():
    getattr(lib, _name).restype = _restype
    getattr(lib, _name).argtypes = _argtypes


def check(status):
    """Raises Error for a failed call; the message is read on the thread that made the call."""
    if status != 0:
        raise Error(status, "%s: %s" % (lib.relattn_status_string(status).decode(),
                                         lib.relattn_last_error().decode()))
