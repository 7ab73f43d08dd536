"""``replay`` on recordings and options nobody tried: one line and exit 2 before any worker starts.

Real ``kinect-occlusion`` processes on real .mkv files written with the project's writer.
"""

from __future__ import annotations

import csv
import subprocess

import numpy as np
import pytest
from harness import cli, start, stop, write_config

from kinect_occlusion.runtime.mask_saver import CSV_NAME
from kinect_occlusion.sources.mkv_writer import K4AMkvWriter, synthetic_calibration_json


def recording(path, captures: int, colour_until: int) -> None:
    """``captures`` depth captures with calibration, the first ``colour_until`` with colour too
    (0: no COLOR track at all, a recording made with the colour camera off)."""
    rng = np.random.default_rng(0)
    with K4AMkvWriter(
        path,
        color_mode="MJPG_720P" if colour_until else "OFF",
        depth_mode="NFOV_2X2BINNED",
        fps=15,
        calibration_json=synthetic_calibration_json(),
    ) as w:
        for i in range(captures):
            color = rng.integers(0, 255, (720, 1280, 3), np.uint8) if i < colour_until else None
            w.write(color, rng.integers(0, 5000, (288, 320), np.uint16), None, i * 66_667)


def test_a_recording_without_colour_is_refused_in_one_line(tmp_path, ipc_dir):
    # It used to run the whole pipeline, publish nothing and exit 0 ("no frames"): every frame lost
    # without a word (the models segment colour images; depth alone gives them nothing to do).
    rec = tmp_path / "depth only.mkv"
    recording(rec, captures=3, colour_until=0)
    cfg = write_config(tmp_path, ipc_dir, None, camera={"depth_mode": "NFOV_2X2BINNED"})
    out = tmp_path / "masks"
    r = cli("replay", str(rec), "--config", str(cfg), "--every-frame", "--save-masks", str(out))
    assert r.returncode == 2, r.stdout + r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert "no COLOR track" in line and "depth only.mkv" in line, r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    assert "started" not in r.stderr  # refused before any worker ran
    assert not (out / "masks.csv").exists()


def test_max_frames_zero_names_the_option_not_the_config_file(tmp_path, ipc_dir):
    cfg = write_config(tmp_path, ipc_dir, None)
    r = cli("replay", str(tmp_path / "unused.mkv"), "--config", str(cfg), "--max-frames", "0")
    assert r.returncode == 2, r.stdout + r.stderr
    line = r.stderr.strip().splitlines()[-1]
    # it blamed the user's config file for an option given on the command line
    assert "--max-frames 0" in line and "config.yaml" not in line, r.stderr
    assert "Traceback" not in r.stderr + r.stdout


def test_a_recording_of_no_captures_says_so(tmp_path, ipc_dir):
    # A recorder stopped before its first capture leaves headers, tracks and calibration, no frame;
    # the line was "cannot read the recording ([Errno 541478725] End of file: ...)"
    rec = tmp_path / "empty.mkv"
    with K4AMkvWriter(rec, color_mode="MJPG_720P", depth_mode="NFOV_2X2BINNED", fps=15):
        pass
    cfg = write_config(tmp_path, ipc_dir, None)
    for args in (["replay", str(rec), "--config", str(cfg)], ["info", str(rec)]):
        r = cli(*args)
        assert r.returncode == 2, r.stdout + r.stderr
        line = r.stderr.strip().splitlines()[-1]
        assert "no captures" in line and "Errno" not in line, r.stderr
        assert "Traceback" not in r.stderr + r.stdout


def test_every_frame_does_not_wait_for_masks_of_captures_without_colour(tmp_path, ipc_dir):
    # Colour stops after 2 captures, depth goes on for 4 more. Each depth-only capture took one of
    # capture's every-frame credits, which no mask could ever give back: the replay stalled
    # runtime.frame_timeout_s (60 s) per in_flight captures. They are rows saying "lost" instead.
    rec = tmp_path / "colour stops.mkv"
    recording(rec, captures=6, colour_until=2)
    cfg = write_config(tmp_path, ipc_dir, None, camera={"depth_mode": "NFOV_2X2BINNED"})
    out = tmp_path / "masks"
    proc = start(["replay", str(rec), "--config", str(cfg), "--every-frame", "--save-masks", str(out)])
    try:
        text, _ = proc.communicate(timeout=25)
    except subprocess.TimeoutExpired:
        code, text = stop(proc)
        pytest.fail(f"replay waited for masks of depth-only captures:\n{text[-2000:]}")
    assert proc.returncode == 0, text[-2000:]
    with (out / CSV_NAME).open(newline="") as f:
        results = {int(r["frame_id"]): r["result"] for r in csv.DictReader(f)}
    assert results.keys() == set(range(6))
    assert all(results[i] in ("fused", "fallback") for i in (0, 1)), results
    assert [results[i] for i in range(2, 6)] == ["lost"] * 4, results
    assert "Traceback" not in text
