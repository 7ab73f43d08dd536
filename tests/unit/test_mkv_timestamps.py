"""Timestamps that go backwards or repeat inside a valid .mkv: every capture replayed once, in file
order, and the damage line says what happened (it said "1 capture(s) missing", or nothing)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from kinect_occlusion.sources.mkv import MkvSource
from kinect_occlusion.sources.mkv_writer import K4AMkvWriter


def recording(path, stamps_us: list[int]) -> None:
    """One colour + depth capture per stamp, written in this order (out of order included)."""
    rng = np.random.default_rng(1)
    with K4AMkvWriter(path, color_mode="MJPG_720P", depth_mode="NFOV_2X2BINNED", fps=15) as w:
        for ts in stamps_us:
            w._last_ts_us = None  # the writer refuses a backwards stamp; a damaged recorder did not
            color = rng.integers(0, 255, (720, 1280, 3), np.uint8)
            w.write(color, rng.integers(0, 5000, (288, 320), np.uint16), None, ts)


@pytest.mark.parametrize(
    ("stamps", "expected"),
    [
        ([0, 66_667, 33_333, 133_333], "1 capture(s) out of order"),
        ([0, 66_667, 66_667, 133_333], "1 capture(s) out of order"),
    ],
)
def test_out_of_order_captures_are_played_once_and_reported_as_such(tmp_path, caplog, stamps, expected):
    recording(tmp_path / "r.mkv", stamps)
    with caplog.at_level(logging.WARNING, logger="kinect_occlusion.sources.mkv"):
        frames = list(MkvSource(tmp_path / "r.mkv"))
    assert [f.frame_id for f in frames] == [0, 1, 2, 3]
    assert [f.ts_us for f in frames] == stamps
    assert all(f.color is not None and f.depth is not None for f in frames)
    assert expected in caplog.text and "missing" not in caplog.text, caplog.text
