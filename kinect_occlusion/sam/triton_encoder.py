"""The SAM image encoder on a Triton Inference Server (``sam.encoder: triton``).

``TritonImageEncoder`` takes the place of ``sam.image_encoder``: SAM's predictor (the fast and the
reference generator alike) preprocesses the image as always (resize to 1024 on the long side,
normalise, pad) and calls the encoder with that 1×3×1024×1024 tensor; this module sends it to
Triton and returns the embedding. Prompt encoder, mask decoder and mask post-processing stay local.

A failed or late request raises ``TritonEncoderError`` with ``retry_after_s``: the partition worker
counts it as a remote frame error and backs off that long (the shared ``runtime/remote.py`` back-off),
and the next request opens a fresh channel, so partitions resume soon after the server is back.
A server that cannot be reached at start is ``ServerUnreachable``, one whose encoder is not ready
``ModelUnavailable`` (the worker waits for either).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ..deeplab.triton import (
    EXIT_STARTUP,
    FIRST_REQUEST_TIMEOUT_S,
    OnChannel,
    TritonChannel,
    _short,
    check_served,
    tensor_dims,
)
from ..errors import UserError
from ..runtime.remote import RemoteError, checked_output
from .triton_export import INPUT_NAME, OUTPUT_NAME


class TritonEncoderError(RemoteError):
    """An encoder request failed (server down, rejected) or passed ``sam.triton_timeout_ms``.

    Attributes:
        retry_after_s: how long the caller should wait before the next request.
    """


def check_encoder(
    client: Any, url: str, model: str, in_dims: list[int], out_dims: list[int], t: float
) -> None:
    """Server and ``model`` served (``check_served``), dims as the local decoder needs (else one
    UserError line)."""
    hint = "kinect-occlusion export-triton --sam-checkpoint"
    meta = check_served(client, url, model, "sam", hint, t)
    got_in, got_out = tensor_dims(meta.inputs), tensor_dims(meta.outputs)
    if (got_in, got_out) != (in_dims, out_dims):
        raise UserError(
            f"sam.triton_model: {model!r} maps {got_in} to {got_out}, but sam.checkpoint needs "
            f"{in_dims} to {out_dims} — export the encoder from the same checkpoint",
            exit_code=EXIT_STARTUP,
        )


class TritonImageEncoder(OnChannel, nn.Module):
    """Stands in for ``sam.image_encoder``: the embedding of a preprocessed batch, computed by Triton.

    Args:
        url: Triton gRPC endpoint, host:port.
        model: the encoder's name in the server's repository.
        timeout_ms: per-request deadline.
        img_size: the encoder's input side (1024), read by ``Sam.preprocess`` and the predictor.
        dims: (C, h, w) of the embedding the local mask decoder takes.
        model_type: for the partitioner's name (``sam/<model_type>``).
    """

    def __init__(
        self, url: str, model: str, timeout_ms: int, img_size: int, dims: tuple[int, ...], model_type: str
    ) -> None:
        super().__init__()
        self.url, self.model, self.timeout_s = url, model, timeout_ms / 1000.0
        self.img_size, self.dims, self.model_type = img_size, tuple(dims), model_type
        in_dims, t = [3, img_size, img_size], max(self.timeout_s, 2.0)
        check = lambda client: check_encoder(client, url, model, in_dims, list(self.dims), t)  # noqa: E731
        self.channel = TritonChannel.open_checked(url, "sam.encoder: triton", check)
        self._warm = False

    @property
    def failures(self) -> int:
        """Failed requests in a row."""
        return self.channel.backoff.failures

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) float32 embedding of (N, 3, S, S) preprocessed images, one request."""
        out = self.encode(x.detach().float().cpu().numpy())
        return torch.from_numpy(out).to(x.device)

    def encode(self, batch: np.ndarray) -> np.ndarray:
        """The embedding of a float32 (N, 3, S, S) array; TritonEncoderError when the request fails."""
        import tritonclient.grpc as grpcclient

        tensor = grpcclient.InferInput(INPUT_NAME, list(batch.shape), "FP32")
        tensor.set_data_from_numpy(np.ascontiguousarray(batch, np.float32))
        try:
            out = checked_output(self._infer(tensor), (len(batch), *self.dims), "embedding")
        except ValueError as exc:
            raise self._failed(str(exc)) from None
        self._warm = True
        self.channel.backoff.succeeded()
        return np.array(out, np.float32)  # a writable copy: torch.from_numpy shares it

    def _infer(self, tensor: Any) -> np.ndarray | None:
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException

        timeout = self.timeout_s if self._warm else max(self.timeout_s, FIRST_REQUEST_TIMEOUT_S)
        try:
            result = self.client.infer(
                self.model,
                [tensor],
                outputs=[grpcclient.InferRequestedOutput(OUTPUT_NAME)],
                client_timeout=timeout,
            )
        except InferenceServerException as exc:
            raise self._failed(_short(exc)) from None
        return result.as_numpy(OUTPUT_NAME)

    def _failed(self, why: str) -> RemoteError:
        """The error to raise; a fresh channel for the next request, a retry delay that doubles."""
        return self.channel.failed(self.model, why, TritonEncoderError)


def use_triton_encoder(sam: Any, url: str, model: str, timeout_ms: int, model_type: str) -> Any:
    """Replace ``sam.image_encoder`` by a ``TritonImageEncoder`` (the local encoder is dropped)."""
    from .triton_export import embedding_dims

    img_size = int(sam.image_encoder.img_size)
    sam.image_encoder = TritonImageEncoder(
        url, model, timeout_ms, img_size, embedding_dims(sam), f"{model_type}/triton"
    )
    return sam
