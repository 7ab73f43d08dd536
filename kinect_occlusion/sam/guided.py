"""Guided prompting: SAM point prompts where the coarse mask says they matter.

The paper's uniform 40×40 grid spends most of its 1600 decoder calls on confident background.
``guided_points`` keeps the grid points that fall on coarse positives, on uncertain pixels, or near a
positive, and adds points along the skeleton of thin positive structures (cables, tubes) that a
uniform grid steps over. The points go to ``SamAutomaticMaskGenerator(point_grids=[points])``: same
generator, same post-processing, fewer decoder calls. Pure numpy/OpenCV/skimage.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..geometry import Box

POSITIVE = 0.5  # probability counted as a coarse positive


def uniform_grid(n: int) -> np.ndarray:
    """SAM's n×n grid of cell centres in [0, 1] (x, y), row-major as the generator builds it."""
    centres = (np.arange(n, dtype=np.float64) + 0.5) / n
    xs, ys = np.meshgrid(centres, centres)
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def _to_pixels(points: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer pixel (column, row) of normalised points, clipped to the image."""
    cols = np.clip((points[:, 0] * width).astype(np.int64), 0, width - 1)
    rows = np.clip((points[:, 1] * height).astype(np.int64), 0, height - 1)
    return cols, rows


def _near_positive(positive: np.ndarray, dilate_px: int) -> np.ndarray:
    """Pixels within ``dilate_px`` of a positive (the positives included)."""
    if dilate_px <= 0:
        return positive
    size = 2 * dilate_px + 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    return cv2.dilate(positive.astype(np.uint8), kernel) > 0


def _grid_points(prob: np.ndarray, grid: int, low: float, high: float, dilate_px: int) -> np.ndarray:
    """Grid points (normalised) on positives, uncertain pixels, or within ``dilate_px`` of a positive."""
    h, w = prob.shape
    points = uniform_grid(grid)
    cols, rows = _to_pixels(points, w, h)
    p = prob[rows, cols]
    near = _near_positive(prob >= POSITIVE, dilate_px)[rows, cols]
    keep = (p >= POSITIVE) | ((p > low) & (p < high)) | near
    return points[keep]


def _skeleton_points(positive: np.ndarray, step_px: int, max_half_width: float) -> np.ndarray:
    """Points every ~``step_px`` along the skeleton of positive structures thinner than 2×max_half_width."""
    from skimage.morphology import skeletonize

    if not positive.any():
        return np.zeros((0, 2))
    skeleton = skeletonize(positive)
    # Half-width of the structure at each skeleton pixel: distance to the nearest background pixel
    dist = cv2.distanceTransform(positive.astype(np.uint8), cv2.DIST_L2, 3)
    rows, cols = np.nonzero(skeleton & (dist <= max_half_width))
    if rows.size == 0:
        return np.zeros((0, 2))
    # One skeleton pixel per step×step cell: the one nearest the cell centre
    cell_r, cell_c = rows // step_px, cols // step_px
    off = (rows - cell_r * step_px - step_px / 2) ** 2 + (cols - cell_c * step_px - step_px / 2) ** 2
    cell = cell_r * (positive.shape[1] // step_px + 1) + cell_c
    order = np.lexsort((off, cell))
    first = order[np.r_[True, cell[order][1:] != cell[order][:-1]]]
    h, w = positive.shape
    return np.stack([(cols[first] + 0.5) / w, (rows[first] + 0.5) / h], axis=1)


def _dedupe(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """Drop points that land on the same pixel, keeping the first."""
    if len(points) == 0:
        return points
    cols, rows = _to_pixels(points, width, height)
    _, first = np.unique(rows * width + cols, return_index=True)
    return points[np.sort(first)]


def _cap(points: np.ndarray, n_priority: int, max_points: int) -> np.ndarray:
    """At most ``max_points``: the first ``n_priority`` (skeleton) points win, the rest evenly thinned."""
    if len(points) <= max_points:
        return points
    head = points[: min(n_priority, max_points)]
    tail, room = points[n_priority:], max_points - len(head)
    if room <= 0 or len(tail) == 0:
        return head
    idx = np.unique(np.linspace(0, len(tail) - 1, room).round().astype(np.int64))
    return np.concatenate([head, tail[idx]])


def guided_points(
    prob: np.ndarray,
    roi: Box | None = None,
    *,
    grid: int = 40,
    low: float = 0.2,
    high: float = 0.8,
    dilate_px: int = 15,
    skeleton_step_px: int = 12,
    max_points: int = 400,
) -> np.ndarray:
    """Point prompts for SAM from a coarse occlusion probability map.

    Args:
        prob: H×W float32 occlusion probability in [0, 1].
        roi: (x, y, width, height) to restrict the prompts to; None = whole image. The grid is laid
            over the ROI, as the generator would lay it over an ROI crop.
        grid: side of the uniform grid the points are picked from (paper: 40).
        low, high: the uncertain band; grid points with low < p < high are kept.
        dilate_px: grid points within this distance of a positive (p >= 0.5) are kept.
        skeleton_step_px: spacing of the extra points along thin positive structures.
        max_points: cap on the number of points (skeleton points are kept first).

    Returns:
        (N, 2) float64 points (x / W, y / H) in [0, 1] of the full image, deduplicated; N may be 0.
    """
    if prob.ndim != 2:
        raise ValueError(f"prob must be H×W, got shape {prob.shape}")
    h, w = prob.shape
    x, y, rw, rh = roi if roi is not None else (0, 0, w, h)
    crop = np.nan_to_num(prob[y : y + rh, x : x + rw].astype(np.float32, copy=False))
    if crop.size == 0:
        return np.zeros((0, 2))
    ch, cw = crop.shape
    # Grid points where the coarse mask is positive, unsure, or near a positive
    grid_pts = _grid_points(crop, grid, low, high, dilate_px)
    # Thin structures the grid steps over: a structure narrower than the grid spacing
    spacing = max(cw, ch) / max(1, grid)
    skel_pts = _skeleton_points(crop >= POSITIVE, max(1, skeleton_step_px), spacing)
    # Skeleton points come first: each sits in its own cell, so dedupe drops only grid points
    points = _dedupe(np.concatenate([skel_pts, grid_pts]), cw, ch)
    points = _cap(points, len(skel_pts), max_points)
    # Crop-normalised → image-normalised
    out = np.empty_like(points)
    out[:, 0] = (points[:, 0] * cw + x) / w
    out[:, 1] = (points[:, 1] * ch + y) / h
    return np.clip(out, 0.0, 1.0)
