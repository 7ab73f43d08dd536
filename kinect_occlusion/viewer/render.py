"""What the browser gets: downscaled overlay JPEGs and a status summary (pure: arrays and dicts in/out).

A binary WebSocket message is ``[u32 big-endian header length][JSON header][JPEG]``; the header says
which camera and frame the picture shows, whether the mask was fused, its latency and partition age.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import numpy as np

from ..overlay import draw_overlay

JPEG_MAGIC = b"\xff\xd8"


def display_size(width: int, height: int, max_width: int) -> tuple[int, int]:
    """(width, height) scaled down to at most ``max_width`` wide, aspect kept, never upscaled."""
    scale = min(1.0, max_width / max(1, width))
    return max(1, round(width * scale)), max(1, round(height * scale))


def shrink_nearest(arr: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resample of a 2-D array onto ``shape`` (exact integer indices, no cast)."""
    if arr.shape[:2] == shape:
        return arr
    h, w = shape
    rows = np.arange(h, dtype=np.int64) * arr.shape[0] // h
    cols = np.arange(w, dtype=np.int64) * arr.shape[1] // w
    return arr.take(rows, axis=0).take(cols, axis=1)


def downscale(rgb: np.ndarray, max_width: int) -> np.ndarray:
    """``rgb`` resized (area averaging) to at most ``max_width`` wide."""
    import cv2

    h, w = rgb.shape[:2]
    size = display_size(w, h, max_width)
    if size == (w, h):
        return np.ascontiguousarray(rgb)
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def render_view(
    rgb: np.ndarray,
    mask: np.ndarray | None,
    labels: np.ndarray | None,
    fused: bool,
    max_width: int,
) -> np.ndarray:
    """The overlay at display size: tint where ``mask`` is set, partition edges, red border if not fused.

    ``mask`` and ``labels`` may have any resolution (they are mapped onto the picture); ``mask=None``
    gives the plain picture (no result yet). ValueError for an empty array.
    """
    for name, arr in (("frame", rgb), ("mask", mask), ("labels", labels)):
        if arr is not None and arr.size == 0:
            raise ValueError(f"empty {name} {arr.shape}")
    small = downscale(rgb, max_width)
    if mask is None:
        return small
    shape = small.shape[:2]
    small_mask = shrink_nearest(mask, shape)
    small_labels = shrink_nearest(labels, shape) if labels is not None else None
    return draw_overlay(small, small_mask, small_labels, fused=fused)


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """JPEG bytes of an RGB image (ValueError if OpenCV cannot encode it)."""
    import cv2

    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def pack_frame(meta: dict[str, Any], jpeg: bytes) -> bytes:
    """One binary WebSocket message: header length, JSON header, JPEG."""
    header = json.dumps(meta, separators=(",", ":")).encode()
    return struct.pack(">I", len(header)) + header + jpeg


def unpack_frame(data: bytes) -> tuple[dict[str, Any], bytes]:
    """Inverse of :func:`pack_frame` (for tests and other clients); ValueError when malformed."""
    if len(data) < 4:
        raise ValueError("frame message too short")
    (n,) = struct.unpack(">I", data[:4])
    if n > len(data) - 4:
        raise ValueError("frame header longer than the message")
    return json.loads(data[4 : 4 + n]), data[4 + n :]


# ----------------------------------------------------------------------------- status summary


def number(value: Any) -> float | None:
    """A finite int/float from an untrusted field (bools and everything else: None)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def text(value: Any, limit: int = 80) -> str:
    """An untrusted field as a short string."""
    return value[:limit] if isinstance(value, str) else ""


def percentile(values: list[float], q: float) -> float | None:
    """``q``-th percentile rounded to 0.1, or None for no values."""
    return round(float(np.percentile(values, q)), 1) if values else None


def worker_rows(statuses: dict[str, tuple[Any, float]], now: float, silent_s: float) -> dict[str, dict]:
    """One row per worker from its newest Status and the supervisor's view (restarts, alive).

    Args:
        statuses: worker name → (Status message, monotonic time it arrived).
        now: monotonic time now.
        silent_s: a worker whose newest Status is older than this shows as ``silent``.
    """
    sup = statuses.get("supervisor")
    sup_info = sup[0].info.get("workers") if sup is not None else None
    sup_workers = sup_info if isinstance(sup_info, dict) else {}
    rows: dict[str, dict] = {}
    names = (set(statuses) - {"supervisor"}) | {n for n in sup_workers if isinstance(n, str)}
    for name in sorted(names)[:16]:
        st, seen = statuses.get(name, (None, 0.0))
        info = st.info if st is not None else {}
        found = sup_workers.get(name)
        sv: dict[str, Any] = found if isinstance(found, dict) else {}
        state = text(st.state, 20) if st is not None else "unknown"
        rows[text(name, 32)] = {
            "state": "silent" if st is not None and now - seen > silent_s else state,
            "rate_hz": number(info.get("rate_hz")),
            "errors": number(info.get("errors")),
            "last_error": text(info.get("last_error"), 120),
            "restarts": number(sv.get("restarts")),
            "alive": sv.get("alive") if isinstance(sv.get("alive"), bool) else None,
            "failed": sv.get("failed") is True,
        }
    return rows


def camera_summary(
    statuses: dict[str, tuple[Any, float]],
    latencies_ms: list[float],
    fused_flags: list[bool],
    partition_age_ms: float | None,
    now: float,
    silent_s: float = 5.0,
) -> dict[str, Any]:
    """Stage rates, capture→fused latency, partition age (None: no partition) and worker states."""
    rows = worker_rows(statuses, now, silent_s)
    sup = statuses.get("supervisor")
    return {
        "pipeline": text(sup[0].state, 20) if sup is not None else "unknown",
        "rates_hz": {n: r["rate_hz"] for n, r in rows.items()},
        "latency_ms": {"p50": percentile(latencies_ms, 50), "p95": percentile(latencies_ms, 95)},
        "fused_share": round(sum(fused_flags) / len(fused_flags), 3) if fused_flags else None,
        "partition_age_ms": age if (age := number(partition_age_ms)) is not None and age >= 0 else None,
        "workers": rows,
    }
