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
