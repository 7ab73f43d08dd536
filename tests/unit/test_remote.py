"""runtime/remote.py (the inference-server back-off and start-up wait, a model that is not ready) and
the deeplab worker's use of it."""

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
    MAX_REASON_CHARS,
    MODEL_LOADING,
    MODEL_UNAVAILABLE,
    Backoff,
    ModelUnavailable,
    RemoteError,
    RepeatFilter,
    ServerUnreachable,
    one_line,
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


def test_one_line_keeps_the_first_line_of_a_triton_reason_bounded():
    reason = "UNAVAILABLE: Internal: NoSuchFile: model.onnx   failed\n\nAt:\n  model.py(32): initialize\n"
    assert one_line(reason) == "UNAVAILABLE: Internal: NoSuchFile: model.onnx failed"
    assert len(one_line("x" * 5000)) == MAX_REASON_CHARS and one_line("") == ""


def test_repeat_filter_says_a_reason_again_only_when_it_changes_or_after_its_interval():
    said = RepeatFilter(every_s=60.0)
    assert said.new("a", 0.0) and not said.new("a", 30.0) and not said.new("a", 59.0)
    assert said.new("b", 59.5) and said.new("a", 60.0)  # a new reason: at once
    assert not said.new("a", 100.0) and said.new("a", 120.0)  # the same one: once per interval


def test_a_model_that_is_not_ready_is_waited_for_with_its_reason(monkeypatch, caplog):
    from kinect_occlusion.runtime import remote

    monkeypatch.setattr(remote, "Backoff", lambda: Backoff(0.01, 0.02))
    rt = runtime()
    seen: list[tuple] = []
    failed = "deeplab.triton_model: model 'deeplab' on the Triton server at h:1 is not ready: {}"
    tries = iter(
        [
            ModelUnavailable(failed.format("LOADING"), "LOADING", MODEL_LOADING),
            ModelUnavailable(failed.format("UNAVAILABLE: boom"), "UNAVAILABLE: boom"),
            ModelUnavailable(failed.format("UNAVAILABLE: boom"), "UNAVAILABLE: boom"),
            ModelUnavailable(failed.format("LOADING"), "LOADING", MODEL_LOADING),
            ModelUnavailable(failed.format("UNAVAILABLE: other"), "UNAVAILABLE: other"),
            "predictor",
        ]
    )

    def connect():
        seen.append((rt.info.get("inference_server"), rt.info.get("inference_reason")))
        got = next(tries)
        if isinstance(got, Exception):
            raise got
        return got

    with caplog.at_level("INFO", logger="kinect_occlusion.runtime.remote"):
        assert wait_until_reachable(rt, connect, "Triton h:1") == "predictor"
    assert seen[1:] == [
        (MODEL_LOADING, "LOADING"),  # loading, not failed (yet)
        (MODEL_UNAVAILABLE, "UNAVAILABLE: boom"),
        (MODEL_UNAVAILABLE, "UNAVAILABLE: boom"),
        (MODEL_UNAVAILABLE, "UNAVAILABLE: boom"),  # Triton loads it again: the failure's reason stays
        (MODEL_UNAVAILABLE, "UNAVAILABLE: other"),
    ]
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 2, errors  # the same reason twice in a row: one line
    assert "model 'deeplab' on the Triton server at h:1 is not ready: UNAVAILABLE: boom" in errors[0]
    assert "UNAVAILABLE: other" in errors[1]
    assert rt.info["inference_server"] == "up" and "inference_reason" not in rt.info


def test_the_supervisor_report_and_status_name_a_worker_whose_model_is_unavailable():
    from kinect_occlusion.commands.status import inference_lines
    from kinect_occlusion.runtime.monitor import inference_report

    def status(worker: str, **info) -> m.Status:
        return m.Status(camera="bed1", frame_id=0, ts_us=0, worker=worker, pid=7, state="x", info=info)

    seen = {
        "deeplab": status("deeplab", inference_server="model-unavailable", inference_reason="UNAVAILABLE: x"),
        "sam": status("sam", inference_server="up"),
        "fuser": status("fuser", inference_server=["not", "a", "state"]),  # untrusted: not repeated
    }
    assert inference_report(seen) == ["inference server: deeplab model-unavailable"]
    assert inference_lines(seen) == ["inference server for deeplab: model-unavailable: UNAVAILABLE: x"]
    assert inference_report({"sam": seen["sam"]}) == [] and inference_lines({"sam": seen["sam"]}) == []
