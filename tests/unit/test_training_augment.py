"""Copy-Paste: pasted pixels and mask agree, count follows the ratio, deterministic; the Dataset."""

from __future__ import annotations

import numpy as np
import torch

from kinect_occlusion.training.augment import OcclusionDataset, copy_paste, n_to_paste
from kinect_occlusion.training.data import Prepared

RED, GREEN = (255, 0, 0), (0, 255, 0)


def donors(n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Pure red discs of different sizes."""
    out = []
    for i in range(n):
        r = 3 + i % 4
        yy, xx = np.mgrid[: 2 * r + 1, : 2 * r + 1]
        m = (yy - r) ** 2 + (xx - r) ** 2 <= r * r
        patch = np.zeros(m.shape + (3,), np.uint8)
        patch[m] = RED
        out.append((patch, m))
    return out


def test_copy_paste_pixels_and_mask_agree() -> None:
    image = np.full((48, 64, 3), GREEN, np.uint8)
    mask = np.zeros((48, 64), np.uint8)
    img_in, mask_in = image.copy(), mask.copy()
    out, out_mask, n = copy_paste(image, mask, donors(30), np.random.default_rng(1), ratio=0.2)
    assert n >= 5
    # Every changed pixel is in the mask and vice versa (edges may blend red with black, never green)
    changed = ~(out == GREEN).all(axis=2)
    assert np.array_equal(changed, out_mask == 1)
    assert (out[changed][:, 1] == 0).all() and (out[changed][:, 0] > 0).mean() > 0.8
    # Pure: the inputs are untouched
    assert np.array_equal(image, img_in) and np.array_equal(mask, mask_in)


def test_paste_count_follows_ratio_and_is_deterministic() -> None:
    pool = donors(23)
    counts = [n_to_paste(len(pool), 0.1, np.random.default_rng(s)) for s in range(2000)]
    assert set(counts) == {2, 3}  # 2.3 → floor or ceil
    assert abs(np.mean(counts) - 2.3) < 0.05
    assert n_to_paste(len(pool), 0.5, np.random.default_rng(0), max_instances=4) == 4
    assert n_to_paste(0, 0.5, np.random.default_rng(0)) == 0
    image, mask = np.zeros((40, 40, 3), np.uint8), np.zeros((40, 40), np.uint8)
    a = copy_paste(image, mask, pool, np.random.default_rng(7), ratio=0.3)
    b = copy_paste(image, mask, pool, np.random.default_rng(7), ratio=0.3)
    c = copy_paste(image, mask, pool, np.random.default_rng(8), ratio=0.3)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
    assert not np.array_equal(a[1], c[1])


def prepared(i: int) -> Prepared:
    image = np.full((32, 32, 3), 40 + i, np.uint8)
    valid = np.zeros((32, 32), bool)
    valid[:24] = True
    m = np.ones((6, 8), bool)
    image[4:10, 2 + i : 10 + i] = 200
    return Prepared(f"{i}.png", image, valid, [m], [(2 + i, 4)], ["tag"], (0, 0, 32, 32))


def test_dataset_outputs_deterministic_and_padding_ignored() -> None:
    ds = OcclusionDataset([prepared(i) for i in range(6)], augment=True, copy_paste_ratio=0.5, seed=3)
    x, y = ds[2]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert (y[24:] == 255).all() and set(torch.unique(y[:24]).tolist()) <= {0, 1}
    x2, y2 = ds[2]
    assert torch.equal(x, x2) and torch.equal(y, y2)
    ds.set_epoch(1)
    changed = [not torch.equal(ds[i][0], OcclusionDataset(ds.samples, seed=3)[i][0]) for i in range(6)]
    assert any(changed)
    plain = OcclusionDataset([prepared(0)], augment=False)
    img, tgt, n = plain.augmented(0)
    assert n == 0 and np.array_equal(tgt, prepared(0).target())
