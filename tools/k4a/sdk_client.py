"""Call the Azure Kinect SDK reference (tools/k4a/reference.py in .venv-k4a) from our environment.

``make sdk-env`` creates .venv-k4a; ``K4A_PYTHON`` overrides the interpreter. The SDK's depth→colour
needs OpenGL: without a display the call runs under ``xvfb-run -a`` (Mesa llvmpipe).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = Path(__file__).with_name("reference.py")


class SdkUnavailable(RuntimeError):
    """The reference environment is not there (run ``make sdk-env``)."""


def sdk_python() -> Path:
    """The reference interpreter, or SdkUnavailable naming what to run."""
    python = Path(os.environ.get("K4A_PYTHON", ROOT / ".venv-k4a" / "bin" / "python"))
    if not python.exists():
        raise SdkUnavailable(f"no SDK reference environment at {python}: run `make sdk-env`")
    return python


def _command(args: list[str], display: bool) -> list[str]:
    cmd = [str(sdk_python()), str(REFERENCE), *args]
    if display and not os.environ.get("DISPLAY"):
        xvfb = shutil.which("xvfb-run")
        if xvfb is None:
            raise SdkUnavailable(
                "xvfb-run not found: run `make sdk-env` (apt: xvfb libgl1-mesa-dri libegl1 libgl1)"
            )
        cmd = [xvfb, "-a", *cmd]
    return cmd


def run_reference(args: list[str], *, display: bool = False, timeout: float = 120) -> None:
    """Run reference.py with ``args``; RuntimeError with its stderr tail when it fails."""
    proc = subprocess.run(_command(args, display), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"SDK reference {args[0]} failed ({proc.returncode}): {proc.stderr[-2000:]}")


def _call(
    cmd: str,
    head: list[str],
    arrays: dict[str, np.ndarray],
    tail: list[str],
    display: bool,
    timeout: float = 120,
) -> dict:
    with tempfile.TemporaryDirectory(prefix="k4a-ref-") as tmp:
        src, dst = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(src, **arrays)
        run_reference([cmd, *head, str(src), str(dst), *tail], display=display, timeout=timeout)
        with np.load(dst) as out:
            return {k: out[k] for k in out.files}


def sdk_points(cal_json: str, depth_mode: str, color_res: str, arrays: dict[str, np.ndarray]) -> dict:
    """The SDK's 2d→3d / 3d→2d for every camera pair (see reference.points)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        f.write(cal_json)
    try:
        return _call("points", [f.name, depth_mode, color_res], arrays, [], display=False)
    finally:
        os.unlink(f.name)


def sdk_transform(cal_json: str, depth_mode: str, color_res: str, depth: np.ndarray, repeat: int = 0) -> dict:
    """The SDK's depth→colour of each N×H×W depth image (``transformed``), point clouds, ms per call."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        f.write(cal_json)
    try:
        args = [f.name, depth_mode, color_res]  # seconds a call on Mesa: a loaded host needs minutes
        return _call("transform", args, {"depth": depth}, [str(repeat)], display=True, timeout=300)
    finally:
        os.unlink(f.name)


def peer_transform(
    cal_json: str, depth_mode: str, color_res: str, depth: np.ndarray, repeat: int = 0
) -> dict:
    """open-azure-kinect's depth→colour of each depth image (``transformed``) and ms per call."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        f.write(cal_json)
    try:
        return _call("peer", [f.name, depth_mode, color_res], {"depth": depth}, [str(repeat)], display=False)
    finally:
        os.unlink(f.name)


def sdk_playback(path: Path, max_frames: int = 1000) -> dict:
    """SDK playback of a recording: ``color_i``/``depth_i``/``ir_i``, ``ts_*``, ``n``, ``imu``."""
    with tempfile.TemporaryDirectory(prefix="k4a-ref-") as tmp:
        dst = Path(tmp) / "out.npz"
        run_reference(["playback", str(path), str(dst), str(max_frames)])
        with np.load(dst) as out:
            return {k: out[k] for k in out.files}
