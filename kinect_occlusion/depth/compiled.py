"""The depth→colour kernels of :mod:`.transform`, compiled with numba: one pass per pixel, one per quad.

Same algorithm, same float32 operations in the same order as the numpy path (which stays the
reference and the fallback): the output is bit-identical (tests/unit/test_depth_compiled.py).
Constants are ``np.float32`` and integers never meet a float32 (numba would widen to float64);
numba does not contract ``a * b + c`` into an FMA without ``fastmath``, which stays off.

Dependency shape: numba is the optional extra ``depth`` (``pip install -e '.[depth]'``; `make venv`
and the README set-up install it). Not a core dependency: every numba release caps NumPy (0.68.1:
``numpy<2.6``), brings llvmlite (~200 MB installed) and has wheels only for the CPython versions
and platforms it supports. As an extra, a numpy upgrade, or a bedside box without a numba wheel,
still installs and runs, on the numpy path (:func:`available` is False), ~8× slower.

Compilation: ``cache=True`` writes the machine code next to this file (or numba's user cache when
that is read-only). ``DepthToColor.build`` runs them once on an empty frame, so they are compiled
(first run on a machine: ~1.8 s on the 2-core dev host) or loaded from that cache (~0.25 s) when a
transform is built, i.e. at worker start, never on the first frame.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

numba: ModuleType | None
try:  # the optional `depth` extra
    import numba
except ImportError:  # pragma: no cover - exercised where numba is not installed
    numba = None

F32 = np.float32
# The numpy path's constants, as float32 (transform.SKIP_INTERPOLATION_RATIO; 65534.5: see transform)
_SKIP = F32(0.04693441759)
_DEPTH_LIMIT = F32(65534.5)
_EMPTY = 65535


def available() -> bool:
    """True when numba is installed (the compiled kernels can run)."""
    return numba is not None


def _jit(fn):
    return numba.njit(cache=True, nogil=True, error_model="numpy")(fn) if numba is not None else fn


@_jit
def _project(p, x, y):
    """(x, y) on the z=1 plane → (u, v, valid): projection.py's _project_normalised, scalar.

    ``p``: cx cy fx fy k1..k6 codx cody p1 p2 metric_radius² (float32).
    """
    one, two = np.float32(1), np.float32(2)
    xp = x - p[10]
    yp = y - p[11]
    xp2, yp2, xyp = xp * xp, yp * yp, xp * yp
    rs = xp2 + yp2
    valid = not (rs > p[14])
    rss = rs * rs
    rsc = rss * rs
    a = one + p[4] * rs + p[5] * rss + p[6] * rsc
    b = one + p[7] * rs + p[8] * rss + p[9] * rsc
    bi = one / b if b != 0 else one
    d = a * bi
    xp_d = xp * d + ((rs + two * xp2) * p[13] + two * xyp * p[12])
    yp_d = yp * d + ((rs + two * yp2) * p[12] + two * xyp * p[13])
    u = (xp_d + p[10]) * p[2] + p[0]
    v = (yp_d + p[11]) * p[3] + p[1]
    return u, v, valid


@_jit
def correspond(depth, xt, yt, rot, t, p, u, v, z, valid):  # noqa: PLR0913 - outputs filled in place
    """Every depth pixel's colour pixel (u, v), colour-camera depth z and validity (transform._correspond)."""
    zero, one = np.float32(0), np.float32(1)
    h, w = depth.shape
    for i in range(h):
        for j in range(w):
            d = np.float32(depth[i, j])
            have = depth[i, j] != 0 and np.isfinite(xt[i, j])
            px, py, pz = xt[i, j] * d, yt[i, j] * d, d
            cx = rot[0, 0] * px + rot[0, 1] * py + rot[0, 2] * pz + t[0]
            cy = rot[1, 0] * px + rot[1, 1] * py + rot[1, 2] * pz + t[1]
            cz = rot[2, 0] * px + rot[2, 1] * py + rot[2, 2] * pz + t[2]
            front = have and cz > 0
            safe = cz if front else one
            pu, pv, ok = _project(p, cx / safe, cy / safe)
            u[i, j] = pu if front else zero
            v[i, j] = pv if front else zero
            z[i, j] = cz if have else zero
            valid[i, j] = ok and front


@_jit
def _box(out, tl, tr, br, bl):
    """Pixel bounding box [x0, x1) × [y0, y1) of a quad, clipped to ``out`` (transform._boxes)."""
    x0 = max(int(np.ceil(min(min(tl[0], tr[0]), min(br[0], bl[0])))), 0)
    y0 = max(int(np.ceil(min(min(tl[1], tr[1]), min(br[1], bl[1])))), 0)
    x1 = min(int(np.ceil(max(max(tl[0], tr[0]), max(br[0], bl[0])))), out.shape[1])
    y1 = min(int(np.ceil(max(max(tl[1], tr[1]), max(br[1], bl[1])))), out.shape[0])
    return x0, y0, x1, y1


@_jit
def _draw(out, tl, tr, br, bl):
    """Draw one quad (corners: (u, v, z) tuples) into ``out``, nearer depth kept (transform._draw_slot).

    Every edge function is transform._draw_slot's expression with the same operands; the factors
    that do not change along a row are computed once per row, both triangles' (the one with BL, on
    the counter-clockwise side of the TL→BR diagonal, and the one with TR) before choosing: no
    data-dependent jump per pixel.
    """
    tlx, tly, tlz = tl
    brx, bry, brz = br
    x0, y0, x1, y1 = _box(out, tl, tr, br, bl)
    for row in range(y0, y1):
        py = np.float32(row)
        m_row = (py - tly) * (brx - tlx)
        l_tl, l_br = (py - bl[1]) * (tlx - bl[0]), (py - bry) * (bl[0] - brx)
        r_tl, r_br = (py - tr[1]) * (tlx - tr[0]), (py - bry) * (tr[0] - brx)
        for col in range(x0, x1):
            px = np.float32(col)
            a_mid = m_row - (px - tlx) * (bry - tly)
            la_tl = l_tl - (px - bl[0]) * (tly - bl[1])
            la_br = l_br - (px - brx) * (bl[1] - bry)
            ra_tl = r_tl - (px - tr[0]) * (tly - tr[1])
            ra_br = r_br - (px - brx) * (tr[1] - bry)
            ccw = a_mid >= 0
            a_tl, a_br, mz = (la_tl, la_br, bl[2]) if ccw else (ra_tl, ra_br, tr[2])
            inside = ((a_tl >= 0) & (a_br > 0)) if ccw else ((a_tl <= 0) & (a_br < 0))
            _plot(out, row, col, inside, (a_tl, a_mid, a_br), (tlz, mz, brz))


@_jit
def _plot(out, row, col, inside, areas, zs):  # noqa: PLR0913 - one pixel
    """Barycentric depth (``areas`` a_tl a_mid a_br, corner depths ``zs`` tl third br) kept if nearer."""
    a_tl, a_mid, a_br = areas
    tlz, mz, brz = zs
    total = a_tl + a_mid + a_br
    inv = np.float32(1) / total if total != 0 else np.float32(0)
    depth = (a_tl * brz + a_mid * mz + a_br * tlz) * inv
    keep = inside & (depth < _DEPTH_LIMIT)
    # where kept, depth ≥ 0: truncating depth + 0.5 is numpy's float32 → uint16 cast
    value = np.uint16(np.int64((depth if keep else np.float32(0)) + np.float32(0.5)))
    out[row, col] = min(out[row, col], value if keep else np.uint16(_EMPTY))


@_jit
def _mid(a, b):
    """Midpoint of two corners (u, v, z), as (a + b) * 0.5."""
    h = np.float32(0.5)
    return (a[0] + b[0]) * h, (a[1] + b[1]) * h, (a[2] + b[2]) * h


@_jit
def _fix_one_corner(tl, tr, br, bl, ok):
    """Replace the one invalid corner (ok: tl, tr, br, bl) as transform._fix_one_corner does."""
    if not ok[0]:
        return _mid(tr, bl), tr, br, bl
    if not ok[1]:
        return tl, br, _mid(br, bl), bl
    if not ok[2]:
        return tl, tr, _mid(tr, bl), bl
    return tl, tr, _mid(tr, br), br


@_jit
def _is_edge(tl, tr, br, bl):
    """True where the quad's depths spread more than the SDK's threshold (transform._no_edge negated)."""
    d_min = min(min(tl[2], tr[2]), min(br[2], bl[2]))
    d_max = max(max(tl[2], tr[2]), max(br[2], bl[2]))
    return (d_max - d_min) > _SKIP * d_min


@_jit
def rasterize(u, v, z, valid, out):
    """Draw every usable 2×2 quad of correspondences into ``out`` (uint16, colour-sized), nearest kept.

    ``out`` is overwritten; 0 where nothing is drawn (transform.rasterize's result).
    """
    out[:] = _EMPTY
    h, w = u.shape
    for i in range(h - 1):
        for j in range(w - 1):
            ok = (valid[i, j], valid[i, j + 1], valid[i + 1, j + 1], valid[i + 1, j])
            n = np.int64(ok[0]) + np.int64(ok[1]) + np.int64(ok[2]) + np.int64(ok[3])
            if n < 3:
                continue
            tl = (u[i, j], v[i, j], z[i, j])
            tr = (u[i, j + 1], v[i, j + 1], z[i, j + 1])
            br = (u[i + 1, j + 1], v[i + 1, j + 1], z[i + 1, j + 1])
            bl = (u[i + 1, j], v[i + 1, j], z[i + 1, j])
            if n == 3:
                tl, tr, br, bl = _fix_one_corner(tl, tr, br, bl, ok)
            if not _is_edge(tl, tr, br, bl):
                _draw(out, tl, tr, br, bl)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            if out[i, j] == _EMPTY:
                out[i, j] = 0
