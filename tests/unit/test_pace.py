"""Pacing is bounded: ≤100 ms waits on the stop event, forward jumps re-anchored (issue #11 item 8)."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from kinect_occlusion.config import CameraConfig
from kinect_occlusion.sources.base import WAIT_SLICE_S, Frame, pace
from kinect_occlusion.sources.factory import build_source
from kinect_occlusion.sources.mkv_writer import K4AMkvWriter, synthetic_calibration_json

HOURS_3_US = 3 * 3600 * 1_000_000


class FakeTime:
    """A fake clock and stop event: ``wait`` advances the clock; stop is set after ``stop_after`` waits."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.now, self.waits, self.stop_after, self.set = 0.0, [], stop_after, False

    def clock(self) -> float:
        return self.now

    def is_set(self) -> bool:
        return self.set

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None
        self.waits.append(timeout)
        self.now += timeout
        self.set = self.set or (self.stop_after is not None and len(self.waits) >= self.stop_after)
        return self.set


def frames(*ts_us: int):
    for i, ts in enumerate(ts_us):
        yield Frame(frame_id=i, ts_us=ts)


def test_a_huge_forward_jump_is_not_waited_for(caplog):
    fake = FakeTime()
    with caplog.at_level(logging.INFO, logger="kinect_occlusion.sources.base"):
        got = [
            f.frame_id
            for f in pace(frames(0, 33_333, HOURS_3_US, HOURS_3_US + 33_333), True, fake, fake.clock)
        ]
    assert got == [0, 1, 2, 3]
    # two frame periods waited, never the three hours
    assert abs(fake.now - 2 * 0.033333) < 1e-6
    assert max(fake.waits) <= WAIT_SLICE_S
    assert "pacing re-anchored" in caplog.text and "+10799.967" in caplog.text


def test_pacing_returns_promptly_when_stop_is_set_during_a_long_wait():
    fake = FakeTime(stop_after=3)
    # no cap on the jump: the wait itself must end on the stop event
    it = pace(frames(0, HOURS_3_US), True, fake, fake.clock, max_gap_s=float("inf"))
    assert [f.frame_id for f in it] == [0]
    assert len(fake.waits) == 3 and max(fake.waits) <= WAIT_SLICE_S
    assert fake.now <= 3 * WAIT_SLICE_S + 1e-9


def test_an_unpaced_stream_ends_when_stop_is_set():
    stop = threading.Event()
    seen = []
    for frame in pace(frames(*range(0, 10_000_000, 33_333)), False, stop):
        seen.append(frame.frame_id)
        if frame.frame_id == 4:
            stop.set()
    assert seen == [0, 1, 2, 3, 4]


def write_gap_recording(path) -> None:
    """Three captures: two at 30 fps, then one a second later (a wait the stop must cut short)."""
    with K4AMkvWriter(
        path,
        color_mode="MJPG_720P",
        depth_mode="OFF",
        ir=False,
        fps=30,
        calibration_json=synthetic_calibration_json("123456789012"),
        serial="123456789012",
    ) as w:
        for ts in (0, 33_333, 1_000_000):
            w.write(np.full((720, 1280, 3), 90, np.uint8), None, None, 5_000_000 + ts)


def test_mkv_source_stops_within_200_ms_of_the_stop_event(tmp_path):
    path = tmp_path / "gap.mkv"
    write_gap_recording(path)
    stop = threading.Event()
    cam = CameraConfig(source="mkv", mkv_path=str(path), rate="realtime", depth_mode="OFF")
    stopped_at: list[float] = []

    def set_stop() -> None:
        stopped_at.append(time.monotonic())
        stop.set()

    with build_source(cam, stop) as src:
        it = iter(src)
        assert [next(it).frame_id, next(it).frame_id] == [0, 1]
        timer = threading.Timer(0.05, set_stop)
        timer.start()
        rest = list(it)  # the third capture is due ~1 s later
        ended = time.monotonic()
        timer.join()
    assert rest == []
    assert ended - stopped_at[0] < 0.2
