"""The capture process alone: every frame of a recording, in order and bit-exact, to another
process; and a slow subscriber neither slows capture nor grows memory."""

from __future__ import annotations

import multiprocessing as mp
import time

import numpy as np
import pytest
from harness import rss_mb, write_recording

from kinect_occlusion import messages as m
from kinect_occlusion.bus import Proxy, Subscriber
from kinect_occlusion.config import Config
from kinect_occlusion.runtime.child import child_entry
from kinect_occlusion.sources.mkv import MkvSource

pytestmark = pytest.mark.slow


def capture_process(cfg: Config):
    ctx = mp.get_context("spawn")
    # Its log to stderr (no supervisor's sink here)
    proc = ctx.Process(target=child_entry, args=("capture", cfg.model_dump_json(), None), name="capture")
    proc.start()
    return proc


def cfg_for(ipc_dir, **camera) -> Config:
    return Config.model_validate(
        {
            "camera": camera,
            "bus": {"frontend": f"ipc://{ipc_dir}/in", "backend": f"ipc://{ipc_dir}/out", "sndhwm": 1000},
            "runtime": {"heartbeat_s": 0.2},
        }
    )


def test_every_frame_in_order_and_bit_exact(tmp_path, ipc_dir):
    rec = tmp_path / "rec.mkv"
    write_recording(rec, n_frames=30, fps=30)
    with MkvSource(str(rec)) as src:
        expected = list(src)
    cfg = cfg_for(ipc_dir, source="mkv", mkv_path=str(rec), rate="realtime", depth_mode="NFOV_2X2BINNED")
    with (
        Proxy(*cfg.bus.endpoints("bed1"), hwm=1000),
        Subscriber(cfg.bus.endpoints("bed1")[1], "bed1", [m.TOPIC_COLOR, m.TOPIC_DEPTH], rcvhwm=1000) as sub,
    ):
        proc = capture_process(cfg)
        got: list[m.Message] = []
        deadline = time.monotonic() + 60
        while len(got) < 2 * len(expected) and time.monotonic() < deadline:
            msg = sub.recv(200)
            if msg is not None:
                got.append(msg)
        proc.join(30)
    assert proc.exitcode == 0
    colors = [g for g in got if isinstance(g, m.ColorFrame)]
    depths = [g for g in got if isinstance(g, m.DepthFrame)]
    assert [c.frame_id for c in colors] == [f.frame_id for f in expected]
    assert len(colors) == len(depths) == len(expected)
    for c, d, f in zip(colors, depths, expected, strict=True):
        assert c.ts_us == f.ts_us == d.ts_us
        np.testing.assert_array_equal(c.image, f.color)
        np.testing.assert_array_equal(d.depth, f.depth)
    assert depths[0].calibration is not None and depths[1].calibration is None


def test_slow_subscriber_neither_slows_capture_nor_grows_memory(ipc_dir):
    cfg = cfg_for(
        ipc_dir,
        source="synthetic",
        synthetic_size=[1280, 720],
        fps=30,
        rate="realtime",
        depth_mode="OFF",
        max_frames=150,
    )
    with (
        Proxy(*cfg.bus.endpoints("bed1"), hwm=4),
        Subscriber(cfg.bus.endpoints("bed1")[1], "bed1", [m.TOPIC_COLOR], rcvhwm=2) as slow,
        Subscriber(cfg.bus.endpoints("bed1")[1], "bed1", [m.TOPIC_STATUS], rcvhwm=100) as status,
    ):
        proc = capture_process(cfg)
        received, rss, t0 = [], [], time.monotonic()
        while proc.is_alive() and time.monotonic() - t0 < 30:
            msg = slow.recv(300)
            if msg is not None:
                received.append(msg.frame_id)
                rss.append(rss_mb(proc.pid))
                time.sleep(0.2)  # a subscriber that takes 200 ms per message
        elapsed = time.monotonic() - t0
        proc.join(10)
        last = [s for s in iter(lambda: status.recv(50), None) if s.worker == "capture"]
    assert proc.exitcode == 0
    # 150 frames at 30 fps take ~5 s; a capture blocked by the subscriber would take 30+ s
    assert elapsed < 12, f"capture took {elapsed:.1f} s"
    assert last and last[-1].info["frames_out"] == 150
    assert len(received) < 60 and received == sorted(received)
    assert received[-1] - received[0] > 100  # it skips ahead: the newest frames still arrive
    assert max(rss) - rss[len(rss) // 4] < 50, (
        f"capture RSS grew: {rss[len(rss) // 4]:.0f} → {max(rss):.0f} MB"
    )
