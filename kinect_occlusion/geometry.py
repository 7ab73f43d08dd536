"""Image geometry shared by every stage, training and the runtime (pure numpy/OpenCV).

OpenCV and torch are imported where used, so that importing the config stays light.

- ``Box``: (x, y, width, height) in pixels, the one box type.
- ``clip_roi``: a box clipped to a frame. An ROI with nothing inside the frame (or no area) is a
  ValueError, never silently replaced by another region; ``None`` means the whole frame.
- Letterbox: the ROI crop resized keeping its aspect ratio so that its longer side equals ``size``
  (``scale = size / max(h, w)``), placed in the TOP-LEFT corner of a ``size``×``size`` zero canvas;
  ``unletterbox`` drops the padding and resizes back.
- ``fit_labels``: a label image mapped onto another resolution (nearest neighbour, labels unchanged).
- ``normalise``: the network input, ``(x - 255·mean) / (255·std)`` with the ImageNet mean/std.
- ``resolve_device``: the torch device for a config/CLI device name (``auto``, ``cpu``, ``cuda``…).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .errors import UserError

if TYPE_CHECKING:
    import torch

Box = tuple[int, int, int, int]  # x, y, width, height (pixels)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MIN_INPUT_SIZE, MAX_INPUT_SIZE = 32, 4096  # letterbox sides a model may be trained for or ask for


def clip_roi(roi: Sequence[int] | None, width: int, height: int) -> Box:
    """The part of ``roi`` (x, y, w, h) inside a ``width``×``height`` frame; None → the whole frame.

    Raises ValueError (one line) when nothing of ``roi`` lies inside the frame.
    """
    if roi is None:
        return (0, 0, width, height)
    x, y, w, h = (int(v) for v in roi)
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(width, x + w), min(height, y + h)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"ROI {(x, y, w, h)} has nothing inside the {width}×{height} frame")
    return (x0, y0, x1 - x0, y1 - y0)


@dataclass(frozen=True)
class LetterboxTransform:
    """Where a ``src_h``×``src_w`` image sits in a ``size``×``size`` letterbox (top-left, new_h×new_w)."""

    src_h: int
    src_w: int
    size: int
    scale: float
    new_h: int
    new_w: int


def letterbox_transform(height: int, width: int, size: int) -> LetterboxTransform:
    """The letterbox geometry for an image of ``height``×``width`` (no pixels touched)."""
    scale = size / max(height, width)
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    return LetterboxTransform(height, width, size, scale, new_h, new_w)


def letterbox(rgb: np.ndarray, size: int) -> tuple[np.ndarray, LetterboxTransform]:
    """Resize ``rgb`` (H×W×C) keeping its aspect ratio into a ``size``×``size`` zero canvas, top-left.

    Shrinking uses area interpolation, enlarging bilinear (as the training data preparation does).
    Returns the canvas (same dtype as ``rgb``) and the transform to undo it.
    """
    import cv2

    t = letterbox_transform(rgb.shape[0], rgb.shape[1], size)
    interp = cv2.INTER_AREA if t.new_w < t.src_w else cv2.INTER_LINEAR
    canvas = np.zeros((size, size) + rgb.shape[2:], rgb.dtype)
    resized = cv2.resize(rgb, (t.new_w, t.new_h), interpolation=interp)
    canvas[: t.new_h, : t.new_w] = resized.reshape(canvas[: t.new_h, : t.new_w].shape)
    return canvas, t


def unletterbox(
    prob: np.ndarray, transform: LetterboxTransform, out_hw: tuple[int, int] | None = None
) -> np.ndarray:
    """Drop the letterbox padding of a ``size``×``size`` map and resize it (bilinear) to ``out_hw``.

    ``out_hw`` defaults to the size of the image that was letterboxed.
    """
    import cv2

    h, w = out_hw if out_hw is not None else (transform.src_h, transform.src_w)
    content = np.ascontiguousarray(prob[: transform.new_h, : transform.new_w])
    if content.shape[:2] == (h, w):
        return content.copy()
    return cv2.resize(content, (w, h), interpolation=cv2.INTER_LINEAR)


def fit_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Map a label image computed at another resolution onto ``shape`` (H, W) by nearest neighbour.

    Output pixel (r, c) takes source pixel (⌊r·H_src/H⌋, ⌊c·W_src/W⌋), computed exactly in integers
    (OpenCV's INTER_NEAREST rounds that index in floating point), as int32; a label image already of
    ``shape`` is returned as it is. ValueError for an empty label image.
    """
    if labels.shape == shape:
        return labels
    if labels.size == 0:
        raise ValueError(f"empty label image {labels.shape} cannot be mapped onto {shape}")
    h, w = shape
    rows = np.arange(h, dtype=np.int64) * labels.shape[0] // h
    cols = np.arange(w, dtype=np.int64) * labels.shape[1] // w
    return labels.astype(np.int32, copy=False).take(rows, axis=0).take(cols, axis=1)


def normalise(
    image: np.ndarray, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> np.ndarray:
    """(3, H, W) float32 network input from an H×W×3 uint8 image: ``(x - 255·mean) / (255·std)``."""
    m, s = np.asarray(mean, np.float32) * 255.0, np.asarray(std, np.float32) * 255.0
    x = (image.astype(np.float32) - m) / s
    return np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32)


def resolve_device(name: str, key: str = "device") -> torch.device:
    """``auto`` → cuda when available, else cpu; a cuda device without CUDA is a UserError naming ``key``."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"{key} is {name} but no CUDA device is available: set {key} to auto or cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise UserError(f"{key}: unknown device {name!r} (use auto, cpu or cuda)") from None
