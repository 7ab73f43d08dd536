"""Annotation files of the wrong shape: every bad entry is skipped with a line, nothing raises."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from kinect_occlusion.errors import UserError
from kinect_occlusion.training.data import load_dataset

POLYGON = {
    "type": "polygonlabels",
    "value": {"points": [[10, 10], [60, 10], [60, 60]], "polygonlabels": ["arm"]},
}


@pytest.fixture
def image(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((40, 60, 3), np.uint8))
    return "a.png"


def load(tmp_path, content):
    path = tmp_path / "data.json"
    path.write_text(json.dumps(content))
    return load_dataset(path)


def test_label_studio_entries_of_the_wrong_type_are_skipped(tmp_path, image):
    good = {"id": 9, "data": {"image": image}, "annotations": [{"id": 1, "result": [POLYGON]}]}
    tasks = [
        {"data": 5, "annotations": "x"},
        3,
        None,
        {"data": {"image": image}, "annotations": [5, {"result": 3}]},
        {"data": {"image": image}, "annotations": [{"result": [5, {"type": "polygonlabels", "value": 3}]}]},
        {"data": {"image": image}, "annotations": [{"result": [{**POLYGON, "value": {"points": "xy"}}]}]},
        good,
    ]
    ds = load(tmp_path, tasks)
    assert [s.ref for s in ds.samples] == ["task #3", "task #4", "task #5", "task 9"]
    assert [len(s.instances) for s in ds.samples] == [0, 0, 0, 1]
    assert ds.samples[3].instances[0].label == "arm"
    assert len(ds.report.skipped) == 7  # 3 tasks, 1 result list, 2 regions, 1 malformed polygon


def test_coco_entries_of_the_wrong_type_are_skipped(tmp_path, image):
    coco = {
        "images": [
            5,
            {"id": 1},
            {"id": [2], "file_name": image},
            {"id": 3, "file_name": image, "width": "x"},
        ],
        "annotations": ["x", {"image_id": [1]}, {"image_id": 3, "segmentation": "q"}],
        "categories": [3, {"name": "no id"}],
    }
    ds = load(tmp_path, coco)
    assert [s.ref for s in ds.samples] == ["image [2]", "image 3"]
    assert all(s.instances == [] for s in ds.samples)
    huge = {"size": [10**6, 10**6], "counts": "0"}  # would allocate a terabyte
    coco = {"images": [{"id": 1, "file_name": image}], "annotations": [{"image_id": 1, "segmentation": huge}]}
    ds = load(tmp_path, coco)
    assert ds.samples[0].instances == [] and "out of range" in ds.report.skipped[-1]


@pytest.mark.parametrize("content", [{"images": 5, "annotations": 7}, {"images": [], "annotations": {}}])
def test_coco_lists_that_are_not_lists_are_one_user_error(tmp_path, content):
    with pytest.raises(UserError, match="must be lists"):
        load(tmp_path, content)


def test_json_nested_too_deeply_is_one_user_error(tmp_path):
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(UserError, match="cannot read annotations"):
        load_dataset(tmp_path / "deep.json")
