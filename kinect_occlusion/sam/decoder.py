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

``decode_tokens`` stops after the transformer and the IoU head; ``decode_masks`` then upscales only
the prompts asked for. The automatic mask generator's predicted-IoU filter needs the IoUs alone, so
a prompt none of whose three masks passes it never pays for the upscaling (two transposed
convolutions to 256², about a quarter of the decoder's arithmetic and most of its memory traffic).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


def shares_image(decoder: Any, dense: torch.Tensor) -> bool:
    """Whether ``decode_tokens`` applies: segment-anything's decoder and one dense embedding for all."""
    from segment_anything.modeling.mask_decoder import MaskDecoder
    from segment_anything.modeling.transformer import TwoWayTransformer

    if not isinstance(decoder, MaskDecoder) or not isinstance(decoder.transformer, TwoWayTransformer):
        return False
    # expand()ed: the batch stride is 0 (prompt_encoder's no_mask_embed for point prompts)
    return dense.shape[0] == 1 or dense.stride(0) == 0


@dataclass
class DecodedTokens:
    """The two-way transformer's outputs for B point prompts, before any mask is upscaled."""

    mask_tokens: torch.Tensor  # (B, num_mask_tokens, C) mask tokens after the transformer
    src: torch.Tensor  # (B, h·w, C) the image side after the transformer, per prompt
    iou_preds: torch.Tensor  # (B, 3) predicted IoUs of the three multimask outputs
    hw: tuple[int, int]  # the embedding's (h, w)


def decode_tokens(
    decoder: Any,
    image_embeddings: torch.Tensor,
    image_pe: torch.Tensor,
    sparse: torch.Tensor,
    dense: torch.Tensor,
    arithmetic: str = "exact",
) -> DecodedTokens:
    """The transformer and IoU head of ``decoder`` for B point prompts, the image embedding once.

    Args:
        decoder: a segment-anything ``MaskDecoder`` (``shares_image`` says so).
        image_embeddings: (1, C, h, w) from the image encoder.
        image_pe: (1, C, h, w) dense positional encoding.
        sparse: (B, N, C) prompt tokens.
        dense: (B, C, h, w) dense prompt embedding, the same for every prompt.
        arithmetic: ``exact`` (bit for bit the reference) or ``factored`` (``sam/factored.py``:
            about 2.3× fewer transformer MACs per prompt, the last bits differ).
    """
    b = sparse.shape[0]
    output_tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], dim=0)
    tokens = torch.cat((output_tokens.unsqueeze(0).expand(b, -1, -1), sparse), dim=1)
    # The image side once: the transformer's attention broadcasts it over the prompts
    src = image_embeddings + dense[:1]
    h, w = src.shape[-2:]
    if arithmetic == "factored":
        from .factored import factored_transformer

        hs, src = factored_transformer(decoder.transformer, src, image_pe, tokens)
    else:
        hs, src = decoder.transformer(src, image_pe, tokens)
    iou_pred = decoder.iou_prediction_head(hs[:, 0, :])
    mask_tokens_out = hs[:, 1 : (1 + decoder.num_mask_tokens), :]
    # multimask_output=True: outputs 1..3
    return DecodedTokens(mask_tokens_out, src, iou_pred[:, 1:], (h, w))


def decode_masks(decoder: Any, decoded: DecodedTokens, prompts: torch.Tensor | None = None) -> torch.Tensor:
    """(P, 3, 4h, 4w) low-resolution logits of the prompts ``prompts`` (indices; None: all B).

    The upscaling and the hypernetwork product work prompt by prompt, so the rows of a subset are
    those of the whole batch, bit for bit on the CPU (tested for subsets of every size); the MLPs
    run on all B prompts (they are tiny) so that their GEMMs see the whole batch's shapes, as in
    ``predict_masks``.
    """
    hyper_in = torch.stack(
        [mlp(decoded.mask_tokens[:, i, :]) for i, mlp in enumerate(decoder.output_hypernetworks_mlps)], dim=1
    )
    src, n = decoded.src, len(decoded.src)
    if prompts is not None:
        n = len(prompts)
        # One prompt alone would change the last bits: LayerNorm2d's channel mean reduces a
        # (1, C, h, w) tensor in another order than (B ≥ 2, C, h, w); two copies keep the order
        rows = prompts.repeat(2) if n == 1 else prompts
        hyper_in, src = hyper_in[rows], src[rows]
    h, w = decoded.hw
    # Upscale mask embeddings and predict masks using the mask tokens (as predict_masks)
    upscaled = decoder.output_upscaling(src.transpose(1, 2).reshape(src.shape[0], -1, h, w))
    p, c, uh, uw = upscaled.shape
    masks = (hyper_in @ upscaled.view(p, c, uh * uw)).view(p, -1, uh, uw)
    return masks[:n, 1:, :, :]


def decode_points(
    decoder: Any,
    image_embeddings: torch.Tensor,
    image_pe: torch.Tensor,
    sparse: torch.Tensor,
    dense: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``decoder(image_embeddings, image_pe, sparse, dense, multimask_output=True)`` with the image once.

    Arguments as ``decode_tokens``. Returns (B, 3, 4h, 4w) low-resolution mask logits and (B, 3)
    predicted IoUs.
    """
    decoded = decode_tokens(decoder, image_embeddings, image_pe, sparse, dense)
    return decode_masks(decoder, decoded), decoded.iou_preds
