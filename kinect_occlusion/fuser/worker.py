"""Fuser worker: soft-votes the newest coarse mask with the newest fresh-enough partition."""

from __future__ import annotations

import logging
import time

import numpy as np

from .. import messages as m
from ..config import FuserConfig
from ..geometry import fit_labels
from ..runtime.worker import MAX_CAMERAS, WorkerRuntime
from .pairing import OwnPartitions, pair
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


class Bed:
    """One camera's fusion state: its holder and its newest partition."""

    def __init__(self, wait_ms: float) -> None:
        self.holder = Holder(wait_ms)
        self.partition: m.Partition | None = None


def fuse_and_publish(rt: WorkerRuntime, pub, coarse: m.CoarseMask, partition) -> None:
    """Fuse one coarse mask and publish it; a per-frame error is logged and counted."""
    rt.counters.frames_in += 1
    try:
        if rt.fault == "raise":
            raise RuntimeError("injected fault")
        out = fuse(coarse, partition, rt.section("fuser"))
    except Exception as exc:  # per-frame: log with the frame id, count, go on
        rt.frame_error(coarse.frame_id, exc)
        return
    pub.publish(out)
    rt.counters.out()
    age = round(out.partition_age_ms, 1)
    rt.camera_out(out.camera, out.origin_us, fused=out.fused, partition_age_ms=age)
    rt.info.update(fused=out.fused, partition_age_ms=age)


def step_bed(rt: WorkerRuntime, pub, bed: Bed, msgs: list[m.Message], now: float) -> None:
    """Take one camera's newest coarse mask / partition; fuse what the holder releases."""
    for msg in msgs:
        if isinstance(msg, m.Partition):
            bed.partition = msg
    for msg in msgs:
        if isinstance(msg, m.CoarseMask):
            superseded = bed.holder.push(msg, now)
            if superseded is not None:
                fuse_and_publish(rt, pub, superseded, bed.partition)
    ready = bed.holder.release(bed.partition, now)
    if ready is not None:
        fuse_and_publish(rt, pub, ready, bed.partition)


def by_camera(msgs: list[m.Message]) -> dict[str, list[m.Message]]:
    """Messages grouped by their camera id, arrival order kept."""
    out: dict[str, list[m.Message]] = {}
    for msg in msgs:
        out.setdefault(msg.camera, []).append(msg)
    return out


def run_every_frame(rt: WorkerRuntime, sub, pub) -> None:
    """``runtime.every_frame``: every coarse mask, fused with its own frame's partition when it comes
    within ``runtime.frame_timeout_s``, else alone (a fallback, logged)."""
    pairs = OwnPartitions(rt.runtime.frame_timeout_s)
    while not rt.stop.is_set():
        for msg in sub.drain(5 if pairs.waiting() else 100):
            if isinstance(msg, m.CoarseMask | m.Partition):
                pairs.add(msg, time.monotonic())
        rt.tick()
        for coarse, partition in pairs.ready(time.monotonic()):
            if partition is None:
                log.warning(
                    "fuser: frame %d: no partition of its own within %.0f s: coarse-only (fallback)",
                    coarse.frame_id,
                    rt.runtime.frame_timeout_s,
                )
            fuse_and_publish(rt, pub, coarse, partition)
        rt.info.update(dropped=pub.dropped, invalid=sub.stats.invalid)


def run(rt: WorkerRuntime) -> int:
    """Fuse each camera's new coarse masks (latest-wins, held briefly for their partition)."""
    # every_frame: room for each frame in flight's coarse mask and partition (nothing dropped)
    hwm = max(rt.bus.rcvhwm, 4 * rt.runtime.in_flight) if rt.runtime.every_frame else None
    sub, pub = rt.subscriber([m.TOPIC_COARSE, m.TOPIC_PARTITION], rcvhwm=hwm), rt.publisher()
    wait_ms = rt.section("fuser").wait_for_partition_ms
    beds: dict[str, Bed] = {}
    rt.tick("ready")
    if rt.runtime.every_frame:
        run_every_frame(rt, sub, pub)
        return 0
    while not rt.stop.is_set():
        holding = any(b.holder.pending is not None for b in beds.values())
        grouped = by_camera(list(sub.recv_latest(5 if holding else 100).values()))
        rt.tick()
        now = time.monotonic()
        for cam in set(grouped) | set(beds):
            bed = beds.get(cam)
            if bed is None:
                if len(beds) >= MAX_CAMERAS:
                    continue
                bed = beds[cam] = Bed(wait_ms)
            step_bed(rt, pub, bed, grouped.get(cam, []), now)
        rt.info.update(dropped=sub.stats.stale, invalid=sub.stats.invalid)
    return 0
