"""Compare two depth images in colour geometry (ours vs the SDK's ``transformed_depth``)."""

from __future__ import annotations

import numpy as np

EDGE_MM = 50  # a 3×3 neighbourhood spanning more than this (or mixing 0 and depth) is a depth edge


def depth_edges(depth: np.ndarray) -> np.ndarray:
    """Pixels whose 3×3 neighbourhood in ``depth`` spans > EDGE_MM or mixes no-depth and depth."""
    d = np.pad(depth.astype(np.int32), 1, mode="edge")
    h, w = depth.shape
    shifts = [d[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)]
    lo, hi = np.minimum.reduce(shifts), np.maximum.reduce(shifts)
    return (hi - lo > EDGE_MM) | ((lo == 0) & (hi > 0))


def compare_depth(ours: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """Share of identical pixels; mean/max |Δ| (mm) overall, on depth edges, and where both have depth."""
    diff = np.abs(ours.astype(np.int32) - ref.astype(np.int32))
    edges = depth_edges(ref)
    both = (ours > 0) & (ref > 0)
    return {
        "identical": float((diff == 0).mean()),
        "mean_abs_mm": float(diff.mean()),
        "max_abs_mm": float(diff.max()),
        "edge_share": float(edges.mean()),
        "edge_identical": float((diff[edges] == 0).mean()) if edges.any() else 1.0,
        "edge_mean_abs_mm": float(diff[edges].mean()) if edges.any() else 0.0,
        "edge_max_abs_mm": float(diff[edges].max()) if edges.any() else 0.0,
        "coverage_ours": float((ours > 0).mean()),
        "coverage_ref": float((ref > 0).mean()),
        "both_mean_abs_mm": float(diff[both].mean()) if both.any() else 0.0,
    }


def format_stats(name: str, s: dict[str, float]) -> str:
    """One line for logs and the benchmark table."""
    return (
        f"{name}: identical {s['identical'] * 100:.3f} %, |Δ| mean {s['mean_abs_mm']:.3f} / max "
        f"{s['max_abs_mm']:.0f} mm; edges ({s['edge_share'] * 100:.1f} % of pixels) identical "
        f"{s['edge_identical'] * 100:.2f} %, |Δ| mean {s['edge_mean_abs_mm']:.2f} / max "
        f"{s['edge_max_abs_mm']:.0f} mm"
    )


SDK_BLOCK = 8  # the SDK's GPU engine loses quads in 8-column blocks of the depth image (see below)


def left_border_blocks(u: np.ndarray, v: np.ndarray, valid: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Colour pixels drawn from the depth quads the SDK's GPU transform engine leaves (mostly) empty.

    Measured (WFOV, tests/reference): in each row of depth quads, from the first quad that reaches
    into the colour image to the end of its 8-column block (columns ≡ 7 mod 8), the SDK draws only
    slivers; rows whose first quad starts a block lose nothing. Its public API always runs that
    engine (libdepthengine, closed source); rgbz.c, which we follow, draws those quads.

    Args:
        u, v, valid: the correspondences of every depth pixel (``DepthToColor.correspondences``).
        shape: the colour image's (height, width).
    """
    from skimage.draw import polygon

    mask = np.zeros(shape, bool)
    corners = [(slice(None, -1), slice(None, -1)), (slice(None, -1), slice(1, None))]
    corners += [(slice(1, None), slice(1, None)), (slice(1, None), slice(None, -1))]
    qu, qv = np.stack([u[c] for c in corners]), np.stack([v[c] for c in corners])
    ok = np.logical_and.reduce([valid[c] for c in corners])
    reach = ok & (qu.max(0) > 0) & (qv.max(0) > 0) & (qv.min(0) < shape[0])
    for r in np.flatnonzero(reach.any(axis=1)):
        first = int(np.argmax(reach[r]))
        for j in range(first, (first | (SDK_BLOCK - 1)) + 1):
            rr, cc = polygon(qv[:, r, j], qu[:, r, j], shape=shape)
            mask[rr, cc] = True
    return mask
