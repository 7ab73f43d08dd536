"""The supervisor's view of the bus: worker heartbeats, per-stage rates and latencies.

Heartbeats are untrusted like every message: a Status counts for worker X only when it comes from
the pid of the supervisor's own child X and every ``info`` field the supervisor reads is sane.
What the supervisor concludes from them rests on its own clock (arrival times), never the sender's.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import messages as m
from ..bus import Subscriber
from .remote import NOT_SERVING
from .stages import SOURCE, result_topics
from .worker import MAX_CAMERAS

DUPLICATE_WINDOW_S = 3.0  # a camera's heartbeats from two pids this close together: two bedsides

log = logging.getLogger(__name__)

# The Status ``info`` fields the supervisor reads, with their sane ranges (the rest is only relayed)
MAX_COUNT = 2**63 - 1
MAX_ARRIVALS = 10_000  # per result topic: a rate over the window's newest this many (1 kHz for 10 s)
INFO_RANGES: dict[str, tuple[float, float]] = {
    "loop_age_s": (0.0, 1e7),
    "rate_hz": (0.0, 1e6),
    "frames_out": (0, MAX_COUNT),
    "dropped": (0, MAX_COUNT),
    "errors": (0, MAX_COUNT),
    "last_frame_id": (-1, MAX_COUNT),
    "epoch": (0, MAX_COUNT),
}
# States in which the main loop is busy by design, exempt from the loop check (bounded otherwise)
BUSY_STATES = ("starting", "computing")


def numbers_problem(info: dict[str, Any], keys: Iterable[str] = INFO_RANGES) -> str | None:
    """Why one of ``keys`` (INFO_RANGES names) that ``info`` has is not a number in its range, or None."""
    for key in keys:
        if key not in info:
            continue
        (lo, hi), v = INFO_RANGES[key], info[key]
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or not lo <= v <= hi:
            return f"info.{key} = {str(v)[:40]!r} is not a number in [{lo:g}, {hi:g}]"
    return None


def info_problem(info: dict[str, Any], uptime_s: float) -> str | None:
    """Why a Status ``info`` cannot be used, or None when every field the supervisor reads is sane.

    Args:
        info: the Status ``info`` dict as received.
        uptime_s: how long ago (supervisor clock) the sender was started; bounds ``loop_age_s``.
    """
    problem = numbers_problem(info)
    if problem:
        return problem
    if info.get("loop_age_s", 0.0) > uptime_s + 1.0:
        return (
            f"info.loop_age_s = {info['loop_age_s']:g} is longer than the worker has run ({uptime_s:.0f} s)"
        )
    return None


@dataclass
class Heartbeats:
    """What the supervisor measured of one child's heartbeats, on its own monotonic clock.

    A lie can only make a worker look alive, never hung: the loop tick only moves forward, a
    compute run starts at the first "computing" heartbeat and ends at any other, and a worker that
    once said it was past "starting" stays so.
    """

    pid: int
    started_at: float
    last_at: float | None = None  # arrival of the last accepted heartbeat
    loop_at: float | None = None  # newest main-loop tick implied by a heartbeat (arrival − loop_age_s)
    computing_since: float | None = None  # arrival of the first of a run of "computing" heartbeats
    ready: bool = False  # a heartbeat said it was past "starting"
    status: m.Status | None = None

    def beat(self, st: m.Status, now: float) -> None:
        """Take in an accepted heartbeat that arrived at ``now``."""
        self.last_at, self.status = now, st
        busy = st.state in BUSY_STATES
        tick = now if busy else now - float(st.info.get("loop_age_s", 0.0))
        self.loop_at = tick if self.loop_at is None else max(self.loop_at, tick)
        self.ready = self.ready or st.state != "starting"
        if st.state != "computing":
            self.computing_since = None
        elif self.computing_since is None:
            self.computing_since = now

    def forgive_gap(self, gap_s: float, now: float) -> None:
        """The supervisor itself did not run for ``gap_s`` up to ``now`` (SIGSTOP, a suspended VM, a
        starved host): move every time measured before it forward by the gap, as if the gap had
        not been, so a worker's silence is judged from when its heartbeats could be heard again."""
        self.started_at = min(self.started_at + gap_s, now)
        self.last_at = None if self.last_at is None else min(self.last_at + gap_s, now)
        self.loop_at = None if self.loop_at is None else min(self.loop_at + gap_s, now)
        if self.computing_since is not None:
            self.computing_since = min(self.computing_since + gap_s, now)


@dataclass
class StageStats:
    """Arrival times and latencies (ms) of one result topic over a sliding window."""

    window_s: float = 10.0
    arrivals: deque = field(default_factory=lambda: deque(maxlen=MAX_ARRIVALS))
    latency_ms: deque = field(default_factory=lambda: deque(maxlen=2000))
    count: int = 0
    recent: deque = field(default_factory=lambda: deque(maxlen=256))  # (epoch, frame_id) seen

    def add(self, msg: m.Message, now: float) -> float | None:
        """Record one message; return its capture→now latency in ms when known."""
        self.count += 1
        self.recent.append(msg.identity)
        self.arrivals.append(now)
        while self.arrivals and self.arrivals[0] < now - self.window_s:
            self.arrivals.popleft()
        if msg.origin_us <= 0:
            return None
        lat = (msg.sent_us - msg.origin_us) / 1000.0
        self.latency_ms.append(lat)
        return lat

    def rate(self) -> float:
        """Messages per second over the window."""
        if len(self.arrivals) < 2:
            return 0.0
        span = self.arrivals[-1] - self.arrivals[0]
        return (len(self.arrivals) - 1) / span if span > 0 else 0.0

    def percentiles(self) -> tuple[float, float]:
        """(p50, p95) latency in ms, NaN when empty."""
        if not self.latency_ms:
            return float("nan"), float("nan")
        a = np.fromiter(self.latency_ms, float)
        return float(np.percentile(a, 50)), float(np.percentile(a, 95))


class BusMonitor:
    """Subscribes to status and results; keeps the latest status per worker and stage stats."""

    TOPICS = (m.TOPIC_STATUS, *result_topics())

    def __init__(self, sub: Subscriber, on_message=None, own_pid: int = 0, camera: str | None = None) -> None:
        self.sub = sub
        self.camera = camera  # a ward server's own Status camera ('ward'); bedsides use their bed's id
        self.bedsides: dict[tuple[str, str], tuple[m.Status, float]] = {}  # (camera, worker) → last
        self.fused_by_camera: dict[str, StageStats] = {}  # fused masks per bed (bounded)
        self.duplicates = 0  # heartbeats of a second bedside for a camera id already in use
        self.replaced: dict[tuple[str, str], tuple[int, int]] = {}  # (camera, worker) → (old, new pid)
        self.beats: dict[str, Heartbeats] = {}
        self.past_pids: set[int] = set()
        self.own_pid = own_pid
        self.rejected = 0  # forged, foreign or insane Status messages
        self.stages = {t: StageStats() for t in self.TOPICS[1:]}
        self.partition_age_ms: deque = deque(maxlen=2000)
        self.on_message = on_message
        self.last_arrival: float | None = None  # monotonic time of the last message of any kind

    @property
    def status(self) -> dict[str, m.Status]:
        """The last accepted Status of each child."""
        return {n: b.status for n, b in self.beats.items() if b.status is not None}

    @property
    def invalid(self) -> int:
        """Messages dropped: malformed on the wire, and Status not from a child or not sane."""
        return self.sub.stats.invalid + self.rejected

    def expect(self, name: str, pid: int, now: float) -> None:
        """Child ``name`` now runs as ``pid`` (started at ``now``): only its heartbeats count."""
        old = self.beats.get(name)
        if old is not None:
            self.past_pids.add(old.pid)
        self.beats[name] = Heartbeats(pid, now)

    def _accept_status(self, st: m.Status, now: float) -> None:
        if self.camera is not None and st.camera != self.camera:
            self._bedside_status(st, now)
            return
        hb = self.beats.get(st.worker)
        if st.pid == self.own_pid and st.worker == "supervisor":
            return
        if hb is None or st.pid != hb.pid:
            if st.pid not in self.past_pids:  # a late beat of a replaced child is just stale
                self._reject(st, f"pid {st.pid} is not the supervisor's child {st.worker!r}")
            return
        problem = info_problem(st.info, now - hb.started_at)
        if problem is not None:
            self._reject(st, problem)
            return
        hb.beat(st, now)

    def _bedside_status(self, st: m.Status, now: float) -> None:
        """A bedside's heartbeat on a ward server: kept (bounded) for the report, not a child's."""
        key = (st.camera, st.worker)
        last = self.bedsides.get(key)
        if last is not None and last[0].pid != st.pid:
            # Alternating pids (not one replacing the other, as after a restart): two bedsides
            if self.replaced.get(key) == (st.pid, last[0].pid) and now - last[1] < DUPLICATE_WINDOW_S:
                self._duplicate(key, last[0].pid, st.pid)
            self.replaced[key] = (last[0].pid, st.pid)
        if last is not None or len(self.bedsides) < 2 * MAX_CAMERAS:
            self.bedsides[key] = (st, now)

    def _duplicate(self, key: tuple[str, str], a: int, b: int) -> None:
        self.duplicates += 1
        level = logging.WARNING if self.duplicates <= 3 else logging.DEBUG
        log.log(level, "camera %s: two bedsides publish it (%s pids %d and %d)", key[0], key[1], a, b)

    def _reject(self, st: m.Status, why: str) -> None:
        self.rejected += 1
        level = logging.WARNING if self.rejected <= 3 else logging.DEBUG
        log.log(level, "dropped a Status for %.40r: %s (%d dropped)", st.worker, why, self.rejected)

    def forgive_gap(self, gap_s: float, now: float) -> None:
        """The supervisor did not run for ``gap_s`` up to ``now``: see :meth:`Heartbeats.forgive_gap`."""
        for hb in self.beats.values():
            hb.forgive_gap(gap_s, now)
        if self.last_arrival is not None:
            self.last_arrival = min(self.last_arrival + gap_s, now)

    def poll(self, timeout_ms: int = 100) -> None:
        """Take in whatever arrived within ``timeout_ms``."""
        msgs = self.sub.drain(timeout_ms)
        now = time.monotonic()
        if msgs:
            self.last_arrival = now
        for msg in msgs:
            if isinstance(msg, m.Status):
                self._accept_status(msg, now)
                continue
            lat = self.stages[msg.TOPIC].add(msg, now)
            if isinstance(msg, m.OcclusionMask):
                self._per_camera(msg, now)
            if isinstance(msg, m.OcclusionMask) and msg.fused:
                self.partition_age_ms.append(msg.partition_age_ms)
            if self.on_message is not None:
                self.on_message(msg, lat)

    def _per_camera(self, msg: m.OcclusionMask, now: float) -> None:
        stats = self.fused_by_camera.get(msg.camera)
        if stats is None and len(self.fused_by_camera) < MAX_CAMERAS:
            stats = self.fused_by_camera[msg.camera] = StageStats()
        if stats is not None:
            stats.add(msg, now)

    def camera_report(self) -> str:
        """Per bed (a server of several): fused masks/s and capture→fused p50, e.g. ``bed1 5.0/s 40 ms``."""
        if len(self.fused_by_camera) < 2:
            return ""
        parts = []
        for cam, s in sorted(self.fused_by_camera.items()):
            p50, _ = s.percentiles()
            parts.append(f"{cam} {s.rate():.1f}/s" + ("" if np.isnan(p50) else f" {p50:.0f} ms"))
        return "beds: " + ", ".join(parts)

    def report(self) -> str:
        """One line: rate and latency per stage, partition age."""
        parts = []
        cap = self.status.get(SOURCE)
        if cap is not None:
            parts.append(f"capture {cap.info.get('rate_hz', 0.0):.1f}/s")
        names = {m.TOPIC_COARSE: "coarse", m.TOPIC_PARTITION: "partition", m.TOPIC_OCCLUSION: "fused"}
        for topic, name in names.items():
            s = self.stages[topic]
            p50, p95 = s.percentiles()
            lat = "" if np.isnan(p50) else f" (capture→ p50 {p50:.0f} p95 {p95:.0f} ms)"
            parts.append(f"{name} {s.rate():.1f}/s{lat}")
        if self.partition_age_ms:
            parts.append(f"partition age p50 {np.percentile(list(self.partition_age_ms), 50):.0f} ms")
        if self.invalid:
            parts.append(f"invalid {self.invalid}")
        beds = self.camera_report()
        if beds:
            parts.append(beds)
        parts.extend(inference_report(self.status))
        return " | ".join(parts)


def inference_report(status: dict[str, m.Status]) -> list[str]:
    """``inference server: deeplab model-unavailable`` when a worker's inference server does not
    serve it (a value outside ``NOT_SERVING`` is not repeated: ``info`` is untrusted)."""
    down = [
        f"{w} {s.info['inference_server']}"
        for w, s in sorted(status.items())
        if s.info.get("inference_server") in NOT_SERVING
    ]
    return ["inference server: " + ", ".join(down)] if down else []
