"""Fuser worker: soft-votes the newest coarse mask with the newest fresh-enough partition.

With ``fuser.depth_mask`` it also publishes each occlusion mask in the depth camera's pixels
(``mask.depth``), mapped with the depth frame of the same capture and the calibration it carried.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from .. import messages as m
from ..config import FuserConfig
from ..geometry import fit_labels
from ..runtime.restarts import STATUS_RCVHWM, RestartWatch
from ..runtime.worker import MAX_CAMERAS, WorkerRuntime
from .depth import DepthFrames
from .pairing import OwnPartitions, fallback_after_s, frame_age_s, pair
from .vote import binary_probs, fuse_superpixels, soft_vote

log = logging.getLogger(__name__)

DEPTH_RCVHWM = 16  # depth frames queued for the fuser between two loop passes (≥ 100 ms at 30 fps)


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
    """One camera's fusion state: its holder, its newest partition and (``depth_mask``) its depth frames."""

    def __init__(self, wait_ms: float, depth_mask: bool = False) -> None:
        self.holder = Holder(wait_ms)
        self.partition: m.Partition | None = None
        self.depth: DepthFrames | None = DepthFrames() if depth_mask else None


def skip_depth_mask(rt: WorkerRuntime, camera: str, frame_id: int, why: str) -> None:
    """Count a frame whose depth mask cannot be made; warn when the reason changes."""
    rt.info["depth_mask_skipped"] = rt.info.get("depth_mask_skipped", 0) + 1
    if rt.info.get("depth_mask_last_skip") != why:
        log.warning("fuser: no depth mask for %s frame %d: %s", camera, frame_id, why)
    rt.info["depth_mask_last_skip"] = why


def publish_depth_mask(rt: WorkerRuntime, pub, depth: DepthFrames, out: m.OcclusionMask) -> None:
    """Publish ``out`` in the depth camera's pixels, or count why it cannot be."""
    result = depth.mask_for(out)
    if isinstance(result, str):
        skip_depth_mask(rt, out.camera, out.frame_id, result)
        return
    pub.publish(result)
    rt.info["depth_masks_out"] = rt.info.get("depth_masks_out", 0) + 1


def fuse_and_publish(
    rt: WorkerRuntime, pub, coarse: m.CoarseMask, partition, depth: DepthFrames | None = None
) -> None:
    """Fuse one coarse mask and publish it (and its depth mask); a per-frame error is logged and counted."""
    rt.counters.frames_in += 1
    try:
        if rt.fault == "raise":
            raise RuntimeError("injected fault")
        out = fuse(coarse, partition, rt.section("fuser"))
    except Exception as exc:  # per-frame: log with the frame id, count, go on
        rt.frame_error(coarse.frame_id, exc)
        return
    pub.publish(out)
    if depth is not None:
        try:
            publish_depth_mask(rt, pub, depth, out)
        except Exception as exc:  # per-frame: log with the frame id, count, go on
            rt.frame_error(out.frame_id, exc)
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
                fuse_and_publish(rt, pub, superseded, bed.partition, bed.depth)
    ready = bed.holder.release(bed.partition, now)
    if ready is not None:
        fuse_and_publish(rt, pub, ready, bed.partition, bed.depth)


def by_camera(msgs: list[m.Message]) -> dict[str, list[m.Message]]:
    """Messages grouped by their camera id, arrival order kept."""
    out: dict[str, list[m.Message]] = {}
    for msg in msgs:
        out.setdefault(msg.camera, []).append(msg)
    return out


def bed_of(beds: dict[str, Bed], cam: str, cfg: FuserConfig) -> Bed | None:
    """Camera ``cam``'s state, made on first sight (None past MAX_CAMERAS: ids come from the bus)."""
    bed = beds.get(cam)
    if bed is None and len(beds) < MAX_CAMERAS:
        bed = beds[cam] = Bed(cfg.wait_for_partition_ms, cfg.depth_mask)
    return bed


def take_depth(rt: WorkerRuntime, depth_sub, beds: dict[str, Bed], cfg: FuserConfig) -> None:
    """Keep every queued depth frame (in order) with its camera, for the coarse masks still to come."""
    for msg in depth_sub.drain(1):
        bed = bed_of(beds, msg.camera, cfg)
        if isinstance(msg, m.DepthFrame) and bed is not None and bed.depth is not None:
            why = bed.depth.add(msg)
            if why is not None:
                skip_depth_mask(rt, msg.camera, msg.frame_id, why)
    rt.info.update(depth_invalid=depth_sub.stats.invalid)


def run_every_frame(rt: WorkerRuntime, sub, pub, depth_sub, beds: dict[str, Bed]) -> None:
    """``runtime.every_frame``: every coarse mask, fused with its own frame's partition when it comes
    in time, else alone (a fallback, logged) just before capture would give the frame up
    (``runtime.frame_timeout_s`` after capture: see :func:`fallback_after_s`)."""
    cfg: FuserConfig = rt.section("fuser")
    pairs = OwnPartitions(fallback_after_s(rt.runtime.frame_timeout_s))
    # A partition worker's Status shows its restart (runtime/restarts.py); heartbeats on their own
    # socket, so a burst of them never crowds a coarse mask or partition out of the queue
    restarts, statuses = RestartWatch(("sam",)), rt.subscriber([m.TOPIC_STATUS], rcvhwm=STATUS_RCVHWM)
    while not rt.stop.is_set():
        for msg in sub.drain(5 if pairs.waiting() else 100):
            if isinstance(msg, m.CoarseMask | m.Partition):
                pairs.add(msg, time.monotonic(), frame_age_s(msg.origin_us, m.now_us()))
        for msg in statuses.drain(0):
            if isinstance(msg, m.Status) and (started := restarts.seen(msg)) is not None:
                pairs.partitions_from(started)
        if depth_sub is not None:
            take_depth(rt, depth_sub, beds, cfg)
        rt.tick()
        for coarse, partition in pairs.ready(time.monotonic()):
            if partition is None and pairs.orphaned(coarse):
                log.warning(
                    "fuser: frame %d: its partition was lost in a partition worker restart: coarse-only "
                    "(fallback)",
                    coarse.frame_id,
                )
            elif partition is None:
                log.warning(
                    "fuser: frame %d: no partition of its own within %.0f s: coarse-only (fallback)",
                    coarse.frame_id,
                    rt.runtime.frame_timeout_s,
                )
            bed = bed_of(beds, coarse.camera, cfg)
            fuse_and_publish(rt, pub, coarse, partition, bed.depth if bed is not None else None)
        rt.info.update(dropped=pub.dropped, invalid=sub.stats.invalid)


def run(rt: WorkerRuntime) -> int:
    """Fuse each camera's new coarse masks (latest-wins, held briefly for their partition)."""
    cfg: FuserConfig = rt.section("fuser")
    # every_frame: room for each frame in flight's coarse mask and partition (nothing dropped)
    hwm = max(rt.bus.rcvhwm, 4 * rt.runtime.in_flight) if rt.runtime.every_frame else None
    sub, pub = rt.subscriber([m.TOPIC_COARSE, m.TOPIC_PARTITION], rcvhwm=hwm), rt.publisher()
    # Depth frames are all kept (not latest-wins): the coarse mask of an older frame is still to come
    depth_sub = rt.subscriber([m.TOPIC_DEPTH], rcvhwm=DEPTH_RCVHWM) if cfg.depth_mask else None
    beds: dict[str, Bed] = {}
    rt.tick("ready")
    if rt.runtime.every_frame:
        run_every_frame(rt, sub, pub, depth_sub, beds)
        return 0
    while not rt.stop.is_set():
        holding = any(b.holder.pending is not None for b in beds.values())
        grouped = by_camera(list(sub.recv_latest(5 if holding else 100).values()))
        if depth_sub is not None:
            take_depth(rt, depth_sub, beds, cfg)
        rt.tick()
        now = time.monotonic()
        for cam in set(grouped) | set(beds):
            bed = bed_of(beds, cam, cfg)
            if bed is not None:
                step_bed(rt, pub, bed, grouped.get(cam, []), now)
        rt.info.update(dropped=sub.stats.stale, invalid=sub.stats.invalid)
    return 0
