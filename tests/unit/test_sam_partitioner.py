"""SamPartitioner: ROI crop, grid vs guided prompting, decoder-call accounting."""

from __future__ import annotations

import numpy as np
from sam_fixtures import scene, tiny_sam  # noqa: F401  (fixture)
from segment_anything import SamAutomaticMaskGenerator

from kinect_occlusion.sam.guided import guided_points
from kinect_occlusion.sam.partition import amg_kwargs, sam_partition
from kinect_occlusion.sam.partitioner import SamPartitioner

LOW = {"points_per_side": 4, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, "box_nms_thresh": 0.95}


def test_grid_on_roi_matches_partition_of_crop(tiny_sam):  # noqa: F811
    img = scene(120, 160)
    roi = (16, 8, 128, 96)
    part = SamPartitioner(tiny_sam, LOW)
    res = part(img, roi=roi)
    assert res.name == "sam/custom" and res.decoder_calls == 16 and res.ms > 0
    crop = img[8:104, 16:144]
    ref, ref_scores = sam_partition(SamAutomaticMaskGenerator(tiny_sam, **amg_kwargs(**LOW)), crop)
    np.testing.assert_array_equal(res.labels[8:104, 16:144], ref)
    np.testing.assert_allclose(res.scores, ref_scores)
    res.labels[8:104, 16:144] = 0
    assert not res.labels.any(), "labels outside the ROI must be 0"


def test_guided_without_occlusion_skips_sam(tiny_sam):  # noqa: F811
    img = scene()
    part = SamPartitioner(tiny_sam, LOW, guided=True)
    res = part(img, prob=np.zeros(img.shape[:2], np.float32))
    assert res.decoder_calls == 0 and not res.labels.any() and res.name == "sam/custom/guided"


def test_guided_prompts_fewer_points(tiny_sam):  # noqa: F811
    img = scene()
    prob = np.zeros(img.shape[:2], np.float32)
    prob[20:40, 30:60] = 0.95
    amg = {**LOW, "points_per_side": 8}
    part = SamPartitioner(tiny_sam, amg, guided=True, guided_kwargs={"dilate_px": 4})
    res = part(img, prob=prob)
    expected = len(guided_points(prob, grid=8, dilate_px=4))
    assert 0 < res.decoder_calls == expected < 64
    assert res.labels.shape == img.shape[:2]
    # Without a probability map the guided partitioner falls back to the grid
    assert part(img).decoder_calls == 64


def test_work_size_shrinks_then_restores_shape(tiny_sam):  # noqa: F811
    img = scene(120, 160)
    res = SamPartitioner(tiny_sam, LOW, work_size=64)(img)
    assert res.labels.shape == (120, 160) and res.labels.dtype == np.int32
    assert res.labels.max() >= 1


def test_sdpa_partition_equals_reference(tiny_sam):  # noqa: F811
    """SDPA attention gives the same partition as segment-anything's own attention."""
    import copy

    img = scene(120, 160)
    ref = SamPartitioner(tiny_sam, LOW)(img)
    fast = SamPartitioner(copy.deepcopy(tiny_sam), LOW, sdpa=True)(img)
    assert ref.labels.max() >= 2
    np.testing.assert_array_equal(fast.labels, ref.labels)
    np.testing.assert_allclose(fast.scores, ref.scores, rtol=1e-4, atol=1e-5)
