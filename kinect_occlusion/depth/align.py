"""Depth aligned to colour for a recording: what ``camera.align_depth_to_color`` asks of a replay.

The live camera aligns with the SDK (``capture.transformed_depth``); a recording carries the same
calibration, so :class:`kinect_occlusion.depth.transform.DepthToColor` aligns without the SDK.
"""

from __future__ import annotations

from ..sources.k4a_formats import COLOR_RESOLUTIONS, DEPTH_MODES
from .calibration import CalibrationError, parse_calibration
from .transform import DepthToColor


def recording_aligner(
    name: str,
    calibration: str | None,
    depth_mode: str | None,
    depth_size: tuple[int, int] | None,
    color_size: tuple[int, int] | None,
) -> DepthToColor:
    """The depth→colour transform of a recording; CalibrationError (one line naming it) if impossible.

    Args:
        name: the recording, as named in errors.
        calibration: its ``calibration.json`` attachment (None when missing).
        depth_mode: its ``K4A_DEPTH_MODE`` tag (None when missing).
        depth_size, color_size: (width, height) of its DEPTH and COLOR tracks (None when absent).
    """
    if depth_size is None:
        raise CalibrationError(f"{name}: cannot align depth to colour: the recording has no DEPTH track")
    if color_size is None:
        raise CalibrationError(f"{name}: cannot align depth to colour: the recording has no COLOR track")
    resolution = next((r for r, size in COLOR_RESOLUTIONS.items() if size == color_size), None)
    if resolution is None:
        raise CalibrationError(
            f"{name}: cannot align depth to colour: colour is {color_size}, not a camera mode"
        )
    if depth_mode not in DEPTH_MODES or DEPTH_MODES[depth_mode] != depth_size:
        raise CalibrationError(
            f"{name}: cannot align depth to colour: depth is {depth_size[0]}×{depth_size[1]}, "
            f"not the size of depth mode {depth_mode!r}"
        )
    try:
        cal = parse_calibration(calibration, depth_mode, resolution, source=name)
    except CalibrationError as exc:
        why = str(exc).removeprefix(f"{name}: ")
        raise CalibrationError(f"{name}: cannot align depth to colour: {why}") from None
    return DepthToColor.build(cal)
