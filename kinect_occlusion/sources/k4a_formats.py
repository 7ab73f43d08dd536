"""Azure Kinect modes and formats: the one mode table, the BITMAPINFOHEADER, payload codecs, calibration.

The mode table (resolutions, depth modes, colour formats, frame rates and which combinations the
camera offers, as the SDK's ``validate_configuration`` has them) is used by the config validator, the
Kinect source and the .mkv writer and reader. Colour formats go by their SDK names (``BGRA32``);
k4arecord writes the FourCC (``BGRA``) into the track and its ``K4A_COLOR_MODE`` tag. Depth and IR
are ``b16g`` (16-bit big-endian grayscale).
"""

from __future__ import annotations

import struct
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import UserError
from ..jpeg import jpeg_frame_size

ColorResolution = Literal["720P", "1080P", "1440P", "1536P", "2160P", "3072P"]
ColorFormatName = Literal["MJPG", "NV12", "YUY2", "BGRA32"]
DepthSensingMode = Literal["NFOV_UNBINNED", "NFOV_2X2BINNED", "WFOV_UNBINNED", "WFOV_2X2BINNED"]
DepthModeName = Literal[DepthSensingMode, "PASSIVE_IR"]
Fps = Literal[5, 15, 30]

FPS_RATES: tuple[int, ...] = (5, 15, 30)
COLOR_RESOLUTIONS: dict[str, tuple[int, int]] = {
    "720P": (1280, 720),
    "1080P": (1920, 1080),
    "1440P": (2560, 1440),
    "1536P": (2048, 1536),
    "2160P": (3840, 2160),
    "3072P": (4096, 3072),
}
DEPTH_MODES: dict[str, tuple[int, int]] = {
    "NFOV_UNBINNED": (640, 576),
    "NFOV_2X2BINNED": (320, 288),
    "WFOV_UNBINNED": (1024, 1024),
    "WFOV_2X2BINNED": (512, 512),
    "PASSIVE_IR": (1024, 1024),
}
# Colour resolution or depth mode → highest frame rate (all others run at 30 fps)
MAX_FPS: dict[str, int] = {"3072P": 15, "WFOV_UNBINNED": 15}


@dataclass(frozen=True)
class ColorFormat:
    """One colour format: k4arecord's FourCC (also its mode-tag name), bits per pixel, resolutions offered."""

    fourcc: bytes
    bits: int
    resolutions: tuple[str, ...]


COLOR_FORMATS: dict[str, ColorFormat] = {
    "MJPG": ColorFormat(b"MJPG", 24, tuple(COLOR_RESOLUTIONS)),
    "NV12": ColorFormat(b"NV12", 12, ("720P",)),
    "YUY2": ColorFormat(b"YUY2", 16, ("720P",)),
    "BGRA32": ColorFormat(b"BGRA", 32, tuple(COLOR_RESOLUTIONS)),
}
FORMAT_BY_FOURCC = {f.fourcc.decode(): name for name, f in COLOR_FORMATS.items()}
DEPTH_FOURCC = b"b16g"


class ModeError(UserError, ValueError):
    """A camera mode the Azure Kinect does not offer (a ValueError, and one line for the CLI)."""


def _unknown(value: object, known: Collection[object], key: str) -> str | None:
    """One line when ``value`` is not among ``known``."""
    if value in known:
        return None
    return f"{key} {value!r} is not one of {', '.join(str(k) for k in known)}"


def mode_problem(
    resolution: str | None, fps: int, color_format: str | None, depth_mode: str, prefix: str = ""
) -> str | None:
    """Why the Azure Kinect cannot run this mode, as one line naming the fields; None when it can.

    ``resolution``/``color_format`` None and ``depth_mode`` "OFF" turn that camera off; ``prefix``
    (e.g. ``"camera."``) is put before each field name.
    """
    res, rate, fmt, depth = (f"{prefix}{k}" for k in ("resolution", "fps", "color_format", "depth_mode"))
    problem = (
        _unknown(fps, FPS_RATES, rate)
        or (None if resolution is None else _unknown(resolution, COLOR_RESOLUTIONS, res))
        or (None if color_format is None else _unknown(color_format, COLOR_FORMATS, fmt))
        or (None if depth_mode == "OFF" else _unknown(depth_mode, DEPTH_MODES, depth))
    )
    if problem:
        return problem
    if resolution is not None and color_format is not None:
        offered = COLOR_FORMATS[color_format].resolutions
        if resolution not in offered:
            return f"{fmt} {color_format} is only offered at {res} {', '.join(offered)}, not {resolution}"
    for name, key in ((resolution, res), (None if depth_mode == "OFF" else depth_mode, depth)):
        if name is not None and fps > MAX_FPS.get(name, 30):
            return f"{key} {name} runs at most at {MAX_FPS[name]} fps: lower {rate} (now {fps})"
    return None


def check_mode(
    resolution: str | None, fps: int, color_format: str | None, depth_mode: str, prefix: str = ""
) -> None:
    """Raise ModeError (one line naming the fields) for a mode the Azure Kinect does not offer."""
    problem = mode_problem(resolution, fps, color_format, depth_mode, prefix)
    if problem:
        raise ModeError(problem)


def parse_color_mode(mode: str) -> tuple[str, int, int] | None:
    """``"MJPG_720P"`` → ("MJPG", 1280, 720); ``"OFF"`` → None; ``BGRA_…`` (k4arecord's tag) → "BGRA32".

    Raises ModeError for a name or a format × resolution the camera does not offer.
    """
    if mode == "OFF":
        return None
    fmt, _, res = mode.partition("_")
    fmt = FORMAT_BY_FOURCC.get(fmt, fmt)
    if fmt not in COLOR_FORMATS or res not in COLOR_RESOLUTIONS:
        raise ModeError(
            f"unknown colour mode {mode!r}: use e.g. MJPG_720P, NV12_720P, YUY2_720P, BGRA32_1080P"
        )
    check_mode(res, 5, fmt, "OFF")
    return (fmt, *COLOR_RESOLUTIONS[res])


def color_mode_tag(fmt: str, resolution: str) -> str:
    """k4arecord's ``K4A_COLOR_MODE`` value, e.g. ("BGRA32", "720P") → ``BGRA_720P``."""
    return f"{COLOR_FORMATS[fmt].fourcc.decode()}_{resolution}"


def bitmap_info_header(width: int, height: int, fourcc: bytes, bit_count: int) -> bytes:
    """The 40-byte little-endian BITMAPINFOHEADER k4arecord stores as CodecPrivate."""
    size_image = 0 if fourcc == b"MJPG" else width * height * bit_count // 8
    compression = struct.unpack("<I", fourcc)[0]
    return struct.pack("<IiiHHIIiiII", 40, width, height, 1, bit_count, compression, size_image, 0, 0, 0, 0)


def encode_color(rgb: np.ndarray, fmt: str, jpeg_quality: int = 90) -> bytes:
    """Encode an H×W×3 RGB uint8 image as one K4A colour payload (``fmt``: MJPG, NV12, YUY2 or BGRA32)."""
    import cv2

    if fmt == "MJPG":
        ok, buf = cv2.imencode(
            ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
        )
        if not ok:
            raise ValueError("JPEG encoding failed")
        return buf.tobytes()
    if fmt == "BGRA32":
        alpha = np.full(rgb.shape[:2] + (1,), 255, np.uint8)
        return np.concatenate([rgb[..., ::-1], alpha], axis=2).tobytes()
    if fmt == "YUY2":
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_YUY2).tobytes()
    if fmt != "NV12":
        raise ValueError(f"unknown colour format {fmt!r}: use one of {', '.join(COLOR_FORMATS)}")
    # NV12: the Y plane, then U and V interleaved (I420 has them as separate planes)
    h, w = rgb.shape[:2]
    i420 = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).reshape(-1)
    y, u, v = i420[: h * w], i420[h * w : h * w * 5 // 4], i420[h * w * 5 // 4 :]
    return y.tobytes() + np.stack([u, v], axis=1).tobytes()


def encode_depth16(image: np.ndarray) -> bytes:
    """A uint16 depth or IR image as ``b16g`` bytes (big-endian), bit-exact."""
    return np.ascontiguousarray(image, dtype=np.uint16).astype(">u2").tobytes()


def decode_color(data: bytes | np.ndarray, fourcc: str, width: int, height: int) -> np.ndarray:
    """One colour payload (bytes or a contiguous uint8 array) → H×W×3 uint8 RGB; ValueError when undecodable.

    ``fourcc`` is k4arecord's (MJPG, NV12, YUY2, BGRA).
    """
    import cv2

    buf = np.frombuffer(data, np.uint8)
    if fourcc not in FORMAT_BY_FOURCC:
        raise ValueError(f"unsupported colour FourCC {fourcc!r}")
    if fourcc == "MJPG":
        # The header's size first: a few bytes claiming 30000×30000 would cost gigabytes to decode
        jpeg_h, jpeg_w, _ = jpeg_frame_size(memoryview(buf.data))
        if (jpeg_h, jpeg_w) != (height, width):
            raise ValueError(f"JPEG header says {jpeg_w}×{jpeg_h}, the track is {width}×{height}")
        bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        if bgr is None or bgr.shape[:2] != (height, width):
            raise ValueError("undecodable JPEG")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    size = width * height * COLOR_FORMATS[FORMAT_BY_FOURCC[fourcc]].bits // 8
    if buf.size != size:
        raise ValueError(f"{fourcc} payload has {buf.size} bytes, expected {size}")
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

    Complete as the SDK requires it (cameras and IMU): see :mod:`kinect_occlusion.depth.device_calibration`.
    """
    from ..depth.device_calibration import device_calibration_json

    return device_calibration_json(serial)
