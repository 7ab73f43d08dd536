"""Superpixel partition: the fine branch when no SAM checkpoint is configured.

Pure compute: an RGB array in, an int32 label image out (labels 1..N, no zeros). The superpixels
are computed at ``work_scale`` of the frame size and resized back with nearest neighbour.
Measured here at 1280×720 (2 cores): OpenCV ximgproc SEEDS ~72 ms, ximgproc SLIC ~415 ms,
skimage SLIC ~1 s (all at full size; half size is ~4× cheaper).

Small and thin images are guarded (measured in subprocesses, OpenCV 4.x ximgproc, 2 cores):
SEEDS spins forever (e.g. 1×1 … 8×6 at 100 segments, 16×12 at 300) or segfaults (16×12 at 100,
24×18 and 32×24 at 300 segments; 79 of 79 thin crops whose row/column count rounds to 0) whenever
its block pyramid degenerates: ``_seeds_safe`` replays OpenCV's set-up arithmetic and every
geometry it accepts ran (177 of 177 random sizes 1–2000 px, 2–100,000 segments), so the segment
count is lowered until it fits, else Felzenszwalb serves (it never failed). OpenCV SLIC segfaults
on 1-pixel sides and when its region exceeds ~2.2× the short side (e.g. 640×32 at 2 segments): the
region is capped at the short side. Below ``MIN_SIDE`` pixels the partition is one segment.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

Method = Literal["seeds", "slic", "felzenszwalb"]
METHODS: tuple[str, ...] = ("seeds", "slic", "felzenszwalb")

# Shortest side (px) worth partitioning; smaller images are one segment, and work_scale never
# shrinks an image below it. config.MIN_ROI_SIDE is twice this so the default work_scale fits.
MIN_SIDE = 16
SEEDS_LEVELS = 4


def compact_labels(labels: np.ndarray, start: int = 1) -> np.ndarray:
    """Renumber the labels present in ``labels`` to ``start, start+1, …`` keeping their order."""
    flat = labels.astype(np.int64, copy=False)
    offset = int(flat.min())
    present = np.zeros(int(flat.max()) - offset + 1, dtype=bool)
    present[(flat - offset).ravel()] = True
    lut = (np.cumsum(present) - 1 + start).astype(np.int32)
    return lut[flat - offset]


def _seeds_safe(width: int, height: int, n_segments: int, levels: int = SEEDS_LEVELS) -> bool:
    """Whether OpenCV SEEDS can run on this geometry (it hangs or crashes otherwise).

    Replays ``SuperpixelSEEDSImpl::initialize`` in float32: the seed grid must be non-empty, at
    least two block levels must fit, and the top level must keep at least one block each way.
    """
    f32 = np.float32
    n_h = int(np.sqrt(f32(max(n_segments, 10)) * f32(height) / f32(width)))
    n_w = n_h * width // height
    if n_h < 1 or n_w < 1:
        return False
    for level in range(levels, 1, -1):
        seed_w = f32(width) / f32(n_w) / f32(1 << (level - 1))
        seed_h = f32(height) / f32(n_h) / f32(1 << (level - 1))
        if seed_w >= 1 and seed_h >= 1:
            top = min(width // int(np.ceil(seed_w)), height // int(np.ceil(seed_h))) >> (level - 1)
            return top >= 1
    return False


def seeds_segments(width: int, height: int, n_segments: int) -> int | None:
    """The largest segment count ≤ ``n_segments`` (halving) that SEEDS can run, or None."""
    n = max(10, n_segments)
    while True:
        if _seeds_safe(width, height, n):
            return n
        if n <= 10:
            return None
        n = max(10, n // 2)


def _seeds(rgb: np.ndarray, n_segments: int) -> np.ndarray:
    """OpenCV ximgproc SEEDS (fastest of the three); Felzenszwalb where SEEDS cannot run."""
    h, w = rgb.shape[:2]
    n = seeds_segments(w, h, n_segments)
    if n is None:
        return _felzenszwalb(rgb, n_segments)
    # SEEDS works best in a perceptual colour space
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
    seeds = cv2.ximgproc.createSuperpixelSEEDS(w, h, 3, n, SEEDS_LEVELS, 2, 5, False)
    seeds.iterate(lab, 4)
    return seeds.getLabels()


def _slic(rgb: np.ndarray, n_segments: int, compactness: float) -> np.ndarray:
    """OpenCV ximgproc SLIC (region size from the target number of segments)."""
    h, w = rgb.shape[:2]
    # Regions longer than the short side crash OpenCV SLIC
    region = min(max(4, int(round(np.sqrt(h * w / max(1, n_segments))))), min(h, w))
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
    slic = cv2.ximgproc.createSuperpixelSLIC(lab, cv2.ximgproc.SLIC, region, float(compactness))
    slic.iterate(10)
    # Merge fragments smaller than a quarter of a region into their neighbours
    slic.enforceLabelConnectivity(25)
    return slic.getLabels()


def _felzenszwalb(rgb: np.ndarray, n_segments: int) -> np.ndarray:
    """skimage Felzenszwalb graph segmentation; ``min_size`` bounds the segment count near n_segments."""
    from skimage.segmentation import felzenszwalb

    h, w = rgb.shape[:2]
    min_size = max(8, (h * w) // max(1, 2 * n_segments))
    return felzenszwalb(rgb, scale=100.0, sigma=0.8, min_size=min_size)


def superpixel_partition(
    rgb: np.ndarray,
    method: Method = "seeds",
    n_segments: int = 300,
    compactness: float = 10.0,
    work_scale: float = 0.5,
) -> np.ndarray:
    """Partition an H×W×3 uint8 RGB image into superpixels.

    Args:
        rgb: H×W×3 uint8 RGB image.
        method: "seeds" (OpenCV ximgproc), "slic" (OpenCV ximgproc SLIC), "felzenszwalb" (skimage).
        n_segments: target number of superpixels (approximate for every method).
        compactness: SLIC ruler (higher: more regular shapes); ignored by the other methods.
        work_scale: compute at this fraction of the image size (0 < work_scale <= 1).

    Returns:
        H×W int32 labels 1..N, every pixel covered (no zeros); all 1 when a side is below
        ``MIN_SIDE``.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an H×W×3 RGB image, got shape {rgb.shape}")
    if method not in METHODS:
        raise ValueError(f"unknown superpixel method {method!r}; expected one of {METHODS}")
    if not 0 < work_scale <= 1:
        raise ValueError(f"work_scale must be in (0, 1], got {work_scale}")
    h, w = rgb.shape[:2]
    # Too small to partition: one segment
    if min(h, w) < MIN_SIDE:
        return np.ones((h, w), np.int32)
    image: np.ndarray = np.ascontiguousarray(rgb, dtype=np.uint8)
    # Work at reduced size, never below MIN_SIDE (n_segments scales with the frame, not the work size)
    size = (min(w, max(MIN_SIDE, round(w * work_scale))), min(h, max(MIN_SIDE, round(h * work_scale))))
    if size != (w, h):
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    small: np.ndarray
    if method == "seeds":
        small = _seeds(image, n_segments)
    elif method == "slic":
        small = _slic(image, n_segments, compactness)
    else:
        small = _felzenszwalb(image, n_segments)
    # Back to full size, nearest neighbour keeps labels exact
    if small.shape != (h, w):
        small = cv2.resize(small.astype(np.int32), (w, h), interpolation=cv2.INTER_NEAREST)
    return compact_labels(small, start=1)
