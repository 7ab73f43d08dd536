"""Carry a partition to a later frame with dense optical flow (pure compute).

Between SAM refreshes the last partition is warped to the current frame instead of being reused as
is: OpenCV's DIS optical flow at reduced resolution, both ways; each current pixel takes the label
of the pixel its backward flow points at (nearest, no blending of ids); a pixel whose forward and
backward flows disagree (occluded, disoccluded or unreliable) becomes 0 = uncovered, so the fuser
keeps the coarse label there. Consistent but wrong flow over something new (smooth DIS flow agrees
with itself there) is caught by the photometric residual: the warped previous grey image must match
the current one within ``photo_tol`` grey levels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


@dataclass
class WarpResult:
    """The warped labels and how much of the frame the flow could vouch for."""

    labels: np.ndarray  # H×W int32, 0 = uncovered
    reliable: float  # fraction of pixels with consistent flow
    mean_motion_px: float  # mean backward-flow length (full-resolution pixels)


def small_gray(rgb: np.ndarray, scale: float) -> np.ndarray:
    """Grey image of ``rgb`` resized by ``scale`` (uint8, as DIS wants)."""
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    if scale == 1.0:
        return grey
    h, w = grey.shape
    size = (max(8, round(w * scale)), max(8, round(h * scale)))
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA)


def dis_flow(src: np.ndarray, dst: np.ndarray, preset: str = "fast") -> np.ndarray:
    """Dense flow (h, w, 2) float32 such that ``src[y, x] ≈ dst[y + fy, x + fx]``."""
    dis = cv2.DISOpticalFlow.create(PRESETS[preset])
    flow = np.zeros((*src.shape[:2], 2), np.float32)  # output only (no initial flow)
    return np.asarray(dis.calc(src, dst, flow), np.float32)


def fb_consistent(
    backward: np.ndarray, forward: np.ndarray, tol: float, cur: np.ndarray, prev: np.ndarray, photo_tol: float
) -> np.ndarray:
    """Pixels (h, w) whose backward flow, followed by the forward flow there, comes back within
    ``tol`` and whose grey value matches the previous frame's there within ``photo_tol``."""
    h, w = backward.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mx, my = gx + backward[..., 0], gy + backward[..., 1]
    fwd_there = cv2.remap(forward, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    prev_there = cv2.remap(prev.astype(np.float32), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    photo_ok = np.abs(prev_there - cur.astype(np.float32)) <= photo_tol
    err = np.hypot(backward[..., 0] + fwd_there[..., 0], backward[..., 1] + fwd_there[..., 1])
    inside = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
    # Tolerance grows with the motion (a few per cent of it), as in the usual fb check
    motion = np.hypot(backward[..., 0], backward[..., 1]) + np.hypot(fwd_there[..., 0], fwd_there[..., 1])
    return inside & photo_ok & (err <= tol + 0.05 * motion)


def warp_labels(
    labels: np.ndarray,
    prev_rgb: np.ndarray,
    cur_rgb: np.ndarray,
    scale: float = 0.25,
    tol_px: float = 1.0,
    preset: str = "fast",
    photo_tol: float = 24.0,
) -> WarpResult:
    """``labels`` (of ``prev_rgb``) carried to ``cur_rgb``: backward mapping, nearest, 0 where unreliable.

    Args:
        labels: H×W integer partition of the previous frame (0 = uncovered).
        prev_rgb, cur_rgb: H×W×3 uint8 frames of the same size.
        scale: resolution of the flow relative to the frames (0.25: 320×180 for 720p).
        tol_px: forward-backward tolerance in flow pixels (at ``scale``).
        preset: DIS preset, ``ultrafast``, ``fast`` or ``medium``.
        photo_tol: largest grey difference (0–255, at ``scale``) between a pixel and where it came from.
    """
    h, w = labels.shape
    if prev_rgb.shape[:2] != (h, w) or cur_rgb.shape[:2] != (h, w):
        raise ValueError(
            f"frames {prev_rgb.shape[:2]} / {cur_rgb.shape[:2]} and labels {(h, w)} differ in size"
        )
    if not 0 < scale <= 1 or preset not in PRESETS:
        raise ValueError(f"warp scale must be in (0, 1] and preset one of {sorted(PRESETS)}")
    prev_s, cur_s = small_gray(prev_rgb, scale), small_gray(cur_rgb, scale)
    backward = dis_flow(cur_s, prev_s, preset)  # current pixel → where it was
    forward = dis_flow(prev_s, cur_s, preset)
    ok_small = fb_consistent(backward, forward, tol_px, cur_s, prev_s, photo_tol).astype(np.uint8)
    # Flow and reliability to full resolution, flow in full-resolution pixels
    sy, sx = h / backward.shape[0], w / backward.shape[1]
    flow = np.asarray(cv2.resize(backward, (w, h), interpolation=cv2.INTER_LINEAR), np.float32)
    flow *= np.array([sx, sy], np.float32)
    ok = cv2.resize(ok_small, (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    # Nearest sampling of ids (exact in float32 below 2**24)
    warped = cv2.remap(
        labels.astype(np.float32), gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_NEAREST, borderValue=0.0
    ).astype(np.int32)
    warped[~ok] = 0
    motion = float(np.hypot(flow[..., 0], flow[..., 1]).mean())
    return WarpResult(labels=warped, reliable=float(ok.mean()), mean_motion_px=motion)
