"""``info`` / ``export`` / ``record`` commands on real .mkv files; the Kinect itself is faked."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from kinect_occlusion.commands import export, info, record
from kinect_occlusion.errors import SourceError, UserError
from kinect_occlusion.sources.base import Frame, Source
from kinect_occlusion.sources.mkv import MkvSource, probe_mkv
from kinect_occlusion.sources.mkv_writer import K4AMkvWriter

ROOT = Path(__file__).resolve().parents[2]


def small_recording(path: Path, n: int = 3):
    rng = np.random.default_rng(3)
    colors = [
        np.repeat(np.repeat(rng.integers(0, 255, (9, 16, 3), np.uint8), 80, 0), 80, 1) for _ in range(n)
    ]
    depths = [rng.integers(0, 65536, (288, 320), np.uint16) for _ in range(n)]
    with K4AMkvWriter(
        path,
        color_mode="MJPG_720P",
        depth_mode="NFOV_2X2BINNED",
        fps=15,
        serial="000111222333",
        calibration_json='{"CalibrationInformation": {}}',
        start_offset_ns=None,
    ) as w:
        for i in range(n):
            w.write(colors[i], depths[i], None, 7_000_000 + i * 66_667)
    return colors, depths


def test_info_json_and_text(tmp_path, capsys):
    small_recording(tmp_path / "a.mkv")
    assert info.run(argparse.Namespace(file=str(tmp_path / "a.mkv"), json=True)) == 0
    d = json.loads(capsys.readouterr().out)
    assert (d["frame_count"], d["fps"], d["serial"], d["has_calibration"]) == (3, 15, "000111222333", True)
    assert d["depth_mode"] == "NFOV_2X2BINNED" and [t["name"] for t in d["tracks"]] == [
        "COLOR",
        "DEPTH",
        "IR",
    ]
    assert info.run(argparse.Namespace(file=str(tmp_path / "a.mkv"), json=False)) == 0
    text = capsys.readouterr().out
    assert "MJPG_720P" in text and "frames:      3" in text and "calibration: present" in text


def test_export_writes_rgb_and_bit_exact_depth_pngs(tmp_path):
    colors, depths = small_recording(tmp_path / "a.mkv")
    out = tmp_path / "png"
    assert (
        export.run(argparse.Namespace(file=str(tmp_path / "a.mkv"), out=str(out), max_frames=2, ir=False))
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "color_000000.png",
        "color_000001.png",
        "depth_000000.png",
        "depth_000001.png",
    ]
    for i in range(2):
        depth = cv2.imread(str(out / f"depth_{i:06d}.png"), cv2.IMREAD_UNCHANGED)
        assert depth.dtype == np.uint16 and np.array_equal(depth, depths[i])
        rgb = cv2.cvtColor(cv2.imread(str(out / f"color_{i:06d}.png")), cv2.COLOR_BGR2RGB)
        assert np.abs(rgb.astype(int) - colors[i]).mean() < 3.0


def test_export_rejects_bad_file(tmp_path):
    (tmp_path / "x.mkv").write_text("hello")
    with pytest.raises(SourceError, match="not a Matroska"):
        export.run(
            argparse.Namespace(
                file=str(tmp_path / "x.mkv"), out=str(tmp_path / "o"), max_frames=None, ir=False
            )
        )


def record_args(out: Path, **kw) -> argparse.Namespace:
    base = dict(
        out=str(out),
        seconds=0.4,
        source="synthetic",
        fps=5,
        color_mode="MJPG_720P",
        depth_mode="NFOV_2X2BINNED",
        seed=0,
        jpeg_quality=80,
    )
    return argparse.Namespace(**{**base, **kw})


def test_record_synthetic(tmp_path):
    out = tmp_path / "syn.mkv"
    assert record.run(record_args(out)) == 0
    meta = probe_mkv(out)
    assert (meta.frame_count, meta.fps, meta.color_mode, meta.has_calibration) == (2, 5, "MJPG_720P", True)
    with MkvSource(out) as src:
        frames = list(src)
        assert "SYNTHETIC" in src.calibration
    assert frames[0].depth.shape == (288, 320) and frames[0].color.shape == (720, 1280, 3)
    assert frames[1].ts_us - frames[0].ts_us == 200_000


CALIBRATION = '{"CalibrationInformation": {"Metadata": {"SerialId": "fake"}}}'


class FakeKinect(Source):
    """Stands in for the camera: 1280×720 RGB, depth and IR at the depth mode's size, a calibration."""

    def __init__(
        self,
        color_resolution="720P",
        fps=30,
        color_format="MJPG",
        depth_mode="NFOV_UNBINNED",
        align_depth=False,
        device_serial=None,
    ):
        self.kwargs = dict(
            color_resolution=color_resolution, fps=fps, color_format=color_format, depth_mode=depth_mode
        )
        self.calibration = None  # as the real one: known once the camera streams
        self.device_serial = device_serial
        FakeKinect.last = self

    def frames(self):
        self.calibration = CALIBRATION
        self.serial = "987654321098"
        for i in range(100):
            d = np.full((576, 640), 1000 + i, np.uint16)
            yield Frame(
                i, 123_456_789 + i * 33_333, color=np.full((720, 1280, 3), 80, np.uint8), depth=d, ir=d + 7
            )


def test_record_kinect_writes_its_calibration_serial_and_ir(tmp_path, monkeypatch):
    monkeypatch.setitem(
        sys.modules, "kinect_occlusion.sources.kinect", types.SimpleNamespace(KinectSource=FakeKinect)
    )
    out = tmp_path / "cam.mkv"
    assert (
        record.run(
            record_args(
                out, source="kinect", fps=30, seconds=0.1, color_mode="NV12_720P", depth_mode="NFOV_UNBINNED"
            )
        )
        == 0
    )
    assert FakeKinect.last.kwargs == dict(
        color_resolution="720P", fps=30, color_format="NV12", depth_mode="NFOV_UNBINNED"
    )
    with MkvSource(out, ir=True) as src:
        frames = list(src)
        assert src.calibration == CALIBRATION
        assert src.tags["K4A_DEVICE_SERIAL_NUMBER"] == "987654321098"
    assert [f.ts_us for f in frames] == [123_456_789 + i * 33_333 for i in range(3)]
    assert int(frames[2].depth[0, 0]) == 1002 and int(frames[2].ir[0, 0]) == 1009


def test_record_rejects_bad_arguments(tmp_path):
    with pytest.raises(UserError, match="--color-mode"):
        record.run(record_args(tmp_path / "x.mkv", color_mode="RGB_720P"))
    with pytest.raises(UserError, match="--seconds"):
        record.run(record_args(tmp_path / "x.mkv", seconds=0))


def test_cli_info_subprocess(tmp_path):
    small_recording(tmp_path / "a.mkv")
    cmd = [sys.executable, "-m", "kinect_occlusion", "info", str(tmp_path / "a.mkv"), "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["frame_count"] == 3
    (tmp_path / "bad.mkv").write_bytes(b"\x00" * 100)
    done = subprocess.run(
        cmd[:4] + [str(tmp_path / "bad.mkv")], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 2 and "not a Matroska" in done.stderr and "Traceback" not in done.stderr


def test_bundled_sample_recording():
    sample = ROOT / "recordings" / "sample.mkv"
    meta = probe_mkv(sample)
    assert (meta.color_mode, meta.depth_mode, meta.fps, meta.frame_count) == (
        "MJPG_720P",
        "NFOV_2X2BINNED",
        5,
        15,
    )
    assert meta.has_calibration and sample.stat().st_size <= 4_000_000
    with MkvSource(sample, max_frames=1) as src:
        frame = next(iter(src))
        assert "SYNTHETIC" in json.loads(src.calibration)["CalibrationInformation"]["Metadata"]["Notes"]
    assert frame.color.shape == (720, 1280, 3) and frame.depth.shape == (288, 320) and frame.depth.max() > 0


def test_sample_tool_is_deterministic(tmp_path):
    tool = [
        sys.executable,
        str(ROOT / "tools" / "make_sample_recording.py"),
        "--seconds",
        "0.4",
        "--seed",
        "3",
    ]
    for name in ("a.mkv", "b.mkv"):
        done = subprocess.run(
            [*tool, "--out", str(tmp_path / name)], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
    assert (tmp_path / "a.mkv").read_bytes() == (tmp_path / "b.mkv").read_bytes()
    assert probe_mkv(tmp_path / "a.mkv").frame_count == 2


def test_export_of_a_damaged_recording_keeps_the_intact_frames_and_warns_once(tmp_path):
    from harness import write_recording

    path = tmp_path / "rec.mkv"
    write_recording(path, n_frames=20)
    data = bytearray(path.read_bytes())
    jpegs = [i for i in range(len(data) - 2) if data[i : i + 3] == b"\xff\xd8\xff"]
    assert len(jpegs) == 20
    data[jpegs[10] + 600 : jpegs[10] + 2600] = bytes(2000)  # frame 10's JPEG corrupted
    cut = jpegs[18] + 1000  # cut inside frame 18 (whatever the size of the header and calibration)
    (tmp_path / "bad.mkv").write_bytes(bytes(data[:cut]))
    out = tmp_path / "png"
    cmd = [sys.executable, "-m", "kinect_occlusion", "export", str(tmp_path / "bad.mkv"), "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    colors = sorted(p.name for p in out.glob("color_*.png"))
    assert len(colors) == 17 and "color_000010.png" not in colors
    assert len(list(out.glob("depth_*.png"))) == 18
    warnings = [line for line in done.stderr.splitlines() if "bad.mkv" in line and "WARNING" in line]
    assert len(warnings) == 1, done.stderr
    assert "1 corrupt frame(s) skipped or incomplete (frame 10: COLOR)" in warnings[0]
    assert f"stopped at byte {cut} after frame 17" in warnings[0] and "Traceback" not in done.stderr
