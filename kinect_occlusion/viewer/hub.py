"""The viewer's only link to the pipeline: subscribes (latest-wins), keeps the newest of each camera,
renders downscaled overlays at a capped rate for the pages being watched.

Runs in its own thread; the web server reads packets and summaries through :meth:`ViewerHub.packets`
and :meth:`ViewerHub.summaries`. Subscriptions are open only while a page is open, so with no browser
the viewer costs the pipeline nothing. Every bound is a constant below.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import zmq

from .. import messages as m
from ..bus import CurveKeys, Subscriber
from .render import camera_summary, encode_jpeg, pack_frame, render_view

log = logging.getLogger(__name__)

TOPICS = (m.TOPIC_COLOR, m.TOPIC_PARTITION, m.TOPIC_OCCLUSION, m.TOPIC_STATUS)
MAX_CAMERAS = 64
MAX_WORKERS = 32  # Status senders kept per camera
MAX_COLOR_FRAMES = 32  # per camera: colour frames waiting for their mask
RING_BYTES = 256 * 1024 * 1024  # colour frames kept over all cameras
MAX_PARTITIONS = 4
WINDOW = 120  # masks in the latency / fused-share window
MASKLESS_AFTER_S = 1.0  # show the plain picture when no mask came for this long
IDLE_CLOSE_S = 3.0  # close subscriptions this long after the last page closed
RETRY_OPEN_S = 2.0  # wait before subscribing again after an endpoint refused


@dataclass(frozen=True)
class ViewOptions:
    """How much the viewer sends: frames per second per camera, picture width, JPEG quality."""

    max_fps: float = 10.0
    max_width: int = 640
    jpeg_quality: int = 70


@dataclass
class CameraState:
    """The newest of everything one camera sent, bounded."""

    colors: OrderedDict[int, m.ColorFrame] = field(default_factory=OrderedDict)
    partitions: OrderedDict[int, m.Partition] = field(default_factory=OrderedDict)
    occlusion: m.OcclusionMask | None = None
    occlusion_at: float = 0.0
    first_color_at: float = 0.0
    statuses: dict[str, tuple[m.Status, float]] = field(default_factory=dict)
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))
    fused: deque[bool] = field(default_factory=lambda: deque(maxlen=WINDOW))
    rendered_key: tuple[int, bool] | None = None
    rendered_at: float = 0.0
    seq: int = 0
    packet: bytes = b""

    def color_bytes(self) -> int:
        return sum(c.image.nbytes for c in self.colors.values())


class ViewerHub(threading.Thread):
    """Subscribes to ``endpoints`` for ``camera`` (or ``'*'``) and renders what pages watch.

    Args:
        endpoints: subscriber (XPUB) endpoints of one or more pipelines.
        camera: camera id, or ``'*'`` for every camera on those buses.
        options: rate, size and quality of the pictures.
        curve: client keys for tcp:// endpoints with CURVE.
        idle_close_s: close the subscriptions this long after the last page closed.
    """

    def __init__(
        self,
        endpoints: Sequence[str],
        camera: str,
        options: ViewOptions,
        curve: CurveKeys | None = None,
        idle_close_s: float = IDLE_CLOSE_S,
    ) -> None:
        super().__init__(name="viewer-hub", daemon=True)
        self.endpoints, self.camera, self.options, self.curve = list(endpoints), camera, options, curve
        self.idle_close_s = idle_close_s
        self.stop_event = threading.Event()
        self._lock = threading.Lock()
        self._cameras: dict[str, CameraState] = {}
        self._watchers: Counter[str] = Counter()
        self._subs: list[Subscriber] = []
        self._idle_since = time.monotonic()
        self.stats = Counter[str]()

    # ------------------------------------------------------------------ called by the server

    def watch(self, camera: str) -> None:
        """A page for ``camera`` (or ``'*'``) opened."""
        with self._lock:
            self._watchers[camera] += 1

    def unwatch(self, camera: str) -> None:
        """That page closed."""
        with self._lock:
            self._watchers[camera] -= 1
            if self._watchers[camera] <= 0:
                del self._watchers[camera]
                self._idle_since = time.monotonic()

    def packets(self, camera: str) -> list[tuple[str, int, bytes]]:
        """(camera, sequence number, binary message) of the newest picture of each matching camera."""
        with self._lock:
            return [
                (cam, st.seq, st.packet)
                for cam, st in self._cameras.items()
                if st.packet and camera in ("*", cam)
            ]

    def summaries(self, camera: str) -> dict[str, dict[str, Any]]:
        """Status summary of each matching camera."""
        now = time.monotonic()
        with self._lock:
            picked = {c: st for c, st in self._cameras.items() if camera in ("*", c)}
            return {
                c: camera_summary(
                    dict(st.statuses),
                    list(st.latencies),
                    list(st.fused),
                    st.occlusion.partition_age_ms if st.occlusion is not None else None,
                    now,
                )
                for c, st in sorted(picked.items())
            }

    @property
    def subscribed(self) -> bool:
        """Whether the bus subscriptions are open (only while a page is open, and shortly after)."""
        return bool(self._subs)

    def counters(self) -> dict[str, int]:
        """Pictures rendered, pictures that failed, malformed bus messages dropped, and so on."""
        live_invalid = sum(sub.stats.invalid for sub in list(self._subs))
        return {**self.stats, "invalid": self.stats["invalid"] + live_invalid}

    def held(self, camera: str) -> tuple[int, int]:
        """(colour frames, bytes) the hub holds for ``camera`` waiting for their masks."""
        with self._lock:
            st = self._cameras.get(camera)
            return (len(st.colors), st.color_bytes()) if st is not None else (0, 0)

    # ------------------------------------------------------------------ the thread

    def run(self) -> None:
        poller = zmq.Poller()
        try:
            while not self.stop_event.is_set():
                if not self._wanted_any():
                    self._close_when_idle(poller)
                    self.stop_event.wait(0.1)
                    continue
                if not self._open(poller):
                    self.stop_event.wait(RETRY_OPEN_S)
                    continue
                ready = dict(poller.poll(100))
                for sub in self._subs:
                    if sub.sock in ready:
                        for msg in sub.drain(1):
                            self._ingest(msg)
                self._render_due()
        finally:
            self._close(poller)

    def stop(self) -> None:
        """Stop the thread and close the subscriptions."""
        self.stop_event.set()
        self.join(timeout=5)

    def _wanted_any(self) -> bool:
        with self._lock:
            return bool(self._watchers)

    def _wanted(self, camera: str) -> bool:
        with self._lock:
            return bool(self._watchers.get("*") or self._watchers.get(camera))

    def _open(self, poller: zmq.Poller) -> bool:
        """Subscribe to every endpoint (once); False, logged, when one cannot be connected."""
        if self._subs:
            return True
        for endpoint in self.endpoints:
            try:
                sub = Subscriber(endpoint, self.camera, TOPICS, rcvhwm=16, curve=self.curve)
            except zmq.ZMQError as exc:
                self.stats["connect_errors"] += 1
                log.error("viewer: cannot subscribe to %s (%s); retrying", endpoint, exc)
                self._close(poller)
                return False
            poller.register(sub.sock, zmq.POLLIN)
            self._subs.append(sub)
        log.info("viewer: subscribed to %s (camera %s)", ", ".join(self.endpoints), self.camera)
        return True

    def _close_when_idle(self, poller: zmq.Poller) -> None:
        if self._subs and time.monotonic() - self._idle_since > self.idle_close_s:
            self._close(poller)
            with self._lock:
                self._cameras.clear()
            log.info("viewer: no page open; subscriptions closed")

    def _close(self, poller: zmq.Poller) -> None:
        for sub in self._subs:
            self.stats["invalid"] += sub.stats.invalid
            poller.unregister(sub.sock)
            sub.close()
        self._subs.clear()

    # ------------------------------------------------------------------ state

    def _state(self, camera: str) -> CameraState | None:
        st = self._cameras.get(camera)
        if st is None:
            if len(self._cameras) >= MAX_CAMERAS:
                self.stats["too_many_cameras"] += 1
                return None
            st = self._cameras[camera] = CameraState()
        return st

    def _ingest(self, msg: m.Message) -> None:
        with self._lock:
            st = self._state(msg.camera)
            if st is None:
                return
            if isinstance(msg, m.ColorFrame):
                self._keep_color(st, msg)
            elif isinstance(msg, m.Partition):
                st.partitions[msg.frame_id] = msg
                while len(st.partitions) > MAX_PARTITIONS:
                    st.partitions.popitem(last=False)
            elif isinstance(msg, m.OcclusionMask):
                self._keep_occlusion(st, msg)
            elif isinstance(msg, m.Status) and (msg.worker in st.statuses or len(st.statuses) < MAX_WORKERS):
                st.statuses[msg.worker] = (msg, time.monotonic())

    def _keep_color(self, st: CameraState, msg: m.ColorFrame) -> None:
        st.first_color_at = st.first_color_at or time.monotonic()
        st.colors[msg.frame_id] = msg
        budget = RING_BYTES // max(1, len(self._cameras))
        while len(st.colors) > 1 and (len(st.colors) > MAX_COLOR_FRAMES or st.color_bytes() > budget):
            st.colors.popitem(last=False)

    def _keep_occlusion(self, st: CameraState, msg: m.OcclusionMask) -> None:
        st.occlusion, st.occlusion_at = msg, time.monotonic()
        if msg.origin_us:
            st.latencies.append((msg.sent_us - msg.origin_us) / 1000)
        st.fused.append(msg.fused)
        # Masks come in frame order: older colour frames will never be needed
        for old in [k for k in st.colors if k < msg.frame_id]:
            if len(st.colors) > 1:
                del st.colors[old]

    # ------------------------------------------------------------------ rendering

    def _render_due(self) -> None:
        period = 1.0 / self.options.max_fps
        now = time.monotonic()
        with self._lock:
            due = [c for c, st in self._cameras.items() if now - st.rendered_at >= period]
        for camera in due:
            if self._wanted(camera):
                self._render(camera, now)

    def _pick(self, st: CameraState, now: float) -> tuple[m.ColorFrame, m.OcclusionMask | None] | None:
        """The colour frame and mask to show next, or None when nothing new arrived."""
        occ = st.occlusion
        if occ is not None and now - st.occlusion_at < MASKLESS_AFTER_S:
            if st.rendered_key == (occ.frame_id, True):
                return None
            older = [k for k in st.colors if k <= occ.frame_id]
            key = occ.frame_id if occ.frame_id in st.colors else (max(older) if older else None)
            return (st.colors[key], occ) if key is not None else None
        # No mask for a while (or ever, after a second of frames): show the plain picture
        if not st.colors or now - max(st.occlusion_at, st.first_color_at) < MASKLESS_AFTER_S:
            return None
        newest = next(reversed(st.colors.values()))
        return None if st.rendered_key == (newest.frame_id, False) else (newest, None)

    def _render(self, camera: str, now: float) -> None:
        with self._lock:
            st = self._cameras.get(camera)
            picked = self._pick(st, now) if st is not None else None
            if st is None or picked is None:
                return
            color, occ = picked
            part = st.partitions.get(occ.partition_frame_id) if occ is not None and occ.fused else None
            st.rendered_at = now
            st.rendered_key = (occ.frame_id, True) if occ is not None else (color.frame_id, False)
        try:
            jpeg = self._draw(color, occ, part)
        except (ValueError, cv2.error) as exc:
            self.stats["render_errors"] += 1
            log.warning("viewer: %s frame %d not drawn: %s", camera, color.frame_id, exc)
            return
        meta = {
            "camera": camera,
            "frame_id": color.frame_id,
            "mask_frame_id": occ.frame_id if occ is not None else None,
            "has_mask": occ is not None,
            "fused": bool(occ.fused) if occ is not None else None,
            "partition_age_ms": occ.partition_age_ms if occ is not None else None,
            "latency_ms": round((occ.sent_us - occ.origin_us) / 1000, 1) if occ and occ.origin_us else None,
        }
        with self._lock:
            st.seq += 1
            st.packet = pack_frame(meta, jpeg)
        self.stats["rendered"] += 1

    def _draw(self, color: m.ColorFrame, occ: m.OcclusionMask | None, part: m.Partition | None) -> bytes:
        o = self.options
        mask = occ.mask if occ is not None else None
        labels = part.labels if part is not None else None
        rgb = render_view(color.image, mask, labels, bool(occ.fused) if occ else True, o.max_width)
        return encode_jpeg(rgb, o.jpeg_quality)
