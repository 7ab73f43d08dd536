"""Capture worker: source → ``frame.color`` (+ ``frame.depth``) at camera rate, never blocking."""

from __future__ import annotations

import logging
import time
from typing import Any

from .. import messages as m
from ..bus import Publisher
from ..runtime.worker import WorkerRuntime
from ..sources.base import Frame
from ..sources.factory import build_source

log = logging.getLogger(__name__)

# Time for the proxy to forward subscriptions to a fresh publisher before the first frame
SETTLE_S = 0.3


def publish_frame(pub: Publisher, rt: WorkerRuntime, frame: Frame, calibration: str | None) -> None:
    """Publish one frame's colour and depth; both carry the same frame_id/ts_us/origin_us."""
    origin = m.now_us()
    common: dict[str, Any] = {
        "camera": rt.camera,
        "frame_id": frame.frame_id,
        "ts_us": frame.ts_us,
        "origin_us": origin,
    }
    if frame.color is not None:
        pub.publish(m.ColorFrame(image=frame.color, encoding=rt.cfg.bus.color_encoding, **common))
    if frame.depth is not None:
        aligned = bool(frame.extra.get("aligned_to_color", False))
        pub.publish(
            m.DepthFrame(depth=frame.depth, aligned_to_color=aligned, calibration=calibration, **common)
        )


def run(rt: WorkerRuntime) -> int:
    """Stream frames until the source ends (state ``eof``) or the stop event is set."""
    pub = rt.publisher()

    def on_idle(state: str) -> None:
        rt.info["camera_state"] = state
        rt.tick(state)

    source = build_source(rt.cfg.camera, rt.stop, on_idle)
    rt.info["source"] = rt.cfg.camera.source
    with source:
        time.sleep(SETTLE_S)
        rt.tick("streaming")
        sent_calibration: str | None = None
        for frame in source:
            rt.counters.frames_in += 1
            calibration = source.calibration if source.calibration != sent_calibration else None
            publish_frame(pub, rt, frame, calibration)
            sent_calibration = source.calibration if frame.depth is not None else sent_calibration
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
            rt.tick("eof")
            log.info("capture: end of source after %d frames", rt.counters.frames_out)
    return 0
