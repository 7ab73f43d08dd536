"""Coarse prediction (pure): RGB frame + ROI → per-pixel occlusion probability over the full frame.

Geometry (shared with training and the SAM partitioner): the ROI is cropped, resized keeping its
aspect ratio so that its longer side equals ``size`` (``scale = size / max(h, w)``), and placed in
the TOP-LEFT corner of a ``size``×``size`` zero canvas (letterbox, no cropping of content). The
inverse (``unletterbox``) drops the padding and resizes back to the ROI size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from .model import LoadedModel

Roi = tuple[int, int, int, int]  # x, y, width, height (pixels)


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
    h, w = out_hw if out_hw is not None else (transform.src_h, transform.src_w)
    content = np.ascontiguousarray(prob[: transform.new_h, : transform.new_w])
    if content.shape[:2] == (h, w):
        return content.copy()
    return cv2.resize(content, (w, h), interpolation=cv2.INTER_LINEAR)


def clip_roi(roi: Sequence[int] | None, height: int, width: int) -> Roi:
    """The ROI (x, y, w, h) clipped to the frame; None → the full frame.

    Raises ValueError when nothing of the ROI lies inside the frame.
    """
    if roi is None:
        return 0, 0, width, height
    x, y, w, h = (int(v) for v in roi)
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(width, x + w), min(height, y + h)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"ROI {tuple(roi)} lies outside the {width}×{height} frame")
    return x0, y0, x1 - x0, y1 - y0


def check_rgb(rgb: np.ndarray) -> None:
    """Raise ValueError unless ``rgb`` is an H×W×3 uint8 array."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an H×W×3 uint8 RGB frame, got {rgb.dtype} {rgb.shape}")


def preprocess(
    rgb: np.ndarray, roi: Sequence[int] | None, size: int
) -> tuple[np.ndarray, LetterboxTransform, Roi]:
    """Crop the ROI and letterbox it: (size×size×3 uint8 canvas, transform, clipped ROI)."""
    check_rgb(rgb)
    box = clip_roi(roi, rgb.shape[0], rgb.shape[1])
    x, y, w, h = box
    canvas, t = letterbox(rgb[y : y + h, x : x + w], size)
    return canvas, t, box


def normalise(canvas: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """(1, 3, S, S) float32 network input from an S×S×3 uint8 canvas (numpy path, e.g. ONNX)."""
    m, s = np.asarray(mean, np.float32) * 255.0, np.asarray(std, np.float32) * 255.0
    x = (canvas.astype(np.float32) - m) / s
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)


def postprocess(prob: np.ndarray, t: LetterboxTransform, box: Roi, frame_hw: tuple[int, int]) -> np.ndarray:
    """Paste the ROI's probability (size×size letterboxed) into a zero (H, W) float32 frame."""
    x, y, w, h = box
    out = np.zeros(frame_hw, np.float32)
    out[y : y + h, x : x + w] = unletterbox(prob.astype(np.float32, copy=False), t, (h, w))
    return out


def resolve_device(device: str) -> torch.device:
    """``auto`` → cuda when available, else cpu."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("deeplab.device is cuda but no CUDA device is available — set deeplab.device: auto")
    return torch.device(device)


class CoarsePredictor:
    """The DeepLabV3+ coarse branch on one device (torch).

    Args:
        loaded: the model and its preprocessing constants (``build_deeplab`` / ``load_checkpoint``).
        device: "cpu", "cuda" or "auto".
        half: fp16 weights and inputs (CUDA only; ignored on CPU).
        channels_last: channels-last memory format (often faster on CPU and tensor cores).
        compile: wrap the model in ``torch.compile`` (slow first call).
    """

    def __init__(
        self,
        loaded: LoadedModel,
        device: str = "auto",
        half: bool = False,
        channels_last: bool = False,
        compile: bool = False,
    ) -> None:
        self.loaded = loaded
        self.size = loaded.input_size
        self.device = resolve_device(device)
        self.dtype = torch.float16 if half and self.device.type == "cuda" else torch.float32
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        model = loaded.model.eval().to(self.device, self.dtype)
        model = model.to(memory_format=self.memory_format)  # type: ignore[call-overload]
        self.model = torch.compile(model) if compile else model
        shape = (1, 3, 1, 1)
        self.mean = torch.tensor(loaded.mean, device=self.device).view(shape) * 255.0
        self.std = torch.tensor(loaded.std, device=self.device).view(shape) * 255.0

    def forward(self, canvas: np.ndarray) -> np.ndarray:
        """Occlusion probability (S×S float32) for one letterboxed uint8 canvas."""
        x = torch.from_numpy(canvas).to(self.device).permute(2, 0, 1)[None].float()
        # Normalise (mean/std are scaled to 0–255) and match the model's dtype and layout
        x = ((x - self.mean) / self.std).to(self.dtype).contiguous(memory_format=self.memory_format)
        with torch.inference_mode():
            logits = self.model(x)
            prob = torch.softmax(logits.float(), dim=1)[0, 1]
        return prob.cpu().numpy()

    def predict(self, rgb: np.ndarray, roi: Sequence[int] | None = None) -> np.ndarray:
        """(H, W) float32 occlusion probability in [0, 1] for an H×W×3 uint8 RGB frame; 0 outside the ROI."""
        canvas, t, box = preprocess(rgb, roi, self.size)
        return postprocess(self.forward(canvas), t, box, rgb.shape[:2])
