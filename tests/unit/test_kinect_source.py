"""KinectSource over a fake pyk4a: formats, depth alignment, reconnects, missing SDK, no camera."""

from __future__ import annotations

import importlib
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from kinect_occlusion.errors import SourceError
from kinect_occlusion.sources.kinect import KinectSource
from kinect_occlusion.sources.synthetic import render_scene

FAKES = Path(__file__).resolve().parents[1] / "fakes"


@pytest.fixture
def fake(monkeypatch):
    """The fake pyk4a module, first on sys.path, with fresh hardware state."""
    monkeypatch.syspath_prepend(str(FAKES))
    monkeypatch.delitem(sys.modules, "pyk4a", raising=False)
    module = importlib.import_module("pyk4a")
    module.STATE.reset()
    yield module
    sys.modules.pop("pyk4a", None)


def _take(source: KinectSource, n: int, timeout: float = 20.0) -> list:
    """The first ``n`` frames, failing instead of hanging."""
    out, deadline = [], time.monotonic() + timeout
    with source:
        for frame in source:
            out.append(frame)
            if len(out) == n or time.monotonic() > deadline:
                break
    return out


@pytest.mark.parametrize("fmt", ["MJPG", "BGRA32", "NV12", "YUY2"])
def test_colour_formats_decode_to_rgb_with_device_timestamps(fake, fmt):
    frames = _take(KinectSource(color_format=fmt, fps=15, depth_mode="NFOV_UNBINNED"), 3)
    truth = render_scene(0, 1280, 720, t=1 / 15).rgb
    assert [f.frame_id for f in frames] == [0, 1, 2]
    assert [f.ts_us for f in frames] == [200_000, 200_000 + 66_666, 200_000 + 133_333]
    f = frames[1]
    assert f.color.shape == (720, 1280, 3) and f.color.dtype == np.uint8
    tolerance = 0 if fmt == "BGRA32" else 12  # lossy JPEG / 4:2:0 chroma
    assert np.abs(f.color.astype(int) - truth).mean() <= max(tolerance, 0.5)
    assert f.depth.shape == (576, 640) and f.depth.dtype == np.uint16
    assert f.extra["aligned_to_color"] is False


def test_aligned_depth_has_colour_shape_and_calibration_is_read(fake):
    src = KinectSource(depth_mode="NFOV_2X2BINNED", align_depth=True)
    (frame,) = _take(src, 1)
    assert frame.depth.shape == (720, 1280) and frame.depth.dtype == np.uint16
    assert frame.extra["aligned_to_color"] is True
    assert src.calibration == fake.STATE.calibration


def test_depth_off_gives_colour_only(fake):
    (frame,) = _take(KinectSource(depth_mode="OFF"), 1)
    assert frame.depth is None and frame.color is not None


def test_device_drop_reconnects_and_frame_ids_keep_increasing(fake):
    fake.STATE.drop_at = {3}
    fake.STATE.replug_after_polls = 2
    src = KinectSource(reconnect_backoff=(0.01, 0.04), fps=30)
    states = []
    frames = []
    with src:
        for frame in src:
            frames.append(frame)
            states.append((src.state, src.reconnects))
            if len(frames) == 6:
                break
    assert [f.frame_id for f in frames] == list(range(6))
    ts = [f.ts_us for f in frames]
    assert all(b > a for a, b in zip(ts, ts[1:], strict=False))  # device clock restarted, ts did not
    assert frames[3].extra["device_ts_us"] == 200_000  # first capture of the new connection
    assert fake.STATE.starts == 2 and src.reconnects == 1 and fake.STATE.polls >= 4
    assert states[-1] == ("streaming", 1)
    assert src.state == "stopped" and fake.STATE.running == 0


def test_no_camera_at_start_retries_until_stop_event(fake):
    fake.STATE.serials = []
    stop = threading.Event()
    idle: list[str] = []
    src = KinectSource(reconnect_backoff=(0.01, 0.05), stop_event=stop, on_idle=idle.append)
    got = []
    thread = threading.Thread(target=lambda: got.extend(_take(src, 1)), daemon=True)
    thread.start()
    time.sleep(0.4)
    assert src.state == "connecting" and fake.STATE.polls >= 4  # kept trying, with back-off
    assert len(idle) >= 4 and set(idle) == {"connecting"}  # the worker can keep its heartbeat
    stop.set()
    thread.join(timeout=2.0)
    assert not thread.is_alive() and got == [] and src.state == "stopped"


def test_camera_plugged_in_later_starts_streaming(fake):
    fake.STATE.absent_polls = 3
    frames = _take(KinectSource(reconnect_backoff=(0.01, 0.02)), 2)
    assert [f.frame_id for f in frames] == [0, 1] and fake.STATE.polls == 4


def test_stall_of_timeouts_counts_as_a_lost_camera(fake):
    fake.STATE.timeouts = 4
    src = KinectSource(reconnect_backoff=(0.01, 0.02), stall_s=0.0)
    frames = _take(src, 1)
    assert len(frames) == 1 and src.reconnects >= 1 and fake.STATE.starts >= 2


def test_device_serial_selects_the_camera(fake):
    fake.STATE.serials = ["AAA", "BBB"]
    stop = threading.Event()
    src = KinectSource(device_serial="BBB", stop_event=stop)
    assert len(_take(src, 1)) == 1
    fake.STATE.serials = ["AAA"]
    src = KinectSource(device_serial="BBB", reconnect_backoff=(0.01, 0.02), stop_event=stop)
    timer = threading.Timer(0.2, stop.set)
    timer.start()
    stop.clear()
    assert _take(src, 1) == [] and fake.STATE.starts == 1  # wrong camera never started


def test_missing_pyk4a_is_one_line_source_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyk4a", None)  # import pyk4a -> ImportError
    with pytest.raises(SourceError) as info:
        KinectSource().open()
    msg = str(info.value)
    assert "\n" not in msg and "Azure Kinect SDK" in msg and "pip install 'kinect-occlusion[kinect]'" in msg


def test_missing_native_library_is_the_same_error(monkeypatch):
    monkeypatch.syspath_prepend(str(FAKES))
    monkeypatch.delitem(sys.modules, "pyk4a", raising=False)
    monkeypatch.setenv("FAKE_PYK4A_ABSENT", "1")
    with pytest.raises(SourceError, match="Orbbec"):
        KinectSource().open()
    sys.modules.pop("pyk4a", None)


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"color_format": "NV12", "color_resolution": "1080P"}, "camera.color_format"),
        ({"fps": 30, "depth_mode": "WFOV_UNBINNED"}, "camera.fps"),
        ({"color_resolution": "999P"}, "camera.resolution"),
    ],
)
def test_modes_the_camera_lacks_are_rejected_up_front(kwargs, key):
    with pytest.raises(SourceError, match=key):
        KinectSource(**kwargs)


def test_cli_run_without_sdk_prints_one_line(tmp_path):
    """The daemon's source factory path: a config with source=kinect and no pyk4a installed."""
    code = (
        "import sys; sys.modules['pyk4a'] = None\n"
        "from kinect_occlusion.config import CameraConfig\n"
        "from kinect_occlusion.sources.factory import build_source\n"
        "from kinect_occlusion.errors import SourceError\n"
        "src = build_source(CameraConfig(source='kinect'))\n"
        "try:\n    src.open()\nexcept SourceError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("\n") == 1 and "Azure Kinect SDK" in out.stdout
