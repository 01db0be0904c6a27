"""sdpa(): torch.nn.functional.scaled_dot_product_attention's arguments and [B][H][N][D] layout,
over attention()."""
import numpy as np

from . import _arrays as arrays
from ._api import _allowed_bits, attention

# attention()'s keywords that sdpa sets itself, and the sdpa argument that gives each.
SET_BY_SDPA = {"causal": "is_causal", "allowed": "attn_mask", "allowed_key_offset": "attn_mask",
               "layout": "its [B][H][N][D] layout", "out": "its own output array"}

DENSE_BIAS = ("relattn has no dense bias input: its biases come from the positions (scheme="
              "'alibi', 't5', 'shaw' or 'shaw_vector' with slopes= / table=, passed through)")


def _batched(name, x):
    """x ([B][H][N][D], or [H][N][D] without batch) as a [B][H][N][D] array over the same
    memory, and whether it had a batch axis."""
    a = arrays.as_array(name, x)
    if a.ndim not in (3, 4) or 0 in a.shape:
        raise ValueError("%s: expected [B][H][N][D] or [H][N][D] with every dimension >= 1, got "
                         "shape %s" % (name, a.shape))
    return (a, True) if a.ndim == 4 else (a[None], False)


def _batch_masks(attn_mask, batch, n_q, n_kv):
    """attn_mask as attention's `allowed` for each batch element (None: no mask). It must be a
    bool array (True: the query takes part in attention with the key) broadcastable to
    [batch][1][n_q][n_kv]: one mask for every head, as the library's is. Each distinct batch
    slice is packed once."""
    if attn_mask is None:
        return [None] * batch
    m = arrays.as_array("attn_mask", attn_mask)
    if m.dtype != np.bool_:
        raise TypeError("attn_mask: dtype %s: only a bool mask (True: attend) is supported; an "
                        "additive float mask is not, as %s" % (m.dtype, DENSE_BIAS))
    if m.ndim > 4:
        raise ValueError("attn_mask: shape %s: at most 4 dimensions ([B][H][N][M])" % (m.shape,))
    m = m.reshape((1,) * (4 - m.ndim) + m.shape)
    if m.shape[1] != 1:
        raise ValueError("attn_mask: shape %s: one mask must serve every head (head axis 1): the "
                         "library's mask is shared by the heads" % (m.shape,))
    if m.shape[0] not in (1, batch) or m.shape[2] not in (1, n_q) or m.shape[3] not in (1, n_kv):
        raise ValueError("attn_mask: shape %s does not broadcast to [%d][1][%d][%d]"
                         % (m.shape, batch, n_q, n_kv))
    packed = [_allowed_bits(np.broadcast_to(m[b, 0], (n_q, n_kv)), n_q, n_kv)[0]
              for b in range(m.shape[0])]
    return packed * batch if len(packed) == 1 else packed


def _out_dtype(out_dtype, q):
    """The output's dtype: out_dtype when given, else q's (float32 for one to be cast)."""
    if out_dtype is None:
        return q.dtype if q.dtype in arrays.TENSOR_DTYPES else np.dtype(np.float32)
    if np.dtype(out_dtype) not in arrays.TENSOR_DTYPES:
        raise TypeError("out_dtype: %s is not supported: use float32 or float16"
                        % np.dtype(out_dtype))
    return np.dtype(out_dtype)


def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
         enable_gqa=False, *, attn_bias=None, cast=False, **options):
    """torch.nn.functional.scaled_dot_product_attention's call, in numpy: query [B][H][N][D],
    key [B][H_kv][M][D], value [B][H_kv][M][D_v] (or all three without the batch axis: [H][N][D]),
    float32 or float16 numpy arrays or objects with __array_interface__ / __dlpack__ (torch CPU
    tensors), read in place. Returns a new C-order [B][H][N][D_v] array ([H][N][D_v] without
    batch) of query's dtype (float32 for a query cast=True converted); out_dtype= chooses.

    attn_mask: None, or a bool array (True: attend) broadcastable to [B][1][N][M]: one mask for
    every head (a per-head mask raises ValueError), as the library's `allowed` mask. A float
    (additive) mask raises TypeError, and so does any attn_bias but None: the library has no
    dense bias input. Relative-position biases are relattn's keywords instead, passed through
    to relattn.attention with the others (scheme="alibi", slopes=, table=, rope=, softcap=,
    sinks=, q_start=, k_start=, threads=, return_lse=, ...): sdpa(q, k, v, is_causal=True,
    scheme="alibi"). return_lse=True returns (o, lse), lse float32 [B][H][N].

    is_causal: query i sees the keys j <= i (torch's top-left alignment when N != M; pass
    q_start=M - N to align the last query with the last key). It combines with attn_mask
    (torch raises for both). A query that sees no key gets zeros (torch: NaN).
    dropout_p: only 0. scale: None is 1/sqrt(D). enable_gqa: needed, as torch needs it, when
    key and value have fewer heads than query (H a multiple of H_kv; query head h reads KV head
    h // (H / H_kv)). cast=True converts float64 inputs to float32 (a copy); without it they
    raise TypeError.
    """
    for name, instead in SET_BY_SDPA.items():
        if name in options:
            raise TypeError("%s: not an sdpa argument (sdpa sets it from %s)" % (name, instead))
    if attn_bias is not None:
        raise TypeError("attn_bias: only None is supported: %s; a bool mask goes in attn_mask"
                        % DENSE_BIAS)
    if dropout_p != 0:
        raise ValueError("dropout_p: %r: only 0 is supported (no dropout)" % (dropout_p,))
    (q, batched), (k, k_batched), (v, v_batched) = (
        _batched(name, x) for name, x in (("query", query), ("key", key), ("value", value)))
    if not batched == k_batched == v_batched:
        raise ValueError("query, key, value: %d, %d, %d dimensions: all with a batch axis (4) "
                         "or none (3)" % tuple(3 + b for b in (batched, k_batched, v_batched)))
    if not q.shape[0] == k.shape[0] == v.shape[0]:
        raise ValueError("key, value: batch %d, %d: must be query's %d"
                         % (k.shape[0], v.shape[0], q.shape[0]))
    if k.shape[1] != q.shape[1] and not enable_gqa:
        raise ValueError("key: %d heads, query %d: pass enable_gqa=True for grouped-query "
                         "attention (as torch requires)" % (k.shape[1], q.shape[1]))
    batch, heads, n_q, _ = q.shape
    masks = _batch_masks(attn_mask, batch, n_q, k.shape[2])
    out = np.empty((batch, heads, n_q, v.shape[3]), _out_dtype(options.pop("out_dtype", None), q))
    return_lse = options.get("return_lse", False)
    lse = np.empty((batch, heads, n_q), np.float32) if return_lse else None
    for b in range(batch):
        result = attention(q[b], k[b], v[b], causal=is_causal, scale=scale, allowed=masks[b],
                           layout="heads_tokens_dim", out=out[b], cast=cast, **options)
        if return_lse:
            lse[b] = result[1]
    if not batched:
        out, lse = out[0], None if lse is None else lse[0]
    return (out, lse) if return_lse else out
