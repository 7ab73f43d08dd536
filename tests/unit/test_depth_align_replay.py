"""Replay honours ``camera.align_depth_to_color``: depth reprojected onto the colour image with the
recording's own calibration; a recording that cannot be aligned says so in one line and still plays."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from kinect_occlusion.config import CameraConfig
from kinect_occlusion.depth.calibration import parse_calibration
from kinect_occlusion.depth.device_calibration import device_calibration_json
from kinect_occlusion.depth.transform import DepthToColor
from kinect_occlusion.sources.factory import build_source
from kinect_occlusion.sources.mkv import MkvSource
from kinect_occlusion.sources.mkv_writer import K4AMkvWriter

DEPTH = np.full((288, 320), 1800, np.uint16)
DEPTH[100:150, 120:200] = 900


def _record(
    path,
    calibration: str | None = device_calibration_json(),
    color_mode="MJPG_720P",
    depth_mode="NFOV_2X2BINNED",
):
    rng = np.random.default_rng(0)
    with K4AMkvWriter(
        path, color_mode=color_mode, depth_mode=depth_mode, fps=15, calibration_json=calibration
    ) as w:
        for i in range(2):
            color = None if color_mode == "OFF" else rng.integers(0, 255, (720, 1280, 3), np.uint8)
            w.write(color, DEPTH, None, 1_000_000 + i * 66_666)
    return path


def test_replay_publishes_depth_aligned_to_colour(tmp_path):
    rec = _record(tmp_path / "rec.mkv")
    cam = CameraConfig(
        source="mkv", mkv_path=str(rec), depth_mode="NFOV_2X2BINNED", align_depth_to_color=True
    )
    with build_source(cam) as src:
        frames = list(src)
    expected = DepthToColor.build(parse_calibration(device_calibration_json(), "NFOV_2X2BINNED", "720P"))(
        DEPTH
    )
    assert len(frames) == 2
    for frame in frames:
        assert frame.extra.get("aligned_to_color") is True
        assert frame.depth.shape == (720, 1280) and frame.color.shape == (720, 1280, 3)
        np.testing.assert_array_equal(frame.depth, expected)
    assert (expected == 0).mean() < 0.5 and ((expected > 0) & (expected < 1000)).sum() > 5000


def test_without_the_switch_depth_stays_raw(tmp_path):
    rec = _record(tmp_path / "rec.mkv")
    with MkvSource(rec) as src:
        frame = next(iter(src))
    assert frame.depth.shape == (288, 320) and "aligned_to_color" not in frame.extra


def _rational(text: str) -> str:
    doc = json.loads(text)
    doc["CalibrationInformation"]["Cameras"][0]["Intrinsics"]["ModelType"] = (
        "CALIBRATION_LensDistortionModelRational6KT"
    )
    return json.dumps(doc)


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"calibration": None}, "no calibration (calibration.json attachment missing)"),
        ({"calibration": '{"synthetic": true}'}, "unusable calibration: no CalibrationInformation"),
        ({"calibration": _rational(device_calibration_json())}, "Rational6KT is deprecated"),
        ({"color_mode": "OFF"}, "the recording has no COLOR track"),
        ({"depth_mode": "OFF"}, "the recording has no DEPTH track"),
    ],
)
def test_a_recording_that_cannot_be_aligned_says_why_in_one_line_and_still_plays(
    tmp_path, caplog, kwargs, expected
):
    rec = (
        _colour_only(tmp_path)
        if kwargs.get("depth_mode") == "OFF"
        else _record(tmp_path / "bad.mkv", **kwargs)
    )
    with caplog.at_level(logging.WARNING), MkvSource(rec, align_depth=True) as src:
        frames = list(src)
    lines = [r.getMessage() for r in caplog.records if "align" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith(f"{rec.name}: ") and expected in lines[0], lines
    assert "\n" not in lines[0] and "Traceback" not in caplog.text
    assert len(frames) == 2
    for frame in frames:
        assert "aligned_to_color" not in frame.extra
        assert frame.depth is None or frame.depth.shape == (288, 320)


def _colour_only(tmp_path):
    path = tmp_path / "bad.mkv"
    with K4AMkvWriter(
        path, color_mode="MJPG_720P", depth_mode="OFF", fps=15, calibration_json=device_calibration_json()
    ) as w:
        for i in range(2):
            w.write(np.zeros((720, 1280, 3), np.uint8), None, None, 1_000_000 + i * 66_666)
    return path


def test_depth_of_another_size_than_its_mode_is_one_line(tmp_path, caplog):
    rec = _record(tmp_path / "odd.mkv")
    src = MkvSource(rec, align_depth=True)
    src.open()
    src.tags["K4A_DEPTH_MODE"] = "NFOV_UNBINNED"  # a tag that contradicts the 320×288 track
    src._aligner = None
    with caplog.at_level(logging.WARNING):
        assert src._build_aligner() is None
    assert (
        "odd.mkv: cannot align depth to colour: depth is 320×288, not the size of depth mode 'NFOV_UNBINNED'"
        in caplog.text
    )


def test_info_prints_the_intrinsics_and_names_an_unusable_calibration(tmp_path):
    import subprocess
    import sys

    good, bad = _record(tmp_path / "good.mkv"), _record(tmp_path / "bad.mkv", calibration='{"x": 1}')
    cal = parse_calibration(device_calibration_json(), "NFOV_2X2BINNED", "720P")

    def info(path, *extra):
        cmd = [sys.executable, "-m", "kinect_occlusion", "info", str(path), *extra]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    d = json.loads(info(good, "--json"))["intrinsics"]
    assert d["depth"]["fx"] == float(cal.depth.fx) and d["color"]["cy"] == float(cal.color.cy)
    assert d["color"]["k1_k6"] == [float(v) for v in cal.color.k] and d["depth"]["width"] == 320
    text = info(good)
    assert (
        f"depth:       320x288 fx {cal.depth.fx:.3f}" in text and "depth→colour: translation -32.01" in text
    )
    assert "intrinsics:  unavailable (bad.mkv: unusable calibration: no CalibrationInformation)" in info(bad)


def test_export_aligned_writes_colour_sized_depth_pngs_or_refuses_in_one_line(tmp_path):
    import subprocess
    import sys

    import cv2

    good, bad = _record(tmp_path / "good.mkv"), _record(tmp_path / "bad.mkv", calibration=None)
    cmd = [sys.executable, "-m", "kinect_occlusion", "export", "--aligned"]
    done = subprocess.run([*cmd, str(good), "--out", str(tmp_path / "png")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    pngs = sorted((tmp_path / "png").glob("depth_aligned_*.png"))
    assert len(pngs) == 2 and not list((tmp_path / "png").glob("depth_0*.png"))
    expected = DepthToColor.build(parse_calibration(device_calibration_json(), "NFOV_2X2BINNED", "720P"))(
        DEPTH
    )
    np.testing.assert_array_equal(cv2.imread(str(pngs[0]), cv2.IMREAD_UNCHANGED), expected)
    done = subprocess.run([*cmd, str(bad), "--out", str(tmp_path / "png2")], capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "bad.mkv: cannot align depth to colour: no calibration" in done.stderr
    assert f"{bad}: --aligned: cannot align this recording's depth" in done.stderr.splitlines()[-1]
