"""Optional CPU fast path: the coarse model as ONNX, run by onnxruntime, same ``predict`` API.

The exported graph takes the normalised (N, 3, S, S) float32 letterboxes (N dynamic) and returns the occlusion
probability (N, S, S) (softmax included), so pre/post-processing is exactly that of
``predict.CoarsePredictor``.
"""

from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .model import LoadedModel
from .onnx_runtime import INPUT_NAME, OPSET, OUTPUT_NAME, ModelCard, OnnxRunner

__all__ = ["INPUT_NAME", "OPSET", "OUTPUT_NAME", "OnnxCoarsePredictor", "export_bytes", "export_onnx"]

log = logging.getLogger(__name__)


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


class OnnxCoarsePredictor(OnnxRunner):
    """``CoarsePredictor`` twin running on onnxruntime (CPU), from a loaded checkpoint.

    Args:
        loaded: the model; exported in memory at construction unless ``onnx_path`` is given.
        onnx_path: an existing export of this model (``export_onnx``) to load instead.
        threads: intra-op threads (0: onnxruntime default, or $OMP_NUM_THREADS when set).
    """

    def __init__(self, loaded: LoadedModel, onnx_path: str | Path | None = None, threads: int = 0) -> None:
        self.loaded = loaded
        super().__init__(
            export_bytes(loaded) if onnx_path is None else Path(onnx_path).read_bytes(),
            ModelCard.of(loaded),
            threads,
        )


def export_bytes(loaded: LoadedModel) -> bytes:
    """``export_onnx`` into memory: the graph's bytes."""
    buf = io.BytesIO()
    export_onnx(loaded, buf)
    return buf.getvalue()
