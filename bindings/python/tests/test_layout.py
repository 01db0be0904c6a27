"""The ctypes structures in relattn/_capi.py against the C compiler's layout of relattn.h."""
import ctypes
import os
import subprocess

import pytest

from relattn import _capi

MIRRORS = {
    "relattn_tensor": _capi.Tensor, "relattn_output": _capi.Output,
    "relattn_positions": _capi.Positions, "relattn_alibi": _capi.Alibi, "relattn_t5": _capi.T5,
    "relattn_shaw": _capi.Shaw, "relattn_bias": _capi.Bias, "relattn_mask": _capi.Mask,
    "relattn_rope": _capi.Rope, "relattn_rope_scaling": _capi.RopeScaling, "relattn_shaw_vector": _capi.ShawVector,
    "relattn_attention_desc": _capi.AttentionDesc, "relattn_threads": _capi.Threads,
    "relattn_kv_cache_desc": _capi.KvCacheDesc, "relattn_merge_desc": _capi.MergeDesc,
}


@pytest.mark.skipif("RELATTN_LAYOUT" not in os.environ, reason="needs the c_layout program")
def test_layout_matches_header():
    lines = subprocess.run([os.environ["RELATTN_LAYOUT"]], check=True, capture_output=True,
                           text=True).stdout.split("\n")
    checked = set()
    for struct, field, value in (line.split() for line in lines if line):
        mirror = MIRRORS[struct]
        got = ctypes.sizeof(mirror) if field == "sizeof" else getattr(mirror, field).offset
        assert got == int(value), "%s.%s: ctypes %d, C %s" % (struct, field, got, value)
        checked.add((struct, field))
    for struct, mirror in MIRRORS.items():  # every mirrored field was printed by the C side
        for name, _ in mirror._fields_:
            assert (struct, name) in checked, "%s.%s is not in c_layout.c" % (struct, name)

