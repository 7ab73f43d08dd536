"""2D↔3D projections of the Azure Kinect cameras, vectorised over arrays of points (float32).

Re-implemented from reading the SDK's ``src/transformation/intrinsic_transformation.c`` and
``transformation.c`` (no code copied): Brown–Conrady projection with the SDK's validity rule (a
point beyond the metric radius is invalid), and unprojection by a closed-form first guess refined by
up to 20 Gauss–Newton steps, invalid when the reprojection error stays above 1e-6 px². Each operation
runs in float32 in the SDK's order, so results match its 2D↔3D calls (and its depth→colour tables).

Points are in millimetres; pixel coordinates have 0 at the centre of the top-left pixel.
"""

from __future__ import annotations

import numpy as np

from .calibration import Calibration, Extrinsics, Intrinsics

F32 = np.float32
FLT_MAX = np.finfo(np.float32).max


def _rational(k: tuple, rs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Numerator ``a`` and denominator ``b`` of the radial factor at ``rs`` = r², and r⁴ (SDK order)."""
    k1, k2, k3, k4, k5, k6 = k
    rss = rs * rs
    rsc = rss * rs
    a = F32(1) + k1 * rs + k2 * rss + k3 * rsc
    b = F32(1) + k4 * rs + k5 * rss + k6 * rsc
    return a, b, rss


def _safe_inverse(x: np.ndarray) -> np.ndarray:
    """1 / x, with 1 where x is 0 (as the SDK guards its divisions)."""
    with np.errstate(divide="ignore"):
        return np.where(x != 0, F32(1) / x, F32(1)).astype(F32)


def _project_normalised(
    intr: Intrinsics, x: np.ndarray, y: np.ndarray, jacobian: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, ...] | None]:
    """(x, y) on the z=1 plane → (u, v, valid, J) for ``jacobian``; the SDK's project_internal."""
    k1, k2, k3, k4, k5, k6 = intr.k
    p1, p2 = intr.p1, intr.p2
    xp, yp = x - intr.codx, y - intr.cody
    xp2, yp2, xyp = xp * xp, yp * yp, xp * yp
    rs = xp2 + yp2
    valid = ~(rs > intr.metric_radius * intr.metric_radius)
    a, b, rss = _rational(intr.k, rs)
    bi = _safe_inverse(b)
    d = a * bi
    xp_d = xp * d + ((rs + F32(2) * xp2) * p2 + F32(2) * xyp * p1)
    yp_d = yp * d + ((rs + F32(2) * yp2) * p1 + F32(2) * xyp * p2)
    u = (xp_d + intr.codx) * intr.fx + intr.cx
    v = (yp_d + intr.cody) * intr.fy + intr.cy
    if not jacobian:
        return u, v, valid, None
    dudrs = k1 + F32(2) * k2 * rs + F32(3) * k3 * rss
    dvdrs = k4 + F32(2) * k5 * rs + F32(3) * k6 * rss
    dddrs_2 = ((dudrs * b - a * dvdrs) * (bi * bi)) * F32(2)
    xp_dddrs_2 = xp * dddrs_2
    yp_xp_dddrs_2 = yp * xp_dddrs_2
    j0 = intr.fx * (d + xp * xp_dddrs_2 + F32(6) * xp * p2 + F32(2) * yp * p1)
    j1 = intr.fx * (yp_xp_dddrs_2 + F32(2) * yp * p2 + F32(2) * xp * p1)
    j2 = intr.fy * (yp_xp_dddrs_2 + F32(2) * xp * p1 + F32(2) * yp * p2)
    j3 = intr.fy * (d + yp * yp * dddrs_2 + F32(6) * yp * p1 + F32(2) * xp * p2)
    return u, v, valid, (j0, j1, j2, j3)


def _first_guess(intr: Intrinsics, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form inverse of the radial part and an approximate tangential correction."""
    xp_d = (u - intr.cx) / intr.fx - intr.codx
    yp_d = (v - intr.cy) / intr.fy - intr.cody
    rs = xp_d * xp_d + yp_d * yp_d
    a, b, _ = _rational(intr.k, rs)
    di = _safe_inverse(a) * b
    x, y = xp_d * di, yp_d * di
    two_xy, xx, yy = F32(2) * x * y, x * x, y * y
    x = x - ((yy + F32(3) * xx) * intr.p2 + two_xy * intr.p1) + intr.codx
    y = y - ((xx + F32(3) * yy) * intr.p1 + two_xy * intr.p2) + intr.cody
    return x, y


def unproject_normalised(
    intr: Intrinsics, u: np.ndarray, v: np.ndarray, max_passes: int = 20
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixels → (x, y) on the z=1 plane and a validity mask (the SDK's iterative unprojection)."""
    with np.errstate(all="ignore"):  # a wild (but finite) calibration overflows: those points end invalid
        return _unproject(intr, np.asarray(u, F32), np.asarray(v, F32), max_passes)


def _unproject(
    intr: Intrinsics, u: np.ndarray, v: np.ndarray, max_passes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, y = _first_guess(intr, u, v)
    valid = np.ones(u.shape, bool)
    best_x, best_y = np.zeros_like(x), np.zeros_like(y)
    best_err = np.full(u.shape, FLT_MAX, F32)
    active = np.ones(u.shape, bool)
    for step in range(max_passes):
        pu, pv, pvalid, jac = _project_normalised(intr, x, y, True)
        assert jac is not None
        out = active & ~pvalid  # beyond the metric radius: invalid, no error check
        valid &= ~out
        active &= pvalid
        ex, ey = u - pu, v - pv
        err = ex * ex + ey * ey
        worse = active & (err >= best_err)
        x, y = np.where(worse, best_x, x), np.where(worse, best_y, y)
        active &= ~worse
        best_err = np.where(active, err, best_err)
        best_x, best_y = np.where(active, x, best_x), np.where(active, y, best_y)
        active &= ~(best_err < F32(1e-22)) & (step + 1 < max_passes)
        j0, j1, j2, j3 = jac
        inv_det = F32(1) / (j0 * j3 - j1 * j2)
        dx = (inv_det * j3) * ex + (-inv_det * j1) * ey
        dy = (-inv_det * j2) * ex + (inv_det * j0) * ey
        x, y = np.where(active, x + dx, x), np.where(active, y + dy, y)
        if not active.any():
            break
    valid &= ~(best_err > F32(1e-6))
    return x, y, valid


def unproject(intr: Intrinsics, uv: np.ndarray, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """N×2 pixels and N depths (mm) → N×3 points (mm) in that camera and a validity mask.

    Depth 0 gives the point (0, 0, 0), invalid (as the SDK).
    """
    uv = np.asarray(uv, F32).reshape(-1, 2)
    depth = np.asarray(depth, F32).reshape(-1)
    x, y, valid = unproject_normalised(intr, uv[:, 0], uv[:, 1])
    zero = depth == 0
    points = np.stack([x * depth, y * depth, depth], axis=1)
    points[zero] = 0
    return points, valid & ~zero


def project(intr: Intrinsics, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """N×3 points (mm) in a camera → N×2 pixels and a validity mask (z ≤ 0 or beyond the radius: invalid)."""
    points = np.asarray(points, F32).reshape(-1, 3)
    z = points[:, 2]
    ok = z > 0
    safe_z = np.where(ok, z, F32(1))
    u, v, valid, _ = _project_normalised(intr, points[:, 0] / safe_z, points[:, 1] / safe_z, False)
    uv = np.stack([u, v], axis=1)
    uv[~ok] = 0
    return uv, valid & ok


def transform_points(ext: Extrinsics, points: np.ndarray) -> np.ndarray:
    """N×3 points through ``y = R x + t`` in float32, summed in the SDK's order."""
    p = np.asarray(points, F32).reshape(-1, 3)
    r, t = ext.rotation, ext.translation
    cols = [r[i, 0] * p[:, 0] + r[i, 1] * p[:, 1] + r[i, 2] * p[:, 2] + t[i] for i in range(3)]
    return np.stack(cols, axis=1)


def _camera(cal: Calibration, name: str) -> Intrinsics:
    intr = cal.depth if name == "depth" else cal.color if name == "color" else None
    if intr is None:
        raise ValueError(f"camera {name!r} is off or unknown (use 'depth' or 'color')")
    return intr


def _extrinsics(cal: Calibration, source: str, target: str) -> Extrinsics | None:
    if source == target:
        return None
    return cal.depth_to_color if source == "depth" else cal.color_to_depth


def convert_2d_to_3d(
    cal: Calibration, uv: np.ndarray, depth: np.ndarray, source: str, target: str
) -> tuple[np.ndarray, np.ndarray]:
    """Pixels of ``source`` camera with depth (mm) → points (mm) in ``target`` camera (SDK 2d_to_3d)."""
    points, valid = unproject(_camera(cal, source), uv, depth)
    ext = _extrinsics(cal, source, target)
    return (points if ext is None else transform_points(ext, points)), valid


def convert_3d_to_2d(
    cal: Calibration, points: np.ndarray, source: str, target: str
) -> tuple[np.ndarray, np.ndarray]:
    """Points (mm) in ``source`` camera → pixels of ``target`` camera (SDK 3d_to_2d)."""
    ext = _extrinsics(cal, source, target)
    points = np.asarray(points, F32).reshape(-1, 3)
    return project(_camera(cal, target), points if ext is None else transform_points(ext, points))


def xy_table(intr: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel unprojection table (H×W x and y on the z=1 plane); NaN x marks an invalid pixel."""
    v, u = np.mgrid[0 : intr.height, 0 : intr.width].astype(F32)
    x, y, valid = unproject_normalised(intr, u.ravel(), v.ravel())
    x = np.where(valid, x, F32(np.nan)).reshape(intr.height, intr.width)
    y = np.where(valid, y, F32(0)).reshape(intr.height, intr.width)
    return x, y


def point_cloud(table: tuple[np.ndarray, np.ndarray], depth: np.ndarray) -> np.ndarray:
    """H×W depth (mm) → H×W×3 int16 points (mm) in the depth camera, 0 where invalid (the SDK's layout).

    x and y round half to even and saturate to int16, as the SDK's SSE path does.
    """
    x, y = table
    d = depth.astype(F32)
    ok = np.isfinite(x) & (depth > 0)
    lim = np.iinfo(np.int16)
    xs = np.clip(np.rint(np.where(ok, x * d, 0)), lim.min, lim.max)
    ys = np.clip(np.rint(np.where(ok, y * d, 0)), lim.min, lim.max)
    zs = np.where(ok, depth, 0).view(np.int16) if depth.dtype == np.uint16 else np.where(ok, d, 0)
    return np.stack([xs, ys, zs], axis=-1).astype(np.int16)
