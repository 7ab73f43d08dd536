"""SAM's two-way transformer with the image-row projections folded into the token side (not bit-exact).

Opt-in (``sam.decoder_arithmetic: factored``); ``decoder.decode_tokens`` stays bit for bit the
reference by default. Same weights, same function, other order of the products, so the last bits
differ (``tests/unit/test_sam_factored.py`` bounds it).

Notation for one attention layer (``transformer.Attention``): C = 256 channels, d = 128 internal
(downsample 2), H = 8 heads of c = 16, s = 1/√c, T = 7 tokens (5 output tokens + point + padding),
N = h·w = 4096 image rows. W_q, W_k, W_v are d×C, W_o is C×d, b_* their biases; ``_h`` the rows
(columns for W_o) of head h. Per prompt, after the first layer the image side X (N×C) differs for
every prompt, and the reference projects its N rows through d×C matrices:

- **token → image** (q: T tokens; k = X + pe, v = X). Scores_h = s·(Q_h)(k W_k,hᵀ + b_k,h)ᵀ
  = (s·Q_h W_k,h)·kᵀ + s·Q_h b_k,hᵀ. The last term is the same for every image row of a token
  row, and softmax over the image rows ignores a constant: dropped, exactly. With G = s·Q_h W_k,h
  (T×C per head, H·T = 56 rows), scores = G·kᵀ: H·T·N·C = 58.7 M MAC instead of k_proj N·C·d
  = 134.2 M + T·N·d = 3.7 M. Values: A_h (v W_v,hᵀ + b_v,h) = (A_h v) W_v,hᵀ + b_v,h (each row
  of A_h sums to 1): A·v is H·T·N·C = 58.7 M instead of v_proj 134.2 M + 3.7 M.
- **image → token** (q = X + pe: N rows; k = tokens + pe, v = tokens). Scores_h
  = s·(q W_q,hᵀ + b_q,h) K_hᵀ = q·(s·W_q,hᵀ K_hᵀ) + s·b_q,h K_hᵀ: one N×C by C×(H·T) product
  (58.7 M) plus a 1×T bias per head (softmax runs over the T tokens: it stays). Output
  Σ_h A_h (V_h W_o,hᵀ) + b_o: one N×(H·T) by (H·T)×C product (58.7 M) instead of q_proj 134.2 M
  + 2·3.7 M + out_proj 134.2 M.

Per prompt (vit_b decoder, 64×64 embedding), in MAC:

==========================  ==========  ==========
stage                          exact      factored
==========================  ==========  ==========
layer 0 token → image          7.3 M       7.3 M   (image side shared: the reference's own)
layer 0 image → token        141.6 M      62.4 M   (shared q_proj, per-prompt A·(V W_o))
layer 1 token → image        275.8 M     117.4 M
layer 1 image → token        275.8 M     117.4 M
final token → image          275.8 M     117.4 M
total                        976.2 M     422.1 M   (2.3× fewer; token-only work < 1 M)
==========================  ==========  ==========

Beside the MACs, no N×d projection (q, k, v, out) is materialised per prompt; the N×(H·T)
scores remain, and the N×C residual, LayerNorm and ``keys + pe`` stay as they were.
"""

from __future__ import annotations

from typing import Any

import torch


def _heads(weight: torch.Tensor, num_heads: int) -> torch.Tensor:
    """A d×C projection weight as (H, c, C): the rows of each head."""
    return weight.reshape(num_heads, -1, weight.shape[-1])


def token_to_image(attn: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``attn(q=q, k=k, v=v)`` for tokens q (B, T, C) over per-prompt image rows k, v (B, N, C).

    The image rows are never projected: the key projection goes into the queries (``G``), the
    value projection after the attention-weighted sum (see the module docstring).
    """
    b, t, _ = q.shape
    heads = attn.num_heads
    qh = attn.q_proj(q).reshape(b, t, heads, -1).transpose(1, 2)  # B, H, T, c
    scale = qh.shape[-1] ** -0.5
    # G_h = s·Q_h W_k,h; the bias term s·Q_h b_k,h is constant along the softmax: dropped
    g = torch.einsum("bhtc,hcx->bhtx", qh * scale, _heads(attn.k_proj.weight, heads))
    scores = g.reshape(b, heads * t, -1) @ k.transpose(1, 2)  # B, H·T, N
    weights = torch.softmax(scores, dim=-1)
    summed = (weights @ v).reshape(b, heads, t, -1)  # B, H, T, C: A_h·v
    out = torch.einsum("bhtx,hcx->bhtc", summed, _heads(attn.v_proj.weight, heads))
    out = out + attn.v_proj.bias.reshape(heads, 1, -1)  # rows of A sum to 1
    return attn.out_proj(out.transpose(1, 2).reshape(b, t, -1))


def image_to_token(attn: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``attn(q=q, k=k, v=v)`` for image rows q (1 or B, N, C) over tokens k, v (B, T, C).

    With one image side for all prompts (the first layer) its query projection is computed once;
    per prompt, it is folded into the tokens' keys. The value and output projections always are.
    """
    b, t, _ = k.shape
    n = q.shape[1]
    heads = attn.num_heads
    kh = attn.k_proj(k).reshape(b, t, heads, -1).transpose(1, 2)  # B, H, T, c
    vh = attn.v_proj(v).reshape(b, t, heads, -1).transpose(1, 2)
    scale = kh.shape[-1] ** -0.5
    if q.shape[0] == 1 and b > 1:
        # Shared image rows: project them once, as the reference does (B, H, N, T)
        qh = attn.q_proj(q).reshape(1, n, heads, -1).transpose(1, 2)
        scores = (qh @ kh.transpose(2, 3) * scale).permute(0, 2, 1, 3)  # B, N, H, T
    else:
        # M = s·W_q,hᵀ K_hᵀ (C, H·T) and the query bias's term s·b_q,h K_hᵀ (H, T)
        m = torch.einsum("hcx,bhtc->bxht", _heads(attn.q_proj.weight, heads), kh * scale)
        bias = torch.einsum("hc,bhtc->bht", attn.q_proj.bias.reshape(heads, -1), kh * scale)
        scores = torch.baddbmm(bias.reshape(b, 1, heads * t), q, m.reshape(b, -1, heads * t))
        scores = scores.view(b, n, heads, t)
    weights = torch.softmax(scores, dim=-1).reshape(b, n, heads * t)
    # V_h W_o,hᵀ per head, stacked: (B, H·T, C)
    wo = attn.out_proj.weight.reshape(-1, heads, vh.shape[-1])  # C, H, c
    values = torch.einsum("bhtc,xhc->bhtx", vh, wo).reshape(b, heads * t, -1)
    return torch.baddbmm(attn.out_proj.bias, weights, values)


def attention_block(
    block: Any, queries: torch.Tensor, keys: torch.Tensor, query_pe: torch.Tensor, key_pe: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One ``TwoWayAttentionBlock`` (self-attention, token → image, MLP, image → token), factored."""
    # Self attention of the tokens (token-only: the module itself)
    if block.skip_first_layer_pe:
        queries = block.self_attn(q=queries, k=queries, v=queries)
    else:
        q = queries + query_pe
        queries = queries + block.self_attn(q=q, k=q, v=queries)
    queries = block.norm1(queries)
    # Tokens attending to the image
    k = keys + key_pe
    q = queries + query_pe
    if keys.shape[0] == 1:
        # Image side shared by every prompt: its projections once, the module's own arithmetic
        attn_out = block.cross_attn_token_to_image(q=q, k=k, v=keys)
    else:
        attn_out = token_to_image(block.cross_attn_token_to_image, q, k, keys)
    queries = block.norm2(queries + attn_out)
    # MLP on the tokens
    queries = block.norm3(queries + block.mlp(queries))
    # The image attending to the tokens
    q = queries + query_pe
    keys = block.norm4(keys + image_to_token(block.cross_attn_image_to_token, k, q, queries))
    return queries, keys


def factored_transformer(
    transformer: Any, image_embedding: torch.Tensor, image_pe: torch.Tensor, point_embedding: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``TwoWayTransformer.forward`` with the image once (batch 1) and the factored attention.

    Args:
        transformer: a segment-anything ``TwoWayTransformer``.
        image_embedding: (1, C, h, w) image embedding plus the dense prompt embedding.
        image_pe: (1, C, h, w) positional encoding.
        point_embedding: (B, T, C) output and prompt tokens.

    Returns:
        The tokens (B, T, C) and the image side (B, h·w, C), as the reference's transformer.
    """
    keys = image_embedding.flatten(2).permute(0, 2, 1)
    key_pe = image_pe.flatten(2).permute(0, 2, 1)
    queries = point_embedding
    for layer in transformer.layers:
        queries, keys = attention_block(layer, queries, keys, point_embedding, key_pe)
    if keys.shape[0] == 1:  # no layer: keep the shapes the reference returns
        keys = keys.expand(len(queries), -1, -1)
    # Final attention of the tokens to the image
    q = queries + point_embedding
    k = keys + key_pe
    attn_out = token_to_image(transformer.final_attn_token_to_image, q, k, keys)
    return transformer.norm_final_attn(queries + attn_out), keys
