"""Overlay drawing for people to look at results (pure: arrays in, array out)."""

from __future__ import annotations

import numpy as np

TINT = np.array([255, 0, 160], np.float32)  # magenta: never a skin or bedding colour


def partition_edges(labels: np.ndarray) -> np.ndarray:
    """Boolean map of pixels whose right or lower neighbour has another label."""
    edges = np.zeros(labels.shape, bool)
    edges[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edges[:-1, :] |= labels[:-1, :] != labels[1:, :]
    return edges


def draw_overlay(
    rgb: np.ndarray,
    mask: np.ndarray,
    labels: np.ndarray | None = None,
    alpha: float = 0.5,
    fused: bool = True,
) -> np.ndarray:
    """``rgb`` with occlusion pixels tinted and partition edges drawn in yellow.

    Args:
        rgb: H×W×3 uint8 image.
        mask: H×W 0/1 occlusion mask.
        labels: optional H×W partition label image of the same size.
        fused: False draws a red border (the mask is the coarse fallback).
    """
    out = rgb.astype(np.float32)
    sel = mask.astype(bool)
    out[sel] = (1 - alpha) * out[sel] + alpha * TINT
    if labels is not None and labels.shape == mask.shape:
        out[partition_edges(labels)] = (255, 230, 0)
    if not fused:
        out[:4], out[-4:], out[:, :4], out[:, -4:] = (220, 0, 0), (220, 0, 0), (220, 0, 0), (220, 0, 0)
    return out.astype(np.uint8)
