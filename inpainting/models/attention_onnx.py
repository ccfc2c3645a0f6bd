"""ONNX Script for the query-chunked attention op (``inpainting::chunked_attention``), used by inpainting.export.

opset 18 has no attention operator, and ONNX Runtime's CPU attention kernels build the whole ``queries x keys``
score matrix, which for a 2048x1536 photo's crop is 7 GB per head. This translation is an ONNX ``Loop`` over
blocks of query rows: each iteration computes ``softmax(q_i k^T / sqrt(d) + bias) v`` for
``rows = max(1, budget // (B * heads * keys))`` rows, so one score block holds at most ``budget`` elements whatever
the input size, and the blocks are concatenated along the query axis. Exactly the math of SDPA, row block by row
block. Kept apart from attention.py because onnxscript is slow to import and only export needs it (and its
converter reads the type annotations below, so this module must not use postponed annotations).
"""

from typing import Any

import torch
from onnxscript import FLOAT, script
from onnxscript import opset18 as op


@script(opset=op)
def chunked_attention(q: FLOAT, k: FLOAT, v: FLOAT, bias: FLOAT, budget: int) -> FLOAT:
    """q: (B, heads, N, d); k, v: (B, heads, M, d); bias: (B, 1, 1, M), 0 or -inf per key."""
    one = op.Constant(value_ints=[1])
    axis = op.Constant(value_ints=[2])
    d = op.Cast(op.Shape(q, start=3, end=4), to=1)
    k_t = op.Mul(op.Transpose(k, perm=[0, 1, 3, 2]), op.Reciprocal(op.Sqrt(d)))  # (B, heads, d, M) / sqrt(d)
    batch_heads = op.Mul(op.Shape(q, start=0, end=1), op.Shape(q, start=1, end=2))
    scores_per_row = op.Mul(batch_heads, op.Shape(k, start=2, end=3))
    rows = op.Max(op.Div(op.Reshape(op.Constant(value_int=budget), one), scores_per_row), one)
    n = op.Shape(q, start=2, end=3)
    trips = op.Squeeze(op.Div(op.Sub(op.Add(n, rows), one), rows))
    out = op.Slice(q, op.Constant(value_ints=[0]), op.Constant(value_ints=[0]), axis)  # (B, heads, 0, d)
    for i in range(trips):
        start = op.Mul(op.Reshape(i, one), rows)
        q_i = op.Slice(q, start, op.Add(start, rows), axis)
        p = op.Softmax(op.Add(op.MatMul(q_i, k_t), bias), axis=-1)
        out = op.Concat(out, op.MatMul(p, v), axis=2)
    return out


def onnx_translations() -> dict[Any, Any]:
    """``custom_translation_table`` for ``torch.onnx.export(dynamo=True)``."""
    import inpainting.models.attention  # noqa: F401  (registers the custom op)

    return {torch.ops.inpainting.chunked_attention.default: chunked_attention}
