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
