"""Fuser worker: soft-votes the newest coarse mask with the newest fresh-enough partition."""

from __future__ import annotations

import logging
import time

import numpy as np

from .. import messages as m
from ..config import FuserConfig
from ..geometry import fit_labels
from ..runtime.worker import WorkerRuntime, injected_fault
from .pairing import pair
from .vote import binary_probs, fuse_superpixels, soft_vote

log = logging.getLogger(__name__)


def fuse(coarse: m.CoarseMask, partition: m.Partition | None, cfg: FuserConfig) -> m.OcclusionMask:
    """The occlusion mask for ``coarse`` (pure apart from building the message)."""
    prob = coarse.probability()
    choice = pair(coarse, partition, cfg.max_partition_age_ms)
    encoding = cfg.output_encoding
    if choice.partition is None:
        mask = (prob >= 0.5).astype(np.uint8)
        return m.derived(
            coarse, m.OcclusionMask, mask=mask, fused=False, partition_age_ms=choice.age_ms, encoding=encoding
        )
    labels = fit_labels(choice.partition.labels, prob.shape)
    classes, votes = soft_vote(binary_probs(prob), labels)
    # Superpixels do not follow thin structures: mixed segments keep the coarse pixels
    if choice.partition.partitioner.startswith("superpixel"):
        classes = fuse_superpixels(prob, labels, classes)
    return m.derived(
        coarse,
        m.OcclusionMask,
        mask=classes.astype(np.uint8),
        votes=votes.astype(np.float32),
        fused=True,
        partition_frame_id=choice.partition.frame_id,
        partition_age_ms=choice.age_ms,
        partitioner=choice.partition.partitioner,
        encoding=encoding,
    )


class Holder:
    """Holds a coarse mask up to ``wait_ms`` for the partition of its own frame (pure timing logic).

    A coarse mask is released when the matching (or a newer) partition of the same capture run
    is there, when ``wait_ms`` has passed, or when a newer coarse mask arrives — so no frame is
    dropped for waiting, and a lying id can only end a wait early, never extend it.
    """

    def __init__(self, wait_ms: float) -> None:
        self.wait_s = wait_ms / 1000.0
        self.pending: m.CoarseMask | None = None
        self.since = 0.0

    def push(self, coarse: m.CoarseMask, now: float) -> m.CoarseMask | None:
        """Hold ``coarse``; return the previously held mask, which must be fused now."""
        previous, self.pending, self.since = self.pending, coarse, now
        return previous

    def release(self, partition: m.Partition | None, now: float) -> m.CoarseMask | None:
        """The held mask if it should be fused now, else None."""
        held = self.pending
        if held is None:
            return None
        matched = (
            partition is not None and partition.epoch == held.epoch and partition.frame_id >= held.frame_id
        )
        if self.wait_s <= 0 or matched or now - self.since >= self.wait_s:
            self.pending = None
            return held
        return None


def fuse_and_publish(rt: WorkerRuntime, pub, coarse: m.CoarseMask, partition, fault: str | None) -> None:
    """Fuse one coarse mask and publish it; a per-frame error is logged and counted."""
    rt.counters.frames_in += 1
    try:
        if fault == "raise":
            raise RuntimeError("injected fault")
        out = fuse(coarse, partition, rt.section("fuser"))
    except Exception as exc:  # per-frame: log with the frame id, count, go on
        rt.frame_error(coarse.frame_id, exc)
        return
    pub.publish(out)
    rt.counters.out()
    rt.info.update(fused=out.fused, partition_age_ms=round(out.partition_age_ms, 1))


def run(rt: WorkerRuntime) -> int:
    """Fuse each new coarse mask (latest-wins, held briefly for its partition); publish ``mask.occlusion``."""
    sub, pub = rt.subscriber([m.TOPIC_COARSE, m.TOPIC_PARTITION]), rt.publisher()
    fault = injected_fault(rt.name)
    holder = Holder(rt.section("fuser").wait_for_partition_ms)
    partition: m.Partition | None = None
    rt.tick("ready")
    while not rt.stop.is_set():
        latest = sub.recv_latest(5 if holder.pending is not None else 100)
        rt.tick()
        partition = latest.get(m.TOPIC_PARTITION, partition)  # type: ignore[assignment]
        now = time.monotonic()
        coarse = latest.get(m.TOPIC_COARSE)
        if coarse is not None:
            superseded = holder.push(coarse, now)  # type: ignore[arg-type]
            if superseded is not None:
                fuse_and_publish(rt, pub, superseded, partition, fault)
        ready = holder.release(partition, now)
        if ready is not None:
            fuse_and_publish(rt, pub, ready, partition, fault)
        rt.info.update(dropped=sub.stats.stale, invalid=sub.stats.invalid)
    return 0
