"""The fuser's depth side (``fuser.depth_mask``): each camera's recent depth frames and calibration, and
the occlusion mask mapped into the depth camera's pixels for the depth frame of the same capture."""

from __future__ import annotations

import time
from collections import deque

from .. import messages as m
from ..depth.calibration import CalibrationError
from ..depth.mask import DepthMasker

# Depth frames kept per camera while their coarse mask is computed (~1 s at 30 fps; each frame is
# 0.2–2 MB, so at most 64 MB per camera). Older ones, and those of frames already fused, are dropped.
MAX_DEPTH_FRAMES = 32


class DepthFrames:
    """One camera's newest depth frames (bounded), its last calibration and its cached tables."""

    def __init__(self) -> None:
        self.frames: deque[m.DepthFrame] = deque(maxlen=MAX_DEPTH_FRAMES)
        self.calibration: str | None = None
        self.masker = DepthMasker()

    def add(self, frame: m.DepthFrame) -> str | None:
        """Keep ``frame`` (and its calibration, when it carries one); the reason when it is unusable."""
        if frame.calibration is not None:
            self.calibration = frame.calibration
        if frame.aligned_to_color:
            return "depth aligned to colour (set camera.align_depth_to_color: false)"
        self.frames.append(frame)
        return None

    def take(self, identity: tuple[int, int]) -> m.DepthFrame | None:
        """The depth frame of capture ``identity``; it and the older frames of its run are dropped."""
        epoch, frame_id = identity
        found = next((f for f in self.frames if f.identity == identity), None)
        kept = [f for f in self.frames if f.epoch != epoch or f.frame_id > frame_id]
        if len(kept) != len(self.frames):
            self.frames = deque(kept, maxlen=MAX_DEPTH_FRAMES)
        return found

    def mask_for(self, out: m.OcclusionMask) -> m.DepthMask | str:
        """The DepthMask of ``out``, or why there is none (no depth frame, no or bad calibration)."""
        depth = self.take(out.identity)
        if depth is None:
            return "no depth frame of the same capture"
        if self.calibration is None:
            return "no calibration received yet"
        start = time.perf_counter()
        try:
            mask = self.masker(self.calibration, out.mask, depth.depth, m.DEPTH_MASK_UNKNOWN)
        except CalibrationError as exc:
            return f"cannot map into depth: {exc}"
        map_ms = (time.perf_counter() - start) * 1000.0
        return m.derived(out, m.DepthMask, mask=mask, fused=out.fused, map_ms=round(map_ms, 3))
