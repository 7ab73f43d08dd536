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


# runtime.every_frame: the fuser releases a coarse mask alone this long (at most a quarter of
# runtime.frame_timeout_s) before capture gives its frame up, so the fallback's credit is back in time
FALLBACK_LEAD_S = 1.0


def fallback_after_s(frame_timeout_s: float) -> float:
    """How long after capture a coarse mask waits for its own partition (``runtime.every_frame``).

    One deadline per frame, counted from capture: capture gives a frame without a mask up after
    ``frame_timeout_s``, and the fuser writes it coarse-only a lead before that, so a frame is
    finished or given up within one ``frame_timeout_s`` (not one for the coarse mask to arrive plus
    one for its partition).
    """
    return frame_timeout_s - min(FALLBACK_LEAD_S, frame_timeout_s / 4)


def frame_age_s(origin_us: int, now_us: int) -> float:
    """Seconds since capture published a frame (``origin_us``, wall clock on this host); 0 when
    unknown (0) or in the future. From the bus: the caller bounds it."""
    return max(0.0, (now_us - origin_us) / 1e6) if origin_us > 0 else 0.0


class OwnPartitions:
    """``runtime.every_frame`` (pure): each coarse mask waits for the partition of its own frame.

    Pairs by identity ``(epoch, frame_id)``; a coarse mask whose partition has not come within
    ``wait_s`` of its frame's capture is released alone (fused coarse-only, a fallback). At most
    ``limit`` of each are kept: past that the oldest coarse mask is released alone, the oldest
    partition forgotten. After the partition worker restarted (:meth:`partitions_from`), a coarse
    mask whose frame was published before the new process started and whose partition is not
    here is released alone at once: that partition died with the old process.
    """

    def __init__(self, wait_s: float, limit: int = 64) -> None:
        self.wait_s, self.limit = wait_s, limit
        self.partitions_from_us = 0  # frames published before this get no partition any more
        self.coarse: OrderedDict[tuple[int, int], tuple[CoarseMask, float]] = OrderedDict()
        self.partitions: OrderedDict[tuple[int, int], Partition] = OrderedDict()

    def add(self, msg: CoarseMask | Partition, now: float, age_s: float = 0.0) -> None:
        """Keep a coarse mask or a partition until it is paired; a coarse mask arriving at ``now``
        was captured ``age_s`` before (see :func:`frame_age_s`; counted up to ``wait_s``)."""
        if isinstance(msg, CoarseMask):
            self.coarse[msg.identity] = (msg, now - min(max(age_s, 0.0), self.wait_s))
        else:
            self.partitions[msg.identity] = msg
            while len(self.partitions) > self.limit:
                self.partitions.popitem(last=False)

    def ready(self, now: float) -> list[tuple[CoarseMask, Partition | None]]:
        """The coarse masks to fuse now, oldest first: with their own partition, or alone when late."""
        out: list[tuple[CoarseMask, Partition | None]] = []
        for key, (coarse, since) in list(self.coarse.items()):
            partition = self.partitions.pop(key, None)
            late = now - since >= self.wait_s or len(self.coarse) > self.limit or self.orphaned(coarse)
            if partition is not None or late:
                del self.coarse[key]
                out.append((coarse, partition))
        return out

    def partitions_from(self, started_us: int) -> None:
        """The partition worker (re)started at ``started_us`` (wall µs, runtime/restarts.py)."""
        self.partitions_from_us = max(self.partitions_from_us, started_us)

    def orphaned(self, coarse: CoarseMask) -> bool:
        """Whether ``coarse``'s frame was published before the partition worker now running started."""
        return coarse.origin_us < self.partitions_from_us

    def waiting(self) -> bool:
        return bool(self.coarse)
