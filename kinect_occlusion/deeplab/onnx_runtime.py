"""The coarse model on onnxruntime (CPU), without torch: what an ``onnx`` DeepLab worker runs.

``OnnxRunner`` takes the exported graph (``onnx_export.export_onnx``: normalised N×3×S×S float32
letterboxes in, the occlusion probability N×S×S out) and the ``ModelCard`` of its checkpoint (input
size, normalisation, name), so a worker whose export is cached (``onnx_cache``) never imports torch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import CheckpointError, UserError
from ..geometry import normalise
from .predict import postprocess, predict_batch, preprocess
from .settings import checked_settings

if TYPE_CHECKING:
    from .model import LoadedModel

INPUT_NAME, OUTPUT_NAME = "image", "occlusion_prob"
OPSET = 17  # of export_onnx
MAX_NAME = 64


@dataclass(frozen=True)
class ModelCard:
    """What a predictor and the worker need of a checkpoint besides its weights."""

    backbone: str
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    trained: bool = True

    @classmethod
    def of(cls, loaded: LoadedModel) -> ModelCard:
        return cls(
            backbone=loaded.backbone,
            input_size=loaded.input_size,
            mean=tuple(float(v) for v in loaded.mean),  # type: ignore[arg-type]
            std=tuple(float(v) for v in loaded.std),  # type: ignore[arg-type]
            trained=loaded.meta.get("trained", True) is not False,
        )

    @classmethod
    def from_json(cls, data: Any) -> ModelCard:
        """A card read back from a file (ValueError on anything out of bounds: the file is untrusted).

        Input size, mean and std follow a checkpoint's rule (``settings.checked_settings``); a card
        must name each of them (no default) and, as written, hold floats.
        """
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        missing = [k for k in ("backbone", "input_size", "mean", "std") if k not in data]
        if missing:
            raise ValueError(f"no {missing[0]}")
        try:
            checked = checked_settings(data, "card")
        except CheckpointError as exc:
            raise ValueError(str(exc)) from None
        if not all(type(v) is float for v in (*data["mean"], *data["std"])):
            raise ValueError("mean/std must be floats")
        backbone, trained = data["backbone"], data.get("trained", True)
        if not isinstance(backbone, str) or not 0 < len(backbone) <= MAX_NAME:
            raise ValueError("backbone")
        if not isinstance(trained, bool):
            raise ValueError("trained")
        return cls(backbone, checked["input_size"], checked["mean"], checked["std"], trained)

    def to_json(self) -> dict[str, Any]:
        return {
            "backbone": self.backbone,
            "input_size": self.input_size,
            "mean": list(self.mean),
            "std": list(self.std),
            "trained": self.trained,
        }


def session(model_bytes: bytes, threads: int) -> Any:
    """An onnxruntime CPU session (``threads`` 0: onnxruntime's default)."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise UserError(
            "deeplab.runtime: onnx needs onnxruntime — pip install 'kinect-occlusion[onnx]' "
            "or set deeplab.runtime: torch"
        ) from exc
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(model_bytes, sess_options=opts, providers=["CPUExecutionProvider"])


class OnnxRunner:
    """``CoarsePredictor``'s API on onnxruntime (CPU) for an exported graph and its card.

    Args:
        model_bytes: the ONNX graph (``export_onnx``).
        card: input size and normalisation of the checkpoint it was exported from.
        threads: intra-op threads (0: onnxruntime default, or $OMP_NUM_THREADS when set).
    """

    def __init__(self, model_bytes: bytes, card: ModelCard, threads: int = 0) -> None:
        self.card = card
        self.size = card.input_size
        threads = threads or int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
        self.session = session(model_bytes, threads)

    def forward(self, canvas: np.ndarray) -> np.ndarray:
        """Occlusion probability (S×S float32) for one letterboxed uint8 canvas."""
        return self.forward_batch(canvas[None])[0]

    def forward_batch(self, canvases: np.ndarray) -> np.ndarray:
        """Occlusion probabilities (N×S×S float32) for N letterboxed uint8 canvases (N×S×S×3)."""
        x = np.stack([normalise(c, self.card.mean, self.card.std) for c in canvases])
        (prob,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: x})
        return np.asarray(prob, np.float32)

    def predict_batch(self, items: Sequence[tuple[np.ndarray, Sequence[int] | None]]) -> list[np.ndarray]:
        """``predict`` for several (rgb, roi) pairs in one session run."""
        return predict_batch(self.forward_batch, self.size, items)

    def predict(self, rgb: np.ndarray, roi: Sequence[int] | None = None) -> np.ndarray:
        """(H, W) float32 occlusion probability in [0, 1]; 0 outside the ROI (as ``CoarsePredictor``)."""
        canvas, t, box = preprocess(rgb, roi, self.size)
        return postprocess(self.forward(canvas), t, box, rgb.shape[:2])
