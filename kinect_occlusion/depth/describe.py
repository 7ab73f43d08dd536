"""The intrinsics and extrinsics of a recording, for ``kinect-occlusion info``."""

from __future__ import annotations

from pathlib import Path

from ..sources.k4a_formats import COLOR_RESOLUTIONS
from .calibration import Calibration, CalibrationError, Intrinsics, parse_calibration


def recording_calibration(path: str | Path) -> Calibration:
    """The mode-specific calibration of a recording; CalibrationError (one line) when unusable."""
    from ..sources.mkv import MkvSource

    src = MkvSource(path)
    src.open()
    color = src.tracks.get("COLOR")
    size = None if color is None else (color.width, color.height)
    resolution = next((r for r, s in COLOR_RESOLUTIONS.items() if s == size), "OFF")
    depth_mode = (
        src.tags.get("K4A_DEPTH_MODE", "OFF") if "DEPTH" in src.tracks or "IR" in src.tracks else "OFF"
    )
    return parse_calibration(src.calibration, depth_mode, resolution, source=Path(path).name)


def intrinsics_dict(intr: Intrinsics | None) -> dict | None:
    """Plain numbers (pixels, 0 = centre of the top-left pixel) for JSON and printing."""
    if intr is None:
        return None
    k = [float(v) for v in intr.k]
    return {
        "width": intr.width,
        "height": intr.height,
        "fx": float(intr.fx),
        "fy": float(intr.fy),
        "cx": float(intr.cx),
        "cy": float(intr.cy),
        "k1_k6": k,
        "p1": float(intr.p1),
        "p2": float(intr.p2),
        "metric_radius": float(intr.metric_radius),
    }


def calibration_dict(path: str | Path) -> dict:
    """``{"depth": …, "color": …, "depth_to_color_mm": [tx, ty, tz]}`` or ``{"error": line}``."""
    try:
        cal = recording_calibration(path)
    except CalibrationError as exc:
        return {"error": str(exc)}
    return {
        "depth": intrinsics_dict(cal.depth),
        "color": intrinsics_dict(cal.color),
        "depth_to_color_mm": [float(v) for v in cal.depth_to_color.translation],
        "depth_to_color_rotation": [[float(v) for v in row] for row in cal.depth_to_color.rotation],
    }


def format_calibration(d: dict) -> list[str]:
    """Lines for the text output of ``info``."""
    if "error" in d:
        return [f"intrinsics:  unavailable ({d['error']})"]
    lines = []
    for name in ("depth", "color"):
        i = d[name]
        if i is None:
            continue
        k = " ".join(f"{v:.5g}" for v in i["k1_k6"])
        lines.append(
            f"{name + ':':<12} {i['width']}x{i['height']} fx {i['fx']:.3f} fy {i['fy']:.3f} "
            f"cx {i['cx']:.3f} cy {i['cy']:.3f}  k1-k6 {k}  p1 {i['p1']:.3g} p2 {i['p2']:.3g}"
        )
    t = d["depth_to_color_mm"]
    lines.append(f"depth→colour: translation {t[0]:.2f} {t[1]:.2f} {t[2]:.2f} mm")
    return lines
