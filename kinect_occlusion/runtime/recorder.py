"""Writes an overlay video of the pipeline's output (a thread in the supervisor process)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from .. import messages as m
from ..bus import CurveKeys, Subscriber
from ..geometry import fit_labels
from ..overlay import draw_overlay

log = logging.getLogger(__name__)


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
        frames: dict[int, np.ndarray] = {}
        partitions: dict[int, m.Partition] = {}
        try:
            while not self.stop_event.is_set():
                for msg in self.sub.drain(100):
                    if isinstance(msg, m.ColorFrame):
                        frames[msg.frame_id] = msg.image
                        for old in [k for k in frames if k < msg.frame_id - 64]:
                            del frames[old]
                    elif isinstance(msg, m.Partition):
                        partitions[msg.frame_id] = msg
                        for old in [k for k in partitions if k < msg.frame_id - 64]:
                            del partitions[old]
                    elif isinstance(msg, m.OcclusionMask) and msg.frame_id in frames:
                        writer = writer or VideoWriter(self.path, self.fps)
                        used = partitions.get(msg.partition_frame_id)
                        writer.write(self._draw(frames[msg.frame_id], msg, used))
                        self.written += 1
        finally:
            self.sub.close()
            if writer is not None:
                writer.close()
                log.info("overlay video: %s (%d frames)", self.path, self.written)

    @staticmethod
    def _draw(rgb: np.ndarray, occ: m.OcclusionMask, partition: m.Partition | None) -> np.ndarray:
        labels = None
        if occ.fused and partition is not None:
            labels = fit_labels(partition.labels, occ.mask.shape)
        return draw_overlay(rgb, occ.mask, labels, fused=occ.fused)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=10)
