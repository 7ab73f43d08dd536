"""Superpixel partition, the superpixel partitioner, the factory and change detection."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from kinect_occlusion.config import SamConfig
from kinect_occlusion.errors import CheckpointError
from kinect_occlusion.sam.partitioner import (
    SuperpixelPartitioner,
    build_partitioner,
    frame_changed,
    small_gray,
)
from kinect_occlusion.sam.superpixel import compact_labels, superpixel_partition


def two_tone(h: int = 120, w: int = 160, seed: int = 0) -> np.ndarray:
    """Textured image split by a strong vertical edge at w/2 + 7 (off any regular grid)."""
    rng = np.random.default_rng(seed)
    img = (rng.random((h, w, 3)) * 30).astype(np.uint8)
    img[:, w // 2 + 7 :] += np.array([200, 60, 150], np.uint8)
    return img


@pytest.mark.parametrize("method", ["seeds", "slic", "felzenszwalb"])
@pytest.mark.parametrize("work_scale", [1.0, 0.5])
def test_labels_compact_and_follow_edges(method, work_scale):
    img = two_tone()
    labels = superpixel_partition(img, method, n_segments=60, work_scale=work_scale)
    assert labels.dtype == np.int32 and labels.shape == img.shape[:2]
    n = int(labels.max())
    assert labels.min() == 1 and np.array_equal(np.unique(labels), np.arange(1, n + 1))
    assert n >= 2
    # Achievable accuracy: labelling each superpixel by its majority side gets almost every pixel right
    right = np.zeros(labels.shape, bool)
    right[:, img.shape[1] // 2 + 7 :] = True
    n_right = np.bincount(labels.ravel(), weights=right.ravel(), minlength=n + 1)
    size = np.bincount(labels.ravel(), minlength=n + 1)
    accuracy = np.maximum(n_right, size - n_right).sum() / labels.size
    assert accuracy >= 0.98, (method, accuracy)


@pytest.mark.parametrize("method", ["seeds", "slic"])
def test_segment_count_tracks_target(method):
    img = (np.random.default_rng(1).random((180, 240, 3)) * 255).astype(np.uint8)
    few = superpixel_partition(img, method, n_segments=30, work_scale=1.0).max()
    many = superpixel_partition(img, method, n_segments=300, work_scale=1.0).max()
    assert many > 2 * few


def test_bad_arguments():
    img = two_tone()
    with pytest.raises(ValueError, match="unknown superpixel method"):
        superpixel_partition(img, "watershed")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="work_scale"):
        superpixel_partition(img, work_scale=0)
    with pytest.raises(ValueError, match="RGB"):
        superpixel_partition(img[..., 0])


def test_compact_labels_keeps_order():
    out = compact_labels(np.array([[7, 3], [3, 42]]), start=1)
    np.testing.assert_array_equal(out, [[2, 1], [1, 3]])


def test_partitioner_roi_zero_outside():
    img = two_tone()
    part = SuperpixelPartitioner("seeds", n_segments=40, work_scale=1.0)
    res = part(img, roi=(20, 10, 100, 80))
    assert res.name == "superpixel/seeds" and res.decoder_calls == 0 and res.scores.shape == (0, 2)
    assert res.labels.shape == img.shape[:2] and res.ms > 0
    inside = res.labels[10:90, 20:120]
    assert inside.min() >= 1
    res.labels[10:90, 20:120] = 0
    assert not res.labels.any()


def test_roi_clipped_to_frame_and_outside_rejected():
    rgb = np.random.default_rng(0).integers(0, 255, (50, 100, 3), dtype=np.uint8)
    part = SuperpixelPartitioner("slic", n_segments=4, work_scale=1.0)
    labels = part(rgb, roi=(60, 20, 100, 100)).labels
    assert labels[20:, 60:].all() and not labels[:20].any() and not labels[:, :60].any()
    with pytest.raises(ValueError, match="nothing inside the 100×50 frame"):
        part(rgb, roi=(200, 0, 10, 10))


def test_factory_auto_without_checkpoint_uses_superpixels(caplog):
    with caplog.at_level(logging.INFO, logger="kinect_occlusion.sam.partitioner"):
        part = build_partitioner(SamConfig(superpixel={"method": "slic", "n_segments": 50}))
    assert isinstance(part, SuperpixelPartitioner) and part.name == "superpixel/slic"
    assert "no sam.checkpoint configured" in caplog.text
    assert part(two_tone()).labels.max() >= 2


def test_factory_sam_without_checkpoint_is_an_error():
    with pytest.raises(CheckpointError, match="sam.checkpoint"):
        build_partitioner(SamConfig(partitioner="sam"))


def test_factory_auto_with_missing_checkpoint_names_it(tmp_path):
    path = str(tmp_path / "sam_vit_b.pth")
    with pytest.raises(CheckpointError, match="sam.checkpoint") as err:
        build_partitioner(SamConfig(checkpoint=str(path), device="cpu"))
    assert path in str(err.value)


def test_frame_changed():
    img = two_tone()
    a = small_gray(img)
    assert a.dtype == np.float32 and a.shape[1] == 64
    assert not frame_changed(a, small_gray(img), 1.0)
    brighter = np.clip(img.astype(np.int16) + 20, 0, 255).astype(np.uint8)
    assert frame_changed(a, small_gray(brighter), 5.0)
    assert not frame_changed(a, small_gray(brighter), 40.0)
    assert frame_changed(None, a, 1.0)
    assert frame_changed(a, small_gray(img[:60]), 1.0)


TINY_CROPS = [(1, 1), (2, 2), (8, 6), (15, 40), (16, 12), (20, 15), (32, 24), (40, 30), (64, 48), (33, 35)]
THIN_CROPS = [(640, 16), (16, 640), (1629, 29), (4000, 16)]
# Runs in a child: a case with "roi" partitions a 160×120 frame through SuperpixelPartitioner
GUARD_CHILD = r"""
import json, sys
import numpy as np
from kinect_occlusion.sam.partitioner import SuperpixelPartitioner
from kinect_occlusion.sam.superpixel import superpixel_partition
rng = np.random.default_rng(0)
for method, w, h, n, scale, roi in json.loads(sys.argv[1]):
    print("case", method, w, h, n, scale, roi, flush=True)
    img = rng.integers(0, 256, (h, w, 3), np.uint8)
    if roi is None:
        labels = superpixel_partition(img, method, n, work_scale=scale)
    else:
        x, y, rw, rh = roi
        full = SuperpixelPartitioner(method, n, scale)(img, roi=roi).labels
        outside = full.copy()
        outside[y : y + rh, x : x + rw] = 0
        assert not outside.any(), "labels outside the ROI"
        labels = full[y : y + rh, x : x + rw]
        h, w = rh, rw
    k = int(labels.max())
    assert labels.dtype == np.int32 and labels.shape == (h, w), (labels.dtype, labels.shape)
    assert labels.min() == 1 and np.array_equal(np.unique(labels), np.arange(1, k + 1)), k
    print("ok", k, flush=True)
print("done", flush=True)
"""


def run_guarded(cases: list, timeout: float = 60.0) -> list[int]:
    """Partition ``cases`` in a child process (a hang or a segfault must not take pytest with it).

    Returns the segment count of each case.
    """
    import json
    import subprocess
    import sys

    try:
        proc = subprocess.run(
            [sys.executable, "-c", GUARD_CHILD, json.dumps(cases)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        pytest.fail(f"superpixel partition hung; last lines: {out.splitlines()[-2:]}")
    last = proc.stdout.splitlines()[-2:]
    assert proc.returncode == 0, f"exit {proc.returncode} at {last}: {proc.stderr[-300:]}"
    counts = [int(line.split()[1]) for line in proc.stdout.splitlines() if line.startswith("ok ")]
    assert len(counts) == len(cases) and proc.stdout.endswith("done\n")
    return counts


@pytest.mark.parametrize("method", ["seeds", "slic", "felzenszwalb"])
def test_tiny_and_thin_crops_return_promptly_with_valid_labels(method):
    cases = [
        [method, w, h, n, scale, None]
        for (w, h) in TINY_CROPS + THIN_CROPS
        for n in (2, 100, 300)
        for scale in (1.0, 0.5)
    ]
    run_guarded(cases)


def test_below_the_minimum_side_is_one_segment_and_scaling_stops_there():
    from kinect_occlusion.sam.superpixel import MIN_SIDE

    cases = [
        ["seeds", 200, MIN_SIDE - 1, 100, 1.0, None],
        # 40×30 at work_scale 0.5 would be 20×15: the work size stays at MIN_SIDE, labels still vary
        ["seeds", 40, 30, 100, 0.5, None],
        # a 16×12 ROI (as one forged CoarseMask can ask for) is one segment, zero outside
        ["seeds", 160, 120, 300, 0.5, [50, 40, 16, 12]],
    ]
    one, several, roi = run_guarded(cases)
    assert one == 1 and several >= 2 and roi == 1


def test_seeds_segment_count_is_lowered_to_what_fits():
    from kinect_occlusion.sam.superpixel import seeds_segments

    assert seeds_segments(640, 360, 300) == 300
    assert seeds_segments(32, 32, 300) == 150  # 300 leaves OpenCV one block level: it segfaults
    assert seeds_segments(4000, 16, 10) is None  # no seed row fits: Felzenszwalb serves
