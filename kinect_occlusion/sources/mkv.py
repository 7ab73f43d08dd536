"""Replay Azure Kinect recordings (.mkv) without the Azure Kinect SDK: PyAV demuxes, we decode.

Colour (MJPG, NV12, YUY2, BGRA) is decoded to RGB; depth and IR (``b16g``) are decoded bit-exactly
from the packet bytes (16-bit big-endian → native uint16 millimetres).

Timestamps: Matroska blocks hold the device timestamp minus ``K4A_START_OFFSET_NS``. A
:class:`Frame`'s ``ts_us`` adds the offset back, so it is the **device timestamp** (as the SDK's
``k4a_image_get_device_timestamp_usec``), comparable with a live Kinect's. When looping, each pass
is shifted by the length of the previous ones so timestamps never go backwards.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SourceError
from .base import Frame, Source, StopEvent, pace
from .ebml import MatroskaHeader, check_matroska
from .k4a_formats import COLOR_RESOLUTIONS, DEPTH_MODES, decode_color, decode_depth16

log = logging.getLogger(__name__)

TRACK_NAMES = ("COLOR", "DEPTH", "IR")


@dataclass
class TrackInfo:
    """One K4A video track."""

    name: str
    codec: str
    fourcc: str
    width: int
    height: int


@dataclass
class MkvInfo:
    """What :func:`probe_mkv` reports about a recording."""

    path: str
    tracks: list[TrackInfo]
    color_mode: str
    depth_mode: str
    ir_mode: str
    fps: int | None
    frame_count: int | None
    duration_s: float
    serial: str | None
    has_calibration: bool
    start_offset_ns: int
    tags: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Plain dict (JSON-serialisable)."""
        return asdict(self)


@dataclass
class _Layout:
    """Tracks, tags and calibration read from an open container."""

    indices: dict[str, int]  # track name → stream index in the container
    tracks: dict[str, TrackInfo]
    tags: dict[str, str]
    calibration: str | None
    start_offset_us: int
    fps: int | None


def open_container(path: str | Path):
    """Validate ``path``'s Matroska header and open it with PyAV; SourceError otherwise.

    A truncated file opens (its intact captures replay); see :func:`open_layout`.
    """
    return _open(path, check_matroska(path))


def _open(path: str | Path, header: MatroskaHeader):
    import av

    try:
        return av.open(str(path), mode="r")
    except (av.FFmpegError, OSError) as exc:
        cut = cut_note(header)
        if isinstance(exc, av.EOFError) and not cut:  # headers and tracks, then the file ends
            raise SourceError(
                f"{path}: no captures (the recorder stopped before its first frame) — nothing to replay"
            ) from None
        raise SourceError(f"{path}: {cut + ', ' if cut else ''}cannot read the recording ({exc})") from None


def cut_note(header: MatroskaHeader) -> str | None:
    """``truncated recording (N of M bytes)`` when the file is shorter than its Segment says."""
    if header.segment_size is None:
        return None
    expected = header.segment_start + header.segment_size
    if expected <= header.file_size:
        return None
    return f"truncated recording ({header.file_size} of {expected} bytes)"


def open_layout(path: str | Path) -> tuple[Any, _Layout, MatroskaHeader]:
    """Open ``path`` and read its layout: (container, layout, header); the caller closes the container.

    A truncated file whose tracks survive opens; one cut before them is a SourceError saying so.
    """
    header = check_matroska(path)
    container = _open(path, header)
    try:
        return container, read_layout(container, path), header
    except SourceError:
        container.close()
        if cut := cut_note(header):
            raise SourceError(f"{path}: {cut}, too little left to replay — copy the file again") from None
        raise


def read_layout(container, path: str | Path) -> _Layout:
    """Find the COLOR/DEPTH/IR tracks, K4A tags and calibration; SourceError if not a Kinect recording."""
    streams, tracks, tags = {}, {}, {}
    tags.update({k: v for k, v in container.metadata.items() if k.startswith("K4A_")})
    for stream in container.streams.video:
        name = stream.metadata.get("title", "")
        tags.update({k: v for k, v in stream.metadata.items() if k.startswith("K4A_")})
        if name in TRACK_NAMES and name not in streams:
            ctx = stream.codec_context
            streams[name] = stream
            tracks[name] = TrackInfo(
                name, ctx.name if ctx else "", str(ctx.codec_tag if ctx else ""), ctx.width, ctx.height
            )
    if "COLOR" not in streams and "DEPTH" not in streams:
        raise SourceError(f"{path}: not an Azure Kinect recording (no COLOR or DEPTH track)")
    for track in tracks.values():
        _check_track_size(track, path)
    calibration = None
    for att in container.streams.attachments:
        if att.name == "calibration.json":
            calibration = bytes(att.data).decode("utf-8", "replace").rstrip("\x00")
    try:
        offset_ns = int(tags.get("K4A_START_OFFSET_NS", "0"))
    except ValueError:
        raise SourceError(f"{path}: K4A_START_OFFSET_NS tag is not an integer") from None
    first = next(iter(streams.values()))
    rate = first.average_rate or first.guessed_rate
    fps = int(round(float(rate))) if rate else None
    return _Layout(
        {n: st.index for n, st in streams.items()}, tracks, tags, calibration, offset_ns // 1000, fps
    )


# The largest image of each track in any Azure Kinect mode (width, height)
MAX_TRACK_SIZE = {
    "COLOR": (max(w for w, _ in COLOR_RESOLUTIONS.values()), max(h for _, h in COLOR_RESOLUTIONS.values())),
    "DEPTH": (max(w for w, _ in DEPTH_MODES.values()), max(h for _, h in DEPTH_MODES.values())),
}


def _check_track_size(track: TrackInfo, path: str | Path) -> None:
    """SourceError when a track claims images larger than the camera makes (each would be decoded)."""
    max_w, max_h = MAX_TRACK_SIZE.get(track.name, MAX_TRACK_SIZE["DEPTH"])
    if track.width > max_w or track.height > max_h:
        raise SourceError(
            f"{path}: {track.name} track claims {track.width}×{track.height} images, larger than "
            f"any Azure Kinect mode ({max_w}×{max_h}) — not a Kinect recording"
        )


def iter_groups(
    container, indices: dict[str, int], tolerance_us: int, damage: Damage | None = None
) -> Iterator[tuple[int, dict]]:
    """Demux tracks ``indices`` (name → stream index), grouped into captures: (block ts µs, {name: packet}).

    Packets of different tracks within ``tolerance_us`` of a capture's first packet belong to it;
    a capture may lack a track. A read error ends the stream: noted in ``damage``, else a warning.
    """
    import av

    names = {index: name for name, index in indices.items()}
    streams = [container.streams[index] for index in indices.values()]
    group: dict = {}
    group_ts = 0
    try:
        for pkt in container.demux(*streams):
            if pkt.pts is None or pkt.size == 0:
                continue
            ts = int(pkt.pts * pkt.time_base.numerator * 1_000_000 // pkt.time_base.denominator)
            name = names[pkt.stream.index]
            if group and (name in group or ts - group_ts > tolerance_us):
                yield group_ts, group
                group = {}
            if not group:
                group_ts = ts
            group[name] = pkt
    except av.FFmpegError as exc:
        if damage is None:
            log.warning("%s: recording ends early, stopping here (%s)", container.name, exc)
        else:
            damage.read_error = str(exc)
    if group:
        yield group_ts, group


def probe_mkv(path: str | Path, count_frames: bool = True) -> MkvInfo:
    """Describe a recording; ``count_frames`` demuxes it (no decoding) for frame count and duration."""
    container, layout, _ = open_layout(path)
    try:
        count, first, last = 0, None, 0
        container_duration = float(container.duration or 0) / 1e6
        if count_frames:
            tolerance = _tolerance_us(layout.fps)
            for ts, _ in iter_groups(container, layout.indices, tolerance):
                first = ts if first is None else first
                count, last = count + 1, ts
    finally:
        container.close()
    period_s = 1.0 / layout.fps if layout.fps else 0.0
    duration = (last - first) / 1e6 + period_s if first is not None else container_duration
    tags = layout.tags
    return MkvInfo(
        path=str(path),
        tracks=list(layout.tracks.values()),
        color_mode=tags.get("K4A_COLOR_MODE") or _mode_from_track(layout.tracks.get("COLOR")),
        depth_mode=tags.get("K4A_DEPTH_MODE") or _depth_mode_from_track(layout.tracks.get("DEPTH")),
        ir_mode=tags.get("K4A_IR_MODE", "ACTIVE" if "IR" in layout.tracks else "OFF"),
        fps=layout.fps,
        frame_count=count if count_frames else None,
        duration_s=round(duration, 6),
        serial=tags.get("K4A_DEVICE_SERIAL_NUMBER"),
        has_calibration=layout.calibration is not None,
        start_offset_ns=layout.start_offset_us * 1000,
        tags=tags,
    )


def _tolerance_us(fps: int | None) -> int:
    """Packets closer than half a frame period belong to the same capture."""
    return int(1_000_000 / (fps or 30) / 2) - 1


def _mode_from_track(track: TrackInfo | None) -> str:
    if track is None:
        return "OFF"
    res = next((r for r, (w, h) in COLOR_RESOLUTIONS.items() if (w, h) == (track.width, track.height)), None)
    return f"{track.fourcc}_{res or f'{track.height}P'}"


def _depth_mode_from_track(track: TrackInfo | None) -> str:
    if track is None:
        return "OFF"
    return next((m for m, size in DEPTH_MODES.items() if size == (track.width, track.height)), "UNKNOWN")


@dataclass
class Damage:
    """What one pass over a recording found wrong; reported once, in one warning line."""

    bad: int = 0  # frames with an undecodable packet
    first_bad: list[str] = field(default_factory=list)  # "frame N: TRACK" for the first five
    last_bad: int = -1
    missing: int = 0  # captures absent between two others (gaps in the timestamps)
    out_of_order: int = 0  # captures stamped at or before an earlier one (played, in file order)
    read_error: str | None = None  # demuxer error that ended the pass early
    frames: int = 0  # captures read
    played: int = 0  # frames yielded (a capture with nothing decodable is not)
    last_ts: int | None = None

    def bad_frame(self, index: int, track: str) -> None:
        """Count frame ``index`` as corrupt (once, however many of its packets are bad)."""
        if index != self.last_bad:
            self.bad, self.last_bad = self.bad + 1, index
            if len(self.first_bad) < 5:
                self.first_bad.append(f"frame {index}: {track}")

    def see(self, ts: int, period_us: int) -> None:
        """Count one capture at block time ``ts`` and the captures a gap before it lost.

        A capture stamped at or before the newest one so far is counted out of order; gaps are
        measured from that newest one (a step back is not a gap, nor is the step forward after it).
        """
        self.frames += 1
        if self.last_ts is not None and ts <= self.last_ts:
            self.out_of_order += 1
            return
        if self.last_ts is not None and period_us > 0 and ts - self.last_ts > 1.5 * period_us:
            self.missing += round((ts - self.last_ts) / period_us) - 1
        self.last_ts = ts


def describe_damage(name: str, header: MatroskaHeader, d: Damage, finished: bool) -> str | None:
    """One line naming the file and what was wrong with it, or None when the pass was clean."""
    parts = []
    if d.bad:
        shown = ", ".join(str(i) for i in d.first_bad) + (", …" if d.bad > len(d.first_bad) else "")
        parts.append(f"{d.bad} corrupt frame(s) skipped or incomplete ({shown})")
    if d.missing:
        parts.append(f"{d.missing} capture(s) missing (gaps in the timestamps)")
    if d.out_of_order:
        parts.append(f"{d.out_of_order} capture(s) out of order (timestamps going back or repeated)")
    where = f"after frame {d.frames - 1}" if d.frames else "before the first frame"
    if finished and (cut := cut_note(header)):
        parts.append(f"{cut}: stopped at byte {header.file_size} {where}")
    elif finished and d.read_error:
        parts.append(f"read error {where}, stopped there ({d.read_error})")
    if finished and header.segment_size is None:
        parts.append("recording was not closed (unknown segment size: the recorder stopped while writing)")
    if not parts:
        return None
    return f"{name}: damaged recording — " + "; ".join(parts) + f"; {d.played} frames played"


class MkvSource(Source):
    """Frames of an Azure Kinect recording.

    Args:
        path: the .mkv file.
        realtime: pace frames by their timestamps (else as fast as they decode).
        loop: start again at ``start_s`` after the end (frame ids and timestamps keep increasing).
        start_s: skip to this time (seconds from the recording's first capture).
        depth: decode the DEPTH track; ir: decode the IR track.
        max_frames: stop after this many frames (None: no limit).
        stop: ends the stream when set (seen within ``WAIT_SLICE_S`` while pacing, and between captures).
        align_depth: reproject depth onto the colour image with the recording's calibration (as the
            live camera's ``align_depth_to_color``); when impossible, one warning and raw depth.
    """

    def __init__(  # noqa: PLR0913 — one keyword per replay option
        self,
        path: str | Path,
        *,
        realtime: bool = False,
        loop: bool = False,
        start_s: float = 0.0,
        depth: bool = True,
        ir: bool = False,
        max_frames: int | None = None,
        stop: StopEvent | None = None,
        align_depth: bool = False,
    ) -> None:
        self.path = Path(path)
        self.stop: StopEvent = stop if stop is not None else threading.Event()
        self.align_depth = align_depth
        self._aligner = None
        self.realtime, self.loop, self.start_s = realtime, loop, start_s
        self.depth, self.ir, self.max_frames = depth, ir, max_frames
        self.tags: dict[str, str] = {}
        self.tracks: dict[str, TrackInfo] = {}
        self.fps: int | None = None
        self._layout: _Layout | None = None
        self._header: MatroskaHeader | None = None
        self._reported = False

    def open(self) -> None:
        """Check the file and read its layout (tracks, tags, calibration)."""
        container, self._layout, self._header = open_layout(self.path)
        container.close()
        self.tags, self.tracks, self.fps = self._layout.tags, self._layout.tracks, self._layout.fps
        self.calibration = self._layout.calibration
        if self.align_depth and self.depth and self._aligner is None:
            self._aligner = self._build_aligner()

    @property
    def depth_aligned(self) -> bool:
        """True when depth frames come reprojected onto the colour image (``align_depth`` and possible)."""
        return self._aligner is not None

    def _build_aligner(self):
        """depth→colour for this recording, or None after one warning naming what is missing."""
        from ..depth.align import recording_aligner
        from ..depth.calibration import CalibrationError

        def size(name: str) -> tuple[int, int] | None:
            track = self.tracks.get(name)
            return None if track is None else (track.width, track.height)

        try:
            mode = self.tags.get("K4A_DEPTH_MODE")
            aligner = recording_aligner(self.path.name, self.calibration, mode, size("DEPTH"), size("COLOR"))
        except CalibrationError as exc:
            log.warning("%s; publishing depth unaligned", exc)
            return None
        if not aligner.compiled:
            log.info(
                "%s: depth→colour on the numpy path (~8× slower): pip install -e '.[depth]'", self.path.name
            )
        return aligner

    def close(self) -> None:
        """Nothing stays open between passes; safe to call twice."""
        self._layout = None

    def frames(self) -> Iterator[Frame]:
        """Yield decoded frames (paced when ``realtime``)."""
        if self._layout is None:
            self.open()
        return pace(self._frames(), self.realtime, self.stop)

    def _frames(self) -> Iterator[Frame]:
        frame_id, shift_us = 0, 0
        while True:
            first = last = None
            for ts, frame in self._pass():
                if self.max_frames is not None and frame_id >= self.max_frames:
                    return
                first = ts if first is None else first
                last = ts
                frame.frame_id, frame.ts_us = frame_id, ts + shift_us
                frame_id += 1
                yield frame
            if not self.loop or first is None or last is None:
                return
            # Next pass continues one frame period after this one's last capture
            shift_us += last - first + int(1_000_000 / (self.fps or 30))

    def _pass(self) -> Iterator[tuple[int, Frame]]:
        """One pass over the file from ``start_s``: (device timestamp µs, frame without id)."""
        layout = self._layout
        assert layout is not None
        wanted = {
            n: i
            for n, i in layout.indices.items()
            if n == "COLOR" or (n == "DEPTH" and self.depth) or (n == "IR" and self.ir)
        }
        if not wanted:
            return
        tolerance = _tolerance_us(layout.fps)
        damage, finished = Damage(), False
        container = open_container(self.path)
        try:
            start_rel = self._seek(container, wanted, tolerance)
            for index, (ts, packets) in enumerate(iter_groups(container, wanted, tolerance, damage)):
                if self.stop.is_set():
                    return
                if start_rel is not None and ts < start_rel:
                    continue
                damage.see(ts, 2 * (tolerance + 1))
                frame = self._decode(packets, index, damage)
                if frame is not None:
                    damage.played += 1
                    yield ts + layout.start_offset_us, frame
            finished = True
        finally:
            container.close()
            self._report(damage, finished)

    def _report(self, damage: Damage, finished: bool) -> None:
        """Warn once per source about a damaged recording (the first pass that found damage)."""
        if self._reported or self._header is None:
            return
        line = describe_damage(self.path.name, self._header, damage, finished)
        if line is not None:
            log.warning("%s", line)
            self._reported = True

    def _seek(self, container, indices: dict[str, int], tolerance: int) -> int | None:
        """Seek near ``start_s``; return the first block timestamp (µs) to keep, or None for all."""
        import av

        if self.start_s <= 0:
            return None
        stream = container.streams[next(iter(indices.values()))]
        first_ts = int(stream.start_time or 0)
        target = first_ts + int(self.start_s * stream.time_base.denominator / stream.time_base.numerator)
        try:
            container.seek(target, stream=stream, backward=True, any_frame=False)
        except av.FFmpegError as exc:
            # No index to seek with: read from the start and drop the earlier captures
            log.warning("%s: cannot seek (%s); reading from the start", self.path.name, exc)
        return (
            int(target * stream.time_base.numerator * 1_000_000 // stream.time_base.denominator) - tolerance
        )

    def _decode(self, packets: dict, index: int, damage: Damage) -> Frame | None:
        """Decode one capture's packets; a corrupt packet is counted with the frame index and left out."""
        frame = Frame(frame_id=-1, ts_us=0)
        for name, pkt in packets.items():
            track = self.tracks[name]
            try:
                if name == "COLOR":
                    frame.color = decode_color(bytes(pkt), track.fourcc, track.width, track.height)
                elif name == "DEPTH":
                    frame.depth = decode_depth16(bytes(pkt), track.width, track.height)
                    if self._aligner is not None:
                        frame.depth = self._aligner(frame.depth)
                        frame.extra["aligned_to_color"] = True
                else:
                    frame.ir = decode_depth16(bytes(pkt), track.width, track.height)
            except ValueError as exc:
                log.debug("%s: frame %d: corrupt %s packet skipped (%s)", self.path.name, index, name, exc)
                damage.bad_frame(index, name)
        if frame.color is None and frame.depth is None and frame.ir is None:
            return None
        return frame
