"""Warping a partition to a later frame with DIS optical flow (sam/warp.py)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from kinect_occlusion.sam.warp import warp_labels

H, W = 180, 320


def texture(seed: int = 0) -> np.ndarray:
    """A smooth random RGB texture that optical flow can track."""
    rng = np.random.default_rng(seed)
    noise = rng.random((H + 64, W + 64, 3)).astype(np.float32)
    img = cv2.GaussianBlur(noise, (0, 0), 3)
    img = (img - img.min()) / (img.max() - img.min()) * 255
    return img.astype(np.uint8)


def blocks() -> np.ndarray:
    """A partition of 20×20 px blocks, ids from 1."""
    ys, xs = np.mgrid[0 : H + 64, 0 : W + 64]
    return ((ys // 20) * 32 + xs // 20 + 1).astype(np.int32)


def shifted(a: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """The H×W window of ``a`` seen after the content moved by (dx, dy)."""
    return a[32 - dy : 32 - dy + H, 32 - dx : 32 - dx + W]


def test_translation_moves_labels_with_the_content():
    img, lab = texture(), blocks()
    prev, cur = shifted(img, 0, 0), shifted(img, 12, 7)
    result = warp_labels(shifted(lab, 0, 0), prev, cur, scale=0.5)
    expected = shifted(lab, 12, 7)
    covered = result.labels > 0
    assert result.reliable > 0.8 and covered.mean() > 0.8
    assert abs(result.mean_motion_px - np.hypot(12, 7)) < 3
    # Where the warp vouches for a label, it is the moved one (block edges may be off by a pixel)
    assert (result.labels[covered] == expected[covered]).mean() > 0.9
    # Reused as is, the same labels would be mostly wrong near every block edge
    assert (shifted(lab, 0, 0) == expected).mean() < 0.6


def test_still_frame_keeps_the_partition():
    img, lab = shifted(texture(1), 0, 0), shifted(blocks(), 0, 0)
    result = warp_labels(lab, img, img.copy())
    assert (result.labels == lab).mean() > 0.99 and result.mean_motion_px < 0.5


def test_content_without_correspondence_becomes_uncovered():
    img, lab = texture(2), blocks()
    prev, cur = shifted(img, 0, 0), shifted(img, 6, 0).copy()
    stripes = np.where((np.arange(120) // 6) % 2 == 0, 255, 0).astype(np.uint8)
    cur[40:140, 100:220] = stripes[None, :, None]  # something new appears here
    result = warp_labels(shifted(lab, 0, 0), prev, cur, scale=0.5)
    assert (result.labels[50:130, 110:210] == 0).mean() > 0.5
    assert (result.labels[:, :80] > 0).mean() > 0.8


def test_sizes_must_agree():
    img = shifted(texture(), 0, 0)
    with pytest.raises(ValueError, match="differ in size"):
        warp_labels(np.zeros((10, 10), np.int32), img, img)
    with pytest.raises(ValueError, match="scale"):
        warp_labels(shifted(blocks(), 0, 0), img, img, scale=0)
