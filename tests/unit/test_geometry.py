"""One geometry module: ROI clipping with one behaviour everywhere, label resizing by value, the
network input normalisation and the device choice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from kinect_occlusion import geometry as g
from kinect_occlusion.config import RoiConfig
from kinect_occlusion.deeplab.predict import preprocess
from kinect_occlusion.errors import UserError
from kinect_occlusion.sam.partitioner import SuperpixelPartitioner
from kinect_occlusion.training.data import Sample, roi_box

W, H = 100, 60  # a non-square frame catches a swapped (width, height)

# ---------------------------------------------------------------------------- clip_roi


@pytest.mark.parametrize(
    "roi, box",
    [
        (None, (0, 0, W, H)),
        ((10, 20, 30, 15), (10, 20, 30, 15)),  # inside: unchanged
        ((-10, 50, 40, 100), (0, 50, 30, 10)),  # left and bottom cut: the intersection, not shifted
        ((90, -5, 50, 10), (90, 0, 10, 5)),  # right and top cut
        ((-5, -5, 500, 500), (0, 0, W, H)),  # covers the frame
        ((99, 59, 1, 1), (99, 59, 1, 1)),  # the last pixel
    ],
)
def test_clip_roi_is_the_intersection_with_the_frame(roi, box):
    assert g.clip_roi(roi, W, H) == box


@pytest.mark.parametrize(
    "roi",
    [(W, 0, 10, 10), (0, H, 10, 10), (-20, 0, 20, 10), (0, -10, 10, 10), (5, 5, 0, 10), (5, 5, 10, -1)],
)
def test_clip_roi_with_nothing_inside_the_frame_is_one_value_error(roi):
    with pytest.raises(ValueError, match=r"nothing inside the 100×60 frame") as exc:
        g.clip_roi(roi, W, H)
    assert "\n" not in str(exc.value)


def _sample(width: int, height: int) -> Sample:
    return Sample(
        name="img7", ref="task 7", image_path=Path("img7.png"), width=width, height=height, instances=[]
    )


@pytest.mark.parametrize("roi", [(-10, 20, 50, 100), (60, -5, 50, 40), (10, 20, 40, 32)])
def test_every_stage_clips_the_same_way(roi):
    """Config, training, the coarse and the fine branch all get the box ``clip_roi`` gives."""
    expected = g.clip_roi(roi, W, H)
    assert RoiConfig(mode="fixed", box=roi).resolve(W, H) == expected
    assert roi_box(_sample(W, H), roi) == expected
    rgb = np.zeros((H, W, 3), np.uint8)
    assert preprocess(rgb, roi, 32)[2] == expected
    rgb = np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)
    labels = SuperpixelPartitioner("slic", n_segments=4, work_scale=1.0)(rgb, roi=roi).labels
    x, y, w, h = expected
    inside = np.zeros((H, W), bool)
    inside[y : y + h, x : x + w] = True
    assert labels[inside].all() and not labels[~inside].any()


def test_every_stage_refuses_an_roi_outside_the_frame():
    outside = (W + 5, 0, 40, 40)
    with pytest.raises(ValueError, match="nothing inside"):
        RoiConfig(mode="fixed", box=outside).resolve(W, H)
    with pytest.raises(UserError, match="--roi: .*nothing inside the 100×60 frame of image img7"):
        roi_box(_sample(W, H), outside)
    with pytest.raises(ValueError, match="nothing inside"):
        preprocess(np.zeros((H, W, 3), np.uint8), outside, 32)
    with pytest.raises(ValueError, match="nothing inside"):
        SuperpixelPartitioner("slic", n_segments=4)(np.zeros((H, W, 3), np.uint8), roi=outside)


# ---------------------------------------------------------------------------- fit_labels


@pytest.mark.parametrize(
    "shape, expected",
    [
        # 2×2 → 4×4: each label becomes a 2×2 block
        ((4, 4), [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]),
        # 2×2 → 3×5 (×1.5, ×2.5): rows 0,0,1; columns 0,0,0,1,1
        ((3, 5), [[1, 1, 1, 2, 2], [1, 1, 1, 2, 2], [3, 3, 3, 4, 4]]),
        # 2×2 → 1×1 and → 2×1
        ((1, 1), [[1]]),
        ((2, 1), [[1], [3]]),
    ],
)
def test_fit_labels_upscales_by_nearest_neighbour_exactly(shape, expected):
    labels = np.array([[1, 2], [3, 4]], np.int32)
    out = g.fit_labels(labels, shape)
    assert out.dtype == np.int32 and out.tolist() == expected


def test_fit_labels_downscales_by_nearest_neighbour_exactly():
    labels = np.arange(36, dtype=np.int32).reshape(6, 6)
    # ×2/3 (non-integer): rows and columns 0, 1, 3, 4
    assert g.fit_labels(labels, (4, 4)).tolist() == [
        [0, 1, 3, 4],
        [6, 7, 9, 10],
        [18, 19, 21, 22],
        [24, 25, 27, 28],
    ]
    # ×1/2: every other row and column from the first
    assert g.fit_labels(labels, (3, 3)).tolist() == [[0, 2, 4], [12, 14, 16], [24, 26, 28]]


@pytest.mark.parametrize(
    "src, dst", [((6, 5), (34, 17)), ((360, 640), (720, 1280)), ((720, 1280), (288, 320))]
)
def test_fit_labels_keeps_every_label_value_and_its_place(src, dst):
    """Large label values survive (no uint8/uint16 narrowing); each output pixel holds its source pixel."""
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2**31 - 1, src, dtype=np.int64).astype(np.int32)
    out = g.fit_labels(labels, dst)
    rows = [r * src[0] // dst[0] for r in range(dst[0])]
    cols = [c * src[1] // dst[1] for c in range(dst[1])]
    assert out.shape == dst and np.array_equal(out, labels[np.ix_(rows, cols)])
    # uint16 labels come back as int32 with the same values
    small = (labels % 65536).astype(np.uint16)
    assert np.array_equal(g.fit_labels(small, dst), small.astype(np.int32)[np.ix_(rows, cols)])


def test_fit_labels_same_shape_is_the_input_and_empty_is_refused():
    labels = np.array([[5, 6]], np.uint16)
    assert g.fit_labels(labels, (1, 2)) is labels
    with pytest.raises(ValueError, match="empty label image"):
        g.fit_labels(np.zeros((0, 3), np.int32), (2, 2))


# ---------------------------------------------------------------------------- normalise, device


def test_normalise_is_imagenet_per_channel_in_rgb_order():
    image = np.zeros((2, 3, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 255, 0, 128  # R, G, B
    x = g.normalise(image)
    assert x.shape == (3, 2, 3) and x.dtype == np.float32 and x.flags.c_contiguous
    mean, std = np.array(g.IMAGENET_MEAN), np.array(g.IMAGENET_STD)
    expected = (np.array([255, 0, 128]) / 255.0 - mean) / std
    assert np.allclose(x[:, 0, 0], expected, atol=1e-6) and np.all(x == x[:, :1, :1])


def test_resolve_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert g.resolve_device("auto") == torch.device("cpu")
    assert g.resolve_device("cpu", "sam.device") == torch.device("cpu")
    with pytest.raises(UserError, match="sam.device is cuda but no CUDA device is available"):
        g.resolve_device("cuda", "sam.device")
    with pytest.raises(UserError, match="--device: unknown device 'gpu0'"):
        g.resolve_device("gpu0", "--device")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert g.resolve_device("auto") == torch.device("cuda")
