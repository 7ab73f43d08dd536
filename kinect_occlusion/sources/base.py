"""The frame-source interface shared by the Kinect, .mkv and synthetic sources."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class Frame:
    """One capture from a source.

    Attributes:
        frame_id: monotonic per source, starting at 0.
        ts_us: device timestamp in microseconds.
        color: H×W×3 uint8 RGB image, or None.
        depth: H×W uint16 depth in millimetres, or None.
        ir: H×W uint16 infrared, or None.
        truth: H×W uint8 ground-truth occlusion mask (0/1); synthetic sources only.
    """

    frame_id: int
    ts_us: int
    color: np.ndarray | None = None
    depth: np.ndarray | None = None
    ir: np.ndarray | None = None
    truth: np.ndarray | None = None
    extra: dict = field(default_factory=dict)


class Source:
    """Base class: a context manager that yields :class:`Frame` objects.

    Subclasses implement ``open``, ``close`` and ``frames``. ``calibration`` holds the
    device calibration JSON text when the source has one.
    """

    calibration: str | None = None

    def open(self) -> None:
        """Acquire the device or file; raise ``SourceError`` with one clear line on failure."""

    def close(self) -> None:
        """Release the device or file. Safe to call twice."""

    def frames(self) -> Iterator[Frame]:
        """Yield frames until the source ends (or forever for live sources)."""
        raise NotImplementedError

    def __enter__(self) -> Source:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Frame]:
        return self.frames()


MAX_GAP_S = 2.0  # a forward timestamp jump longer than this is a discontinuity: re-anchor, do not wait
WAIT_SLICE_S = 0.1  # the longest single wait while pacing (STYLE rule 6)


class StopEvent(Protocol):
    """What pacing needs of a stop event (``threading.Event`` fits)."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


def pace(
    frames: Iterator[Frame],
    realtime: bool,
    stop: StopEvent | None = None,
    clock: Callable[[], float] = time.monotonic,
    max_gap_s: float = MAX_GAP_S,
) -> Iterator[Frame]:
    """Yield ``frames`` spaced by their device timestamps when ``realtime``, else as fast as possible.

    Waits in slices of at most ``WAIT_SLICE_S`` on ``stop`` and ends the stream as soon as it is
    set. A timestamp that goes backwards (e.g. a loop restart) or jumps forward by more than
    ``max_gap_s`` re-anchors the schedule (the frame is yielded at once, the jump logged).
    """
    stop = stop if stop is not None else threading.Event()
    anchor: tuple[float, int] | None = None
    last_ts: int | None = None
    for frame in frames:
        if stop.is_set():
            return
        if realtime:
            if anchor is None or _discontinuity(last_ts, frame.ts_us, max_gap_s):
                anchor = (clock(), frame.ts_us)
            last_ts = frame.ts_us
            if not _wait_until(anchor[0] + (frame.ts_us - anchor[1]) / 1e6, stop, clock):
                return
        yield frame


def _discontinuity(last_ts: int | None, ts_us: int, max_gap_s: float) -> bool:
    """A timestamp going backwards, or forwards by more than ``max_gap_s`` (logged)."""
    if last_ts is None:
        return False
    gap_s = (ts_us - last_ts) / 1e6
    if gap_s < 0 or gap_s > max_gap_s:
        log.info("source: timestamp jumps %+.3f s; pacing re-anchored at this frame", gap_s)
        return True
    return False


def _wait_until(due: float, stop: StopEvent, clock: Callable[[], float]) -> bool:
    """Wait until ``clock()`` reaches ``due`` in slices of at most ``WAIT_SLICE_S``; False if stopped."""
    while (left := due - clock()) > 0:
        if stop.wait(min(left, WAIT_SLICE_S)):
            return False
    return not stop.is_set()
