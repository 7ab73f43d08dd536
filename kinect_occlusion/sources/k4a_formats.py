"""Azure Kinect image formats: modes, the BITMAPINFOHEADER, colour/depth payload codecs, calibration.

Shared by the .mkv writer and reader. Colour payloads are MJPG, NV12, YUY2 or BGRA (k4arecord's
FourCCs); depth and IR are ``b16g`` (16-bit big-endian grayscale).
"""

from __future__ import annotations

import json
import math
import struct

import numpy as np

COLOR_RESOLUTIONS = {
    "720P": (1280, 720),
    "1080P": (1920, 1080),
    "1440P": (2560, 1440),
    "1536P": (2048, 1536),
    "2160P": (3840, 2160),
    "3072P": (4096, 3072),
}
DEPTH_MODES = {
    "NFOV_UNBINNED": (640, 576),
    "NFOV_2X2BINNED": (320, 288),
    "WFOV_UNBINNED": (1024, 1024),
    "WFOV_2X2BINNED": (512, 512),
    "PASSIVE_IR": (1024, 1024),
}
# Colour format → (FourCC, bits per pixel); the mode tag uses "BGRA" as k4arecord does
COLOR_FORMATS = {"MJPG": (b"MJPG", 24), "NV12": (b"NV12", 12), "YUY2": (b"YUY2", 16), "BGRA": (b"BGRA", 32)}
DEPTH_FOURCC = b"b16g"


def parse_color_mode(mode: str) -> tuple[str, int, int] | None:
    """``"MJPG_720P"`` → ("MJPG", 1280, 720); ``"OFF"`` → None. ``BGRA32_…`` is accepted for ``BGRA_…``."""
    if mode == "OFF":
        return None
    fmt, _, res = mode.partition("_")
    fmt = "BGRA" if fmt == "BGRA32" else fmt
    if fmt not in COLOR_FORMATS or res not in COLOR_RESOLUTIONS:
        raise ValueError(
            f"unknown colour mode {mode!r}: use e.g. MJPG_720P, NV12_720P, YUY2_720P, BGRA32_1080P"
        )
    return (fmt, *COLOR_RESOLUTIONS[res])


def bitmap_info_header(width: int, height: int, fourcc: bytes, bit_count: int) -> bytes:
    """The 40-byte little-endian BITMAPINFOHEADER k4arecord stores as CodecPrivate."""
    size_image = 0 if fourcc == b"MJPG" else width * height * bit_count // 8
    compression = struct.unpack("<I", fourcc)[0]
    return struct.pack("<IiiHHIIiiII", 40, width, height, 1, bit_count, compression, size_image, 0, 0, 0, 0)


def encode_color(rgb: np.ndarray, fmt: str, jpeg_quality: int = 90) -> bytes:
    """Encode an H×W×3 RGB uint8 image as one K4A colour payload (MJPG, NV12, YUY2 or BGRA)."""
    import cv2

    if fmt == "MJPG":
        ok, buf = cv2.imencode(
            ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
        )
        if not ok:
            raise ValueError("JPEG encoding failed")
        return buf.tobytes()
    if fmt == "BGRA":
        alpha = np.full(rgb.shape[:2] + (1,), 255, np.uint8)
        return np.concatenate([rgb[..., ::-1], alpha], axis=2).tobytes()
    if fmt == "YUY2":
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_YUY2).tobytes()
    # NV12: the Y plane, then U and V interleaved (I420 has them as separate planes)
    h, w = rgb.shape[:2]
    i420 = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).reshape(-1)
    y, u, v = i420[: h * w], i420[h * w : h * w * 5 // 4], i420[h * w * 5 // 4 :]
    return y.tobytes() + np.stack([u, v], axis=1).tobytes()


def encode_depth16(image: np.ndarray) -> bytes:
    """A uint16 depth or IR image as ``b16g`` bytes (big-endian), bit-exact."""
    return np.ascontiguousarray(image, dtype=np.uint16).astype(">u2").tobytes()


def decode_color(data: bytes, fourcc: str, width: int, height: int) -> np.ndarray:
    """One colour payload → H×W×3 uint8 RGB; ValueError when it cannot be decoded."""
    import cv2

    buf = np.frombuffer(data, np.uint8)
    if fourcc == "MJPG":
        bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        if bgr is None or bgr.shape[:2] != (height, width):
            raise ValueError("undecodable JPEG")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    sizes = {"NV12": width * height * 3 // 2, "YUY2": width * height * 2, "BGRA": width * height * 4}
    if fourcc not in sizes:
        raise ValueError(f"unsupported colour FourCC {fourcc!r}")
    if buf.size != sizes[fourcc]:
        raise ValueError(f"{fourcc} payload has {buf.size} bytes, expected {sizes[fourcc]}")
    if fourcc == "NV12":
        return cv2.cvtColor(buf.reshape(height * 3 // 2, width), cv2.COLOR_YUV2RGB_NV12)
    if fourcc == "YUY2":
        return cv2.cvtColor(buf.reshape(height, width, 2), cv2.COLOR_YUV2RGB_YUY2)
    return np.ascontiguousarray(buf.reshape(height, width, 4)[..., 2::-1])


def decode_depth16(data: bytes, width: int, height: int) -> np.ndarray:
    """One ``b16g`` payload → H×W native uint16, bit-exact; ValueError on a size mismatch."""
    if len(data) != width * height * 2:
        raise ValueError(f"b16g payload has {len(data)} bytes, expected {width * height * 2}")
    return np.frombuffer(data, ">u2").reshape(height, width).astype(np.uint16)


def synthetic_calibration_json(serial: str = "000000000000") -> str:
    """A plausible Azure Kinect calibration.json — SYNTHETIC, not from a device (marked in Metadata.Notes).

    Same structure as the raw calibration a device stores: depth camera D0 (1024² sensor) and colour
    camera PV0 (4096×3072 sensor), Brown–Conrady intrinsics normalised by sensor size, colour extrinsics
    (rotation ~6° about x, translation in metres) relative to depth.
    """
    tilt = math.radians(-6.0)
    c, s = math.cos(tilt), math.sin(tilt)
    depth = _camera(
        "D0",
        "Depth",
        1024,
        1024,
        [0.5, 0.505, 0.492, 0.492, 2.5, 1.6, 0.08, 2.8, 2.4, 0.41, 0.0, 0.0, -7e-05, 2e-05],
        1.74,
        [1, 0, 0, 0, 1, 0, 0, 0, 1],
        [0, 0, 0],
    )
    color = _camera(
        "PV0",
        "PhotoVideo",
        4096,
        3072,
        [0.5, 0.5, 0.47, 0.627, 0.5, -2.6, 1.6, 0.4, -2.4, 1.5, 0.0, 0.0, 5e-04, -3e-04],
        0.0,
        [1, 0, 0, 0, c, -s, 0, s, c],
        [-0.032, -0.002, 0.004],
    )
    meta = {
        "SerialId": serial,
        "FactoryCalDate": "1/1/2020 12:00:00 AM GMT",
        "Version": {"Major": 1, "Minor": 2},
        "DeviceName": "AzureKinect-PV",
        "Notes": "SYNTHETIC calibration by kinect-occlusion for test recordings; not from a real device",
    }
    return json.dumps(
        {"CalibrationInformation": {"Cameras": [depth, color], "InertialSensors": [], "Metadata": meta}},
        indent=1,
    )


def _camera(
    location: str,
    purpose: str,
    w: int,
    h: int,
    params: list[float],
    radius: float,
    rotation: list[float],
    translation: list[float],
) -> dict:
    return {
        "Intrinsics": {
            "ModelParameterCount": 14,
            "ModelParameters": params,
            "ModelType": "CALIBRATION_LensDistortionModelBrownConrady",
        },
        "Location": f"CALIBRATION_CameraLocation{location}",
        "Purpose": f"CALIBRATION_CameraPurpose{purpose}",
        "MetricRadius": radius,
        "Rt": {"Rotation": rotation, "Translation": translation},
        "SensorHeight": h,
        "SensorWidth": w,
        "Shutter": "CALIBRATION_ShutterTypeUndefined"
        if purpose == "Depth"
        else "CALIBRATION_ShutterTypeRolling",
        "ThermalAdjustmentParams": {"Params": [0.0] * 12},
    }
