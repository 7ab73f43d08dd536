"""Coarse prediction (pure): RGB frame + ROI → per-pixel occlusion probability over the full frame.

The ROI is clipped to the frame, cropped and letterboxed (``geometry.letterbox``: top-left in a
``size``×``size`` zero canvas, shared with training); ``postprocess`` undoes it and pastes the
probability into a full-frame map (0 outside the ROI).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..geometry import Box, LetterboxTransform, clip_roi, letterbox, resolve_device, unletterbox

if TYPE_CHECKING:  # the pure functions here serve onnxruntime workers that never import torch
    from .model import LoadedModel


def check_rgb(rgb: np.ndarray) -> None:
    """Raise ValueError unless ``rgb`` is an H×W×3 uint8 array."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an H×W×3 uint8 RGB frame, got {rgb.dtype} {rgb.shape}")


def preprocess(
    rgb: np.ndarray, roi: Sequence[int] | None, size: int
) -> tuple[np.ndarray, LetterboxTransform, Box]:
    """Crop the ROI and letterbox it: (size×size×3 uint8 canvas, transform, clipped ROI).

    Raises ValueError when the ROI has nothing inside the frame (``geometry.clip_roi``).
    """
    check_rgb(rgb)
    box = clip_roi(roi, rgb.shape[1], rgb.shape[0])
    x, y, w, h = box
    canvas, t = letterbox(rgb[y : y + h, x : x + w], size)
    return canvas, t, box


def postprocess(prob: np.ndarray, t: LetterboxTransform, box: Box, frame_hw: tuple[int, int]) -> np.ndarray:
    """Paste the ROI's probability (size×size letterboxed) into a zero (H, W) float32 frame."""
    x, y, w, h = box
    out = np.zeros(frame_hw, np.float32)
    out[y : y + h, x : x + w] = unletterbox(prob.astype(np.float32, copy=False), t, (h, w))
    return out


def predict_batch(
    forward_batch: Callable[[np.ndarray], np.ndarray],
    size: int,
    items: Sequence[tuple[np.ndarray, Sequence[int] | None]],
) -> list[np.ndarray]:
    """(H, W) float32 probabilities for each (rgb, roi) pair, through one ``forward_batch`` call.

    Frames may differ in size (each bed's camera); every one is letterboxed to ``size``.
    """
    prepared = [preprocess(rgb, roi, size) for rgb, roi in items]
    if not prepared:
        return []
    probs = forward_batch(np.stack([canvas for canvas, _, _ in prepared]))
    return [
        postprocess(prob, t, box, rgb.shape[:2])
        for prob, (_, t, box), (rgb, _) in zip(probs, prepared, items, strict=True)
    ]


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
        import torch

        self.loaded = loaded
        self.size = loaded.input_size
        self.device = resolve_device(device, "deeplab.device")
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
        return self.forward_batch(canvas[None])[0]

    def forward_batch(self, canvases: np.ndarray) -> np.ndarray:
        """Occlusion probabilities (N×S×S float32) for N letterboxed uint8 canvases (N×S×S×3)."""
        import torch

        x = torch.from_numpy(canvases).to(self.device).permute(0, 3, 1, 2).float()
        # Normalise (mean/std are scaled to 0–255) and match the model's dtype and layout
        x = ((x - self.mean) / self.std).to(self.dtype).contiguous(memory_format=self.memory_format)
        with torch.inference_mode():
            logits = self.model(x)
            prob = torch.softmax(logits.float(), dim=1)[:, 1]
        return prob.cpu().numpy()

    def predict_batch(self, items: Sequence[tuple[np.ndarray, Sequence[int] | None]]) -> list[np.ndarray]:
        """``predict`` for several (rgb, roi) pairs in one forward pass (see :func:`predict_batch`)."""
        return predict_batch(self.forward_batch, self.size, items)

    def predict(self, rgb: np.ndarray, roi: Sequence[int] | None = None) -> np.ndarray:
        """(H, W) float32 occlusion probability in [0, 1] for an H×W×3 uint8 RGB frame; 0 outside the ROI."""
        canvas, t, box = preprocess(rgb, roi, self.size)
        return postprocess(self.forward(canvas), t, box, rgb.shape[:2])
