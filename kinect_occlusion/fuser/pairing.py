"""Pairing the newest coarse mask with a recent-enough partition (pure)."""

from __future__ import annotations

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
