"""One Azure Kinect mode table: the config, the Kinect source and the .mkv writer accept the same modes.

The expected modes are written out here independently, as the Azure Kinect SDK's
``validate_configuration`` (src/sdk/k4a.c) lists them: colour (resolution, format) → highest fps,
depth mode → highest fps.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from typing import get_args

import numpy as np
import pytest

from kinect_occlusion.config import CameraConfig, validate
from kinect_occlusion.errors import SourceError, UserError
from kinect_occlusion.sources import k4a_formats as k4a
from kinect_occlusion.sources.kinect import KinectSource
from kinect_occlusion.sources.mkv_writer import K4AMkvWriter

ALL_RES = ("720P", "1080P", "1440P", "1536P", "2160P", "3072P")
SDK_COLOR = {
    **{(res, "MJPG"): 30 for res in ALL_RES},
    **{(res, "BGRA32"): 30 for res in ALL_RES},
    ("3072P", "MJPG"): 15,
    ("3072P", "BGRA32"): 15,
    ("720P", "NV12"): 30,
    ("720P", "YUY2"): 30,
}
SDK_DEPTH = {"NFOV_2X2BINNED": 30, "NFOV_UNBINNED": 30, "WFOV_2X2BINNED": 30, "WFOV_UNBINNED": 15}
CONFIG_DEPTH = ("OFF", *SDK_DEPTH)
FORMATS = ("MJPG", "NV12", "YUY2", "BGRA32")


def sdk_offers(res: str, fps: int, fmt: str, depth: str) -> bool:
    color_ok = fps <= SDK_COLOR.get((res, fmt), 0)
    return color_ok and (depth == "OFF" or fps <= SDK_DEPTH[depth])


COMBOS = list(itertools.product(ALL_RES, (5, 15, 30), FORMATS, CONFIG_DEPTH))


def camera(res: str, fps: int, fmt: str, depth: str) -> dict:
    return {"camera": {"resolution": res, "fps": fps, "color_format": fmt, "depth_mode": depth}}


def test_every_mode_the_sdk_offers_is_accepted_and_every_other_rejected_naming_the_fields():
    accepted = rejected = 0
    for res, fps, fmt, depth in COMBOS:
        if sdk_offers(res, fps, fmt, depth):
            validate(camera(res, fps, fmt, depth))
            accepted += 1
            continue
        with pytest.raises(UserError) as exc:
            validate(camera(res, fps, fmt, depth))
        text = str(exc.value)
        assert text.count(";") == 0 and "\n" not in text, text  # one message
        assert text.startswith("config: camera: camera."), text
        assert "Value error" not in text
        named = {k for k in ("resolution", "fps", "color_format", "depth_mode") if f"camera.{k}" in text}
        assert len(named) >= 2, text  # the fields that clash
        rejected += 1
    # 5 and 15 fps: 14 colour modes × 5 depth modes; 30 fps: 12 colour modes × 4 depth modes
    assert (accepted, rejected) == (2 * 14 * 5 + 12 * 4, len(COMBOS) - accepted)


def test_the_issue_example_names_format_and_resolution():
    with pytest.raises(UserError, match="camera.color_format NV12 is only offered at camera.resolution 720P"):
        validate(camera("3072P", 30, "NV12", "NFOV_UNBINNED"))
    with pytest.raises(UserError, match="camera.resolution 3072P runs at most at 15 fps: lower camera.fps"):
        validate(camera("3072P", 30, "MJPG", "OFF"))
    with pytest.raises(UserError, match="camera.depth_mode WFOV_UNBINNED runs at most at 15 fps"):
        validate(camera("720P", 30, "MJPG", "WFOV_UNBINNED"))


def test_validate_config_command_refuses_a_mode_the_camera_lacks(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("camera: {source: kinect, resolution: 3072P, fps: 30, color_format: NV12}\n")
    res = subprocess.run(
        [sys.executable, "-m", "kinect_occlusion", "validate-config", str(p)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode != 0 and "OK" not in res.stdout
    assert "camera.color_format NV12" in res.stderr and "Traceback" not in res.stderr
    assert [line for line in res.stderr.splitlines() if "camera." in line] == [res.stderr.splitlines()[0]]


def test_config_literals_are_the_table():
    fields = CameraConfig.model_fields
    assert set(get_args(fields["resolution"].annotation)) == set(k4a.COLOR_RESOLUTIONS) == set(ALL_RES)
    assert set(get_args(fields["color_format"].annotation)) == set(k4a.COLOR_FORMATS) == set(FORMATS)
    assert set(get_args(fields["fps"].annotation)) == set(k4a.FPS_RATES) == {5, 15, 30}
    depth = {a for arg in get_args(fields["depth_mode"].annotation) for a in (get_args(arg) or (arg,))}
    assert depth == set(CONFIG_DEPTH)
    assert set(k4a.DEPTH_MODES) == set(SDK_DEPTH) | {"PASSIVE_IR"}


@pytest.mark.parametrize("res, fps, fmt, depth", [c for c in COMBOS if not sdk_offers(*c)][::7])
def test_kinect_source_rejects_what_the_config_rejects(res, fps, fmt, depth):
    with pytest.raises(SourceError, match=r"camera\.\w+"):
        KinectSource(color_resolution=res, fps=fps, color_format=fmt, depth_mode=depth)


@pytest.mark.parametrize("res, fps, fmt, depth", [c for c in COMBOS if sdk_offers(*c)][::11])
def test_kinect_source_accepts_what_the_config_accepts(res, fps, fmt, depth):
    src = KinectSource(color_resolution=res, fps=fps, color_format=fmt, depth_mode=depth)
    assert (src.color_resolution, src.fps, src.color_format, src.depth_mode) == (res, fps, fmt, depth)


def test_writer_uses_the_same_table(tmp_path):
    # A mode no Azure Kinect records is refused before the file is created
    for color_mode, fps, depth in (
        ("MJPG_3072P", 30, "OFF"),
        ("NV12_1080P", 5, "OFF"),
        ("OFF", 30, "WFOV_UNBINNED"),
    ):
        with pytest.raises(ValueError, match="fps|720P") as exc:
            K4AMkvWriter(tmp_path / "x.mkv", color_mode=color_mode, depth_mode=depth, fps=fps)
        assert isinstance(exc.value, UserError)  # one line in the CLI, not a traceback
    assert not (tmp_path / "x.mkv").exists()
    with K4AMkvWriter(tmp_path / "ok.mkv", color_mode="MJPG_3072P", depth_mode="WFOV_UNBINNED", fps=15) as w:
        assert w.color_mode_tag == "MJPG_3072P"


def test_bgra_has_one_name_and_one_fourcc():
    # SDK/config name BGRA32; k4arecord's FourCC and mode tag BGRA; both spellings parse to the SDK name
    assert (
        k4a.parse_color_mode("BGRA_1080P") == k4a.parse_color_mode("BGRA32_1080P") == ("BGRA32", 1920, 1080)
    )
    assert k4a.color_mode_tag("BGRA32", "720P") == "BGRA_720P"
    assert k4a.FORMAT_BY_FOURCC == {"MJPG": "MJPG", "NV12": "NV12", "YUY2": "YUY2", "BGRA": "BGRA32"}
    with pytest.raises(ValueError, match="unknown colour format"):
        k4a.encode_color(np.zeros((2, 2, 3), np.uint8), "BGRA")
