"""The coarse model served by Triton Inference Server: ``CoarsePredictor``'s API over its gRPC client.

Pre/post-processing stays here (letterbox, normalise, un-letterbox, as ``predict.CoarsePredictor``);
Triton runs only the network (a repository written by ``kinect-occlusion export-triton``).
A failed request raises ``RemoteError`` (``runtime/remote.py``): the worker backs off and the next
request goes through a fresh gRPC channel, so coarse masks resume soon after the server is back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import UserError
from ..geometry import normalise
from ..runtime.remote import (
    MODEL_LOADING,
    MODEL_UNAVAILABLE,
    Backoff,
    ModelUnavailable,
    RemoteError,
    ServerUnreachable,
    checked_output,
    one_line,
    server_state,
)
from .model import LoadedModel
from .onnx_export import INPUT_NAME, OUTPUT_NAME
from .predict import predict_batch

log = logging.getLogger(__name__)

PROB_SLACK = 1e-3  # a served softmax may round a little past [0, 1]; anything further is no probability

EXIT_STARTUP = 3  # as runtime.worker: could not start
FIRST_REQUEST_TIMEOUT_S = 10.0  # the first request pays for the model instance's lazy start
INDEX_TIMEOUT_S = 1.0  # after a refused request: the repository index's answer, at most this late


class TritonTimeout(RemoteError):
    """A request took longer than ``deeplab.triton_timeout_ms`` (counted as a remote frame error)."""


class TritonUnavailable(RemoteError):
    """The server refused or dropped the connection, or is not serving (a remote frame error)."""


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


def check_served(client: Any, url: str, model: str, section: str, export_hint: str, t: float) -> Any:
    """Server live (else ``ServerUnreachable``: waited for) and ``model`` ready (else
    ``ModelUnavailable`` with Triton's reason: waited for too; or, on a ready server that does not
    know the model, one UserError line, exit 3); the model's metadata, for the caller's dims check.

    Only this model's readiness counts: with Triton's strict readiness another model that failed to
    load makes the whole server "not ready", yet ours serves.
    """
    if not client.is_server_live(client_timeout=t):
        raise ServerUnreachable(f"{section}.triton_url: the Triton server at {url} is not live yet")
    if client.is_model_ready(model, client_timeout=t):
        return client.get_model_metadata(model, client_timeout=t)
    state, reason = model_state(client, model, t)
    if state is None and client.is_server_ready(client_timeout=t):
        raise UserError(
            f"{section}.triton_model: model {model!r} is not ready on the Triton server at {url} — "
            f"load a repository written by '{export_hint}'",
            exit_code=EXIT_STARTUP,
        )
    raise ModelUnavailable(
        f"{section}.triton_model: model {model!r} on the Triton server at {url} is not ready: {reason}",
        reason,
        not_ready(state),
    )


def not_ready(state: str | None) -> str:
    """Status ``inference_server`` for a model in repository-index ``state`` that is not READY."""
    return MODEL_LOADING if state == "LOADING" else MODEL_UNAVAILABLE


def model_state(client: Any, model: str, t: float) -> tuple[str | None, str]:
    """(state, reason) of ``model`` in the server's repository index; (None, why) when it is not there."""
    from tritonclient.utils import InferenceServerException

    try:
        index = client.get_model_repository_index(client_timeout=t)
    except InferenceServerException as exc:  # e.g. the repository API restricted: say what we know
        return "UNKNOWN", f"not ready (repository index: {_short(exc)})"
    for entry in index.models:
        if entry.name == model:
            return entry.state, one_line(f"{entry.state}: {entry.reason}" if entry.reason else entry.state)
    return None, "not in the server's model repository"


def tensor_dims(tensors: Any) -> list[int]:
    """The first tensor's shape without its batch axis ([] when there is none)."""
    return [int(d) for d in tensors[0].shape][1:] if tensors else []


def check_model(client: Any, url: str, model: str, size: int, timeout_s: float) -> None:
    """Server and ``model`` served (``check_served``), input 3×S×S (else one UserError line)."""
    meta = check_served(client, url, model, "deeplab", "kinect-occlusion export-triton", timeout_s)
    dims = tensor_dims(meta.inputs)
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


class TritonChannel:
    """A gRPC client to ``url`` that is replaced after each failure, with the caller's back-off.

    gRPC's own reconnect back-off grows to minutes while a server is away: a fresh channel per
    retry reaches a restarted server at once.
    """

    def __init__(self, url: str, key: str) -> None:
        self.url, self.key = url, key
        self.client = _client(url, key)
        self.backoff = Backoff()

    @classmethod
    def open_checked(cls, url: str, key: str, check: Callable[[Any], None]) -> TritonChannel:
        """A channel whose server passed ``check(client)``, else closed again and the error raised.

        A gRPC error during the check (no server, connection dropped) is ``ServerUnreachable``
        naming ``<section>.triton_url`` (the section of ``key``): the worker waits for the server.
        """
        from tritonclient.utils import InferenceServerException

        channel = cls(url, key)
        try:
            check(channel.client)
        except InferenceServerException as exc:
            channel.close()
            section = key.split(".", 1)[0]
            raise ServerUnreachable(
                f"{section}.triton_url: no Triton server at {url} ({_short(exc)}) — start it or fix the URL"
            ) from None
        except BaseException:
            channel.close()
            raise
        return channel

    def failed(self, model: str, why: str, error: type[RemoteError] = RemoteError) -> RemoteError:
        """The error to raise for a failed request to ``model`` (its retry delay doubling); a fresh
        channel. A request the server refused (``failing``) asks the repository index whether the
        model is still served: if not (unloaded, failed to reload, loading), the error says
        ``model-unavailable`` / ``model-loading`` with Triton's reason, as at start-up."""
        self.client.close()
        self.client = _client(self.url, self.key)
        retry = self.backoff.failed()
        server, reason = server_state(why), None
        if server == "failing":
            server, reason = self.model_lost(model, server)
        lost = f" — model not ready: {reason}" if reason else ""
        text = f"Triton {self.url} {model}: {why}{lost} (retry in {retry:g} s)"
        return error(text, retry, server, reason)

    def model_lost(self, model: str, server: str) -> tuple[str, str | None]:
        """(Status ``inference_server``, Triton's reason or None) for ``model`` after a refused
        request: ``server`` unchanged (no reason) while the index says READY or cannot be read."""
        state, reason = model_state(self.client, model, INDEX_TIMEOUT_S)
        if state in ("READY", "UNKNOWN"):
            return server, None
        return not_ready(state), reason

    def close(self) -> None:
        """Close the gRPC channel."""
        self.client.close()


class OnChannel:
    """``client`` and ``close`` for a class whose requests go through ``self.channel``."""

    channel: TritonChannel

    @property
    def client(self) -> Any:
        """The current gRPC client (replaced after a failed request)."""
        return self.channel.client

    def close(self) -> None:
        """Close the gRPC channel."""
        self.channel.close()


class TritonCoarsePredictor(OnChannel):
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
        t = max(self.timeout_s, 2.0)
        check = lambda client: check_model(client, url, model, self.size, t)  # noqa: E731
        self.channel = TritonChannel.open_checked(url, "deeplab.runtime: triton", check)
        self._warm = False

    def forward_batch(self, canvases: np.ndarray) -> np.ndarray:
        """Occlusion probabilities (N×S×S float32) for N letterboxed uint8 canvases (N×S×S×3), one request.

        A failed request raises ``RemoteError`` (``TritonTimeout`` past the deadline) with its retry delay.
        """
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
            why = _short(exc)
            kind = {"timing out": TritonTimeout, "unreachable": TritonUnavailable}.get(
                server_state(why), RemoteError
            )
            raise self.channel.failed(self.model, why, kind) from None
        shape = (len(canvases), self.size, self.size)
        what = f"Triton {self.url} {self.model}"
        prob = checked_output(result.as_numpy(OUTPUT_NAME), shape, what, -PROB_SLACK, 1.0 + PROB_SLACK)
        self._warm = True
        self.channel.backoff.succeeded()
        return np.clip(prob, 0.0, 1.0)

    def predict_batch(self, items: Sequence[tuple[np.ndarray, Sequence[int] | None]]) -> list[np.ndarray]:
        """One (H, W) float32 probability map per (rgb, roi) pair, the whole batch in one Triton request."""
        return predict_batch(self.forward_batch, self.size, items)

    def predict(self, rgb: np.ndarray, roi: Sequence[int] | None = None) -> np.ndarray:
        """(H, W) float32 occlusion probability in [0, 1]; 0 outside the ROI (as ``CoarsePredictor``)."""
        return self.predict_batch([(rgb, roi)])[0]
