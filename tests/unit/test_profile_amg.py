"""tools/profile_amg.py: per-stage CPU seconds of both generators on a tiny SAM, label maps equal."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "profile_amg.py"


def _tool():
    spec = importlib.util.spec_from_file_location("profile_amg", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_profile_rows_split_the_time_into_stages(capsys):
    assert _tool().main(["--model", "tiny", "--side", "2", "--levels", "all"]) == 0
    out = capsys.readouterr().out
    header = next(line.split() for line in out.splitlines() if line.strip().startswith("row"))
    rows = {
        line.split()[1]: dict(zip(header[1:], map(float, line.split()[2:]), strict=True))
        for line in out.splitlines()
        if line.strip().startswith("all ")
    }
    assert set(rows) == {"reference", "ours"}
    for secs in rows.values():
        assert secs["total"] > 0
        assert (
            abs(sum(v for k, v in secs.items() if k != "total") - secs["total"]) < 0.06
        )  # 11 columns, 2 decimals
    assert "identical True" in out


def test_each_generator_s_decoder_is_counted():
    from sam_fixtures import scene
    from segment_anything import SamAutomaticMaskGenerator

    from kinect_occlusion.sam.amg import FastMaskGenerator
    from kinect_occlusion.sam.partition import build_tiny_sam, sam_partition

    tool, sam = _tool(), build_tiny_sam(0)
    kw = {"points_per_side": 2, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}
    ref = SamAutomaticMaskGenerator(sam, **kw)
    calls = {"reference": lambda rgb: sam_partition(ref, rgb), "ours": FastMaskGenerator(sam, **kw).labels}
    for name, call in calls.items():
        secs, (labels, _) = tool.profile_call(call, scene(48, 64))
        assert labels.max() > 0, name
        assert secs["decoder"] > 0, f"{name}: MaskDecoder / decode_tokens + decode_masks"
        assert secs["upsample"] > 0 and secs["paint"] > 0, name
    assert secs["rle+cat"] < 0.01  # ours makes no RLEs


def test_factored_row_is_profiled_next_to_ours(capsys):
    assert (
        _tool().main(["--model", "tiny", "--side", "2", "--levels", "all", "--arithmetic", "factored"]) == 0
    )
    out = capsys.readouterr().out
    rows = [line.split()[1] for line in out.splitlines() if line.strip().startswith("all ")]
    assert rows == ["reference", "ours", "factored"]
    agree = float(out.split("labels agree with the reference on ")[1].split(" %")[0])
    assert agree >= 99.9
