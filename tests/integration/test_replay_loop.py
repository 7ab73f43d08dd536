"""``replay --loop --every-frame --save-masks``: every frame of every pass gets its own mask, across
the loop boundary (frame ids and timestamps keep increasing, credit comes back, no stall); real
processes, sockets and .mkv files, a tiny random model."""

from __future__ import annotations

import csv

import pytest
from harness import run_to_end, start, tiny_checkpoint, write_config, write_recording

from kinect_occlusion.runtime.mask_saver import CSV_NAME, png_name

pytestmark = pytest.mark.slow

PASS = 4  # frames in the recording
FRAMES = 2 * PASS + 2  # two passes and a half: two loop boundaries


def test_every_frame_of_every_pass_gets_its_own_mask(tmp_path, ipc_dir):
    rec = tmp_path / "rec.mkv"
    write_recording(rec, n_frames=PASS)
    # A frame stuck at the boundary would be given up after 10 s and show as a 'lost' row
    cfg = write_config(
        tmp_path, ipc_dir, tiny_checkpoint(tmp_path / "model.pt"), runtime={"frame_timeout_s": 10}
    )
    out = tmp_path / "masks"
    args = ["--loop", "--max-frames", str(FRAMES), "--every-frame", "--save-masks", str(out)]
    code, text = run_to_end(start(["replay", str(rec), "--config", str(cfg), *args]), what="replay --loop")
    assert code == 0, text[-3000:]
    assert f"{FRAMES} fused" in text and "given up" not in text, text[-3000:]
    with (out / CSV_NAME).open(newline="") as f:
        table = list(csv.DictReader(f))
    assert sorted(int(r["frame_id"]) for r in table) == list(range(FRAMES))  # one row each, none twice
    table.sort(key=lambda r: int(r["frame_id"]))
    assert {r["result"] for r in table} == {"fused"}
    assert [r["partition_frame_id"] for r in table] == [r["frame_id"] for r in table]  # its own partition
    stamps = [int(r["ts_us"]) for r in table]
    assert stamps == sorted(set(stamps)), stamps  # strictly increasing: no step back at a boundary
    # Every-frame masks are deterministic: each pass gives the first pass's masks, byte for byte
    masks = [(out / png_name(i)).read_bytes() for i in range(FRAMES)]
    assert masks == [masks[i % PASS] for i in range(FRAMES)]
    assert len(set(masks[:PASS])) > 1  # and the frames differ (a check that can fail)
