"""tools/make_synthetic_dataset.py: Label Studio export + COCO that match the rendered scenes."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from kinect_occlusion.sources.synthetic import LABELS, render_scene

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "make_synthetic_dataset.py"


def _tool():
    spec = importlib.util.spec_from_file_location("make_synthetic_dataset", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(out: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        str(TOOL),
        "--out",
        str(out),
        "--n",
        "3",
        "--seed",
        "7",
        "--width",
        "320",
        "--height",
        "240",
        *extra,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def _fill(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    cv2.fillPoly(m, [np.round(points).astype(np.int32)], 1)
    return m.astype(bool)


def test_label_studio_export_matches_the_scenes(tmp_path):
    out = tmp_path / "ds"
    proc = _run(out, "--coco")
    assert proc.returncode == 0, proc.stderr
    tasks = json.loads((out / "annotations.json").read_text())
    assert [t["id"] for t in tasks] == [1, 2, 3]
    tool = _tool()
    for i, task in enumerate(tasks):
        # Image path: Label Studio upload prefix + hash, file on disk under its basename
        m = re.fullmatch(r"/data/upload/1/([0-9a-f]{8})-(scene_\d{4}\.png)", task["data"]["image"])
        assert m and m.group(2) == f"scene_{i:04d}.png"
        rgb = cv2.cvtColor(cv2.imread(str(out / "images" / m.group(2))), cv2.COLOR_BGR2RGB)
        scene = render_scene(tool.scene_seed(7, i), 320, 240)
        assert np.array_equal(rgb, scene.rgb)
        # Polygons in percent; rasterised they give back the ground truth
        (annotation,) = task["annotations"]
        union = np.zeros((240, 320), bool)
        for r in annotation["result"]:
            assert r["type"] == "polygonlabels" and r["from_name"] == "label" and r["to_name"] == "image"
            assert (r["original_width"], r["original_height"], r["image_rotation"]) == (320, 240, 0)
            assert r["value"]["closed"] is True and r["value"]["polygonlabels"][0] in LABELS
            pts = np.array(r["value"]["points"])
            assert pts.min() >= 0 and pts.max() <= 100
            union |= _fill(pts / 100 * (320, 240), (240, 320))
        truth = scene.truth == 1
        assert (union & truth).sum() / (union | truth).sum() > 0.97
        assert len(annotation["result"]) == len(scene.instances)


def test_coco_export_is_consistent(tmp_path):
    out = tmp_path / "ds"
    assert _run(out, "--coco").returncode == 0
    coco = json.loads((out / "annotations_coco.json").read_text())
    assert [c["name"] for c in coco["categories"]] == list(LABELS)
    assert [im["file_name"] for im in coco["images"]] == [
        "scene_0000.png",
        "scene_0001.png",
        "scene_0002.png",
    ]
    ids = [a["id"] for a in coco["annotations"]]
    assert ids == list(range(1, len(ids) + 1))
    ls = json.loads((out / "annotations.json").read_text())
    assert len(ids) == sum(len(t["annotations"][0]["result"]) for t in ls)
    for a in coco["annotations"][:10]:
        poly = np.array(a["segmentation"][0]).reshape(-1, 2)
        mask = _fill(poly, (240, 320))
        assert abs(int(mask.sum()) - a["area"]) <= 0.05 * a["area"] + 2
        x, y, w, h = a["bbox"]
        assert poly[:, 0].min() >= x and poly[:, 0].max() <= x + w and 1 <= a["category_id"] <= len(LABELS)


def test_same_seed_same_bytes_and_no_coco_unless_asked(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert _run(a).returncode == 0 and _run(b).returncode == 0
    assert (a / "annotations.json").read_bytes() == (b / "annotations.json").read_bytes()
    assert (a / "images" / "scene_0002.png").read_bytes() == (b / "images" / "scene_0002.png").read_bytes()
    assert not (a / "annotations_coco.json").exists()


def test_bad_arguments_are_refused(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(TOOL), "--out", str(tmp_path), "--n", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "--n must be at least 1" in proc.stderr
