"""The wire protocol: every topic, message type and schema version lives here.

A message is the multipart ZeroMQ message ``[topic, header, *buffers]``:

- ``topic``: ``b"<camera>/<kind topic>"``, e.g. ``b"bed1/frame.color"``;
- ``header``: a msgpack map with ``schema``, ``kind``, ``camera``, ``epoch``, ``frame_id``,
  ``ts_us``, ``sent_us``, ``origin_us``, ``arrays`` (one ``{name, dtype, shape, encoding,
  nbytes}`` per buffer) and the kind's own fields;
- one raw buffer per array, in the order of ``arrays``.

``encode`` serialises everything before anything is sent; ``decode`` validates everything and
raises :class:`MessageError` for any malformed input. See docs/PROTOCOL.md.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
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
    original ``frame_id``/``ts_us`` and ``confirmed_ts_us`` = the newer frame found unchanged.
    """

    labels: np.ndarray
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    partitioner: str = ""
    compute_ms: float = 0.0
    decoder_calls: int = 0
    reused: bool = False
    confirmed_ts_us: int = 0

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
    """Full topic of a kind for one camera, e.g. ``b"bed1/mask.coarse"``."""
    return f"{camera}/{topic}".encode()


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


def _decode_jpeg(spec: ArraySpec, shape: tuple, view: memoryview) -> np.ndarray:
    import cv2

    img = cv2.imdecode(np.frombuffer(view, np.uint8), cv2.IMREAD_COLOR) if view.nbytes else None
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


def _check_consistency(msg: Message) -> None:
    if isinstance(msg, Partition):
        if msg.scores.shape[1:] != (2,) or msg.scores.shape[0] > MAX_SEGMENTS:
            raise MessageError("partition scores must have shape (n, 2)")
    if isinstance(msg, OcclusionMask) and msg.votes.size and msg.votes.shape[1] != 2:
        raise MessageError("occlusion votes must have shape (n, 2)")
    if isinstance(msg, ColorFrame) and msg.image.shape[2] != 3:
        raise MessageError("colour image must have 3 channels")


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
    except MessageError:
        raise
    except (TypeError, ValueError, OverflowError, KeyError, AttributeError) as exc:
        raise MessageError(f"malformed message ({type(exc).__name__}: {exc})") from None
    _check_consistency(msg)
    return msg


def message_fields(msg: Message) -> dict[str, Any]:
    """The message's fields as a dict (for logging and JSON output; arrays become shapes)."""
    out = {}
    for f in fields(msg):
        value = getattr(msg, f.name)
        out[f.name] = (
            f"array{list(value.shape)}:{value.dtype.name}" if isinstance(value, np.ndarray) else value
        )
    return out
