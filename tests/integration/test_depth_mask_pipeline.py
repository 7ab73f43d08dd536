"""``fuser.depth_mask``: a replay of a recording with depth publishes the occlusion mask in depth
geometry — real processes, a real .mkv written by our writer, a real subscriber."""

from __future__ import annotations

import time

import numpy as np
import pytest
from harness import collect, start, stop, subscriber, tiny_checkpoint, write_config, write_recording
from test_capture import capture_process, cfg_for

from kinect_occlusion import messages as m
from kinect_occlusion.bus import Proxy, Subscriber
from kinect_occlusion.depth.calibration import parse_calibration
from kinect_occlusion.depth.mask import depth_geometry_mask
from kinect_occlusion.depth.transform import DepthToColor

pytestmark = pytest.mark.slow
TOPICS = (m.TOPIC_OCCLUSION, m.TOPIC_DEPTH_MASK, m.TOPIC_DEPTH)


def replay(
    tmp_path, ipc_dir, n_frames: int, depth_mask: bool, every_frame: bool = False
) -> tuple[list[m.Message], str]:
    """Replay a 720p + NFOV-binned recording through the whole pipeline; every message of TOPICS."""
    rec = tmp_path / "rec.mkv"
    write_recording(rec, n_frames=n_frames, fps=5)
    cfg = write_config(
        tmp_path,
        ipc_dir,
        tiny_checkpoint(tmp_path / "model.pt"),
        camera={"depth_mode": "NFOV_2X2BINNED"},
        bus={"sndhwm": 64, "rcvhwm": 64},
        fuser={"depth_mask": depth_mask, "wait_for_partition_ms": 300},
        runtime={"every_frame": every_frame, "in_flight": 2},
    )
    with subscriber(ipc_dir, TOPICS) as sub:
        proc = start(["replay", str(rec), "--config", str(cfg)])
        msgs = collect(sub, 90, until=lambda _: proc.poll() is not None)
        msgs += collect(sub, 0.5)
        code, out = stop(proc)
    assert code == 0, out
    return msgs, out


def test_the_depth_mask_is_the_fused_mask_mapped_with_the_same_captures_depth(tmp_path, ipc_dir):
    # every frame (back-pressure, no drops): the count does not depend on how loaded the host is
    msgs, out = replay(tmp_path, ipc_dir, n_frames=12, depth_mask=True, every_frame=True)
    depths = {x.identity: x for x in msgs if isinstance(x, m.DepthFrame)}
    colour = {x.identity: x for x in msgs if isinstance(x, m.OcclusionMask)}
    in_depth = [x for x in msgs if isinstance(x, m.DepthMask)]
    assert len(depths) == 12 and len(colour) == 12, out
    # one depth mask per published colour mask (the fuser holds this recording's depth frames)
    assert sorted(x.identity for x in in_depth) == sorted(colour), out
    calibration = next(d.calibration for d in depths.values() if d.calibration is not None)
    transform = DepthToColor.build(parse_calibration(calibration, "NFOV_2X2BINNED", "720P"))
    for got in in_depth:
        fused, depth = colour[got.identity], depths[got.identity]
        assert got.ts_us == fused.ts_us == depth.ts_us and got.fused == fused.fused
        expected = depth_geometry_mask(transform, fused.mask, depth.depth, m.DEPTH_MASK_UNKNOWN)
        np.testing.assert_array_equal(got.mask, expected)
        assert got.mask.shape == (288, 320)
        assert ((got.mask == m.DEPTH_MASK_UNKNOWN) == (expected == m.DEPTH_MASK_UNKNOWN)).all()
    assert any((x.mask == 1).any() for x in in_depth) and any((x.mask == 0).any() for x in in_depth)


# With the switch off no depth mask is published: checked on test_pipeline.py's replay (depth on,
# fuser.depth_mask off), which saves a pipeline start-up here


def test_depth_frames_carry_the_calibration_again_for_a_fuser_that_joins_later(tmp_path, ipc_dir):
    rec = tmp_path / "rec.mkv"
    write_recording(rec, n_frames=45, fps=15)  # 3 s, paced in real time
    cfg = cfg_for(ipc_dir, source="mkv", mkv_path=str(rec), depth_mode="NFOV_2X2BINNED")
    with (
        Proxy(*cfg.bus.endpoints("bed1"), hwm=1000),
        Subscriber(cfg.bus.endpoints("bed1")[1], "bed1", [m.TOPIC_DEPTH], rcvhwm=1000) as sub,
    ):
        proc = capture_process(cfg)
        got: list[m.DepthFrame] = []
        deadline = time.monotonic() + 60
        while len(got) < 45 and time.monotonic() < deadline:
            msg = sub.recv(200)
            if isinstance(msg, m.DepthFrame):
                got.append(msg)
        proc.join(30)
    assert proc.exitcode == 0 and len(got) == 45
    carrying = [d for d in got if d.calibration is not None]
    assert carrying[0].frame_id == 0 and len(carrying) in (2, 3)  # again after ~2 s, not on every frame
    assert carrying[1].calibration == carrying[0].calibration
    assert carrying[1].ts_us - carrying[0].ts_us >= 1_800_000
