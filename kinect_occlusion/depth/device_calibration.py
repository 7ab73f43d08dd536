"""A realistic Azure Kinect ``calibration.json`` for recordings we make (the sample, tests, ``record``).

SYNTHETIC, not from a device (says so in ``Metadata.Notes``), but with the structure and magnitudes
of a retail device's raw calibration, as the SDK reads it (``src/calibration/calibration.c``):

- ``Cameras``: depth ``D0`` (1024² sensor, world = depth: identity Rt) and colour ``PV0`` (4096×3072
  sensor, 4:3), Brown–Conrady with 14 parameters ``cx cy fx fy k1…k6 codx cody p2 p1`` (principal
  point and focal length divided by the sensor size, 0-cornered). The depth lens is a wide fisheye-like
  rational model (k1–k6 of a few units, metric radius 1.74); the colour lens is mildly distorted
  (metric radius 0: the SDK then uses 1.7). Colour sits ~32 mm beside the depth camera, tilted ~6°
  down, as on the device.
- ``InertialSensors``: ``Gyro`` and ``Accelerometer`` with every field the SDK requires (bias and
  mixing-matrix temperature models, noise, Rt from depth, second-order scaling, temperature bounds,
  temperature). Without them ``k4a_playback_get_calibration`` fails, and pyk4a reads no frame.
"""

from __future__ import annotations

import json
import math

# cx cy fx fy k1 k2 k3 k4 k5 k6 codx cody p2 p1
DEPTH_PARAMS = [0.50464, 0.50728, 0.49204, 0.49217, 3.3852, 2.2215, 0.10863, 3.7119, 3.2851, 0.57405]
DEPTH_PARAMS += [0.0, 0.0, -4.17e-05, 4.57e-05]
COLOR_PARAMS = [0.49963, 0.50790, 0.47325, 0.63094, 0.53597, -2.6534, 1.5957, 0.41534, -2.4879, 1.5259]
COLOR_PARAMS += [0.0, 0.0, -3.61e-04, 6.48e-04]
COLOR_TRANSLATION_M = [-0.032011, -0.0020233, 0.0039866]
COLOR_TILT_DEG = -5.9


def _rotation_x(degrees: float) -> list[float]:
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return [1.0, 0.0, 0.0, 0.0, c, -s, 0.0, s, c]


def _camera(location: str, purpose: str, size: tuple[int, int], params: list[float], radius: float,
            rotation: list[float], translation: list[float]) -> dict:  # fmt: skip
    return {
        "Intrinsics": {
            "ModelParameterCount": 14,
            "ModelParameters": list(params),  # a copy: callers may edit the dict
            "ModelType": "CALIBRATION_LensDistortionModelBrownConrady",
        },
        "Location": f"CALIBRATION_CameraLocation{location}",
        "Purpose": f"CALIBRATION_CameraPurpose{purpose}",
        "MetricRadius": radius,
        "Rt": {"Rotation": list(rotation), "Translation": list(translation)},
        "SensorHeight": size[1],
        "SensorWidth": size[0],
        "Shutter": "CALIBRATION_ShutterTypeUndefined"
        if purpose == "Depth"
        else "CALIBRATION_ShutterTypeRolling",
        "ThermalAdjustmentParams": {"Params": [0.0] * 12},
    }


def _inertial(sensor: str, location: str, translation: list[float], bias: list[float], noise: float) -> dict:
    # IMU axes as mounted on the device: x ← −depth z, y ← −depth x, z ← depth y (tilted ~6°)
    c, s = math.cos(math.radians(6.2)), math.sin(math.radians(6.2))
    rotation = [-0.0015, s, -c, -1.0, -0.0061, 0.0010, -0.0058, c, s]
    mixing = []
    for row in range(3):
        for col in range(3):
            mixing += [1.0 if row == col else 0.0, 0.0, 0.0, 0.0]
    return {
        "BiasTemperatureModel": [b for v in bias for b in (v, 0.0, 0.0, 0.0)],
        "BiasUncertainty": [9.9999997e-05] * 3,
        "Location": f"CALIBRATION_InertialSensorLocation{location}",
        "MixingMatrixTemperatureModel": mixing,
        "ModelTypeMask": 16,
        "Noise": [noise] * 3 + [0.0] * 3,
        "Rt": {"Rotation": rotation, "Translation": translation},
        "SecondOrderScaling": [0.0] * 9,
        "SensorType": f"CALIBRATION_InertialSensorType_{sensor}",
        "TemperatureBounds": [5.0, 60.0],
        "TemperatureC": 0.0,
    }


def device_calibration(serial: str = "000000000000") -> dict:
    """The calibration as a dict (see the module docstring for what is realistic about it)."""
    depth = _camera("D0", "Depth", (1024, 1024), DEPTH_PARAMS, 1.74, _rotation_x(0.0), [0.0, 0.0, 0.0])
    color = _camera(
        "PV0", "PhotoVideo", (4096, 3072), COLOR_PARAMS, 0.0, _rotation_x(COLOR_TILT_DEG), COLOR_TRANSLATION_M
    )
    gyro = _inertial("Gyro", "Gyro", [0.0, 0.0, 0.0], [0.0026, -0.0031, 0.0009], 0.00095)
    accel = _inertial(
        "Accelerometer", "Accelerometer", [-0.051, 0.0034, 0.0014], [-0.071, 0.042, 0.11], 0.0104
    )
    meta = {
        "SerialId": serial,
        "FactoryCalDate": "1/1/2020 12:00:00 AM GMT",
        "Version": {"Major": 1, "Minor": 2},
        "DeviceName": "AzureKinect-PV",
        "Notes": "SYNTHETIC calibration by kinect-occlusion for test recordings; not from a real device",
    }
    return {
        "CalibrationInformation": {
            "Cameras": [depth, color],
            "InertialSensors": [gyro, accel],
            "Metadata": meta,
        }
    }


def device_calibration_json(serial: str = "000000000000") -> str:
    """:func:`device_calibration` as the JSON text attached to a recording (``calibration.json``)."""
    return json.dumps(device_calibration(serial), indent=1)
