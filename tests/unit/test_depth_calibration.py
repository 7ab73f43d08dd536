"""Parsing the K4A calibration: mode-specific intrinsics, extrinsics, and one-line errors for bad input."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from kinect_occlusion.depth.calibration import (
    COLOR_MODE_INFO,
    DEPTH_MODE_INFO,
    CalibrationError,
    parse_calibration,
)
from kinect_occlusion.depth.device_calibration import COLOR_PARAMS, DEPTH_PARAMS, device_calibration
from kinect_occlusion.sources.k4a_formats import COLOR_RESOLUTIONS, DEPTH_MODES, synthetic_calibration_json

F32 = np.float32
IMU_FIELDS = ("BiasTemperatureModel", "BiasUncertainty", "MixingMatrixTemperatureModel", "ModelTypeMask")
IMU_FIELDS += ("Noise", "Rt", "SecondOrderScaling", "TemperatureBounds", "TemperatureC")


def _text(edit=None) -> str:
    doc = copy.deepcopy(device_calibration("000000000001"))
    if edit is not None:
        edit(doc["CalibrationInformation"])
    return json.dumps(doc)


@pytest.mark.parametrize("depth_mode", sorted(DEPTH_MODE_INFO))
def test_every_depth_mode_scales_crops_and_centres_the_intrinsics(depth_mode):
    cal = parse_calibration(_text(), depth_mode, "OFF")
    (bw, bh), (ox, oy), size = DEPTH_MODE_INFO[depth_mode]
    assert cal.color is None and cal.depth is not None
    assert (cal.depth.width, cal.depth.height) == size == DEPTH_MODES[depth_mode]
    assert cal.depth.cx == F32(DEPTH_PARAMS[0]) * F32(bw) - F32(ox) - F32(0.5)
    assert cal.depth.cy == F32(DEPTH_PARAMS[1]) * F32(bh) - F32(oy) - F32(0.5)
    assert cal.depth.fx == F32(DEPTH_PARAMS[2]) * F32(bw) and cal.depth.fy == F32(DEPTH_PARAMS[3]) * F32(bh)
    assert cal.depth.k == tuple(F32(p) for p in DEPTH_PARAMS[4:10])
    assert (cal.depth.p2, cal.depth.p1) == (F32(DEPTH_PARAMS[12]), F32(DEPTH_PARAMS[13]))
    assert cal.depth.metric_radius == F32(1.74)


@pytest.mark.parametrize("resolution", sorted(COLOR_MODE_INFO))
def test_every_colour_resolution_has_its_size_and_principal_point(resolution):
    cal = parse_calibration(_text(), "OFF", resolution)
    (bw, bh), (_, oy), size = COLOR_MODE_INFO[resolution]
    assert cal.color is not None and size == COLOR_RESOLUTIONS[resolution]
    assert (cal.color.width, cal.color.height) == size
    assert cal.color.cy == F32(COLOR_PARAMS[1]) * F32(bh) - F32(oy) - F32(0.5)
    assert cal.color.metric_radius == F32(1.7)  # 0 in the file: the SDK's default


def test_a_legacy_16_9_colour_calibration_is_converted_to_4_3():
    def legacy(info):
        cam = info["Cameras"][1]
        cam["SensorHeight"] = 2304
        cam["Intrinsics"]["ModelParameters"][1] = 0.5  # cy at the centre of the 16:9 sensor
        cam["Intrinsics"]["ModelParameters"][3] = 0.84  # fy relative to 2304 rows

    cal = parse_calibration(_text(legacy), "OFF", "720P")
    # 16:9 → 4:3: cy·2304 + 384 rows, fy·2304, both then relative to 3072; 720P: ·960 − 120 − 0.5
    cy43 = (F32(0.5) * F32(2304) + F32(384)) / F32(3072)
    assert cal.color.cy == cy43 * F32(960) - F32(120) - F32(0.5)
    assert cal.color.cy == pytest.approx(359.5)
    assert cal.color.fy == pytest.approx(0.84 * 2304 / 3072 * 960, rel=1e-6)


def test_extrinsics_are_in_millimetres_and_invert_each_other():
    cal = parse_calibration(_text(), "NFOV_UNBINNED", "720P")
    np.testing.assert_allclose(cal.depth_to_color.translation, [-32.011, -2.0233, 3.9866], atol=1e-3)
    both = cal.color_to_depth.then(cal.depth_to_color)
    np.testing.assert_allclose(both.rotation, np.eye(3), atol=1e-6)
    np.testing.assert_allclose(both.translation, 0, atol=1e-4)


def test_the_synthetic_calibration_is_complete_for_the_sdk():
    info = json.loads(synthetic_calibration_json())["CalibrationInformation"]
    sensors = {s["SensorType"]: s for s in info["InertialSensors"]}
    assert set(sensors) == {
        "CALIBRATION_InertialSensorType_Gyro",
        "CALIBRATION_InertialSensorType_Accelerometer",
    }
    for sensor in sensors.values():  # every field the SDK's get_imu_calibration requires
        for key in IMU_FIELDS:
            assert key in sensor
        assert len(sensor["MixingMatrixTemperatureModel"]) == 36 and len(sensor["BiasTemperatureModel"]) == 12


def _rational(info):
    info["Cameras"][0]["Intrinsics"]["ModelType"] = "CALIBRATION_LensDistortionModelRational6KT"


def _no_color(info):
    info["Cameras"].pop(1)


def _no_params(info):
    del info["Cameras"][0]["Intrinsics"]["ModelParameters"]


def _nan(info):
    info["Cameras"][1]["Intrinsics"]["ModelParameters"][4] = "NaN"


def _short(info):
    info["Cameras"][0]["Intrinsics"]["ModelParameters"] = [0.5] * 4


def _zero_focal(info):
    info["Cameras"][0]["Intrinsics"]["ModelParameters"][2] = 0


def _sensor_size(info):
    info["Cameras"][0]["SensorWidth"] = 640


@pytest.mark.parametrize(
    "text, expected",
    [
        (_text(_rational), "Rational6KT is deprecated"),
        (_text(_no_color), "colour camera PV0 missing"),
        (_text(_no_params), "missing field ModelParameters"),
        (_text(_nan), "non-number"),
        (_text(_short), "needs 14 numbers"),
        (_text(_zero_focal), "must be positive"),
        (_text(_sensor_size), "expected 1024×1024"),
        ('{"CalibrationInformation": ', "unusable calibration"),
        ("[" * 100_000, "unusable calibration"),
        ('{"synthetic": true}', "no CalibrationInformation"),
        (b"\xff\xfe garbage", "unusable calibration"),
        (" " * (2 << 20), "larger than"),
    ],
)
def test_a_bad_calibration_is_one_line_naming_the_file(text, expected):
    with pytest.raises(CalibrationError) as info:
        parse_calibration(text, "NFOV_UNBINNED", "720P", source="rec.mkv")
    message = str(info.value)
    assert message.startswith("rec.mkv: ") and expected in message and "\n" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_missing_calibration_and_unknown_modes_are_one_line():
    with pytest.raises(CalibrationError, match=r"^rec.mkv: no calibration"):
        parse_calibration(None, "NFOV_UNBINNED", "720P", source="rec.mkv")
    with pytest.raises(CalibrationError, match="unknown depth mode 'NFOV'"):
        parse_calibration(_text(), "NFOV", "720P")
    with pytest.raises(CalibrationError, match="unknown colour resolution '4K'"):
        parse_calibration(_text(), "NFOV_UNBINNED", "4K")


def test_editing_one_device_calibration_leaves_the_next_intact():
    doc = device_calibration()
    cam = doc["CalibrationInformation"]["Cameras"]
    cam[0]["Intrinsics"]["ModelParameters"][4] = 1e30
    cam[1]["Rt"]["Translation"][0] = 5.0
    fresh = device_calibration()["CalibrationInformation"]["Cameras"]
    assert fresh[0]["Intrinsics"]["ModelParameters"][4] == DEPTH_PARAMS[4] == 3.3852
    assert fresh[1]["Rt"]["Translation"][0] == -0.032011
