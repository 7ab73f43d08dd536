"""The codec: bytes on the bus ⇄ messages, with every check a receiver relies on.

A message is the multipart ZeroMQ message ``[topic, header, *buffers]``:

- ``topic``: ``b"<kind topic>/<camera>/"``, e.g. ``b"frame.color/bed1/"`` (kind first, so a ZeroMQ
  prefix such as ``b"mask.occlusion/"`` selects one kind for every camera; the closing ``/`` stops
  ``bed1`` from matching ``bed10``);
- ``header``: a msgpack map with ``schema``, ``kind``, ``camera``, ``frame_id``, ``ts_us``,
  ``sent_us``, ``origin_us``, ``epoch``, the kind's own fields and ``arrays`` (one ``{name, dtype,
  shape, encoding, nbytes}`` per buffer);
- one raw buffer per array, in the order of ``arrays``.

This module knows no kind: a kind is one dataclass (``kinect_occlusion/messages.py``) whose fields
declare their wire form (:func:`header_field`, :func:`array_field`, :func:`encoding_field`) and
whose ``check`` method holds its own validations; defining it registers it. ``encode``
serialises everything before anything is sent; ``decode`` validates everything and raises
:class:`MessageError` for any malformed input. See docs/PROTOCOL.md.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import msgpack
import numpy as np

from .jpeg import JpegError, jpeg_frame_size

SCHEMA_VERSION = 2  # 2: the common ``epoch`` field (frame identity survives a capture restart)

# Sizes are capped so a lying header cannot make a receiver allocate without bound.
MAX_HEADER_BYTES = 64 * 1024
MAX_BUFFER_BYTES = 4096 * 3072 * 4
MAX_DIM = 8192
MAX_INT = 2**63  # frame ids and µs timestamps are non-negative and below this

CAMERA_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")

ENC_RAW = "raw"
ENC_JPEG = "jpeg"
ENC_PACKBITS = "packbits"

_WIRE = "wire"  # the dataclass field metadata key of a wire declaration


class MessageError(ValueError):
    """A message that does not follow the protocol (the only error ``decode`` raises)."""


def now_us() -> int:
    """Wall-clock time in microseconds (for ``sent_us``)."""
    return time.time_ns() // 1000


# ----------------------------------------------------------------------------- declaring a kind


@dataclass(frozen=True)
class ArraySpec:
    """What one buffer of a message kind may hold."""

    name: str
    dtypes: tuple[str, ...]
    ndim: int
    encodings: tuple[str, ...] = (ENC_RAW,)


@dataclass(frozen=True)
class HeaderSpec:
    """One header field of a kind: the msgpack types accepted, and an optional parser."""

    name: str
    types: tuple[type, ...]
    parse: Callable[[Any], Any] | None = None


@dataclass(frozen=True)
class _Encoding:
    """Marks the field that names the encoding of the kind's arrays (not a header field)."""


def header_field(*types: type, parse: Callable[[Any], Any] | None = None, **kwargs: Any) -> Any:
    """A dataclass field sent in the header, accepted on receipt when of one of ``types``.

    ``parse`` turns the received value into the field's value (raising MessageError if it does
    not fit); ``kwargs`` go to :func:`dataclasses.field` (``default``, ``default_factory``).
    """
    return field(metadata={_WIRE: HeaderSpec("", types, parse)}, **kwargs)


def array_field(*dtypes: str, ndim: int, encodings: tuple[str, ...] = (ENC_RAW,), **kwargs: Any) -> Any:
    """A dataclass field sent as one raw buffer (arrays travel in the order they are declared)."""
    return field(metadata={_WIRE: ArraySpec("", dtypes, ndim, encodings)}, **kwargs)


def encoding_field() -> Any:
    """The field naming how the kind's arrays travel (each array that allows it; others raw)."""
    return field(default=ENC_RAW, metadata={_WIRE: _Encoding()})


@dataclass(frozen=True)
class Layout:
    """A kind's wire form, read once from its field declarations."""

    header: tuple[HeaderSpec, ...]
    arrays: tuple[ArraySpec, ...]
    encoding: str | None  # the name of the encoding field, if the kind has one


_LAYOUTS: dict[type, Layout] = {}


def layout(cls: type[Message]) -> Layout:
    """The header fields, arrays and encoding field of ``cls``, in declaration order (read once)."""
    if cls not in _LAYOUTS:
        _LAYOUTS[cls] = _read_layout(cls)
    return _LAYOUTS[cls]


def _read_layout(cls: type[Message]) -> Layout:
    header: list[HeaderSpec] = []
    arrays: list[ArraySpec] = []
    encoding = None
    for f in fields(cls):
        decl = f.metadata.get(_WIRE)
        if isinstance(decl, HeaderSpec):
            header.append(HeaderSpec(f.name, decl.types, decl.parse))
        elif isinstance(decl, ArraySpec):
            arrays.append(ArraySpec(f.name, decl.dtypes, decl.ndim, decl.encodings))
        elif isinstance(decl, _Encoding):
            encoding = f.name
    if encoding is None and any(spec.encodings != (ENC_RAW,) for spec in arrays):
        raise TypeError(f"{cls.__name__} has encoded arrays but no encoding_field()")
    return Layout(tuple(header), tuple(arrays), encoding)


# Every kind, by header ``kind`` and by topic; a Message subclass with a KIND registers itself
KINDS: dict[str, type[Message]] = {}
TOPICS: dict[str, type[Message]] = {}


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

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.KIND:
            return
        if cls.KIND in KINDS or cls.TOPIC in TOPICS or not cls.TOPIC:
            raise TypeError(f"message kind {cls.KIND!r} needs its own KIND and TOPIC")
        KINDS[cls.KIND] = TOPICS[cls.TOPIC] = cls

    @property
    def identity(self) -> tuple[int, int]:
        """``(epoch, frame_id)`` of the source frame: compare for equality, never for order."""
        return (self.epoch, self.frame_id)

    def check(self) -> None:
        """The kind's own consistency checks (raise MessageError); the common ones run first."""


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
    cls, lay = type(msg), layout(type(msg))
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
    for field_spec in lay.header:
        value = getattr(msg, field_spec.name)
        header[field_spec.name] = list(value) if isinstance(value, tuple) else value
    arrays, buffers = [], []
    encoding = getattr(msg, lay.encoding) if lay.encoding else ENC_RAW
    for spec in lay.arrays:
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

    # The frame header's size must match before anything is decoded (a tiny file can claim 16000²)
    try:
        size = jpeg_frame_size(view.cast("B"))
    except JpegError as exc:
        raise MessageError(str(exc)) from None
    if size != shape:
        raise MessageError(f"array '{spec.name}': JPEG is {size}, the header says {shape}")
    flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    img = cv2.imdecode(np.frombuffer(view, np.uint8), flags)
    if img is None or img.shape != shape:
        raise MessageError(f"array '{spec.name}': JPEG does not decode to shape {shape}")
    return np.ascontiguousarray(img[..., ::-1])


def _decode_arrays(cls: type[Message], header: dict, buffers: list[Any]) -> dict[str, Any]:
    lay = layout(cls)
    descs = _field(header, "arrays", (list,))
    if len(descs) != len(lay.arrays) or len(buffers) != len(lay.arrays):
        raise MessageError(f"{cls.KIND} needs {len(lay.arrays)} buffers")
    out: dict[str, Any] = {}
    for spec, desc, buf in zip(lay.arrays, descs, buffers, strict=True):
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
        if enc != ENC_RAW and lay.encoding:
            out[lay.encoding] = enc
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
    names = ("epoch", "frame_id", "ts_us", "sent_us", "origin_us")
    common: dict[str, Any] = {name: _field(header, name, (int,)) for name in names}
    common["camera"] = camera
    return cls, common


def _header_fields(cls: type[Message], header: dict) -> dict[str, Any]:
    out = {}
    for spec in layout(cls).header:
        value = _field(header, spec.name, spec.types)
        out[spec.name] = spec.parse(value) if spec.parse else value
    return out


# ----------------------------------------------------------------------------- validation


def require(ok: bool, what: str) -> None:
    """Raise MessageError(``what``) unless ``ok``."""
    if not ok:
        raise MessageError(what)


def in_range(value: Any, lo: float, hi: float) -> bool:
    """True for a real number (not bool) with lo <= value < hi; NaN is never in range."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return lo <= value < hi


def array_within(arr: np.ndarray, lo: float, hi: float) -> bool:
    """Every element in [lo, hi] (one min/max pass; NaN fails, empty passes)."""
    if arr.size == 0:
        return True
    return bool(arr.min() >= lo) and bool(arr.max() <= hi)


# Bit patterns of 1.0: a non-negative IEEE float is <= 1.0 exactly when its bits are (NaN/inf are above)
_ONE_BITS = {np.dtype(np.float16): (np.uint16, 0x3C00), np.dtype(np.float32): (np.uint32, 0x3F800000)}


def unit_interval(arr: np.ndarray) -> bool:
    """Every element finite and in [0, 1]; one integer max pass (float16 min/max is ~30x slower)."""
    uint, one = _ONE_BITS[arr.dtype]
    if arr.size == 0 or int(arr.view(uint).max()) <= one:
        return True
    return array_within(arr, 0.0, 1.0)  # negative zero (sign bit set) takes the exact path


def _check_common(msg: Message) -> None:
    # ids and timestamps: non-negative int64 (a receiver compares and subtracts them)
    for name in ("frame_id", "ts_us", "sent_us", "origin_us"):
        require(in_range(getattr(msg, name), 0, MAX_INT), f"{name} must be in [0, 2**63)")
    require(CAMERA_RE.fullmatch(msg.camera) is not None, "camera id must match [A-Za-z0-9_-]{1,32}")
    require(msg.camera not in TOPICS, "camera id must not be a topic name")


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
        msg = cls(**common, **_header_fields(cls, header), **arrays)
        _check_common(msg)
        msg.check()
    except MessageError:
        raise
    except (TypeError, ValueError, OverflowError, KeyError, AttributeError) as exc:
        raise MessageError(f"malformed message ({type(exc).__name__}: {exc})") from None
    return msg
