"""SAM worker: refreshes the ``partition`` of the newest frame at ``sam.rate_hz`` or as fast as it can.

Skips frames whose coarse mask holds no occlusion (the fused mask is then the coarse one), and,
when ``sam.reuse_threshold`` > 0, frames that barely changed since the last partition.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque
from dataclasses import replace

import numpy as np

from .. import messages as m
from ..config import SamConfig
from ..errors import Cancelled
from ..runtime.remote import report_failure, report_served, wait_until_reachable
from ..runtime.worker import MAX_CAMERAS, WorkerRuntime, deterministic_kernels
from .schedule import pick_camera

log = logging.getLogger(__name__)

RING = 16  # recent colour frames kept to find the one a coarse mask was computed from
FRAME_WAIT_S = 2.0  # every_frame: how long a coarse mask waits for its colour frame to arrive


def build(cfg: SamConfig):
    """The configured partitioner (logs which one runs and why)."""
    from .partitioner import build_partitioner

    return build_partitioner(cfg)


class FrameRing:
    """The last few colour frames in arrival order, keyed by identity ``(epoch, frame_id)`` (bounded).

    Order is arrival order, never the ids a peer sent: a restarted capture (new epoch, ids from 0)
    or a forged id far in the future is just the newest arrival.
    """

    def __init__(self, size: int = RING) -> None:
        self.size = size
        self.frames: OrderedDict[tuple[int, int], m.ColorFrame] = OrderedDict()

    def add(self, frame: m.ColorFrame) -> None:
        """Keep ``frame`` as the newest arrival (a repeated identity moves to the end)."""
        self.frames.pop(frame.identity, None)
        self.frames[frame.identity] = frame
        while len(self.frames) > self.size:
            self.frames.popitem(last=False)

    def get(self, identity: tuple[int, int]) -> m.ColorFrame | None:
        return self.frames.get(identity)

    def newest(self) -> m.ColorFrame | None:
        return next(reversed(self.frames.values()), None)

    def drop_through(self, identity: tuple[int, int]) -> None:
        """Forget the frame ``identity`` and every frame that arrived before it."""
        if identity not in self.frames:
            return
        while self.frames:
            key, _ = self.frames.popitem(last=False)
            if key == identity:
                return


def choose_input(ring: FrameRing, coarse: m.CoarseMask | None, need_coarse: bool):
    """The (frame, coarse) pair to partition next: the coarse mask's own frame when we have it."""
    if coarse is not None:
        frame = ring.get(coarse.identity)
        if frame is not None:
            return frame, coarse
    if need_coarse:
        return None, None
    return ring.newest(), None


def take_input(ring: FrameRing, coarse: m.CoarseMask | None, need_coarse: bool, done: tuple[int, int] | None):
    """Like :func:`choose_input`, but never the frame ``done`` (the last one partitioned).

    The chosen frame and every earlier arrival leave the ring, so the worker never goes back in
    time; it skips only the exact identity it already processed and never compares ids by size.
    """
    frame, used = choose_input(ring, coarse, need_coarse)
    if frame is None or frame.identity == done:
        return None, None
    ring.drop_through(frame.identity)
    return frame, used


def has_occlusion(coarse: m.CoarseMask, threshold: float) -> bool:
    """Whether any pixel of the coarse mask reaches the occlusion threshold."""
    return (
        bool((coarse.prob >= round(threshold * 255)).any())
        if coarse.prob.dtype == np.uint8
        else bool((coarse.prob >= threshold).any())
    )


def partition_message(frame: m.ColorFrame, result, source: m.ColorFrame | None = None) -> m.Partition:
    """The Partition message for ``frame``; ``source`` is the older frame the labels came from if reused."""
    src = source or frame
    labels = result.labels.astype(np.int32, copy=False)
    scores = np.asarray(result.scores, np.float32).reshape(-1, 2)
    # The protocol wants one score row per segment label; superpixels have none: zero rows
    n_segments = int(labels.max()) if labels.size else 0
    if len(scores) < n_segments:
        scores = np.vstack([scores, np.zeros((n_segments - len(scores), 2), np.float32)])
    return m.derived(
        src,
        m.Partition,
        labels=labels,
        scores=scores,
        partitioner=result.name,
        compute_ms=float(result.ms),
        decoder_calls=int(result.decoder_calls),
        reused=source is not None,
        confirmed_ts_us=frame.ts_us,
    )


class Refresher:
    """Decides when to refresh and runs the partitioner (rate limit, skip, reuse)."""

    def __init__(self, cfg: SamConfig, partitioner) -> None:
        self.cfg, self.partitioner = cfg, partitioner
        self.next_due = 0.0
        self.last_small: np.ndarray | None = None
        self.last_result = None
        self.last_source: m.ColorFrame | None = None
        self.last_identity: tuple[int, int] | None = None
        self.skipped = self.reused = 0
        self.carried: tuple[int, int] | None = None

    def due(self) -> bool:
        return time.monotonic() >= self.next_due

    def refresh(self, frame: m.ColorFrame, coarse: m.CoarseMask | None):
        """Partition ``frame``: (result, source frame if reused else None), or (None, None) if skipped."""
        self.next_due = time.monotonic() + (1.0 / self.cfg.rate_hz if self.cfg.rate_hz > 0 else 0.0)
        self.last_identity = frame.identity
        if (
            coarse is not None
            and self.cfg.skip_when_no_occlusion
            and not has_occlusion(coarse, self.cfg.occlusion_threshold)
        ):
            self.skipped += 1
            return None, None
        from .partitioner import frame_changed, small_gray

        small = small_gray(frame.image)
        # Reuse only within one capture run: the fuser pairs a partition with its own epoch only
        if (
            self.cfg.reuse_threshold > 0
            and self.last_result is not None
            and self.last_small is not None
            and self.last_source is not None
            and self.last_source.epoch == frame.epoch
            and not frame_changed(self.last_small, small, self.cfg.reuse_threshold)
        ):
            self.reused += 1
            return self.last_result, self.last_source
        prob = coarse.probability() if coarse is not None else None
        roi = coarse.roi if coarse is not None else None
        result = self.partitioner(frame.image, prob=prob, roi=roi)
        self.last_small, self.last_result, self.last_source = small, result, frame
        return result, None

    def carry(self, frame: m.ColorFrame | None) -> m.Partition | None:
        """The last partition warped to ``frame`` by optical flow (``sam.warp``), or None.

        Only within one capture run, once per frame, never onto the frame it was computed from.
        """
        src, res = self.last_source, self.last_result
        if not self.cfg.warp or frame is None or src is None or res is None or frame.epoch != src.epoch:
            return None
        if frame.identity in (src.identity, self.carried) or frame.image.shape != src.image.shape:
            return None
        from .warp import warp_labels

        self.carried = frame.identity
        t0 = time.perf_counter()
        labels = warp_labels(res.labels, src.image, frame.image).labels
        warped = replace(res, labels=labels, ms=(time.perf_counter() - t0) * 1000, decoder_calls=0)
        msg = partition_message(frame, warped)
        msg.warped_from = src.frame_id
        return msg


def publish_carried(rt: WorkerRuntime, refresher: Refresher, frame: m.ColorFrame | None, pub) -> None:
    """Publish the last partition warped to ``frame`` (``sam.warp``); a failure is counted, never raised."""
    try:
        msg = refresher.carry(frame)
    except Exception as exc:  # per-frame: log with the frame id, count, go on
        rt.frame_error(frame.frame_id if frame is not None else -1, exc)
        return
    if msg is not None:
        pub.publish(msg)
        rt.counters.out()


class Bed:
    """One camera's state in the partition worker: its frame ring, newest coarse mask, refresher."""

    def __init__(self, cfg: SamConfig, partitioner) -> None:
        self.ring, self.coarse = FrameRing(), None
        self.refresher = Refresher(cfg, partitioner)

    def candidate(self, need_coarse: bool) -> bool:
        """Whether a refresh is due and a new input (never the last partitioned frame) waits."""
        if not self.refresher.due():
            return False
        frame, _ = choose_input(self.ring, self.coarse, need_coarse)
        return frame is not None and frame.identity != self.refresher.last_identity


def take_messages(beds: dict[str, Bed], msgs: list[m.Message], new_bed) -> None:
    """File colour frames and coarse masks under their camera (at most ``MAX_CAMERAS`` beds)."""
    for msg in msgs:
        bed = beds.get(msg.camera)
        if bed is None:
            if len(beds) >= MAX_CAMERAS:
                continue
            bed = beds[msg.camera] = new_bed()
        if isinstance(msg, m.ColorFrame):
            bed.ring.add(msg)
        elif isinstance(msg, m.CoarseMask):
            bed.coarse = msg


def refresh_one(rt: WorkerRuntime, pub, bed: Bed, frame: m.ColorFrame, coarse) -> None:
    """Partition ``frame`` and publish; a per-frame error is logged and counted."""
    rt.counters.frames_in += 1
    try:
        if rt.fault == "raise":
            raise RuntimeError("injected fault")
        rt.tick("computing")
        result, source = bed.refresher.refresh(frame, coarse)
    except Cancelled:
        raise  # the worker is stopping
    except Exception as exc:  # per-frame: log with the frame id, count, go on
        rt.tick("running")
        retry = getattr(exc, "retry_after_s", None)  # the Triton encoder failed: back off this bed
        if retry is not None:
            bed.refresher.next_due = max(bed.refresher.next_due, time.monotonic() + float(retry))
            report_failure(rt.info, exc)
        rt.frame_error(frame.frame_id, exc, remote=retry is not None)
        return
    rt.tick("running")
    report_served(rt.info)
    if result is not None:
        pub.publish(partition_message(frame, result, source))
        rt.counters.out()
        rt.camera_out(frame.camera, frame.origin_us, partition_ms=round(float(result.ms), 1))
        rt.info.update(partition_ms=round(float(result.ms), 1), segments=int(result.labels.max()))


def every_frame_config(cfg: SamConfig) -> SamConfig:
    """``runtime.every_frame``: a fresh partition of every frame (no rate limit, skip, reuse or warp)."""
    return cfg.model_copy(
        update={"rate_hz": 0.0, "skip_when_no_occlusion": False, "reuse_threshold": 0.0, "warp": False}
    )


def next_pair(ring: FrameRing, queue: deque, now: float, wait_s: float):
    """The oldest queued coarse mask with its own colour frame: (frame, coarse), or (None, None).

    A coarse mask whose frame has not arrived yet waits up to ``wait_s``; then it is dropped and
    returned as (None, coarse) so the caller can count it (its frame is fused coarse-only).
    """
    if not queue:
        return None, None
    coarse, since = queue[0]
    frame = ring.get(coarse.identity)
    if frame is None and now - since < wait_s:
        return None, None
    queue.popleft()
    return frame, coarse


def drop_coarse(rt: WorkerRuntime, coarse: m.CoarseMask, why: str) -> None:
    """Count a coarse mask that cannot be partitioned (Status ``coarse_dropped``; its frame is fused
    coarse-only). Input from the bus, not this worker's failure: never counted toward a restart."""
    n = rt.info["coarse_dropped"] = rt.info.get("coarse_dropped", 0) + 1
    level = logging.WARNING if n <= 3 else logging.DEBUG
    log.log(level, "sam: coarse mask of frame %d dropped: %s (%d dropped)", coarse.frame_id, why, n)


def run_every_frame(rt: WorkerRuntime, cfg: SamConfig, partitioner, sub, pub) -> None:
    """Partition every coarse mask's own frame, in arrival order; nothing is skipped or reused."""
    deterministic_kernels()
    bed = Bed(every_frame_config(cfg), partitioner)
    queue: deque[tuple[m.CoarseMask, float]] = deque()
    while not rt.stop.is_set():
        for msg in sub.drain(100 if not queue else 5):
            if isinstance(msg, m.ColorFrame):
                bed.ring.add(msg)
            elif isinstance(msg, m.CoarseMask) and len(queue) < RING:
                queue.append((msg, time.monotonic()))
            elif isinstance(msg, m.CoarseMask):  # more than runtime.in_flight allows: a peer misbehaves
                drop_coarse(rt, msg, f"over {RING} coarse masks waiting")
        rt.tick()
        frame, coarse = next_pair(bed.ring, queue, time.monotonic(), FRAME_WAIT_S)
        if coarse is None:
            continue
        if frame is None:
            drop_coarse(rt, coarse, "its colour frame never arrived")
            continue
        try:
            refresh_one(rt, pub, bed, frame, coarse)
        except Cancelled:
            log.info("sam: partition of frame %d cancelled: stopping", frame.frame_id)
            return
        rt.info.update(dropped=pub.dropped, invalid=sub.stats.invalid)


def run(rt: WorkerRuntime) -> int:
    """Keep each camera's newest frames and coarse mask; refresh the oldest partition that is due."""
    cfg = rt.section("sam")
    if cfg.encoder == "triton":  # wait while the server cannot be reached (a wrong model: exit 3)
        from .partitioner import build_sam_partitioner, load_sam

        sam = load_sam(cfg)  # once: each try below reuses it (a vit_h checkpoint is 2.5 GB)
        connect = lambda: build_sam_partitioner(cfg, sam)  # noqa: E731
        partitioner = wait_until_reachable(rt, connect, f"Triton {cfg.triton_url}")
        if partitioner is None:
            return 0
    else:
        partitioner = build(cfg)
    partitioner.should_stop = rt.stop.is_set  # a minutes-long SAM partition ends on SIGTERM
    rt.info.update(partitioner=partitioner.name)
    sub, pub = (
        rt.subscriber([m.TOPIC_COLOR, m.TOPIC_COARSE], rcvhwm=max(rt.bus.rcvhwm, RING * rt.n_cameras)),
        rt.publisher(),
    )
    beds: dict[str, Bed] = {}
    refreshed_at: dict[str, float] = {}
    need_coarse = cfg.skip_when_no_occlusion or cfg.guided.enabled
    rt.tick("ready")
    if rt.runtime.every_frame:
        run_every_frame(rt, cfg, partitioner, sub, pub)
        return 0
    while not rt.stop.is_set():
        take_messages(beds, sub.drain(100), lambda: Bed(cfg, partitioner))
        rt.tick()
        rt.info.update(dropped=sub.stats.stale, invalid=sub.stats.invalid)
        for b in beds.values():  # sam.warp: carry the last partition to each new frame between refreshes
            if not b.refresher.due():
                publish_carried(rt, b.refresher, b.ring.newest(), pub)
        cam = pick_camera(refreshed_at, [c for c, b in beds.items() if b.candidate(need_coarse)])
        if cam is None:
            continue
        bed = beds[cam]
        frame, used_coarse = take_input(bed.ring, bed.coarse, need_coarse, bed.refresher.last_identity)
        if frame is None:
            continue
        refreshed_at[cam] = time.monotonic()
        try:
            refresh_one(rt, pub, bed, frame, used_coarse)
        except Cancelled:
            log.info("sam: partition of %s frame %d cancelled: stopping", cam, frame.frame_id)
            break
        rt.info.update(
            skipped=sum(b.refresher.skipped for b in beds.values()),
            reused=sum(b.refresher.reused for b in beds.values()),
        )
    return 0
