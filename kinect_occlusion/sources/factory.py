"""Build the configured frame source."""

from __future__ import annotations

import threading
from collections.abc import Callable

from ..config import CameraConfig
from ..errors import SourceError
from .base import Source


def build_source(
    cam: CameraConfig, stop: threading.Event | None = None, on_idle: Callable[[str], None] | None = None
) -> Source:
    """The source named by ``camera.source``; raises SourceError with one line when unusable.

    Every source ends its stream soon after ``stop`` is set (within 0.1 s while pacing).

    ``on_idle(state)`` is called at least every 0.5 s while a live camera delivers no frames
    (e.g. unplugged and reconnecting), so the caller can stay alive and report the state.
    """
    realtime = cam.rate == "realtime"
    if cam.source == "mkv":
        from .mkv import MkvSource

        if not cam.mkv_path:
            raise SourceError("camera.mkv_path: no recording configured for source=mkv")
        return MkvSource(
            cam.mkv_path,
            realtime=realtime,
            loop=cam.loop,
            depth=cam.depth_mode != "OFF",
            max_frames=cam.max_frames,
            stop=stop,
            align_depth=cam.align_depth_to_color,
        )
    if cam.source == "synthetic":
        from .synthetic import SyntheticSource

        w, h = cam.synthetic_size
        return SyntheticSource(
            width=w,
            height=h,
            fps=cam.fps,
            seed=cam.synthetic_seed,
            n_frames=cam.max_frames,
            realtime=realtime,
            depth=cam.depth_mode != "OFF",
            stop=stop,
        )
    from .kinect import KinectSource

    return KinectSource(
        color_resolution=cam.resolution,
        fps=cam.fps,
        color_format=cam.color_format,
        depth_mode=cam.depth_mode,
        align_depth=cam.align_depth_to_color,
        device_serial=cam.device_serial,
        reconnect_backoff=cam.reconnect_backoff_s,
        stop_event=stop,
        on_idle=on_idle,
    )
