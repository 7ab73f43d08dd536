"""Writes an overlay video of the pipeline's output (a thread in the supervisor process)."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from .. import messages as m
from ..bus import CurveKeys, Subscriber
from ..geometry import fit_labels
from ..overlay import draw_overlay

log = logging.getLogger(__name__)

HELD = 64  # colour frames and partitions kept (by arrival) for the masks still to come


class VideoWriter:
    """H.264 (or MPEG-4 when x264 is missing) MP4 writer over PyAV."""

    def __init__(self, path: str, fps: int) -> None:
        import av

        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.container = av.open(path, "w")
        try:
            self.stream = self.container.add_stream("libx264", rate=fps)
        except Exception:  # codec absent from this FFmpeg build
            self.stream = self.container.add_stream("mpeg4", rate=fps)
        self.stream.pix_fmt = "yuv420p"
        self.frames = 0

    def fits(self, rgb: np.ndarray) -> bool:
        """Whether ``rgb`` has the video's size (any size before the first frame)."""
        h, w = rgb.shape[:2]
        return self.frames == 0 or (self.stream.width, self.stream.height) == (w - w % 2, h - h % 2)

    def write(self, rgb: np.ndarray) -> None:
        import av

        h, w = rgb.shape[:2]
        if self.frames == 0:
            self.stream.width, self.stream.height = w - w % 2, h - h % 2
        frame = av.VideoFrame.from_ndarray(
            np.ascontiguousarray(rgb[: h - h % 2, : w - w % 2]), format="rgb24"
        )
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()


class OverlayRecorder(threading.Thread):
    """Subscribes to colour, partition and occlusion; writes one overlay frame per occlusion mask."""

    def __init__(
        self, path: str, endpoint: str, camera: str, fps: int, curve: CurveKeys | None = None
    ) -> None:
        super().__init__(name="recorder", daemon=True)
        self.path, self.endpoint, self.camera, self.fps, self.curve = path, endpoint, camera, fps, curve
        self.stop_event = threading.Event()
        self.written = 0
        self.skipped = 0  # masks not drawn: no colour frame of theirs held, or not of its size
        self.error: str | None = None
        self.sub = Subscriber(
            endpoint, camera, [m.TOPIC_COLOR, m.TOPIC_PARTITION, m.TOPIC_OCCLUSION], rcvhwm=64, curve=curve
        )

    def run(self) -> None:
        import av

        try:
            self._record()
        except (OSError, ValueError, av.FFmpegError) as exc:
            # Disk full, file removed, codec failure: say so once; the pipeline itself goes on
            self.error = f"overlay video {self.path}: {exc}"
            log.error("%s — recording stopped after %d frames", self.error, self.written)

    def _record(self) -> None:
        writer: VideoWriter | None = None
        # By identity (epoch, frame_id), oldest arrival first: a restarted capture counts from 0 again
        frames: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        partitions: OrderedDict[tuple[int, int], m.Partition] = OrderedDict()
        try:
            while not self.stop_event.is_set():
                for msg in self.sub.drain(100):
                    if isinstance(msg, m.ColorFrame):
                        _hold(frames, msg.identity, msg.image)
                    elif isinstance(msg, m.Partition):
                        _hold(partitions, msg.identity, msg)
                    elif isinstance(msg, m.OcclusionMask):
                        writer = self._take(msg, frames, partitions, writer)
        finally:
            self.sub.close()
            if writer is not None:
                writer.close()
                log.info("overlay video: %s (%d frames)", self.path, self.written)

    def _take(
        self, occ: m.OcclusionMask, frames, partitions, writer: VideoWriter | None
    ) -> VideoWriter | None:
        """Draw ``occ`` on its own colour frame, or count it skipped (no such frame held, or a
        mask or frame of another size: the bus is untrusted); returns the writer."""
        rgb = frames.get(occ.identity)
        if rgb is None or occ.mask.shape != rgb.shape[:2] or (writer is not None and not writer.fits(rgb)):
            self.skipped += 1
            if rgb is not None:  # a lost frame is no news; a size that does not fit is (a few times)
                level = logging.WARNING if self.skipped <= 3 else logging.DEBUG
                log.log(
                    level,
                    "overlay video: frame %d: mask %s, frame %s: skipped",
                    occ.frame_id,
                    occ.mask.shape,
                    rgb.shape[:2],
                )
            return writer
        writer = writer or VideoWriter(self.path, self.fps)
        used = partitions.get((occ.epoch, occ.partition_frame_id))
        writer.write(self._draw(rgb, occ, used))
        self.written += 1
        return writer

    @staticmethod
    def _draw(rgb: np.ndarray, occ: m.OcclusionMask, partition: m.Partition | None) -> np.ndarray:
        labels = None
        if occ.fused and partition is not None:
            labels = fit_labels(partition.labels, occ.mask.shape)
        return draw_overlay(rgb, occ.mask, labels, fused=occ.fused)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=10)


def _hold(held: OrderedDict[tuple[int, int], Any], identity: tuple[int, int], value: Any) -> None:
    """Keep ``value`` as the newest arrival; at most ``HELD`` (the oldest arrivals go first)."""
    held.pop(identity, None)
    held[identity] = value
    while len(held) > HELD:
        held.popitem(last=False)
