"""Optional CPU fast path: the coarse model as ONNX, run by onnxruntime, same ``predict`` API.

The exported graph takes the normalised (N, 3, S, S) float32 letterboxes (N dynamic) and returns the occlusion
probability (N, S, S) (softmax included), so pre/post-processing is exactly that of
``predict.CoarsePredictor``.
"""

from __future__ import annotations

import io
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from ..geometry import normalise
from .model import LoadedModel
from .predict import postprocess, predict_batch, preprocess

log = logging.getLogger(__name__)

OPSET = 17
INPUT_NAME, OUTPUT_NAME = "image", "occlusion_prob"


class _ProbabilityHead(nn.Module):
    """Model + softmax, keeping only the occlusion class (what the pipeline consumes)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(x), dim=1)[:, 1]


def export_onnx(
    loaded: LoadedModel, path: str | Path | io.BytesIO, opset: int = OPSET, dynamic_batch: bool = True
) -> Any:
    """Export ``loaded`` for an N×3×S×S input (S = ``loaded.input_size``) to ``path`` (file or buffer).

    ``dynamic_batch`` (default): the batch axis is free (N×3×S×S → N×S×S), for cross-bed batches and
    Triton's batcher; False pins it to 1.
    Uses the TorchScript-based exporter (no extra dependency); returns ``path``.
    """
    model = _ProbabilityHead(loaded.model).eval().float().cpu()
    dummy = torch.zeros(1, 3, loaded.input_size, loaded.input_size)
    target: Any = str(path) if isinstance(path, (str, Path)) else path
    # Legacy exporter: the dynamo one needs onnxscript, which we do not depend on
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (dummy,),
            target,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=opset,
            dynamo=False,
            do_constant_folding=True,
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None,
        )
    return path


def _session(model_bytes: bytes, threads: int) -> Any:
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


class OnnxCoarsePredictor:
    """``CoarsePredictor`` twin running on onnxruntime (CPU).

    Args:
        loaded: the model; exported in memory at construction unless ``onnx_path`` is given.
        onnx_path: an existing export of this model (``export_onnx``) to load instead.
        threads: intra-op threads (0: onnxruntime default, or $OMP_NUM_THREADS when set).
    """

    def __init__(self, loaded: LoadedModel, onnx_path: str | Path | None = None, threads: int = 0) -> None:
        self.loaded = loaded
        self.size = loaded.input_size
        if onnx_path is not None:
            data = Path(onnx_path).read_bytes()
        else:
            buf = io.BytesIO()
            export_onnx(loaded, buf)
            data = buf.getvalue()
        threads = threads or int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
        self.session = _session(data, threads)

    def forward(self, canvas: np.ndarray) -> np.ndarray:
        """Occlusion probability (S×S float32) for one letterboxed uint8 canvas."""
        return self.forward_batch(canvas[None])[0]

    def forward_batch(self, canvases: np.ndarray) -> np.ndarray:
        """Occlusion probabilities (N×S×S float32) for N letterboxed uint8 canvases (N×S×S×3)."""
        x = np.stack([normalise(c, self.loaded.mean, self.loaded.std) for c in canvases])
        (prob,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: x})
        return np.asarray(prob, np.float32)

    def predict_batch(self, items: Sequence[tuple[np.ndarray, Sequence[int] | None]]) -> list[np.ndarray]:
        """``predict`` for several (rgb, roi) pairs in one session run."""
        return predict_batch(self.forward_batch, self.size, items)

    def predict(self, rgb: np.ndarray, roi: Sequence[int] | None = None) -> np.ndarray:
        """(H, W) float32 occlusion probability in [0, 1]; 0 outside the ROI (as ``CoarsePredictor``)."""
        canvas, t, box = preprocess(rgb, roi, self.size)
        return postprocess(self.forward(canvas), t, box, rgb.shape[:2])
