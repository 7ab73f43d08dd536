"""The frame-source interface shared by the Kinect, .mkv and synthetic sources."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np


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


def pace(frames: Iterator[Frame], realtime: bool, clock=time.monotonic, sleep=time.sleep) -> Iterator[Frame]:
    """Yield ``frames`` spaced by their device timestamps when ``realtime``, else as fast as possible.

    A timestamp that goes backwards (e.g. a loop restart) re-anchors the schedule.
    """
    anchor: tuple[float, int] | None = None
    for frame in frames:
        if realtime:
            if anchor is None or frame.ts_us < anchor[1]:
                anchor = (clock(), frame.ts_us)
            due = anchor[0] + (frame.ts_us - anchor[1]) / 1e6
            delay = due - clock()
            if delay > 0:
                sleep(delay)
        yield frame
