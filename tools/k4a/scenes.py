"""Depth scenes for checking depth→colour against the SDK: a ward bed seen from above (pure numpy).

A tilted floor, a bed whose mattress slopes, a patient-shaped bump, an arm held over the patient (a
near occluder: depth edges and occlusion), a rail, invalid pixels (0: no return) and sensor noise.
"""

from __future__ import annotations

import numpy as np


def ward_scene(width: int, height: int, seed: int = 0) -> np.ndarray:
    """An H×W uint16 depth image (mm) of the scene at the depth camera's resolution."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = x / width, y / height  # 0…1 across the image
    depth = 2600 + 500 * (v - 0.5) + 80 * (u - 0.5)  # floor, tilted
    bed = (u > 0.2) & (u < 0.8) & (v > 0.1) & (v < 0.95)
    depth = np.where(bed, 1900 + 150 * (v - 0.5), depth)  # mattress, head raised
    body = ((u - 0.5) / 0.14) ** 2 + ((v - 0.55) / 0.33) ** 2 < 1
    depth = np.where(body, depth - 180 * np.sqrt(np.clip(1 - ((u - 0.5) / 0.14) ** 2, 0, 1)), depth)
    arm = (np.abs((v - 0.35) - 0.6 * (u - 0.45)) < 0.04) & (u > 0.3) & (u < 0.75)
    depth = np.where(arm, 1150 + 300 * (u - 0.3), depth)  # an arm over the patient
    rail = (np.abs(u - 0.19) < 0.01) & bed.any(axis=1, keepdims=True) & (v > 0.3) & (v < 0.8)
    depth = np.where(rail, 1750, depth)
    depth = depth + rng.normal(0, 2.0, depth.shape)
    depth[rng.random(depth.shape) < 0.01] = 0  # scattered dropouts
    depth[(u - 0.85) ** 2 + (v - 0.15) ** 2 < 0.004] = 0  # a dark object: no return
    return np.clip(depth, 0, 65535).astype(np.uint16)
