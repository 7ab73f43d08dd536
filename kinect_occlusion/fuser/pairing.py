"""Pairing the newest coarse mask with a recent-enough partition (pure)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from ..messages import CoarseMask, Partition


@dataclass(frozen=True)
class Pairing:
    """The partition chosen for a coarse mask (None: fall back to the coarse mask alone)."""

    partition: Partition | None
    age_ms: float
    reason: str


def pair(coarse: CoarseMask, partition: Partition | None, max_age_ms: float) -> Pairing:
    """Choose ``partition`` for ``coarse`` when its source frame is at most ``max_age_ms`` older.

    A partition from a *newer* frame than the coarse mask is accepted (age counted as its
    absolute difference): it describes the scene at least as well. Device timestamps compare
    only within one capture run, so a partition from another ``epoch`` is never paired.
    """
    if partition is None:
        return Pairing(None, -1.0, "no partition yet")
    if partition.camera != coarse.camera:
        return Pairing(None, -1.0, "partition from another camera")
    if partition.epoch != coarse.epoch:
        return Pairing(None, -1.0, "partition from another capture run")
    # A reused partition was confirmed valid for a newer frame (confirmed_ts_us)
    valid_ts = max(partition.ts_us, partition.confirmed_ts_us) if partition.reused else partition.ts_us
    age_ms = abs(coarse.ts_us - valid_ts) / 1000.0
    if age_ms > max_age_ms:
        return Pairing(None, age_ms, f"partition {age_ms:.0f} ms old > {max_age_ms:.0f} ms")
    return Pairing(partition, age_ms, "ok")


class OwnPartitions:
    """``runtime.every_frame`` (pure): each coarse mask waits for the partition of its own frame.

    Pairs by identity ``(epoch, frame_id)``; a coarse mask whose partition has not come within
    ``wait_s`` is released alone (fused coarse-only, a fallback). At most ``limit`` of each are kept:
    past that the oldest coarse mask is released alone, the oldest partition forgotten.
    """

    def __init__(self, wait_s: float, limit: int = 64) -> None:
        self.wait_s, self.limit = wait_s, limit
        self.coarse: OrderedDict[tuple[int, int], tuple[CoarseMask, float]] = OrderedDict()
        self.partitions: OrderedDict[tuple[int, int], Partition] = OrderedDict()

    def add(self, msg: CoarseMask | Partition, now: float) -> None:
        """Keep a coarse mask (from ``now``) or a partition until it is paired."""
        if isinstance(msg, CoarseMask):
            self.coarse[msg.identity] = (msg, now)
        else:
            self.partitions[msg.identity] = msg
            while len(self.partitions) > self.limit:
                self.partitions.popitem(last=False)

    def ready(self, now: float) -> list[tuple[CoarseMask, Partition | None]]:
        """The coarse masks to fuse now, oldest first: with their own partition, or alone when late."""
        out: list[tuple[CoarseMask, Partition | None]] = []
        for key, (coarse, since) in list(self.coarse.items()):
            partition = self.partitions.pop(key, None)
            late = now - since >= self.wait_s or len(self.coarse) > self.limit
            if partition is not None or late:
                del self.coarse[key]
                out.append((coarse, partition))
        return out

    def waiting(self) -> bool:
        return bool(self.coarse)
