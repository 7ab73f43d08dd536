"""SAM's mask decoder for a batch of point prompts on one image, without repeating the image per prompt.

``MaskDecoder.predict_masks`` copies the image embedding and its positional encoding once per
prompt (``torch.repeat_interleave``) before the two-way transformer. With point prompts only, the
dense prompt embedding is the same for every prompt (``no_mask_embed``), so everything the first
layer computes from the image side alone — ``keys + key_pe`` and its key/value/query projections —
is the same for every prompt too. Here the transformer gets the image once (batch 1) and the
prompts' tokens (batch B); its attention layers broadcast the image side over the prompts, so the
per-prompt work starts where the image side first meets the tokens.

The outputs are bit for bit those of ``MaskDecoder.forward(..., multimask_output=True)`` on the
CPU: the same operations run on the same values (matmul broadcasting expands the shared side to
the layout the repeated copy had); ``tests/unit/test_sam_decoder.py`` checks it.
"""

from __future__ import annotations

from typing import Any

import torch


def shares_image(decoder: Any, dense: torch.Tensor) -> bool:
    """Whether ``decode_points`` applies: segment-anything's decoder and one dense embedding for all."""
    from segment_anything.modeling.mask_decoder import MaskDecoder
    from segment_anything.modeling.transformer import TwoWayTransformer

    if not isinstance(decoder, MaskDecoder) or not isinstance(decoder.transformer, TwoWayTransformer):
        return False
    # expand()ed: the batch stride is 0 (prompt_encoder's no_mask_embed for point prompts)
    return dense.shape[0] == 1 or dense.stride(0) == 0


def decode_points(
    decoder: Any,
    image_embeddings: torch.Tensor,
    image_pe: torch.Tensor,
    sparse: torch.Tensor,
    dense: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``decoder(image_embeddings, image_pe, sparse, dense, multimask_output=True)`` with the image once.

    Args:
        decoder: a segment-anything ``MaskDecoder`` (``shares_image`` says so).
        image_embeddings: (1, C, h, w) from the image encoder.
        image_pe: (1, C, h, w) dense positional encoding.
        sparse: (B, N, C) prompt tokens.
        dense: (B, C, h, w) dense prompt embedding, the same for every prompt.

    Returns:
        (B, 3, 4h, 4w) low-resolution mask logits and (B, 3) predicted IoUs.
    """
    b = sparse.shape[0]
    output_tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], dim=0)
    tokens = torch.cat((output_tokens.unsqueeze(0).expand(b, -1, -1), sparse), dim=1)
    # The image side once: the transformer's attention broadcasts it over the prompts
    src = image_embeddings + dense[:1]
    _, c, h, w = src.shape
    hs, src = decoder.transformer(src, image_pe, tokens)
    iou_token_out = hs[:, 0, :]
    mask_tokens_out = hs[:, 1 : (1 + decoder.num_mask_tokens), :]
    # Upscale mask embeddings and predict masks using the mask tokens (as predict_masks)
    src = src.transpose(1, 2).view(b, c, h, w)
    upscaled = decoder.output_upscaling(src)
    hyper_in = torch.stack(
        [mlp(mask_tokens_out[:, i, :]) for i, mlp in enumerate(decoder.output_hypernetworks_mlps)], dim=1
    )
    b, c, h, w = upscaled.shape
    masks = (hyper_in @ upscaled.view(b, c, h * w)).view(b, -1, h, w)
    iou_pred = decoder.iou_prediction_head(iou_token_out)
    # multimask_output=True: masks 1..3
    return masks[:, 1:, :, :], iou_pred[:, 1:]
