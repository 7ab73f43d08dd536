"""Label Studio and COCO import, bad annotations, ROI/letterbox, deterministic splits."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from kinect_occlusion.errors import UserError
from kinect_occlusion.training.data import (
    load_dataset,
    prepare_sample,
    resolve_image,
    rle_decode,
    rle_string_to_counts,
    split_samples,
)

W, H = 64, 48
POLYS = {  # image name → polygons in pixels
    "scene_0000.png": [[[5, 5], [30, 6], [20, 30]], [[40, 10], [60, 10], [60, 40], [40, 40]]],
    "scene_0001.png": [[[10, 20], [50, 20], [30, 45]]],
    "scene_0002.png": [],
}


def fill(polys, h=H, w=W) -> np.ndarray:
    out = np.zeros((h, w), np.uint8)
    if polys:
        cv2.fillPoly(out, [np.asarray(p, np.int32) for p in polys], 1)
    return out


def write_images(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in POLYS:
        cv2.imwrite(str(folder / name), rng.integers(0, 255, (H, W, 3), dtype=np.uint8))


def ls_region(rid: str, poly, kind="polygonlabels") -> dict:
    pts = [[x / W * 100, y / H * 100] for x, y in poly]
    return {
        "id": rid,
        "type": kind,
        "original_width": W,
        "original_height": H,
        "value": {"points": pts, kind: ["pipe/cable"]},
    }


def ls_export(tmp_path: Path) -> Path:
    write_images(tmp_path / "images")
    tasks = []
    for i, (name, polys) in enumerate(POLYS.items()):
        regions = [ls_region(f"r{i}{j}", p) for j, p in enumerate(polys)]
        # Split the first image's regions over two annotations: they are merged
        anns = [{"id": 10 + i, "result": regions[:1]}, {"id": 20 + i, "result": regions[1:]}]
        tasks.append({"id": i + 1, "data": {"image": f"/data/upload/1/{i:08x}-{name}"}, "annotations": anns})
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps(tasks))
    return path


def rle_encode(mask: np.ndarray) -> list[int]:
    """Column-major runs, starting with zeros (the COCO convention)."""
    flat = mask.T.reshape(-1).astype(np.int8)
    change = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    runs = np.diff(np.concatenate([[0], change]))
    return [int(r) for r in runs]


def rle_to_string(counts: list[int]) -> str:
    out = []
    for i, x in enumerate(counts):
        if i > 2:
            x -= counts[i - 2]
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            out.append(chr(c + (0x20 if more else 0) + 48))
    return "".join(out)


def test_labelstudio_import_matches_fillpoly(tmp_path: Path) -> None:
    ds = load_dataset(ls_export(tmp_path))
    assert ds.format == "labelstudio" and not ds.report.skipped
    by_name = {s.name: s for s in ds.samples}
    assert set(by_name) == set(POLYS)
    for name, polys in POLYS.items():
        assert np.array_equal(by_name[name].target(), fill(polys)), name
        assert len(by_name[name].instances) == len(polys)
    assert by_name["scene_0000.png"].instances[0].label == "pipe/cable"


def test_coco_polygon_and_rle_match_fillpoly(tmp_path: Path) -> None:
    write_images(tmp_path)
    images, anns, k = [], [], 0
    for i, (name, polys) in enumerate(POLYS.items()):
        images.append({"id": i, "file_name": f"sub/{name}", "width": W, "height": H})
        for j, p in enumerate(polys):
            m = fill([p])
            # Cycle polygon, uncompressed RLE, compressed RLE over the annotations
            seg = [
                [[float(v) for xy in p for v in xy]],
                {"counts": rle_encode(m), "size": [H, W]},
                {"counts": rle_to_string(rle_encode(m)), "size": [H, W]},
            ][k % 3]
            k += 1
            anns.append({"id": 100 * i + j, "image_id": i, "category_id": 2, "segmentation": seg})
    path = tmp_path / "coco.json"
    path.write_text(
        json.dumps({"images": images, "annotations": anns, "categories": [{"id": 2, "name": "pipe/cable"}]})
    )
    ds = load_dataset(path)
    assert ds.format == "coco" and not ds.report.skipped
    for s in ds.samples:
        assert np.array_equal(s.target(), fill(POLYS[s.name])), s.name


def test_rle_known_values() -> None:
    # pycocotools' conventions: runs start with zeros, column-major, deltas from the 3rd run on
    assert rle_string_to_counts("054") == [0, 5, 4]
    m = rle_decode([0, 5, 4], 3, 3)
    assert m.tolist() == [[True, True, False], [True, True, False], [True, False, False]]
    counts = [3, 40, 2, 100, 7]
    assert rle_string_to_counts(rle_to_string(counts)) == counts
    with pytest.raises(ValueError):
        rle_decode([1, 2], 3, 3)


def test_bad_annotations_skipped_with_named_messages(tmp_path: Path, caplog) -> None:
    path = ls_export(tmp_path)
    tasks = json.loads(path.read_text())
    tasks[0]["annotations"][0]["result"].append(ls_region("tiny", [[1, 1], [5, 5]]))
    tasks[0]["annotations"][0]["result"].append(ls_region("far", [[1, 1], [500, 5], [5, 9]]))
    tasks[0]["annotations"][0]["result"].append({"id": "b", "type": "brushlabels", "value": {"rle": [1]}})
    tasks[1]["data"]["image"] = "/data/upload/1/missing.png"
    tasks.append({"id": 99, "data": {"image": "broken.png"}, "annotations": [{"id": 1, "result": []}]})
    tasks.append({"id": 100, "data": {"image": "scene_0000.png"}, "annotations": []})
    (tmp_path / "broken.png").write_bytes(b"not a png")
    path.write_text(json.dumps(tasks))
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(path)
    text = "\n".join(ds.report.skipped)
    assert "task 1 annotation 10 region tiny" in text and "region far" in text
    assert "task 2" in text and "missing.png" in text and "task 99" in text and "unreadable" in text
    assert ds.report.unsupported["brushlabels"] == 1 and ds.report.not_annotated == 1
    assert "annotations.json" in caplog.text and "brushlabels" in caplog.text
    assert sorted(s.name for s in ds.samples) == ["scene_0000.png", "scene_0002.png"]
    # The good regions of task 1 survive
    good = next(s for s in ds.samples if s.name == "scene_0000.png")
    assert np.array_equal(good.target(), fill(POLYS["scene_0000.png"]))


def test_resolve_image_rules(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    other = tmp_path / "elsewhere"
    other.mkdir()
    (tmp_path / "images" / "a.png").write_bytes(b"x")
    (other / "b.png").write_bytes(b"x")
    assert resolve_image("/data/upload/3/deadbeef-a.png", tmp_path, None) == tmp_path / "images" / "a.png"
    assert resolve_image("/data/local-files/?d=x/b.png", tmp_path, other) == other / "b.png"
    assert resolve_image("c.png", tmp_path, other) is None
    with pytest.raises(UserError):
        load_dataset(tmp_path / "nope.json")


def test_split_deterministic_and_from_file(tmp_path: Path) -> None:
    write_images(tmp_path)
    ds = load_dataset(ls_export(tmp_path))
    samples = ds.samples * 1
    many = [s for s in samples for _ in range(7)]
    for i, s in enumerate(many):
        many[i] = type(s)(f"{i:03d}.png", s.image_path, s.height, s.width, s.instances, s.ref)
    a, b = split_samples(many, seed=1), split_samples(list(reversed(many)), seed=1)
    names = {k: [s.name for s in v] for k, v in a.items()}
    assert names == {k: [s.name for s in v] for k, v in b.items()}
    assert (len(names["train"]), len(names["val"]), len(names["test"])) == (17, 2, 2)
    assert names != {k: [s.name for s in v] for k, v in split_samples(many, seed=2).items()}
    assert not set(names["train"]) & set(names["test"])
    spec = tmp_path / "split.json"
    spec.write_text(
        json.dumps({"train": ["scene_0000.png", "0000007f-scene_0001.png"], "test": ["scene_0002.png"]})
    )
    parts = split_samples(ds.samples, split_file=spec)
    assert [s.name for s in parts["train"]] == ["scene_0000.png"]  # hash-prefixed alias differs (i=1)
    assert [s.name for s in parts["test"]] == ["scene_0002.png"] and parts["val"] == []


@pytest.mark.parametrize(
    "text",
    ['{"train": "scene_0000.png"}', '{"train": [1]}', '{"train": [], "holdout": []}', "[]", "[" * 5000],
)
def test_split_file_of_another_shape_is_one_clear_error(tmp_path: Path, text: str) -> None:
    ds = load_dataset(ls_export(tmp_path))
    spec = tmp_path / "split.json"
    spec.write_text(text)
    with pytest.raises(UserError, match=r"split file .*split\.json: (must be|not a readable JSON)"):
        split_samples(ds.samples, split_file=spec)


def test_prepare_sample_letterbox_and_roi(tmp_path: Path) -> None:
    ds = load_dataset(ls_export(tmp_path))
    s = next(x for x in ds.samples if x.name == "scene_0001.png")
    p = prepare_sample(s, 32)
    assert p.image.shape == (32, 32, 3) and p.valid[:24].all() and not p.valid[24:].any()
    tgt = p.target()
    assert set(np.unique(tgt)) == {0, 1, 255} and (tgt[24:] == 255).all()
    expected = cv2.resize(fill(POLYS["scene_0001.png"]), (32, 24), interpolation=cv2.INTER_NEAREST)
    assert np.array_equal(tgt[:24], expected)
    box = prepare_sample(s, 32, roi="annotations", margin=0.0).roi
    assert box == (10, 20, 41, 26)
    assert prepare_sample(s, 32, roi=(8, 4, 30, 30)).roi == (8, 4, 30, 30)
