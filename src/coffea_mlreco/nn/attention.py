"""Multi-head attention written with shape-agnostic operations, shared by the Perceiver MET and SPANet.

``nn.MultiheadAttention`` traced for ONNX freezes the batch and sequence lengths of the example; `attend`
computes the same function from the same parameters with operations that export with dynamic axes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["attend"]


def attend(
    mha: nn.MultiheadAttention, query: torch.Tensor, keys: torch.Tensor, key_padding_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """``mha(query, keys, keys)`` written with shape-agnostic ops (same parameters, same result).

    ``nn.MultiheadAttention`` traced for ONNX freezes the batch and sequence lengths of the example; this
    form exports with dynamic axes. query [B, Q, D], keys [B, K, D], key_padding_mask [B, K] (True = pad).
    """
    dim, heads = mha.embed_dim, mha.num_heads
    w, b = mha.in_proj_weight, mha.in_proj_bias
    q = F.linear(query, w[:dim], b[:dim])
    k = F.linear(keys, w[dim : 2 * dim], b[dim : 2 * dim])
    v = F.linear(keys, w[2 * dim :], b[2 * dim :])

    def split(x: torch.Tensor) -> torch.Tensor:  # [B, L, D] → [B, H, L, D/H]
        return x.reshape(x.shape[0], x.shape[1], heads, dim // heads).transpose(1, 2)

    mask = None if key_padding_mask is None else ~key_padding_mask[:, None, None, :]
    out = F.scaled_dot_product_attention(split(q), split(k), split(v), attn_mask=mask)
    out = out.transpose(1, 2)
    return mha.out_proj(out.reshape(out.shape[0], out.shape[1], dim))
