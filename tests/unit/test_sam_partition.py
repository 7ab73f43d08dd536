"""SAM partition: painting order, equality with the reference generator, checkpoint errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sam_fixtures import scene, tiny_sam  # noqa: F401  (fixture)
from segment_anything import SamAutomaticMaskGenerator

from kinect_occlusion.errors import CheckpointError
from kinect_occlusion.sam.partition import (
    PAPER_AMG,
    amg_kwargs,
    build_sam,
    build_tiny_sam,
    decoder_prompts,
    masks_to_labels,
    sam_partition,
)


def mask(shape, y0, y1, x0, x1, iou=0.9, stab=0.95):
    seg = np.zeros(shape, bool)
    seg[y0:y1, x0:x1] = True
    return {"segmentation": seg, "area": int(seg.sum()), "predicted_iou": iou, "stability_score": stab}


def reference_labels(masks: list[dict], shape) -> tuple[np.ndarray, np.ndarray]:
    """Independent construction: each pixel takes the smallest covering mask (later index on equal area)."""
    h, w = shape
    if not masks:
        return np.zeros(shape, np.int32), np.zeros((0, 2), np.float32)
    stack = np.stack([m["segmentation"] for m in masks])  # (n, H, W)
    areas = np.array([m["area"] for m in masks], np.int64)
    # Rank: smaller area wins; equal areas → higher index wins
    key = areas[:, None, None] * (len(masks) + 1) - np.arange(len(masks))[:, None, None]
    key = np.where(stack, key, np.iinfo(np.int64).max)
    winner = np.where(stack.any(0), key.argmin(0), -1)
    # Label numbers: winners ordered by paint order (area descending, index ascending)
    visible = sorted({int(i) for i in np.unique(winner) if i >= 0}, key=lambda i: (-areas[i], i))
    labels = np.zeros(shape, np.int32)
    for k, i in enumerate(visible, start=1):
        labels[winner == i] = k
    scores = np.array([[masks[i]["predicted_iou"], masks[i]["stability_score"]] for i in visible], np.float32)
    return labels, scores.reshape(-1, 2)


def test_finer_segments_win_and_hidden_segments_are_dropped():
    shape = (20, 30)
    big = mask(shape, 0, 20, 0, 20, iou=0.1)
    small = mask(shape, 5, 10, 5, 10, iou=0.2)
    hidden = mask(shape, 0, 20, 20, 25, iou=0.3)  # 100 px, fully covered by "cover"
    cover = mask(shape, 0, 20, 20, 25, iou=0.4)  # same area, later index → painted last
    labels, scores = masks_to_labels([small, big, hidden, cover], shape)
    assert labels.dtype == np.int32 and labels.shape == shape
    # Paint order: big (400) → hidden → cover (100 each) → small (25); hidden vanishes
    assert labels[0, 0] == 1 and labels[7, 7] == 3 and labels[0, 22] == 2
    assert (labels[:, 25:] == 0).all()
    assert set(np.unique(labels)) == {0, 1, 2, 3}
    np.testing.assert_allclose(scores[:, 0], [0.1, 0.4, 0.2])


def test_no_masks_gives_empty_partition():
    labels, scores = masks_to_labels([], (4, 5))
    assert (labels == 0).all() and scores.shape == (0, 2)


def test_matches_reference_generator_with_low_thresholds(tiny_sam):  # noqa: F811
    img = scene()
    kwargs = amg_kwargs(
        points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=0.95
    )
    ref_masks = SamAutomaticMaskGenerator(tiny_sam, **kwargs).generate(img)
    assert len(ref_masks) >= 3, "the tiny model should yield masks at zero thresholds"
    labels, scores = sam_partition(SamAutomaticMaskGenerator(tiny_sam, **kwargs), img)
    ref_labels, ref_scores = reference_labels(ref_masks, img.shape[:2])
    assert labels.max() >= 2
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_allclose(scores, ref_scores)


def test_matches_reference_generator_with_paper_thresholds(tiny_sam):  # noqa: F811
    img = scene(seed=1)
    kwargs = amg_kwargs(points_per_side=4)
    assert kwargs["pred_iou_thresh"] == 0.9 and kwargs["stability_score_thresh"] == 0.85
    ref_masks = SamAutomaticMaskGenerator(tiny_sam, **kwargs).generate(img)
    labels, scores = sam_partition(SamAutomaticMaskGenerator(tiny_sam, **kwargs), img)
    ref_labels, ref_scores = reference_labels(ref_masks, img.shape[:2])
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_allclose(scores, ref_scores)


def test_amg_kwargs_defaults_and_point_grids():
    assert amg_kwargs() == PAPER_AMG
    assert PAPER_AMG["points_per_side"] == 40 and PAPER_AMG["min_mask_region_area"] == 5
    grid = np.array([[0.5, 0.5]])
    kw = amg_kwargs(point_grids=[grid])
    assert kw["points_per_side"] is None and kw["point_grids"][0] is grid
    assert amg_kwargs(pred_iou_thresh=0.5)["pred_iou_thresh"] == 0.5


def test_decoder_prompts_counts_grid(tiny_sam):  # noqa: F811
    gen = SamAutomaticMaskGenerator(tiny_sam, **amg_kwargs())
    assert decoder_prompts(gen, (720, 1280)) == 1600


def test_tiny_sam_is_deterministic():
    a, b, c = build_tiny_sam(0), build_tiny_sam(0), build_tiny_sam(1)
    pa, pb, pc = (torch.cat([p.flatten() for p in m.parameters()]) for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)


def test_missing_checkpoint_names_path_and_key(tmp_path):
    path = tmp_path / "nope.pth"
    with pytest.raises(CheckpointError, match="sam.checkpoint") as err:
        build_sam("vit_b", str(path))
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_corrupt_checkpoint(tmp_path):
    path = tmp_path / "bad.pth"
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="unreadable") as err:
        build_sam("vit_b", str(path))
    assert str(path) in str(err.value)


def test_mismatched_checkpoint(tmp_path, monkeypatch):
    import segment_anything

    # A vit_b builder that makes the tiny model, so the test stays fast; the checkpoint is of another size
    registry = segment_anything.sam_model_registry
    monkeypatch.setitem(registry, "vit_b", lambda checkpoint=None: build_tiny_sam(0))
    path = tmp_path / "other.pth"
    torch.save(build_tiny_sam(0, embed_dim=16).state_dict(), path)
    with pytest.raises(CheckpointError, match="does not match sam.model_type=vit_b"):
        build_sam("vit_b", str(path))


def test_checkpoint_round_trip(tmp_path, monkeypatch):
    import segment_anything

    registry = segment_anything.sam_model_registry
    monkeypatch.setitem(registry, "vit_b", lambda checkpoint=None: build_tiny_sam(5))
    path = tmp_path / "tiny.pth"
    torch.save(build_tiny_sam(3).state_dict(), path)
    loaded = build_sam("vit_b", str(path), "cpu")
    expected = build_tiny_sam(3).state_dict()
    for name, p in loaded.state_dict().items():
        assert torch.equal(p, expected[name]), name
    assert not loaded.training
