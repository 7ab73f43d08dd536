"""The device-resident generator (sam/amg.py) against segment-anything's reference, mask for mask."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sam_fixtures import blob_sam, scene
from segment_anything import SamAutomaticMaskGenerator
from segment_anything.utils.amg import MaskData, mask_to_rle_pytorch

from kinect_occlusion.sam.amg import FastMaskGenerator, KeptMasks, paint_labels, remove_small_regions_kept
from kinect_occlusion.sam.partition import amg_kwargs, masks_to_labels

RECORD_KEYS = ("area", "bbox", "predicted_iou", "point_coords", "stability_score", "crop_box")


@pytest.fixture(scope="module")
def sams():
    torch.set_num_threads(2)
    return {seed: blob_sam(seed) for seed in (0, 1, 2)}


def thresholds(all_ious: np.ndarray, survival: str) -> dict:
    """Filter thresholds that keep none, some or all of the masks kept at zero thresholds."""
    if survival == "all":
        return {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}
    if survival == "none":
        return {"pred_iou_thresh": float(all_ious.max()) + 1e-3, "stability_score_thresh": 0.0}
    # The median: the lowest is filtered, the highest always survives
    return {"pred_iou_thresh": float(np.median(all_ious)), "stability_score_thresh": 0.2}


def assert_same_records(ours: list[dict], ref: list[dict]) -> None:
    assert len(ours) == len(ref)
    for a, b in zip(ours, ref, strict=True):
        np.testing.assert_array_equal(a["segmentation"], b["segmentation"])
        for key in RECORD_KEYS:
            np.testing.assert_equal(a[key], b[key], err_msg=key)


@pytest.mark.parametrize(
    ("seed", "survival", "extra"),
    [
        (0, "all", {}),
        (1, "all", {"min_mask_region_area": 40}),
        (0, "some", {}),
        (2, "some", {"points_per_batch": 5}),
        (1, "none", {}),
        (2, "all", {"crop_n_layers": 1, "points_per_side": 2}),
    ],
)
def test_fast_generator_equals_reference(sams, seed, survival, extra):
    sam, img = sams[seed], scene(48, 64, seed)
    batch = extra.get("points_per_batch", "auto")
    grid = {"points_per_side": 4, "min_mask_region_area": 5, **extra}
    grid.pop("points_per_batch", None)
    zero = amg_kwargs(**grid, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    all_ious = FastMaskGenerator(sam, **zero).generate_kept(img).iou_preds.numpy()
    assert len(all_ious) >= 2, "the tiny model should keep masks at zero thresholds"
    kw = amg_kwargs(**grid, **thresholds(all_ious, survival))
    kw.pop("points_per_batch")
    ref = SamAutomaticMaskGenerator(sam, **kw, points_per_batch=64).generate(img)
    fast = FastMaskGenerator(sam, **kw, points_per_batch=batch)
    assert_same_records(fast.generate(img), ref)
    labels, scores = fast.labels(img)
    ref_labels, ref_scores = masks_to_labels(ref, img.shape[:2])
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_array_equal(scores, ref_scores)
    # The thresholds did what the case says
    kept_ious = sorted(m["predicted_iou"] for m in ref)
    expected = {
        "none": not ref,
        "some": bool(ref) and kept_ious[0] > all_ious.min(),
        "all": kept_ious == sorted(all_ious.tolist()),
    }
    assert expected[survival], (survival, kept_ious, all_ious)


def random_masks(rng: np.random.Generator, n: int, h: int, w: int) -> torch.Tensor:
    """Blobby masks with small islands and holes, some touching the border, some nearly full."""
    masks = np.zeros((n, h, w), bool)
    for i in range(n):
        y0, x0 = rng.integers(0, h - 4), rng.integers(0, w - 4)
        y1, x1 = rng.integers(y0 + 3, h + 1), rng.integers(x0 + 3, w + 1)
        masks[i, y0:y1, x0:x1] = True
        masks[i] ^= rng.random((h, w)) < 0.03  # speckle: 1-px holes inside, islands outside
    masks[0] = True  # full image but for a 2-px corner: the crop cannot decide that hole
    masks[0, 0, :2] = False
    masks[1] = False
    masks[1, 0, 0] = True  # one island in a corner: too few margin pixels to decide from the crop
    masks[2] = False
    masks[2, 5:20, 5:30] = True  # clean …
    masks[3] = masks[2]
    masks[3, h - 1, w - 1] = True  # … and the same with a speck: cleaned to a duplicate, suppressed
    return torch.from_numpy(masks)


def reference_postprocess(masks: torch.Tensor, boxes: torch.Tensor, min_area: int) -> list[np.ndarray]:
    data = MaskData(rles=mask_to_rle_pytorch(masks), boxes=boxes.numpy(), iou_preds=np.zeros(len(masks)))
    out = SamAutomaticMaskGenerator.postprocess_small_regions(data, min_area, 0.7)
    from segment_anything.utils.amg import rle_to_mask

    return [rle_to_mask(r) for r in out["rles"]]


@pytest.mark.parametrize("min_area", [2, 5, 30])
def test_small_region_cleanup_equals_reference(min_area):
    from segment_anything.utils.amg import batched_mask_to_box

    masks = random_masks(np.random.default_rng(min_area), 24, 40, 56)
    boxes = batched_mask_to_box(masks)
    n = len(masks)
    kept = KeptMasks(
        masks.clone(), torch.rand(n), torch.rand(n), boxes.clone(), torch.zeros(n, 2), boxes.clone()
    )
    ours = remove_small_regions_kept(kept, min_area, 0.7)
    ref = reference_postprocess(masks, boxes, min_area)
    assert len(ours) == len(ref) < n  # some masks changed and were then suppressed
    for a, b in zip(ours.masks.numpy(), ref, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not torch.equal(ours.masks, masks[: len(ours)])


def test_paint_labels_equals_masks_to_labels():
    masks = random_masks(np.random.default_rng(7), 150, 30, 40)
    masks[5] = masks[9]  # equal areas: the later one is painted last
    iou, stab = torch.rand(150), torch.rand(150)
    records = [
        {"segmentation": m, "area": int(m.sum()), "predicted_iou": i.item(), "stability_score": s.item()}
        for m, i, s in zip(masks.numpy(), iou, stab, strict=True)
    ]
    labels, scores = paint_labels(masks, iou, stab)
    ref_labels, ref_scores = masks_to_labels(records, (30, 40))
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_array_equal(scores, ref_scores)
    assert labels.max() < 150  # some segments were fully overpainted and dropped


def test_bad_points_per_batch_is_an_error(sams):
    with pytest.raises(ValueError, match="points_per_batch"):
        FastMaskGenerator(sams[0], points_per_batch=0, points_per_side=2)


@pytest.mark.parametrize("guided", [False, True])
def test_partitioner_fast_equals_reference(sams, guided):
    from kinect_occlusion.sam.partitioner import SamPartitioner

    img = scene(48, 64, 1)
    prob = np.zeros((48, 64), np.float32)
    prob[10:30, 12:40] = 0.6  # uncertain: guided prompts land here
    amg = {"points_per_side": 4, "pred_iou_thresh": 0.3, "stability_score_thresh": 0.1}
    fast, ref = (SamPartitioner(sams[1], amg, guided=guided, amg_impl=impl) for impl in ("fast", "reference"))
    a, b = fast(img, prob=prob, roi=(4, 2, 56, 44)), ref(img, prob=prob, roi=(4, 2, 56, 44))
    assert a.labels.max() >= 2
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.scores, b.scores)
    assert a.decoder_calls == b.decoder_calls > 0


@pytest.mark.parametrize(
    ("low", "input_size", "original_size"),
    [
        (256, (576, 1024), (720, 1280)),
        (256, (1024, 768), (96, 72)),
        (64, (768, 1024), (48, 64)),
        (256, (577, 1024), (721, 1280)),
    ],
)
def test_upsample_logits_is_postprocess_masks_bit_for_bit(sams, low, input_size, original_size):
    from kinect_occlusion.sam.amg import upsample_logits

    logits = torch.randn(3, 1, low, low, generator=torch.Generator().manual_seed(low)) * 5
    expected = sams[0].postprocess_masks(logits, input_size, original_size)
    assert torch.equal(upsample_logits(logits, 1024, input_size, original_size), expected)
