"""Azure Kinect calibration: the raw ``calibration.json`` → mode-specific intrinsics and extrinsics.

Re-implemented from reading the SDK (``src/calibration/calibration.c``,
``src/transformation/mode_specific_calibration.c``, ``extrinsic_transformation.c``); no code copied.
Values are float32 and combined in the SDK's order, so projections agree with it to the last bits.

- The JSON lists cameras by ``Location`` (``…D0`` depth, ``…PV0`` colour). Intrinsics are 14
  ``ModelParameters`` ``cx cy fx fy k1 k2 k3 k4 k5 k6 codx cody p2 p1``; principal point and focal
  length are divided by the sensor size and measured from the top-left corner of the top-left pixel.
- A mode scales them to its binned sensor size, shifts by its crop offset and moves the origin to the
  centre of the top-left pixel (−0.5). Colour calibrations in the legacy 16:9 layout first become 4:3.
- ``Rt`` is world → camera (world = depth camera), translation in metres; the SDK works in mm.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace

import numpy as np

from ..errors import UserError

MAX_CALIBRATION_BYTES = 1 << 20
BROWN_CONRADY = "CALIBRATION_LensDistortionModelBrownConrady"
RATIONAL_6KT = "CALIBRATION_LensDistortionModelRational6KT"
DEFAULT_METRIC_RADIUS = 1.7  # the SDK's value when a calibration says 0 (~120° field of view)

# depth mode → (binned sensor size, crop offset, output size)
DEPTH_MODE_INFO: dict[str, tuple[tuple[int, int], tuple[int, int], tuple[int, int]]] = {
    "NFOV_2X2BINNED": ((512, 512), (96, 90), (320, 288)),
    "NFOV_UNBINNED": ((1024, 1024), (192, 180), (640, 576)),
    "WFOV_2X2BINNED": ((512, 512), (0, 0), (512, 512)),
    "WFOV_UNBINNED": ((1024, 1024), (0, 0), (1024, 1024)),
    "PASSIVE_IR": ((1024, 1024), (0, 0), (1024, 1024)),
}
# colour resolution → (4:3 sensor size at that scale, crop offset, output size)
COLOR_MODE_INFO: dict[str, tuple[tuple[int, int], tuple[int, int], tuple[int, int]]] = {
    "720P": ((1280, 960), (0, 120), (1280, 720)),
    "1080P": ((1920, 1440), (0, 180), (1920, 1080)),
    "1440P": ((2560, 1920), (0, 240), (2560, 1440)),
    "1536P": ((2048, 1536), (0, 0), (2048, 1536)),
    "2160P": ((3840, 2880), (0, 360), (3840, 2160)),
    "3072P": ((4096, 3072), (0, 0), (4096, 3072)),
}
_LEGACY_16_9 = ((4096, 2304), (0, -384), (4096, 3072))
F32 = np.float32


class CalibrationError(UserError, ValueError):
    """A calibration that cannot be used (missing, garbled, unsupported lens model): one line."""


@dataclass(frozen=True)
class Intrinsics:
    """Brown–Conrady intrinsics of one camera in one mode (pixels, 0 = centre of the top-left pixel)."""

    width: int
    height: int
    cx: np.float32
    cy: np.float32
    fx: np.float32
    fy: np.float32
    k: tuple[np.float32, ...]  # k1…k6
    codx: np.float32
    cody: np.float32
    p1: np.float32
    p2: np.float32
    metric_radius: np.float32

    def camera_matrix(self) -> np.ndarray:
        """3×3 float64 K (OpenCV)."""
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], np.float64)

    def dist_coeffs(self) -> np.ndarray:
        """OpenCV's rational model order: k1 k2 p1 p2 k3 k4 k5 k6."""
        k = self.k
        return np.array([k[0], k[1], self.p1, self.p2, k[2], k[3], k[4], k[5]], np.float64)


@dataclass(frozen=True)
class Extrinsics:
    """A rigid transform: ``y = R x + t``; R 3×3 float32, t float32 in millimetres."""

    rotation: np.ndarray
    translation: np.ndarray

    def inverse(self) -> Extrinsics:
        rt = self.rotation.T.copy()
        return Extrinsics(rt, -_mat_vec(rt, self.translation))

    def then(self, first: Extrinsics) -> Extrinsics:
        """``self ∘ first``: apply ``first``, then ``self``."""
        return Extrinsics(
            _mat_mat(self.rotation, first.rotation),
            _mat_vec(self.rotation, first.translation) + self.translation,
        )


@dataclass(frozen=True)
class Calibration:
    """Both cameras in one mode; ``depth_to_color`` maps depth-camera mm to colour-camera mm."""

    depth: Intrinsics | None
    color: Intrinsics | None
    depth_to_color: Extrinsics
    color_to_depth: Extrinsics
    depth_mode: str
    color_resolution: str


@dataclass(frozen=True)
class _RawCamera:
    params: tuple[np.float32, ...]
    width: int
    height: int
    metric_radius: np.float32
    world_to_camera: Extrinsics


def _mat_vec(a: np.ndarray, x: np.ndarray) -> np.ndarray:
    """3×3 · 3 in float32, each row summed left to right (as the SDK's math_mult_Ax_3x3)."""
    return np.array([a[i, 0] * x[0] + a[i, 1] * x[1] + a[i, 2] * x[2] for i in range(3)], F32)


def _mat_mat(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    cols = [_mat_vec(a, b[:, j]) for j in range(3)]
    return np.stack(cols, axis=1).astype(F32)


def _floats(value: object, count: int, what: str) -> tuple[np.float32, ...]:
    if not isinstance(value, list) or len(value) < count:
        raise ValueError(f"{what} needs {count} numbers")
    out = []
    for v in value[:count]:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ValueError(f"{what} holds a non-number")
        out.append(F32(v))
    return tuple(out)


def _raw_camera(camera: dict) -> _RawCamera:
    """One ``Cameras`` entry → parameters, sensor size, radius and world→camera (mm)."""
    intr = camera["Intrinsics"]
    model = intr["ModelType"]
    if model == RATIONAL_6KT:
        raise ValueError(
            "lens model Rational6KT is deprecated (early internal devices only) and not supported"
        )
    if model != BROWN_CONRADY:
        raise ValueError(f"lens model {model!r} is not Brown-Conrady")
    params = _floats(intr["ModelParameters"], 14, "ModelParameters")
    width, height = int(camera["SensorWidth"]), int(camera["SensorHeight"])
    radius = F32(camera["MetricRadius"])
    if not radius > F32(0.0001):
        radius = F32(DEFAULT_METRIC_RADIUS)
    rotation = np.array(_floats(camera["Rt"]["Rotation"], 9, "Rt.Rotation"), F32).reshape(3, 3)
    translation = np.array(_floats(camera["Rt"]["Translation"], 3, "Rt.Translation"), F32) * F32(1000.0)
    if params[2] <= 0 or params[3] <= 0 or width <= 0 or height <= 0:
        raise ValueError("focal length and sensor size must be positive")
    return _RawCamera(params, width, height, radius, Extrinsics(rotation, translation))


def _camera_by_location(info: dict, location: str) -> _RawCamera | None:
    for camera in info.get("Cameras", []):
        if isinstance(camera, dict) and camera.get("Location") == f"CALIBRATION_CameraLocation{location}":
            return _raw_camera(camera)
    return None


def _mode_specific(
    raw: _RawCamera, mode: tuple[tuple[int, int], tuple[int, int], tuple[int, int]], pixelized: bool
) -> _RawCamera:
    """Scale to the mode's binned size, crop, and (``pixelized``) move to pixels, 0-centred."""
    (bw, bh), (ox, oy), (w, h) = mode
    p = list(raw.params)
    cx, cy = p[0] * F32(bw) - F32(ox), p[1] * F32(bh) - F32(oy)
    fx, fy = p[2] * F32(bw), p[3] * F32(bh)
    if pixelized:
        p[:4] = [cx - F32(0.5), cy - F32(0.5), fx, fy]
    else:
        p[:4] = [cx / F32(w), cy / F32(h), fx / F32(w), fy / F32(h)]
    return replace(raw, params=tuple(p), width=w, height=h)


def _intrinsics(raw: _RawCamera) -> Intrinsics:
    p = raw.params
    return Intrinsics(
        raw.width, raw.height, p[0], p[1], p[2], p[3], p[4:10], p[10], p[11], p[13], p[12], raw.metric_radius
    )


def _depth_intrinsics(raw: _RawCamera, depth_mode: str) -> Intrinsics:
    if (raw.width, raw.height) != (1024, 1024):
        raise ValueError(f"depth sensor is {raw.width}×{raw.height}, expected 1024×1024")
    return _intrinsics(_mode_specific(raw, DEPTH_MODE_INFO[depth_mode], True))


def _color_intrinsics(raw: _RawCamera, resolution: str) -> Intrinsics:
    if raw.width * 9 // 16 == raw.height:
        raw = _mode_specific(raw, _LEGACY_16_9, False)
    elif raw.width * 3 // 4 != raw.height:
        raise ValueError(f"colour sensor aspect {raw.width}:{raw.height} is neither 16:9 nor 4:3")
    return _intrinsics(_mode_specific(raw, COLOR_MODE_INFO[resolution], True))


def _load(text: str | bytes) -> dict:
    if len(text) > MAX_CALIBRATION_BYTES:
        raise ValueError(f"larger than {MAX_CALIBRATION_BYTES} bytes")
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    doc = json.loads(text.rstrip("\x00"))
    info = doc.get("CalibrationInformation") if isinstance(doc, dict) else None
    if not isinstance(info, dict):
        raise ValueError("no CalibrationInformation")
    return info


def parse_calibration(
    text: str | bytes | None, depth_mode: str, color_resolution: str, *, source: str = "calibration"
) -> Calibration:
    """Parse a raw K4A calibration for one depth mode and colour resolution (``OFF`` for either).

    Args:
        text: the ``calibration.json`` text (a recording's attachment, or a device's raw calibration).
        depth_mode: NFOV_UNBINNED, NFOV_2X2BINNED, WFOV_UNBINNED, WFOV_2X2BINNED, PASSIVE_IR or OFF.
        color_resolution: 720P … 3072P or OFF.
        source: what to name in errors (e.g. the recording's path).

    Returns:
        The mode-specific :class:`Calibration`. Raises :class:`CalibrationError` (one line naming
        ``source``) when the text is missing, garbled or uses a lens model other than Brown–Conrady.
    """
    if text is None:
        raise CalibrationError(f"{source}: no calibration (calibration.json attachment missing)")
    if depth_mode not in DEPTH_MODE_INFO and depth_mode != "OFF":
        raise CalibrationError(f"{source}: unknown depth mode {depth_mode!r}")
    if color_resolution not in COLOR_MODE_INFO and color_resolution != "OFF":
        raise CalibrationError(f"{source}: unknown colour resolution {color_resolution!r}")
    try:
        info = _load(text)
        raw_depth, raw_color = _camera_by_location(info, "D0"), _camera_by_location(info, "PV0")
        if raw_depth is None or raw_color is None:
            raise ValueError("depth camera D0 or colour camera PV0 missing")
        depth = None if depth_mode == "OFF" else _depth_intrinsics(raw_depth, depth_mode)
        color = None if color_resolution == "OFF" else _color_intrinsics(raw_color, color_resolution)
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError, OverflowError) as exc:
        what = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        missing = "missing field " if isinstance(exc, KeyError) else ""
        raise CalibrationError(f"{source}: unusable calibration: {missing}{what}") from None
    depth_to_color = raw_color.world_to_camera.then(raw_depth.world_to_camera.inverse())
    color_to_depth = raw_depth.world_to_camera.then(raw_color.world_to_camera.inverse())
    return Calibration(depth, color, depth_to_color, color_to_depth, depth_mode, color_resolution)
