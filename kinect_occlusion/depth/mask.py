"""The occlusion mask in the depth camera's pixels: what depth-based monitors read (pure compute).

Every depth pixel with a reading is unprojected, moved into the colour camera and projected there
(the correspondences of :class:`~kinect_occlusion.depth.transform.DepthToColor`, as the SDK
computes them); it takes the colour mask's value at the nearest colour pixel. A depth pixel without a
reading, or whose point lands outside the colour image, gets ``unknown``.

The static part (the depth camera's unprojection table) depends only on the calibration and the two
image sizes: :class:`DepthMasker` builds it once and rebuilds it only when one of them changes.
"""

from __future__ import annotations

import numpy as np

from ..sources.k4a_formats import COLOR_RESOLUTIONS, DEPTH_MODES
from .calibration import CalibrationError, parse_calibration
from .transform import DepthToColor, mask_to_depth

Shape = tuple[int, int]  # (rows, cols)


def modes_for(depth_shape: Shape, color_shape: Shape) -> tuple[str, str]:
    """The depth mode and colour resolution whose images have these (rows, cols); CalibrationError if none.

    WFOV_UNBINNED and PASSIVE_IR share 1024×1024 and their intrinsics: the first is returned.
    """
    depth_mode = next((n for n, (w, h) in DEPTH_MODES.items() if (h, w) == depth_shape), None)
    color_res = next((n for n, (w, h) in COLOR_RESOLUTIONS.items() if (h, w) == color_shape), None)
    if depth_mode is None:
        raise CalibrationError(f"depth is {depth_shape[1]}×{depth_shape[0]}, not the size of a depth mode")
    if color_res is None:
        raise CalibrationError(
            f"colour is {color_shape[1]}×{color_shape[0]}, not the size of a colour resolution"
        )
    return depth_mode, color_res


def build_transform(calibration: str, depth_shape: Shape, color_shape: Shape) -> DepthToColor:
    """The depth↔colour tables for these image sizes; CalibrationError (one line) if impossible."""
    depth_mode, color_res = modes_for(depth_shape, color_shape)
    return DepthToColor.build(parse_calibration(calibration, depth_mode, color_res, source="calibration"))


def depth_geometry_mask(
    transform: DepthToColor, mask: np.ndarray, depth: np.ndarray, unknown: int
) -> np.ndarray:
    """A colour-sized 0/1 mask → uint8 in the depth camera's pixels: 0/1, ``unknown`` where nothing maps.

    Args:
        transform: the tables of the calibration both images come from.
        mask: H×W (colour) occlusion mask, 0/1.
        depth: the same capture's depth frame, uint16 millimetres (0 = no reading).
        unknown: the value of depth pixels that see no colour pixel (a value other than 0 and 1).
    """
    return mask_to_depth(transform, mask.astype(np.uint8, copy=False), depth, fill=unknown)


class DepthMasker:
    """One camera's depth-mask tables, cached: rebuilt only when the calibration or a size changes.

    A calibration that cannot be used is remembered too, so a bad one costs one parse, not one per frame.
    """

    def __init__(self) -> None:
        self._key: tuple[str, Shape, Shape] | None = None
        self._transform: DepthToColor | None = None
        self._error: CalibrationError | None = None
        self.builds = 0  # how often the tables were built (a test checks they are not rebuilt per frame)

    def transform(self, calibration: str, depth_shape: Shape, color_shape: Shape) -> DepthToColor:
        """The tables for these inputs (CalibrationError when they cannot be built)."""
        key = (calibration, depth_shape, color_shape)
        if key != self._key:
            self._key, self._transform, self._error = key, None, None
            self.builds += 1
            try:
                self._transform = build_transform(calibration, depth_shape, color_shape)
            except CalibrationError as exc:
                self._error = exc
        if self._error is not None:
            raise self._error
        assert self._transform is not None
        return self._transform

    def __call__(self, calibration: str, mask: np.ndarray, depth: np.ndarray, unknown: int) -> np.ndarray:
        """:func:`depth_geometry_mask` with this camera's cached tables."""
        shapes = (depth.shape[0], depth.shape[1]), (mask.shape[0], mask.shape[1])
        return depth_geometry_mask(self.transform(calibration, *shapes), mask, depth, unknown)
