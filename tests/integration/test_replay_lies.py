"""``replay`` on recordings and options nobody tried: one line and exit 2 before any worker starts.

Real ``kinect-occlusion`` processes on real .mkv files written with the project's writer.
"""

from __future__ import annotations

import numpy as np
from harness import cli, write_config

from kinect_occlusion.sources.mkv_writer import K4AMkvWriter, synthetic_calibration_json


def depth_only_recording(path) -> None:
    """Three depth captures and no COLOR track (a recording made with the colour camera off)."""
    rng = np.random.default_rng(0)
    with K4AMkvWriter(
        path,
        color_mode="OFF",
        depth_mode="NFOV_2X2BINNED",
        fps=15,
        calibration_json=synthetic_calibration_json(),
    ) as w:
        for i in range(3):
            w.write(None, rng.integers(0, 5000, (288, 320), np.uint16), None, i * 66_667)


def test_a_recording_without_colour_is_refused_in_one_line(tmp_path, ipc_dir):
    # It used to run the whole pipeline, publish nothing and exit 0 ("no frames"): every frame lost
    # without a word (the models segment colour images; depth alone gives them nothing to do).
    rec = tmp_path / "depth only.mkv"
    depth_only_recording(rec)
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
