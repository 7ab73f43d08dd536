"""The coarse model served by Triton Inference Server: ``CoarsePredictor``'s API over its gRPC client.

Pre/post-processing stays here (letterbox, normalise, un-letterbox, as ``predict.CoarsePredictor``);
Triton runs only the network (a repository written by ``kinect-occlusion export-triton``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ServiceError, UserError
from ..geometry import normalise
from .model import LoadedModel
from .onnx_export import INPUT_NAME, OUTPUT_NAME
from .predict import predict_batch

log = logging.getLogger(__name__)

EXIT_STARTUP = 3  # as runtime.worker: could not start
FIRST_REQUEST_TIMEOUT_S = 10.0  # the first request pays for the model instance's lazy start


class TritonTimeout(ServiceError):
    """A request took longer than ``deeplab.triton_timeout_ms`` (counted as a frame error)."""


class TritonUnavailable(ServiceError):
    """The server refused or dropped the connection, or is not serving (counted as a frame error)."""


def _client(url: str, key: str = "deeplab.runtime: triton") -> Any:
    """A gRPC client for ``url`` (host:port); UserError naming ``key`` when tritonclient is missing."""
    try:
        import tritonclient.grpc as grpcclient
    except ImportError as exc:
        raise UserError(
            f"{key} needs tritonclient — pip install 'kinect-occlusion[triton]'",
            exit_code=EXIT_STARTUP,
        ) from exc
    return grpcclient.InferenceServerClient(url=url)


def check_server(client: Any, url: str, model: str, size: int, timeout_s: float) -> None:
    """Server live, ``model`` ready, input 3×S×S: else one UserError line naming the config key."""
    from tritonclient.utils import InferenceServerException

    try:
        live = client.is_server_live(client_timeout=timeout_s)
    except InferenceServerException as exc:
        raise UserError(
            f"deeplab.triton_url: no Triton server at {url} ({_short(exc)}) — start it or fix the URL",
            exit_code=EXIT_STARTUP,
        ) from None
    if not live or not client.is_model_ready(model, client_timeout=timeout_s):
        raise UserError(
            f"deeplab.triton_model: model {model!r} is not ready on the Triton server at {url} — "
            "load a repository written by 'kinect-occlusion export-triton'",
            exit_code=EXIT_STARTUP,
        )
    meta = client.get_model_metadata(model, client_timeout=timeout_s)
    dims = [int(d) for d in meta.inputs[0].shape][1:] if meta.inputs else []
    if dims != [3, size, size]:
        raise UserError(
            f"deeplab.triton_model: {model!r} takes {dims}, but deeplab.checkpoint needs [3, {size}, {size}] "
            "— export the repository from the same checkpoint",
            exit_code=EXIT_STARTUP,
        )


def _short(exc: Exception) -> str:
    """The first line of a tritonclient error, without its gRPC boilerplate."""
    text = getattr(exc, "message", lambda: str(exc))() or str(exc)
    return " ".join(str(text).split())[:160]


class TritonCoarsePredictor:
    """``CoarsePredictor`` twin whose network runs on a Triton server.

    Args:
        loaded: the checkpoint (its normalisation and input size; the weights stay unused here).
        url: Triton gRPC endpoint, host:port.
        model: model name in the server's repository.
        timeout_ms: per-request deadline; past it ``TritonTimeout`` (a frame error for the worker).
    """

    def __init__(self, loaded: LoadedModel, url: str, model: str = "deeplab", timeout_ms: int = 1000) -> None:
        self.loaded, self.url, self.model = loaded, url, model
        self.size = loaded.input_size
        self.timeout_s = timeout_ms / 1000.0
        self.client = _client(url)
        check_server(self.client, url, model, self.size, max(self.timeout_s, 2.0))
        self._warm = False

    def forward_batch(self, canvases: np.ndarray) -> np.ndarray:
        """Occlusion probabilities (N×S×S float32) for N letterboxed uint8 canvases (N×S×S×3), one request."""
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException

        x = np.stack([normalise(c, self.loaded.mean, self.loaded.std) for c in canvases])
        tensor = grpcclient.InferInput(INPUT_NAME, list(x.shape), "FP32")
        tensor.set_data_from_numpy(np.ascontiguousarray(x, np.float32))
        try:
            result = self.client.infer(
                self.model,
                [tensor],
                outputs=[grpcclient.InferRequestedOutput(OUTPUT_NAME)],
                client_timeout=self.timeout_s if self._warm else max(self.timeout_s, FIRST_REQUEST_TIMEOUT_S),
            )
        except InferenceServerException as exc:
            if "Deadline" in str(exc) or "timeout" in str(exc).lower():
                raise TritonTimeout(f"Triton {self.url} {self.model}: {_short(exc)}") from None
            if "UNAVAILABLE" in str(exc.status()):
                raise TritonUnavailable(f"Triton {self.url} {self.model}: {_short(exc)}") from None
            raise RuntimeError(f"Triton {self.url} {self.model}: {_short(exc)}") from None
        prob = result.as_numpy(OUTPUT_NAME)
        if prob is None or prob.shape != (len(canvases), self.size, self.size):
            got = None if prob is None else prob.shape
            raise RuntimeError(
                f"Triton {self.url} {self.model}: output {got}, expected N×{self.size}×{self.size}"
            )
        self._warm = True
        return np.asarray(prob, np.float32)

    def predict_batch(self, items: Sequence[tuple[np.ndarray, Sequence[int] | None]]) -> list[np.ndarray]:
        """One (H, W) float32 probability map per (rgb, roi) pair, the whole batch in one Triton request."""
        return predict_batch(self.forward_batch, self.size, items)

    def predict(self, rgb: np.ndarray, roi: Sequence[int] | None = None) -> np.ndarray:
        """(H, W) float32 occlusion probability in [0, 1]; 0 outside the ROI (as ``CoarsePredictor``)."""
        return self.predict_batch([(rgb, roi)])[0]

    def close(self) -> None:
        """Close the gRPC channel."""
        self.client.close()
