"""``replay --every-frame --save-masks``: every frame fused with its own partition, deterministic,
equal to the in-process evaluate path; real processes, sockets and .mkv files, a tiny random model."""

from __future__ import annotations

import csv
import subprocess

import numpy as np
import pytest
from conftest import wait_for
from harness import cli, start, stop, tiny_checkpoint, write_config, write_recording

from kinect_occlusion.runtime.mask_saver import COLUMNS, CSV_NAME, encode_png, png_name

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny checkpoint, a 3-frame and a 1-frame recording (made once for the module)."""
    d = tmp_path_factory.mktemp("every-frame")
    return {
        "model": tiny_checkpoint(d / "model.pt"),
        "rec3": (d / "rec3.mkv", write_recording(d / "rec3.mkv", n_frames=3)),
        "rec1": (d / "rec1.mkv", write_recording(d / "rec1.mkv", n_frames=1)),
    }


def replay(rec, cfg, out, *extra: str, env: dict | None = None) -> tuple[int, str]:
    """Run ``replay REC --every-frame --save-masks OUT`` to its end (a real pipeline)."""
    args = ["replay", str(rec), "--config", str(cfg), "--every-frame", "--save-masks", str(out), *extra]
    proc = start(args, env=env)
    try:
        out_text, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        out_text, _ = proc.communicate()
        pytest.fail(f"replay --every-frame did not end within 120 s:\n{out_text[-3000:]}")
    return proc.returncode, out_text


def rows(folder) -> list[dict]:
    with (folder / CSV_NAME).open(newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames or ()) == COLUMNS
        return sorted(reader, key=lambda r: int(r["frame_id"]))


def in_process_masks(cfg_path, rec) -> list[bytes]:
    """The same frames decoded here, through evaluate's path with the same predictor and partitioner."""
    from kinect_occlusion.config import load_config
    from kinect_occlusion.deeplab.worker import build_predictor
    from kinect_occlusion.sam.worker import build
    from kinect_occlusion.sources.mkv import MkvSource
    from kinect_occlusion.training.evaluate import evaluate_image

    cfg = load_config(cfg_path)
    predictor, _ = build_predictor(cfg.deeplab)
    partitioner = build(cfg.sam)
    out = []
    with MkvSource(rec, realtime=False) as source:
        for frame in source:
            roi = cfg.roi.resolve(frame.color.shape[1], frame.color.shape[0])
            _, _, fused = evaluate_image(predictor, partitioner, frame.color, roi, wire=True)
            out.append(encode_png(fused))
    return out


def test_every_frame_is_fused_identical_across_runs_and_equal_to_the_in_process_path(
    tmp_path, ipc_dir, files
):
    rec, _ = files["rec3"]
    cfg = write_config(tmp_path, ipc_dir, files["model"])
    runs = [tmp_path / "run1", tmp_path / "run2"]
    # the second run loops: 7 frames over two loop boundaries (each pass must give the same masks)
    for out, extra, n in zip(runs, [(), ("--loop", "--max-frames", "7")], (3, 7), strict=True):
        code, text = replay(rec, cfg, out, *extra)
        assert code == 0, text[-3000:]
        assert "masks written" in text and f"{n} fused" in text and "given up" not in text, text[-2000:]
    looped = rows(runs[1])  # one row per frame of every pass, each with its own partition
    assert [(r["frame_id"], r["result"], r["partition_frame_id"]) for r in looped] == [
        (str(i), "fused", str(i)) for i in range(7)
    ]
    stamps = [int(r["ts_us"]) for r in looped]
    assert stamps == sorted(set(stamps)), stamps  # strictly increasing: no step back at a boundary
    table = rows(runs[0])
    assert [r["frame_id"] for r in table] == ["0", "1", "2"]
    assert {r["result"] for r in table} == {"fused"}
    assert [r["partition_frame_id"] for r in table] == ["0", "1", "2"]  # each frame's own partition
    assert all(r["partition_age_ms"] == "0.0" and r["partitioner"] == "superpixel/seeds" for r in table)
    assert len({r["ts_us"] for r in table}) == 3 and table[0]["checkpoint"] == "model.pt"
    assert len(table[0]["checkpoint_sha256"]) == 64
    saved = [
        [(out / png_name(i)).read_bytes() for i in range(n)] for out, n in zip(runs, (3, 7), strict=True)
    ]
    assert encode_png(np.zeros((720, 1280), np.uint8)) not in saved[0]  # masks with content
    assert len(set(saved[0])) == 3  # three different masks (so the next line can fail)
    assert saved[1] == [saved[0][i % 3] for i in range(7)]  # two runs, every pass, byte for byte
    assert saved[0] == in_process_masks(cfg, rec)  # the in-process evaluate path, byte for byte


def test_a_one_frame_recording_gives_one_fused_mask(tmp_path, ipc_dir, files):
    rec, _ = files["rec1"]
    cfg = write_config(tmp_path, ipc_dir, files["model"])
    code, text = replay(rec, cfg, tmp_path / "masks")
    assert code == 0, text[-3000:]
    table = rows(tmp_path / "masks")
    assert [(r["frame_id"], r["result"]) for r in table] == [("0", "fused")]
    assert (tmp_path / "masks" / "000000.png").is_file()


def test_a_partition_worker_that_fails_gives_fallback_rows_not_a_hang(tmp_path, ipc_dir, files):
    rec, _ = files["rec3"]
    cfg = write_config(tmp_path, ipc_dir, files["model"], runtime={"frame_timeout_s": 1.0})
    out = tmp_path / "masks"
    code, text = replay(rec, cfg, out, env={"KINECT_OCCLUSION_FAULT": "sam=raise"})
    assert code == 0, text[-3000:]
    assert [(r["frame_id"], r["result"]) for r in rows(out)] == [(str(i), "fallback") for i in range(3)]
    assert all(r["partition_frame_id"] == "" for r in rows(out))
    assert "no partition of its own within 1 s: coarse-only (fallback)" in text
    assert len(list(out.glob("*.png"))) == 3


def test_an_unusable_folder_is_one_line_and_exit_2(tmp_path, ipc_dir, files):
    rec, _ = files["rec1"]
    cfg = write_config(tmp_path, ipc_dir, files["model"])
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    used = tmp_path / "used"
    used.mkdir()
    (used / "000000.png").write_bytes(b"old")
    for target, says in ((a_file, "is a file, not a folder"), (used, "already holds masks (1 files)")):
        r = cli("replay", str(rec), "--config", str(cfg), "--every-frame", "--save-masks", str(target))
        assert r.returncode == 2, r.stderr
        assert says in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "Traceback" not in r.stderr
    assert (used / "000000.png").read_bytes() == b"old"  # nothing overwritten without --overwrite


def test_without_every_frame_the_csv_names_every_frame_that_got_no_mask(tmp_path, ipc_dir, files):
    rec, _ = files["rec3"]
    cfg = write_config(tmp_path, ipc_dir, files["model"])
    out = tmp_path / "masks"
    args = ["replay", str(rec), "--config", str(cfg), "--save-masks", str(out)]
    proc = start(args, env={"KINECT_OCCLUSION_FAULT": "deeplab=raise"})  # no coarse mask, so no mask at all
    text, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, text[-3000:]
    assert [(r["frame_id"], r["result"], r["png"]) for r in rows(out)] == [
        (str(i), "dropped", "") for i in range(3)
    ]
    assert not list(out.glob("*.png"))


def test_sigterm_keeps_every_mask_done_and_names_the_rest(tmp_path, ipc_dir, files):
    rec = tmp_path / "rec30.mkv"
    write_recording(rec, n_frames=30)
    cfg = write_config(tmp_path, ipc_dir, files["model"])
    out = tmp_path / "masks"
    proc = start(
        [
            "replay",
            str(rec),
            "--config",
            str(cfg),
            "--every-frame",
            "--rate",
            "realtime",
            "--save-masks",
            str(out),
        ]
    )
    try:
        assert wait_for(lambda: len(list(out.glob("0*.png"))) >= 2, timeout=60), "no masks written"
    finally:
        code, text = stop(proc)
    assert code == 0, text[-3000:]
    table = rows(out)
    done = {r["frame_id"] for r in table if r["result"] == "fused"}
    assert len(done) >= 2 and {p.stem.lstrip("0") or "0" for p in out.glob("*.png")} == done
    assert [int(r["frame_id"]) for r in table] == list(range(len(table)))  # no gap, no repeat
    assert {r["result"] for r in table} <= {"fused", "stopped"} and len(table) < 30
    assert not list(out.glob("*.part"))
