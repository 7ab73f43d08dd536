"""``replay --save-masks DIR``: one PNG per frame's occlusion mask plus a provenance CSV.

A thread in the replay process subscribes to ``mask.occlusion`` (and capture's ``status``, for
the last frame id) and writes each mask as it arrives: ``DIR/NNNNNN.png`` (frame id, 8-bit
grayscale, 0 = clear, 255 = occluded) and one row of ``DIR/masks.csv``, flushed per row, so a
stopped run keeps every frame done. At the end, frames that never got a mask get a row too
(``dropped`` by a realtime replay, ``lost`` under ``runtime.every_frame``, ``stopped`` when the run
was stopped by SIGINT/SIGTERM): no silent gap.

Under ``runtime.every_frame`` the saver acknowledges each mask once it is written (``mask.saved``),
and capture waits for that instead of the mask itself (``runtime.credit_on_save``): however fast the
pipeline, at most ``runtime.in_flight`` masks wait here, so none is lost to a full queue.

Any failure of the writer (a disk error, or anything else: a bug, a mask it cannot encode) ends
saving with one error line, never a traceback: the masks still arriving are acknowledged (capture
never waits on a writer that is gone), the frames from the failed one on get ``lost`` rows where the
CSV can still be written, and ``on_error`` (the replay's stop) ends the run at once.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import messages as m
from ..bus import CurveKeys, Publisher, Subscriber
from ..errors import UserError
from .stages import SOURCE

log = logging.getLogger(__name__)

CSV_NAME = "masks.csv"
COLUMNS = (
    "frame_id",
    "ts_us",
    "result",  # fused | fallback (coarse only) | dropped (realtime) | lost (every_frame) | stopped
    "partition_frame_id",
    "partition_age_ms",
    "checkpoint",
    "checkpoint_sha256",
    "partitioner",
    "png",
)
PNG_RE = re.compile(r"\d{6,}\.png(\.part)?")
DRAIN_QUIET_S = 0.5  # stop(): the masks still queued are written until the bus is this quiet …
DRAIN_MAX_S = 5.0  # … or this long at most
MAX_MISSING_ROWS = 100_000  # rows for frames without a mask, at most (a day at 1 fps)
WINDOW = 10_000  # frames this far behind the newest mask get their row if they have none (memory bound)
RCVHWM = 128  # masks queued for writing (a 720p mask is 0.9 MB); every_frame needs runtime.in_flight
ACK_SNDHWM = 64  # mask.saved queued for the bus (every_frame: at most runtime.in_flight at a time)


@dataclass(frozen=True)
class Provenance:
    """What produced the masks: the coarse model's checkpoint and the configured partition method."""

    checkpoint: str
    checkpoint_sha256: str
    partitioner: str


def png_name(frame_id: int) -> str:
    """The mask file of ``frame_id`` (zero-padded: files sort in frame order)."""
    return f"{frame_id:06d}.png"


def encode_png(mask: np.ndarray) -> bytes:
    """A 0/1 mask as an 8-bit grayscale PNG of 0/255 (deterministic bytes)."""
    import cv2

    ok, buf = cv2.imencode(".png", (mask > 0).astype(np.uint8) * np.uint8(255))
    if not ok:
        raise OSError("PNG encoding failed")
    return buf.tobytes()


def file_sha256(path: str | None) -> str:
    """SHA-256 of a file ('' for None or an unreadable file, e.g. random weights)."""
    if path is None:
        return ""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return ""
    return h.hexdigest()


def provenance(cfg: Any) -> Provenance:
    """Provenance of a pipeline config: checkpoint name and hash, partition method."""
    dl, sam = cfg.deeplab, cfg.sam
    digest = file_sha256(dl.checkpoint)
    name = Path(dl.checkpoint).name if digest else "untrained"
    use_sam = sam.partitioner == "sam" or (sam.partitioner == "auto" and sam.checkpoint is not None)
    method = f"sam/{sam.model_type}" if use_sam else f"superpixel/{sam.superpixel.method}"
    return Provenance(name, digest, method)


def mask_row(msg: m.OcclusionMask, prov: Provenance) -> dict[str, Any]:
    """The CSV row of one mask (pure)."""
    return {
        "frame_id": msg.frame_id,
        "ts_us": msg.ts_us,
        "result": "fused" if msg.fused else "fallback",
        "partition_frame_id": msg.partition_frame_id if msg.fused else "",
        "partition_age_ms": round(msg.partition_age_ms, 3) if msg.partition_age_ms >= 0 else "",
        "checkpoint": prov.checkpoint,
        "checkpoint_sha256": prov.checkpoint_sha256,
        "partitioner": msg.partitioner or prov.partitioner,
        "png": png_name(msg.frame_id),
    }


def missing_rows(
    written: set[int], first: int, end: int, result: str, prov: Provenance, limit: int = MAX_MISSING_ROWS
) -> list[dict]:
    """A row for every frame id in [first, end) that has no mask (pure; at most ``limit``: the ids
    come from the bus)."""
    rows: list[dict] = []
    for fid in range(first, end):
        if len(rows) >= limit:
            log.warning("--save-masks: more than %d frames without a mask; rows stop there", MAX_MISSING_ROWS)
            break
        if fid not in written:
            rows.append(
                {k: "" for k in COLUMNS} | {"frame_id": fid, "result": result, **_model_columns(prov)}
            )
    return rows


def _model_columns(prov: Provenance) -> dict[str, str]:
    return {
        "checkpoint": prov.checkpoint,
        "checkpoint_sha256": prov.checkpoint_sha256,
        "partitioner": prov.partitioner,
    }


def prepare_folder(path: str | Path, overwrite: bool, option: str = "--save-masks") -> Path:
    """The folder to save into: created, writable, and holding no masks unless ``overwrite``
    (then the previous run's PNGs and CSV are removed, so no stale frame stays behind)."""
    from ..commands._args import output_folder, probe_writable

    folder = output_folder(path, option)
    old = [p for p in folder.iterdir() if PNG_RE.fullmatch(p.name) or p.name == CSV_NAME]
    if old and not overwrite:
        raise UserError(
            f"{option} {folder}: already holds masks ({len(old)} files) — name an empty folder "
            "or add --overwrite"
        )
    for p in old:
        try:
            p.unlink()
        except OSError as exc:
            raise UserError(f"{option} {folder}: cannot remove {p.name} ({exc.strerror or exc})") from None
    probe_writable(folder / CSV_NAME, option)
    return folder


class MaskSaver(threading.Thread):
    """Writes every ``mask.occlusion`` of one camera as PNG + CSV row (a thread of the replay process).

    Args:
        folder: from :func:`prepare_folder`.
        endpoint, camera, curve: the bus to subscribe to.
        prov: the provenance columns.
        every_frame: a frame without a mask is ``lost`` (else ``dropped``).
        ack_endpoint: the bus frontend to publish ``mask.saved`` to once a mask is written (capture's
            credit under ``runtime.every_frame``); None: no acknowledgement.
        on_error: called (from this thread) once when saving fails: the replay stops then.
    """

    def __init__(  # noqa: PLR0913 — one keyword per destination/bus setting
        self,
        folder: Path,
        endpoint: str,
        camera: str,
        prov: Provenance,
        every_frame: bool,
        curve: CurveKeys | None = None,
        ack_endpoint: str | None = None,
        on_error: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(name="mask-saver", daemon=True)
        self.folder, self.prov, self.every_frame = folder, prov, every_frame
        self.stop_event = threading.Event()
        self.written: set[int] = set()  # frame ids with a mask, from gap_from on
        self.gap_from = 0  # frames below this have their row
        self.missing = 0
        self.counts: dict[str, int] = {}
        self.last_frame_id = -1
        self.interrupted = False  # set before stop() when the run was stopped by a signal
        self.error: str | None = None
        self.failed_at: int | None = None  # the frame whose mask could not be written
        self.on_error = on_error
        # Room for bursts (a 720p mask is 0.9 MB); a mask dropped past it still gets its CSV row
        topics = [m.TOPIC_OCCLUSION, m.TOPIC_STATUS]
        self.sub = Subscriber(endpoint, camera, topics, rcvhwm=RCVHWM, curve=curve)
        self.ack = Publisher(ack_endpoint, ACK_SNDHWM, curve) if ack_endpoint else None

    def run(self) -> None:
        try:
            with (self.folder / CSV_NAME).open("w", newline="") as f:
                out = csv.DictWriter(f, fieldnames=COLUMNS)
                out.writeheader()
                try:
                    self._save(out, f)
                except Exception as exc:  # any failure ends saving with one line
                    self._fail(exc)
                    self._lost_rows(out, f)
                    return
                self._settle(self.last_frame_id + 1, "stopped" if self.interrupted else None, out, f)
        except Exception as exc:  # the CSV itself (open, header, rows) failed
            if self.error is None:
                self._fail(exc)
                self._acknowledge_rest()
            else:
                log.warning("--save-masks: rows of the frames without a mask not written (%s)", exc)
        finally:
            self.sub.close()
            if self.ack is not None:
                self.ack.close()

    def _fail(self, exc: Exception) -> None:
        """Say once why saving ended (one line; the traceback only at DEBUG) and stop the replay."""
        self.error = self.error or self._describe(exc)
        saved = self.counts.get("fused", 0) + self.counts.get("fallback", 0)
        log.error("%s — saving stopped after %d masks", self.error, saved)
        log.debug("--save-masks failure", exc_info=exc)
        if self.on_error is not None:
            self.on_error()

    def _lost_rows(self, out: csv.DictWriter, f) -> None:
        """After a failure: acknowledge until stopped, then rows for the frames without a mask
        (before the failed frame as usual, from it on ``lost``: the writer was gone)."""
        self._acknowledge_rest()
        failed_at = self.failed_at if self.failed_at is not None else self.last_frame_id + 1
        self._settle(failed_at, None, out, f)
        self._settle(self.last_frame_id + 1, "lost", out, f)

    def _save(self, out: csv.DictWriter, f) -> None:
        """Write masks until stopped, then what is still queued (bounded)."""
        quiet_since: float | None = None
        stop_at: float | None = None
        while True:
            msgs = self.sub.drain(100)
            for msg in msgs:
                self._take(msg, out, f)
            now = time.monotonic()
            if self.stop_event.is_set():
                stop_at = stop_at or now
                quiet_since = None if msgs else (quiet_since or now)
                if (quiet_since and now - quiet_since >= DRAIN_QUIET_S) or now - stop_at >= DRAIN_MAX_S:
                    return

    def _take(self, msg: m.Message, out: csv.DictWriter, f) -> None:
        if isinstance(msg, m.Status) and msg.worker == SOURCE:
            self._note_last(msg)
        elif isinstance(msg, m.OcclusionMask):
            try:
                self._write(msg, out, f)
            except Exception as exc:  # said before the acknowledgement below: whoever hears it can ask
                self.error, self.failed_at = self._describe(exc), msg.frame_id
                raise
            finally:  # written, or it never will be (a write error ends saving): capture goes on
                if self.ack is not None:
                    self.ack.publish(m.derived(msg, m.MaskSaved))

    def _note_last(self, msg: m.Status) -> None:
        """Capture's last published frame id (from the bus: an int, or ignored)."""
        last = msg.info.get("last_frame_id")
        if isinstance(last, int) and not isinstance(last, bool):
            self.last_frame_id = max(self.last_frame_id, last)

    def _write(self, msg: m.OcclusionMask, out: csv.DictWriter, f) -> None:
        """The PNG and CSV row of one mask (and the rows of the frames far behind it)."""
        self.last_frame_id = max(self.last_frame_id, msg.frame_id)
        row = mask_row(msg, self.prov)
        self._write_png(msg)
        self.written.add(msg.frame_id)
        self._rows(out, f, [row])
        if msg.frame_id - WINDOW > self.gap_from:
            self._settle(msg.frame_id - WINDOW, None, out, f)

    def _describe(self, exc: Exception) -> str:
        if isinstance(exc, OSError):
            return f"--save-masks {self.folder}: {exc.strerror or exc}"
        reason = " ".join(str(exc).split())[:200]  # one line, bounded
        return f"--save-masks {self.folder}: saving failed ({type(exc).__name__}: {reason})"

    def _acknowledge_rest(self) -> None:
        """After a failure: until stopped, acknowledge each mask unwritten (capture goes on) and
        note the newest frame id (for the rows of the frames without a mask)."""
        while not self.stop_event.is_set():
            for msg in self.sub.drain(100):
                if isinstance(msg, m.Status) and msg.worker == SOURCE:
                    self._note_last(msg)
                elif isinstance(msg, m.OcclusionMask):
                    self.last_frame_id = max(self.last_frame_id, msg.frame_id)
                    if self.ack is not None:
                        self.ack.publish(m.derived(msg, m.MaskSaved))

    def _settle(self, end: int, result: str | None, out: csv.DictWriter, f) -> None:
        """Rows for the frames below ``end`` that have no mask; their ids are then forgotten."""
        if end <= self.gap_from:
            return
        result = result or ("lost" if self.every_frame else "dropped")
        limit = MAX_MISSING_ROWS - self.missing
        rows = missing_rows(self.written, self.gap_from, end, result, self.prov, limit) if limit > 0 else []
        self.missing += len(rows)
        self.written = {i for i in self.written if i >= end}
        self.gap_from = end
        self._rows(out, f, rows)

    def _write_png(self, msg: m.OcclusionMask) -> None:
        """Write the PNG whole or not at all (temporary file, then rename)."""
        path = self.folder / png_name(msg.frame_id)
        tmp = path.with_suffix(".png.part")
        tmp.write_bytes(encode_png(msg.mask))
        os.replace(tmp, path)

    def _rows(self, out: csv.DictWriter, f, rows: list[dict]) -> None:
        for row in rows:
            out.writerow(row)
            self.counts[row["result"]] = self.counts.get(row["result"], 0) + 1
        f.flush()

    def stop(self) -> None:
        """Write what is still queued, the rows of frames without a mask, and close."""
        self.stop_event.set()
        self.join(timeout=DRAIN_MAX_S + 5)

    def summary(self) -> str:
        """One line: where, and how many frames of each result."""
        parts = ", ".join(f"{n} {k}" for k, n in sorted(self.counts.items())) or "no frames"
        return f"masks written: {self.folder} ({parts}; provenance in {CSV_NAME})"
