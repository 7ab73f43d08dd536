"""The size of a JPEG read from its frame header, without decoding it (for the codec's checks)."""

from __future__ import annotations

# JPEG markers (ITU-T T.81, B.1.1.3): frame headers, and markers without a length field
_SOF_SEQUENTIAL = (0xC0, 0xC1)  # baseline, extended sequential (Huffman): what we encode
_SOF_ANY = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # DHT, JPG, DAC are not frame headers
_STANDALONE = frozenset((0x01, *range(0xD0, 0xD8)))  # TEM, RST0-7
MAX_JPEG_MARKERS = 64  # segments (and fill bytes) walked before the frame header must appear


class JpegError(ValueError):
    """A JPEG the codec does not accept (the codec reports it as a MessageError)."""


def jpeg_frame_size(data: memoryview) -> tuple[int, int, int]:
    """(height, width, components) from a JPEG's frame header (SOF), read without decoding.

    Walks the marker segments up to the first SOF, at most ``MAX_JPEG_MARKERS`` steps. Only
    8-bit baseline / extended-sequential JPEGs with 3 components (what ``encode`` writes) are
    accepted: progressive, lossless, arithmetic-coded, greyscale and CMYK raise JpegError.
    """
    n = data.nbytes
    if n < 4 or data[0] != 0xFF or data[1] != 0xD8:
        raise JpegError("JPEG lacks its start-of-image marker")
    pos = 2
    for _ in range(MAX_JPEG_MARKERS):
        if pos + 4 > n or data[pos] != 0xFF:
            raise JpegError("JPEG marker structure is broken")
        marker = data[pos + 1]
        if marker in (0xFF, *_STANDALONE):  # a fill byte, or a marker without a length
            pos += 1 if marker == 0xFF else 2
            continue
        length = (data[pos + 2] << 8) | data[pos + 3]
        if marker in _SOF_ANY:
            return _jpeg_sof(data, pos, length, marker)
        if marker in (0xD8, 0xD9, 0xDA) or length < 2:
            raise JpegError("JPEG has no frame header before its scan data")
        pos += 2 + length
    raise JpegError(f"JPEG frame header not within the first {MAX_JPEG_MARKERS} markers")


def _jpeg_sof(data: memoryview, pos: int, length: int, marker: int) -> tuple[int, int, int]:
    """Parse the SOF segment at ``pos`` (see :func:`jpeg_frame_size`)."""
    if length < 8 or pos + 2 + length > data.nbytes:
        raise JpegError("JPEG frame header is truncated")
    if marker not in _SOF_SEQUENTIAL:
        raise JpegError(f"JPEG type SOF{marker - 0xC0} not accepted (baseline or sequential only)")
    precision, components = data[pos + 4], data[pos + 9]
    height = (data[pos + 5] << 8) | data[pos + 6]
    width = (data[pos + 7] << 8) | data[pos + 8]
    if precision != 8 or components != 3:
        raise JpegError(f"JPEG has {precision}-bit samples and {components} components (8-bit, 3 needed)")
    return height, width, components
