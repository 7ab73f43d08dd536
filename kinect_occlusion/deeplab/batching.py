"""Cross-bed batch assembly (pure): the newest frame of each camera, run together, never late.

DeepStream's batched-push-timeout idea: a batch goes as soon as every camera seen recently has a
frame waiting or ``max_batch`` frames wait, and at the latest ``deadline_s`` after its first frame
arrived — a slow or silent camera never holds the others back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

F = TypeVar("F")


@dataclass
class BatchAssembler(Generic[F]):
    """Newest pending frame per camera and when the batch is due.

    Args:
        max_batch: most frames in one batch (≥ 1).
        deadline_s: longest wait after the first pending frame before the batch runs anyway.
        forget_s: a camera silent this long no longer counts as one the batch waits for.
        max_cameras: most cameras tracked at once (ids come from the bus: memory stays bounded).
    """

    max_batch: int
    deadline_s: float
    forget_s: float = 2.0
    max_cameras: int = 64
    pending: dict[str, F] = field(default_factory=dict)
    arrived: dict[str, float] = field(default_factory=dict)  # pending camera → arrival time
    seen: dict[str, float] = field(default_factory=dict)  # camera → last arrival time
    superseded: int = 0  # frames replaced by a newer one of the same camera before they ran
    dropped: dict[str, int] = field(default_factory=dict)  # superseded frames per camera
    refused: int = 0  # frames of cameras past max_cameras

    def add(self, camera: str, frame: F, now: float) -> bool:
        """Keep ``frame`` as ``camera``'s newest (an older pending one is counted as superseded).

        Returns False (and counts it) for a new camera past ``max_cameras``.
        """
        if camera not in self.seen and len(self.seen) >= self.max_cameras:
            self.refused += 1
            return False
        if camera in self.pending:
            self.superseded += 1
            self.dropped[camera] = self.dropped.get(camera, 0) + 1
        else:
            self.arrived[camera] = now
        self.pending[camera] = frame
        self.seen[camera] = now
        return True

    def active(self, now: float) -> list[str]:
        """Cameras heard from within ``forget_s`` (forgets the others)."""
        for cam in [c for c, t in self.seen.items() if now - t > self.forget_s and c not in self.pending]:
            del self.seen[cam]
            self.dropped.pop(cam, None)
        return list(self.seen)

    def due(self, now: float) -> bool:
        """Whether a batch should run now."""
        if not self.pending:
            return False
        if len(self.pending) >= self.max_batch:
            return True
        if all(c in self.pending for c in self.active(now)):
            return True
        return now - min(self.arrived.values()) >= self.deadline_s

    def wait_s(self, now: float) -> float:
        """Seconds until the pending batch's deadline (0 when due or nothing pends: the caller polls)."""
        if not self.pending:
            return 0.0
        return max(0.0, self.deadline_s - (now - min(self.arrived.values())))

    def take(self) -> list[tuple[str, F]]:
        """The batch: up to ``max_batch`` cameras, those waiting longest first; the rest stay pending."""
        order = sorted(self.pending, key=lambda c: self.arrived[c])[: self.max_batch]
        batch = [(c, self.pending.pop(c)) for c in order]
        for c in order:
            del self.arrived[c]
        return batch
