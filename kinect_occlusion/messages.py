"""The kind table: every topic, message kind and schema version lives here.

A kind is one dataclass: its fields declare their wire form (``header_field``, ``array_field``,
``encoding_field``), its ``check`` method holds the validations a receiver relies on beyond the
common ones, and defining it registers it with the codec (``kinect_occlusion/wire.py``, which
``encode``/``decode`` come from). A result built from a frame is made with :func:`derived`, so it
carries that frame's identity and provenance. See docs/PROTOCOL.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np

from .jpeg import jpeg_frame_size
from .sources.k4a_formats import DEPTH_MODES
from .wire import (
    CAMERA_RE,
    ENC_JPEG,
    ENC_PACKBITS,
    ENC_RAW,
    KINDS,
    MAX_BUFFER_BYTES,
    MAX_DIM,
    MAX_HEADER_BYTES,
    MAX_INT,
    SCHEMA_VERSION,
    TOPICS,
    ArraySpec,
    Message,
    MessageError,
    array_field,
    array_within,
    decode,
    encode,
    encoding_field,
    header_field,
    in_range,
    is_legacy_topic,
    now_us,
    require,
    topic_bytes,
    topic_prefix,
    unit_interval,
)

__all__ = [  # the wire protocol as the code base imports it (codec names re-exported from wire.py)
    "CAMERA_RE",
    "ENC_JPEG",
    "ENC_PACKBITS",
    "ENC_RAW",
    "KINDS",
    "DEPTH_MASK_UNKNOWN",
    "MAX_BUFFER_BYTES",
    "MAX_CALIBRATION_CHARS",
    "MAX_DIM",
    "MAX_HEADER_BYTES",
    "MAX_INFO_DEPTH",
    "MAX_INT",
    "MAX_NAME_CHARS",
    "MAX_SEGMENTS",
    "PROVENANCE",
    "SCHEMA_VERSION",
    "STATUS_NUMBERS",
    "TOPICS",
    "TOPIC_COARSE",
    "TOPIC_COLOR",
    "TOPIC_DEPTH",
    "TOPIC_DEPTH_MASK",
    "TOPIC_OCCLUSION",
    "TOPIC_PARTITION",
    "TOPIC_SAVED",
    "TOPIC_STATUS",
    "ArraySpec",
    "CoarseMask",
    "ColorFrame",
    "DepthFrame",
    "DepthMask",
    "Message",
    "MaskSaved",
    "MessageError",
    "OcclusionMask",
    "Partition",
    "Status",
    "decode",
    "derived",
    "encode",
    "is_legacy_topic",
    "jpeg_frame_size",
    "now_us",
    "topic_bytes",
    "topic_prefix",
]

TOPIC_COLOR = "frame.color"
TOPIC_DEPTH = "frame.depth"
TOPIC_COARSE = "mask.coarse"
TOPIC_PARTITION = "partition"
TOPIC_OCCLUSION = "mask.occlusion"
TOPIC_STATUS = "status"
TOPIC_DEPTH_MASK = "mask.depth"  # the occlusion mask in the depth camera's pixels (fuser.depth_mask)
TOPIC_SAVED = "mask.saved"  # replay --every-frame --save-masks: a frame's mask is on disk (capture's credit)

MAX_SEGMENTS = 1_000_000
MAX_CALIBRATION_CHARS = 32 * 1024  # an Azure Kinect calibration.json is ~6 KB
MAX_NAME_CHARS = 64  # Status worker/state, model and partitioner names
MAX_INFO_DEPTH = 4  # nesting of Status.info (the supervisor's is 3 deep)
# Status.info counters a receiver may read as numbers: non-negative and finite when present
STATUS_NUMBERS = (
    "frames_in",
    "frames_out",
    "errors",
    "dropped",
    "invalid",
    "rate_hz",
    "loop_age_s",
    "uptime_s",
)

# What a result copies from the frame it was computed from (its identity and provenance)
PROVENANCE = ("camera", "epoch", "frame_id", "ts_us", "origin_us")

M = TypeVar("M", bound=Message)


def derived(source: Message, kind: type[M], **fields: Any) -> M:
    """A ``kind`` message computed from ``source``: it carries ``source``'s camera, epoch,
    frame_id, ts_us and origin_us (those cannot be passed in ``fields``)."""
    clash = sorted(set(fields) & set(PROVENANCE))
    if clash:
        raise TypeError(f"derived() copies {', '.join(clash)} from the source frame")
    return kind(**{name: getattr(source, name) for name in PROVENANCE}, **fields)


def _empty_scores() -> np.ndarray:
    return np.zeros((0, 2), np.float32)


def _has_pixels(image: np.ndarray) -> None:
    """An image (frame, mask, label image) has at least one pixel: every consumer divides by or
    maps from its size (an empty one raised in deeplab, the fuser and the mask saver on every use)."""
    require(image.size > 0, f"image of shape {image.shape} has no pixels")


def _roi(value: list) -> tuple[int, int, int, int]:
    """The received ROI: exactly 4 integers."""
    if len(value) != 4 or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise MessageError("roi must be 4 integers")
    return (value[0], value[1], value[2], value[3])


@dataclass(kw_only=True)
class ColorFrame(Message):
    """H×W×3 uint8 RGB image (travels raw, or JPEG-encoded when ``encoding='jpeg'``)."""

    image: np.ndarray = array_field("uint8", ndim=3, encodings=(ENC_RAW, ENC_JPEG))
    encoding: str = encoding_field()

    KIND: ClassVar[str] = "ColorFrame"
    TOPIC: ClassVar[str] = TOPIC_COLOR

    def check(self) -> None:
        require(self.image.shape[2] == 3, "colour image must have 3 channels")
        _has_pixels(self.image)


@dataclass(kw_only=True)
class DepthFrame(Message):
    """H×W uint16 depth in millimetres; ``calibration`` (JSON text) rides along when it changes."""

    depth: np.ndarray = array_field("uint16", ndim=2)
    aligned_to_color: bool = header_field(bool, default=False)
    calibration: str | None = header_field(str, type(None), default=None)

    KIND: ClassVar[str] = "DepthFrame"
    TOPIC: ClassVar[str] = TOPIC_DEPTH

    def check(self) -> None:
        _has_pixels(self.depth)
        cal = self.calibration
        require(cal is None or len(cal) <= MAX_CALIBRATION_CHARS, "calibration text is too long")


@dataclass(kw_only=True)
class CoarseMask(Message):
    """Occlusion probability over the full frame (uint8 0–255 or float16/32 0–1) + the ROI used."""

    prob: np.ndarray = array_field("uint8", "float16", "float32", ndim=2)
    roi: tuple[int, int, int, int] = header_field(list, tuple, parse=_roi)
    model: str = header_field(str, default="")
    infer_ms: float = header_field(float, int, default=0.0)

    KIND: ClassVar[str] = "CoarseMask"
    TOPIC: ClassVar[str] = TOPIC_COARSE

    def probability(self) -> np.ndarray:
        """Occlusion probability as float32 in [0, 1]."""
        if self.prob.dtype == np.uint8:
            return self.prob.astype(np.float32) * np.float32(1 / 255)
        return self.prob.astype(np.float32)

    def check(self) -> None:
        # The ROI lies inside the probability image and is not empty
        x, y, w, h = self.roi
        height, width = self.prob.shape
        require(x >= 0 and y >= 0 and w > 0 and h > 0, "roi needs x, y >= 0 and a positive size")
        require(x + w <= width and y + h <= height, "roi reaches outside the probability image")
        # Float probabilities are finite and in [0, 1] (uint8 is 0-255 by type)
        if self.prob.dtype != np.uint8:
            require(unit_interval(self.prob), "probabilities must be finite and in [0, 1]")
        require(in_range(self.infer_ms, 0, float("inf")), "infer_ms must be finite and >= 0")
        require(len(self.model) <= MAX_NAME_CHARS, "model name is too long")


@dataclass(kw_only=True)
class Partition(Message):
    """Label image (0 = uncovered, k = segment k) + per-segment scores (n, 2): SAM IoU, stability.

    ``frame_id``/``ts_us`` are those of the frame the labels were computed from. When a refresh is
    skipped because the scene did not change (``reused``), the same labels are re-sent with their
    original ``frame_id``/``ts_us`` and ``confirmed_ts_us`` = the newer frame found unchanged. A
    partition carried to a newer frame by optical flow between refreshes has that frame's
    ``frame_id``/``ts_us`` and ``warped_from`` = the frame it was computed from (-1: not warped).
    """

    labels: np.ndarray = array_field("int32", "uint16", ndim=2)
    scores: np.ndarray = array_field("float32", ndim=2, default_factory=_empty_scores)
    partitioner: str = header_field(str, default="")
    compute_ms: float = header_field(float, int, default=0.0)
    decoder_calls: int = header_field(int, default=0)
    reused: bool = header_field(bool, default=False)
    confirmed_ts_us: int = header_field(int, default=0)
    warped_from: int = header_field(int, default=-1)

    KIND: ClassVar[str] = "Partition"
    TOPIC: ClassVar[str] = TOPIC_PARTITION

    def check(self) -> None:
        _has_pixels(self.labels)
        # One score row per segment; every label names a segment (0 = uncovered)
        n = self.scores.shape[0]
        require(
            self.scores.shape[1:] == (2,) and n <= MAX_SEGMENTS, "partition scores must have shape (n, 2)"
        )
        require(array_within(self.labels, 0, n), f"labels must be in [0, {n}] (the rows of scores)")
        require(bool(np.isfinite(self.scores).all()), "partition scores must be finite")
        require(in_range(self.compute_ms, 0, float("inf")), "compute_ms must be finite and >= 0")
        require(in_range(self.decoder_calls, 0, MAX_INT), "decoder_calls must be >= 0")
        require(in_range(self.confirmed_ts_us, 0, MAX_INT), "confirmed_ts_us must be in [0, 2**63)")
        require(len(self.partitioner) <= MAX_NAME_CHARS, "partitioner name is too long")
        require(in_range(self.warped_from, -1, MAX_INT), "warped_from must be -1 or a frame id")


@dataclass(kw_only=True)
class OcclusionMask(Message):
    """uint8 0/1 occlusion mask (raw or bit-packed) + per-segment votes (n+1, 2), row 0 = uncovered."""

    mask: np.ndarray = array_field("uint8", ndim=2, encodings=(ENC_RAW, ENC_PACKBITS))
    votes: np.ndarray = array_field("float32", ndim=2, default_factory=_empty_scores)
    fused: bool = header_field(bool, default=False)
    partition_frame_id: int = header_field(int, default=-1)
    partition_age_ms: float = header_field(float, int, default=-1.0)
    partitioner: str = header_field(str, default="")
    encoding: str = encoding_field()

    KIND: ClassVar[str] = "OcclusionMask"
    TOPIC: ClassVar[str] = TOPIC_OCCLUSION

    def check(self) -> None:
        _has_pixels(self.mask)
        require(array_within(self.mask, 0, 1), "occlusion mask values must be 0 or 1")
        # Votes: empty (not fused), or one row per segment id + row 0, finite sums of probabilities
        rows = self.votes.shape[0]
        require(self.votes.shape[1] == 2 or rows == 0, "occlusion votes must have shape (n, 2)")
        require(rows <= MAX_SEGMENTS + 1, "too many occlusion votes")
        require(
            array_within(self.votes, 0.0, float(np.finfo(np.float32).max)), "votes must be finite and >= 0"
        )
        require(in_range(self.partition_frame_id, -1, MAX_INT), "partition_frame_id must be -1 or a frame id")
        # A fused mask says which partition voted, and carries its votes
        require(
            not self.fused or (rows > 0 and self.partition_frame_id >= 0),
            "a fused mask needs votes and its partition",
        )
        require(
            in_range(self.partition_age_ms, -1, float("inf")), "partition_age_ms must be finite and >= -1"
        )
        require(len(self.partitioner) <= MAX_NAME_CHARS, "partitioner name is too long")


DEPTH_MASK_UNKNOWN = 255  # DepthMask: no depth reading, or the point falls outside the colour image
# DepthMask sizes: the depth camera's (width, height) in some depth mode, as (rows, cols)
DEPTH_MASK_SHAPES = frozenset((h, w) for w, h in DEPTH_MODES.values())


@dataclass(kw_only=True)
class DepthMask(Message):
    """The occlusion mask of the same frame in the depth camera's pixels (``fuser.depth_mask``).

    ``mask`` is uint8: 1 = occluded, 0 = not, 255 (:data:`DEPTH_MASK_UNKNOWN`) = this depth pixel has
    no reading or sees no pixel of the colour image. ``fused`` is the colour mask's.
    """

    mask: np.ndarray = array_field("uint8", ndim=2)
    fused: bool = header_field(bool, default=False)
    map_ms: float = header_field(float, int, default=0.0)

    KIND: ClassVar[str] = "DepthMask"
    TOPIC: ClassVar[str] = TOPIC_DEPTH_MASK

    def check(self) -> None:
        require(self.mask.shape in DEPTH_MASK_SHAPES, "depth mask must have a depth mode's size")
        # 0, 1 or 255: one min/max pass when there is nothing unknown, else one more comparison
        if not array_within(self.mask, 0, 1):
            odd = (self.mask > 1) & (self.mask != DEPTH_MASK_UNKNOWN)
            require(not odd.any(), "depth mask values must be 0, 1 or 255")
        require(in_range(self.map_ms, 0, float("inf")), "map_ms must be finite and >= 0")


@dataclass(kw_only=True)
class MaskSaved(Message):
    """``replay --every-frame --save-masks``: the mask of this frame is written (PNG and CSV row).

    Header only. Capture takes it, not the ``mask.occlusion`` itself, as the frame's credit, so a
    writer slower than the pipeline holds capture back instead of dropping masks.
    """

    KIND: ClassVar[str] = "MaskSaved"
    TOPIC: ClassVar[str] = TOPIC_SAVED


@dataclass(kw_only=True)
class Status(Message):
    """Heartbeat of one worker: ``frame_id`` counts heartbeats, ``info`` holds counters and state."""

    worker: str = header_field(str)
    pid: int = header_field(int)
    state: str = header_field(str)
    info: dict[str, Any] = header_field(dict, default_factory=dict)

    KIND: ClassVar[str] = "Status"
    TOPIC: ClassVar[str] = TOPIC_STATUS

    def check(self) -> None:
        require(0 < self.pid < 2**31, "pid must be a positive 32-bit integer")
        require(len(self.worker) <= MAX_NAME_CHARS and len(self.state) <= MAX_NAME_CHARS, "name too long")
        _check_info(self.info, MAX_INFO_DEPTH)
        for name in STATUS_NUMBERS:
            if name in self.info:
                require(
                    in_range(self.info[name], 0, float("inf")), f"info.{name} must be a finite number >= 0"
                )


def _check_info(value: Any, depth: int) -> None:
    """Status.info: bounded nesting, finite numbers (sizes are bounded by the header cap)."""
    if isinstance(value, dict | list):
        require(depth > 0, f"Status info nested deeper than {MAX_INFO_DEPTH}")
        for item in value.values() if isinstance(value, dict) else value:
            _check_info(item, depth - 1)
    elif isinstance(value, float):
        require(bool(np.isfinite(value)), "Status info holds a non-finite number")
