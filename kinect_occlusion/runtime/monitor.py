"""The supervisor's view of the bus: worker heartbeats, per-stage rates and latencies."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from .. import messages as m
from ..bus import Subscriber


@dataclass
class StageStats:
    """Arrival times and latencies (ms) of one result topic over a sliding window."""

    window_s: float = 10.0
    arrivals: deque = field(default_factory=deque)
    latency_ms: deque = field(default_factory=lambda: deque(maxlen=2000))
    count: int = 0
    last_frame_id: int = -1

    def add(self, msg: m.Message, now: float) -> float | None:
        """Record one message; return its capture→now latency in ms when known."""
        self.count += 1
        self.last_frame_id = msg.frame_id
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

    TOPICS = (m.TOPIC_STATUS, m.TOPIC_COARSE, m.TOPIC_PARTITION, m.TOPIC_OCCLUSION)

    def __init__(self, sub: Subscriber, on_message=None) -> None:
        self.sub = sub
        self.status: dict[str, m.Status] = {}
        self.status_at: dict[str, float] = {}
        self.stages = {t: StageStats() for t in self.TOPICS[1:]}
        self.partition_age_ms: deque = deque(maxlen=2000)
        self.on_message = on_message

    def poll(self, timeout_ms: int = 100) -> None:
        """Take in whatever arrived within ``timeout_ms``."""
        now = time.monotonic()
        for msg in self.sub.drain(timeout_ms):
            if isinstance(msg, m.Status):
                self.status[msg.worker] = msg
                self.status_at[msg.worker] = now
                continue
            lat = self.stages[msg.TOPIC].add(msg, now)
            if isinstance(msg, m.OcclusionMask) and msg.fused:
                self.partition_age_ms.append(msg.partition_age_ms)
            if self.on_message is not None:
                self.on_message(msg, lat)

    def report(self) -> str:
        """One line: rate and latency per stage, partition age."""
        parts = []
        cap = self.status.get("capture")
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
        return " | ".join(parts)
