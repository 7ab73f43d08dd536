"""Subscriber API for monitoring apps (remote PPG, thermography, pain scoring…).

Example::

    from kinect_occlusion.client import OcclusionSubscriber

    with OcclusionSubscriber("ipc:///tmp/kinect-occlusion/bed1-out", camera="bed1") as sub:
        for msg in sub.iter(timeout_s=5.0):
            ignore = msg.mask.astype(bool)    # H×W, True where something covers the patient
            print(msg.frame_id, msg.fused, ignore.mean())

Depth-based monitors (``fuser.depth_mask: true``) take the same mask in the depth camera's pixels::

    from kinect_occlusion.client import DepthMaskSubscriber

    with DepthMaskSubscriber("ipc:///tmp/kinect-occlusion/bed1-out", camera="bed1") as sub:
        for msg in sub.iter(timeout_s=5.0):
            ignore = msg.mask != 0    # depth-sized: occluded (1) or unknown (255, no depth reading)
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator

from . import messages as m
from .bus import CurveKeys, Subscriber


class OcclusionSubscriber:
    """Receives decoded pipeline messages (``mask.occlusion`` by default).

    Args:
        endpoint: the pipeline's subscriber endpoint (``bus.backend`` in config.yaml).
        camera: camera id, or ``'*'`` for every camera on the bus.
        topics: topics to receive (see :mod:`kinect_occlusion.messages`).
        latest_only: True: each receive returns the newest message of a camera and topic,
            skipping its older queued ones (counted in ``dropped``); the newest of each other
            camera and topic queued meanwhile come with the next calls (never ordered by the
            senders' clocks); False: every message in order (up to the HWM).
        rcvhwm: receive high-water mark (messages).
        curve: client keys when the bus uses CURVE on tcp://.
    """

    def __init__(
        self,
        endpoint: str,
        camera: str = "bed1",
        topics: tuple[str, ...] = (m.TOPIC_OCCLUSION,),
        latest_only: bool = True,
        rcvhwm: int = 8,
        curve: CurveKeys | None = None,
    ) -> None:
        self.latest_only = latest_only
        self._sub = Subscriber(endpoint, camera, topics, rcvhwm=rcvhwm, curve=curve)
        self._newest: deque[m.Message] = deque()  # latest-only: one drain's newest per camera and topic

    @property
    def dropped(self) -> int:
        """Messages skipped because a newer one was already queued (latest-only mode)."""
        return self._sub.stats.stale

    @property
    def invalid(self) -> int:
        """Malformed messages dropped."""
        return self._sub.stats.invalid

    def receive(self, timeout_s: float = 1.0) -> m.Message | None:
        """The next message (latest-only: the newest of its camera and topic), or None after ``timeout_s``."""
        if not self.latest_only:
            return self._sub.recv(int(timeout_s * 1000))
        deadline = time.monotonic() + timeout_s
        while not self._newest:
            left_ms = int((deadline - time.monotonic()) * 1000)
            self._newest.extend(self._sub.recv_latest(max(1, min(100, left_ms))).values())
            if not self._newest and left_ms <= 0:
                return None
        return self._newest.popleft()

    def iter(self, timeout_s: float = 1.0) -> Iterator[m.Message]:
        """Yield messages until none arrives for ``timeout_s``."""
        while True:
            msg = self.receive(timeout_s)
            if msg is None:
                return
            yield msg

    def __iter__(self) -> Iterator[m.Message]:
        return self.iter()

    def close(self) -> None:
        """Close the socket."""
        self._sub.close()

    def __enter__(self) -> OcclusionSubscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DepthMaskSubscriber(OcclusionSubscriber):
    """Receives the occlusion mask in the depth camera's pixels (``mask.depth``, ``messages.DepthMask``).

    Published by the fuser when ``fuser.depth_mask`` is true: ``mask`` is the depth frame's size,
    1 = occluded, 0 = not, 255 (``messages.DEPTH_MASK_UNKNOWN``) = no depth reading there (or it sees
    no colour pixel); ``(epoch, frame_id)`` equal those of the colour mask and the depth frame it
    was mapped from. Arguments as :class:`OcclusionSubscriber` (``topics`` defaults to ``mask.depth``).
    """

    def __init__(
        self,
        endpoint: str,
        camera: str = "bed1",
        topics: tuple[str, ...] = (m.TOPIC_DEPTH_MASK,),
        latest_only: bool = True,
        rcvhwm: int = 8,
        curve: CurveKeys | None = None,
    ) -> None:
        super().__init__(endpoint, camera, topics, latest_only, rcvhwm, curve)

    def __enter__(self) -> DepthMaskSubscriber:
        return self
