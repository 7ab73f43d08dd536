"""Prometheus endpoint of the supervisor: per-stage rates, drops, restarts, latency histograms."""

from __future__ import annotations

from typing import Any

from .. import messages as m
from ..errors import UserError
from .monitor import numbers_problem
from .worker import MAX_CAMERAS

LATENCY_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0)
# A latency or partition age outside this (seconds) is a lie or a clock skew, not a measurement:
# counted apart, never observed (a histogram's _sum would keep it for the rest of the run)
PLAUSIBLE_S = (0.0, 86_400.0)
PATHS = {
    m.TOPIC_COARSE: "capture_to_coarse",
    m.TOPIC_PARTITION: "capture_to_partition",
    m.TOPIC_OCCLUSION: "capture_to_fused",
}


def per_camera(cameras: Any) -> list[tuple[str, float, float]]:
    """(camera, rate_hz, frames_out) from a Status ``info['cameras']`` (untrusted: what is not a
    valid camera id with numbers in the ranges the supervisor accepts is left out)."""
    if not isinstance(cameras, dict):
        return []
    out = []
    for cam, d in list(cameras.items())[:MAX_CAMERAS]:
        if not isinstance(cam, str) or m.CAMERA_RE.fullmatch(cam) is None or not isinstance(d, dict):
            continue
        if numbers_problem(d, ("rate_hz", "frames_out")) is None:
            out.append((cam, float(d.get("rate_hz", 0.0)), float(d.get("frames_out", 0))))
    return out


class PipelineMetrics:
    """Serves ``/metrics`` on ``host:port`` from a registry of its own.

    Args:
        camera: camera id (a label on every series).
        port, host: where to listen (keep it on localhost or a management network).
    """

    def __init__(self, camera: str, port: int, host: str = "127.0.0.1") -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

        self.camera = camera
        self.cameras: set[str] = {camera}
        self.registry = CollectorRegistry()
        labels = ["camera", "worker"]
        self.rate = Gauge(
            "kinect_occlusion_rate_hz", "Results per second of a worker", labels, registry=self.registry
        )
        self.frames = Gauge(
            "kinect_occlusion_frames_out",
            "Results published by a worker since it started",
            labels,
            registry=self.registry,
        )
        self.dropped = Gauge(
            "kinect_occlusion_dropped",
            "Inputs skipped (latest-wins) by a worker",
            labels,
            registry=self.registry,
        )
        self.errors = Gauge(
            "kinect_occlusion_errors", "Per-frame errors of a worker", labels, registry=self.registry
        )
        self.restarts = Gauge(
            "kinect_occlusion_restarts", "Restarts of a worker", labels, registry=self.registry
        )
        self.up = Gauge(
            "kinect_occlusion_up", "1 while a worker process runs", labels, registry=self.registry
        )
        self.latency = Histogram(
            "kinect_occlusion_latency_seconds",
            "Capture to result latency",
            ["camera", "path"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.partition_age = Histogram(
            "kinect_occlusion_partition_age_seconds",
            "Age of the partition used",
            ["camera"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.implausible = Counter(
            "kinect_occlusion_implausible",
            "Latencies and partition ages from the bus outside [0 s, 1 day], not observed",
            ["camera"],
            registry=self.registry,
        )
        try:
            self.server: Any = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:  # the port held by anything else: one line, nothing started yet
            why = exc.strerror or exc
            raise UserError(
                f"metrics: cannot listen on {host}:{port} ({why}); set metrics.prometheus_port"
            ) from None

    def _label(self, camera: str) -> str | None:
        """``camera`` as a label value (a server labels each bed), None past ``MAX_CAMERAS`` of them."""
        if camera not in self.cameras:
            if len(self.cameras) >= MAX_CAMERAS:
                return None
            self.cameras.add(camera)
        return camera

    def observe_message(self, msg: m.Message, latency_ms: float | None) -> None:
        """Record a result's latency (and the partition age of fused masks), labelled by its camera."""
        camera = self._label(msg.camera)
        if camera is None:
            return
        path = PATHS.get(msg.TOPIC)
        if path is not None and latency_ms is not None:
            self._observe(self.latency.labels(camera, path), camera, latency_ms / 1000.0)
        if isinstance(msg, m.OcclusionMask) and msg.fused:
            self._observe(self.partition_age.labels(camera), camera, msg.partition_age_ms / 1000.0)

    def _observe(self, histogram: Any, camera: str, seconds: float) -> None:
        """Observe ``seconds`` when plausible (``PLAUSIBLE_S``), else count it as implausible."""
        if PLAUSIBLE_S[0] <= seconds <= PLAUSIBLE_S[1]:
            histogram.observe(seconds)
        else:
            self.implausible.labels(camera).inc()

    def observe_status(self, status: m.Status) -> None:
        """Copy a worker heartbeat's counters into the gauges (and its per-camera ones, on a server)."""
        i, key = status.info, (self.camera, status.worker)
        self.rate.labels(*key).set(float(i.get("rate_hz", 0.0)))
        self.frames.labels(*key).set(float(i.get("frames_out", 0)))
        self.dropped.labels(*key).set(float(i.get("dropped", 0)))
        self.errors.labels(*key).set(float(i.get("errors", 0)))
        for cam, rate, frames in per_camera(i.get("cameras")):
            camera = self._label(cam)
            if camera is not None:
                self.rate.labels(camera, status.worker).set(rate)
                self.frames.labels(camera, status.worker).set(frames)

    def observe_worker(self, name: str, restarts: int, alive: bool) -> None:
        """Record a worker's restart count and liveness."""
        self.restarts.labels(self.camera, name).set(restarts)
        self.up.labels(self.camera, name).set(1 if alive else 0)

    def close(self) -> None:
        """Stop serving."""
        shutdown = getattr(
            self.server[0] if isinstance(self.server, tuple) else self.server, "shutdown", None
        )
        if shutdown is not None:
            shutdown()
