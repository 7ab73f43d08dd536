"""COCO run-length encoding, decoded in numpy (no pycocotools needed)."""

from __future__ import annotations

import numpy as np

# Characters one count may take: 13 × 5 bits hold any run of an image (and bound the work per count)
MAX_COUNT_CHARS = 13


def rle_string_to_counts(s: str) -> list[int]:
    """Decode COCO's compressed RLE string (LEB128-like, 5 bits per char, delta after the 2nd run).

    ValueError for a string cut inside a count or a count longer than ``MAX_COUNT_CHARS`` characters.
    """
    counts: list[int] = []
    p = 0
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            if p >= len(s) or k >= MAX_COUNT_CHARS:
                raise ValueError("RLE string is cut inside a count" if p >= len(s) else "RLE count too long")
            c = ord(s[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p, k = p + 1, k + 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def rle_decode(counts: list[int] | str, height: int, width: int) -> np.ndarray:
    """COCO RLE (runs of 0s then 1s, column-major) → (height, width) bool mask."""
    try:
        runs = np.asarray(rle_string_to_counts(counts) if isinstance(counts, str) else counts, np.int64)
    except (OverflowError, TypeError) as exc:  # a count beyond int64, or not a number
        raise ValueError(f"RLE counts are not run lengths ({exc})") from None
    if runs.ndim != 1:
        raise ValueError("RLE counts are not a flat list")
    if (runs < 0).any() or runs.sum() != height * width:
        raise ValueError(f"RLE runs sum to {runs.sum()}, expected {height * width}")
    values = np.arange(len(runs)) % 2 == 1
    flat = np.repeat(values, runs)
    return flat.reshape(width, height).T.copy()
