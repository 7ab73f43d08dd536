"""A minimal EBML/Matroska toolkit: encode elements for the .mkv writer, check a file's header.

Only what the Azure Kinect layout needs. Element ids are written with their length-marker bits,
as the Matroska specification lists them (e.g. ``SEGMENT = 0x18538067``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from ..errors import SourceError

# EBML header
EBML = 0x1A45DFA3
EBML_VERSION = 0x4286
EBML_READ_VERSION = 0x42F7
EBML_MAX_ID_LENGTH = 0x42F2
EBML_MAX_SIZE_LENGTH = 0x42F3
DOC_TYPE = 0x4282
DOC_TYPE_VERSION = 0x4287
DOC_TYPE_READ_VERSION = 0x4285
VOID = 0xEC

# Segment and its top-level children
SEGMENT = 0x18538067
SEEK_HEAD = 0x114D9B74
SEEK = 0x4DBB
SEEK_ID = 0x53AB
SEEK_POSITION = 0x53AC
INFO = 0x1549A966
TIMESTAMP_SCALE = 0x2AD7B1
MUXING_APP = 0x4D80
WRITING_APP = 0x5741
DATE_UTC = 0x4461
TITLE = 0x7BA9
DURATION = 0x4489
TRACKS = 0x1654AE6B
TRACK_ENTRY = 0xAE
TRACK_NUMBER = 0xD7
TRACK_UID = 0x73C5
TRACK_TYPE = 0x83
FLAG_LACING = 0x9C
DEFAULT_DURATION = 0x23E383
NAME = 0x536E
CODEC_ID = 0x86
CODEC_PRIVATE = 0x63A2
VIDEO = 0xE0
PIXEL_WIDTH = 0xB0
PIXEL_HEIGHT = 0xBA
ATTACHMENTS = 0x1941A469
ATTACHED_FILE = 0x61A7
FILE_NAME = 0x466E
FILE_MIME_TYPE = 0x4660
FILE_DATA = 0x465C
FILE_UID = 0x46AE
TAGS = 0x1254C367
TAG = 0x7373
TARGETS = 0x63C0
TARGET_TYPE = 0x63CA
TAG_TRACK_UID = 0x63C5
TAG_ATTACHMENT_UID = 0x63C6
SIMPLE_TAG = 0x67C8
TAG_NAME = 0x45A3
TAG_STRING = 0x4487
CLUSTER = 0x1F43B675
CLUSTER_TIMESTAMP = 0xE7
SIMPLE_BLOCK = 0xA3
CUES = 0x1C53BB6B
CUE_POINT = 0xBB
CUE_TIME = 0xB3
CUE_TRACK_POSITIONS = 0xB7
CUE_TRACK = 0xF7
CUE_CLUSTER_POSITION = 0xF1

# An 8-byte "unknown size" (all value bits set) for a Segment still being written
UNKNOWN_SIZE = b"\x01\xff\xff\xff\xff\xff\xff\xff"


def encode_id(element_id: int) -> bytes:
    """The id's bytes (ids already carry their length marker)."""
    return element_id.to_bytes((element_id.bit_length() + 7) // 8, "big")


def encode_size(size: int, length: int | None = None) -> bytes:
    """EBML variable-length size; ``length`` forces a fixed width (1–8 bytes) for later patching."""
    if length is None:
        length = 1
        while size >= (1 << (7 * length)) - 1:
            length += 1
    if length > 8 or size >= (1 << (7 * length)) - 1:
        raise ValueError(f"EBML size {size} does not fit in {length} bytes")
    return ((1 << (7 * length)) | size).to_bytes(length, "big")


def element(element_id: int, payload: bytes, size_length: int | None = None) -> bytes:
    """One element: id, size, payload."""
    return encode_id(element_id) + encode_size(len(payload), size_length) + payload


def uint(element_id: int, value: int, length: int | None = None) -> bytes:
    """Unsigned-integer element (minimal width unless ``length`` is given)."""
    if length is None:
        length = max(1, (value.bit_length() + 7) // 8)
    return element(element_id, value.to_bytes(length, "big"))


def sint(element_id: int, value: int) -> bytes:
    """Signed-integer element (8 bytes)."""
    return element(element_id, value.to_bytes(8, "big", signed=True))


def string(element_id: int, value: str) -> bytes:
    """UTF-8 string element."""
    return element(element_id, value.encode("utf-8"))


def float64(element_id: int, value: float) -> bytes:
    """8-byte IEEE float element."""
    return element(element_id, struct.pack(">d", value))


def master(element_id: int, *children: bytes) -> bytes:
    """Master element holding already-encoded ``children``."""
    return element(element_id, b"".join(children))


def void(total_length: int) -> bytes:
    """A Void element occupying exactly ``total_length`` bytes (≥ 9, fixed 8-byte size field)."""
    if total_length < 9:
        raise ValueError("a Void element needs at least 9 bytes here")
    return encode_id(VOID) + encode_size(total_length - 9, 8) + b"\x00" * (total_length - 9)


def read_vint(buf: bytes, pos: int) -> tuple[int, int, int]:
    """Decode a variable-length integer at ``pos``: (value without marker, raw value, length)."""
    if pos >= len(buf):
        raise EOFError("EBML data ends inside an element header")
    first = buf[pos]
    if first == 0:
        raise ValueError("invalid EBML variable-length integer")
    length = 9 - first.bit_length()
    if pos + length > len(buf):
        raise EOFError("EBML data ends inside an element header")
    raw = int.from_bytes(buf[pos : pos + length], "big")
    return raw & ((1 << (7 * length)) - 1), raw, length


@dataclass
class MatroskaHeader:
    """What :func:`check_matroska` learned from a file's first bytes."""

    doc_type: str
    segment_start: int  # file offset of the Segment's payload
    segment_size: int | None  # None when written with "unknown size" (recording not closed)
    file_size: int


def check_matroska(path: str | Path) -> MatroskaHeader:
    """Validate the EBML header and Segment of ``path``; raise SourceError with one line otherwise."""
    p = Path(path)
    if not p.is_file():
        raise SourceError(f"{path}: no such recording (check the path)")
    file_size = p.stat().st_size
    if file_size == 0:
        raise SourceError(f"{path}: file is empty — not an Azure Kinect recording")
    with p.open("rb") as f:
        head = f.read(4096)
    if not head.startswith(encode_id(EBML)):
        raise SourceError(f"{path}: not a Matroska (.mkv) file — expected an Azure Kinect recording")
    try:
        return _parse_header(head, file_size)
    except (EOFError, ValueError) as exc:
        raise SourceError(f"{path}: truncated or corrupt Matroska header ({exc})") from None


def _parse_header(head: bytes, file_size: int) -> MatroskaHeader:
    """Read the EBML header's DocType and the Segment element that follows it."""
    _, _, id_len = read_vint(head, 0)
    size, _, size_len = read_vint(head, id_len)
    body_start, body_end = id_len + size_len, id_len + size_len + size
    if body_end > len(head):
        raise EOFError("EBML header is cut short")
    doc_type, pos = "", body_start
    while pos < body_end:
        _, child_id, n_id = read_vint(head, pos)
        child_size, _, n_size = read_vint(head, pos + n_id)
        payload = head[pos + n_id + n_size : pos + n_id + n_size + child_size]
        if child_id == DOC_TYPE:
            doc_type = payload.decode("ascii", "replace").rstrip("\x00")
        pos += n_id + n_size + child_size
    if doc_type not in ("matroska", "webm"):
        raise ValueError(f"DocType is {doc_type!r}, not matroska")
    _, seg_id, n_id = read_vint(head, body_end)
    if seg_id != SEGMENT:
        raise ValueError("no Segment after the EBML header")
    seg_size, _, n_size = read_vint(head, body_end + n_id)
    segment_start = body_end + n_id + n_size
    unknown = seg_size == (1 << (7 * n_size)) - 1
    return MatroskaHeader(doc_type, segment_start, None if unknown else seg_size, file_size)
