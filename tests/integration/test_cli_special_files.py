"""Paths that name a FIFO instead of a file: one clear line and exit 2, never a hang; a full disk.

Opening a named pipe blocks until the other end opens it: reading a config from one, or probing an
output (recording, overlay video, log file) by opening it for writing, used to wait for ever. Real
subprocesses on real FIFOs; a run past the timeout is the failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = str(ROOT / "recordings" / "sample.mkv")
HANG_S = 60  # each case needs ~2 s; a blocked open never returns


def cases(tmp: Path) -> list[tuple[list[str], str]]:
    """(arguments, text the one error line must contain), on FIFOs made in ``tmp``."""
    for name in ("config.yaml", "rec.mkv", "overlay.mp4", "pipeline.log"):
        os.mkfifo(tmp / name)
    log_cfg = {
        "camera": {"source": "synthetic"},
        "deeplab": {"allow_untrained": True},
        "logging": {"file": str(tmp / "pipeline.log")},
    }
    (tmp / "logs_to_fifo.yaml").write_text(yaml.safe_dump(log_cfg))
    return [
        (["validate-config", str(tmp / "config.yaml")], "not a regular file"),
        (["replay", SAMPLE, "-c", str(tmp / "config.yaml")], "not a regular file"),
        (["validate-config", str(tmp / "logs_to_fifo.yaml")], "is a named pipe (FIFO), not a file"),
        (["record", str(tmp / "rec.mkv"), "--seconds", "0.2"], "named pipe (FIFO)"),
        (["replay", SAMPLE, "--save-video", str(tmp / "overlay.mp4")], "named pipe (FIFO)"),
    ]


def outcome(args: list[str], expected: str) -> str | None:
    """Why running ``args`` went wrong, or None when it ended at once with one error line saying ``expected``.

    (validate-config prints each problem on a line of its own before its error line.)
    """
    cmd = [sys.executable, "-m", "kinect_occlusion", *args]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=HANG_S, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return f"{args}: still running after {HANG_S} s (blocked opening a FIFO)"
    errors = [ln for ln in done.stderr.splitlines() if ": error: " in ln]
    if done.returncode != 2 or "Traceback" in done.stderr or len(errors) != 1 or expected not in done.stderr:
        return f"{args}: exit {done.returncode}, {expected!r} expected, stderr:\n{done.stderr[-1200:]}"
    return None


def test_a_fifo_for_a_config_or_an_output_is_one_line_not_a_hang(tmp_path):
    table = cases(tmp_path)
    with ThreadPoolExecutor(max_workers=len(table)) as pool:
        problems = list(pool.map(lambda case: outcome(*case), table))
    assert [p for p in problems if p] == []


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (every write: no space left)")
def test_a_recording_onto_a_full_disk_ends_in_one_line():
    # Was "internal error: OSError ... (a bug: please report it)"
    done = subprocess.run(
        [sys.executable, "-m", "kinect_occlusion", "record", "/dev/full", "--seconds", "0.2"],
        capture_output=True,
        text=True,
        timeout=HANG_S,
        cwd=ROOT,
    )
    errors = [ln for ln in done.stderr.splitlines() if ": error: " in ln]
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-1200:]
    assert errors == [
        "kinect-occlusion record: error: record /dev/full: cannot write (No space left on device) — the "
        "recording is incomplete; free some space or record elsewhere"
    ]
