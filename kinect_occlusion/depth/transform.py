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

Two implementations with bit-identical output: this numpy path (the reference, and the fallback
without numba) and the numba kernels of :mod:`.compiled` (~8× faster), which :meth:`DepthToColor.build`
picks when numba is installed.

Colour → depth (:func:`color_to_depth_map`) looks up, for each depth pixel, the colour pixel its
correspondence lands on — what maps a colour-space mask into the depth camera.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from . import compiled as kernels
from .calibration import Calibration
from .projection import _project_normalised, xy_table

F32 = np.float32
SKIP_INTERPOLATION_RATIO = F32(0.04693441759)
DEPTH_LIMIT = F32(65534.5)  # a drawn depth rounds to at most 65534 mm; 65535 marks "nothing drawn"
CHUNK = 8192  # quads drawn per numpy pass: temporaries stay in the CPU cache


@dataclass(frozen=True)
class DepthToColor:
    """Precomputed tables for one calibration; call :meth:`__call__` per depth frame.

    Args:
        cal: a calibration with both cameras on.
        compiled: run the numba kernels (:mod:`.compiled`, bit-identical); False: the numpy path.
    """

    cal: Calibration
    x_table: np.ndarray
    y_table: np.ndarray
    ray: tuple[np.ndarray, np.ndarray, np.ndarray]
    compiled: bool = False

    @classmethod
    def build(cls, cal: Calibration, compiled: bool | None = None) -> DepthToColor:
        """Unprojection table of the depth camera and its rays rotated into the colour camera.

        ``compiled``: None uses the numba kernels when numba is installed; they are compiled (or
        loaded from numba's cache) here, so the first frame does not pay for it.
        """
        if cal.depth is None or cal.color is None:
            raise ValueError("depth→colour needs both the depth and the colour camera")
        if compiled and not kernels.available():
            raise ValueError("compiled depth→colour needs numba: pip install -e '.[depth]'")
        x, y = xy_table(cal.depth)
        use = kernels.available() if compiled is None else compiled
        transform = cls(cal, x, y, (x, y, np.ones_like(x)), use)
        if use:
            transform(np.zeros(transform.depth_shape, np.uint16))  # warm up: compile or load the cache
        return transform

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
        out = [np.empty(depth.shape, F32) for _ in range(3)] + [np.empty(depth.shape, bool)]
        if self.compiled:
            ext = self.cal.depth_to_color
            kernels.correspond(np.ascontiguousarray(depth), self.x_table, self.y_table, ext.rotation,
                               ext.translation, self._color_params, *out)  # fmt: skip
            return out[0], out[1], out[2], out[3]
        rows = max(1, CHUNK // depth.shape[1])
        for r in range(0, depth.shape[0], rows):
            part = slice(r, r + rows)
            band = self._correspond(depth[part], self.x_table[part], self.y_table[part])
            for target, value in zip(out, band, strict=True):
                target[part] = value
        return out[0], out[1], out[2], out[3]

    @functools.cached_property
    def _color_params(self) -> np.ndarray:
        """The colour intrinsics as the compiled projection takes them (float32, metric radius squared)."""
        c = self.cal.color
        assert c is not None
        values = [c.cx, c.cy, c.fx, c.fy, *c.k, c.codx, c.cody, c.p1, c.p2, c.metric_radius * c.metric_radius]
        return np.array(values, F32)

    def _correspond(self, depth: np.ndarray, xt: np.ndarray, yt: np.ndarray) -> tuple[np.ndarray, ...]:
        """:meth:`correspondences` of a band of rows (small enough to stay in the CPU cache)."""
        assert self.cal.color is not None
        d = depth.astype(F32)
        have = (depth != 0) & np.isfinite(xt)
        px, py, pz = xt * d, yt * d, d
        r, t = self.cal.depth_to_color.rotation, self.cal.depth_to_color.translation
        cx = r[0, 0] * px + r[0, 1] * py + r[0, 2] * pz + t[0]
        cy = r[1, 0] * px + r[1, 1] * py + r[1, 2] * pz + t[1]
        cz = r[2, 0] * px + r[2, 1] * py + r[2, 2] * pz + t[2]
        front = have & (cz > 0)
        safe = np.where(front, cz, F32(1))
        with np.errstate(invalid="ignore", over="ignore"):
            u, v, valid, _ = _project_normalised(self.cal.color, cx / safe, cy / safe, False)
        valid &= front
        return np.where(front, u, F32(0)), np.where(front, v, F32(0)), np.where(have, cz, F32(0)), valid

    def __call__(self, depth: np.ndarray) -> np.ndarray:
        """H×W uint16 depth (mm) → colour-sized uint16 depth (mm), 0 where nothing maps (the SDK's output)."""
        u, v, z, valid = self.correspondences(depth)
        if self.compiled:
            out = np.empty(self.color_shape, np.uint16)
            kernels.rasterize(u, v, z, valid, out)
            return out
        return rasterize(u, v, z, valid, self.color_shape)


_ATTRS = 3  # u, v, depth


def _mid(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a + b) * F32(0.5)


def _gather(flat: list[np.ndarray], q: np.ndarray, w: int) -> list[list[np.ndarray]]:
    """Corners TL, TR, BR, BL (each [u, v, depth]) of the quads whose top-left flat index is ``q``."""
    return [[a[q + off] for a in flat] for off in (0, 1, w + 1, w)]


def _fix_one_corner(corners: list[list[np.ndarray]], ok: list[np.ndarray]) -> None:
    """Quads with exactly one invalid corner: replace it as the SDK does (in place)."""
    tl, tr, br, bl = ok
    for i in range(_ATTRS):
        c_tl, c_tr, c_br, c_bl = (c[i] for c in corners)
        new_br = np.where(
            ~tr, _mid(c_br, c_bl), np.where(~br, _mid(c_tr, c_bl), np.where(~bl, _mid(c_tr, c_br), c_br))
        )
        corners[0][i] = np.where(tl, c_tl, _mid(c_tr, c_bl))
        corners[1][i] = np.where(tr, c_tr, c_br)
        corners[3][i] = np.where(bl, c_bl, c_br)
        corners[2][i] = new_br


def _no_edge(corners_z: list[np.ndarray]) -> np.ndarray:
    """False where a quad's depths spread more than the SDK's threshold (a depth edge)."""
    d = corners_z
    d_min = np.minimum(np.minimum(d[0], d[1]), np.minimum(d[2], d[3]))
    d_max = np.maximum(np.maximum(d[0], d[1]), np.maximum(d[2], d[3]))
    return ~((d_max - d_min) > SKIP_INTERPOLATION_RATIO * d_min)


def _offsets(w: int) -> tuple[int, int, int, int]:
    """Flat offsets of a quad's corners TL, TR, BR, BL from its top-left pixel."""
    return 0, 1, w + 1, w


@functools.lru_cache(maxsize=8)
def _inner(h: int, w: int) -> np.ndarray:
    """Top-left flat indices that start a quad (not in the last column or row)."""
    m = h * w - w - 1
    return np.arange(m) % w != w - 1


def _one_bad_quads(flat: list[np.ndarray], ok: list[np.ndarray], q: np.ndarray, w: int) -> list[np.ndarray]:
    """Quads with exactly one invalid corner, corner replaced, edges dropped: 12 corner arrays."""
    corners = _gather(flat, q, w)
    _fix_one_corner(corners, [o[q] for o in ok])
    keep = np.flatnonzero(_no_edge([c[2] for c in corners]))
    return [a[keep] for c in corners for a in c]


Box = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _boxes(us: list[np.ndarray], vs: list[np.ndarray], shape: tuple[int, int]) -> Box:
    """Pixel bounding box [x0, x1) × [y0, y1) of each quad from its corners' u and v, clipped."""
    x0 = np.maximum(np.ceil(np.minimum(np.minimum(us[0], us[1]), np.minimum(us[2], us[3]))), 0)
    y0 = np.maximum(np.ceil(np.minimum(np.minimum(vs[0], vs[1]), np.minimum(vs[2], vs[3]))), 0)
    x1 = np.minimum(np.ceil(np.maximum(np.maximum(us[0], us[1]), np.maximum(us[2], us[3]))), shape[1])
    y1 = np.minimum(np.ceil(np.maximum(np.maximum(vs[0], vs[1]), np.maximum(vs[2], vs[3]))), shape[0])
    return x0.astype(np.int32), y0.astype(np.int32), x1.astype(np.int32), y1.astype(np.int32)


def _area(ax, ay, bx, by, cx, cy) -> np.ndarray:
    """Signed parallelogram area of (a→b, a→c), the SDK's edge function."""
    return (cy - ay) * (bx - ax) - (cx - ax) * (by - ay)


def _draw_slot(c: list[np.ndarray], px: np.ndarray, py: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Depth at pixel (px, py) of each quad, and whether it lies inside one of the quad's two triangles.

    ``c`` holds the group's corners (tlx tly tlz trx try trz brx bry brz blx bly blz). The pixel picks
    the triangle on its side of the top-left → bottom-right diagonal. The SDK negates the three areas
    on one side; signs cancel in the interpolation, so only the inside test depends on it.
    """
    tlx, tly, tlz, trx, try_, trz, brx, bry, brz, blx, bly, blz = c
    a_mid = (py - tly) * (brx - tlx) - (px - tlx) * (bry - tly)
    ccw = a_mid >= 0
    mx, my, mz = np.where(ccw, blx, trx), np.where(ccw, bly, try_), np.where(ccw, blz, trz)
    a_tl = (py - my) * (tlx - mx) - (px - mx) * (tly - my)
    a_br = (py - bry) * (mx - brx) - (px - brx) * (my - bry)
    inside = np.where(ccw, (a_tl >= 0) & (a_br > 0), (a_tl <= 0) & (a_br < 0))
    total = a_tl + a_mid + a_br
    total[total == 0] = np.inf  # the SDK divides by nothing then: depth 0
    depth = (a_tl * brz + a_mid * mz + a_br * tlz) * (F32(1) / total)
    return depth, inside


def _draw(fetch, usable, x0, y0, x1, y1, shape: tuple[int, int]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Depths (mm, rounded) and flat colour indices of every pixel a ``usable`` quad covers.

    ``fetch(sel)`` returns the 12 corner arrays of quads ``sel``. Quads are grouped by box size;
    each group is evaluated one box position at a time over all its quads at once (no per-pixel
    gathers, no Python loop over quads or pixels).
    """
    bw, bh = np.maximum(x1 - x0, 0), np.maximum(y1 - y0, 0)
    tall = shape[0] + 1  # box heights are ≤ the image's: key = width · tall + height is unambiguous
    key = np.where(usable & (bw > 0) & (bh > 0), bw.astype(np.int64) * tall + bh, 0)
    depths: list[np.ndarray] = []
    where: list[np.ndarray] = []
    sizes = np.unique(key)
    for k in sizes[sizes != 0]:  # 0: not drawn (a group of one size may have no 0 at all)
        for sel in np.array_split(np.flatnonzero(key == k), 1 + (key == k).sum() // CHUNK):
            size = (int(k) // tall, int(k) % tall)
            _draw_group(fetch(sel), x0[sel], y0[sel], size, shape[1], depths, where)
    return depths, where


def _draw_group(group, gx, gy, size: tuple[int, int], width: int, depths: list, where: list) -> None:
    """Draw quads of one box ``size`` (w, h), one box position at a time.

    A depth that does not round into uint16 below 65535 (the empty marker) is not drawn: the same
    on every CPU (a float → uint16 cast out of range is not), and what the compiled kernel does.
    """
    fx, fy = gx.astype(F32), gy.astype(F32)
    for dy in range(size[1]):
        for dx in range(size[0]):
            depth, inside = _draw_slot(group, fx + F32(dx), fy + F32(dy))
            inside &= depth < DEPTH_LIMIT
            depths.append((depth[inside] + F32(0.5)).astype(np.uint16))
            where.append((gy[inside] + dy) * width + gx[inside] + dx)


def rasterize(u, v, z, valid, shape: tuple[int, int]) -> np.ndarray:
    """Draw every usable quad of correspondences into a ``shape`` uint16 image, nearest surface kept."""
    h, w = u.shape
    m = h * w - w - 1  # quads by top-left flat index
    flat = [u.ravel(), v.ravel(), z.ravel()]
    ok = [valid.ravel()[off : off + m] for off in _offsets(w)]
    n_ok = ok[0].astype(np.int8) + ok[1] + ok[2] + ok[3]
    inner = _inner(h, w)
    # Quads with four valid corners (nearly all): tests and boxes on contiguous slices, no gathers
    corner = [[a[off : off + m] for off in _offsets(w)] for a in flat]
    usable = (n_ok == 4) & inner & _no_edge(corner[2])
    parts = _draw(
        lambda sel: [a[sel + off] for off in _offsets(w) for a in flat],
        usable, *_boxes(corner[0], corner[1], shape), shape,
    )  # fmt: skip
    q_one = np.flatnonzero((n_ok == 3) & inner)
    if q_one.size:
        one = _one_bad_quads(flat, ok, q_one, w)
        boxes = _boxes(one[0::3], one[1::3], shape)
        more = _draw(lambda sel: [a[sel] for a in one], np.ones(len(one[0]), bool), *boxes, shape)
        parts = (parts[0] + more[0], parts[1] + more[1])
    out = np.full(shape[0] * shape[1], np.iinfo(np.uint16).max, np.uint16)
    if parts[0]:
        np.minimum.at(out, np.concatenate(parts[1]), np.concatenate(parts[0]))
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
