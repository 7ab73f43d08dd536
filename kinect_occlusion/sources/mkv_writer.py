"""Write Azure Kinect recordings (.mkv) in the layout of the SDK's ``k4arecord``, without the SDK.

Layout (as ``k4arecord`` writes it): title ``Azure Kinect``; TimestampScale 1000 ns (µs); tracks
``COLOR`` / ``DEPTH`` / ``IR`` with codec ``V_MS/VFW/FOURCC`` and a 40-byte BITMAPINFOHEADER
(``MJPG``, ``NV12``, ``YUY2``, ``BGRA``; depth and IR ``b16g`` = 16-bit big-endian); the K4A tags;
attachment ``calibration.json``; one Cluster per capture (SimpleBlocks), Cues, a SeekHead.

Block timestamps are device timestamps minus ``K4A_START_OFFSET_NS`` (the SDK uses the first
capture's timestamp as that offset, so recordings start at 0).
"""

from __future__ import annotations

import random
import struct
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

import numpy as np

from . import ebml as e
from .k4a_formats import (
    COLOR_FORMATS,
    DEPTH_FOURCC,
    DEPTH_MODES,
    bitmap_info_header,
    check_mode,
    color_mode_tag,
    encode_color,
    encode_depth16,
    parse_color_mode,
    synthetic_calibration_json,
)

CODEC_ID = "V_MS/VFW/FOURCC"
FIRMWARE = ("1.6.110", "1.6.79")  # colour, depth firmware versions written in the tags
_SEEK_HEAD_RESERVED = 160  # bytes kept at the start of the Segment for the SeekHead (+ Void)
_EPOCH_2001 = datetime(2001, 1, 1, tzinfo=timezone.utc)


class K4AMkvWriter:
    """Write captures to an Azure Kinect .mkv; use as a context manager or call :meth:`close`.

    Args:
        path: output file (overwritten).
        color_mode: ``<FMT>_<RES>`` (FMT in MJPG, NV12, YUY2, BGRA32/BGRA; RES in 720P…3072P) or ``OFF``.
        depth_mode: NFOV_UNBINNED, NFOV_2X2BINNED, WFOV_UNBINNED, WFOV_2X2BINNED, PASSIVE_IR or OFF.
        ir: write the IR track (k4arecord always writes it when depth is on).
        fps: 5, 15 or 30 (sets each track's DefaultDuration); 3072P and WFOV_UNBINNED at most 15.
        calibration_json: device calibration text, attached as ``calibration.json``.
        serial: ``K4A_DEVICE_SERIAL_NUMBER``.
        start_offset_ns: ``K4A_START_OFFSET_NS``; None takes the first capture's timestamp (as the SDK).
        jpeg_quality: MJPG quality 1–100.
        uid_seed: seed for track/attachment UIDs (None: random), for byte-identical files.
        date_utc: DateUTC of the recording (None: now).
        imu: add the IMU track; samples go in with :meth:`write_imu`.

    The header is written at the first capture, so ``calibration_json`` and ``serial`` may still be
    set as attributes until then (a camera knows them only once it streams).
    """

    def __init__(  # noqa: PLR0913 — one keyword per device/recording option
        self,
        path: str | Path,
        *,
        color_mode: str = "MJPG_720P",
        depth_mode: str = "NFOV_UNBINNED",
        ir: bool = True,
        fps: int = 30,
        calibration_json: str | None = None,
        serial: str = "000000000000",
        start_offset_ns: int | None = 0,
        jpeg_quality: int = 90,
        uid_seed: int | None = None,
        date_utc: datetime | None = None,
        imu: bool = False,
    ) -> None:
        # The camera's mode table: a ModeError (ValueError) for a mode no Azure Kinect records
        self.color = parse_color_mode(color_mode)
        resolution = color_mode.partition("_")[2] if self.color is not None else None
        check_mode(resolution, fps, self.color and self.color[0], depth_mode)
        self.path = Path(path)
        self.color_mode_tag = "OFF" if self.color is None else color_mode_tag(self.color[0], str(resolution))
        self.depth_mode = depth_mode
        self.depth_size = DEPTH_MODES.get(depth_mode)
        self.has_depth = depth_mode not in ("OFF", "PASSIVE_IR")
        self.has_ir = depth_mode != "OFF" and (ir or depth_mode == "PASSIVE_IR")
        self.fps, self.serial, self.calibration_json = fps, serial, calibration_json
        self.start_offset_ns = start_offset_ns
        self.jpeg_quality = jpeg_quality
        self.date_utc = date_utc or datetime.now(timezone.utc)
        self._rng = random.Random(uid_seed) if uid_seed is not None else random.SystemRandom()
        self._tracks = self._plan_tracks()
        # The IMU track (k4arecord's S_K4A/IMU subtitle track) follows the video tracks
        self._imu = (len(self._tracks) + 1, self._uid()) if imu else None
        self._file: BinaryIO | None = self.path.open("wb+")
        self._segment_start = self._duration_pos = 0
        self._header_written = False
        self._cues: list[bytes] = []
        self._seek: dict[int, int] = {}
        self._last_ts_us: int | None = None
        self.frames_written = 0

    # -- layout ---------------------------------------------------------------------------------------

    def _plan_tracks(self) -> dict[str, tuple[int, int, int, int, bytes, int]]:
        """name → (track number, uid, width, height, fourcc, bits per pixel), numbered from 1."""
        plan: list[tuple[str, int, int, bytes, int]] = []
        if self.color is not None:
            fmt, w, h = self.color
            plan.append(("COLOR", w, h, COLOR_FORMATS[fmt].fourcc, COLOR_FORMATS[fmt].bits))
        if self.depth_size is not None:
            if self.has_depth:
                plan.append(("DEPTH", *self.depth_size, DEPTH_FOURCC, 16))
            if self.has_ir:
                plan.append(("IR", *self.depth_size, DEPTH_FOURCC, 16))
        return {name: (i + 1, self._uid(), w, h, cc, bits) for i, (name, w, h, cc, bits) in enumerate(plan)}

    def _uid(self) -> int:
        """A non-zero 60-bit UID (as k4arecord's new_unique_id)."""
        return self._rng.getrandbits(60) or 1

    def _info(self) -> bytes:
        date_ns = int((self.date_utc - _EPOCH_2001).total_seconds() * 1e9)
        return e.master(
            e.INFO,
            e.uint(e.TIMESTAMP_SCALE, 1000),
            e.string(e.MUXING_APP, "kinect-occlusion ebml"),
            e.string(e.WRITING_APP, "kinect-occlusion k4arecord-compatible writer"),
            e.sint(e.DATE_UTC, date_ns),
            e.string(e.TITLE, "Azure Kinect"),
            e.float64(e.DURATION, 0.0),
        )

    def _track_entries(self) -> bytes:
        entries = []
        for name, (num, uid, w, h, cc, bits) in self._tracks.items():
            entries.append(
                e.master(
                    e.TRACK_ENTRY,
                    e.uint(e.TRACK_NUMBER, num),
                    e.uint(e.TRACK_UID, uid),
                    e.uint(e.TRACK_TYPE, 1),
                    e.string(e.NAME, name),
                    e.string(e.CODEC_ID, CODEC_ID),
                    e.element(e.CODEC_PRIVATE, bitmap_info_header(w, h, cc, bits)),
                    e.uint(e.DEFAULT_DURATION, 1_000_000_000 // self.fps),
                    e.master(e.VIDEO, e.uint(e.PIXEL_WIDTH, w), e.uint(e.PIXEL_HEIGHT, h)),
                )
            )
        if self._imu is not None:
            num, uid = self._imu
            entries.append(
                e.master(
                    e.TRACK_ENTRY,
                    e.uint(e.TRACK_NUMBER, num),
                    e.uint(e.TRACK_UID, uid),
                    e.uint(e.TRACK_TYPE, 0x11),  # subtitle, as k4arecord
                    e.string(e.NAME, "IMU"),
                    e.string(e.CODEC_ID, "S_K4A/IMU"),
                )
            )
        return e.master(e.TRACKS, *entries)

    def _attachments(self, file_uid: int) -> bytes:
        assert self.calibration_json is not None
        data = self.calibration_json.encode("utf-8").rstrip(b"\x00")
        return e.master(
            e.ATTACHMENTS,
            e.master(
                e.ATTACHED_FILE,
                e.string(e.FILE_NAME, "calibration.json"),
                e.string(e.FILE_MIME_TYPE, "application/octet-stream"),
                e.element(e.FILE_DATA, data),
                e.uint(e.FILE_UID, file_uid),
            ),
        )

    def _tags(self, file_uid: int | None) -> bytes:
        """The K4A tags, in k4arecord's order; track tags target their track's UID."""
        tags: list[bytes] = []
        for name, key, value in (
            ("COLOR", "COLOR", self.color_mode_tag),
            ("DEPTH", "DEPTH", self.depth_mode),
            ("IR", "IR", "PASSIVE" if self.depth_mode == "PASSIVE_IR" else "ACTIVE"),
        ):
            if name in self._tracks:
                uid = self._tracks[name][1]
                tags += [
                    _tag(f"K4A_{key}_TRACK", str(uid), "TRACK", uid),
                    _tag(f"K4A_{key}_MODE", value, "TRACK", uid),
                ]
        if self._imu is not None:
            uid = self._imu[1]
            tags += [_tag("K4A_IMU_TRACK", str(uid), "TRACK", uid), _tag("K4A_IMU_MODE", "ON", "TRACK", uid)]
        if self.depth_mode == "PASSIVE_IR":
            tags.append(_tag("K4A_DEPTH_MODE", "PASSIVE_IR"))
        if self.color is not None and self.depth_mode != "OFF":
            tags.append(_tag("K4A_DEPTH_DELAY_NS", "0"))
        tags += [
            _tag("K4A_WIRED_SYNC_MODE", "STANDALONE"),
            _tag("K4A_COLOR_FIRMWARE_VERSION", FIRMWARE[0]),
            _tag("K4A_DEPTH_FIRMWARE_VERSION", FIRMWARE[1]),
            _tag("K4A_DEVICE_SERIAL_NUMBER", self.serial),
        ]
        if file_uid is not None:
            tags.append(_tag("K4A_CALIBRATION_FILE", "calibration.json", "ATTACHMENT", file_uid))
        tags.append(_tag("K4A_START_OFFSET_NS", str(self.start_offset_ns or 0)))
        return e.master(e.TAGS, *tags)

    def _write_header(self) -> None:
        """EBML header, Segment (size patched on close), SeekHead space, Info, Tracks, Attachments, Tags."""
        f = self._require_open()
        f.write(
            e.master(
                e.EBML,
                e.uint(e.EBML_VERSION, 1),
                e.uint(e.EBML_READ_VERSION, 1),
                e.uint(e.EBML_MAX_ID_LENGTH, 4),
                e.uint(e.EBML_MAX_SIZE_LENGTH, 8),
                e.string(e.DOC_TYPE, "matroska"),
                e.uint(e.DOC_TYPE_VERSION, 4),
                e.uint(e.DOC_TYPE_READ_VERSION, 2),
            )
        )
        f.write(e.encode_id(e.SEGMENT) + e.UNKNOWN_SIZE)
        self._segment_start = f.tell()
        f.write(e.void(_SEEK_HEAD_RESERVED))
        file_uid = self._uid() if self.calibration_json is not None else None
        info = self._info()
        self._seek[e.INFO] = f.tell() - self._segment_start
        self._duration_pos = f.tell() + len(info) - 8  # Duration is Info's last element
        f.write(info)
        for element_id, body in (
            (e.TRACKS, self._track_entries()),
            (e.ATTACHMENTS, self._attachments(file_uid) if file_uid is not None else b""),
            (e.TAGS, self._tags(file_uid)),
        ):
            if body:
                self._seek[element_id] = f.tell() - self._segment_start
                f.write(body)
        self._write_seek_head()
        self._header_written = True

    def _write_seek_head(self) -> None:
        """(Re)write the SeekHead into its reserved space, padded with a Void."""
        f = self._require_open()
        seeks = [
            e.master(e.SEEK, e.element(e.SEEK_ID, e.encode_id(i)), e.uint(e.SEEK_POSITION, pos, 8))
            for i, pos in self._seek.items()
        ]
        head = e.master(e.SEEK_HEAD, *seeks)
        end = f.tell()
        f.seek(self._segment_start)
        f.write(head + e.void(_SEEK_HEAD_RESERVED - len(head)))
        f.seek(end)

    # -- data -----------------------------------------------------------------------------------------

    def write(
        self, color_rgb: np.ndarray | None, depth_mm: np.ndarray | None, ir: np.ndarray | None, ts_us: int
    ) -> None:
        """Encode and write one capture at device timestamp ``ts_us``; a None image is left out."""
        color = depth = ir_bytes = None
        if color_rgb is not None and self.color is not None:
            fmt, w, h = self.color
            _check_shape("color_rgb", color_rgb, (h, w, 3), np.uint8)
            color = encode_color(color_rgb, fmt, self.jpeg_quality)
        if depth_mm is not None and self.has_depth:
            _check_shape("depth_mm", depth_mm, self.depth_size[::-1], np.uint16)  # type: ignore[index]
            depth = encode_depth16(depth_mm)
        if ir is not None and self.has_ir:
            _check_shape("ir", ir, self.depth_size[::-1], np.uint16)  # type: ignore[index]
            ir_bytes = encode_depth16(ir)
        self.write_encoded(ts_us, color=color, depth=depth, ir=ir_bytes)

    def write_encoded(
        self, ts_us: int, *, color: bytes | None = None, depth: bytes | None = None, ir: bytes | None = None
    ) -> None:
        """Write already-encoded payloads of one capture as one Cluster (SimpleBlocks, keyframes)."""
        if self.start_offset_ns is None:
            self.start_offset_ns = ts_us * 1000
        if not self._header_written:
            self._write_header()
        rel = ts_us - self.start_offset_ns // 1000
        if rel < 0 or (self._last_ts_us is not None and ts_us < self._last_ts_us):
            raise ValueError(f"timestamp {ts_us} µs goes backwards (or precedes the start offset)")
        blocks = [
            (self._tracks[name][0], data)
            for name, data in (("COLOR", color), ("DEPTH", depth), ("IR", ir))
            if data is not None and name in self._tracks
        ]
        if not blocks:
            return
        f = self._require_open()
        cluster_pos = f.tell() - self._segment_start
        f.write(
            e.master(
                e.CLUSTER,
                e.uint(e.CLUSTER_TIMESTAMP, rel),
                *(e.element(e.SIMPLE_BLOCK, _simple_block(num, data)) for num, data in blocks),
            )
        )
        self._cues.append(
            e.master(
                e.CUE_POINT,
                e.uint(e.CUE_TIME, rel),
                *(
                    e.master(
                        e.CUE_TRACK_POSITIONS,
                        e.uint(e.CUE_TRACK, num),
                        e.uint(e.CUE_CLUSTER_POSITION, cluster_pos),
                    )
                    for num, _ in blocks
                ),
            )
        )
        self._last_ts_us = ts_us
        self.frames_written += 1

    def write_imu(self, samples: np.ndarray) -> None:
        """Write IMU samples: N×8 rows ``acc_ts_us ax ay az gyro_ts_us gx gy gz`` (device µs, m/s², rad/s).

        Each sample is one 40-byte block (as k4arecord's); blocks go in clusters of at most 32 ms,
        timed by the accelerometer timestamp. Write them in time order with the captures.
        """
        if self._imu is None:
            raise ValueError(f"{self.path}: no IMU track (open the writer with imu=True)")
        rows = np.asarray(samples, np.float64).reshape(-1, 8)
        if not len(rows):
            return
        if self.start_offset_ns is None:
            self.start_offset_ns = int(rows[0, 0]) * 1000
        if not self._header_written:
            self._write_header()
        rel = rows[:, 0].astype(np.int64) - self.start_offset_ns // 1000
        if (rel < 0).any() or (np.diff(rel) < 0).any():
            raise ValueError("IMU timestamps go backwards (or precede the start offset)")
        f = self._require_open()
        start = 0
        while start < len(rows):
            end = start + int(np.searchsorted(rel[start:], rel[start] + 32_000, side="left"))
            blocks = [
                e.element(e.SIMPLE_BLOCK, _imu_block(self._imu[0], int(rel[i] - rel[start]), rows[i]))
                for i in range(start, max(end, start + 1))
            ]
            f.write(e.master(e.CLUSTER, e.uint(e.CLUSTER_TIMESTAMP, int(rel[start])), *blocks))
            start = max(end, start + 1)

    def close(self) -> None:
        """Write the Cues, patch Duration, SeekHead and Segment size; safe to call twice."""
        if self._file is None:
            return
        try:
            if not self._header_written:
                self._write_header()
            f = self._file
            if self._cues:
                self._seek[e.CUES] = f.tell() - self._segment_start
                f.write(e.master(e.CUES, *self._cues))
                self._write_seek_head()
            end = f.tell()
            duration_us = 0.0
            if self._last_ts_us is not None:
                duration_us = self._last_ts_us - (self.start_offset_ns or 0) // 1000 + 1e6 / self.fps
            f.seek(self._duration_pos)
            f.write(struct.pack(">d", duration_us))
            f.seek(self._segment_start - 8)
            f.write(e.encode_size(end - self._segment_start, 8))
        finally:
            self._file.close()
            self._file = None

    def _require_open(self) -> BinaryIO:
        if self._file is None:
            raise ValueError(f"{self.path}: writer is closed")
        return self._file

    def __enter__(self) -> K4AMkvWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _simple_block(track_number: int, data: bytes) -> bytes:
    """SimpleBlock payload: track number, relative timestamp 0, keyframe flag, frame data."""
    return e.encode_size(track_number) + b"\x00\x00\x80" + data


def _imu_block(track_number: int, rel_us: int, row: np.ndarray) -> bytes:
    """SimpleBlock payload of one IMU sample: ns timestamps (device time), f32 xyz, little-endian."""
    acc_ns, gyro_ns = int(row[0]) * 1000, int(row[4]) * 1000
    sample = struct.pack("<Q3fQ3f", acc_ns, *row[1:4], gyro_ns, *row[5:8])
    return e.encode_size(track_number) + struct.pack(">h", rel_us) + b"\x80" + sample


def _tag(name: str, value: str, target: str | None = None, uid: int = 0) -> bytes:
    """One K4A tag; untargeted tags carry TagTrackUID 0, as k4arecord writes them."""
    if target is None:
        targets = e.master(e.TARGETS, e.uint(e.TAG_TRACK_UID, 0))
    else:
        uid_id = e.TAG_TRACK_UID if target == "TRACK" else e.TAG_ATTACHMENT_UID
        targets = e.master(e.TARGETS, e.string(e.TARGET_TYPE, target), e.uint(uid_id, uid))
    return e.master(
        e.TAG, targets, e.master(e.SIMPLE_TAG, e.string(e.TAG_NAME, name), e.string(e.TAG_STRING, value))
    )


def _check_shape(name: str, image: np.ndarray, shape: tuple[int, ...], dtype: type) -> None:
    if image.shape != tuple(shape) or image.dtype != dtype:
        raise ValueError(
            f"{name}: expected {np.dtype(dtype).name} {tuple(shape)}, got {image.dtype} {image.shape}"
        )


__all__ = [
    "K4AMkvWriter",
    "bitmap_info_header",
    "encode_color",
    "parse_color_mode",
    "synthetic_calibration_json",
]
