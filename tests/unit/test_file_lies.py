"""Files that look valid on the surface but lie inside: each is refused in one line, cheaply.

Real .mkv recordings written with our writer, real checkpoint files; only their contents are hostile.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from kinect_occlusion.depth.calibration import CalibrationError, parse_calibration
from kinect_occlusion.depth.device_calibration import device_calibration
from kinect_occlusion.sources.k4a_formats import encode_color
from kinect_occlusion.sources.mkv import MkvSource
from kinect_occlusion.sources.mkv_writer import K4AMkvWriter

DEPTH = np.full((288, 320), 1800, np.uint16)
GREY_720P = encode_color(np.full((720, 1280, 3), 90, np.uint8), "MJPG")


def _recording(path, calibration: str, color: list[bytes] | None = None):
    """Two captures at 15 fps (NFOV binned depth; MJPG 720p colour payloads ``color`` when given)."""
    color_mode = "OFF" if color is None else "MJPG_720P"
    with K4AMkvWriter(
        path, color_mode=color_mode, depth_mode="NFOV_2X2BINNED", fps=15, calibration_json=calibration
    ) as w:
        for i in range(2):
            jpeg = None if color is None else color[i]
            w.write_encoded(1_000_000 + i * 66_666, color=jpeg, depth=DEPTH.astype(">u2").tobytes())
    return path


# ---------------------------------------------------------------- calibration attachment


def _calibration(edit) -> str:
    """The device calibration as JSON text after ``edit(text)`` (Python's json writes Infinity/NaN)."""
    return edit(json.dumps(device_calibration()))


def _infinite_sensor(text: str) -> str:
    return text.replace('"SensorWidth": 1024', '"SensorWidth": Infinity', 1)


def _huge_integer(text: str) -> str:
    doc = json.loads(text)
    doc["CalibrationInformation"]["Cameras"][1]["Intrinsics"]["ModelParameters"][2] = 10**400
    return json.dumps(doc)


@pytest.mark.parametrize("edit", [_infinite_sensor, _huge_integer])
def test_a_calibration_with_numbers_beyond_float_is_one_line(edit):
    text = _calibration(edit)
    with pytest.raises(CalibrationError) as info:
        parse_calibration(text, "NFOV_2X2BINNED", "720P", source="rec.mkv")
    assert str(info.value).startswith("rec.mkv: unusable calibration: ") and "\n" not in str(info.value)


def test_a_recording_whose_calibration_overflows_plays_unaligned_after_one_line(tmp_path, caplog):
    rec = _recording(tmp_path / "inf.mkv", _calibration(_infinite_sensor), [GREY_720P] * 2)
    with caplog.at_level(logging.WARNING), MkvSource(rec, align_depth=True) as src:
        frames = list(src)
    lines = [r.getMessage() for r in caplog.records if "align" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith("inf.mkv: cannot align depth to colour: unusable"), lines
    assert len(frames) == 2 and all(f.depth.shape == (288, 320) for f in frames)
