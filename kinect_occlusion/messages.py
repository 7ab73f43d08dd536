"""The wire protocol: every topic, message type and schema version lives here.

A message is the multipart ZeroMQ message ``[topic, header, *buffers]``:

- ``topic``: ``b"<kind topic>/<camera>/"``, e.g. ``b"frame.color/bed1/"`` (kind first, so a ZeroMQ
  prefix such as ``b"mask.occlusion/"`` selects one kind for every camera; the closing ``/`` stops
  ``bed1`` from matching ``bed10``);
- ``header``: a msgpack map with ``schema``, ``kind``, ``camera``, ``epoch``, ``frame_id``,
  ``ts_us``, ``sent_us``, ``origin_us``, ``arrays`` (one ``{name, dtype, shape, encoding,
  nbytes}`` per buffer) and the kind's own fields;
- one raw buffer per array, in the order of ``arrays``.

``encode`` serialises everything before anything is sent; ``decode`` validates everything and
raises :class:`MessageError` for any malformed input. See docs/PROTOCOL.md.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import msgpack
import numpy as np

SCHEMA_VERSION = 2  # 2: the common ``epoch`` field (frame identity survives a capture restart)

TOPIC_COLOR = "frame.color"
TOPIC_DEPTH = "frame.depth"
TOPIC_COARSE = "mask.coarse"
TOPIC_PARTITION = "partition"
TOPIC_OCCLUSION = "mask.occlusion"
TOPIC_STATUS = "status"

# Sizes are capped so a lying header cannot make a receiver allocate without bound.
MAX_HEADER_BYTES = 64 * 1024
MAX_BUFFER_BYTES = 4096 * 3072 * 4
MAX_DIM = 8192
MAX_SEGMENTS = 1_000_000
MAX_INT = 2**63  # frame ids and µs timestamps are non-negative and below this
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

CAMERA_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")

ENC_RAW = "raw"
ENC_JPEG = "jpeg"
ENC_PACKBITS = "packbits"


class MessageError(ValueError):
    """A message that does not follow the protocol (the only error ``decode`` raises)."""


def now_us() -> int:
    """Wall-clock time in microseconds (for ``sent_us``)."""
    return time.time_ns() // 1000


@dataclass(frozen=True)
class ArraySpec:
    """What one buffer of a message kind may hold."""

    name: str
    dtypes: tuple[str, ...]
    ndim: int
    encodings: tuple[str, ...] = (ENC_RAW,)
    optional: bool = False


@dataclass(kw_only=True)
class Message:
    """Fields common to every message.

    ``(epoch, frame_id)`` identifies the source frame: ``epoch`` is the capture run's start (wall
    clock, µs; each run on a host gets a larger one) and ``frame_id`` counts frames within that run,
    so the pair stays unique and monotonic per camera across capture restarts. ``ts_us`` is the
    device time of that frame; ``origin_us`` is the wall-clock time at which capture published it
    (0 if unknown), so end-to-end latency is ``sent_us - origin_us`` on one host.
    """

    camera: str
    frame_id: int
    ts_us: int
    sent_us: int = 0
    origin_us: int = 0
    epoch: int = 0

    KIND: ClassVar[str] = ""
    TOPIC: ClassVar[str] = ""
    ARRAYS: ClassVar[tuple[ArraySpec, ...]] = ()
    META: ClassVar[dict[str, tuple[type, ...]]] = {}

    @property
    def identity(self) -> tuple[int, int]:
        """``(epoch, frame_id)`` of the source frame: compare for equality, never for order."""
        return (self.epoch, self.frame_id)


@dataclass(kw_only=True)
class ColorFrame(Message):
    """H×W×3 uint8 RGB image (travels raw, or JPEG-encoded when ``encoding='jpeg'``)."""

    image: np.ndarray
    encoding: str = ENC_RAW

    KIND: ClassVar[str] = "ColorFrame"
    TOPIC: ClassVar[str] = TOPIC_COLOR
    ARRAYS: ClassVar[tuple[ArraySpec, ...]] = (ArraySpec("image", ("uint8",), 3, (ENC_RAW, ENC_JPEG)),)


@dataclass(kw_only=True)
class DepthFrame(Message):
    """H×W uint16 depth in millimetres; ``calibration`` (JSON text) rides along when it changes."""

    depth: np.ndarray
    aligned_to_color: bool = False
    calibration: str | None = None

    KIND: ClassVar[str] = "DepthFrame"
    TOPIC: ClassVar[str] = TOPIC_DEPTH
    ARRAYS: ClassVar[tuple[ArraySpec, ...]] = (ArraySpec("depth", ("uint16",), 2),)
    META: ClassVar[dict[str, tuple[type, ...]]] = {
        "aligned_to_color": (bool,),
        "calibration": (str, type(None)),
    }


@dataclass(kw_only=True)
class CoarseMask(Message):
    """Occlusion probability over the full frame (uint8 0–255 or float16/32 0–1) + the ROI used."""

    prob: np.ndarray
    roi: tuple[int, int, int, int]
    model: str = ""
    infer_ms: float = 0.0

    KIND: ClassVar[str] = "CoarseMask"
    TOPIC: ClassVar[str] = TOPIC_COARSE
    ARRAYS: ClassVar[tuple[ArraySpec, ...]] = (ArraySpec("prob", ("uint8", "float16", "float32"), 2),)
    META: ClassVar[dict[str, tuple[type, ...]]] = {
        "roi": (list, tuple),
        "model": (str,),
        "infer_ms": (float, int),
    }

    def probability(self) -> np.ndarray:
        """Occlusion probability as float32 in [0, 1]."""
        if self.prob.dtype == np.uint8:
            return self.prob.astype(np.float32) * np.float32(1 / 255)
        return self.prob.astype(np.float32)


@dataclass(kw_only=True)
class Partition(Message):
    """Label image (0 = uncovered, k = segment k) + per-segment scores (n, 2): SAM IoU, stability.

    ``frame_id``/``ts_us`` are those of the frame the labels were computed from. When a refresh is
    skipped because the scene did not change (``reused``), the same labels are re-sent with their
    original ``frame_id``/``ts_us`` and ``confirmed_ts_us`` = the newer frame found unchanged. A
    partition carried to a newer frame by optical flow between refreshes has that frame's
    ``frame_id``/``ts_us`` and ``warped_from`` = the frame it was computed from (-1: not warped).
    """

    labels: np.ndarray
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    partitioner: str = ""
    compute_ms: float = 0.0
    decoder_calls: int = 0
    reused: bool = False
    confirmed_ts_us: int = 0
    warped_from: int = -1

    KIND: ClassVar[str] = "Partition"
    TOPIC: ClassVar[str] = TOPIC_PARTITION
    ARRAYS: ClassVar[tuple[ArraySpec, ...]] = (
        ArraySpec("labels", ("int32", "uint16"), 2),
        ArraySpec("scores", ("float32",), 2),
    )
    META: ClassVar[dict[str, tuple[type, ...]]] = {
        "partitioner": (str,),
        "compute_ms": (float, int),
        "decoder_calls": (int,),
        "reused": (bool,),
        "confirmed_ts_us": (int,),
        "warped_from": (int,),
    }


@dataclass(kw_only=True)
class OcclusionMask(Message):
    """uint8 0/1 occlusion mask (raw or bit-packed) + per-segment votes (n+1, 2), row 0 = uncovered."""

    mask: np.ndarray
    votes: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    fused: bool = False
    partition_frame_id: int = -1
    partition_age_ms: float = -1.0
    partitioner: str = ""
    encoding: str = ENC_RAW

    KIND: ClassVar[str] = "OcclusionMask"
    TOPIC: ClassVar[str] = TOPIC_OCCLUSION
    ARRAYS: ClassVar[tuple[ArraySpec, ...]] = (
        ArraySpec("mask", ("uint8",), 2, (ENC_RAW, ENC_PACKBITS)),
        ArraySpec("votes", ("float32",), 2),
    )
    META: ClassVar[dict[str, tuple[type, ...]]] = {
        "fused": (bool,),
        "partition_frame_id": (int,),
        "partition_age_ms": (float, int),
        "partitioner": (str,),
    }


@dataclass(kw_only=True)
class Status(Message):
    """Heartbeat of one worker: ``frame_id`` counts heartbeats, ``info`` holds counters and state."""

    worker: str
    pid: int
    state: str
    info: dict[str, Any] = field(default_factory=dict)

    KIND: ClassVar[str] = "Status"
    TOPIC: ClassVar[str] = TOPIC_STATUS
    META: ClassVar[dict[str, tuple[type, ...]]] = {
        "worker": (str,),
        "pid": (int,),
        "state": (str,),
        "info": (dict,),
    }


KINDS: dict[str, type[Message]] = {
    cls.KIND: cls for cls in (ColorFrame, DepthFrame, CoarseMask, Partition, OcclusionMask, Status)
}
TOPICS: dict[str, type[Message]] = {cls.TOPIC: cls for cls in KINDS.values()}


def topic_bytes(camera: str, topic: str) -> bytes:
    """Full topic of a kind for one camera, e.g. ``b"mask.coarse/bed1/"``."""
    return f"{topic}/{camera}/".encode()


def topic_prefix(camera: str, topic: str) -> bytes:
    """The ZeroMQ subscription for ``topic`` of ``camera``, or of every camera when ``camera='*'``."""
    return f"{topic}/".encode() if camera == "*" else topic_bytes(camera, topic)


def is_legacy_topic(topic: bytes) -> bool:
    """Whether ``topic`` has schema 1's layout ``<camera>/<kind topic>`` (a peer to upgrade)."""
    head, sep, tail = topic.partition(b"/")
    return (
        bool(sep)
        and tail.decode("utf-8", "replace") in TOPICS
        and head.decode("utf-8", "replace") not in TOPICS
    )


# ----------------------------------------------------------------------------- encoding


def _encode_array(spec: ArraySpec, arr: np.ndarray, encoding: str, jpeg_quality: int) -> tuple[dict, Any]:
    arr = np.ascontiguousarray(arr)
    desc: dict[str, Any] = {
        "name": spec.name,
        "dtype": arr.dtype.name,
        "shape": list(arr.shape),
        "encoding": encoding,
    }
    if encoding == ENC_JPEG:
        import cv2

        ok, buf = cv2.imencode(".jpg", arr[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        if not ok:
            raise MessageError("JPEG encoding failed")
        data: Any = buf.tobytes()
    elif encoding == ENC_PACKBITS:
        data = np.packbits(arr.astype(bool, copy=False)).tobytes()
    elif arr.size == 0:
        data = b""
    else:
        data = arr.data.cast("B")
    desc["nbytes"] = len(data) if isinstance(data, bytes) else data.nbytes
    return desc, data


def encode(msg: Message, *, jpeg_quality: int = 90, sent_us: int | None = None) -> list[Any]:
    """Serialise ``msg`` into ``[topic, header, *buffers]`` (buffers are zero-copy when raw)."""
    cls = type(msg)
    header: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "kind": cls.KIND,
        "camera": msg.camera,
        "frame_id": int(msg.frame_id),
        "ts_us": int(msg.ts_us),
        "sent_us": int(now_us() if sent_us is None else sent_us),
        "origin_us": int(msg.origin_us),
        "epoch": int(msg.epoch),
    }
    for name in cls.META:
        value = getattr(msg, name)
        header[name] = list(value) if isinstance(value, tuple) else value
    arrays, buffers = [], []
    encoding = getattr(msg, "encoding", ENC_RAW)
    for spec in cls.ARRAYS:
        enc = encoding if encoding in spec.encodings else ENC_RAW
        desc, data = _encode_array(spec, getattr(msg, spec.name), enc, jpeg_quality)
        arrays.append(desc)
        buffers.append(data)
    header["arrays"] = arrays
    packed = msgpack.packb(header, use_bin_type=True)
    return [topic_bytes(msg.camera, cls.TOPIC), packed, *buffers]


# ----------------------------------------------------------------------------- decoding


def _unpack_header(raw: Any) -> dict:
    data = bytes(raw)
    if len(data) > MAX_HEADER_BYTES:
        raise MessageError(f"header too large ({len(data)} bytes)")
    try:
        header = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            max_str_len=MAX_HEADER_BYTES,
            max_bin_len=0,
            max_array_len=4096,
            max_map_len=256,
            max_ext_len=0,
        )
    except Exception as exc:  # msgpack raises many types on garbage
        raise MessageError(f"header is not msgpack ({type(exc).__name__})") from None
    if not isinstance(header, dict):
        raise MessageError("header is not a map")
    return header


def _field(header: dict, name: str, types: tuple[type, ...]) -> Any:
    if name not in header:
        raise MessageError(f"header lacks '{name}'")
    value = header[name]
    if isinstance(value, bool) and bool not in types:
        raise MessageError(f"header field '{name}' has the wrong type")
    if not isinstance(value, types):
        raise MessageError(f"header field '{name}' has the wrong type")
    return value


def _check_shape(shape: Any, spec: ArraySpec) -> tuple[int, ...]:
    if not isinstance(shape, list) or len(shape) != spec.ndim:
        raise MessageError(f"array '{spec.name}': shape must have {spec.ndim} dimensions")
    for d in shape:
        if not isinstance(d, int) or isinstance(d, bool) or not 0 <= d <= MAX_DIM:
            raise MessageError(f"array '{spec.name}': bad dimension {d!r}")
    return tuple(shape)


def _decode_payload(spec: ArraySpec, dtype: np.dtype, shape: tuple, enc: str, buf: Any) -> np.ndarray:
    view = memoryview(buf)
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if expected > MAX_BUFFER_BYTES or view.nbytes > MAX_BUFFER_BYTES:
        raise MessageError(f"array '{spec.name}' exceeds the size cap")
    if enc == ENC_RAW:
        if view.nbytes != expected:
            raise MessageError(f"array '{spec.name}': {view.nbytes} bytes for shape {shape} {dtype.name}")
        return np.frombuffer(view, dtype=dtype).reshape(shape)
    if enc == ENC_PACKBITS:
        n = int(np.prod(shape, dtype=np.int64))
        if view.nbytes != (n + 7) // 8:
            raise MessageError(f"array '{spec.name}': packbits length does not match shape {shape}")
        return np.unpackbits(np.frombuffer(view, np.uint8), count=n).reshape(shape)
    return _decode_jpeg(spec, shape, view)


# JPEG markers (ITU-T T.81, B.1.1.3): frame headers, and markers without a length field
_SOF_SEQUENTIAL = (0xC0, 0xC1)  # baseline, extended sequential (Huffman): what we encode
_SOF_ANY = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # DHT, JPG, DAC are not frame headers
_STANDALONE = frozenset((0x01, *range(0xD0, 0xD8)))  # TEM, RST0-7
MAX_JPEG_MARKERS = 64  # segments (and fill bytes) walked before the frame header must appear


def jpeg_frame_size(data: memoryview) -> tuple[int, int, int]:
    """(height, width, components) from a JPEG's frame header (SOF), read without decoding.

    Walks the marker segments up to the first SOF, at most ``MAX_JPEG_MARKERS`` steps. Only
    8-bit baseline / extended-sequential JPEGs with 3 components (what ``encode`` writes) are
    accepted: progressive, lossless, arithmetic-coded, greyscale and CMYK raise MessageError.
    """
    n = data.nbytes
    if n < 4 or data[0] != 0xFF or data[1] != 0xD8:
        raise MessageError("JPEG lacks its start-of-image marker")
    pos = 2
    for _ in range(MAX_JPEG_MARKERS):
        if pos + 4 > n or data[pos] != 0xFF:
            raise MessageError("JPEG marker structure is broken")
        marker = data[pos + 1]
        if marker in (0xFF, *_STANDALONE):  # a fill byte, or a marker without a length
            pos += 1 if marker == 0xFF else 2
            continue
        length = (data[pos + 2] << 8) | data[pos + 3]
        if marker in _SOF_ANY:
            return _jpeg_sof(data, pos, length, marker)
        if marker in (0xD8, 0xD9, 0xDA) or length < 2:
            raise MessageError("JPEG has no frame header before its scan data")
        pos += 2 + length
    raise MessageError(f"JPEG frame header not within the first {MAX_JPEG_MARKERS} markers")


def _jpeg_sof(data: memoryview, pos: int, length: int, marker: int) -> tuple[int, int, int]:
    """Parse the SOF segment at ``pos`` (see :func:`jpeg_frame_size`)."""
    if length < 8 or pos + 2 + length > data.nbytes:
        raise MessageError("JPEG frame header is truncated")
    if marker not in _SOF_SEQUENTIAL:
        raise MessageError(f"JPEG type SOF{marker - 0xC0} not accepted (baseline or sequential only)")
    precision, components = data[pos + 4], data[pos + 9]
    height = (data[pos + 5] << 8) | data[pos + 6]
    width = (data[pos + 7] << 8) | data[pos + 8]
    if precision != 8 or components != 3:
        raise MessageError(f"JPEG has {precision}-bit samples and {components} components (8-bit, 3 needed)")
    return height, width, components


def _decode_jpeg(spec: ArraySpec, shape: tuple, view: memoryview) -> np.ndarray:
    import cv2

    # The frame header's size must match before anything is decoded (a tiny file can claim 16000²)
    size = jpeg_frame_size(view.cast("B"))
    if size != shape:
        raise MessageError(f"array '{spec.name}': JPEG is {size}, the header says {shape}")
    flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    img = cv2.imdecode(np.frombuffer(view, np.uint8), flags)
    if img is None or img.shape != shape:
        raise MessageError(f"array '{spec.name}': JPEG does not decode to shape {shape}")
    return np.ascontiguousarray(img[..., ::-1])


def _decode_arrays(cls: type[Message], header: dict, buffers: list[Any]) -> dict[str, Any]:
    descs = _field(header, "arrays", (list,))
    if len(descs) != len(cls.ARRAYS) or len(buffers) != len(cls.ARRAYS):
        raise MessageError(f"{cls.KIND} needs {len(cls.ARRAYS)} buffers")
    out: dict[str, Any] = {}
    for spec, desc, buf in zip(cls.ARRAYS, descs, buffers, strict=True):
        if not isinstance(desc, dict) or desc.get("name") != spec.name:
            raise MessageError(f"array descriptor for '{spec.name}' is missing or misnamed")
        dtype_name = desc.get("dtype")
        if dtype_name not in spec.dtypes:
            raise MessageError(f"array '{spec.name}': dtype {dtype_name!r} not allowed")
        enc = desc.get("encoding", ENC_RAW)
        if enc not in spec.encodings:
            raise MessageError(f"array '{spec.name}': encoding {enc!r} not allowed")
        shape = _check_shape(desc.get("shape"), spec)
        out[spec.name] = _decode_payload(spec, np.dtype(dtype_name), shape, enc, buf)
        if enc != ENC_RAW:
            out["encoding"] = enc  # type: ignore[assignment]
    return out


def _common(header: dict, topic: Any) -> tuple[type[Message], dict[str, Any]]:
    schema = _field(header, "schema", (int,))
    if schema != SCHEMA_VERSION:
        raise MessageError(f"schema version {schema} (this build speaks {SCHEMA_VERSION})")
    kind = _field(header, "kind", (str,))
    cls = KINDS.get(kind)
    if cls is None:
        raise MessageError(f"unknown message kind {kind!r}")
    camera = _field(header, "camera", (str,))
    if bytes(topic) != topic_bytes(camera, cls.TOPIC):
        raise MessageError("topic does not match the header's camera and kind")
    fields = ("epoch", "frame_id", "ts_us", "sent_us", "origin_us")
    common: dict[str, Any] = {name: _field(header, name, (int,)) for name in fields}
    common["camera"] = camera
    return cls, common


def _meta(cls: type[Message], header: dict) -> dict:
    meta = {name: _field(header, name, types) for name, types in cls.META.items()}
    if "roi" in meta:
        roi = meta["roi"]
        if len(roi) != 4 or not all(isinstance(v, int) and not isinstance(v, bool) for v in roi):
            raise MessageError("roi must be 4 integers")
        meta["roi"] = tuple(roi)
    return meta


def _require(ok: bool, what: str) -> None:
    if not ok:
        raise MessageError(what)


def _in_range(value: Any, lo: float, hi: float) -> bool:
    """True for a real number (not bool) with lo <= value < hi; NaN is never in range."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return lo <= value < hi


def _array_within(arr: np.ndarray, lo: float, hi: float) -> bool:
    """Every element in [lo, hi] (one min/max pass; NaN fails, empty passes)."""
    if arr.size == 0:
        return True
    return bool(arr.min() >= lo) and bool(arr.max() <= hi)


# Bit patterns of 1.0: a non-negative IEEE float is <= 1.0 exactly when its bits are (NaN/inf are above)
_ONE_BITS = {np.dtype(np.float16): (np.uint16, 0x3C00), np.dtype(np.float32): (np.uint32, 0x3F800000)}


def _unit_interval(arr: np.ndarray) -> bool:
    """Every element finite and in [0, 1]; one integer max pass (float16 min/max is ~30x slower)."""
    uint, one = _ONE_BITS[arr.dtype]
    if arr.size == 0 or int(arr.view(uint).max()) <= one:
        return True
    return _array_within(arr, 0.0, 1.0)  # negative zero (sign bit set) takes the exact path


def _check_common(msg: Message) -> None:
    # ids and timestamps: non-negative int64 (a receiver compares and subtracts them)
    for name in ("frame_id", "ts_us", "sent_us", "origin_us"):
        _require(_in_range(getattr(msg, name), 0, MAX_INT), f"{name} must be in [0, 2**63)")
    _require(CAMERA_RE.fullmatch(msg.camera) is not None, "camera id must match [A-Za-z0-9_-]{1,32}")
    _require(msg.camera not in TOPICS, "camera id must not be a topic name")


def _check_color(msg: ColorFrame) -> None:
    _require(msg.image.shape[2] == 3, "colour image must have 3 channels")


def _check_depth(msg: DepthFrame) -> None:
    cal = msg.calibration
    _require(cal is None or len(cal) <= MAX_CALIBRATION_CHARS, "calibration text is too long")


def _check_coarse(msg: CoarseMask) -> None:
    # The ROI lies inside the probability image and is not empty
    x, y, w, h = msg.roi
    height, width = msg.prob.shape
    _require(x >= 0 and y >= 0 and w > 0 and h > 0, "roi needs x, y >= 0 and a positive size")
    _require(x + w <= width and y + h <= height, "roi reaches outside the probability image")
    # Float probabilities are finite and in [0, 1] (uint8 is 0-255 by type)
    if msg.prob.dtype != np.uint8:
        _require(_unit_interval(msg.prob), "probabilities must be finite and in [0, 1]")
    _require(_in_range(msg.infer_ms, 0, float("inf")), "infer_ms must be finite and >= 0")
    _require(len(msg.model) <= MAX_NAME_CHARS, "model name is too long")


def _check_partition(msg: Partition) -> None:
    # One score row per segment; every label names a segment (0 = uncovered)
    n = msg.scores.shape[0]
    _require(msg.scores.shape[1:] == (2,) and n <= MAX_SEGMENTS, "partition scores must have shape (n, 2)")
    _require(_array_within(msg.labels, 0, n), f"labels must be in [0, {n}] (the rows of scores)")
    _require(bool(np.isfinite(msg.scores).all()), "partition scores must be finite")
    _require(_in_range(msg.compute_ms, 0, float("inf")), "compute_ms must be finite and >= 0")
    _require(_in_range(msg.decoder_calls, 0, MAX_INT), "decoder_calls must be >= 0")
    _require(_in_range(msg.confirmed_ts_us, 0, MAX_INT), "confirmed_ts_us must be in [0, 2**63)")
    _require(_in_range(msg.warped_from, -1, MAX_INT), "warped_from must be -1 or a frame id")
    _require(len(msg.partitioner) <= MAX_NAME_CHARS, "partitioner name is too long")


def _check_occlusion(msg: OcclusionMask) -> None:
    _require(_array_within(msg.mask, 0, 1), "occlusion mask values must be 0 or 1")
    # Votes: empty (not fused), or one row per segment id + row 0, finite sums of probabilities
    rows = msg.votes.shape[0]
    _require(msg.votes.shape[1] == 2 or rows == 0, "occlusion votes must have shape (n, 2)")
    _require(rows <= MAX_SEGMENTS + 1, "too many occlusion votes")
    _require(_array_within(msg.votes, 0.0, float(np.finfo(np.float32).max)), "votes must be finite and >= 0")
    _require(_in_range(msg.partition_frame_id, -1, MAX_INT), "partition_frame_id must be -1 or a frame id")
    # A fused mask says which partition voted, and carries its votes
    _require(
        not msg.fused or (rows > 0 and msg.partition_frame_id >= 0),
        "a fused mask needs votes and its partition",
    )
    _require(_in_range(msg.partition_age_ms, -1, float("inf")), "partition_age_ms must be finite and >= -1")
    _require(len(msg.partitioner) <= MAX_NAME_CHARS, "partitioner name is too long")


def _check_status(msg: Status) -> None:
    _require(0 < msg.pid < 2**31, "pid must be a positive 32-bit integer")
    _require(len(msg.worker) <= MAX_NAME_CHARS and len(msg.state) <= MAX_NAME_CHARS, "name too long")
    _check_info(msg.info, MAX_INFO_DEPTH)
    for name in STATUS_NUMBERS:
        if name in msg.info:
            _require(_in_range(msg.info[name], 0, float("inf")), f"info.{name} must be a finite number >= 0")


def _check_info(value: Any, depth: int) -> None:
    """Status.info: bounded nesting, finite numbers (sizes are bounded by the header cap)."""
    if isinstance(value, dict | list):
        _require(depth > 0, f"Status info nested deeper than {MAX_INFO_DEPTH}")
        for item in value.values() if isinstance(value, dict) else value:
            _check_info(item, depth - 1)
    elif isinstance(value, float):
        _require(bool(np.isfinite(value)), "Status info holds a non-finite number")


# What a receiver may rely on once decode returns, per kind (docs/PROTOCOL.md lists every check)
_CHECKS: dict[type[Message], Any] = {
    ColorFrame: _check_color,
    DepthFrame: _check_depth,
    CoarseMask: _check_coarse,
    Partition: _check_partition,
    OcclusionMask: _check_occlusion,
    Status: _check_status,
}


def _check_consistency(msg: Message) -> None:
    _check_common(msg)
    _CHECKS[type(msg)](msg)


def decode(frames: list[Any]) -> Message:
    """Parse ``[topic, header, *buffers]``; raise :class:`MessageError` on anything malformed.

    Raw arrays are read-only views on the received buffers (no copy).
    """
    if not isinstance(frames, list | tuple) or len(frames) < 2:
        raise MessageError("a message has at least a topic and a header")
    try:
        header = _unpack_header(frames[1])
        cls, common = _common(header, frames[0])
        arrays = _decode_arrays(cls, header, list(frames[2:]))
        msg = cls(**common, **_meta(cls, header), **arrays)
        _check_consistency(msg)
    except MessageError:
        raise
    except (TypeError, ValueError, OverflowError, KeyError, AttributeError) as exc:
        raise MessageError(f"malformed message ({type(exc).__name__}: {exc})") from None
    return msg
