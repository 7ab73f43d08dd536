"""runtime/remote.py (the inference-server back-off and start-up wait) and the deeplab worker's use of it."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from kinect_occlusion import messages as m
from kinect_occlusion.config import Config
from kinect_occlusion.deeplab.worker import run_batch
from kinect_occlusion.errors import UserError
from kinect_occlusion.runtime.remote import (
    Backoff,
    RemoteError,
    ServerUnreachable,
    server_state,
    wait_until_reachable,
)
from kinect_occlusion.runtime.worker import MAX_CONSECUTIVE_ERRORS, PersistentFailure, WorkerRuntime


def runtime(name: str = "deeplab") -> WorkerRuntime:
    return WorkerRuntime(name, Config(), threading.Event(), parent_pid=1)


def frame(i: int) -> m.ColorFrame:
    return m.ColorFrame(camera="bed1", frame_id=i, ts_us=i * 1000, image=np.zeros((24, 32, 3), np.uint8))


def test_backoff_doubles_to_its_cap_and_resets():
    b = Backoff(0.5, 4.0)
    assert [b.failed() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    b.succeeded()
    assert b.failed() == 0.5


def test_server_state_from_grpc_text():
    assert server_state("[StatusCode.UNAVAILABLE] failed to connect to all addresses") == "unreachable"
    assert server_state("Socket closed") == "unreachable"
    assert server_state("Deadline Exceeded") == "timing out"
    assert server_state("Request for unknown model: 'x' is not found") == "failing"


class Failing:
    """A predictor whose every request fails with ``exc``."""

    def __init__(self, exc: Exception) -> None:
        self.exc, self.calls = exc, 0

    def predict_batch(self, items):
        self.calls += 1
        raise self.exc


def test_a_remote_failure_backs_off_and_never_restarts_the_deeplab_worker():
    rt = runtime()
    predictor = Failing(RemoteError("Triton x deeplab: unavailable (retry in 2 s)", 2.0, "unreachable"))
    for i in range(MAX_CONSECUTIVE_ERRORS + 5):  # more than would restart the worker for other errors
        assert run_batch(rt, predictor, None, [frame(i)], "tiny", {}) == 2.0
    assert rt.counters.errors == MAX_CONSECUTIVE_ERRORS + 5 and rt.counters.consecutive_errors == 0
    assert rt.info["inference_server"] == "unreachable"
    assert "RemoteError: Triton x deeplab: unavailable" in rt.counters.last_error


def test_other_deeplab_errors_still_count_towards_a_restart():
    rt = runtime()
    predictor = Failing(RuntimeError("broken"))
    for i in range(MAX_CONSECUTIVE_ERRORS - 1):
        assert run_batch(rt, predictor, None, [frame(i)], "tiny", {}) is None
    with pytest.raises(PersistentFailure):
        run_batch(rt, predictor, None, [frame(99)], "tiny", {})
    assert "inference_server" not in rt.info


def test_wait_until_reachable_waits_in_its_own_state_then_connects():
    rt = runtime()
    states: list[str] = []
    tries = iter([ServerUnreachable("no Triton server at x"), RemoteError("late", 1.0), "predictor"])

    def connect():
        states.append(rt.state)
        got = next(tries)
        if isinstance(got, Exception):
            raise got
        return got

    t0 = time.monotonic()
    assert wait_until_reachable(rt, connect, "Triton x") == "predictor"
    assert 1.4 < time.monotonic() - t0 < 5.0  # 0.5 s then 1 s back-off
    assert rt.info["inference_server"] == "up" and states == ["starting"] * 3
    assert time.monotonic() - rt.loop_tick < 0.5  # the main loop ticked while it waited


def test_a_wrong_model_is_not_waited_for_and_stop_ends_the_wait():
    rt = runtime()

    def wrong():
        raise UserError("deeplab.triton_model: model 'nope' is not ready", exit_code=3)

    with pytest.raises(UserError, match="nope"):
        wait_until_reachable(rt, wrong, "Triton x")

    def down():
        rt.stop.set()  # stopped while waiting: no predictor, no error
        raise ServerUnreachable("no Triton server at x")

    assert wait_until_reachable(rt, down, "Triton x") is None
