"""Tiny randomly-initialised SAM and small test images (import the fixtures into a test module)."""

from __future__ import annotations

import numpy as np
import pytest


def scene(h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    """A small RGB image with a few flat shapes over noise."""
    rng = np.random.default_rng(seed)
    img = (rng.random((h, w, 3)) * 60).astype(np.uint8)
    img[h // 5 : h // 2, w // 5 : w // 2] = (200, 180, 40)
    img[h // 2 : 4 * h // 5, w // 2 : 9 * w // 10, 2] = 250
    return img


@pytest.fixture(scope="session")
def tiny_sam():
    """A deterministic tiny SAM on the CPU (random weights)."""
    import torch

    from kinect_occlusion.sam.partition import build_tiny_sam

    torch.set_num_threads(2)
    return build_tiny_sam(seed=0)


def blob_sam(seed: int = 0):
    """A tiny SAM whose mask decoder is a fixed random map from the prompt to blobby, speckled masks.

    The tiny random decoder gives nearly the same mask for every prompt; this one gives many
    different masks (some with small islands and holes) and spread predicted IoUs, so filters,
    NMS and the small-region clean-up all have work to do.
    """
    import torch
    import torch.nn.functional as F
    from torch import nn

    from kinect_occlusion.sam.partition import build_tiny_sam

    class BlobDecoder(nn.Module):
        def __init__(self, dim: int) -> None:
            super().__init__()
            g = torch.Generator().manual_seed(seed)
            self.iou = nn.Parameter(torch.randn(2 * dim, 3, generator=g) * 0.3)
            self.levels = nn.Parameter(torch.tensor([0.2, 0.35, 0.5]).view(1, 3, 1, 1))
            self.noise = nn.Parameter(torch.randn(1, 1, 64, 64, generator=g))

        def forward(
            self,
            image_embeddings,
            image_pe,
            sparse_prompt_embeddings,
            dense_prompt_embeddings,
            multimask_output,
        ):
            # Similarity of the prompt's positional encoding to every cell's: a bump at the prompt
            point = sparse_prompt_embeddings[:, 0]
            sim = torch.einsum("bc,chw->bhw", point, image_pe[0]) / point.shape[1]
            image = image_embeddings.mean(1)[:, None] - image_embeddings.mean()
            logits = (sim[:, None] - self.levels) * 20 + image * 4
            logits = F.interpolate(logits, (64, 64), mode="bilinear", align_corners=False)
            return logits + self.noise, torch.sigmoid(point.repeat(1, 2) @ self.iou)

    sam = build_tiny_sam(seed)
    sam.mask_decoder = BlobDecoder(sam.prompt_encoder.embed_dim)
    return sam.eval()
