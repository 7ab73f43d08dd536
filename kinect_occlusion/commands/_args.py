"""Command-line values checked up front: each bad one is one UserError line naming the option."""

from __future__ import annotations

import math
import os
import re
import stat
from pathlib import Path

from ..config import ENDPOINT_SCHEMES
from ..errors import UserError
from ..wire import CAMERA_RE


def output_folder(path: str | Path, option: str) -> Path:
    """A folder to write into, created when missing; not a file."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UserError(f"{option} {p}: is a file, not a folder — name a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{option} {p}: cannot create the folder ({exc.strerror or exc})") from None
    return p


def output_file(path: str | Path, option: str) -> Path:
    """A file to (over)write: not a folder, in an existing folder, and writable (checked by opening)."""
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{option} {p}: is a folder — name a file in it")
    if not p.parent.is_dir():
        raise UserError(f"{option} {p}: folder {p.parent} does not exist — create it first")
    probe_writable(p, option)
    return p


def write_error(p: Path) -> str | None:
    """Why ``p`` cannot be opened for appending, or None (a file the probe made is removed again).

    Opening is the test, as the writer will (as root, os.access says yes to anything).
    """
    existed = p.exists()
    if existed and (kind := special_file(p)):
        return f"is a {kind}, not a file"
    try:
        # Non-blocking: opening a FIFO for writing waits for a reader, for ever
        os.close(os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK, 0o666))
    except OSError as exc:
        return str(exc.strerror or exc)
    if not existed:
        p.unlink()
    return None


def special_file(p: Path) -> str | None:
    """``named pipe (FIFO)`` or ``socket`` when ``p`` is one (reading or writing those can wait for ever)."""
    try:
        mode = p.stat().st_mode
    except OSError:
        return None
    if stat.S_ISFIFO(mode):
        return "named pipe (FIFO)"
    return "socket" if stat.S_ISSOCK(mode) else None


def probe_writable(p: Path, option: str) -> None:
    """UserError naming ``option`` when ``p`` cannot be written (see :func:`write_error`)."""
    why = write_error(p)
    if why is not None:
        raise UserError(f"{option} {p}: cannot write there ({why})")


def video_file(path: str | Path, option: str = "--save-video") -> Path:
    """An overlay video to write: not a folder, a suffix PyAV knows, writable (its folder is created)."""
    import av

    p = Path(path)
    if p.is_dir():
        raise UserError(f"{option} {p}: is a folder — name a file such as {p / 'overlay.mp4'}")
    try:
        av.open(str(p), "w").close()  # Format from the suffix; writes nothing without streams
    except (ValueError, av.FFmpegError) as exc:
        raise UserError(f"{option} {p}: not a video file name ({exc}) — use .mp4 or .mkv") from None
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{option} {p}: cannot write there ({exc.strerror or exc})") from None
    probe_writable(p, option)
    return p


def input_file(path: str | Path | None, option: str) -> Path | None:
    """An existing file (None passes through)."""
    if path is None:
        return None
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{option} {p}: " + ("is a folder, not a file" if p.is_dir() else "no such file"))
    return p


def input_folder(path: str | Path | None, option: str) -> Path | None:
    """An existing folder (None passes through)."""
    if path is None:
        return None
    p = Path(path)
    if not p.is_dir():
        raise UserError(f"{option} {p}: " + ("is a file, not a folder" if p.exists() else "no such folder"))
    return p


def endpoint(value: str | None, option: str) -> str | None:
    """A ZeroMQ endpoint we can connect to (None passes through)."""
    if value is not None and not value.startswith(ENDPOINT_SCHEMES):
        raise UserError(f"{option} {value}: endpoint must start with ipc://, tcp:// or inproc://")
    return value


def device(value: str, option: str) -> str:
    """A torch device the commands accept: auto, cpu, cuda or cuda:N."""
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value):
        raise UserError(f"{option} {value}: use auto, cpu, cuda or cuda:N")
    return value


def camera_id(value: str | None, option: str) -> str | None:
    """A camera id as in camera.id, or * for every camera (None passes through)."""
    if value is not None and value != "*" and not CAMERA_RE.fullmatch(value):
        raise UserError(f"{option} {value!r}: a camera id is 1-32 letters, digits, _ or - (or * for all)")
    return value


def positive(value: float | None, option: str) -> float | None:
    """A finite number > 0 (None passes through)."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise UserError(f"{option} {value}: must be a positive number")
    return value
