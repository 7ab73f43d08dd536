"""A worker's frame errors: operational ones are one line each (rate-limited), others keep a traceback."""

from __future__ import annotations

import logging
import threading

import pytest

from kinect_occlusion.config import Config
from kinect_occlusion.deeplab.triton import TritonTimeout, TritonUnavailable
from kinect_occlusion.runtime import worker
from kinect_occlusion.runtime.worker import WorkerRuntime


@pytest.fixture
def rt():
    return WorkerRuntime("deeplab", Config(), threading.Event(), parent_pid=1)


def records(caplog) -> list[logging.LogRecord]:
    out = [r for r in caplog.records if r.name == worker.__name__]
    caplog.clear()
    return out


@pytest.mark.parametrize(
    "exc",
    [
        TritonUnavailable("Triton localhost:1 deeplab: failed to connect to all addresses"),
        TritonTimeout("Triton localhost:1 deeplab: Deadline Exceeded"),
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError("timed out"),
    ],
)
def test_an_operational_error_is_one_line_without_traceback_rate_limited(rt, caplog, monkeypatch, exc):
    clock = [100.0]
    monkeypatch.setattr(worker.time, "monotonic", lambda: clock[0])
    with caplog.at_level(logging.ERROR, logger=worker.__name__):
        for frame_id in range(5):
            rt.frame_error(frame_id, exc)
        (first,) = records(caplog)
        assert not first.exc_info and "\n" not in first.getMessage()
        assert first.getMessage().startswith(f"deeplab: frame 0: {type(exc).__name__}: ")
        clock[0] += worker.EXPECTED_LINE_INTERVAL_S
        rt.frame_error(5, exc)
        (second,) = records(caplog)
        assert "frame 5" in second.getMessage() and "+4 more such errors not shown" in second.getMessage()
    assert rt.counters.errors == 6  # every one counted


def test_an_unexpected_error_keeps_its_traceback_for_the_first_three(rt, caplog):
    with caplog.at_level(logging.ERROR, logger=worker.__name__):
        rt.frame_error(0, TritonUnavailable("down"))  # not one of the three
        for frame_id in range(1, 6):
            try:
                raise ValueError("bad shape")
            except ValueError as exc:
                rt.frame_error(frame_id, exc)
        got = records(caplog)
    assert [bool(r.exc_info) for r in got] == [False, True, True, True, False, False]
