"""Capture worker: source → ``frame.color`` (+ ``frame.depth``) at camera rate, never blocking
(``runtime.every_frame``: it waits for credit instead, see :class:`CreditGate`).

Every frame carries the run's ``epoch`` (see :func:`next_epoch`), so ``(epoch, frame_id)`` stays
unique when a restarted capture counts frames from 0 again.
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from .. import messages as m
from ..bus import Publisher
from ..runtime.restarts import STATUS_RCVHWM, RestartWatch
from ..runtime.stages import BY_NAME
from ..runtime.worker import WorkerRuntime
from ..sources.base import Frame
from ..sources.factory import build_source
from .credit import Credits

log = logging.getLogger(__name__)

# Time for the proxy to forward subscriptions to a fresh publisher before the first frame
SETTLE_S = 0.3

# Depth frames carry the calibration when it changes and again this often, so a subscriber that
# joins later (a restarted fuser with fuser.depth_mask) gets it within a few seconds
CALIBRATION_EVERY_S = 2.0
# every_frame: the workers a frame passes (a restart holds capture until ready), and those whose
# restart loses the frames in flight to them (the fuser releases the partition worker's itself)
FRAME_PATH, GIVE_UP_ON_RESTART = ("deeplab", "sam", "fuser"), ("deeplab", "fuser")

# A stored epoch at or above this is not ours (corrupt or planted): ignored
MAX_STORED_EPOCH = 2**62


def epoch_file(camera: str) -> Path:
    """Where this user's runs of ``camera`` keep their last epoch on this host."""
    return Path(tempfile.gettempdir()) / f"kinect-occlusion-{os.getuid()}-{camera}.epoch"


def _stored_epoch(fd: int) -> int:
    """The epoch kept in the open file ``fd`` (0 when empty, unreadable or implausible)."""
    if os.fstat(fd).st_uid != os.getuid():
        return 0
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    value = int(text) if text.isdigit() else 0
    return value if value < MAX_STORED_EPOCH else 0


def next_epoch(path: Path, now_us: int) -> int:
    """This capture run's epoch: ``now_us``, but always above the last epoch stored in ``path``.

    The file is read and rewritten under an exclusive lock, so runs that start together, or after
    the wall clock stepped back, still get strictly increasing epochs. When the file cannot be used
    the wall clock alone is the epoch (logged once).
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        log.warning("capture: cannot keep the run epoch in %s (%s); using the clock", path, exc.strerror)
        return now_us
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        epoch = max(now_us, _stored_epoch(fd) + 1)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(epoch).encode(), 0)
        return epoch
    except OSError as exc:
        log.warning("capture: cannot keep the run epoch in %s (%s); using the clock", path, exc.strerror)
        return now_us
    finally:
        os.close(fd)


def publish_frame(
    pub: Publisher, rt: WorkerRuntime, frame: Frame, calibration: str | None, epoch: int
) -> None:
    """Publish one frame's colour and depth; both carry the same epoch/frame_id/ts_us/origin_us."""
    origin = m.now_us()
    common: dict[str, Any] = {
        "camera": rt.camera,
        "epoch": epoch,
        "frame_id": frame.frame_id,
        "ts_us": frame.ts_us,
        "origin_us": origin,
    }
    if frame.color is not None:
        pub.publish(
            m.ColorFrame(image=frame.color, encoding=rt.bus.color_encoding_for(rt.frontend), **common)
        )
    if frame.depth is not None:
        aligned = bool(frame.extra.get("aligned_to_color", False))
        pub.publish(
            m.DepthFrame(depth=frame.depth, aligned_to_color=aligned, calibration=calibration, **common)
        )


class CreditGate:
    """``runtime.every_frame``: holds capture back while ``runtime.in_flight`` frames are unfinished.

    A frame is finished when its ``mask.occlusion`` (fused or fallback) is on the bus (with
    ``runtime.credit_on_save``: when ``replay --save-masks`` has written it, ``mask.saved``); one whose mask
    never comes (a worker died with it) is given up after ``runtime.frame_timeout_s`` (logged,
    counted as lost). One timeout is enough: the fuser counts its wait for a partition from the
    frame's capture too, and writes the fallback before this (fuser/pairing.py ``fallback_after_s``).
    A restart of deeplab or the fuser, seen on the bus, gives their frames up at once, and no frame
    goes out until a restarted worker is ready (runtime/restarts.py; the fuser handles the partition
    worker's).
    """

    def __init__(self, rt: WorkerRuntime) -> None:
        self.rt = rt
        self.credits = Credits(rt.runtime.in_flight, rt.runtime.frame_timeout_s)
        # mask.occlusion (runtime/stages.py), or mask.saved once replay --save-masks has written it
        topics = (m.TOPIC_SAVED,) if rt.runtime.credit_on_save else BY_NAME[rt.name].credit
        self.sub = rt.subscriber(topics, rcvhwm=max(rt.bus.rcvhwm, 4 * rt.runtime.in_flight))
        # Heartbeats on their own socket: a burst of them never crowds a credit out of the queue
        self.statuses = rt.subscriber((m.TOPIC_STATUS,), rcvhwm=STATUS_RCVHWM)
        self.restarts = RestartWatch(FRAME_PATH, hold_s=rt.runtime.frame_timeout_s)

    def _collect(self, timeout_ms: int) -> None:
        for msg in self.sub.drain(timeout_ms):
            if isinstance(msg, m.OcclusionMask | m.MaskSaved):
                self.credits.give_back(msg.identity)
        for msg in self.statuses.drain(0):
            if isinstance(msg, m.Status):
                self._restarted(msg)
        for epoch_frame in self.credits.expire(time.monotonic()):
            log.warning(
                "capture: frame %d has no mask %.0f s after capture: given up (lost)",
                epoch_frame[1],
                self.credits.timeout_s,
            )
        self.rt.info.update(in_flight=len(self.credits.in_flight), lost=len(self.credits.lost))

    def _restarted(self, status: m.Status) -> None:
        """Give up the frames a restarted deeplab or fuser took with it (sent before it started)."""
        start = self.restarts.seen(status, time.monotonic())
        if start is None or status.worker not in GIVE_UP_ON_RESTART:
            return
        for epoch_frame in self.credits.give_up_sent_before(start):
            log.warning(
                "capture: frame %d was in flight when %s restarted: given up (lost)",
                epoch_frame[1],
                status.worker,
            )

    def may_send(self) -> bool:
        """Whether another frame may go out: a credit free and no restarted worker still starting."""
        return self.credits.available() and self.restarts.ready(time.monotonic())

    def wait_to_send(self) -> bool:
        """Wait until another frame may go out (:meth:`may_send`); False when stopped first."""
        return self.wait(lambda _: self.may_send())

    def wait(self, done) -> bool:
        """Wait (100 ms slices, ticking) until ``done(credits)``; False when stopped first."""
        self._collect(0)
        while not self.rt.stop.is_set():
            if done(self.credits):
                return True
            self.rt.tick()
            self._collect(100)
        return False

    def sent(self, identity: tuple[int, int], sent_us: int) -> None:
        self.credits.take(identity, time.monotonic(), sent_us)


def run(rt: WorkerRuntime) -> int:
    """Stream frames until the source ends (state ``eof``) or the stop event is set."""
    pub = rt.publisher()
    gate = CreditGate(rt) if rt.runtime.every_frame else None

    def on_idle(state: str) -> None:
        rt.info["camera_state"] = state
        rt.tick(state)

    source = build_source(rt.section("camera"), rt.stop, on_idle)
    epoch = next_epoch(epoch_file(rt.camera), m.now_us())
    rt.info.update(source=rt.section("camera").source, epoch=epoch)
    with source:
        time.sleep(SETTLE_S)
        rt.tick("streaming")
        sent_calibration: str | None = None
        sent_at = 0.0
        for frame in source:
            # every_frame: only a capture with colour makes a mask to give its credit back (one
            # without is a "lost" row in --save-masks, never a credit held for frame_timeout_s)
            credit = gate if frame.color is not None else None
            if credit is not None and not credit.wait_to_send():
                break
            rt.counters.frames_in += 1
            now = time.monotonic()
            due = source.calibration != sent_calibration or now - sent_at >= CALIBRATION_EVERY_S
            calibration = source.calibration if due else None
            sent_us = m.now_us()  # before publishing: a worker that starts after it never saw it
            publish_frame(pub, rt, frame, calibration, epoch)
            if credit is not None:
                credit.sent((epoch, frame.frame_id), sent_us)
            if frame.depth is not None and calibration is not None:
                sent_calibration, sent_at = calibration, now
            rt.counters.out()
            rt.info.update(
                last_frame_id=frame.frame_id,
                dropped=pub.dropped,
                camera_state=getattr(source, "state", "streaming"),
            )
            rt.tick("streaming")
            if rt.stop.is_set():
                break
        else:
            # every_frame: the end of the recording waits until its last frames are finished
            if gate is not None and gate.wait(Credits.idle):
                log.info("capture: every frame finished (%d lost)", len(gate.credits.lost))
            if not rt.stop.is_set():  # a source also ends its stream when stopped
                rt.tick("eof")
                log.info("capture: end of source after %d frames", rt.counters.frames_out)
    return 0
