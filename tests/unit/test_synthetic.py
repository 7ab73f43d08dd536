"""Synthetic scenes: determinism, ground truth vs instances, polygons vs masks, animation, source."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from kinect_occlusion.errors import SourceError
from kinect_occlusion.sources import synthetic
from kinect_occlusion.sources.synthetic import LABELS, SyntheticSource, render_scene, scene_roi


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum()) / max(1, int((a | b).sum()))


def _fill(polygon: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    out = np.zeros(shape, np.uint8)
    cv2.fillPoly(out, [np.round(polygon).astype(np.int32)], 1)
    return out.astype(bool)


def test_same_seed_same_scene_even_after_cache_is_cleared():
    a = render_scene(3, 640, 480, t=0.4)
    synthetic._static_scene.cache_clear()
    b = render_scene(3, 640, 480, t=0.4)
    assert (
        np.array_equal(a.rgb, b.rgb) and np.array_equal(a.depth, b.depth) and np.array_equal(a.truth, b.truth)
    )
    assert [i.label for i in a.instances] == [i.label for i in b.instances]
    assert all(np.array_equal(x.polygon, y.polygon) for x, y in zip(a.instances, b.instances, strict=True))
    assert not np.array_equal(a.rgb, render_scene(4, 640, 480, t=0.4).rgb)


def test_arrays_have_the_documented_types_and_plausible_depth():
    s = render_scene(0)
    assert s.rgb.shape == (720, 1280, 3) and s.rgb.dtype == np.uint8
    assert s.truth.shape == (720, 1280) and s.truth.dtype == np.uint8 and set(np.unique(s.truth)) <= {0, 1}
    assert s.depth.shape == (720, 1280) and s.depth.dtype == np.uint16
    x, y, w, h = scene_roi(s)
    bed = s.depth[y + h // 10 : y + h // 5, x + w // 3 : x + 2 * w // 3]  # a strip of mattress
    assert 1150 <= np.median(bed) <= 1550
    assert np.median(s.depth[:5, :5]) > np.median(bed) + 300  # the floor is far below the bed
    # Occlusions lie on top of what is under them: closer than the mattress around
    assert np.median(s.depth[s.truth == 1]) < np.median(bed)


@pytest.mark.parametrize("seed", range(8))
def test_truth_is_the_union_of_instance_masks_inside_the_roi(seed):
    s = render_scene(seed, 320, 240)
    union = np.zeros((240, 320), bool)
    for inst in s.instances:
        assert inst.label in LABELS and inst.mask.shape == (240, 320) and inst.mask.dtype == bool
        union |= inst.mask
    assert np.array_equal(union, s.truth == 1)
    x, y, w, h = scene_roi(s)
    assert (
        not union[:y].any()
        and not union[y + h :].any()
        and not union[:, :x].any()
        and not union[:, x + w :].any()
    )


@pytest.mark.parametrize("seed", range(6))
def test_polygons_rasterise_to_their_masks(seed):
    s = render_scene(seed, 1280, 720)
    for inst in s.instances:
        assert inst.polygon.ndim == 2 and inst.polygon.shape[1] == 2 and inst.polygon.dtype == np.float32
        iou = _iou(_fill(inst.polygon, (720, 1280)), inst.mask)
        assert iou > (0.8 if inst.label == "pipe/cable" else 0.9), (inst.label, iou)


def test_every_scene_has_thin_cables():
    for seed in range(6):
        cables = [i for i in render_scene(seed).instances if i.label == "pipe/cable"]
        assert cables, seed
        for c in cables:
            half_width = cv2.distanceTransform(c.mask.astype(np.uint8), cv2.DIST_L2, 3).max()
            assert 1.0 <= half_width <= 6.5, half_width  # 3-10 px wide strokes
            x, y, w, h = cv2.boundingRect(c.mask.astype(np.uint8))
            assert max(w, h) > 40  # long, not a blob


def test_the_label_set_is_covered_across_seeds():
    seen = {inst.label for seed in range(40) for inst in render_scene(seed, 320, 240).instances}
    assert seen == set(LABELS)


def test_time_moves_cables_and_torso_but_keeps_the_instance_set():
    a, b = render_scene(5, 640, 480, t=0.0), render_scene(5, 640, 480, t=1.3)
    assert [i.label for i in a.instances] == [i.label for i in b.instances]
    assert not np.array_equal(a.rgb, b.rgb)
    assert not np.array_equal(a.depth, b.depth)  # breathing
    # Truth changes only where cables are (the other occlusions are fixed)
    cables = np.zeros((480, 640), bool)
    for inst in a.instances + b.instances:
        if inst.label == "pipe/cable":
            cables |= inst.mask
    changed = a.truth != b.truth
    assert changed.any() and not (changed & ~cables).any()


def test_source_yields_timestamped_frames_with_truth():
    with SyntheticSource(width=320, height=240, fps=20, seed=1, n_frames=5) as src:
        frames = list(src)
    assert [f.frame_id for f in frames] == [0, 1, 2, 3, 4]
    assert [f.ts_us for f in frames] == [0, 50_000, 100_000, 150_000, 200_000]
    f = frames[2]
    assert f.color.shape == (240, 320, 3) and f.depth.shape == (240, 320) and f.truth.shape == (240, 320)
    assert f.extra["aligned_to_color"] is True
    assert np.array_equal(f.color, render_scene(1, 320, 240, t=0.1).rgb)


def test_source_without_depth_and_realtime_pacing():
    start = time.monotonic()
    with SyntheticSource(width=160, height=120, fps=20, n_frames=4, realtime=True, depth=False) as src:
        frames = list(src)
    assert time.monotonic() - start >= 0.14  # 3 intervals of 50 ms
    assert all(f.depth is None for f in frames) and len(frames) == 4


def test_too_small_size_is_a_one_line_source_error():
    with pytest.raises(SourceError, match="synthetic_size"):
        SyntheticSource(width=32, height=20)
