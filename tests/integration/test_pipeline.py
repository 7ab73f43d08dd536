"""The whole pipeline as real processes: replay end to end, overlay video, clean exit."""

from __future__ import annotations

import av
import numpy as np
import pytest
from harness import collect, start, stop, subscriber, tiny_checkpoint, write_config, write_recording

from kinect_occlusion import messages as m

pytestmark = pytest.mark.slow


def test_replay_runs_all_workers_and_exits_cleanly(tmp_path, ipc_dir):
    rec = tmp_path / "rec.mkv"
    # 5 fps: a coarse mask is held until its own partition (or the next coarse mask, 200 ms later),
    # so a loaded machine still fuses some frames with their own partition
    write_recording(rec, n_frames=24, fps=5)
    # HWM above the frame count: this test checks that every frame can get through, so a busy
    # machine must not make the proxy drop frames for the test's own subscriber
    # Depth on, fuser.depth_mask off: depth flows, the fuser chooses not to map it (one replay for both)
    cfg = write_config(
        tmp_path,
        ipc_dir,
        tiny_checkpoint(tmp_path / "model.pt"),
        camera={"depth_mode": "NFOV_2X2BINNED"},
        bus={"sndhwm": 64, "rcvhwm": 64},
        fuser={"wait_for_partition_ms": 500, "depth_mask": False},
    )
    video = tmp_path / "overlay.mp4"
    topics = (m.TOPIC_OCCLUSION, m.TOPIC_COLOR, m.TOPIC_PARTITION, m.TOPIC_DEPTH, m.TOPIC_DEPTH_MASK)
    with subscriber(ipc_dir, topics) as sub:
        proc = start(["replay", str(rec), "--config", str(cfg), "--save-video", str(video)])
        msgs = collect(sub, 90, until=lambda _: proc.poll() is not None)
        msgs += collect(sub, 0.5)
        code, out = stop(proc)
    assert code == 0, out
    colors = {x.frame_id: x for x in msgs if isinstance(x, m.ColorFrame)}
    masks = [x for x in msgs if isinstance(x, m.OcclusionMask)]
    assert sorted(colors) == list(range(24)), out
    assert len(masks) >= 12, out  # latest-wins may skip a few frames, not most
    for mask in masks:
        assert mask.frame_id in colors and mask.ts_us == colors[mask.frame_id].ts_us
        assert mask.mask.shape == (720, 1280) and set(np.unique(mask.mask)) <= {0, 1}
    fused = [x for x in masks if x.fused]
    assert fused and all(x.partitioner.startswith("superpixel") for x in fused)
    assert any(x.partition_frame_id == x.frame_id for x in fused)  # held for its own partition
    assert any(isinstance(x, m.Partition) for x in msgs)
    # (was test_depth_mask_pipeline.py::test_with_the_switch_off_no_depth_mask_is_published)
    assert any(isinstance(x, m.DepthFrame) for x in msgs)
    assert not any(isinstance(x, m.DepthMask) for x in msgs)
    with av.open(str(video)) as container:
        n_video = sum(1 for _ in container.decode(video=0))
    assert n_video >= len(masks) - 2 and "overlay video written" in out


def test_missing_checkpoint_is_one_clear_line(tmp_path, ipc_dir):
    cfg = write_config(tmp_path, ipc_dir, tmp_path / "nope.pt", deeplab={"allow_untrained": False})
    proc = start(["run", "--config", str(cfg)])
    proc.wait(60)
    code, out = proc.returncode, proc.communicate()[0]
    assert code != 0 and "deeplab.checkpoint" in out and "nope.pt" in out and "Traceback" not in out


def test_missing_recording_is_one_clear_line(tmp_path, ipc_dir):
    cfg = write_config(tmp_path, ipc_dir, tiny_checkpoint(tmp_path / "model.pt"))
    proc = start(["replay", str(tmp_path / "missing.mkv"), "--config", str(cfg)])
    proc.wait(60)
    out = proc.communicate()[0]
    assert proc.returncode != 0 and "missing.mkv" in out and "Traceback" not in out


def test_kinect_without_the_sdk_is_one_clear_line(tmp_path, ipc_dir):
    cfg = write_config(tmp_path, ipc_dir, None)
    proc = start(["run", "--config", str(cfg), "--source", "kinect"], env={"FAKE_PYK4A_ABSENT": "1"})
    proc.wait(60)
    out = proc.communicate()[0]
    assert proc.returncode == 2 and "Azure Kinect SDK" in out and "Traceback" not in out
