"""A replay with ``camera.align_depth_to_color: true`` publishes depth aligned to colour: a real
capture process, a real recording, a real subscriber."""

from __future__ import annotations

import time

import numpy as np
import pytest
from harness import write_recording
from test_capture import capture_process, cfg_for

from kinect_occlusion import messages as m
from kinect_occlusion.bus import Proxy, Subscriber
from kinect_occlusion.depth.calibration import parse_calibration
from kinect_occlusion.depth.transform import DepthToColor
from kinect_occlusion.sources.mkv import MkvSource

pytestmark = pytest.mark.slow


def test_replay_publishes_depth_aligned_to_colour(tmp_path, ipc_dir):
    rec = tmp_path / "rec.mkv"
    write_recording(rec, n_frames=4, fps=15)
    with MkvSource(str(rec)) as src:
        raw = [f.depth for f in src]
        calibration = src.calibration
    align = DepthToColor.build(parse_calibration(calibration, "NFOV_2X2BINNED", "720P"))
    cfg = cfg_for(
        ipc_dir, source="mkv", mkv_path=str(rec), depth_mode="NFOV_2X2BINNED", align_depth_to_color=True
    )
    with (
        Proxy(*cfg.bus.endpoints("bed1"), hwm=1000),
        Subscriber(cfg.bus.endpoints("bed1")[1], "bed1", [m.TOPIC_DEPTH], rcvhwm=1000) as sub,
    ):
        proc = capture_process(cfg)
        got: list[m.DepthFrame] = []
        deadline = time.monotonic() + 30
        while len(got) < len(raw) and time.monotonic() < deadline:
            msg = sub.recv(200)
            if isinstance(msg, m.DepthFrame):
                got.append(msg)
        proc.join(30)
    assert proc.exitcode == 0 and len(got) == len(raw) == 4
    for msg, depth in zip(got, raw, strict=True):
        assert msg.aligned_to_color and msg.depth.shape == (720, 1280)
        np.testing.assert_array_equal(msg.depth, align(depth))
        assert (msg.depth > 0).mean() > 0.3
