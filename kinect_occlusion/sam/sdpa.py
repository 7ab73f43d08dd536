"""SAM attention through ``torch.nn.functional.scaled_dot_product_attention`` (SDPA).

``segment-anything`` computes attention by hand (``softmax(q·kᵀ·scale + rel-pos) · v``), materialising
every attention map: for vit_b's global blocks that is 12 heads × 4096² floats per image, and the
mask decoder does the same for every point prompt. ``enable_sdpa`` swaps the forward of each
attention module of a loaded SAM for one that hands the same arithmetic to SDPA (the image encoder's
decomposed relative-position term goes in as an additive ``attn_mask``), so PyTorch can pick a fused
kernel (FlashAttention / memory-efficient attention on CUDA). The weights and the module tree stay
as they are, so checkpoints load before or after; outputs equal the reference up to float rounding
(tested against the unpatched modules).
"""

from __future__ import annotations

import math
import types
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def _encoder_forward(self: Any, x: torch.Tensor) -> torch.Tensor:
    """``image_encoder.Attention.forward`` with SDPA; rel-pos bias as an additive mask."""
    from segment_anything.modeling.image_encoder import get_rel_pos

    b, h, w, _ = x.shape
    heads = self.num_heads
    qkv = self.qkv(x).reshape(b, h * w, 3, heads, -1).permute(2, 0, 3, 1, 4)  # 3, B, heads, HW, C
    q, k, v = qkv.unbind(0)
    bias = None
    if self.use_rel_pos:
        # Same terms as add_decomposed_rel_pos: einsum of the unscaled query with the rel-pos tables
        r_q = q.reshape(b, heads, h, w, -1)
        rel_h = torch.einsum("bnhwc,hkc->bnhwk", r_q, get_rel_pos(h, h, self.rel_pos_h).to(q.dtype))
        rel_w = torch.einsum("bnhwc,wkc->bnhwk", r_q, get_rel_pos(w, w, self.rel_pos_w).to(q.dtype))
        bias = (rel_h[..., :, None] + rel_w[..., None, :]).reshape(b, heads, h * w, h * w)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale)
    out = out.permute(0, 2, 1, 3).reshape(b, h, w, -1)
    return self.proj(out)


def _decoder_forward(self: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``transformer.Attention.forward`` (two-way transformer of the mask decoder) with SDPA."""
    q = self._separate_heads(self.q_proj(q), self.num_heads)
    k = self._separate_heads(self.k_proj(k), self.num_heads)
    v = self._separate_heads(self.v_proj(v), self.num_heads)
    out = F.scaled_dot_product_attention(q, k, v, scale=1.0 / math.sqrt(q.shape[-1]))
    return self.out_proj(self._recombine_heads(out))


def enable_sdpa(sam: nn.Module) -> int:
    """Route every attention module of ``sam`` through SDPA, in place; returns how many were patched.

    Idempotent: modules already patched are counted again but not wrapped twice.
    """
    from segment_anything.modeling.image_encoder import Attention as EncoderAttention
    from segment_anything.modeling.transformer import Attention as DecoderAttention

    patched = 0
    for module in sam.modules():
        if isinstance(module, EncoderAttention):
            module.forward = types.MethodType(_encoder_forward, module)  # type: ignore[method-assign]
        elif isinstance(module, DecoderAttention):
            module.forward = types.MethodType(_decoder_forward, module)  # type: ignore[method-assign]
        else:
            continue
        patched += 1
    return patched
