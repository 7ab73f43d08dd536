"""Depth → colour and colour → depth for whole images, vectorised (numpy; no per-pixel Python loop).

Re-implemented from reading the SDK's ``src/transformation/rgbz.c`` (no code copied):

- every depth pixel becomes a *correspondence*: its point (depth × unprojection table), moved into the
  colour camera, projected to a colour pixel, with its depth along the colour camera's axis;
- every 2×2 block of depth pixels is a quad of four correspondences. One invalid corner is replaced
  by an interpolated one (two or more: the quad is dropped); a quad whose depths spread more than
  4.69 % of its nearest depth is dropped (a depth edge, not a surface);
- each quad is split along its top-left → bottom-right diagonal into two triangles, and every colour
  pixel centre inside one (top/left edges inclusive, bottom/right exclusive) gets the barycentric
  interpolation of the corner depths, rounded to mm;
- where quads overlap, the nearer surface wins (a z-test).

Colour → depth (:func:`color_to_depth_map`) looks up, for each depth pixel, the colour pixel its
correspondence lands on — what maps a colour-space mask into the depth camera.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .calibration import Calibration
from .projection import _project_normalised, xy_table

F32 = np.float32
SKIP_INTERPOLATION_RATIO = F32(0.04693441759)


@dataclass(frozen=True)
class DepthToColor:
    """Precomputed tables for one calibration; call :meth:`__call__` per depth frame.

    Args:
        cal: a calibration with both cameras on.
    """

    cal: Calibration
    x_table: np.ndarray
    y_table: np.ndarray
    ray: tuple[np.ndarray, np.ndarray, np.ndarray]

    @classmethod
    def build(cls, cal: Calibration) -> DepthToColor:
        """Unprojection table of the depth camera and its rays rotated into the colour camera."""
        if cal.depth is None or cal.color is None:
            raise ValueError("depth→colour needs both the depth and the colour camera")
        x, y = xy_table(cal.depth)
        return cls(cal, x, y, (x, y, np.ones_like(x)))

    @property
    def depth_shape(self) -> tuple[int, int]:
        assert self.cal.depth is not None
        return self.cal.depth.height, self.cal.depth.width

    @property
    def color_shape(self) -> tuple[int, int]:
        assert self.cal.color is not None
        return self.cal.color.height, self.cal.color.width

    def correspondences(self, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Colour pixel (u, v), depth in the colour camera, validity of every depth pixel (H×W each)."""
        if depth.shape != self.depth_shape or depth.dtype != np.uint16:
            raise ValueError(f"depth must be uint16 {self.depth_shape}, got {depth.dtype} {depth.shape}")
        assert self.cal.color is not None
        d = depth.astype(F32)
        have = (depth != 0) & np.isfinite(self.x_table)
        px, py, pz = self.x_table * d, self.y_table * d, d
        r, t = self.cal.depth_to_color.rotation, self.cal.depth_to_color.translation
        cx = r[0, 0] * px + r[0, 1] * py + r[0, 2] * pz + t[0]
        cy = r[1, 0] * px + r[1, 1] * py + r[1, 2] * pz + t[1]
        cz = r[2, 0] * px + r[2, 1] * py + r[2, 2] * pz + t[2]
        front = have & (cz > 0)
        safe = np.where(front, cz, F32(1))
        with np.errstate(invalid="ignore", over="ignore"):
            u, v, valid, _ = _project_normalised(self.cal.color, cx / safe, cy / safe, False)
        valid &= front
        u, v = np.where(front, u, F32(0)), np.where(front, v, F32(0))
        return u, v, np.where(have, cz, F32(0)), valid

    def __call__(self, depth: np.ndarray) -> np.ndarray:
        """H×W uint16 depth (mm) → colour-sized uint16 depth (mm), 0 where nothing maps (the SDK's output)."""
        u, v, z, valid = self.correspondences(depth)
        return rasterize(u, v, z, valid, self.color_shape)


def _corners(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Top-left, top-right, bottom-right, bottom-left corner of every 2×2 quad, flattened."""
    return a[:-1, :-1].ravel(), a[:-1, 1:].ravel(), a[1:, 1:].ravel(), a[1:, :-1].ravel()


def _mid(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a + b) * F32(0.5)


def _fix_corners(corners: list[list[np.ndarray]], ok: list[np.ndarray]) -> np.ndarray:
    """Replace one invalid corner per quad as the SDK does (in place); True where the quad is usable."""
    tl, tr, br, bl = ok
    n_bad = (~tl).astype(np.int8) + ~tr + ~br + ~bl
    for attr in range(3):  # u, v, depth
        c_tl, c_tr, c_br, c_bl = (c[attr] for c in corners)
        new_tl = np.where(tl, c_tl, _mid(c_tr, c_bl))
        new_tr = np.where(tr, c_tr, c_br)
        new_bl = np.where(bl, c_bl, c_br)
        new_br = np.where(
            ~tr, _mid(c_br, c_bl), np.where(~br, _mid(c_tr, c_bl), np.where(~bl, _mid(c_tr, c_br), c_br))
        )
        corners[0][attr], corners[1][attr], corners[2][attr], corners[3][attr] = (
            new_tl,
            new_tr,
            new_br,
            new_bl,
        )
    return n_bad < 2


def _quads(u, v, z, valid) -> tuple[list[list[np.ndarray]], np.ndarray]:
    """Usable quads: corners [[u, v, z] × TL, TR, BR, BL] (only usable quads kept) and their TL index."""
    cu, cv, cz, cok = _corners(u), _corners(v), _corners(z), _corners(valid)
    corners = [[cu[i], cv[i], cz[i]] for i in range(4)]
    usable = _fix_corners(corners, list(cok))
    d = [corners[i][2] for i in range(4)]
    d_min = np.minimum(np.minimum(d[0], d[1]), np.minimum(d[2], d[3]))
    d_max = np.maximum(np.maximum(d[0], d[1]), np.maximum(d[2], d[3]))
    usable &= ~((d_max - d_min) > SKIP_INTERPOLATION_RATIO * d_min)
    keep = np.flatnonzero(usable)
    return [[a[keep] for a in c] for c in corners], keep


def _boxes(corners, shape: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """Pixel bounding box [x0, x1) × [y0, y1) of each quad, clipped to the image."""
    us = [c[0] for c in corners]
    vs = [c[1] for c in corners]
    x0 = np.maximum(np.ceil(np.minimum(np.minimum(us[0], us[1]), np.minimum(us[2], us[3]))), 0)
    y0 = np.maximum(np.ceil(np.minimum(np.minimum(vs[0], vs[1]), np.minimum(vs[2], vs[3]))), 0)
    x1 = np.minimum(np.ceil(np.maximum(np.maximum(us[0], us[1]), np.maximum(us[2], us[3]))), shape[1])
    y1 = np.minimum(np.ceil(np.maximum(np.maximum(vs[0], vs[1]), np.maximum(vs[2], vs[3]))), shape[0])
    return x0.astype(np.int32), y0.astype(np.int32), x1.astype(np.int32), y1.astype(np.int32)


def _candidates(x0, y0, x1, y1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (quad, x, y) with the pixel in the quad's box: quad index, x, y (flat arrays)."""
    w = np.maximum(x1 - x0, 0)
    h = np.maximum(y1 - y0, 0)
    count = w * h
    quad = np.repeat(np.arange(len(count), dtype=np.int32), count)
    start = np.cumsum(count) - count
    off = np.arange(quad.size, dtype=np.int32) - np.repeat(start.astype(np.int32), count)
    wq = w[quad]
    return quad, x0[quad] + off % wq, y0[quad] + off // wq


def _area(ax, ay, bx, by, cx, cy) -> np.ndarray:
    """Signed parallelogram area of (a→b, a→c), the SDK's edge function."""
    return (cy - ay) * (bx - ax) - (cx - ax) * (by - ay)


def _interpolate(corners, quad, px, py) -> tuple[np.ndarray, np.ndarray]:
    """Depth at each candidate pixel and whether it lies inside one of its quad's two triangles."""
    tl, tr, br, bl = ([a[quad] for a in c] for c in corners)
    a_mid = _area(tl[0], tl[1], br[0], br[1], px, py)
    ccw = a_mid >= 0
    mid = [np.where(ccw, bl[i], tr[i]) for i in range(3)]
    a_tl = _area(mid[0], mid[1], tl[0], tl[1], px, py)
    a_br = _area(br[0], br[1], mid[0], mid[1], px, py)
    sign = np.where(ccw, F32(1), F32(-1))
    a_tl, a_br, a_mid = a_tl * sign, a_br * sign, a_mid * sign
    inside = (a_tl >= 0) & (a_br > 0)
    total = a_tl + a_mid + a_br
    with np.errstate(divide="ignore"):
        inv = np.where(total != 0, F32(1) / total, F32(0))
    depth = (a_tl * br[2] + a_mid * mid[2] + a_br * tl[2]) * inv
    return depth, inside


def rasterize(u, v, z, valid, shape: tuple[int, int]) -> np.ndarray:
    """Draw every usable quad of correspondences into a ``shape`` uint16 image, nearest surface kept."""
    corners, _ = _quads(u, v, z, valid)
    quad, px, py = _candidates(*_boxes(corners, shape))
    depth, inside = _interpolate(corners, quad, px.astype(F32), py.astype(F32))
    mm = (depth[inside] + F32(0.5)).astype(np.uint16)
    flat = py[inside] * shape[1] + px[inside]
    out = np.full(shape[0] * shape[1], np.iinfo(np.uint16).max, np.uint16)
    np.minimum.at(out, flat, mm)
    out[out == np.iinfo(np.uint16).max] = 0
    return out.reshape(shape)


def color_to_depth_map(
    transform: DepthToColor, depth: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each depth pixel, the colour pixel (row, col) it sees (nearest), and where that is valid.

    A depth pixel without depth, or whose point falls outside the colour image, is invalid.
    """
    u, v, _, valid = transform.correspondences(depth)
    h, w = transform.color_shape
    col = np.floor(u + F32(0.5))
    row = np.floor(v + F32(0.5))
    valid = valid & (col >= 0) & (col < w) & (row >= 0) & (row < h)
    return np.where(valid, row, 0).astype(np.int32), np.where(valid, col, 0).astype(np.int32), valid


def mask_to_depth(transform: DepthToColor, mask: np.ndarray, depth: np.ndarray, fill: int = 0) -> np.ndarray:
    """A colour-sized mask (any dtype) → the depth camera's pixels; ``fill`` where nothing maps."""
    if mask.shape[:2] != transform.color_shape:
        raise ValueError(f"mask must be {transform.color_shape}, got {mask.shape[:2]}")
    row, col, valid = color_to_depth_map(transform, depth)
    out = mask[row, col]
    out[~valid] = fill
    return out
