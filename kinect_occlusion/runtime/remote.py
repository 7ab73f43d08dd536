"""A worker's calls to a remote inference server (Triton): back-off, and waiting for it at start.

One place for the deeplab (``deeplab.runtime: triton``) and partition (``sam.encoder: triton``)
workers. A failed request is a *remote* frame error: counted, one line, no restart (a fresh process
would not bring the server back); the caller backs off ``Backoff`` long and reconnects. At start, a
server that cannot be reached (not listening, still loading its models) is waited for — heartbeats
go on, state ``waiting for inference server`` — and so is a server that answers while its model is not
ready (failed to load, unloaded, loading: ``ModelUnavailable``, with Triton's reason in one ERROR
line and in Status), since an operator may fix the repository and Triton reload it. A ready server
without the model, or a model of other dims, stays a configuration error (``UserError``, exit 3).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from ..errors import MAX_LINE_CHARS, ServiceError, UserError, one_line

if TYPE_CHECKING:
    from .worker import WorkerRuntime

log = logging.getLogger(__name__)

T = TypeVar("T")

# 0.5 s doubling to 4 s: with a request's own time, results resume within 10 s of the server's return
FIRST_RETRY_S, MAX_RETRY_S = 0.5, 4.0
WAITING = "waiting for inference server"  # the worker state while the server is away
TICK_S = 0.1  # the main loop ticks this often while it waits
# Status ``inference_server`` while the server answers but the model is not ready
MODEL_UNAVAILABLE, MODEL_LOADING = "model-unavailable", "model-loading"
# Status ``inference_server`` values that mean no results come from it (the supervisor reports them)
NOT_SERVING = ("unreachable", "timing out", "failing", MODEL_UNAVAILABLE, MODEL_LOADING)
REPEAT_S = 60.0  # the same reason's ERROR line again at most this often (a new reason: at once)
MAX_REASON_CHARS = MAX_LINE_CHARS  # Triton's reason, one line, in logs and Status ``inference_reason``
FLOAT32_MAX = float(np.finfo(np.float32).max)


class Backoff:
    """A retry delay that doubles from ``first_s`` to ``max_s`` while failures go on."""

    def __init__(self, first_s: float = FIRST_RETRY_S, max_s: float = MAX_RETRY_S) -> None:
        self.first_s, self.max_s = first_s, max_s
        self.failures = 0

    def failed(self) -> float:
        """Count a failure; the delay before the next try (seconds)."""
        self.failures += 1
        return min(self.max_s, self.first_s * 2 ** min(self.failures - 1, 30))

    def succeeded(self) -> None:
        """The server answered: the next failure starts again at ``first_s``."""
        self.failures = 0


class RemoteError(ServiceError):
    """A request to the inference server failed (down, refused, reset, late, rejected).

    Attributes:
        retry_after_s: how long the caller should wait before the next request.
        server: what Status says of the server: ``unreachable``, ``timing out`` or ``failing``; or
            ``model-unavailable`` / ``model-loading`` when the model was lost after start-up.
        reason: Triton's reason for a model that is not ready (one line; None otherwise).
    """

    def __init__(
        self,
        message: str,
        retry_after_s: float = FIRST_RETRY_S,
        server: str = "unreachable",
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.retry_after_s, self.server = retry_after_s, server
        self.reason = None if reason is None else one_line(reason)


class ServerUnreachable(UserError):
    """At start: the inference server cannot be reached (yet). Workers wait and retry; a direct
    caller gets the one-line UserError (exit 3)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=3)


class ModelUnavailable(ServerUnreachable):
    """At start: the server answers, but the model is not ready (failed to load, unloaded, loading).

    Workers wait for it as for an unreachable server; a direct caller gets the one line (exit 3).

    Attributes:
        reason: Triton's reason (or state), one line of at most ``MAX_REASON_CHARS``.
        server: what Status says of the server: ``model-unavailable`` or ``model-loading``.
    """

    def __init__(self, message: str, reason: str, server: str = MODEL_UNAVAILABLE) -> None:
        super().__init__(message)
        self.reason, self.server = one_line(reason), server


def checked_output(
    out: Any, shape: tuple[int, ...], what: str, lo: float = -FLOAT32_MAX, hi: float = FLOAT32_MAX
) -> np.ndarray:
    """A reply tensor of an inference server as float32, checked: ValueError (one line) unless it
    has ``shape``, a numeric dtype and every value finite in [``lo``, ``hi``] (one min/max pass).

    The reply is untrusted: a NaN probability quantised to uint8 is 0 ("nothing occluded"), logits
    sent as probabilities are all "occluded", and NaN embeddings give SAM no mask — all silently.
    """
    if not isinstance(out, np.ndarray) or out.shape != shape:
        raise ValueError(f"{what}: output {getattr(out, 'shape', None)}, expected {shape}")
    if out.dtype.kind not in "fiu":
        raise ValueError(f"{what}: output dtype {out.dtype}, expected numbers")
    with np.errstate(over="ignore"):
        arr = np.asarray(out, np.float32)  # a float64 beyond float32's range is inf here
    if arr.size and not (arr.min() >= lo and arr.max() <= hi):  # NaN fails both comparisons
        raise ValueError(f"{what}: output values outside [{lo:g}, {hi:g}] or not finite")
    return arr


class RepeatFilter:
    """Whether to log a reason again: when it changes, else at most once per ``every_s``."""

    def __init__(self, every_s: float = REPEAT_S) -> None:
        self.every_s = every_s
        self.last: str | None = None
        self.at = 0.0

    def new(self, reason: str, now: float) -> bool:
        """True when ``reason`` should be logged now (and remember it)."""
        if reason == self.last and now - self.at < self.every_s:
            return False
        self.last, self.at = reason, now
        return True


def server_state(text: str) -> str:
    """``unreachable``, ``timing out`` or ``failing``, from a gRPC error's text."""
    low = text.lower()
    if "deadline" in low or "timeout" in low or "timed out" in low:
        return "timing out"
    marks = ("unavailable", "failed to connect", "connection refused", "connection reset", "socket closed")
    return "unreachable" if any(k in low for k in marks) else "failing"


def report_failure(info: dict, exc: BaseException) -> None:
    """Status ``inference_server`` (and ``inference_reason`` when Triton gave one) after a failed
    request ``exc`` (a ``RemoteError``)."""
    say_server(info, getattr(exc, "server", "unreachable"), getattr(exc, "reason", None))


def report_served(info: dict) -> None:
    """Status ``inference_server: up`` after a request served (for a worker that calls a server)."""
    if "inference_server" in info:
        say_server(info, "up")


def say_server(info: dict, server: str, reason: str | None = None) -> None:
    """Status ``inference_server`` = ``server``, and ``inference_reason`` = ``reason`` (dropped when None)."""
    info["inference_server"] = server
    if reason:
        info["inference_reason"] = reason
    else:
        info.pop("inference_reason", None)


def pause(rt: WorkerRuntime, seconds: float) -> None:
    """Wait ``seconds`` (or until stop) in the waiting state, ticking the main loop as it goes."""
    remaining = seconds
    while remaining > 0 and not rt.stop.is_set():
        rt.tick(WAITING)
        rt.stop.wait(min(TICK_S, remaining))
        remaining -= TICK_S


def wait_until_reachable(rt: WorkerRuntime, connect: Callable[[], T], what: str) -> T | None:
    """``connect()`` until the server answers: its result, or None when the worker is stopped first.

    ``ServerUnreachable`` (and ``RemoteError``) are waited out with a doubling back-off, one line
    per try; ``ModelUnavailable`` too, its reason in Status and in one ERROR line (again when the
    reason changes, or after ``REPEAT_S``); any other error (a wrong model is a ``UserError``) goes
    to the caller.
    """
    backoff, said = Backoff(), RepeatFilter()
    while not rt.stop.is_set():
        rt.tick("starting")  # a try may take its request timeouts: busy by design, not stalled
        try:
            result = connect()
        except ModelUnavailable as exc:
            model_not_ready(rt, exc, backoff.failed(), said)
            continue
        except (ServerUnreachable, RemoteError) as exc:
            delay = backoff.failed()
            say_server(rt.info, "unreachable")
            log.warning("%s: %s: %s (retry in %g s)", rt.name, WAITING, exc, delay)
            pause(rt, delay)
            continue
        say_server(rt.info, "up")
        if backoff.failures:
            log.info("%s: %s reachable again", rt.name, what)
        return result
    return None


def model_not_ready(rt: WorkerRuntime, exc: ModelUnavailable, delay: float, said: RepeatFilter) -> None:
    """Say why the model is not served (Status, and a rate-limited line), then wait ``delay``.

    Triton (``--model-control-mode=poll``) loads a failed model again on each poll: while it does,
    Status keeps the failure's reason (``model-loading`` only for a model that has not failed yet).
    """
    retried = exc.server == MODEL_LOADING and said.last is not None
    server, reason = (MODEL_UNAVAILABLE, said.last) if retried else (exc.server, exc.reason)
    rt.info.update(inference_server=server, inference_reason=reason)
    if exc.server == MODEL_LOADING:
        log.log(
            logging.DEBUG if retried else logging.INFO,
            "%s: %s: %s (retry in %g s)",
            rt.name,
            WAITING,
            exc,
            delay,
        )
    elif said.new(exc.reason, time.monotonic()):
        log.error("%s: %s (retrying every %g s at most)", rt.name, exc, MAX_RETRY_S)
    pause(rt, delay)
