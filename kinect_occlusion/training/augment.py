"""Augmentation: Copy-Paste of annotated instances, flips and colour jitter, and the torch Dataset.

Copy-Paste (:func:`copy_paste`) is a pure numpy function. The number of pasted instances is
``ratio × len(donors)`` with stochastic rounding — ``floor(x)`` plus one with probability
``frac(x)`` — so its mean is exactly the ratio of the pool and it never strays by more than one;
``max_instances`` caps it (a large data set would otherwise paste hundreds of instances).

Photometric/geometric steps use ``torchvision.transforms.v2`` on ``tv_tensors.Image`` and
``tv_tensors.Mask`` so image and mask flip together (colour jitter leaves the mask alone).
Everything is deterministic given ``(seed, epoch, index)``, whatever the number of loader workers.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from ..geometry import IMAGENET_MEAN, IMAGENET_STD, normalise
from .data import Prepared

IGNORE_INDEX = 255


def n_to_paste(
    n_donors: int, ratio: float, rng: np.random.Generator, max_instances: int | None = None
) -> int:
    """How many donor instances to paste: ratio × pool, stochastically rounded, then capped."""
    expected = max(0.0, ratio) * n_donors
    n = math.floor(expected) + int(rng.random() < expected - math.floor(expected))
    n = min(n, n_donors)
    return n if max_instances is None else min(n, max_instances)


def _transform_donor(
    patch: np.ndarray, mask: np.ndarray, rng: np.random.Generator, scale_range: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Random horizontal flip and scale of one donor (image: linear, mask: nearest)."""
    if rng.random() < 0.5:
        patch, mask = patch[:, ::-1], mask[:, ::-1]
    s = rng.uniform(*scale_range)
    h, w = mask.shape
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    patch = cv2.resize(np.ascontiguousarray(patch), (nw, nh), interpolation=cv2.INTER_LINEAR)
    small = cv2.resize(np.ascontiguousarray(mask).astype(np.uint8), (nw, nh), interpolation=cv2.INTER_NEAREST)
    return patch, small > 0


def paste_one(
    image: np.ndarray, mask: np.ndarray, patch: np.ndarray, pmask: np.ndarray, center: tuple[int, int]
) -> int:
    """Paste ``patch`` where ``pmask`` is set, centred at (x, y), clipped; in place. Pixels pasted."""
    h, w = mask.shape
    ph, pw = pmask.shape
    x0, y0 = center[0] - pw // 2, center[1] - ph // 2
    # Clip the patch to the image
    sx0, sy0 = max(0, -x0), max(0, -y0)
    sx1, sy1 = min(pw, w - x0), min(ph, h - y0)
    if sx1 <= sx0 or sy1 <= sy0:
        return 0
    sel = pmask[sy0:sy1, sx0:sx1]
    dst = (slice(y0 + sy0, y0 + sy1), slice(x0 + sx0, x0 + sx1))
    image[dst][sel] = patch[sy0:sy1, sx0:sx1][sel]
    mask[dst][sel] = 1
    return int(np.count_nonzero(sel))


def copy_paste(
    image: np.ndarray,
    mask: np.ndarray,
    donors: list[tuple[np.ndarray, np.ndarray]],
    rng: np.random.Generator,
    ratio: float = 0.1,
    max_instances: int | None = None,
    scale_range: tuple[float, float] = (0.75, 1.25),
) -> tuple[np.ndarray, np.ndarray, int]:
    """Paste randomly chosen donor instances onto an image (pure; inputs are not modified).

    Args:
        image: (H, W, 3) uint8.
        mask: (H, W) uint8 target (1 occlusion); set to 1 wherever an instance is pasted.
        donors: (image patch (h, w, 3), instance mask (h, w) bool) pairs — the annotated instances
            of the pool, usually cropped to their bounding box.
        rng: numpy Generator (the only source of randomness).
        ratio: fraction of the pool to paste (see :func:`n_to_paste`).
        max_instances: cap on the number pasted (None: no cap).
        scale_range: uniform random scale per instance; each also flips with p=0.5 and lands
            with its centre uniformly anywhere in the image.

    Returns:
        (image, mask, n_pasted); n_pasted counts instances that put at least one pixel down.
    """
    image, mask = image.copy(), mask.copy()
    n = n_to_paste(len(donors), ratio, rng, max_instances)
    if n == 0:
        return image, mask, 0
    h, w = mask.shape
    pasted = 0
    for idx in rng.choice(len(donors), size=n, replace=False):
        patch, pmask = _transform_donor(*donors[int(idx)], rng, scale_range)
        center = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        pasted += paste_one(image, mask, patch, pmask, center) > 0
    return image, mask, pasted


def build_transform() -> v2.Compose:
    """Flip (p=0.5), ColorJitter(0.2, 0.2, 0.2, 0.2) (p=0.5), brightness/contrast 0.2 (p=0.5)."""
    return v2.Compose(
        [
            v2.RandomHorizontalFlip(0.5),
            v2.RandomApply([v2.ColorJitter(0.2, 0.2, 0.2, 0.2)], p=0.5),
            v2.RandomApply([v2.ColorJitter(brightness=0.2, contrast=0.2)], p=0.5),
        ]
    )


def apply_transform(
    transform: v2.Compose, image: np.ndarray, mask: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Run ``transform`` on (H, W, 3) uint8 + (H, W) uint8 with torch seeded by ``seed``."""
    img_t = tv_tensors.Image(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1))
    mask_t = tv_tensors.Mask(torch.from_numpy(np.ascontiguousarray(mask)))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        img_t, mask_t = transform(img_t, mask_t)
    return img_t.permute(1, 2, 0).numpy(), mask_t.numpy()


class OcclusionDataset(TorchDataset):
    """Prepared samples → (normalised image (3, S, S) float, target (S, S) int64 with 255 = padding).

    With ``augment``: Copy-Paste from the donor pool of all given samples, then :func:`build_transform`.
    Call :meth:`set_epoch` each epoch so the augmentations differ between epochs.
    """

    def __init__(
        self,
        samples: list[Prepared],
        augment: bool = True,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        copy_paste_ratio: float = 0.1,
        max_paste: int | None = 8,
        seed: int = 0,
    ) -> None:
        self.samples, self.augment, self.mean, self.std = samples, augment, mean, std
        self.ratio, self.max_paste, self.seed, self.epoch = copy_paste_ratio, max_paste, seed, 0
        self.pool = [d for s in samples for d in s.donors()] if augment and copy_paste_ratio > 0 else []
        self.transform = build_transform()

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose augmentations ``__getitem__`` draws."""
        self.epoch = epoch

    def augmented(self, index: int) -> tuple[np.ndarray, np.ndarray, int]:
        """(image uint8 (S, S, 3), target uint8 (S, S), n_pasted) for one index."""
        s = self.samples[index]
        image, target = s.image, s.target()
        if not self.augment:
            return image, target, 0
        rng = np.random.default_rng([self.seed, self.epoch, index])
        image, target, n = copy_paste(image, target, self.pool, rng, self.ratio, self.max_paste)
        # Pasted pixels never belong to the letterbox padding
        image[~s.valid] = 0
        target[~s.valid] = IGNORE_INDEX
        image, target = apply_transform(self.transform, image, target, int(rng.integers(2**31)))
        return image, target, n

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, target, _ = self.augmented(index)
        return torch.from_numpy(normalise(image, self.mean, self.std)), torch.from_numpy(
            target.astype(np.int64)
        )
